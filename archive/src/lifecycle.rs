//! Lifecycle (issue 12): retention enforced and deleted streams' storage freed. Rows go first,
//! so readers stop seeing a fragment before its bytes go; an object goes once no row points
//! into it (a packed object holds up to a minute of one stream: it goes with its last
//! fragment). Log segments are not touched here: packing removes a sealed segment once no row
//! points into it, which deleting rows brings about.
//!
//! A reader that resolved a row before it was deleted and reads its object after gets
//! `NotFound` from the store: GetMedia and GetMediaForFragmentList then end the response with
//! an error (never a truncated fragment presented as whole); HLS/DASH answer 404 for a
//! fragment whose row is gone.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kinescope_api::{StreamArn, Timestamp, Version};

use crate::catalog::StreamId;
use crate::crash::{Step, crash_point};
use crate::log::parse_segment_key;
use crate::{Archive, ArchiveError, Clock};

/// Rows deleted per statement: a pass never holds the catalog for long.
pub const EXPIRE_BATCH: u32 = 250;

/// What one retention pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    pub fragments: u64,
    pub objects: u64,
}

/// What one storage-budget pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BudgetReport {
    /// Fragment bytes stored after the pass.
    pub stored: u64,
    pub fragments: u64,
    pub objects: u64,
}

/// The most rows the storage budget deletes per statement.
const BUDGET_BATCH: u32 = EXPIRE_BATCH;

/// After a batch of deletions, waits as long as the batch took: a backlog (a first start, a
/// retention DECREASE) is deleted at most half the time, and ingest gets the catalog and the
/// disk the other half (BENCHMARKS.md, "Lifecycle").
async fn give_way(batch_started: Instant) {
    tokio::time::sleep(batch_started.elapsed()).await;
}

impl Archive {
    /// Deletes every fragment older than its stream's retention (by server timestamp) at `now`,
    /// then the objects no fragment points into any more. Streams that keep no data have none.
    pub async fn enforce_retention(&self, now: Timestamp) -> Result<RetentionReport, ArchiveError> {
        let mut report = RetentionReport::default();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .catalog()
                .list_streams(None, after.as_deref(), 1000)
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.info.stream_name.as_str().to_owned());
            for s in &page {
                let hours = i64::from(s.info.data_retention_in_hours);
                if hours == 0 {
                    continue;
                }
                let before = Timestamp::from_millis(now.as_millis() - hours * 3_600_000);
                loop {
                    let started = Instant::now();
                    let keys = self
                        .catalog()
                        .expire_fragments(s.id, before, EXPIRE_BATCH)
                        .await?;
                    if keys.is_empty() {
                        break;
                    }
                    crash_point(Step::ExpireRows);
                    report.fragments += keys.len() as u64;
                    report.objects += self.delete_unused_objects(keys).await?;
                    give_way(started).await;
                }
            }
        }
        Ok(report)
    }

    /// Deletes the oldest fragments of all streams while their bytes exceed `max_bytes`
    /// (`--max-storage`), then the objects no fragment points into any more.
    pub async fn enforce_budget(&self, max_bytes: u64) -> Result<BudgetReport, ArchiveError> {
        let mut report = BudgetReport {
            stored: self.catalog().stored_bytes().await?,
            ..BudgetReport::default()
        };
        // One row first, then as many as the excess needs at the average size seen so far: it
        // overshoots by about one fragment, not by a batch.
        let (mut batch, mut freed) = (1u64, 0u64);
        while report.stored > max_bytes {
            let started = Instant::now();
            let gone = self
                .catalog()
                .expire_oldest(batch.min(u64::from(BUDGET_BATCH)) as u32)
                .await?;
            if gone.is_empty() {
                break;
            }
            crash_point(Step::ExpireRows);
            report.fragments += gone.len() as u64;
            let bytes: u64 = gone.iter().map(|(_, n)| n).sum();
            freed += bytes;
            report.stored = report.stored.saturating_sub(bytes);
            let average = (freed / report.fragments).max(1);
            batch = (report.stored.saturating_sub(max_bytes))
                .div_ceil(average)
                .max(1);
            let keys = gone.into_iter().map(|(k, _)| k).collect();
            report.objects += self.delete_unused_objects(keys).await?;
            give_way(started).await;
        }
        Ok(report)
    }

    /// Deletes a stream: at once as far as clients see (gone from Describe and List, its name
    /// free, no new fragment accepted), then its fragments and objects in the background
    /// ([`Archive::purge_deleted_streams`], also run by every lifecycle pass, so a crash
    /// midway is finished after the restart). A stream created again under the same name has
    /// a new id, so new keys.
    pub async fn delete_stream(
        self: &Arc<Self>,
        arn: &StreamArn,
        expected: Option<&Version>,
    ) -> Result<(), ArchiveError> {
        self.catalog().delete_stream(arn, expected).await?;
        crash_point(Step::DeleteStreamMarked);
        let archive = self.clone();
        tokio::spawn(async move {
            if let Err(e) = archive.purge_deleted_streams().await {
                tracing::warn!(error = %e, "purging a deleted stream failed; the next lifecycle pass retries");
            }
        });
        Ok(())
    }

    /// Deletes what is left of deleted streams: their fragments a batch at a time (as
    /// retention does, giving way to ingest), their objects, then their rows. How many
    /// fragments.
    pub async fn purge_deleted_streams(&self) -> Result<u64, ArchiveError> {
        let mut fragments = 0;
        for id in self.catalog().deleted_streams().await? {
            loop {
                let started = Instant::now();
                let keys = self
                    .catalog()
                    .expire_fragments(id, Timestamp::from_millis(i64::MAX), EXPIRE_BATCH)
                    .await?;
                if keys.is_empty() {
                    break;
                }
                fragments += keys.len() as u64;
                self.delete_unused_objects(keys).await?;
                give_way(started).await;
            }
            let objects = self.free_stream(id).await?;
            self.catalog().remove_stream(id).await?;
            tracing::info!(stream = id.0, fragments, objects, "deleted stream purged");
        }
        Ok(fragments)
    }

    /// Deletes the objects left under a deleted stream's prefixes (by a crash, or packed
    /// meanwhile): packed runs under `streams/<id>/`, and objects of the one-file-per-fragment
    /// layout under `<id>/`.
    async fn free_stream(&self, id: StreamId) -> Result<u64, ArchiveError> {
        let mut deleted = 0;
        for prefix in [format!("streams/{}/", id.0), format!("{}/", id.0)] {
            for object in self.store().list(&prefix).await? {
                self.store().delete(&object.key).await?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Deletes the objects no fragment points into that were written more than `grace_ms`
    /// before `now`: what a crash between an object's write and its rows' commit, or between
    /// rows' deletion and their objects', leaves behind. The grace period covers an object
    /// whose rows are being committed right now (packing, `--persist-to-store`). How many.
    pub async fn sweep_orphans(&self, now: Timestamp, grace_ms: i64) -> Result<u64, ArchiveError> {
        let old: Vec<String> = self
            .store()
            .list("")
            .await?
            .into_iter()
            .filter(|o| now.as_millis() - o.modified_ms >= grace_ms)
            .map(|o| o.key)
            .collect();
        self.delete_unused_objects(old).await
    }

    /// Deletes those of `keys` (objects some deleted rows pointed into) that no row points
    /// into any more; how many.
    async fn delete_unused_objects(&self, mut keys: Vec<String>) -> Result<u64, ArchiveError> {
        keys.retain(|k| parse_segment_key(k).is_none());
        keys.sort_unstable();
        keys.dedup();
        if keys.is_empty() {
            return Ok(0);
        }
        let used: HashSet<String> = self
            .catalog()
            .keys_in_use(&keys)
            .await?
            .into_iter()
            .collect();
        let mut deleted = 0;
        for key in keys.iter().filter(|k| !used.contains(*k)) {
            self.store().delete(key).await?;
            deleted += 1;
        }
        Ok(deleted)
    }
}

/// When the lifecycle task runs and what it keeps.
#[derive(Debug, Clone)]
pub struct LifecyclePolicy {
    /// Between retention (and storage budget) passes.
    pub interval: Duration,
    /// `--max-storage`: fragment bytes kept across all streams.
    pub max_bytes: Option<u64>,
    /// An object no fragment points into is deleted once it is this old; orphans are swept
    /// at start and then once per this period.
    pub orphan_grace: Duration,
}

/// Sweeps orphans (at start, then every `orphan_grace`), and purges deleted streams, enforces
/// retention, then the storage budget, every `interval`; a failed pass is logged and the next one retries.
/// Metrics: `kinescope_fragments_deleted_total` by reason, `kinescope_stored_bytes`,
/// `kinescope_orphans_deleted_total`.
pub fn spawn_lifecycle(archive: Arc<Archive>, clock: Arc<dyn Clock>, policy: LifecyclePolicy) {
    {
        let (archive, clock) = (archive.clone(), clock.clone());
        let grace = policy.orphan_grace;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(grace.max(Duration::from_secs(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match archive
                    .sweep_orphans(clock.now(), grace.as_millis() as i64)
                    .await
                {
                    Ok(n) => {
                        metrics::counter!("kinescope_orphans_deleted_total").increment(n);
                        if n > 0 {
                            tracing::info!(objects = n, "orphan objects deleted");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "orphan sweep failed"),
                }
            }
        });
    }
    tokio::spawn(async move {
        let max_bytes = policy.max_bytes;
        let mut tick = tokio::time::interval(policy.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match archive.purge_deleted_streams().await {
                Ok(n) => {
                    metrics::counter!("kinescope_fragments_deleted_total", "reason" => "stream_deleted")
                        .increment(n);
                }
                Err(e) => tracing::warn!(error = %e, "purging deleted streams failed"),
            }
            match archive.enforce_retention(clock.now()).await {
                Ok(r) => {
                    metrics::counter!("kinescope_fragments_deleted_total", "reason" => "retention")
                        .increment(r.fragments);
                    if r.fragments > 0 {
                        tracing::info!(fragments = r.fragments, objects = r.objects, "retention");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "retention pass failed"),
            }
            let budget = match max_bytes {
                Some(max) => archive.enforce_budget(max).await,
                None => archive
                    .catalog()
                    .stored_bytes()
                    .await
                    .map(|stored| BudgetReport {
                        stored,
                        ..BudgetReport::default()
                    })
                    .map_err(ArchiveError::from),
            };
            match budget {
                Ok(r) => {
                    metrics::counter!("kinescope_fragments_deleted_total", "reason" => "max_storage")
                        .increment(r.fragments);
                    metrics::gauge!("kinescope_stored_bytes").set(r.stored as f64);
                    if r.fragments > 0 {
                        tracing::info!(
                            fragments = r.fragments,
                            objects = r.objects,
                            stored = r.stored,
                            "storage budget"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "storage budget pass failed"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PackPolicy;
    use crate::testing::{self, archive, upload};

    const MINUTE: i64 = 60_000;

    fn dir_size(dir: &std::path::Path) -> u64 {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .map(|e| e.unwrap())
                .map(|e| {
                    if e.file_type().unwrap().is_dir() {
                        dir_size(&e.path())
                    } else {
                        e.metadata().unwrap().len()
                    }
                })
                .sum()
        })
    }

    #[tokio::test]
    async fn retention_deletes_rows_then_unused_objects_and_a_decrease_applies_next_pass() {
        let dir = tempfile::tempdir().unwrap();
        let media = dir.path().join("media");
        let url = format!("file://{}", media.display());
        let (archive, stream, header) = archive(dir.path(), &url).await;
        let t0 = 1_800_000_000_000;
        // Six fragments 20 minutes apart, each packed into an object of its own.
        let mut rows = Vec::new();
        for i in 0..6 {
            let t = Timestamp::from_millis(t0 + 20 * MINUTE * i);
            rows.push(upload(&archive, stream, header, t).await);
        }
        let now = Timestamp::from_millis(t0 + 110 * MINUTE);
        let policy = PackPolicy {
            max_duration_ms: 1000,
            ..PackPolicy::default()
        };
        assert_eq!(archive.pack(&policy, now).await.unwrap().objects, 6);
        let full = dir_size(&media);
        // Retention 2 hours (INCREASE by 1 from the stream's 1): everything is younger.
        let r = testing::stream_ref();
        let v = |s: &str| Version::parse(s).unwrap();
        archive
            .catalog()
            .change_retention(&r, &v("v1"), &v("v2"), 1)
            .await
            .unwrap();
        assert_eq!(
            archive.enforce_retention(now).await.unwrap(),
            RetentionReport::default()
        );
        // DECREASE to 1 hour: the next pass deletes what is older than 50 minutes.
        archive
            .catalog()
            .change_retention(&r, &v("v2"), &v("v3"), -1)
            .await
            .unwrap();
        let report = archive.enforce_retention(now).await.unwrap();
        assert_eq!(
            report,
            RetentionReport {
                fragments: 3,
                objects: 3
            }
        );
        let left = archive
            .catalog()
            .fragments_after(stream, None, 100, false)
            .await
            .unwrap();
        assert_eq!(left.len(), 3);
        assert!(
            left.iter()
                .all(|r| r.server_timestamp.as_millis() >= t0 + 60 * MINUTE)
        );
        for (old, new) in rows[3..].iter().zip(&left) {
            assert_eq!(
                archive.fragment_bytes(old).await.unwrap(),
                archive.fragment_bytes(new).await.unwrap(),
                "newer fragments intact"
            );
        }
        assert_eq!(archive.store().list("").await.unwrap().len(), 3);
        let after = dir_size(&media);
        assert!(after * 2 <= full + 100, "{after} of {full} bytes left");
        // Idempotent.
        assert_eq!(
            archive.enforce_retention(now).await.unwrap(),
            RetentionReport::default()
        );
    }

    #[tokio::test]
    async fn a_packed_object_goes_with_its_last_fragment() {
        let dir = tempfile::tempdir().unwrap();
        let (archive, stream, header) = archive(dir.path(), "memory://").await;
        let t0 = 1_800_000_000_000;
        for i in 0..4 {
            upload(
                &archive,
                stream,
                header,
                Timestamp::from_millis(t0 + 1000 * i),
            )
            .await;
        }
        let quiet = Timestamp::from_millis(t0 + 10 * MINUTE);
        assert_eq!(
            archive
                .pack(&PackPolicy::default(), quiet)
                .await
                .unwrap()
                .objects,
            1
        );
        // Half of the run is past retention: the rows go, the object stays for the rest.
        let report = archive
            .enforce_retention(Timestamp::from_millis(t0 + 60 * MINUTE + 1500))
            .await
            .unwrap();
        assert_eq!(
            report,
            RetentionReport {
                fragments: 2,
                objects: 0
            }
        );
        assert_eq!(archive.store().list("").await.unwrap().len(), 1);
        let report = archive
            .enforce_retention(Timestamp::from_millis(t0 + 2 * 60 * MINUTE))
            .await
            .unwrap();
        assert_eq!(
            report,
            RetentionReport {
                fragments: 2,
                objects: 1
            }
        );
        assert!(archive.store().list("").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_storage_budget_deletes_the_oldest_first_across_streams() {
        let dir = tempfile::tempdir().unwrap();
        let (archive, stream, header) = archive(dir.path(), "memory://").await;
        let other = archive
            .catalog()
            .create_stream(
                &crate::conformance::info("other", 2),
                kinescope_api::control::StorageTier::Hot,
                &Default::default(),
            )
            .await
            .unwrap()
            .id;
        let other_header = archive
            .catalog()
            .add_track_header(other, b"h")
            .await
            .unwrap();
        let t0 = 1_800_000_000_000;
        let mut rows = Vec::new();
        for i in 0..10 {
            let (s, h) = if i % 2 == 0 {
                (stream, header)
            } else {
                (other, other_header)
            };
            rows.push(upload(&archive, s, h, Timestamp::from_millis(t0 + 1000 * i)).await);
        }
        let total: u64 = rows.iter().map(|r| r.length).sum();
        let newest4: u64 = rows[6..].iter().map(|r| r.length).sum();
        let report = archive.enforce_budget(newest4).await.unwrap();
        assert_eq!(report.fragments, 6);
        assert_eq!(report.stored, newest4);
        assert!(report.stored <= newest4 && total > newest4);
        for (i, r) in rows.iter().enumerate() {
            let there = !archive
                .catalog()
                .fragments_by_number(r.stream, std::slice::from_ref(&r.number))
                .await
                .unwrap()
                .is_empty();
            assert_eq!(there, i >= 6, "fragment {i}");
        }
        assert_eq!(archive.enforce_budget(newest4).await.unwrap().fragments, 0);
    }

    #[tokio::test]
    async fn deleting_a_stream_frees_its_objects_and_log() {
        let dir = tempfile::tempdir().unwrap();
        let (archive, stream, header) = archive(dir.path(), "memory://").await;
        let t0 = 1_800_000_000_000;
        for i in 0..3 {
            upload(
                &archive,
                stream,
                header,
                Timestamp::from_millis(t0 + 1000 * i),
            )
            .await;
        }
        let quiet = Timestamp::from_millis(t0 + 10 * MINUTE);
        archive.pack(&PackPolicy::default(), quiet).await.unwrap();
        // One fragment more, still in the log.
        upload(&archive, stream, header, quiet).await;
        let arn = archive
            .catalog()
            .stream(&testing::stream_ref())
            .await
            .unwrap()
            .info
            .stream_arn;
        archive.delete_stream(&arn, None).await.unwrap();
        // Gone at once: no lookup finds it, no fragment is added to it.
        assert!(
            archive
                .catalog()
                .stream(&testing::stream_ref())
                .await
                .is_err()
        );
        assert!(
            archive
                .catalog()
                .list_streams(None, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            testing::try_upload(&archive, stream, header, quiet).await,
            Err(ArchiveError::Catalog(crate::CatalogError::StreamNotFound(
                _
            )))
        ));
        // The same name again, before the purge: a new stream, empty, on keys of its own.
        let again = archive
            .catalog()
            .create_stream(
                &crate::conformance::info("packed", 2),
                kinescope_api::control::StorageTier::Hot,
                &Default::default(),
            )
            .await
            .unwrap()
            .id;
        assert_ne!(again, stream);
        assert!(
            archive
                .catalog()
                .fragments_after(again, None, 10, false)
                .await
                .unwrap()
                .is_empty()
        );
        // Purged in the background; purging again (here, racing it) is harmless.
        archive.purge_deleted_streams().await.unwrap();
        assert!(
            archive
                .catalog()
                .deleted_streams()
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            archive
                .catalog()
                .fragments_after(stream, None, 10, false)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            archive
                .catalog()
                .log_keys_in_use()
                .await
                .unwrap()
                .is_empty()
        );
        assert!(archive.store().list("").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_sweep_deletes_only_unreferenced_objects_past_the_grace_period() {
        let dir = tempfile::tempdir().unwrap();
        let (archive, stream, header) = archive(dir.path(), "memory://").await;
        let t0 = 1_800_000_000_000;
        upload(&archive, stream, header, Timestamp::from_millis(t0)).await;
        let quiet = PackPolicy {
            max_age_ms: 0,
            ..PackPolicy::default()
        };
        let now = Timestamp::from_millis(t0);
        assert_eq!(archive.pack(&quiet, now).await.unwrap().objects, 1);
        archive
            .store()
            .put(
                "streams/999/1-1",
                vec![bytes::Bytes::from_static(b"orphan")],
            )
            .await
            .unwrap();
        let wall = archive.store().list("streams/999/").await.unwrap()[0].modified_ms;
        let sweep = |ms| archive.sweep_orphans(Timestamp::from_millis(ms), 60_000);
        assert_eq!(
            sweep(wall + 59_000).await.unwrap(),
            0,
            "within the grace period"
        );
        assert_eq!(sweep(wall + 61_000).await.unwrap(), 1);
        let left = archive.store().list("").await.unwrap();
        assert_eq!(left.len(), 1);
        assert!(left[0].key.starts_with(&format!("streams/{}/", stream.0)));
        assert_eq!(sweep(wall + 61_000).await.unwrap(), 0);
    }
}
