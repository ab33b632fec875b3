//! What every remuxer (fMP4, MPEG-TS, clips) shares: a track's codec configuration read from its
//! Matroska TrackEntry, and a stored fragment's frames as timed samples on an output timeline.
//! Containers are written by [`crate::mp4`] and [`crate::ts`]; this module knows none of them.
//!
//! Timing (issue 10, "Durations"): Matroska stores one presentation timecode per block, in
//! decode order. Each sample's decode time is its position on the output timeline, rounded
//! once per sample in the track's timescale (positions are rounded, never durations, so a long
//! run does not drift); a duration is the distance to the next sample's decode time; the last
//! sample of a fragment lasts until the next fragment's start when the caller knows it and it
//! is plausible, else the track's default duration, else the fragment's typical frame interval.
//! With B-frames (timecodes not increasing in decode order) decode times are the sorted
//! presentation times and each sample carries its composition offset.

use bytes::Bytes;

use crate::codec::{AudioSpecificConfig, AvcDecoderConfig, HevcDecoderConfig};
use crate::mkv::{MkvError, Track};

/// Timescale of video tracks (the MPEG-TS clock, so TS and fMP4 agree).
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// A codec a remuxer can carry without transcoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Codec {
    /// `V_MPEG4/ISO/AVC`: samples are length-prefixed NAL units.
    Avc(AvcDecoderConfig),
    /// `V_MPEGH/ISO/HEVC`: samples are length-prefixed NAL units.
    Hevc(HevcDecoderConfig),
    /// `A_AAC` (and `A_AAC/MPEG4/…`): samples are raw AAC frames.
    Aac(AudioSpecificConfig),
}

/// One track as a remuxer needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackConfig {
    /// The Matroska TrackNumber.
    pub number: u64,
    pub codec: Codec,
    /// The CodecPrivate as stored (`avcC`/`hvcC` record, or AudioSpecificConfig).
    pub codec_private: Bytes,
    /// Ticks per second of decode times and durations: [`VIDEO_TIMESCALE`] for video, the
    /// sampling frequency for audio.
    pub timescale: u32,
    /// RFC 6381 codecs string (`avc1.64001f`, `hvc1.1.6.L93.B0`, `mp4a.40.2`).
    pub codec_string: String,
    /// Video: displayed size from the SPS (TrackEntry values as fallback).
    pub width: u32,
    pub height: u32,
    /// Audio: output sampling frequency and channel count.
    pub sample_rate: u32,
    pub channels: u8,
    /// The TrackEntry's DefaultDuration, in `timescale` ticks.
    pub default_duration: Option<u32>,
}

/// Why a track or fragment cannot be remuxed. Maps to KVS's
/// `UnsupportedStreamMediaTypeException`, `MissingCodecPrivateDataException`,
/// `InvalidCodecPrivateDataException` and `InvalidMediaFrameException`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RemuxError {
    #[error("track {track} has codec {codec_id}, which cannot be played as HLS, DASH or MP4")]
    UnsupportedCodec { track: u64, codec_id: String },
    #[error("track {track} ({codec_id}) has no codec private data")]
    MissingCodecPrivateData { track: u64, codec_id: String },
    #[error("track {track} has invalid codec private data: {reason}")]
    InvalidCodecPrivateData { track: u64, reason: String },
    #[error("invalid media frame: {0}")]
    InvalidFrame(String),
    #[error(transparent)]
    Mkv(#[from] MkvError),
}

/// One frame, timed on the output timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Decode time, in the track's timescale.
    pub decode_time: u64,
    /// In the track's timescale; never 0.
    pub duration: u32,
    /// Presentation time minus decode time (0 without B-frames).
    pub composition_offset: i32,
    pub key: bool,
    /// The frame as stored: a zero-copy slice of the fragment's bytes.
    pub data: Bytes,
}

/// The samples of one track of one fragment, in decode order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSamples {
    /// The Matroska TrackNumber.
    pub track: u64,
    pub samples: Vec<Sample>,
}
