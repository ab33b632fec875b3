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
/// left out. `sequence_number` is the `mfhd` sequence number (increasing per segment).
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
