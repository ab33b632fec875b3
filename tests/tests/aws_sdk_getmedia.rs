//! GetMedia read by the AWS SDK for Rust's media client with its defaults, stalled-stream
//! protection included (a download silent for 5 s fails with `ThroughputBelowMinimum`). KVS ends
//! a caught-up GetMedia after 3 s without a new fragment, and so must Kinescope by default: a
//! read from EARLIEST to the end, and a live tail across a pause in the upload shorter than that,
//! both end cleanly with every cluster uploaded. The server runs with `--no-tls` and its default
//! `--getmedia-idle-timeout`.

use std::time::{Duration, Instant};

use aws_sdk_kinesisvideomedia::Client;
use aws_sdk_kinesisvideomedia::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesisvideomedia::primitives::ByteStream;
use aws_sdk_kinesisvideomedia::types::{StartSelector, StartSelectorType};
use kinescope_api::ack::AckEvent;
use kinescope_api::{StreamName, Timestamp};
use kinescope_devices::PutMediaOptions;
use kinescope_media::mkv::{Limits, MkvReader};
use kinescope_tests::{AK, REGION, SK, Server, cluster_frames, create_stream, recording, upload};

const RECORDING: &str = "producer-c-1.6.4_h264_putmedia.mkv";
/// Shorter than the 3 s idle timeout, and than the SDK's 5 s grace period.
const PAUSE: Duration = Duration::from_secs(2);

/// The SDK's client as an application builds it; only the endpoint and credentials are set.
fn media_client(server: &Server) -> Client {
    let config = aws_sdk_kinesisvideomedia::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(AK, SK, None, None, "kinescope-tests"))
        .endpoint_url(&server.endpoint)
        .build();
    Client::from_conf(config)
}

async fn get_media(client: &Client, stream: &StreamName) -> ByteStream {
    let selector = StartSelector::builder()
        .start_selector_type(StartSelectorType::Earliest)
        .build()
        .unwrap();
    let out = client
        .get_media()
        .stream_name(stream.as_str())
        .start_selector(selector)
        .send()
        .await
        .unwrap();
    assert_eq!(out.content_type(), Some("video/webm"));
    out.payload
}

/// What a read to the end of the payload got: the clusters (timecode, frames per track) and
/// the longest wait for a chunk, end included. A read that fails (the SDK's stalled-stream
/// protection, say) fails the test with the SDK's error.
async fn read_to_end(
    mut payload: ByteStream,
) -> (Vec<(u64, std::collections::BTreeMap<u64, u32>)>, Duration) {
    let mut reader = MkvReader::new(Limits::default());
    let (mut clusters, mut longest, mut last) = (Vec::new(), Duration::ZERO, Instant::now());
    loop {
        let chunk = payload.next().await;
        longest = longest.max(last.elapsed());
        last = Instant::now();
        match chunk {
            None => break,
            Some(Ok(bytes)) => reader.push(bytes),
            Some(Err(e)) => panic!("GetMedia read failed: {e:?}"),
        }
        while let Some(e) = reader.poll() {
            if let Some(f) = e.unwrap().into_fragment() {
                clusters.push((f.timecode, f.frames));
            }
        }
    }
    (clusters, longest)
}

fn options(stream: &StreamName) -> PutMediaOptions {
    PutMediaOptions {
        stream: stream.clone(),
        absolute: true,
        start: Timestamp::from_millis(1_700_000_000_000),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_default_client_reads_getmedia_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--no-tls"]);
    let endpoint = server.client();
    let client = media_client(&server);
    let data = recording(RECORDING);
    let expected = cluster_frames(&data);

    // The archive, from EARLIEST to the idle end.
    let archived = StreamName::parse("archived").unwrap();
    create_stream(&endpoint, &archived).await;
    let acks = upload(&endpoint, &options(&archived), &data, None).await;
    assert!(acks.iter().all(|a| a.event != AckEvent::Error), "{acks:?}");
    let started = Instant::now();
    let (got, _) = read_to_end(get_media(&client, &archived).await).await;
    assert_eq!(got, expected, "EARLIEST to the end");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "ended by the idle timeout: {:?}",
        started.elapsed()
    );

    // A live tail: opened on the empty stream, then the upload stops for PAUSE halfway.
    let live = StreamName::parse("live").unwrap();
    create_stream(&endpoint, &live).await;
    let reading = tokio::spawn(read_to_end(get_media(&client, &live).await));
    let acks = upload(
        &endpoint,
        &options(&live),
        &data,
        Some((data.len() / 2, PAUSE)),
    )
    .await;
    assert!(acks.iter().all(|a| a.event != AckEvent::Error), "{acks:?}");
    let (got, longest) = reading.await.unwrap();
    assert_eq!(got, expected, "the live tail across the pause");
    assert!(
        longest >= PAUSE - Duration::from_millis(500),
        "the pause reached the reader: longest wait {longest:?}"
    );
}
