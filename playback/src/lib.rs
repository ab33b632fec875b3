//! Playback (spec §4–§5): reads of the archive for ListFragments and GetMediaForFragmentList
//! now; GetMedia, HLS, DASH, GetClip and GetImages follow. Answers come from the catalog and
//! the fragment store, streamed as `Bytes` without buffering whole responses. HTTP stays in the
//! server; this crate returns shapes and byte streams.
//!
//! Dependency rule: never depends on `kinescope-ingest`.

mod fragments;

pub use fragments::{PlaybackError, fragment_documents, list_fragments, resolve_fragments};
