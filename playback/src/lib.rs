//! Playback (spec §4–§5): GetMedia (archive then live tail), ListFragments,
//! GetMediaForFragmentList, HLS and DASH sessions and GetClip; GetImages follows. Answers come
//! from the catalog and the fragment store, streamed as `Bytes` without buffering whole
//! responses; HLS, DASH and clips remux stored fragments with `kinescope-media` on request.
//! HTTP stays in the server; this crate returns shapes and byte streams.
//!
//! Dependency rule: never depends on `kinescope-ingest`.

mod cache;
mod clip;
mod dash;
mod fragments;
mod getmedia;
mod hls;
mod player;
mod session;

pub use clip::get_clip;
pub use fragments::{PlaybackError, fragment_documents, list_fragments, resolve_fragments};
pub use getmedia::{MediaRead, Start, get_media};
pub use player::{Player, Reply, Resource, ResourceQuery};
pub use session::{Protocol, SessionKey, SessionRequest, TokenError};
