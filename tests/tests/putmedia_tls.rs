//! The official producers' uploads replayed over TLS by Kinescope's own Rust client
//! (`kinescope-devices`), against the real binary with its generated CA: every cluster gets
//! BUFFERING, RECEIVED and PERSISTED with its timecode, and the last one is PERSISTED before the
//! client sends its final chunk (what the official SDK waits for); then GetMedia, read by the
//! same library over TLS, returns the same clusters frame for frame. The binary is
//! $KINESCOPE_BIN, else target/debug/kinescope (`scripts/test` builds it first).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kinescope_api::ack::{Ack, AckEvent};
use kinescope_api::{StreamName, Timestamp};
use kinescope_devices::{MediaStream, PutMedia, PutMediaOptions};
use kinescope_media::mkv::{Limits, MkvReader};
use kinescope_tests::{SK, endpoint, mkv, now, serve};

/// The clusters of an upload (timecode, frames per track), by the media crate's reader.
fn cluster_frames(data: &Bytes) -> Vec<(u64, BTreeMap<u64, u32>)> {
    let mut r = MkvReader::new(Limits::default());
    r.push(data.clone());
    r.finish();
    std::iter::from_fn(|| r.poll())
        .filter_map(|e| e.unwrap().into_fragment())
        .map(|f| (f.timecode, f.frames))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_uploads_over_tls_get_every_ack() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url, ca) = serve(&dir.path().join("data"));
    assert!(url.starts_with("https://"));
    let endpoint = endpoint(&url, &ca, SK);

    for (i, (name, absolute)) in [
        ("producer-c-1.6.4_h264_putmedia.mkv", true),
        ("producer-c-1.6.4_h264_aac_putmedia.mkv", false),
        ("kvssink-3.6.0_h264_putmedia.mkv", true),
    ]
    .into_iter()
    .enumerate()
    {
        let data = Bytes::from(mkv(name));
        let timecodes: Vec<u64> = cluster_frames(&data).into_iter().map(|c| c.0).collect();
        let stream = StreamName::parse(&format!("tls-{i}")).unwrap();
        let body = format!(r#"{{"StreamName":"{stream}","DataRetentionInHours":1}}"#);
        endpoint.call("/createStream", &body, now()).await.unwrap();

        let options = PutMediaOptions {
            stream,
            absolute,
            start: Timestamp::from_millis(1_700_000_000_000),
        };
        let mut upload = PutMedia::start(&endpoint, &options, now()).await.unwrap();
        for chunk in data.chunks(32 * 1024) {
            upload.send(chunk).await.unwrap();
        }
        // Hold the final chunk back until the last fragment is PERSISTED.
        let mut acks: Vec<Ack> = Vec::new();
        let last = *timecodes.last().unwrap();
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

        assert!(
            acks.iter().all(|a| a.event != AckEvent::Error),
            "{name}: {acks:?}"
        );
        for tc in &timecodes {
            let events: Vec<AckEvent> = acks
                .iter()
                .filter(|a| a.fragment.as_ref().is_some_and(|f| f.0 == *tc))
                .map(|a| a.event)
                .collect();
            assert_eq!(
                events,
                [AckEvent::Buffering, AckEvent::Received, AckEvent::Persisted],
                "{name} fragment {tc}"
            );
        }
        let numbers: Vec<_> = acks
            .iter()
            .filter(|a| a.event == AckEvent::Persisted)
            .map(|a| a.fragment.clone().unwrap().1)
            .collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "{name}: numbers increase"
        );

        // Read back over TLS with GetMedia from EARLIEST: the same clusters, frame for frame.
        let mut media = MediaStream::open(
            &endpoint,
            &options.stream,
            r#"{"StartSelectorType":"EARLIEST"}"#,
            now(),
        )
        .await
        .unwrap();
        let mut reader = MkvReader::new(Limits::default());
        let mut got = Vec::new();
        while got.len() < timecodes.len() {
            let chunk = tokio::time::timeout(Duration::from_secs(20), media.next())
                .await
                .expect("GetMedia keeps sending")
                .unwrap()
                .expect("response open");
            reader.push(chunk);
            while let Some(e) = reader.poll() {
                if let Some(f) = e.unwrap().into_fragment() {
                    got.push((f.timecode, f.frames));
                }
            }
        }
        assert_eq!(got, cluster_frames(&data), "{name}: read back");
    }
    // A wrong secret is refused before any ACK.
    let bad = kinescope_tests::endpoint(&url, &ca, "nope");
    let err = bad.call("/listStreams", "{}", now()).await.unwrap_err();
    assert!(
        matches!(
            err,
            kinescope_devices::DeviceError::Status { status: 403, .. }
        ),
        "{err}"
    );
}
