//! Fragmented MP4 (ISO/IEC 14496-12 §8.8, "movie fragments") as CMAF-style HLS and DASH serve
//! it: an [`init_segment`] (`ftyp` + `moov` with one `trak` per track and `mvex`) and one
//! [`media_segment`] (`styp` + `moof` + `mdat`) per stored fragment. Sample entries follow
//! ISO/IEC 14496-15 (`avc1`/`avcC` §5.4, `hvc1`/`hvcC` §8.4) and ISO/IEC 14496-14 (`mp4a` with
//! `esds`).
//!
//! Our own small box writer (the `write_box(buf, fourcc, |buf| ..)` pattern): only box headers
//! are new bytes; a media segment's `mdat` payload is the samples' [`bytes::Bytes`], chained.
//! Track IDs are the Matroska TrackNumbers.

mod boxes;
mod init;
mod segment;

pub use init::init_segment;
pub use segment::media_segment;
