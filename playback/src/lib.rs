//! Playback (spec §4–§5): GetMedia, ListFragments, GetMediaForFragmentList, HLS, DASH, GetClip
//! and GetImages, answered from the catalog, the fragment store and the live bus. Until those
//! issues land, the server answers their paths with `NotImplementedException`.
//!
//! Dependency rule: never depends on `kinescope-ingest`.
