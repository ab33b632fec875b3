//! PutMedia ingest (spec §3): a sans-IO session state machine over `kinescope-media`'s MKV
//! reader that turns an upload into fragments and ACK events, and the thin async handler that
//! feeds it from the request body and hands fragments to `kinescope-archive`. Until the PutMedia
//! issue lands, the server answers `/putMedia` with `NotImplementedException`.
//!
//! Dependency rule: never depends on `kinescope-playback`.
