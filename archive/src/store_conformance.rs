//! The store conformance suite: the behaviour every [`BlobStore`] must show (as
//! `conformance.rs` is for catalogs). [`run`] takes a fresh, empty store; it runs against
//! [`LocalStore`], the in-memory store and, with the `s3` feature, an S3 store on a real
//! S3-compatible server (`s3s-fs`, which checks SigV4 signatures) started for the test.

use std::io::ErrorKind;

use bytes::Bytes;

use crate::{BlobStore, LocalStore, ObjectBlobStore, PART_SIZE, PUT_THRESHOLD};

fn b(s: &'static [u8]) -> Bytes {
    Bytes::from_static(s)
}

/// `n` bytes of a pattern that differs at every offset within a part.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

async fn kind(store: &dyn BlobStore, key: &str, range: std::ops::Range<u64>) -> ErrorKind {
    store
        .get(key, range)
        .await
        .expect_err("expected an error")
        .kind()
}

pub(crate) async fn run(store: &dyn BlobStore) {
    write_in_parts_then_finish(store).await;
    ranges(store).await;
    missing_keys(store).await;
    dropped_writers_leave_nothing(store).await;
    overwrite(store).await;
    bad_keys(store).await;
    large_objects(store).await;
    list_and_delete(store).await;
}

async fn list_and_delete(store: &dyn BlobStore) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    store.put("listed/a/1", vec![b(b"one")]).await.unwrap();
    store.put("listed/a/2", vec![b(b"two!")]).await.unwrap();
    store.put("listed/b/1", vec![b(b"x")]).await.unwrap();
    store.put("listed0/1", vec![b(b"elsewhere")]).await.unwrap();
    let mut unfinished = store.create("listed/a/3").await.unwrap();
    unfinished.write(vec![b(b"partial")]).await.unwrap();
    let listed = |prefix: &'static str| async move {
        let mut found: Vec<(String, u64)> = store
            .list(prefix)
            .await
            .unwrap()
            .into_iter()
            .map(|o| (o.key, o.size))
            .collect();
        found.sort();
        found
    };
    let own = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    };
    assert_eq!(
        listed("listed/").await,
        own(&[("listed/a/1", 3), ("listed/a/2", 4), ("listed/b/1", 1)]),
        "whole key parts; unfinished objects are not listed"
    );
    assert_eq!(
        listed("listed/a/").await,
        own(&[("listed/a/1", 3), ("listed/a/2", 4)])
    );
    assert!(listed("nothing/").await.is_empty());
    assert!(listed("").await.contains(&("listed0/1".to_string(), 9)));
    let modified = store.list("listed/b/").await.unwrap()[0].modified_ms;
    assert!(
        (modified - now_ms).abs() < 600_000,
        "{modified} vs {now_ms}"
    );
    assert_eq!(
        store.list("listed").await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    // Deleting: the object goes; deleting again, or what never existed, is no error.
    store.delete("listed/a/1").await.unwrap();
    store.delete("listed/a/1").await.unwrap();
    store.delete("listed/missing/1").await.unwrap();
    assert_eq!(kind(store, "listed/a/1", 0..1).await, ErrorKind::NotFound);
    assert_eq!(
        listed("listed/").await,
        own(&[("listed/a/2", 4), ("listed/b/1", 1)])
    );
    store.delete("listed/b/1").await.unwrap();
    assert_eq!(listed("listed/").await, own(&[("listed/a/2", 4)]));
    drop(unfinished);
}

async fn write_in_parts_then_finish(store: &dyn BlobStore) {
    let mut w = store.create("1/1").await.unwrap();
    w.write(vec![b(b"ab")]).await.unwrap();
    w.write(vec![b(b"c"), b(b""), b(b"d")]).await.unwrap();
    assert_eq!(
        kind(store, "1/1", 0..4).await,
        ErrorKind::NotFound,
        "not visible before finish"
    );
    w.finish().await.unwrap();
    assert_eq!(&store.get("1/1", 0..4).await.unwrap()[..], b"abcd");
    // put = create + write + finish; an empty object exists.
    store.put("1/2", vec![]).await.unwrap();
    assert_eq!(store.get("1/2", 0..0).await.unwrap().len(), 0);
    assert!(store.get("1/2", 0..1).await.is_err());
    // Keys of different streams do not interfere.
    store.put("2/1", vec![b(b"other")]).await.unwrap();
    assert_eq!(&store.get("1/1", 0..4).await.unwrap()[..], b"abcd");
    assert_eq!(&store.get("2/1", 0..5).await.unwrap()[..], b"other");
}

async fn ranges(store: &dyn BlobStore) {
    store
        .put("3/1", vec![b(b"hello "), b(b"world")])
        .await
        .unwrap();
    assert_eq!(&store.get("3/1", 0..11).await.unwrap()[..], b"hello world");
    assert_eq!(&store.get("3/1", 6..11).await.unwrap()[..], b"world");
    assert_eq!(&store.get("3/1", 4..7).await.unwrap()[..], b"o w");
    assert_eq!(&store.get("3/1", 10..11).await.unwrap()[..], b"d");
    assert_eq!(store.get("3/1", 5..5).await.unwrap().len(), 0);
    // A packed run: many parts, past the writers' single-PUT size, in one `put`.
    let run: Vec<Bytes> = (0..20u8).map(|i| Bytes::from(vec![i; 1 << 20])).collect();
    store.put("3/run", run).await.unwrap();
    assert_eq!(
        store
            .get("3/run", (19 << 20) - 1..(19 << 20) + 1)
            .await
            .unwrap()[..],
        [18, 19]
    );
    // Past the end: never a short read.
    assert!(store.get("3/1", 6..12).await.is_err());
    assert!(store.get("3/1", 11..12).await.is_err());
    assert!(store.get("3/1", 20..30).await.is_err());
}

async fn missing_keys(store: &dyn BlobStore) {
    assert_eq!(kind(store, "4/missing", 0..1).await, ErrorKind::NotFound);
    assert_eq!(kind(store, "4/missing", 0..0).await, ErrorKind::NotFound);
    assert_eq!(kind(store, "no/such/dir", 0..1).await, ErrorKind::NotFound);
}

async fn dropped_writers_leave_nothing(store: &dyn BlobStore) {
    let w = store.create("5/none").await.unwrap();
    drop(w);
    let mut w = store.create("5/half").await.unwrap();
    w.write(vec![b(b"half")]).await.unwrap();
    drop(w);
    // Dropped after it went past the single-PUT size (a multipart upload on object stores).
    let mut w = store.create("5/big").await.unwrap();
    for _ in 0..(PUT_THRESHOLD / (1 << 20) + 2) {
        w.write(vec![Bytes::from(vec![7u8; 1 << 20])])
            .await
            .unwrap();
    }
    drop(w);
    for key in ["5/none", "5/half", "5/big"] {
        assert_eq!(kind(store, key, 0..1).await, ErrorKind::NotFound, "{key}");
    }
}

async fn overwrite(store: &dyn BlobStore) {
    store.put("6/1", vec![b(b"first")]).await.unwrap();
    // A writer to an existing key that is dropped leaves the old object as it was.
    let mut w = store.create("6/1").await.unwrap();
    w.write(vec![b(b"replacement")]).await.unwrap();
    drop(w);
    assert_eq!(&store.get("6/1", 0..5).await.unwrap()[..], b"first");
    // A finished one replaces it whole (shorter, too).
    store.put("6/1", vec![b(b"2nd")]).await.unwrap();
    assert_eq!(&store.get("6/1", 0..3).await.unwrap()[..], b"2nd");
    assert!(store.get("6/1", 0..5).await.is_err());
}

async fn bad_keys(store: &dyn BlobStore) {
    for bad in [
        "", "/abs", "../x", "a/../b", "a//b", "a/./b", "a b", "a/", "a?b", "a%2Fb", "é",
    ] {
        let e = store.put(bad, vec![b(b"x")]).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "put {bad:?}");
        assert!(store.create(bad).await.is_err(), "create {bad:?}");
        assert_eq!(
            kind(store, bad, 0..1).await,
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
    }
}

async fn large_objects(store: &dyn BlobStore) {
    // Past PUT_THRESHOLD, in uneven writes, so that parts and writes do not line up.
    let len = 2 * PART_SIZE + 123_457;
    let data = pattern(len);
    let mut w = store.create("7/large").await.unwrap();
    for chunk in data.chunks(1_000_003) {
        let half = chunk.len() / 2;
        w.write(vec![
            Bytes::copy_from_slice(&chunk[..half]),
            Bytes::copy_from_slice(&chunk[half..]),
        ])
        .await
        .unwrap();
    }
    assert_eq!(kind(store, "7/large", 0..1).await, ErrorKind::NotFound);
    w.finish().await.unwrap();
    let all = store.get("7/large", 0..len as u64).await.unwrap();
    assert!(all[..] == data[..], "whole object");
    let p = PART_SIZE as u64;
    for r in [
        p - 10..p + 10,
        2 * p - 1..2 * p + 1,
        len as u64 - 5..len as u64,
    ] {
        let got = store.get("7/large", r.clone()).await.unwrap();
        assert!(
            got[..] == data[r.start as usize..r.end as usize],
            "range {r:?}"
        );
    }
    assert!(store.get("7/large", 0..len as u64 + 1).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    run(&LocalStore::open(dir.path()).unwrap()).await;
    // Nothing temporary is left behind by the dropped writers.
    let mut stack = vec![dir.path().to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            assert!(!p.to_string_lossy().ends_with(".partial"), "{p:?}");
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_conforms() {
    run(&ObjectBlobStore::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_url_opens() {
    let store = crate::StoreUrl::parse("memory://").unwrap().open().unwrap();
    store.put("1/1", vec![b(b"x")]).await.unwrap();
    assert_eq!(&store.get("1/1", 0..1).await.unwrap()[..], b"x");
}

#[cfg(feature = "s3")]
mod s3 {
    use super::*;
    use crate::object::s3_builder;
    use crate::{S3Options, StoreUrl};
    use std::sync::Arc;

    pub(crate) use crate::s3_test_server::S3sFs;

    fn options(server: &S3sFs, prefix: &str) -> S3Options {
        let StoreUrl::S3(o) = StoreUrl::parse(&format!(
            "s3://{}/{prefix}?endpoint={}&region=us-east-1&allow_http=true&path_style=true",
            server.bucket, server.endpoint
        ))
        .unwrap() else {
            panic!("not s3")
        };
        o
    }

    fn store(server: &S3sFs, o: &S3Options, secret: &str) -> ObjectBlobStore {
        let s3 = s3_builder(o)
            .with_access_key_id(S3sFs::ACCESS_KEY)
            .with_secret_access_key(secret)
            .build()
            .unwrap();
        let _ = server;
        ObjectBlobStore::new(Arc::new(s3), &o.prefix, "s3 test").unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_store_conforms_on_s3s_fs() {
        let server = S3sFs::start();
        // Under a prefix, and at the bucket's root.
        run(&store(
            &server,
            &options(&server, "media/node-1"),
            S3sFs::SECRET_KEY,
        ))
        .await;
        run(&store(&server, &options(&server, ""), S3sFs::SECRET_KEY)).await;
        // The prefix is part of the object's name in the bucket.
        assert!(
            server
                .dir
                .path()
                .join(&server.bucket)
                .join("media/node-1/3/1")
                .is_file()
        );
        assert!(server.dir.path().join(&server.bucket).join("3/1").is_file());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_store_with_a_wrong_secret_is_refused() {
        // The server checks signatures: a wrong secret fails, and is not retried for minutes.
        let server = S3sFs::start();
        let bad = store(&server, &options(&server, ""), "not-the-secret");
        let t = std::time::Instant::now();
        let e = bad.put("1/1", vec![b(b"x")]).await.unwrap_err();
        assert!(t.elapsed() < std::time::Duration::from_secs(20), "{e}");
        assert!(bad.get("1/1", 0..1).await.is_err());
    }
}
