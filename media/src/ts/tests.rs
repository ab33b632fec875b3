//! Segment-level checks on synthetic tracks with a small transport stream reader written from
//! ISO/IEC 13818-1 for these tests: packet framing, PSI CRCs, continuity counters, PCR
//! placement and monotonicity, PES timestamps, access unit contents, interleaving, errors, and
//! that arbitrary sample bytes never panic.

use bytes::Bytes;
use proptest::prelude::*;

use super::packet::crc32_mpeg2;
use super::*;
use crate::codec::{AudioSpecificConfig, AvcDecoderConfig};

fn avc_track(number: u64) -> TrackConfig {
    TrackConfig {
        number,
        codec: Codec::Avc(AvcDecoderConfig {
            profile_idc: 66,
            profile_compatibility: 0xc0,
            level_idc: 30,
            nal_length_size: 4,
            sps: vec![vec![0x67, 0x42, 0xc0, 0x1e]],
            pps: vec![vec![0x68, 0xce, 0x3c, 0x80]],
            high_profile: None,
        }),
        codec_private: Bytes::new(),
        timescale: 90_000,
        codec_string: "avc1.42c01e".into(),
        width: 320,
        height: 240,
        sample_rate: 0,
        channels: 0,
        default_duration: Some(3600),
    }
}

fn hevc_track(number: u64) -> TrackConfig {
    let hvcc = super::video::tests::hvcc();
    TrackConfig {
        codec: Codec::Hevc(crate::codec::HevcDecoderConfig::parse(&hvcc).unwrap()),
        codec_private: Bytes::from(hvcc),
        codec_string: "hvc1.1.6.L93.90".into(),
        ..avc_track(number)
    }
}

fn aac_track(number: u64) -> TrackConfig {
    // AAC LC, 48000 Hz, stereo.
    let asc = AudioSpecificConfig::parse(&[0x11, 0x90]).unwrap();
    TrackConfig {
        number,
        codec: Codec::Aac(asc),
        codec_private: Bytes::from_static(&[0x11, 0x90]),
        timescale: 48_000,
        codec_string: "mp4a.40.2".into(),
        width: 0,
        height: 0,
        sample_rate: 48_000,
        channels: 2,
        default_duration: Some(1024),
    }
}

/// `n` video frames at 25 fps from `start` (90 kHz), a key frame every `gop`, each a slice NAL
/// unit of `size` bytes.
fn video_run(track: u64, start: u64, n: usize, gop: usize, size: usize) -> TrackSamples {
    TrackSamples {
        track,
        samples: (0..n)
            .map(|i| {
                let key = i % gop == 0;
                let mut data = (size as u32 + 1).to_be_bytes().to_vec();
                data.push(if key { 0x65 } else { 0x41 });
                data.extend((0..size).map(|j| (i + j) as u8 | 1));
                Sample {
                    decode_time: start + 3600 * i as u64,
                    duration: 3600,
                    composition_offset: 0,
                    key,
                    data: Bytes::from(data),
                }
            })
            .collect(),
    }
}

/// `n` AAC frames of 1024 samples at 48 kHz from `start` (48 kHz ticks).
fn audio_run(track: u64, start: u64, n: usize) -> TrackSamples {
    TrackSamples {
        track,
        samples: (0..n)
            .map(|i| Sample {
                decode_time: start + 1024 * i as u64,
                duration: 1024,
                composition_offset: 0,
                key: true,
                data: Bytes::from(vec![0x21; 200 + i]),
            })
            .collect(),
    }
}

/// One PES packet as the test reader reassembled it.
#[derive(Debug)]
struct Pes {
    pid: u16,
    /// Index of its first packet in the segment.
    packet: usize,
    pts: u64,
    dts: u64,
    random_access: bool,
    data: Vec<u8>,
}

/// What the test reader found in a segment.
#[derive(Debug, Default)]
struct Demuxed {
    /// (PID, stream_type) from the PMT.
    streams: Vec<(u16, u8)>,
    pcr_pid: u16,
    /// (packet index, PCR base).
    pcrs: Vec<(usize, u64)>,
    pes: Vec<Pes>,
}

fn timestamp(b: &[u8]) -> u64 {
    (u64::from(b[0] >> 1 & 7) << 30)
        | (u64::from(u16::from_be_bytes([b[1], b[2]]) >> 1) << 15)
        | u64::from(u16::from_be_bytes([b[3], b[4]]) >> 1)
}

/// Reads a segment, asserting the packet-level rules on the way: 188-byte packets with the
/// sync byte, continuity counters from 0 and consecutive on payload packets, PAT then PMT
/// with valid CRCs, PES packets whose declared length matches.
fn demux(chunks: &[Bytes]) -> Demuxed {
    let data: Vec<u8> = chunks.concat();
    assert!(chunks.iter().all(|c| c.len().is_multiple_of(188)));
    let mut d = Demuxed::default();
    let mut counters = std::collections::BTreeMap::new();
    let mut open: std::collections::BTreeMap<u16, (usize, bool, Vec<u8>)> = Default::default();
    let mut finished = Vec::new();
    for (i, p) in data.chunks(188).enumerate() {
        assert_eq!((p.len(), p[0]), (188, 0x47), "packet {i}");
        let pid = u16::from_be_bytes([p[1], p[2]]) & 0x1fff;
        let start = p[1] & 0x40 != 0;
        let control = p[3] >> 4;
        let cc = p[3] & 15;
        let has_payload = control & 1 != 0;
        let mut payload = &p[4..];
        let mut random_access = false;
        if control & 2 != 0 {
            let len = usize::from(p[4]);
            assert!(len <= 183);
            let af = &p[5..5 + len];
            if len > 0 {
                random_access = af[0] & 0x40 != 0;
                if af[0] & 0x10 != 0 {
                    let mut v = [0u8; 8];
                    v[2..].copy_from_slice(&af[1..7]);
                    assert_eq!(pid, d.pcr_pid, "PCR on the PCR PID");
                    d.pcrs.push((i, u64::from_be_bytes(v) >> 15));
                }
            }
            payload = &p[5 + len..];
            assert_eq!(has_payload, !payload.is_empty(), "packet {i}");
        }
        if has_payload {
            let expected = counters.get(&pid).map_or(0, |c: &u8| (c + 1) & 15);
            assert_eq!(
                cc, expected,
                "continuity counter of PID {pid:#x}, packet {i}"
            );
            counters.insert(pid, cc);
        } else {
            continue;
        }
        if pid == PAT_PID || pid == PMT_PID {
            assert!(start && payload[0] == 0, "one section per packet");
            let len = usize::from(u16::from_be_bytes([payload[2], payload[3]]) & 0x0fff);
            let section = &payload[1..4 + len];
            assert_eq!(crc32_mpeg2(section), 0, "CRC of PID {pid:#x}");
            if pid == PAT_PID {
                assert_eq!(i, 0, "PAT first");
                assert_eq!(&section[8..12], &[0, 1, 0xf0, 0x00]);
            } else {
                assert_eq!(i, 1, "PMT second");
                d.pcr_pid = u16::from_be_bytes([section[8], section[9]]) & 0x1fff;
                for s in section[12..section.len() - 4].chunks(5) {
                    d.streams
                        .push((u16::from_be_bytes([s[1], s[2]]) & 0x1fff, s[0]));
                }
            }
            continue;
        }
        if start {
            if let Some(done) = open.remove(&pid) {
                finished.push((pid, done));
            }
            open.insert(pid, (i, random_access, payload.to_vec()));
        } else {
            open.get_mut(&pid).expect("PES continues").2.extend(payload);
        }
    }
    finished.extend(open);
    for (pid, (packet, random_access, bytes)) in finished {
        assert_eq!(&bytes[..3], &[0, 0, 1]);
        let declared = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
        if declared != 0 {
            assert_eq!(declared, bytes.len() - 6, "PES_packet_length");
        }
        let flags = bytes[7] >> 6;
        let header_len = usize::from(bytes[8]);
        let pts = timestamp(&bytes[9..14]);
        let dts = if flags == 3 {
            timestamp(&bytes[14..19])
        } else {
            pts
        };
        assert!(flags == 2 || (flags == 3 && dts != pts));
        d.pes.push(Pes {
            pid,
            packet,
            pts,
            dts,
            random_access,
            data: bytes[9 + header_len..].to_vec(),
        });
    }
    d.pes.sort_by_key(|p| p.packet);
    d
}

fn nal_types(annex_b: &[u8]) -> Vec<u8> {
    crate::codec::nal::annex_b_nal_units(annex_b)
        .map(|n| n.unwrap()[0] & 0x1f)
        .collect()
}

#[test]
fn video_and_audio_interleave_by_decode_time_with_valid_timing() {
    let (video, audio) = (avc_track(1), aac_track(2));
    let start = 10 * 90_000;
    let runs = [
        video_run(1, start, 50, 25, 3000),
        audio_run(2, 10 * 48_000, 94),
    ];
    let chunks = segment(&[&video, &audio], &runs).unwrap();
    let d = demux(&chunks);
    assert_eq!(d.streams, [(VIDEO_PID, 0x1b), (AUDIO_PID, 0x0f)]);
    assert_eq!(d.pcr_pid, VIDEO_PID);

    let video: Vec<&Pes> = d.pes.iter().filter(|p| p.pid == VIDEO_PID).collect();
    assert_eq!(video.len(), 50);
    for (i, (p, s)) in video.iter().zip(&runs[0].samples).enumerate() {
        assert_eq!((p.pts, p.dts), (s.decode_time, s.decode_time));
        assert_eq!(p.random_access, s.key);
        let types = nal_types(&p.data);
        let want: &[u8] = if s.key { &[9, 7, 8, 5] } else { &[9, 1] };
        assert_eq!(types, want, "frame {i}");
        assert!(
            d.pcrs.iter().any(|&(at, _)| at == p.packet),
            "PCR in frame {i}"
        );
    }

    // Every AAC frame arrives, in order, in its own ADTS-framed PES packet with its PTS.
    let audio: Vec<&Pes> = d.pes.iter().filter(|p| p.pid == AUDIO_PID).collect();
    assert_eq!(audio.len(), 94);
    for (p, s) in audio.iter().zip(&runs[1].samples) {
        assert_eq!(&p.data[..2], &[0xff, 0xf1]);
        let len = (usize::from(p.data[3] & 3) << 11)
            | (usize::from(p.data[4]) << 3)
            | usize::from(p.data[5] >> 5);
        assert_eq!(len, p.data.len());
        assert_eq!(&p.data[7..], &s.data[..]);
        assert_eq!(p.pts, s.decode_time * 90_000 / 48_000);
    }

    // Decode order across PIDs, PCRs rising, at most 40 ms apart, behind the data after them.
    for w in d.pes.windows(2) {
        assert!(w[0].dts <= w[1].dts);
    }
    assert_eq!(
        d.pcrs[0].0, 2,
        "the first packet after the tables carries a PCR"
    );
    for w in d.pcrs.windows(2) {
        assert!(w[0].1 <= w[1].1 && w[1].1 - w[0].1 <= 3_600);
    }
    for p in &d.pes {
        let pcr = d
            .pcrs
            .iter()
            .rev()
            .find(|&&(at, _)| at <= p.packet)
            .unwrap()
            .1;
        assert!(pcr + PCR_DELAY <= p.dts, "PCR {pcr} before DTS {}", p.dts);
    }
}

#[test]
fn composition_offsets_give_a_dts_and_timestamps_wrap() {
    let video = avc_track(1);
    let mut run = video_run(1, (1 << 33) - 3600, 3, 25, 10);
    run.samples[1].composition_offset = 7200;
    let d = demux(&segment(&[&video], &[run]).unwrap());
    let times: Vec<(u64, u64)> = d.pes.iter().map(|p| (p.pts, p.dts)).collect();
    assert_eq!(
        times,
        [
            ((1 << 33) - 3600, (1 << 33) - 3600),
            (7200, 0),
            (3600, 3600)
        ]
    );
}

#[test]
fn negative_composition_offsets_move_decode_times_back_never_presentation_times() {
    // I P B as fMP4 carries them: decode times are the sorted presentation times.
    let video = avc_track(1);
    let mut run = video_run(1, 90_000, 3, 25, 10);
    run.samples[1].composition_offset = 7200;
    run.samples[2].composition_offset = -3600;
    let d = demux(&segment(&[&video], &[run]).unwrap());
    let times: Vec<(u64, u64)> = d.pes.iter().map(|p| (p.pts, p.dts)).collect();
    assert_eq!(
        times,
        [(90_000, 86_400), (100_800, 90_000), (93_600, 93_600)]
    );
    assert!(times.iter().all(|(pts, dts)| pts >= dts));
}

#[test]
fn audio_only_carries_the_pcr_on_the_audio_pid() {
    let audio = aac_track(2);
    let chunks = segment(&[&audio], &[audio_run(2, 0, 100)]).unwrap();
    let d = demux(&chunks);
    assert_eq!(d.pcr_pid, AUDIO_PID);
    assert_eq!(d.pcrs[0], (2, 0));
    for w in d.pcrs.windows(2) {
        assert!(w[0].1 <= w[1].1 && w[1].1 - w[0].1 <= 3_600);
    }
}

#[test]
fn large_segments_come_in_chunks_of_whole_packets() {
    let video = avc_track(1);
    let chunks = segment(&[&video], &[video_run(1, 0, 100, 25, 20_000)]).unwrap();
    assert!(chunks.len() > 10);
    assert_eq!(demux(&chunks).pes.len(), 100);
}

#[test]
fn invalid_input_is_an_error() {
    let (video, audio) = (avc_track(1), aac_track(2));
    let stray = segment(&[&video], &[audio_run(2, 0, 1)]);
    assert!(matches!(stray, Err(RemuxError::InvalidFrame(_))));
    let mut run = video_run(1, 0, 2, 25, 10);
    run.samples[1].data = Bytes::from_static(&[0, 0, 1, 0, 0x41]);
    let err = segment(&[&video], &[run]).unwrap_err();
    assert!(err.to_string().contains("track 1"), "{err}");
    let mut run = video_run(1, 0, 1, 25, 10);
    run.samples[0].data = Bytes::new();
    assert!(segment(&[&video], &[run]).is_err());
    let mut run = audio_run(2, 0, 1);
    run.samples[0].data = Bytes::from(vec![0; 9000]);
    assert!(segment(&[&audio], &[run]).is_err());
    let mut run = audio_run(2, 0, 1);
    run.samples[0].data = Bytes::new();
    assert!(segment(&[&audio], &[run]).is_err());
    let mut zero = audio.clone();
    zero.timescale = 0;
    assert!(matches!(
        segment(&[&zero], &[]),
        Err(RemuxError::InvalidCodecPrivateData { track: 2, .. })
    ));
}

#[test]
fn tracks_without_samples_are_still_announced() {
    let (video, audio) = (avc_track(1), aac_track(2));
    let d = demux(&segment(&[&video, &audio], &[]).unwrap());
    assert_eq!(d.streams.len(), 2);
    assert!(d.pes.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Arbitrary sample bytes, flags and times give a segment or an error, never a panic, and
    /// any segment is well formed.
    #[test]
    fn arbitrary_samples_never_panic(
        hevc in any::<bool>(),
        samples in proptest::collection::vec(
            (any::<bool>(), any::<u64>(), any::<i32>(), any::<bool>(),
             proptest::collection::vec(any::<u8>(), 0..600)),
            0..12,
        ),
    ) {
        let video = if hevc { hevc_track(1) } else { avc_track(1) };
        let audio = aac_track(2);
        let mut runs = [TrackSamples { track: 1, samples: vec![] },
                        TrackSamples { track: 2, samples: vec![] }];
        for (is_video, decode_time, composition_offset, key, mut data) in samples {
            if is_video && data.len() % 2 == 0 {
                // Half the video samples are one well-framed NAL unit.
                let mut framed = (data.len() as u32).to_be_bytes().to_vec();
                framed.append(&mut data);
                data = framed;
            }
            runs[usize::from(!is_video)].samples.push(Sample {
                decode_time: decode_time >> 20,
                duration: 1,
                composition_offset,
                key,
                data: Bytes::from(data),
            });
        }
        if let Ok(chunks) = segment(&[&video, &audio], &runs) {
            let data: Vec<u8> = chunks.concat();
            prop_assert!(data.len().is_multiple_of(188));
            prop_assert!(data.chunks(188).all(|p| p[0] == 0x47));
        }
    }
}
