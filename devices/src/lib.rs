//! The producer side, talking to a server only through the wire protocol, as a camera would:
//! [`Endpoint`] (plain or TLS, with a CA file), SigV4-signed JSON calls, and [`PutMedia`], a
//! streaming upload that reads ACKs while it sends. Frames → MKV comes from
//! `kinescope_media::mkv::ProducerWriter`. [`simulate`] runs many synthetic cameras for load
//! tests. Retries, disk buffering and the `put` command build on these.
//!
//! Dependency rule: never depends on server-side crates (`archive`, `ingest`, `playback`).

mod client;
mod simulate;

pub use client::{DeviceError, Endpoint, MediaStream, PutMedia, PutMediaOptions, ReceivedAck};
pub use simulate::{Report, Simulation, percentile, simulate};
