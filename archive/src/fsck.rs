//! `kinescope fsck` (issue 12, design/0015): checks that the catalog and the stored bytes
//! agree — every fragment's bytes exist in full (in a log segment or an object), every object
//! is pointed into by some fragment, fragment numbers follow server time within each stream,
//! and every fragment's track header belongs to its stream. With `repair`, objects no fragment
//! points into, older than a grace period, are deleted; nothing else is changed.
//!
//! Safe while the server runs: it only reads, except `repair`'s deletions of old orphans (the
//! grace period covers an object packed but whose rows have not moved yet). A fragment that
//! looks missing is looked up again before it is reported, since packing or retention may have
//! moved or deleted it meanwhile. The log is read as files, never opened as a log (that would
//! start a segment and cut tails under the running server).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use kinescope_api::{FragmentNumber, Timestamp};

use crate::catalog::{FragmentRow, StreamId};
use crate::log::parse_segment_key;
use crate::{ArchiveError, BlobStore, Catalog};

/// What [`fsck`] found (and, with `repair`, did).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FsckReport {
    pub streams: u64,
    pub fragments: u64,
    pub objects: u64,
    /// Fragments whose bytes are missing or short: `stream/number → object key`.
    pub missing: Vec<String>,
    /// Fragments whose track header is not one of their stream's.
    pub bad_headers: Vec<String>,
    /// Fragments whose server timestamp is before that of the fragment numbered before them.
    pub out_of_order: Vec<String>,
    /// Objects no fragment points into, older than the grace period.
    pub orphans: Vec<String>,
    /// Of those, deleted (`repair`).
    pub orphans_removed: u64,
    /// Objects no fragment points into yet, within the grace period (left alone).
    pub recent_unreferenced: u64,
}

impl FsckReport {
    /// Whether anything is wrong that was not repaired.
    pub fn has_problems(&self) -> bool {
        !self.missing.is_empty()
            || !self.bad_headers.is_empty()
            || !self.out_of_order.is_empty()
            || self.orphans.len() as u64 > self.orphans_removed
    }
}

/// Checks `catalog` against `store` and the log segments in `log_dir`, at `now`; with
/// `repair`, deletes orphan objects written more than `grace_ms` before `now`.
pub async fn fsck(
    catalog: &dyn Catalog,
    store: &dyn BlobStore,
    log_dir: &Path,
    now: Timestamp,
    grace_ms: i64,
    repair: bool,
) -> Result<FsckReport, ArchiveError> {
    let mut report = FsckReport::default();
    let objects: HashMap<String, (u64, i64)> = store
        .list("")
        .await?
        .into_iter()
        .map(|o| (o.key, (o.size, o.modified_ms)))
        .collect();
    report.objects = objects.len() as u64;
    let mut referenced = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = catalog.list_streams(None, after.as_deref(), 1000).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.info.stream_name.as_str().to_owned());
        for s in &page {
            report.streams += 1;
            check_stream(
                catalog,
                store,
                log_dir,
                &objects,
                s.id,
                &mut referenced,
                &mut report,
            )
            .await?;
        }
    }
    // A deleted stream's fragments are not checked, but their objects are still theirs until
    // the purge deletes them: not orphans.
    for stream in catalog.deleted_streams().await? {
        let mut after = None;
        loop {
            let page = next_page(catalog, stream, &mut after).await?;
            if page.is_empty() {
                break;
            }
            referenced.extend(page.into_iter().map(|r| r.object_key));
        }
    }
    for (key, (_, modified_ms)) in &objects {
        if referenced.contains(key) {
            continue;
        }
        if now.as_millis() - modified_ms < grace_ms {
            report.recent_unreferenced += 1;
            continue;
        }
        report.orphans.push(key.clone());
        if repair {
            store.delete(key).await?;
            report.orphans_removed += 1;
        }
    }
    report.orphans.sort();
    Ok(report)
}

async fn check_stream(
    catalog: &dyn Catalog,
    store: &dyn BlobStore,
    log_dir: &Path,
    objects: &HashMap<String, (u64, i64)>,
    stream: StreamId,
    referenced: &mut HashSet<String>,
    report: &mut FsckReport,
) -> Result<(), ArchiveError> {
    let mut headers: HashMap<i64, bool> = HashMap::new();
    let mut previous: Option<FragmentRow> = None;
    let mut after = None;
    loop {
        let page = next_page(catalog, stream, &mut after).await?;
        if page.is_empty() {
            break;
        }
        for row in page {
            report.fragments += 1;
            let name = format!("{}/{}", stream.0, row.number);
            let belongs = match headers.get(&row.header_id) {
                Some(b) => *b,
                None => {
                    let b = catalog.track_header(stream, row.header_id).await?.is_some();
                    headers.insert(row.header_id, b);
                    b
                }
            };
            if !belongs {
                report.bad_headers.push(name.clone());
            }
            if let Some(p) = &previous
                && row.server_timestamp < p.server_timestamp
            {
                report.out_of_order.push(name.clone());
            }
            referenced.insert(row.object_key.clone());
            if !stored_in_full(&row, objects, log_dir)
                && !still_fine(catalog, store, log_dir, &row, referenced).await?
            {
                report.missing.push(format!("{name} → {}", row.object_key));
            }
            previous = Some(row);
        }
    }
    Ok(())
}

/// The stream's next 1,000 fragments after `after` (in number order), which moves past them.
async fn next_page(
    catalog: &dyn Catalog,
    stream: StreamId,
    after: &mut Option<FragmentNumber>,
) -> Result<Vec<FragmentRow>, ArchiveError> {
    let page = catalog
        .fragments_after(stream, after.as_ref(), 1000, false)
        .await?;
    if let Some(last) = page.last() {
        *after = Some(last.number.clone());
    }
    Ok(page)
}

/// Whether the listing (or the log segment's length) covers the fragment's bytes.
fn stored_in_full(
    row: &FragmentRow,
    objects: &HashMap<String, (u64, i64)>,
    log_dir: &Path,
) -> bool {
    let end = row.offset + row.length;
    match parse_segment_key(&row.object_key) {
        Some(segment) => std::fs::metadata(log_dir.join(format!("{segment:020}.seg")))
            .is_ok_and(|m| m.len() >= end),
        None => objects
            .get(&row.object_key)
            .is_some_and(|(size, _)| *size >= end),
    }
}

/// A fragment that looked missing: looked up again (packing or retention may have moved or
/// deleted it since the listing), and its last byte read from where it is now.
async fn still_fine(
    catalog: &dyn Catalog,
    store: &dyn BlobStore,
    log_dir: &Path,
    row: &FragmentRow,
    referenced: &mut HashSet<String>,
) -> Result<bool, ArchiveError> {
    let now = catalog
        .fragments_by_number(row.stream, std::slice::from_ref(&row.number))
        .await?;
    let Some(now) = now.into_iter().next() else {
        return Ok(true); // deleted meanwhile: nothing to miss
    };
    referenced.insert(now.object_key.clone());
    let end = now.offset + now.length;
    if parse_segment_key(&now.object_key).is_some() {
        return Ok(stored_in_full(&now, &HashMap::new(), log_dir));
    }
    if now.length == 0 {
        return Ok(store.get(&now.object_key, 0..0).await.is_ok());
    }
    Ok(store.get(&now.object_key, end - 1..end).await.is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PackPolicy;
    use crate::testing::{archive, upload};
    use bytes::Bytes;

    #[tokio::test]
    async fn finds_missing_bytes_and_orphans_and_repairs_only_old_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("media").display());
        let (archive, stream, header) = archive(dir.path(), &url).await;
        let t0 = 1_800_000_000_000;
        let mut rows = Vec::new();
        for i in 0..4 {
            rows.push(
                upload(
                    &archive,
                    stream,
                    header,
                    Timestamp::from_millis(t0 + 1000 * i),
                )
                .await,
            );
        }
        let policy = PackPolicy {
            max_duration_ms: 2000,
            ..PackPolicy::default()
        };
        archive
            .pack(&policy, Timestamp::from_millis(t0 + 3000))
            .await
            .unwrap();
        let now = Timestamp::from_millis(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64,
        );
        let check = |repair| {
            let archive = archive.clone();
            let log = dir.path().join("log");
            async move {
                fsck(
                    archive.catalog().as_ref(),
                    archive.store().as_ref(),
                    &log,
                    now,
                    60_000,
                    repair,
                )
                .await
                .unwrap()
            }
        };
        let clean = check(false).await;
        assert!(!clean.has_problems(), "{clean:?}");
        assert_eq!((clean.streams, clean.fragments, clean.objects), (1, 4, 2));
        // An orphan (a deleted stream's leftover), and a packed object removed behind its rows.
        archive
            .store()
            .put("streams/999/1-1", vec![Bytes::from_static(b"orphan")])
            .await
            .unwrap();
        let packed = archive
            .catalog()
            .fragments_by_number(stream, std::slice::from_ref(&rows[0].number))
            .await
            .unwrap()[0]
            .object_key
            .clone();
        archive.store().delete(&packed).await.unwrap();
        let found = check(false).await;
        assert_eq!(found.missing.len(), 2, "{found:?}");
        assert_eq!(
            found.recent_unreferenced, 1,
            "the new orphan is within the grace period"
        );
        assert!(found.has_problems());
        // Later than the grace period: an orphan, deleted by repair; the missing stay reported.
        let later = Timestamp::from_millis(now.as_millis() + 120_000);
        let repaired = fsck(
            archive.catalog().as_ref(),
            archive.store().as_ref(),
            &dir.path().join("log"),
            later,
            60_000,
            true,
        )
        .await
        .unwrap();
        assert_eq!(repaired.orphans, ["streams/999/1-1"]);
        assert_eq!(repaired.orphans_removed, 1);
        assert_eq!(repaired.missing.len(), 2);
        assert!(
            archive
                .store()
                .list("streams/999/")
                .await
                .unwrap()
                .is_empty()
        );
    }
}
