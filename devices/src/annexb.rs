//! H.264 and H.265 elementary streams in (ITU-T H.264 / H.265 Annex B byte streams, as cameras
//! and encoders write them raw), frames out (issue 14, `kinescope put --format h264|h265`).
//! Sans-IO: push bytes, poll a track (once its parameter sets have been seen) and then frames.
//!
//! NAL units are split at start codes and grouped into access units (H.264 §7.4.1.2.3, H.265
//! §7.4.2.4.4: an access unit delimiter, a parameter set or SEI after a picture, or the first
//! slice of a new picture starts the next one). Each becomes one frame of length-prefixed NAL
//! units (4-byte lengths, access unit delimiters left out); a frame with an IDR (H.264) or IRAP
//! (H.265) picture is a key frame. The track's codec private data (`avcC`, ISO/IEC 14496-15
//! §5.3.3.1; `hvcC`, §8.3.3.1) is built from the first SPS and PPS (and VPS). Frames are timed
//! `1/fps` apart in presentation order, which comes from each picture's order count (H.264
//! §8.2.1.1 with `pic_order_cnt_type` 0, what x264 and most camera encoders write; H.265
//! §8.3.1), read from its first slice header: the frames from one key frame to the next are
//! held, then handed out in decoding order, each timed by its rank in presentation order — so
//! streams with B-frames keep their timing. H.264 streams with `pic_order_cnt_type` 1 or 2 are
//! timed in decoding order (type 2 cannot have B-frames; type 1 is rare and not read).

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use kinescope_media::codec::h265::PpsSliceFields;
use kinescope_media::codec::{AvcSps, HevcSps};
use kinescope_media::codec::{h264, h265};
use kinescope_media::mkv::{Frame, Track, TrackType};

/// Which codec the stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    H264,
    H265,
}

/// What [`AnnexB::poll`] yields: the track once, then frames.
#[derive(Debug, Clone, PartialEq)]
pub enum Elementary {
    Track(Track),
    Frame(Frame),
}

#[derive(Debug, thiserror::Error)]
pub enum AnnexBError {
    #[error("not an Annex-B byte stream: no start code in the first {0} bytes")]
    NoStartCode(usize),
    #[error("{0}")]
    ParameterSet(String),
    #[error("pictures before the first SPS and PPS")]
    NoParameterSets,
    #[error("slice header: {0}")]
    Slice(String),
}

/// The parser. See the module documentation.
#[derive(Debug)]
pub struct AnnexB {
    codec: Codec,
    /// Frame duration in TimecodeScale units (1 ms).
    frame_ms: f64,
    /// Bytes not yet split into NAL units: from the last start code on.
    pending: BytesMut,
    seen_start: bool,
    /// The NAL units of the access unit being gathered, and whether it has a picture yet.
    unit: Vec<Bytes>,
    unit_has_picture: bool,
    vps: Option<Bytes>,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    track_sent: bool,
    /// Frames handed out so far (the next one's rank in presentation order).
    frames: u64,
    /// Where picture order counts come from, and the pictures since the last key frame.
    order: Option<(PocSource, PocPeriod)>,
    out: VecDeque<Result<Elementary, AnnexBError>>,
    failed: bool,
}

/// The parameter sets a slice header is read with.
#[derive(Debug)]
enum PocSource {
    Avc(AvcSps),
    Hevc(HevcSps, PpsSliceFields),
}

/// The pictures since the last key frame with their order counts, and the `PicOrderCntMsb`
/// and `pic_order_cnt_lsb` of the previous picture that later ones count from (H.264: the
/// previous reference picture; H.265: the previous `TemporalId` 0 picture that is not a
/// leading or sub-layer non-reference picture).
#[derive(Debug, Default)]
struct PocPeriod {
    pictures: Vec<(i64, bool, Bytes)>,
    prev_msb: i64,
    prev_lsb: i64,
}

impl AnnexB {
    pub fn new(codec: Codec, fps: f64) -> Self {
        Self {
            codec,
            frame_ms: 1000.0 / fps.max(0.001),
            pending: BytesMut::new(),
            seen_start: false,
            unit: Vec::new(),
            unit_has_picture: false,
            vps: None,
            sps: None,
            pps: None,
            track_sent: false,
            frames: 0,
            order: None,
            out: VecDeque::new(),
            failed: false,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed {
            return;
        }
        self.pending.extend_from_slice(chunk);
        // Every NAL unit that a later start code has closed.
        loop {
            let Some(start) = start_code(&self.pending, 0) else {
                if !self.seen_start && self.pending.len() > 1 << 20 {
                    self.fail(AnnexBError::NoStartCode(self.pending.len()));
                }
                return;
            };
            let (at, len) = start;
            if !self.seen_start {
                self.seen_start = true;
                let _ = self.pending.split_to(at + len);
                continue;
            }
            let nal = self.pending.split_to(at).freeze();
            let _ = self.pending.split_to(len);
            self.on_nal(trim_zeros(nal));
        }
    }

    /// The stream has ended: its last access unit is complete.
    pub fn finish(&mut self) {
        if self.failed {
            return;
        }
        if self.seen_start {
            let rest = std::mem::take(&mut self.pending).freeze();
            self.on_nal(trim_zeros(rest));
        } else if !self.pending.is_empty() {
            self.fail(AnnexBError::NoStartCode(self.pending.len()));
            return;
        }
        self.close_unit();
        self.flush_period();
    }

    pub fn poll(&mut self) -> Option<Result<Elementary, AnnexBError>> {
        self.out.pop_front()
    }

    fn fail(&mut self, e: AnnexBError) {
        self.failed = true;
        self.out.push_back(Err(e));
    }

    fn on_nal(&mut self, nal: Bytes) {
        if nal.is_empty() || self.failed {
            return;
        }
        let kind = self.kind(&nal);
        if kind.starts_unit && self.unit_has_picture
            || kind.picture && kind.first_slice && self.unit_has_picture
        {
            self.close_unit();
        }
        match kind.parameter_set {
            Some(0) => self.vps = self.vps.take().or(Some(nal.clone())),
            Some(1) => self.sps = self.sps.take().or(Some(nal.clone())),
            Some(2) => self.pps = self.pps.take().or(Some(nal.clone())),
            _ => {}
        }
        if !kind.delimiter {
            self.unit.push(nal);
        }
        self.unit_has_picture |= kind.picture;
    }

    fn close_unit(&mut self) {
        let unit = std::mem::take(&mut self.unit);
        let had_picture = std::mem::replace(&mut self.unit_has_picture, false);
        if !had_picture {
            // Parameter sets or SEI without a picture (at the end): nothing to show.
            return;
        }
        if !self.track_sent {
            match self.track() {
                Ok(t) => {
                    self.out.push_back(Ok(Elementary::Track(t)));
                    self.track_sent = true;
                }
                Err(e) => return self.fail(e),
            }
        }
        let key = unit.iter().any(|n| self.kind(n).key);
        let mut data = BytesMut::with_capacity(unit.iter().map(|n| n.len() + 4).sum());
        for n in &unit {
            data.put_u32(n.len() as u32);
            data.put_slice(n);
        }
        let data = data.freeze();
        if self.order.is_none() {
            let timecode = self.timecode(0);
            self.frames += 1;
            self.out.push_back(Ok(Elementary::Frame(Frame {
                track: 1,
                timecode,
                key,
                data,
            })));
            return;
        }
        let Some(slice) = unit.iter().find(|n| self.kind(n).picture) else {
            return;
        };
        if key {
            self.flush_period();
        }
        let first_of_stream = self.frames == 0;
        let (source, period) = self.order.as_mut().expect("checked");
        let first_of_stream = first_of_stream && period.pictures.is_empty();
        // (lsb, its bits, whether the count restarts here, whether later pictures count from it)
        let read = match source {
            PocSource::Avc(sps) => h264::slice_pic_order_cnt_lsb(slice, sps).map(|lsb| {
                let bits = sps.log2_max_pic_order_cnt_lsb.unwrap_or(16);
                (lsb.unwrap_or(0), bits, key, key || slice[0] & 0x60 != 0)
            }),
            PocSource::Hevc(sps, pps) => {
                h265::slice_pic_order_cnt_lsb(slice, sps, pps).map(|lsb| {
                    let t = (slice[0] >> 1) & 0x3f;
                    let temporal_id = (slice[1] & 7).saturating_sub(1);
                    // IDR and BLA pictures, and a CRA picture that starts the stream.
                    let restarts = (16..=20).contains(&t) || t == 21 && first_of_stream;
                    let leading = (6..=9).contains(&t);
                    let sub_layer_non_reference = t <= 14 && t % 2 == 0;
                    let anchor = temporal_id == 0 && !leading && !sub_layer_non_reference;
                    (lsb, sps.log2_max_pic_order_cnt_lsb, restarts, anchor)
                })
            }
        };
        let (lsb, bits, restarts, anchor) = match read {
            Ok(r) => r,
            Err(e) => return self.fail(AnnexBError::Slice(e.to_string())),
        };
        let (lsb, max) = (i64::from(lsb), 1i64 << bits);
        // H.264 §8.2.1.1, H.265 §8.3.1: the most significant part follows the previous
        // anchor picture's, wrapping.
        let msb = if restarts {
            0
        } else if lsb < period.prev_lsb && period.prev_lsb - lsb >= max / 2 {
            period.prev_msb + max
        } else if lsb > period.prev_lsb && lsb - period.prev_lsb > max / 2 {
            period.prev_msb - max
        } else {
            period.prev_msb
        };
        if anchor {
            (period.prev_msb, period.prev_lsb) = (msb, lsb);
        }
        period.pictures.push((msb + lsb, key, data));
    }

    /// Hands out the held pictures of the IDR period, in decoding order, each timed by its rank
    /// in presentation order.
    fn flush_period(&mut self) {
        let Some((_, period)) = &mut self.order else {
            return;
        };
        let pictures = std::mem::take(&mut period.pictures);
        let mut by_poc: Vec<usize> = (0..pictures.len()).collect();
        by_poc.sort_by_key(|&i| pictures[i].0);
        let mut rank = vec![0; pictures.len()];
        for (r, &i) in by_poc.iter().enumerate() {
            rank[i] = r as u64;
        }
        for ((_, key, data), rank) in pictures.into_iter().zip(rank) {
            let timecode = self.timecode(rank);
            self.out.push_back(Ok(Elementary::Frame(Frame {
                track: 1,
                timecode,
                key,
                data,
            })));
        }
        self.frames += by_poc.len() as u64;
    }

    /// The timecode of the frame `rank` places after the frames handed out so far.
    fn timecode(&self, rank: u64) -> i64 {
        ((self.frames + rank) as f64 * self.frame_ms).round() as i64
    }

    /// The video track, from the parameter sets seen so far; for H.264 with
    /// `pic_order_cnt_type` 0, frames are reordered from then on.
    fn track(&mut self) -> Result<Track, AnnexBError> {
        let (Some(sps), Some(pps)) = (&self.sps, &self.pps) else {
            return Err(AnnexBError::NoParameterSets);
        };
        let bad = |e: kinescope_media::codec::CodecError| AnnexBError::ParameterSet(e.to_string());
        let (codec_id, private, width, height) = match self.codec {
            Codec::H264 => {
                let parsed = AvcSps::parse(sps).map_err(bad)?;
                if parsed.log2_max_pic_order_cnt_lsb.is_some() {
                    self.order = Some((PocSource::Avc(parsed.clone()), PocPeriod::default()));
                }
                (
                    "V_MPEG4/ISO/AVC",
                    avcc(sps, pps),
                    parsed.width,
                    parsed.height,
                )
            }
            Codec::H265 => {
                let vps = self.vps.as_ref().ok_or(AnnexBError::NoParameterSets)?;
                let parsed = HevcSps::parse(sps).map_err(bad)?;
                let fields = PpsSliceFields::parse(pps).map_err(bad)?;
                self.order = Some((
                    PocSource::Hevc(parsed.clone(), fields),
                    PocPeriod::default(),
                ));
                (
                    "V_MPEGH/ISO/HEVC",
                    hvcc(&parsed, vps, sps, pps),
                    parsed.width,
                    parsed.height,
                )
            }
        };
        Ok(Track {
            number: 1,
            uid: 1,
            track_type: TrackType::Video,
            codec_id: codec_id.into(),
            width: Some(u64::from(width)),
            height: Some(u64::from(height)),
            codec_private: private,
            default_duration_ns: Some((self.frame_ms * 1e6).round() as u64),
            ..Track::default()
        })
    }

    fn kind(&self, nal: &[u8]) -> NalKind {
        let first_slice = nal
            .get(if self.codec == Codec::H264 { 1 } else { 2 })
            .is_some_and(|b| b & 0x80 != 0);
        match self.codec {
            Codec::H264 => {
                let t = nal[0] & 0x1f;
                NalKind {
                    picture: (1..=5).contains(&t),
                    first_slice,
                    key: t == 5,
                    delimiter: t == 9,
                    starts_unit: matches!(t, 6..=9 | 14..=18),
                    parameter_set: match t {
                        7 => Some(1),
                        8 => Some(2),
                        _ => None,
                    },
                }
            }
            Codec::H265 => {
                let t = (nal[0] >> 1) & 0x3f;
                NalKind {
                    picture: t <= 31,
                    first_slice,
                    key: (16..=23).contains(&t),
                    delimiter: t == 35,
                    starts_unit: matches!(t, 32..=35 | 39 | 41..=44 | 48..=55),
                    parameter_set: match t {
                        32 => Some(0),
                        33 => Some(1),
                        34 => Some(2),
                        _ => None,
                    },
                }
            }
        }
    }
}

struct NalKind {
    picture: bool,
    /// For a picture: its first slice (`first_mb_in_slice` = 0 / first slice segment flag).
    first_slice: bool,
    key: bool,
    delimiter: bool,
    /// Starts a new access unit if the current one has a picture already.
    starts_unit: bool,
    /// 0 VPS, 1 SPS, 2 PPS.
    parameter_set: Option<u8>,
}

/// The first start code (`00 00 01`, or `00 00 00 01`) at or after `from`: (offset, length).
fn start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let i = data.get(from..)?.windows(3).position(|w| w == [0, 0, 1])? + from;
    Some(if i > 0 && data[i - 1] == 0 {
        (i - 1, 4)
    } else {
        (i, 3)
    })
}

/// A NAL unit without the zero bytes that may trail it before the next start code.
fn trim_zeros(nal: Bytes) -> Bytes {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    nal.slice(..end)
}

/// An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1) with one SPS and one PPS and
/// 4-byte NAL lengths.
fn avcc(sps: &[u8], pps: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_slice(&[1, sps[1], sps[2], sps[3], 0xFF, 0xE1]);
    out.put_u16(sps.len() as u16);
    out.put_slice(sps);
    out.put_u8(1);
    out.put_u16(pps.len() as u16);
    out.put_slice(pps);
    out.freeze()
}

/// An HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1) with one VPS, SPS and PPS and
/// 4-byte NAL lengths.
fn hvcc(parsed: &HevcSps, vps: &[u8], sps: &[u8], pps: &[u8]) -> Bytes {
    let g = &parsed.general;
    let mut out = BytesMut::new();
    out.put_u8(1);
    out.put_u8((g.profile_space << 6) | (u8::from(g.tier_flag) << 5) | g.profile_idc);
    out.put_u32(g.profile_compatibility_flags);
    out.put_slice(&g.constraint_indicator_flags.to_be_bytes()[2..]);
    out.put_u8(g.level_idc);
    out.put_u16(0xF000); // min_spatial_segmentation_idc 0
    out.put_u8(0xFC); // parallelismType 0
    out.put_u8(0xFC | parsed.chroma_format_idc);
    out.put_u8(0xF8 | (parsed.bit_depth_luma - 8));
    out.put_u8(0xF8 | (parsed.bit_depth_chroma - 8));
    out.put_u16(0); // avgFrameRate unknown
    // constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne 3.
    out.put_u8(
        ((parsed.max_sub_layers & 7) << 3) | (u8::from(parsed.temporal_id_nesting) << 2) | 3,
    );
    out.put_u8(3);
    for (kind, nal) in [(32u8, vps), (33, sps), (34, pps)] {
        out.put_u8(0x80 | kind);
        out.put_u16(1);
        out.put_u16(nal.len() as u16);
        out.put_slice(nal);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinescope_media::codec::AvcDecoderConfig;

    fn nal(bytes: &[u8]) -> Vec<u8> {
        [&[0, 0, 0, 1][..], bytes].concat()
    }

    /// A made-up H.264 stream: SPS, PPS, IDR, two P pictures, AUD + SPS + PPS + IDR, P.
    fn h264_stream(sps: &[u8]) -> Vec<u8> {
        let pps = [0x68, 0xeb, 0xcc, 0xb2, 0x2c];
        let idr = [0x65, 0x88, 0x84, 0x00, 0x33];
        let p = [0x41, 0x9a, 0x21, 0x6c];
        [
            nal(sps),
            nal(&pps),
            nal(&idr),
            nal(&p),
            nal(&p),
            nal(&[0x09, 0xf0]),
            nal(sps),
            nal(&pps),
            nal(&idr),
            nal(&p),
        ]
        .concat()
    }

    fn run(codec: Codec, data: &[u8], chunk: usize) -> Vec<Elementary> {
        let mut p = AnnexB::new(codec, 25.0);
        for c in data.chunks(chunk) {
            p.push(c);
        }
        p.finish();
        std::iter::from_fn(|| p.poll())
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn h264_access_units_become_frames_under_an_avcc_the_parser_reads() {
        // A camera's avcC (after the seed's fuzz selector byte): its one SPS is 29 bytes.
        let avcc = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/codec/producer-c-1.6.4-avcc"
        ))
        .unwrap();
        let sps = &avcc[1 + 8..1 + 8 + 29];
        let data = h264_stream(sps);
        for chunk in [1, 7, 4096] {
            let out = run(Codec::H264, &data, chunk);
            let Elementary::Track(track) = &out[0] else {
                panic!("{out:?}")
            };
            let config = AvcDecoderConfig::parse(&track.codec_private).unwrap();
            assert_eq!(
                (config.sps.len(), config.pps.len(), config.nal_length_size),
                (1, 1, 4)
            );
            assert_eq!(config.sps[0], sps);
            assert_eq!((track.width, track.height), (Some(640), Some(480)));
            let frames: Vec<&Frame> = out[1..]
                .iter()
                .map(|e| match e {
                    Elementary::Frame(f) => f,
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(
                frames
                    .iter()
                    .map(|f| (f.key, f.timecode))
                    .collect::<Vec<_>>(),
                [
                    (true, 0),
                    (false, 40),
                    (false, 80),
                    (true, 120),
                    (false, 160)
                ]
            );
            // The second IDR's frame carries its parameter sets, not the delimiter.
            let nals: Vec<u8> =
                kinescope_media::codec::nal::length_prefixed_nal_units(&frames[3].data, 4)
                    .unwrap()
                    .map(|n| n.unwrap()[0] & 0x1f)
                    .collect();
            assert_eq!(nals, [7, 8, 5], "chunk {chunk}");
        }
    }

    /// (timecode, key) of every frame of a test stream, fed `chunk` bytes at a time.
    fn timing(codec: Codec, name: &str, chunk: usize) -> Vec<(i64, bool)> {
        let path = format!("{}/../testdata/codec/{name}", env!("CARGO_MANIFEST_DIR"));
        run(codec, &std::fs::read(path).unwrap(), chunk)
            .into_iter()
            .filter_map(|e| match e {
                Elementary::Frame(f) => Some((f.timecode, f.key)),
                Elementary::Track(_) => None,
            })
            .collect()
    }

    #[test]
    fn b_frames_are_timed_in_presentation_order() {
        // 20 frames with 3 B-frames (pyramid) and a key frame every 10; the timestamps are
        // those FFmpeg's muxer gave the same pictures (testdata/codec/README.md). In the
        // H.265 stream the second key frame is a CRA picture with a leading (RASL) picture
        // after it that is shown before it.
        let cases = [
            (
                Codec::H264,
                "x264-bframes.h264",
                [
                    0, 160, 80, 40, 120, 320, 240, 200, 280, 360, 400, 560, 480, 440, 520, 720,
                    640, 600, 680, 760,
                ],
            ),
            (
                Codec::H265,
                "x265-bframes.h265",
                [
                    0, 160, 80, 40, 120, 320, 240, 200, 280, 400, 360, 560, 480, 440, 520, 720,
                    640, 600, 680, 760,
                ],
            ),
        ];
        for (codec, name, expected) in cases {
            for chunk in [1, 100, 1 << 20] {
                let frames = timing(codec, name, chunk);
                let timecodes: Vec<i64> = frames.iter().map(|f| f.0).collect();
                assert_eq!(timecodes, expected, "{name}, chunk {chunk}");
                let keys: Vec<i64> = frames.iter().filter(|f| f.1).map(|f| f.0).collect();
                assert_eq!(keys, [0, 400], "{name}");
            }
        }
    }

    #[test]
    fn refuses_what_has_no_start_code() {
        let mut p = AnnexB::new(Codec::H264, 25.0);
        p.push(b"plain text, not video");
        p.finish();
        assert!(matches!(p.poll(), Some(Err(AnnexBError::NoStartCode(_)))));
    }
}
