//! Kinescope's end-to-end tests. They start the real `kinescope` binary on loopback and drive it
//! with real clients: `tests/*.rs` with Kinescope's own producer client (`kinescope-devices`) and
//! the AWS SDK for Rust, `tests/e2e/` (Python) with boto3, the AWS CLI, curl, ffmpeg, GStreamer
//! and PyAV. `scripts/test` builds the binary, installs those clients and runs both.
//!
//! This library is the Rust suites' harness: starting the server, the test credentials, the
//! recorded uploads, and uploading one the way the official producers do.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kinescope_api::ack::{Ack, AckEvent};
use kinescope_api::sigv4::Signer;
use kinescope_api::{StreamName, Timestamp};
use kinescope_devices::{Endpoint, PutMedia, PutMediaOptions};
use kinescope_media::mkv::{Limits, MkvReader};

pub const AK: &str = "AKIDEXAMPLE";
pub const SK: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
pub const REGION: &str = "us-west-2";

/// A running `kinescope serve`, killed when dropped, and what its banner said.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub endpoint: String,
    /// The CA to trust; `None` with `--no-tls`.
    pub ca: Option<PathBuf>,
}

impl Server {
    /// Starts the binary ($KINESCOPE_BIN, else `target/debug/kinescope`) on `127.0.0.1:0` with
    /// the test credentials, its data in `data`, plus `args`.
    pub fn start(data: &Path, args: &[&str]) -> Self {
        let bin = std::env::var_os("KINESCOPE_BIN")
            .map_or_else(|| root().join("target/debug/kinescope"), PathBuf::from);
        assert!(bin.exists(), "build the server first: {bin:?} is missing");
        let mut child = Command::new(bin)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--access-key",
                AK,
                "--secret-key",
                SK,
            ])
            .args(args)
            .arg("--data-dir")
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (mut endpoint, mut ca) = (None, None);
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            let line = line.trim();
            if let Some(v) = line.strip_prefix("Endpoint:") {
                endpoint = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("Trust CA:") {
                ca = Some(PathBuf::from(v.trim()));
            } else if line == "Try:" {
                break;
            }
        }
        Self {
            child,
            endpoint: endpoint.expect("endpoint printed"),
            ca,
        }
    }

    /// Kinescope's own client for this server, with the test credentials.
    pub fn client(&self) -> Endpoint {
        let signer = Signer {
            access_key: AK.into(),
            secret: SK.into(),
            region: REGION.into(),
        };
        Endpoint::new(&self.endpoint, self.ca.as_deref(), signer).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A recorded upload from `testdata/mkv`.
pub fn recording(name: &str) -> Bytes {
    Bytes::from(std::fs::read(root().join("testdata/mkv").join(name)).unwrap())
}

pub fn now() -> Timestamp {
    Timestamp::from_millis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
}

/// The clusters of an upload (timecode, frames per track), by the media crate's reader.
pub fn cluster_frames(data: &Bytes) -> Vec<(u64, BTreeMap<u64, u32>)> {
    let mut r = MkvReader::new(Limits::default());
    r.push(data.clone());
    r.finish();
    std::iter::from_fn(|| r.poll())
        .filter_map(|e| e.unwrap().into_fragment())
        .map(|f| (f.timecode, f.frames))
        .collect()
}

/// Creates `stream` with one hour of retention.
pub async fn create_stream(endpoint: &Endpoint, stream: &StreamName) {
    let body = format!(r#"{{"StreamName":"{stream}","DataRetentionInHours":1}}"#);
    endpoint.call("/createStream", &body, now()).await.unwrap();
}

/// Uploads `data` in 32 KiB chunks as the official producers do: the final chunk is held back
/// until the last cluster is PERSISTED. With `pause`, stops for `pause.1` once `pause.0` bytes
/// are sent. Returns every ACK.
pub async fn upload(
    endpoint: &Endpoint,
    options: &PutMediaOptions,
    data: &Bytes,
    pause: Option<(usize, Duration)>,
) -> Vec<Ack> {
    let last = cluster_frames(data).last().expect("clusters").0;
    let mut upload = PutMedia::start(endpoint, options, now()).await.unwrap();
    let mut sent = 0;
    for chunk in data.chunks(32 * 1024) {
        if let Some((at, pause)) = pause
            && sent < at
            && sent + chunk.len() >= at
        {
            tokio::time::sleep(pause).await;
        }
        upload.send(chunk).await.unwrap();
        sent += chunk.len();
    }
    let mut acks: Vec<Ack> = Vec::new();
    let persisted_last = |a: &Ack| {
        a.event == AckEvent::Persisted && a.fragment.as_ref().is_some_and(|f| f.0 == last)
    };
    while !acks.iter().any(persisted_last) {
        let ack = tokio::time::timeout(Duration::from_secs(20), upload.next_ack())
            .await
            .expect("ACKs keep coming")
            .expect("response open");
        acks.push(ack.unwrap().0);
    }
    acks.extend(upload.finish().await.unwrap().into_iter().map(|(a, _)| a));
    acks
}
