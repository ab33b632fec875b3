//! The catalog contract: everything Kinescope records about streams, whatever database holds it.
//! Every backend passes the same conformance suite (`conformance.rs`). Version checks and limits
//! are enforced inside the backend atomically, so that concurrent control-plane calls on one
//! stream cannot lose an update.

use std::fmt;

use async_trait::async_trait;
use kinescope_api::control::{StorageTier, StreamInfo};
use kinescope_api::{
    DeviceName, FragmentNumber, MediaType, StreamArn, StreamRef, TagKey, Tags, Timestamp, Version,
};
use kinescope_media::mkv::MetadataTag;

/// Tags per stream (spec §7).
pub const MAX_TAGS: usize = 50;
/// Longest retention, in hours (spec §6).
pub const MAX_RETENTION_HOURS: i64 = 87_600;

/// The catalog's own id of a stream: never reused, so rows of a deleted stream can never be
/// taken for a new stream of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub i64);

/// A stream as the catalog holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    pub id: StreamId,
    pub info: StreamInfo,
    pub storage_tier: StorageTier,
}

/// Which clock a fragment query ranges over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampKind {
    Producer,
    Server,
}

/// What one stream's fragments still in the fragment log add up to (packing, design/0014).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBacklog {
    pub stream: StreamId,
    /// The fragments' durations and stored lengths added up.
    pub duration_ms: u64,
    pub bytes: u64,
    /// The newest fragment's server timestamp.
    pub newest: Timestamp,
}

/// One stored fragment: where its bytes are and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentRow {
    pub stream: StreamId,
    pub number: FragmentNumber,
    pub producer_timestamp: Timestamp,
    pub server_timestamp: Timestamp,
    pub duration_ms: u64,
    pub size: u64,
    pub object_key: String,
    pub offset: u64,
    pub length: u64,
    /// The track header (EBML header, Info, Tracks ...) the fragment follows.
    pub header_id: i64,
    /// The producer's metadata (user tags) sent with the fragment, in order (spec §3.5).
    pub metadata: Vec<MetadataTag>,
}

/// A fragment's bytes moved (by packing) from `from_key` to `to_key` at `to_offset`; its
/// length stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relocation {
    pub number: FragmentNumber,
    pub from_key: String,
    pub to_key: String,
    pub to_offset: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("stream {0} not found")]
    StreamNotFound(String),
    #[error("a stream named {0} already exists")]
    StreamExists(String),
    #[error("version {expected} of stream {stream} is not the latest")]
    VersionMismatch { stream: String, expected: String },
    #[error("stream {stream} would have {count} tags; at most {MAX_TAGS} are allowed")]
    TooManyTags { stream: String, count: usize },
    #[error(
        "retention of stream {stream} would be {hours} hours; it must stay within 0..={MAX_RETENTION_HOURS}"
    )]
    RetentionOutOfRange { stream: String, hours: i64 },
    #[error("catalog database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("catalog migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("catalog holds an invalid value in {column}: {value}")]
    Corrupt { column: &'static str, value: String },
}

/// Streams, tags and (later) the fragment index.
#[async_trait]
pub trait Catalog: Send + Sync + fmt::Debug {
    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<(), CatalogError>;

    /// Records a new stream with its tags. `StreamExists` if the name is taken.
    async fn create_stream(
        &self,
        info: &StreamInfo,
        storage_tier: StorageTier,
        tags: &Tags,
    ) -> Result<StreamRecord, CatalogError>;

    /// The stream named by `r`. An ARN must match exactly: a stream that was deleted and
    /// created again under the same name has a new ARN.
    async fn stream(&self, r: &StreamRef) -> Result<StreamRecord, CatalogError>;

    /// Up to `limit` streams ordered by name, after `after` (exclusive), whose names begin with
    /// `prefix`.
    async fn list_streams(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StreamRecord>, CatalogError>;

    /// Sets the device name and/or media type (`None` keeps the current value) and moves the
    /// stream from version `expected` to `new_version`.
    async fn update_stream(
        &self,
        r: &StreamRef,
        expected: &Version,
        new_version: &Version,
        device_name: Option<&DeviceName>,
        media_type: Option<&MediaType>,
    ) -> Result<(), CatalogError>;

    /// Adds `delta_hours` (negative to decrease) to the retention, which must stay within
    /// `0..=MAX_RETENTION_HOURS`, and moves the stream from `expected` to `new_version`.
    async fn change_retention(
        &self,
        r: &StreamRef,
        expected: &Version,
        new_version: &Version,
        delta_hours: i64,
    ) -> Result<(), CatalogError>;

    /// Deletes the stream at once as far as every lookup, list and new fragment is concerned,
    /// and frees its name; its fragments stay until the lifecycle purges them
    /// ([`Catalog::deleted_streams`], [`Catalog::remove_stream`]). With `expected`, only if the
    /// stream is still at that version.
    async fn delete_stream(
        &self,
        arn: &StreamArn,
        expected: Option<&Version>,
    ) -> Result<(), CatalogError>;

    /// Streams deleted whose fragments may not all be purged yet.
    async fn deleted_streams(&self) -> Result<Vec<StreamId>, CatalogError>;

    /// Removes what is left of a deleted stream (its row, tags, track headers and any
    /// fragments) in one transaction; the lifecycle deletes its fragments in batches first.
    async fn remove_stream(&self, id: StreamId) -> Result<(), CatalogError>;

    /// Adds or overwrites tags; the total must stay within [`MAX_TAGS`].
    async fn tag_stream(&self, r: &StreamRef, tags: &Tags) -> Result<(), CatalogError>;

    /// Removes tags; keys that are not set are ignored.
    async fn untag_stream(&self, r: &StreamRef, keys: &[TagKey]) -> Result<(), CatalogError>;

    /// All tags of the stream.
    async fn stream_tags(&self, r: &StreamRef) -> Result<Tags, CatalogError>;

    /// Stores the header bytes of an upload (once per MKV document); returns their id.
    async fn add_track_header(&self, stream: StreamId, header: &[u8]) -> Result<i64, CatalogError>;

    /// Records a fragment whose bytes are already durable. `StreamNotFound` if the stream was
    /// deleted meanwhile.
    async fn add_fragment(&self, fragment: &FragmentRow) -> Result<(), CatalogError>;

    /// The greatest fragment number recorded on any stream (numbers are fixed-width).
    async fn last_fragment_number(&self) -> Result<Option<FragmentNumber>, CatalogError>;

    /// The producer timestamp of the stream's latest fragment.
    async fn latest_producer_timestamp(
        &self,
        stream: StreamId,
    ) -> Result<Option<Timestamp>, CatalogError>;

    /// The stream's fragments whose `kind` timestamp lies in `[start, end]`, ordered by that
    /// timestamp then fragment number, after `after` (exclusive), at most `limit`.
    async fn list_fragments(
        &self,
        stream: StreamId,
        kind: TimestampKind,
        start: Timestamp,
        end: Timestamp,
        after: Option<(Timestamp, FragmentNumber)>,
        limit: u32,
    ) -> Result<Vec<FragmentRow>, CatalogError>;

    /// The stream's fragments in fragment-number order after `after` (exclusive), at most
    /// `limit`; `newest_first` reverses the order (and `after` then means "before").
    async fn fragments_after(
        &self,
        stream: StreamId,
        after: Option<&FragmentNumber>,
        limit: u32,
        newest_first: bool,
    ) -> Result<Vec<FragmentRow>, CatalogError>;

    /// The newest `limit` of the stream's fragments whose `kind` timestamp lies in
    /// `[start, end]`, in `list_fragments` order (oldest first): a live playlist's window.
    async fn latest_fragments(
        &self,
        stream: StreamId,
        kind: TimestampKind,
        start: Timestamp,
        end: Timestamp,
        limit: u32,
    ) -> Result<Vec<FragmentRow>, CatalogError>;

    /// How many of the stream's fragments lie at or after `start` and before `before` in
    /// `list_fragments` order: the position of `before` counted from `start` (HLS media
    /// sequence numbers of a session).
    async fn count_fragments(
        &self,
        stream: StreamId,
        kind: TimestampKind,
        start: Timestamp,
        before: (Timestamp, &FragmentNumber),
    ) -> Result<u64, CatalogError>;

    /// The rows of those of `numbers` that are fragments of the stream, in any order.
    async fn fragments_by_number(
        &self,
        stream: StreamId,
        numbers: &[FragmentNumber],
    ) -> Result<Vec<FragmentRow>, CatalogError>;

    /// Per stream with fragments still in the fragment log (`object_key` under `log/`), what
    /// they add up to, ordered by stream: packing reads it each pass to find the streams with
    /// a run ready, without reading every row.
    async fn log_backlog(&self) -> Result<Vec<LogBacklog>, CatalogError>;

    /// Up to `limit` of a stream's fragments whose bytes are still in the fragment log, ordered
    /// by fragment number: what packing moves next.
    async fn fragments_in_log(
        &self,
        stream: StreamId,
        limit: u32,
    ) -> Result<Vec<FragmentRow>, CatalogError>;

    /// Points each fragment at its new place if it still points at its old one (a fragment
    /// deleted or moved meanwhile is left as it is), all in one transaction; how many moved.
    async fn relocate_fragments(&self, moves: &[Relocation]) -> Result<u64, CatalogError>;

    /// Deletes up to `limit` of the stream's oldest fragments whose server timestamp is before
    /// `before` (retention); the `object_key` of each deleted row, so that objects no row
    /// points into any more can go.
    async fn expire_fragments(
        &self,
        stream: StreamId,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<String>, CatalogError>;

    /// Deletes up to `limit` of the oldest fragments of all streams (in fragment-number order,
    /// which is issue order): a storage budget. The `object_key` and length of each.
    async fn expire_oldest(&self, limit: u32) -> Result<Vec<(String, u64)>, CatalogError>;

    /// Bytes of all fragments the catalog lists.
    async fn stored_bytes(&self) -> Result<u64, CatalogError>;

    /// Those of `keys` that some fragment still points into.
    async fn keys_in_use(&self, keys: &[String]) -> Result<Vec<String>, CatalogError>;

    /// The fragment-log segments (`object_key`s under `log/`) that fragments point into.
    async fn log_keys_in_use(&self) -> Result<Vec<String>, CatalogError>;

    /// The stored header bytes of `add_track_header`, if `id` is a header of the stream.
    async fn track_header(
        &self,
        stream: StreamId,
        id: i64,
    ) -> Result<Option<Vec<u8>>, CatalogError>;
}
