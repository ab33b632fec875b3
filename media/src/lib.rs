//! Kinescope's container formats, sans-IO: push bytes in, poll events out; no tokio, no clock,
//! no files (DESIGN.md convention 1). The Matroska reader, fragmenter and GetMedia writer and the
//! codec parsers arrive with the media issue; fMP4 and MPEG-TS writers with HLS.
//!
//! Dependency rule: this crate depends on nothing else in the workspace.

pub mod codec;
pub mod mkv;
