//! Kinescope's record of streams and fragments: the [`Catalog`] (stream metadata, tags and the
//! fragment index; SQLite now, PostgreSQL behind the same trait later) and the injected
//! [`Clock`]. The fragment store and the live bus join this crate with ingest (DESIGN.md, "Data
//! flow").

mod catalog;
mod clock;
mod sqlite;

pub use catalog::{Catalog, CatalogError, MAX_RETENTION_HOURS, MAX_TAGS, StreamRecord};
pub use clock::{Clock, ManualClock, SystemClock};
pub use sqlite::SqliteCatalog;

#[cfg(test)]
mod conformance;
