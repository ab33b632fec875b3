//! Kinescope wire types: the request and response shapes of the KVS APIs (botocore models in
//! `spec/aws-models/`), the KVS error codes with their HTTP status (spec §1.3), and the validated
//! newtypes (names, ARNs, timestamps) that every other crate takes instead of raw strings.
//!
//! This crate has no I/O and no HTTP stack: services turn [`ApiError`] into responses themselves.

pub mod ack;
pub mod archived;
pub mod civil;
pub mod control;
mod error;
pub mod media;
mod names;
pub mod sigv4;
pub mod streaming;
mod time;
pub mod validation;

pub use error::{ApiError, ErrorKind};
pub use names::{
    ApiName, DeviceName, FragmentNumber, KmsKeyId, MediaType, StreamArn, StreamName, StreamRef,
    TagKey, TagValue, Tags, Version,
};
pub use time::Timestamp;
