//! Fault injection (issue 12, design/0015 "Crash consistency"): a store that fails at a chosen
//! step, and a scenario that runs through every step of a fragment's commit, packing,
//! retention and DeleteStream with the store failing at each in turn — once (a hiccup), or
//! from then on and followed by a restart (an outage, or a crash at that point). After the
//! restart and one round of the background passes, `fsck` must find nothing wrong: no
//! acknowledged fragment lost or changed, no row pointing at missing bytes, no orphan object.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use kinescope_api::control::StorageTier;
use kinescope_api::{FragmentNumber, StreamRef, Timestamp};

use crate::testing::{archive_on, bytes_at, stream_ref, try_upload};
use crate::{BlobStore, BlobWriter, Durability, LocalStore, ObjectInfo, PackPolicy, fsck};

/// Which mutating steps (create, write, finish, delete) fail, counted from 0 across the store
/// and its writers.
#[derive(Debug)]
struct Faults {
    steps: AtomicU64,
    fail_at: u64,
    /// Every step after `fail_at` fails too.
    sticky: bool,
}

impl Faults {
    fn step(&self, what: &str, key: &str) -> std::io::Result<()> {
        let n = self.steps.fetch_add(1, Ordering::Relaxed);
        if n == self.fail_at || (self.sticky && n > self.fail_at) {
            return Err(std::io::Error::other(format!(
                "injected failure at step {n}: {what} {key}"
            )));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct FaultyStore {
    inner: Arc<dyn BlobStore>,
    faults: Arc<Faults>,
}

#[derive(Debug)]
struct FaultyWriter {
    inner: Box<dyn BlobWriter>,
    key: String,
    faults: Arc<Faults>,
}

#[async_trait]
impl BlobStore for FaultyStore {
    async fn create(&self, key: &str) -> std::io::Result<Box<dyn BlobWriter>> {
        self.faults.step("create", key)?;
        Ok(Box::new(FaultyWriter {
            inner: self.inner.create(key).await?,
            key: key.to_owned(),
            faults: self.faults.clone(),
        }))
    }

    async fn get(&self, key: &str, range: Range<u64>) -> std::io::Result<Bytes> {
        self.inner.get(key, range).await
    }

    async fn delete(&self, key: &str) -> std::io::Result<()> {
        self.faults.step("delete", key)?;
        self.inner.delete(key).await
    }

    async fn list(&self, prefix: &str) -> std::io::Result<Vec<ObjectInfo>> {
        self.inner.list(prefix).await
    }
}

#[async_trait]
impl BlobWriter for FaultyWriter {
    async fn write(&mut self, parts: Vec<Bytes>) -> std::io::Result<()> {
        self.faults.step("write", &self.key)?;
        self.inner.write(parts).await
    }

    async fn finish(self: Box<Self>) -> std::io::Result<()> {
        self.faults.step("finish", &self.key)?;
        self.inner.finish().await
    }
}

const T0: i64 = 1_800_000_000_000;
const HOUR: i64 = 3_600_000;

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn policy() -> PackPolicy {
    PackPolicy {
        max_duration_ms: 2000,
        ..PackPolicy::default()
    }
}

/// Fragments whose upload returned Ok, by number, with when they were received.
type Acked = Vec<(FragmentNumber, Timestamp)>;

/// Everything the lifecycle does to a store, each step's error ignored as the server's
/// background tasks would (they log it and retry later): uploads (4 that will expire, then 3
/// that will not), packing, a second stream created, packed and deleted, retention.
async fn scenario(dir: &Path, store: Arc<dyn BlobStore>, durability: Durability) -> Acked {
    let (archive, stream, header) = archive_on(dir, store, durability).await;
    let mut acked = Vec::new();
    let mut upload = async |t: i64| {
        if let Ok(row) = try_upload(&archive, stream, header, at(t)).await {
            acked.push((row.number, at(t)));
        }
    };
    for i in 0..4 {
        upload(T0 + 1000 * i).await;
    }
    let _ = archive.pack(&policy(), at(T0 + 60_000)).await;
    for i in 0..3 {
        upload(T0 + 2 * HOUR + 1000 * i).await;
    }
    let other = archive
        .catalog()
        .create_stream(
            &crate::conformance::info("other", 2),
            StorageTier::Hot,
            &Default::default(),
        )
        .await
        .unwrap();
    let other_header = archive
        .catalog()
        .add_track_header(other.id, b"h")
        .await
        .unwrap();
    for i in 0..2 {
        let _ = try_upload(
            &archive,
            other.id,
            other_header,
            at(T0 + 2 * HOUR + 1000 * i),
        )
        .await;
    }
    let _ = archive.pack(&policy(), at(T0 + 3 * HOUR)).await;
    archive
        .catalog()
        .delete_stream(&other.info.stream_arn, None)
        .await
        .unwrap();
    let _ = archive.purge_deleted_streams().await;
    let _ = archive.enforce_retention(at(T0 + 3 * HOUR)).await;
    acked
}

/// After a restart on the healthy store: one round of the background passes, then `fsck`.
/// Every acknowledged fragment younger than retention is listed with its bytes; nothing else
/// is listed; nothing is missing or orphaned.
async fn check_after_restart(dir: &Path, store: Arc<dyn BlobStore>, acked: &Acked, case: &str) {
    let (archive, stream, _) = archive_on(dir, store, Durability::Log).await;
    let later = at(T0 + 4 * HOUR);
    archive.pack(&policy(), later).await.unwrap();
    archive.purge_deleted_streams().await.unwrap();
    archive.enforce_retention(at(T0 + 3 * HOUR)).await.unwrap();
    // The scenario's clock is ahead of the files' times: every unreferenced object is old.
    archive.sweep_orphans(later, 0).await.unwrap();
    let report = fsck(
        archive.catalog().as_ref(),
        archive.store().as_ref(),
        &dir.join("log"),
        later,
        0,
        false,
    )
    .await
    .unwrap();
    assert!(!report.has_problems(), "{case}: {report:?}");
    assert_eq!(report.orphans.len(), 0, "{case}: {report:?}");
    let rows = archive
        .catalog()
        .fragments_after(stream, None, 100, false)
        .await
        .unwrap();
    let kept: Vec<_> = acked
        .iter()
        .filter(|(_, t)| t.as_millis() >= T0 + 2 * HOUR)
        .collect();
    assert_eq!(
        rows.iter().map(|r| &r.number).collect::<Vec<_>>(),
        kept.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "{case}: exactly the acknowledged fragments within retention"
    );
    for (row, (_, t)) in rows.iter().zip(&kept) {
        assert_eq!(
            archive.fragment_bytes(row).await.unwrap(),
            bytes_at(*t),
            "{case}: {row:?}"
        );
    }
    assert!(
        archive.catalog().stream(&stream_ref()).await.is_ok(),
        "{case}"
    );
    assert!(
        archive
            .catalog()
            .stream(&StreamRef::Name(crate::conformance::name("other")))
            .await
            .is_err(),
        "{case}"
    );
    assert!(
        archive
            .catalog()
            .deleted_streams()
            .await
            .unwrap()
            .is_empty(),
        "{case}"
    );
}

/// Runs the scenario with the store failing at each step in turn, for both durabilities.
async fn every_step(durability: Durability) {
    // A run without failures counts the steps.
    let healthy = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults {
        steps: AtomicU64::new(0),
        fail_at: u64::MAX,
        sticky: false,
    });
    let store: Arc<dyn BlobStore> =
        Arc::new(LocalStore::open(healthy.path().join("media")).unwrap());
    let acked = scenario(
        healthy.path(),
        Arc::new(FaultyStore {
            inner: store.clone(),
            faults: faults.clone(),
        }),
        durability,
    )
    .await;
    assert_eq!(acked.len(), 7);
    check_after_restart(healthy.path(), store, &acked, "no failure").await;
    let steps = faults.steps.load(Ordering::Relaxed);
    assert!(steps >= 20, "{steps} steps");
    for fail_at in 0..steps {
        for sticky in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<dyn BlobStore> =
                Arc::new(LocalStore::open(dir.path().join("media")).unwrap());
            let faulty = Arc::new(FaultyStore {
                inner: store.clone(),
                faults: Arc::new(Faults {
                    steps: AtomicU64::new(0),
                    fail_at,
                    sticky,
                }),
            });
            let acked = scenario(dir.path(), faulty, durability).await;
            let case =
                format!("{durability:?}, failing at step {fail_at} of {steps}, sticky {sticky}");
            check_after_restart(dir.path(), store, &acked, &case).await;
        }
    }
}

#[tokio::test]
async fn every_store_step_failing_with_the_log() {
    every_step(Durability::Log).await;
}

#[tokio::test]
async fn every_store_step_failing_with_persist_to_store() {
    every_step(Durability::Store).await;
}
