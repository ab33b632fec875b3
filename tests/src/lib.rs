//! Kinescope's end-to-end tests. They start the real `kinescope` binary on loopback and drive it
//! with real clients: `tests/*.rs` with Kinescope's own producer client (`kinescope-devices`),
//! `tests/e2e/` (Python) with boto3, the AWS CLI, curl, ffmpeg, GStreamer and PyAV.
//! `scripts/test` builds the binary, installs those clients and runs both. This library holds
//! what the Rust suites share: starting the server and a client for it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use kinescope_api::Timestamp;
use kinescope_api::sigv4::Signer;
use kinescope_devices::Endpoint;

pub const AK: &str = "AKIDEXAMPLE";
pub const SK: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The bytes of `testdata/mkv/NAME`.
pub fn mkv(name: &str) -> Vec<u8> {
    std::fs::read(root().join("testdata/mkv").join(name)).unwrap()
}

pub fn now() -> Timestamp {
    Timestamp::from_millis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
}

/// The server, killed when dropped.
#[derive(Debug)]
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `kinescope serve` with TLS on and the key pair [`AK`]/[`SK`]; returns it with its
/// endpoint and CA file. The binary is $KINESCOPE_BIN, else target/debug/kinescope.
pub fn serve(data: &Path) -> (Server, String, PathBuf) {
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
            "--data-dir",
        ])
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
    (
        Server(child),
        endpoint.expect("endpoint printed"),
        ca.expect("CA printed"),
    )
}

/// A client of the server at `url` that trusts `ca` and signs with `secret`.
pub fn endpoint(url: &str, ca: &Path, secret: &str) -> Endpoint {
    let signer = Signer {
        access_key: AK.into(),
        secret: secret.into(),
        region: "us-west-2".into(),
    };
    Endpoint::new(url, Some(ca), signer).unwrap()
}
