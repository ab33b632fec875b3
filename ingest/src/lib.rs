//! PutMedia ingest (spec §3): [`Session`], a sans-IO state machine over `kinescope-media`'s MKV
//! reader that turns an upload into ACKs and fragments to persist, and [`upload`], the thin
//! async shell that feeds it from the request body, persists through `kinescope-archive` and
//! streams the ACKs back.
//!
//! Dependency rule: never depends on `kinescope-playback`.

mod live_copy;
mod session;
mod upload;
mod writers;

pub use live_copy::LiveBudget;
pub use session::{Output, ReceivedFragment, Session, SessionConfig, TimecodeType};
pub use upload::{Upload, upload};
pub use writers::Writers;
