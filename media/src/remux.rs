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
    let mut durations: Vec<u32> = dts
        .windows(2)
        .map(|w| clamp_u32(w[1] - w[0]).max(1))
        .collect();
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
        .and_then(|n| n.checked_add(500_000_000))
        .and_then(|n| u64::try_from(n / 1_000_000_000).ok())
        .unwrap_or(u64::MAX)
}

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn clamp_i32(v: i128) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::mkv::tests::{fixture, read_chunked};
    use crate::mkv::{Event, Limits, ProducerWriter, TrackHeader, TrackType};

    /// The first track header of a fixture and its fragments.
    pub(crate) fn fixture_fragments(name: &str) -> (TrackHeader, Vec<crate::mkv::Fragment>) {
        let (events, error) = read_chunked(&fixture(name), &[65536], Limits::default());
        assert_eq!(error, None, "{name}");
        let header = events.iter().find_map(Event::track_header).unwrap().clone();
        let fragments = events
            .into_iter()
            .filter_map(Event::into_fragment)
            .collect();
        (header, fragments)
    }

    /// A video track without codec data for timing tests (only `number`, `timescale`,
    /// `default_duration` and the codec kind matter there).
    pub(crate) fn video(number: u64, default_duration: Option<u32>) -> TrackConfig {
        let (header, _) = fixture_fragments("producer-c-1.6.4_h264_putmedia.mkv");
        TrackConfig {
            number,
            default_duration,
            ..TrackConfig::from_track(&header.tracks[0]).unwrap()
        }
    }

    pub(crate) fn frame(track: u64, timecode: i64, key: bool) -> Frame {
        Frame {
            track,
            timecode,
            key,
            data: Bytes::from(vec![timecode as u8; 3]),
        }
    }

    /// One Cluster (TimecodeScale 1 ms, Timecode = the first frame's) holding `frames`, in one
    /// contiguous buffer as a stored fragment is.
    pub(crate) fn cluster(frames: &[Frame]) -> Vec<Bytes> {
        let parts = ProducerWriter::new(Vec::new(), 1_000_000).cluster(frames);
        vec![Bytes::from(parts.concat())]
    }

    fn times(samples: &TrackSamples) -> Vec<(u64, u32, i32)> {
        samples
            .samples
            .iter()
            .map(|s| (s.decode_time, s.duration, s.composition_offset))
            .collect()
    }

    #[test]
    fn configs_of_real_uploads() {
        let (h, _) = fixture_fragments("producer-c-1.6.4_h264_aac_putmedia.mkv");
        let v = TrackConfig::from_track(&h.tracks[0]).unwrap();
        assert!(matches!(v.codec, Codec::Avc(_)));
        assert_eq!(
            (v.width, v.height, v.timescale),
            (640, 480, VIDEO_TIMESCALE)
        );
        assert!(v.codec_string.starts_with("avc1."), "{}", v.codec_string);
        assert_eq!(v.codec_private, h.tracks[0].codec_private);
        let a = TrackConfig::from_track(&h.tracks[1]).unwrap();
        assert!(matches!(a.codec, Codec::Aac(_)));
        assert_eq!(a.codec_string, "mp4a.40.2");
        assert_eq!((a.sample_rate, a.channels, a.timescale), (48000, 2, 48000));
        assert_eq!((a.width, a.height), (0, 0));
    }

    #[test]
    fn config_errors_and_default_duration() {
        let (h, _) = fixture_fragments("producer-c-1.6.4_h264_putmedia.mkv");
        let mut t = h.tracks[0].clone();
        t.default_duration_ns = Some(40_000_000);
        assert_eq!(
            TrackConfig::from_track(&t).unwrap().default_duration,
            Some(3600)
        );
        t.codec_private = Bytes::new();
        assert!(matches!(
            TrackConfig::from_track(&t),
            Err(RemuxError::MissingCodecPrivateData { track: 1, .. })
        ));
        t.codec_private = Bytes::from_static(&[1, 2, 3]);
        assert!(matches!(
            TrackConfig::from_track(&t),
            Err(RemuxError::InvalidCodecPrivateData { track: 1, .. })
        ));
        t.codec_id = "V_VP8".into();
        assert!(matches!(
            TrackConfig::from_track(&t),
            Err(RemuxError::UnsupportedCodec { track: 1, .. })
        ));
        let aac = Track {
            number: 2,
            track_type: TrackType::Audio,
            codec_id: "A_AAC/MPEG4/LC".into(),
            codec_private: Bytes::from_static(&[0x12, 0x10]), // LC, 44.1 kHz, stereo
            default_duration_ns: Some(23_219_954),
            ..Track::default()
        };
        let a = TrackConfig::from_track(&aac).unwrap();
        assert_eq!(
            (a.timescale, a.channels, a.default_duration),
            (44100, 2, Some(1024))
        );
    }

    #[test]
    fn thirty_fps_in_milliseconds_does_not_drift() {
        let config = video(1, None);
        let tc = |i: i64| (i * 1000 + 15) / 30; // 33 or 34 ms apart
        let (fragments, per) = (50, 60);
        let mut all = Vec::new();
        for f in 0..fragments {
            let frames: Vec<Frame> = (f * per..(f + 1) * per)
                .map(|i| frame(1, 1_700_000_000_000 + tc(i), i % per == 0))
                .collect();
            let start = frames[0].timecode as u64 * 1_000_000;
            let end = (1_700_000_000_000 + tc((f + 1) * per)) as u64 * 1_000_000;
            let out = fragment_samples(
                std::slice::from_ref(&config),
                1_000_000,
                &cluster(&frames),
                start,
                Some(end),
            )
            .unwrap();
            all.extend(out[0].samples.iter().cloned());
        }
        let first = all[0].decode_time;
        assert_eq!(first, 1_700_000_000_000 * 90);
        for (i, s) in all.iter().enumerate() {
            // Each decode time is its own position, rounded once.
            assert_eq!(s.decode_time - first, tc(i as i64) as u64 * 90);
            assert!(s.duration == 2970 || s.duration == 3060, "{}", s.duration);
        }
        let total: u64 = all.iter().map(|s| u64::from(s.duration)).sum();
        assert_eq!(total, 100 * 90_000);
    }

    #[test]
    fn b_frames_get_sorted_decode_times_and_composition_offsets() {
        let config = video(1, None);
        // I P B B in decode order, 40 ms apart in presentation order.
        let frames = [
            frame(1, 0, true),
            frame(1, 120, false),
            frame(1, 40, false),
            frame(1, 80, false),
        ];
        let out = fragment_samples(
            &[config],
            1_000_000,
            &cluster(&frames),
            0,
            Some(160_000_000),
        )
        .unwrap();
        assert_eq!(
            times(&out[0]),
            [
                (0, 3600, 0),
                (3600, 3600, 7200),
                (7200, 3600, -3600),
                (10800, 3600, -3600)
            ]
        );
    }

    #[test]
    fn last_sample_lasts_until_a_plausible_end() {
        let frames = [frame(1, 0, true), frame(1, 40, false), frame(1, 80, false)];
        let c = cluster(&frames);
        let last = |config: TrackConfig, end_ns: Option<u64>| {
            let out = fragment_samples(&[config], 1_000_000, &c, 5_000_000, end_ns).unwrap();
            out[0].samples.last().unwrap().duration
        };
        // Plausible end: 50 ms after the last frame (at 85 ms).
        assert_eq!(last(video(1, None), Some(135_000_000)), 4500);
        // Implausible ends: before the last frame, or more than two intervals after it.
        assert_eq!(last(video(1, None), Some(80_000_000)), 3600);
        assert_eq!(last(video(1, None), Some(900_000_000)), 3600);
        // The default duration beats the fragment's median.
        assert_eq!(last(video(1, Some(3000)), None), 3000);
        assert_eq!(last(video(1, Some(3000)), Some(900_000_000)), 3000);
        // One frame and nothing known: 1/30 s.
        let one = cluster(&frames[..1]);
        let out = fragment_samples(&[video(1, None)], 1_000_000, &one, 0, None).unwrap();
        assert_eq!(times(&out[0]), [(0, 3000, 0)]);
    }

    #[test]
    fn equal_timecodes_never_make_a_zero_duration() {
        let frames = [frame(1, 0, true), frame(1, 0, false), frame(1, 40, false)];
        let out =
            fragment_samples(&[video(1, None)], 1_000_000, &cluster(&frames), 0, None).unwrap();
        let t = times(&out[0]);
        assert_eq!(t[0], (0, 1, 0));
        assert_eq!(t[1], (1, 3599, 0));
        assert!(t.iter().all(|&(_, d, _)| d > 0));
    }

    #[test]
    fn tracks_in_order_early_frames_saturate_and_data_is_not_copied() {
        // Track 2 has a frame 5 ms before the Cluster's Timecode; track 3 is not asked for.
        let frames = [
            frame(1, 100, true),
            frame(2, 95, true),
            frame(3, 100, true),
            frame(1, 140, false),
        ];
        let c = cluster(&frames);
        let out = fragment_samples(
            &[video(2, None), video(1, None), video(4, None)],
            1_000_000,
            &c,
            2_000_000,
            None,
        )
        .unwrap();
        let tracks: Vec<u64> = out.iter().map(|t| t.track).collect();
        assert_eq!(tracks, [2, 1, 4]);
        assert_eq!(out[0].samples[0].decode_time, 0);
        assert_eq!(out[1].samples.len(), 2);
        assert_eq!(out[1].samples[0].decode_time, 180);
        assert!(out[2].samples.is_empty());
        let range = c[0].as_ptr_range();
        for s in out.iter().flat_map(|t| &t.samples) {
            assert!(range.contains(&s.data.as_ptr()));
        }
    }

    #[test]
    fn positions_round_to_the_nearest_tick_and_saturate() {
        assert_eq!(ns_to_ticks(33_333_333, 90_000), 3000);
        assert_eq!(ns_to_ticks(5_555, 90_000), 0);
        assert_eq!(ns_to_ticks(5_556, 90_000), 1);
        assert_eq!(ns_to_ticks(-1, 90_000), 0);
        assert_eq!(ns_to_ticks(i128::MAX, 90_000), u64::MAX);
        assert_eq!(ns_to_ticks(i128::MAX / 2, 2), u64::MAX);
    }

    #[test]
    fn broken_clusters_are_errors() {
        let err = fragment_samples(
            &[video(1, None)],
            1_000_000,
            &[Bytes::from_static(b"\x1aE")],
            0,
            None,
        );
        assert!(matches!(err, Err(RemuxError::Mkv(_))), "{err:?}");
    }
}
