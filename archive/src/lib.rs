//! Kinescope's record of streams and fragments: the [`Catalog`] (stream metadata, tags and the
//! fragment index; SQLite or PostgreSQL behind the same trait), the [`BlobStore`] that
//! holds fragment bytes, fragment numbering, [`Archive::append`] which makes a fragment durable,
//! and the injected [`Clock`]. The live bus joins with GetMedia (DESIGN.md, "Data flow").

mod catalog;
mod clock;
mod crash;
mod fsck;
mod lifecycle;
mod log;
mod numbers;
mod object;
mod pack;
mod postgres;
mod rows;
mod service;
mod sqlite;
mod store;

pub use catalog::{
    Catalog, CatalogError, FragmentRow, LogBacklog, MAX_RETENTION_HOURS, MAX_TAGS, Relocation,
    StreamId, StreamRecord, TimestampKind,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use fsck::{FsckReport, fsck};
pub use lifecycle::{
    BudgetReport, EXPIRE_BATCH, LifecyclePolicy, RetentionReport, spawn_lifecycle,
};
pub use log::{Appended, FragmentLog, LogLocation, Recovery, SEGMENT_BYTES};
pub use numbers::FragmentNumbers;
pub use object::{ObjectBlobStore, PART_SIZE, PUT_THRESHOLD, S3Options, StoreUrl};
pub use pack::{PackPolicy, PackReport, spawn_packer};
pub use postgres::{PgCatalog, PgPoolSettings};
pub use service::{
    Archive, ArchiveError, Durability, LIVE_BUS_CAPACITY, LiveFragment, NewFragment,
    PendingFragment, WRITE_QUEUE,
};
pub use sqlite::SqliteCatalog;
pub use store::{BlobStore, BlobWriter, LocalStore, ObjectInfo};

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod faults;
#[cfg(all(test, feature = "s3"))]
mod s3_test_server;
#[cfg(test)]
mod store_conformance;
#[cfg(test)]
mod testing;
