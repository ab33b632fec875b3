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

use crate::codec::{AudioSpecificConfig, AvcDecoderConfig, CodecError, HevcDecoderConfig};
use crate::mkv::{Frame, MkvError, Track, timed_cluster_frames};

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

impl TrackConfig {
    /// Reads a TrackEntry: `V_MPEG4/ISO/AVC` (CodecPrivate = `avcC`), `V_MPEGH/ISO/HEVC`
    /// (`hvcC`, codecs string for the `hvc1` sample entry) and `A_AAC*` (AudioSpecificConfig).
    /// Width and height come from the first SPS, the TrackEntry's pixel size when the SPS
    /// cannot be read.
    pub fn from_track(track: &Track) -> Result<TrackConfig, RemuxError> {
        let codec_id = track.codec_id.as_str();
        let kind = match codec_id {
            "V_MPEG4/ISO/AVC" => Kind::Avc,
            "V_MPEGH/ISO/HEVC" => Kind::Hevc,
            id if id.starts_with("A_AAC") => Kind::Aac,
            _ => {
                return Err(RemuxError::UnsupportedCodec {
                    track: track.number,
                    codec_id: codec_id.to_owned(),
                });
            }
        };
        if track.codec_private.is_empty() {
            return Err(RemuxError::MissingCodecPrivateData {
                track: track.number,
                codec_id: codec_id.to_owned(),
            });
        }
        let invalid = |reason: String| RemuxError::InvalidCodecPrivateData {
            track: track.number,
            reason,
        };
        let private = &track.codec_private;
        let entry_size = track
            .width
            .zip(track.height)
            .map(|(w, h)| (clamp_u32(w), clamp_u32(h)));
        let video_size = |sps: Result<(u32, u32), CodecError>| match sps {
            Ok(size) => Ok(size),
            Err(e) => entry_size.ok_or_else(|| invalid(e.to_string())),
        };
        let (codec, codec_string, (width, height), (sample_rate, channels)) = match kind {
            Kind::Avc => {
                let avcc = AvcDecoderConfig::parse(private).map_err(|e| invalid(e.to_string()))?;
                let size = video_size(avcc.first_sps().map(|s| (s.width, s.height)))?;
                let codec_string = avcc.codec_string();
                (Codec::Avc(avcc), codec_string, size, (0, 0))
            }
            Kind::Hevc => {
                let hvcc = HevcDecoderConfig::parse(private).map_err(|e| invalid(e.to_string()))?;
                let size = video_size(hvcc.first_sps().map(|s| (s.width, s.height)))?;
                let codec_string = hvcc.codec_string("hvc1");
                (Codec::Hevc(hvcc), codec_string, size, (0, 0))
            }
            Kind::Aac => {
                let asc =
                    AudioSpecificConfig::parse(private).map_err(|e| invalid(e.to_string()))?;
                if asc.sample_rate() == 0 {
                    return Err(invalid("sampling frequency 0".into()));
                }
                // Matroska's Channels defaults to 1 when the ASC defers to a PCE.
                let channels = asc
                    .channels()
                    .or_else(|| track.channels.and_then(|c| u8::try_from(c).ok()))
                    .unwrap_or(1);
                let audio = (asc.sample_rate(), channels);
                (Codec::Aac(asc), asc.codec_string(), (0, 0), audio)
            }
        };
        let timescale = if sample_rate > 0 {
            sample_rate
        } else {
            VIDEO_TIMESCALE
        };
        let default_duration = track
            .default_duration_ns
            .map(|ns| ns_to_ticks(i128::from(ns), timescale))
            .and_then(|t| u32::try_from(t).ok())
            .filter(|&t| t > 0);
        Ok(TrackConfig {
            number: track.number,
            codec,
            codec_private: private.clone(),
            timescale,
            codec_string,
            width,
            height,
            sample_rate,
            channels,
            default_duration,
        })
    }

    /// The frame interval assumed when a fragment says nothing better: 1024 samples per AAC
    /// frame (2048 with explicit SBR, whose timescale is the doubled output rate), 1/30 s of
    /// video.
    fn fallback_duration(&self) -> u32 {
        match &self.codec {
            Codec::Aac(asc) if asc.sbr.is_some() => 2048,
            Codec::Aac(_) => 1024,
            Codec::Avc(_) | Codec::Hevc(_) => self.timescale / 30,
        }
        .max(1)
    }
}

/// The frames of one stored fragment (`cluster`: one Matroska Cluster element, as
/// [`crate::mkv::cluster_frames`] takes it) as samples of `tracks`, in that order; a track
/// with no frames here gets an empty [`TrackSamples`], frames of other tracks are skipped.
///
/// `start_ns` is where the Cluster's Timecode lies on the output timeline (for KVS, the
/// fragment's producer timestamp); a frame lies at `start_ns + (timecode − cluster timecode) ×
/// timecode_scale`, saturating at 0. `end_ns` is where the fragment ends on that timeline
/// (producer timestamp + fragment duration): each track's last sample lasts until then when
/// that is more than 0 and at most twice the track's typical interval (see the module
/// documentation for the rest of the timing rules).
pub fn fragment_samples(
    tracks: &[TrackConfig],
    timecode_scale: u64,
    cluster: &[Bytes],
    start_ns: u64,
    end_ns: Option<u64>,
) -> Result<Vec<TrackSamples>, RemuxError> {
    let (cluster_timecode, frames) = timed_cluster_frames(cluster)?;
    let cluster_timecode = i128::from(cluster_timecode.unwrap_or(0));
    let position = |f: &Frame| {
        (i128::from(f.timecode) - cluster_timecode)
            .saturating_mul(i128::from(timecode_scale))
            .saturating_add(i128::from(start_ns))
    };
    Ok(tracks
        .iter()
        .map(|config| {
            let frames: Vec<(i128, &Frame)> = frames
                .iter()
                .filter(|f| f.track == config.number)
                .map(|f| (position(f), f))
                .collect();
            TrackSamples {
                track: config.number,
                samples: track_samples(config, &frames, end_ns),
            }
        })
        .collect())
}

#[derive(Clone, Copy)]
enum Kind {
    Avc,
    Hevc,
    Aac,
}

/// One track's frames (with their positions in ns, in decode order) as samples.
fn track_samples(
    config: &TrackConfig,
    frames: &[(i128, &Frame)],
    end_ns: Option<u64>,
) -> Vec<Sample> {
    let Some(last) = frames.len().checked_sub(1) else {
        return Vec::new();
    };
    let pts: Vec<u64> = frames
        .iter()
        .map(|&(ns, _)| ns_to_ticks(ns, config.timescale))
        .collect();
    let reordered = pts.windows(2).any(|w| w[1] < w[0]);
    let mut dts = pts.clone();
    if reordered {
        dts.sort_unstable();
    }
    // Two frames at one time: the later one moves by a tick, so no duration is 0.
    for i in 1..dts.len() {
        if dts[i] <= dts[i - 1] {
            dts[i] = dts[i - 1].saturating_add(1);
        }
    }
    let mut durations: Vec<u32> = dts.windows(2).map(|w| clamp_u32(w[1] - w[0])).collect();
    let median = {
        let mut sorted = durations.clone();
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).copied()
    };
    let typical = config
        .default_duration
        .or(median)
        .unwrap_or_else(|| config.fallback_duration());
    let to_end = end_ns
        .map(|ns| ns_to_ticks(i128::from(ns), config.timescale))
        .and_then(|end| end.checked_sub(dts[last]))
        .filter(|&d| d > 0 && d <= 2 * u64::from(typical));
    durations.push(to_end.map_or(typical, clamp_u32));
    frames
        .iter()
        .zip(pts)
        .zip(dts)
        .zip(durations)
        .map(|(((&(_, frame), pts), dts), duration)| Sample {
            decode_time: dts,
            duration,
            composition_offset: if reordered {
                clamp_i32(i128::from(pts) - i128::from(dts))
            } else {
                0
            },
            key: frame.key,
            data: frame.data.clone(),
        })
        .collect()
}

/// A position in nanoseconds as ticks of `timescale`, rounded to the nearest tick; negative
/// positions are 0.
fn ns_to_ticks(ns: i128, timescale: u32) -> u64 {
    let Ok(ns) = u128::try_from(ns) else {
        return 0;
    };
    ns.checked_mul(u128::from(timescale))
        .and_then(|n| u64::try_from((n + 500_000_000) / 1_000_000_000).ok())
        .unwrap_or(u64::MAX)
}

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn clamp_i32(v: i128) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}
