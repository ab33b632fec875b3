//! The official producers' uploads replayed over TLS by Kinescope's own Rust client
//! (`kinescope-devices`), against the real binary with its generated CA: every cluster gets
//! BUFFERING, RECEIVED and PERSISTED with its timecode, and the last one is PERSISTED before the
//! client sends its final chunk (what the official SDK waits for); then GetMedia, read by the
//! same library over TLS, returns the same clusters frame for frame. The binary is
//! $KINESCOPE_BIN, else target/debug/kinescope (`scripts/test` builds it first).

use std::time::Duration;

use kinescope_api::StreamName;
use kinescope_api::Timestamp;
use kinescope_api::ack::AckEvent;
use kinescope_api::sigv4::Signer;
use kinescope_devices::{Endpoint, MediaStream, PutMediaOptions};
use kinescope_media::mkv::{Limits, MkvReader};
use kinescope_tests::{AK, REGION, Server, cluster_frames, create_stream, now, recording, upload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_uploads_over_tls_get_every_ack() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    assert!(server.endpoint.starts_with("https://"));
    let endpoint = server.client();

    for (i, (name, absolute)) in [
        ("producer-c-1.6.4_h264_putmedia.mkv", true),
        ("producer-c-1.6.4_h264_aac_putmedia.mkv", false),
        ("kvssink-3.6.0_h264_putmedia.mkv", true),
    ]
    .into_iter()
    .enumerate()
    {
        let data = recording(name);
        let timecodes: Vec<u64> = cluster_frames(&data).into_iter().map(|c| c.0).collect();
        let stream = StreamName::parse(&format!("tls-{i}")).unwrap();
        create_stream(&endpoint, &stream).await;

        let options = PutMediaOptions {
            stream,
            absolute,
            start: Timestamp::from_millis(1_700_000_000_000),
        };
        // The final chunk is held back until the last fragment is PERSISTED.
        let acks = upload(&endpoint, &options, &data, None).await;

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
    let bad = Endpoint::new(
        &server.endpoint,
        server.ca.as_deref(),
        Signer {
            access_key: AK.into(),
            secret: "nope".into(),
            region: REGION.into(),
        },
    )
    .unwrap();
    let err = bad.call("/listStreams", "{}", now()).await.unwrap_err();
    assert!(
        matches!(
            err,
            kinescope_devices::DeviceError::Status { status: 403, .. }
        ),
        "{err}"
    );
}
