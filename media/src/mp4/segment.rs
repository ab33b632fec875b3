//! A media segment (ISO/IEC 14496-12 §8.8.4–§8.8.12, §8.16.1; CMAF fragment): `styp`, a `moof`
//! with `mfhd` and, per track with samples, a `traf` holding `tfhd` (default-base-is-moof),
//! `tfdt` (version 1) and one `trun` listing every sample's duration, size, flags and
//! composition offset; then one `mdat` whose payload is the samples' own bytes, chained.

use bytes::Bytes;

use super::boxes::{put_u32, put_u64, write_box, write_full_box};
use super::init::track_id;
use crate::remux::{Sample, TrackConfig, TrackSamples};

/// `tfhd` flag: data offsets are relative to the start of the `moof` (§8.8.7.1).
const DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// `trun` flags (§8.8.8.1).
const DATA_OFFSET_PRESENT: u32 = 0x000001;
const SAMPLE_DURATION_PRESENT: u32 = 0x000100;
const SAMPLE_SIZE_PRESENT: u32 = 0x000200;
const SAMPLE_FLAGS_PRESENT: u32 = 0x000400;
const SAMPLE_COMPOSITION_TIME_OFFSETS_PRESENT: u32 = 0x000800;
/// Sample flags (§8.8.3.1): `sample_depends_on` = 2 (an I-picture, depends on no other), or 1
/// with `sample_is_non_sync_sample` set.
const SYNC_SAMPLE: u32 = 0x0200_0000;
const NON_SYNC_SAMPLE: u32 = 0x0101_0000;

/// One media segment: `styp`, `moof`, `mdat`. `runs` pairs each track with its samples of one
/// fragment (as [`crate::remux::fragment_samples`] returns them); tracks without samples are
/// left out (with none left, the `moof` holds only its `mfhd` and the `mdat` is empty).
/// `sequence_number` is the `mfhd` sequence number (increasing per segment).
///
/// The first element of the result holds every new byte (`styp`, `moof` and the `mdat`
/// header); the rest are the samples' `data`, the same [`Bytes`] (not copies), track by track
/// in `runs` order. Write them out in order.
pub fn media_segment(sequence_number: u32, runs: &[(&TrackConfig, &TrackSamples)]) -> Vec<Bytes> {
    let runs: Vec<(&TrackConfig, &[Sample])> = runs
        .iter()
        .filter(|(_, s)| !s.samples.is_empty())
        .map(|(t, s)| (*t, s.samples.as_slice()))
        .collect();
    let sample_count: usize = runs.iter().map(|(_, s)| s.len()).sum();
    let mut buf = Vec::with_capacity(256 + 16 * sample_count);
    write_box(&mut buf, b"styp", |b| {
        b.extend_from_slice(b"msdh");
        put_u32(b, 0);
        b.extend_from_slice(b"msdh");
    });
    let moof_start = buf.len();
    // Where each trun's data_offset goes, filled in once the moof's size is known.
    let mut data_offsets = Vec::with_capacity(runs.len());
    write_box(&mut buf, b"moof", |b| {
        write_full_box(b, b"mfhd", 0, 0, |b| put_u32(b, sequence_number));
        for (track, samples) in &runs {
            write_box(b, b"traf", |b| {
                write_full_box(b, b"tfhd", 0, DEFAULT_BASE_IS_MOOF, |b| {
                    put_u32(b, track_id(track));
                });
                write_full_box(b, b"tfdt", 1, 0, |b| put_u64(b, samples[0].decode_time));
                data_offsets.push(trun(b, samples));
            });
        }
    });
    let moof_size = buf.len() - moof_start;
    let payload: u64 = runs
        .iter()
        .flat_map(|(_, s)| s.iter())
        .map(|s| s.data.len() as u64)
        .sum();
    // An mdat over 4 GiB takes the 64-bit largesize form (§4.2).
    let mdat_header = match u32::try_from(payload + 8) {
        Ok(size) => {
            put_u32(&mut buf, size);
            buf.extend_from_slice(b"mdat");
            8
        }
        Err(_) => {
            put_u32(&mut buf, 1);
            buf.extend_from_slice(b"mdat");
            put_u64(&mut buf, payload + 16);
            16
        }
    };
    let mut offset = (moof_size + mdat_header) as u64;
    for ((_, samples), at) in runs.iter().zip(data_offsets) {
        let value = i32::try_from(offset).unwrap_or(i32::MAX);
        buf[at..at + 4].copy_from_slice(&value.to_be_bytes());
        offset += samples.iter().map(|s| s.data.len() as u64).sum::<u64>();
    }
    let mut out = Vec::with_capacity(1 + sample_count);
    out.push(Bytes::from(buf));
    out.extend(
        runs.iter()
            .flat_map(|(_, s)| s.iter())
            .map(|s| s.data.clone()),
    );
    out
}

/// Appends a `trun` for `samples` and returns where its data_offset field is in `b`.
fn trun(b: &mut Vec<u8>, samples: &[Sample]) -> usize {
    let offsets = samples.iter().any(|s| s.composition_offset != 0);
    // Version 1 makes composition offsets signed.
    let version = u8::from(samples.iter().any(|s| s.composition_offset < 0));
    let mut flags =
        DATA_OFFSET_PRESENT | SAMPLE_DURATION_PRESENT | SAMPLE_SIZE_PRESENT | SAMPLE_FLAGS_PRESENT;
    if offsets {
        flags |= SAMPLE_COMPOSITION_TIME_OFFSETS_PRESENT;
    }
    let mut at = 0;
    write_full_box(b, b"trun", version, flags, |b| {
        put_u32(b, u32::try_from(samples.len()).unwrap_or(u32::MAX));
        at = b.len();
        put_u32(b, 0); // data_offset, patched by the caller
        for s in samples {
            put_u32(b, s.duration);
            put_u32(b, u32::try_from(s.data.len()).unwrap_or(u32::MAX));
            put_u32(b, if s.key { SYNC_SAMPLE } else { NON_SYNC_SAMPLE });
            if offsets {
                b.extend_from_slice(&s.composition_offset.to_be_bytes());
            }
        }
    });
    at
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use mp4_atom::{Any, Decode};
    use proptest::prelude::*;

    use super::*;
    use crate::mp4::init_segment;
    use crate::remux::tests::{cluster, fixture_fragments, frame, video};
    use crate::remux::{TrackConfig, fragment_samples};

    /// Every top-level box of `data`, decoded by mp4-atom (an independent parser).
    fn boxes(data: &[u8]) -> Vec<Any> {
        let mut cursor = Cursor::new(data);
        let mut out = Vec::new();
        while (cursor.position() as usize) < data.len() {
            out.push(Any::decode(&mut cursor).expect("a valid box"));
        }
        out
    }

    fn sample(decode_time: u64, composition_offset: i32, key: bool, data: &[u8]) -> Sample {
        Sample {
            decode_time,
            duration: 3000,
            composition_offset,
            key,
            data: Bytes::copy_from_slice(data),
        }
    }

    #[test]
    fn trun_offsets_point_at_each_track_in_mdat_and_payload_is_not_copied() {
        let (v, a) = (video(1, None), video(2, None));
        let vs = TrackSamples {
            track: 1,
            samples: vec![sample(9000, 0, true, b"key"), sample(12000, 0, false, b"p")],
        };
        let empty = TrackSamples {
            track: 3,
            samples: Vec::new(),
        };
        let as_ = TrackSamples {
            track: 2,
            samples: vec![sample(5, 0, true, b"audio")],
        };
        let parts = media_segment(7, &[(&v, &vs), (&video(3, None), &empty), (&a, &as_)]);
        // The payload is the samples' own Bytes.
        let data: Vec<&Bytes> = vs
            .samples
            .iter()
            .chain(&as_.samples)
            .map(|s| &s.data)
            .collect();
        assert_eq!(parts.len(), 1 + data.len());
        for (part, d) in parts[1..].iter().zip(&data) {
            assert_eq!(part.as_ptr(), d.as_ptr());
            assert_eq!(part.len(), d.len());
        }
        let file = parts.concat();
        let parsed = boxes(&file);
        let [Any::Styp(_), Any::Moof(moof), Any::Mdat(mdat)] = parsed.as_slice() else {
            panic!("styp, moof, mdat expected");
        };
        assert_eq!(mdat.data, b"keypaudio");
        assert_eq!(moof.mfhd.sequence_number, 7);
        assert_eq!(moof.traf.len(), 2, "the empty track is left out");
        let moof_start = parts[0].windows(4).position(|w| w == b"moof").unwrap() - 4;
        for (traf, samples) in moof.traf.iter().zip([&vs, &as_]) {
            assert_eq!(traf.tfhd.track_id as u64, samples.track);
            assert!(traf.tfhd.default_base_is_moof);
            assert_eq!(
                traf.tfdt.as_ref().unwrap().base_media_decode_time,
                samples.samples[0].decode_time
            );
            let trun = &traf.trun[0];
            let mut at = moof_start + trun.data_offset.unwrap() as usize;
            for (entry, s) in trun.samples.iter().zip(&samples.samples) {
                assert_eq!(entry.duration, Some(s.duration));
                assert_eq!(entry.size, Some(s.data.len() as u32));
                assert_eq!(
                    entry.flags,
                    Some(if s.key { SYNC_SAMPLE } else { NON_SYNC_SAMPLE })
                );
                assert_eq!(entry.cts, None);
                assert_eq!(file[at..at + s.data.len()], s.data[..]);
                at += s.data.len();
            }
        }
    }

    #[test]
    fn no_samples_make_an_empty_fragment() {
        let empty = TrackSamples {
            track: 1,
            samples: Vec::new(),
        };
        let parts = media_segment(3, &[(&video(1, None), &empty)]);
        assert_eq!(parts.len(), 1);
        let parsed = boxes(&parts[0]);
        let [Any::Styp(_), Any::Moof(moof), Any::Mdat(mdat)] = parsed.as_slice() else {
            panic!("styp, moof, mdat expected");
        };
        assert!(moof.traf.is_empty() && mdat.data.is_empty());
    }

    #[test]
    fn negative_composition_offsets_make_a_version_1_trun() {
        let v = video(1, None);
        for (offsets, version) in [([0, 7200, 3600], 0), ([0, 7200, -3600], 1)] {
            let samples = TrackSamples {
                track: 1,
                samples: offsets
                    .iter()
                    .enumerate()
                    .map(|(i, &o)| sample(i as u64 * 3600, o, i == 0, b"x"))
                    .collect(),
            };
            let head = media_segment(1, &[(&v, &samples)]).remove(0);
            let trun = head.windows(4).position(|w| w == b"trun").unwrap();
            assert_eq!(head[trun + 4], version);
            let parsed = boxes(&head[..head.len() - 8]);
            let Any::Moof(moof) = &parsed[1] else {
                panic!("moof expected");
            };
            let cts: Vec<Option<i64>> =
                moof.traf[0].trun[0].samples.iter().map(|e| e.cts).collect();
            assert_eq!(cts, offsets.map(|o| Some(i64::from(o))));
        }
    }

    #[test]
    fn real_uploads_parse_back_sample_for_sample() {
        for name in [
            "producer-c-1.6.4_h264_aac_putmedia.mkv",
            "kvssink-3.6.0_h264_putmedia.mkv",
        ] {
            let (header, fragments) = fixture_fragments(name);
            let configs: Vec<TrackConfig> = header
                .tracks
                .iter()
                .map(|t| TrackConfig::from_track(t).unwrap())
                .collect();
            let init = init_segment(&configs.iter().collect::<Vec<_>>());
            let parsed = boxes(&init);
            let [Any::Ftyp(ftyp), Any::Moov(moov)] = parsed.as_slice() else {
                panic!("{name}: ftyp, moov expected");
            };
            assert_eq!(ftyp.major_brand, b"iso6".into());
            assert_eq!(moov.trak.len(), configs.len());
            assert_eq!(moov.mvex.as_ref().unwrap().trex.len(), configs.len());
            for (trak, c) in moov.trak.iter().zip(&configs) {
                assert_eq!(u64::from(trak.tkhd.track_id), c.number);
                assert_eq!(trak.mdia.mdhd.timescale, c.timescale);
                let codec = &trak.mdia.minf.stbl.stsd.codecs[0];
                match (codec, &c.codec) {
                    (mp4_atom::Codec::Avc1(avc1), crate::remux::Codec::Avc(avcc)) => {
                        assert_eq!(trak.mdia.hdlr.handler, b"vide".into());
                        assert_eq!(
                            (u32::from(avc1.visual.width), u32::from(avc1.visual.height)),
                            (c.width, c.height)
                        );
                        assert_eq!(avc1.avcc.sequence_parameter_sets, avcc.sps);
                        assert_eq!(avc1.avcc.picture_parameter_sets, avcc.pps);
                    }
                    (mp4_atom::Codec::Mp4a(mp4a), crate::remux::Codec::Aac(_)) => {
                        assert_eq!(trak.mdia.hdlr.handler, b"soun".into());
                        assert_eq!(mp4a.audio.channel_count, u16::from(c.channels));
                        let config = &mp4a.esds.es_desc.dec_config;
                        assert_eq!(config.object_type_indication, 0x40);
                        let asc = config.dec_specific.as_ref().unwrap();
                        assert_eq!(asc.raw, c.codec_private[..]);
                    }
                    other => panic!("{name}: {other:?}"),
                }
            }
            let scale = header.timecode_scale;
            for (i, f) in fragments.iter().enumerate() {
                let start = f.timecode * scale;
                let samples = fragment_samples(
                    &configs,
                    scale,
                    &f.bytes,
                    start,
                    Some(start + f.duration * scale),
                )
                .unwrap();
                let runs: Vec<_> = configs.iter().zip(&samples).collect();
                let segment = media_segment(i as u32 + 1, &runs).concat();
                let parsed = boxes(&segment);
                let [_, Any::Moof(moof), Any::Mdat(_)] = parsed.as_slice() else {
                    panic!("{name}: styp, moof, mdat expected");
                };
                let present: Vec<&TrackSamples> =
                    samples.iter().filter(|s| !s.samples.is_empty()).collect();
                assert_eq!(moof.traf.len(), present.len());
                for (traf, s) in moof.traf.iter().zip(present) {
                    assert_eq!(u64::from(traf.tfhd.track_id), s.track);
                    let trun = &traf.trun[0];
                    assert_eq!(trun.samples.len(), f.frames[&s.track] as usize);
                    let parsed: Vec<(u32, u32)> = trun
                        .samples
                        .iter()
                        .map(|e| (e.duration.unwrap(), e.size.unwrap()))
                        .collect();
                    let ours: Vec<(u32, u32)> = s
                        .samples
                        .iter()
                        .map(|x| (x.duration, x.data.len() as u32))
                        .collect();
                    assert_eq!(parsed, ours, "{name}");
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Arbitrary bytes as a Cluster: an error or samples, and then a segment; never a panic.
        #[test]
        fn arbitrary_clusters_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..512),
            cluster_id in any::<bool>(),
            scale in prop_oneof![Just(1_000_000u64), Just(1), Just(u64::MAX)],
            start in prop_oneof![Just(0u64), any::<u64>()],
            end in any::<Option<u64>>(),
        ) {
            let mut bytes = if cluster_id { vec![0x1f, 0x43, 0xb6, 0x75] } else { Vec::new() };
            bytes.extend_from_slice(&data);
            let configs = [video(1, None), video(2, Some(1))];
            if let Ok(samples) = fragment_samples(&configs, scale, &[Bytes::from(bytes)], start, end) {
                prop_assert!(samples.iter().flat_map(|t| &t.samples).all(|s| s.duration > 0));
                let runs: Vec<_> = configs.iter().zip(&samples).collect();
                let _ = media_segment(0, &runs);
            }
        }

        /// Well-formed Clusters with arbitrary timecodes (reordered, repeated, before the
        /// Cluster's): every duration is positive and the segment parses.
        #[test]
        fn arbitrary_timecodes_give_positive_durations(
            frames in proptest::collection::vec((1u64..4, -2000i64..2000, any::<bool>()), 1..40),
            start in prop_oneof![Just(0u64), 0u64..10_000_000_000, any::<u64>()],
            end in any::<Option<u64>>(),
        ) {
            let frames: Vec<_> = frames.iter().map(|&(t, tc, k)| frame(t, 5000 + tc, k)).collect();
            let configs = [video(1, None), video(2, Some(3000))];
            let samples = fragment_samples(&configs, 1_000_000, &cluster(&frames), start, end).unwrap();
            for s in samples.iter().flat_map(|t| &t.samples) {
                prop_assert!(s.duration > 0);
            }
            let runs: Vec<_> = configs.iter().zip(&samples).collect();
            let segment = media_segment(1, &runs).concat();
            prop_assert_eq!(boxes(&segment).len(), 3);
        }
    }
}
