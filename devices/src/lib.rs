//! The producer side, talking to a server only through the wire protocol, as a camera would:
//! [`Endpoint`] (plain or TLS, with a CA file), SigV4-signed JSON calls, and [`PutMedia`], a
//! streaming upload that reads ACKs while it sends. Frames → MKV comes from
//! `kinescope_media::mkv::ProducerWriter`. The resilient [`Uploader`] (retries, exactly once
//! as the archive sees it) and the disk buffer ([`Spool`]) are behind `kinescope put`;
//! [`simulate`] runs many cameras through the same uploader for load tests, with live GetMedia
//! and HLS viewers ([`hls`]).
//!
//! Dependency rule: never depends on server-side crates (`archive`, `ingest`, `playback`).

mod annexb;
mod client;
pub mod hls;
mod refragment;
mod simulate;
mod spool;
mod uploader;

pub use annexb::{AnnexB, AnnexBError, Codec, Elementary};
pub use client::{
    AckStream, DeviceError, Endpoint, GetConnection, GetResponse, MediaStream, PutMedia,
    PutMediaBody, PutMediaOptions, ReceivedAck,
};
pub use refragment::{OutFragment, RefragmentError, Refragmenter, cluster_span_ms};
pub use simulate::{Live, Report, Simulation, SimulationError, percentile, simulate};
pub use spool::{Spool, Stored};
pub use uploader::{
    OnPersisted, PersistedFragment, UploadConfig, UploadError, UploadStats, Uploader,
};
