//! Kinescope's container formats, sans-IO: push bytes in, poll events out; no tokio, no clock,
//! no files (DESIGN.md convention 1). The Matroska reader, fragmenter and GetMedia writer and the
//! codec parsers; the remuxing common ground (track configurations, timed samples) with the fMP4
//! and MPEG-TS writers that HLS, DASH and clips use.
//!
//! Dependency rule: this crate depends on nothing else in the workspace.

pub mod codec;
pub mod mkv;
pub mod mp4;
pub mod remux;
pub mod ts;
