//! What producers attach to their fragments, against the real binary over TLS (issue 9): the
//! user tags of the KVS C producer's video sample (`TEST_KEY_1..9` after each Cluster) come
//! back after their fragment's Cluster in GetMedia and GetMediaForFragmentList (design/0009);
//! a producer clock in the year 2100 is refused with 4007 and leaves the stream usable.

use std::time::Duration;

use bytes::Bytes;
use kinescope_api::ack::{Ack, AckEvent};
use kinescope_api::{FragmentNumber, StreamName, Timestamp};
use kinescope_devices::{Endpoint, MediaStream, PutMedia, PutMediaOptions};
use kinescope_media::mkv::{Event, Limits, MkvReader};
use kinescope_tests::{Server, create_stream, now, recording};
use tempfile::TempDir;

/// (name, value) pairs.
type Pairs = Vec<(String, String)>;

/// A server of its own, a client, and a new stream `name` that keeps its fragments for an hour.
async fn with_stream(name: &str) -> (TempDir, Server, Endpoint, StreamName) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let endpoint = server.client();
    let stream = StreamName::parse(name).unwrap();
    create_stream(&endpoint, &stream).await;
    (dir, server, endpoint, stream)
}

/// Uploads `data` and returns every ACK until the response ends.
async fn upload(endpoint: &Endpoint, options: &PutMediaOptions, data: &[u8]) -> Vec<Ack> {
    let mut upload = PutMedia::start(endpoint, options, now()).await.unwrap();
    for chunk in data.chunks(64 * 1024) {
        if upload.send(chunk).await.is_err() {
            // After an ERROR ACK the server reads no more and closes (spec §0.3): the ACKs
            // that came before are what the upload got.
            let mut acks = Vec::new();
            while let Some(Ok((ack, _))) = upload.next_ack().await {
                acks.push(ack);
            }
            return acks;
        }
    }
    let acks = tokio::time::timeout(Duration::from_secs(30), upload.finish())
        .await
        .expect("the response ends")
        .unwrap();
    acks.into_iter().map(|(a, _)| a).collect()
}

fn user(tags: &[kinescope_media::mkv::SimpleTag]) -> Pairs {
    tags.iter()
        .filter(|t| !t.name.starts_with("AWS_"))
        .map(|t| (t.name.clone(), t.value.clone()))
        .collect()
}

/// The user tags that follow each Cluster of an upload, by the media crate's reader.
fn uploaded_metadata(data: &[u8]) -> Vec<Pairs> {
    let mut r = MkvReader::new(Limits::default());
    r.push(Bytes::copy_from_slice(data));
    r.finish();
    let mut out: Vec<Pairs> = Vec::new();
    for e in std::iter::from_fn(|| r.poll()) {
        match e.unwrap() {
            Event::Fragment(_) => out.push(Vec::new()),
            Event::Tags { tags, .. } => out.last_mut().unwrap().extend(user(&tags)),
            _ => {}
        }
    }
    out
}

/// Per MKV document of a GetMedia-style response: its fragment number and every tag after its
/// Cluster, as (name, value). Reads to the end of the response, or, with `live` (GetMedia, which
/// stays open for more), until the `live`-th document's continuation token, its last tag.
async fn documents(mut media: MediaStream, live: Option<usize>) -> Vec<(String, Pairs)> {
    let mut reader = MkvReader::new(Limits::default());
    let mut docs: Vec<(String, Pairs)> = Vec::new();
    let mut after_cluster = false;
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(20), media.next())
            .await
            .expect("the response keeps coming")
            .unwrap();
        let ended = chunk.is_none();
        match chunk {
            Some(c) => reader.push(c),
            None => reader.finish(),
        }
        while let Some(e) = reader.poll() {
            match e.unwrap() {
                Event::Tags { tags, .. } => {
                    // KVS's tags before a Cluster open its document.
                    if let Some(n) = tags
                        .iter()
                        .find(|t| t.name == "AWS_KINESISVIDEO_FRAGMENT_NUMBER")
                    {
                        docs.push((n.value.clone(), Vec::new()));
                        after_cluster = false;
                    } else if after_cluster {
                        let pairs = tags.iter().map(|t| (t.name.clone(), t.value.clone()));
                        docs.last_mut().unwrap().1.extend(pairs);
                    }
                }
                Event::Fragment(_) => after_cluster = true,
                _ => {}
            }
        }
        let complete = live.is_some_and(|n| {
            docs.len() == n
                && docs[n - 1]
                    .1
                    .last()
                    .is_some_and(|t| t.0 == "AWS_KINESISVIDEO_CONTINUATION_TOKEN")
        });
        if ended || complete {
            return docs;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_metadata_comes_back_after_its_fragments_cluster() {
    let (_dir, _server, endpoint, stream) = with_stream("metadata").await;
    let data = recording("producer-c-1.6.4_h264_putmedia.mkv");
    let expected = uploaded_metadata(&data);
    assert_eq!(expected.len(), 3);
    assert!(expected.iter().all(|m| m.len() == 9), "{expected:?}");

    let options = PutMediaOptions {
        stream: stream.clone(),
        absolute: true,
        start: now(),
    };
    let acks = upload(&endpoint, &options, &data).await;
    let numbers: Vec<FragmentNumber> = acks
        .iter()
        .filter(|a| a.event == AckEvent::Persisted)
        .map(|a| a.fragment.clone().unwrap().1)
        .collect();
    assert_eq!(numbers.len(), 3, "{acks:?}");

    // GetMedia: each fragment's metadata right after its Cluster, then KVS's own tags.
    let media = MediaStream::open(
        &endpoint,
        &stream,
        r#"{"StartSelectorType":"EARLIEST"}"#,
        now(),
    )
    .await
    .unwrap();
    let docs = documents(media, Some(3)).await;
    assert_eq!(docs.len(), 3);
    for ((number, after), (want_number, want)) in docs.iter().zip(numbers.iter().zip(&expected)) {
        assert_eq!(number, want_number.as_str());
        let names: Vec<&str> = after[want.len()..].iter().map(|t| t.0.as_str()).collect();
        assert_eq!(&after[..want.len()], &want[..], "fragment {number}");
        assert_eq!(
            names,
            [
                "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW",
                "AWS_KINESISVIDEO_CONTINUATION_TOKEN"
            ]
        );
    }

    // GetMediaForFragmentList, in the order asked: each document ends with its metadata.
    let order = [numbers[2].clone(), numbers[0].clone(), numbers[1].clone()];
    let media = MediaStream::fragment_list(&endpoint, &stream, &order, now())
        .await
        .unwrap();
    let docs = documents(media, None).await;
    assert_eq!(docs.len(), 3);
    for ((number, after), (want_number, want)) in
        docs.iter()
            .zip(order.iter().zip([&expected[2], &expected[0], &expected[1]]))
    {
        assert_eq!(number, want_number.as_str());
        assert_eq!(after, want, "fragment {number}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_clock_in_2100_is_refused_and_the_stream_stays_usable() {
    let (_dir, _server, endpoint, stream) = with_stream("future").await;
    // RELATIVE timecodes: the producer start timestamp header sets every fragment's time.
    let data = recording("producer-c-1.6.4_h264_aac_putmedia.mkv");
    let mut options = PutMediaOptions {
        stream,
        absolute: false,
        start: Timestamp::from_millis(4_102_444_800_000), // 2100-01-01
    };
    let acks = upload(&endpoint, &options, &data).await;
    assert!(
        !acks.iter().any(|a| a.event == AckEvent::Persisted),
        "{acks:?}"
    );
    let error = acks.last().unwrap();
    assert_eq!(error.event, AckEvent::Error);
    assert_eq!(error.error.map(|e| e.id()), Some(4007), "{acks:?}");

    // Stamped with the real time, the next upload is stored, every fragment of it.
    options.start = now();
    let acks = upload(&endpoint, &options, &data).await;
    assert!(acks.iter().all(|a| a.event != AckEvent::Error), "{acks:?}");
    let persisted = acks
        .iter()
        .filter(|a| a.event == AckEvent::Persisted)
        .count();
    assert_eq!(persisted, 3, "{acks:?}");
}
