//! Helpers for the archive's unit tests: an archive on disk (SQLite catalog and fragment log in
//! a directory, a store named by URL) with one stream, and fragments appended at chosen times.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use kinescope_api::control::StorageTier;
use kinescope_api::{StreamName, StreamRef, Timestamp};
use kinescope_media::mkv::TrackHeader;

use crate::{
    Archive, ArchiveError, BlobStore, Catalog, Durability, FragmentLog, FragmentRow, NewFragment,
    SqliteCatalog, StoreUrl, StreamId,
};

/// The archive in `dir` (opened again if it exists) on the store at `store`, and its stream
/// "packed" (retention 1 hour) with a track header: (archive, stream, header id).
pub(crate) async fn archive(dir: &Path, store: &str) -> (Arc<Archive>, StreamId, i64) {
    let store = StoreUrl::parse(store).unwrap().open().unwrap();
    archive_on(dir, store, Durability::Log).await
}

/// [`archive`] on a given store, with a given durability.
pub(crate) async fn archive_on(
    dir: &Path,
    store: Arc<dyn BlobStore>,
    durability: Durability,
) -> (Arc<Archive>, StreamId, i64) {
    let catalog: Arc<dyn Catalog> = Arc::new(SqliteCatalog::open(&dir.join("c.db")).await.unwrap());
    let log = FragmentLog::open(dir.join("log")).unwrap().0;
    let archive = Archive::open(catalog.clone(), store, log, durability)
        .await
        .unwrap();
    let stream = match catalog.stream(&stream_ref()).await {
        Ok(s) => s.id,
        Err(_) => {
            catalog
                .create_stream(
                    &kinescope_api::control::StreamInfo {
                        data_retention_in_hours: 1,
                        ..crate::conformance::info("packed", 1)
                    },
                    StorageTier::Hot,
                    &Default::default(),
                )
                .await
                .unwrap()
                .id
        }
    };
    let header = catalog.add_track_header(stream, b"h").await.unwrap();
    (Arc::new(archive), stream, header)
}

/// The stream [`archive`] creates.
pub(crate) fn stream_ref() -> StreamRef {
    StreamRef::Name(StreamName::parse("packed").unwrap())
}

/// Appends a 1 s fragment received at `t`; its bytes ([`bytes_at`]) name `t` and are a few KiB.
pub(crate) async fn upload(
    archive: &Archive,
    stream: StreamId,
    header_id: i64,
    t: Timestamp,
) -> FragmentRow {
    try_upload(archive, stream, header_id, t).await.unwrap()
}

/// The bytes of the fragment [`upload`] appends at `t`.
pub(crate) fn bytes_at(t: Timestamp) -> Bytes {
    Bytes::from(
        format!("fragment at {} ", t.as_millis()).repeat(100 + (t.as_millis() % 7) as usize),
    )
}

/// [`upload`], which may fail.
pub(crate) async fn try_upload(
    archive: &Archive,
    stream: StreamId,
    header_id: i64,
    t: Timestamp,
) -> Result<FragmentRow, ArchiveError> {
    archive
        .append(NewFragment {
            stream,
            number: archive.next_fragment_number(t),
            producer_timestamp: t,
            server_timestamp: t,
            duration_ms: 1000,
            header_id,
            header: Arc::new(TrackHeader {
                version: 0,
                tracks: Vec::new(),
                timecode_scale: 1_000_000,
                ebml_header: Vec::new(),
                segment_header: Vec::new(),
            }),
            metadata: Vec::new(),
            rest: vec![bytes_at(t)],
            live_bytes: None,
        })
        .await
}
