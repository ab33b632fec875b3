//! The producer side: frames → MKV → PutMedia with ACK tracking, retries and disk buffering,
//! and the `put`/`simulate` commands. It talks to a server only through the wire protocol, as a
//! camera would.
//!
//! Dependency rule: never depends on server-side crates (`archive`, `ingest`, `playback`).
