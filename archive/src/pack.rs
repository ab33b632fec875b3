//! Packing (design/0014): fragments move from the shared fragment log into objects that each
//! hold a run of consecutive fragments of one stream (`streams/<stream id>/<first>-<last>`), so
//! the object store sees one PUT per run (about a minute of media) instead of one per fragment,
//! and the log's segments can be deleted once no catalog row points into them.
//!
//! A run is written whole (`put`), then its rows move in one transaction, guarded by their old
//! place (a fragment deleted meanwhile stays deleted). A crash between the two leaves an object
//! no row names, written again under the same key by the next pass. Readers never see a
//! fragment in between: the bytes are in both places until the rows move, and a read that
//! resolved the old place finds it through its segment handle or resolves the row again
//! ([`Archive::fragment_bytes`]).

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use kinescope_api::Timestamp;
use tokio::task::JoinHandle;

use crate::catalog::{FragmentRow, Relocation};
use crate::crash::{Step, crash_point};
use crate::log::parse_segment_key;
use crate::{Archive, ArchiveError, Clock};

/// When a stream's fragments in the log make a run worth an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackPolicy {
    /// A run closes at this much media…
    pub max_duration_ms: u64,
    /// …or this many bytes, whichever comes first.
    pub max_bytes: u64,
    /// A shorter run is packed once its stream's newest fragment is this old (a stream that
    /// stopped), so that no data sits in the log for ever.
    pub max_age_ms: u64,
    /// Rows of one stream's log looked at per pass.
    pub batch: u32,
}

impl Default for PackPolicy {
    fn default() -> Self {
        Self {
            max_duration_ms: 60_000,
            max_bytes: 64 << 20,
            max_age_ms: 60_000,
            batch: 100_000,
        }
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PackReport {
    pub objects: u64,
    pub fragments: u64,
    pub bytes: u64,
    pub segments_removed: u64,
}

impl Archive {
    /// Packs every run that is ready at `now`, then removes the log segments no fragment
    /// points into any more. A run that fails stops the pass (the store is probably down):
    /// runs packed before it stay packed, and the next pass resumes.
    pub async fn pack(
        &self,
        policy: &PackPolicy,
        now: Timestamp,
    ) -> Result<PackReport, ArchiveError> {
        let mut report = PackReport::default();
        // Each pass looks at what each stream's backlog adds up to, and reads the rows only of
        // the streams with a run to pack: reading (and decoding) every row of the log each
        // second stalled ingest once the log held a minute of 900 streams (BENCHMARKS.md,
        // "Devices per machine").
        for backlog in self.catalog().log_backlog().await? {
            let quiet = now.as_millis() - backlog.newest.as_millis() >= policy.max_age_ms as i64;
            if !quiet
                && backlog.duration_ms < policy.max_duration_ms
                && backlog.bytes < policy.max_bytes
            {
                continue;
            }
            let stream = self
                .catalog()
                .fragments_in_log(backlog.stream, policy.batch)
                .await?;
            for run in runs(&stream, policy) {
                if quiet || is_full(run, policy) {
                    self.pack_run(run).await?;
                    report.objects += 1;
                    report.fragments += run.len() as u64;
                    report.bytes += run.iter().map(|r| r.length).sum::<u64>();
                }
            }
        }
        report.segments_removed = self.remove_unused_segments().await?;
        Ok(report)
    }

    /// Writes the run's fragments one after another into its object (memory: one fragment,
    /// plus what the store buffers), then moves their rows.
    async fn pack_run(&self, run: &[FragmentRow]) -> Result<(), ArchiveError> {
        let (first, last) = (&run[0], &run[run.len() - 1]);
        let key = format!(
            "streams/{}/{}-{}",
            first.stream.0, first.number, last.number
        );
        let mut object = self.store().create(&key).await?;
        let mut moves = Vec::with_capacity(run.len());
        let mut offset = 0;
        for row in run {
            object.write(vec![self.fragment_bytes(row).await?]).await?;
            moves.push(Relocation {
                number: row.number.clone(),
                from_key: row.object_key.clone(),
                to_key: key.clone(),
                to_offset: offset,
            });
            offset += row.length;
        }
        object.finish().await?;
        crash_point(Step::PackWritten);
        self.catalog().relocate_fragments(&moves).await?;
        crash_point(Step::PackMoved);
        Ok(())
    }

    async fn remove_unused_segments(&self) -> Result<u64, ArchiveError> {
        // Sealed and unleased first: every row into them is committed by now, so the query
        // after this sees them all.
        let sealed = self.log().sealed_segments()?;
        if sealed.is_empty() {
            return Ok(0);
        }
        let in_use: HashSet<u64> = self
            .catalog()
            .log_keys_in_use()
            .await?
            .iter()
            .filter_map(|k| parse_segment_key(k))
            .collect();
        let mut removed = 0;
        for segment in sealed.into_iter().filter(|s| !in_use.contains(s)) {
            self.log().remove_segment(segment)?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// Splits one stream's fragments (in number order) into runs bounded by the policy; only the
/// last can be short of full.
fn runs<'a>(rows: &'a [FragmentRow], policy: &PackPolicy) -> Vec<&'a [FragmentRow]> {
    let mut out = Vec::new();
    let (mut start, mut duration, mut bytes) = (0, 0, 0);
    for (i, row) in rows.iter().enumerate() {
        if i > start && (duration >= policy.max_duration_ms || bytes >= policy.max_bytes) {
            out.push(&rows[start..i]);
            (start, duration, bytes) = (i, 0, 0);
        }
        duration += row.duration_ms;
        bytes += row.length;
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

fn is_full(run: &[FragmentRow], policy: &PackPolicy) -> bool {
    run.iter().map(|r| r.duration_ms).sum::<u64>() >= policy.max_duration_ms
        || run.iter().map(|r| r.length).sum::<u64>() >= policy.max_bytes
}

/// Packs in the background every `interval`; after a failure (the store unreachable, say)
/// waits with exponential backoff and jitter, up to a minute, and resumes.
pub fn spawn_packer(
    archive: Arc<Archive>,
    clock: Arc<dyn Clock>,
    policy: PackPolicy,
    interval: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            let wait = match archive.pack(&policy, clock.now()).await {
                Ok(report) => {
                    failures = 0;
                    if report.objects > 0 || report.segments_removed > 0 {
                        tracing::debug!(?report, "packed");
                    }
                    interval
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = backoff(failures);
                    tracing::warn!(error = %e, retry_in = ?wait, "packing failed");
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    })
}

/// 0.5 s doubling per failure up to 60 s, each with up to 50 % random jitter so that nodes
/// that failed together do not retry together.
fn backoff(failures: u32) -> Duration {
    let base = Duration::from_millis(500).saturating_mul(1 << failures.min(8).saturating_sub(1));
    let base = base.min(Duration::from_secs(60));
    let jitter = RandomState::new().hash_one(failures) % 1000;
    base + base.mul_f64(jitter as f64 / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::StreamId;
    use crate::testing::{self, archive, upload};
    use bytes::Bytes;
    use kinescope_api::FragmentNumber;

    fn second(i: u64) -> Timestamp {
        Timestamp::from_millis(1_000_000 + 1000 * i as i64)
    }

    fn row(n: u64, duration_ms: u64, length: u64) -> FragmentRow {
        FragmentRow {
            stream: StreamId(1),
            number: FragmentNumber::parse(&format!("{n:020}")).unwrap(),
            producer_timestamp: Timestamp::from_millis(0),
            server_timestamp: Timestamp::from_millis(0),
            duration_ms,
            size: length,
            object_key: "log/00000000000000000001".into(),
            offset: 0,
            length,
            header_id: 1,
            metadata: Vec::new(),
        }
    }

    #[test]
    fn runs_close_at_the_duration_or_size_bound() {
        let policy = PackPolicy {
            max_duration_ms: 3000,
            max_bytes: 100,
            ..PackPolicy::default()
        };
        let rows: Vec<_> = (0..7).map(|n| row(n, 1000, 10)).collect();
        let lens: Vec<_> = runs(&rows, &policy).iter().map(|r| r.len()).collect();
        assert_eq!(lens, [3, 3, 1]);
        assert!(is_full(runs(&rows, &policy)[0], &policy));
        assert!(!is_full(runs(&rows, &policy)[2], &policy));
        let big: Vec<_> = (0..3).map(|n| row(n, 10, 60)).collect();
        let lens: Vec<_> = runs(&big, &policy).iter().map(|r| r.len()).collect();
        assert_eq!(lens, [2, 1], "bytes close a run too");
        assert!(runs(&[], &policy).is_empty());
    }

    #[tokio::test]
    async fn packs_full_and_quiet_runs_then_removes_segments_while_reads_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let (archive, stream, header) = archive(dir.path(), "memory://").await;
        let mut rows = Vec::new();
        for i in 0..5 {
            rows.push(upload(&archive, stream, header, second(i)).await);
        }
        // Restarted: segment 1 is sealed, the rest of the upload goes to segment 2.
        drop(archive);
        let (archive, stream, header) = testing::archive(dir.path(), "memory://").await;
        for i in 5..7 {
            rows.push(upload(&archive, stream, header, second(i)).await);
        }
        let expected: Vec<Bytes> = {
            let mut v = Vec::new();
            for r in &rows {
                v.push(archive.fragment_bytes(r).await.unwrap());
            }
            v
        };
        let policy = PackPolicy {
            max_duration_ms: 3000,
            max_age_ms: 10_000,
            ..PackPolicy::default()
        };
        // Readers keep reading the rows as they were before packing, all through it.
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (archive, rows, expected) = (archive.clone(), rows.clone(), expected.clone());
                tokio::spawn(async move {
                    for _ in 0..50 {
                        for (r, want) in rows.iter().zip(&expected) {
                            assert_eq!(&archive.fragment_bytes(r).await.unwrap(), want);
                        }
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        // At the last fragment's time: two full runs of three; the seventh waits.
        let now = rows[6].server_timestamp;
        let report = archive.pack(&policy, now).await.unwrap();
        assert_eq!((report.objects, report.fragments), (2, 6));
        assert_eq!(
            report.segments_removed, 1,
            "segment 1 held only packed fragments"
        );
        assert!(!dir.path().join("log/00000000000000000001.seg").exists());
        // Ten seconds later the stream is quiet: its last fragment goes too.
        let later = Timestamp::from_millis(now.as_millis() + 10_000);
        let report = archive.pack(&policy, later).await.unwrap();
        assert_eq!((report.objects, report.fragments), (1, 1));
        assert_eq!(
            archive.pack(&policy, later).await.unwrap(),
            PackReport::default()
        );
        for r in readers {
            r.await.unwrap();
        }
        let numbers: Vec<_> = rows.iter().map(|r| r.number.clone()).collect();
        let mut now_rows = archive
            .catalog()
            .fragments_by_number(stream, &numbers)
            .await
            .unwrap();
        now_rows.sort_by(|a, b| a.number.cmp(&b.number));
        let keys: Vec<_> = now_rows.iter().map(|r| r.object_key.as_str()).collect();
        let first = format!("streams/{}/{}-{}", stream.0, numbers[0], numbers[2]);
        assert_eq!(keys[..3], [first.as_str(); 3]);
        assert!(keys.iter().all(|k| k.starts_with("streams/")), "{keys:?}");
        assert_eq!(
            now_rows[1].offset, rows[0].length,
            "consecutive in the object"
        );
        for (r, want) in now_rows.iter().zip(&expected) {
            assert_eq!(&archive.fragment_bytes(r).await.unwrap(), want);
        }
    }

    #[test]
    fn backoff_grows_to_a_minute_with_jitter() {
        assert!(
            backoff(1) >= Duration::from_millis(500) && backoff(1) < Duration::from_millis(750)
        );
        assert!(backoff(3) >= Duration::from_secs(2));
        assert!(backoff(30) >= Duration::from_secs(60) && backoff(30) <= Duration::from_secs(90));
    }
}
