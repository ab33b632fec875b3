//! Playback (spec §4–§5): GetMedia (archive then live tail), ListFragments and
//! GetMediaForFragmentList now; HLS, DASH, GetClip and GetImages follow. Answers come from the catalog and
//! the fragment store, streamed as `Bytes` without buffering whole responses. HTTP stays in the
//! server; this crate returns shapes and byte streams.
//!
//! Dependency rule: never depends on `kinescope-ingest`.

mod fragments;
mod getmedia;

pub use fragments::{PlaybackError, fragment_documents, list_fragments, resolve_fragments};
pub use getmedia::{MediaRead, Start, get_media};
