//! The initialization segment (ISO/IEC 14496-12 §8.2–§8.8.3; CMAF header): `ftyp`, then a
//! `moov` with `mvhd`, one `trak` per track (`tkhd`, `mdia` with `mdhd`, `hdlr` and `minf`
//! holding an `stbl` whose only content is the sample entry in `stsd`) and an `mvex` with one
//! `trex` per track. Sample entries: `avc1` + `avcC` and `hvc1` + `hvcC` (ISO/IEC 14496-15
//! §5.4.2, §8.4.1), the record being the Matroska CodecPrivate as stored; `mp4a` + `esds`
//! (ISO/IEC 14496-14 §5.6) with the AudioSpecificConfig as DecoderSpecificInfo.

use bytes::Bytes;

use super::boxes::{put_u16, put_u32, put_u64, write_box, write_descriptor, write_full_box};
use crate::remux::{Codec, TrackConfig};

/// `ftyp` and `moov` for `tracks`: the header a player loads once (HLS `EXT-X-MAP`, DASH
/// initialization) before any [`super::media_segment`] of the same tracks.
pub fn init_segment(tracks: &[&TrackConfig]) -> Bytes {
    let mut buf = Vec::with_capacity(1024);
    write_box(&mut buf, b"ftyp", |b| {
        b.extend_from_slice(b"iso6");
        put_u32(b, 0);
        b.extend_from_slice(b"iso6");
        b.extend_from_slice(b"mp41");
        b.extend_from_slice(b"dash");
        if tracks.len() == 1 {
            // A CMAF track file holds exactly one track.
            b.extend_from_slice(b"cmfc");
        }
        for brand in [b"avc1", b"hvc1"] {
            if tracks.iter().any(|t| sample_entry_type(t) == brand) {
                b.extend_from_slice(brand);
            }
        }
    });
    write_box(&mut buf, b"moov", |b| {
        mvhd(b, tracks);
        for t in tracks {
            trak(b, t);
        }
        write_box(b, b"mvex", |b| {
            for t in tracks {
                write_full_box(b, b"trex", 0, 0, |b| {
                    put_u32(b, track_id(t));
                    put_u32(b, 1); // default_sample_description_index
                    put_u32(b, 0); // default_sample_duration
                    put_u32(b, 0); // default_sample_size
                    put_u32(b, 0); // default_sample_flags
                });
            }
        });
    });
    Bytes::from(buf)
}

/// The MP4 track_ID of a track: its Matroska TrackNumber (saturated; KVS allows 1–3).
pub(super) fn track_id(track: &TrackConfig) -> u32 {
    u32::try_from(track.number).unwrap_or(u32::MAX)
}

fn is_video(track: &TrackConfig) -> bool {
    matches!(track.codec, Codec::Avc(_) | Codec::Hevc(_))
}

fn sample_entry_type(track: &TrackConfig) -> &'static [u8; 4] {
    match track.codec {
        Codec::Avc(_) => b"avc1",
        Codec::Hevc(_) => b"hvc1",
        Codec::Aac(_) => b"mp4a",
    }
}

/// The identity transformation matrix of `mvhd` and `tkhd` (§8.2.2.3).
const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

fn put_matrix(b: &mut Vec<u8>) {
    for v in MATRIX {
        put_u32(b, v);
    }
}

fn mvhd(b: &mut Vec<u8>, tracks: &[&TrackConfig]) {
    write_full_box(b, b"mvhd", 0, 0, |b| {
        put_u32(b, 0); // creation_time
        put_u32(b, 0); // modification_time
        put_u32(b, 1000); // timescale
        put_u32(b, 0); // duration: unknown, fragments follow
        put_u32(b, 0x0001_0000); // rate 1.0
        put_u16(b, 0x0100); // volume 1.0
        b.extend_from_slice(&[0; 10]);
        put_matrix(b);
        b.extend_from_slice(&[0; 24]); // pre_defined
        let next = tracks.iter().map(|t| track_id(t)).max().unwrap_or(0);
        put_u32(b, next.saturating_add(1)); // next_track_ID
    });
}

fn trak(b: &mut Vec<u8>, t: &TrackConfig) {
    write_box(b, b"trak", |b| {
        // Flags: track_enabled | track_in_movie.
        write_full_box(b, b"tkhd", 0, 3, |b| {
            put_u32(b, 0); // creation_time
            put_u32(b, 0); // modification_time
            put_u32(b, track_id(t));
            put_u32(b, 0); // reserved
            put_u32(b, 0); // duration
            put_u64(b, 0); // reserved
            put_u16(b, 0); // layer
            put_u16(b, 0); // alternate_group
            put_u16(b, if is_video(t) { 0 } else { 0x0100 }); // volume
            put_u16(b, 0); // reserved
            put_matrix(b);
            // Width and height, 16.16 fixed point.
            put_u32(b, t.width.min(0xffff) << 16);
            put_u32(b, t.height.min(0xffff) << 16);
        });
        write_box(b, b"mdia", |b| {
            write_full_box(b, b"mdhd", 0, 0, |b| {
                put_u32(b, 0); // creation_time
                put_u32(b, 0); // modification_time
                put_u32(b, t.timescale);
                put_u32(b, 0); // duration
                put_u16(b, 0x55c4); // language "und" (ISO 639-2/T, 5 bits per letter)
                put_u16(b, 0); // pre_defined
            });
            write_full_box(b, b"hdlr", 0, 0, |b| {
                put_u32(b, 0); // pre_defined
                let (handler, name): (&[u8; 4], &[u8]) = if is_video(t) {
                    (b"vide", b"VideoHandler\0")
                } else {
                    (b"soun", b"SoundHandler\0")
                };
                b.extend_from_slice(handler);
                b.extend_from_slice(&[0; 12]); // reserved
                b.extend_from_slice(name);
            });
            write_box(b, b"minf", |b| minf(b, t));
        });
    });
}

fn minf(b: &mut Vec<u8>, t: &TrackConfig) {
    if is_video(t) {
        // Flags 1, as §12.1.2 requires; graphicsmode copy, opcolor 0.
        write_full_box(b, b"vmhd", 0, 1, |b| b.extend_from_slice(&[0; 8]));
    } else {
        write_full_box(b, b"smhd", 0, 0, |b| put_u32(b, 0)); // balance, reserved
    }
    write_box(b, b"dinf", |b| {
        write_full_box(b, b"dref", 0, 0, |b| {
            put_u32(b, 1); // entry_count
            // Flags 1: the media is in this file.
            write_full_box(b, b"url ", 0, 1, |_| {});
        });
    });
    write_box(b, b"stbl", |b| {
        write_full_box(b, b"stsd", 0, 0, |b| {
            put_u32(b, 1); // entry_count
            sample_entry(b, t);
        });
        // No samples in the movie itself: every sample is in a fragment.
        write_full_box(b, b"stts", 0, 0, |b| put_u32(b, 0));
        write_full_box(b, b"stsc", 0, 0, |b| put_u32(b, 0));
        write_full_box(b, b"stsz", 0, 0, |b| put_u64(b, 0)); // sample_size, sample_count
        write_full_box(b, b"stco", 0, 0, |b| put_u32(b, 0));
    });
}

fn sample_entry(b: &mut Vec<u8>, t: &TrackConfig) {
    write_box(b, sample_entry_type(t), |b| {
        b.extend_from_slice(&[0; 6]); // reserved
        put_u16(b, 1); // data_reference_index
        match &t.codec {
            Codec::Avc(_) | Codec::Hevc(_) => {
                b.extend_from_slice(&[0; 16]); // pre_defined, reserved
                put_u16(b, u16::try_from(t.width).unwrap_or(u16::MAX));
                put_u16(b, u16::try_from(t.height).unwrap_or(u16::MAX));
                put_u32(b, 0x0048_0000); // horizresolution 72 dpi
                put_u32(b, 0x0048_0000); // vertresolution
                put_u32(b, 0); // reserved
                put_u16(b, 1); // frame_count
                b.extend_from_slice(&[0; 32]); // compressorname
                put_u16(b, 0x0018); // depth
                put_u16(b, 0xffff); // pre_defined = -1
                let record = if matches!(t.codec, Codec::Avc(_)) {
                    b"avcC"
                } else {
                    b"hvcC"
                };
                write_box(b, record, |b| b.extend_from_slice(&t.codec_private));
            }
            Codec::Aac(_) => {
                put_u64(b, 0); // reserved
                put_u16(b, u16::from(t.channels));
                put_u16(b, 16); // samplesize
                put_u32(b, 0); // pre_defined, reserved
                // 16.16 fixed point; rates above 65535 Hz do not fit (the ASC has the rate).
                put_u32(
                    b,
                    if t.sample_rate <= 0xffff {
                        t.sample_rate << 16
                    } else {
                        0
                    },
                );
                esds(b, t);
            }
        }
    });
}

/// `esds`: an ES_Descriptor (ISO/IEC 14496-1 §7.2.6.5) holding a DecoderConfigDescriptor
/// (MPEG-4 audio, object type indication 0x40, stream type 5) with the AudioSpecificConfig as
/// DecoderSpecificInfo, and the SLConfigDescriptor MP4 files use (predefined = 2).
fn esds(b: &mut Vec<u8>, t: &TrackConfig) {
    write_full_box(b, b"esds", 0, 0, |b| {
        write_descriptor(b, 0x03, |b| {
            put_u16(b, 0); // ES_ID
            b.push(0); // no dependency, URL or OCR stream; priority 0
            write_descriptor(b, 0x04, |b| {
                b.push(0x40); // objectTypeIndication: MPEG-4 audio
                b.push(0x15); // streamType 5 (audio) << 2 | upStream 0 | reserved 1
                b.extend_from_slice(&[0; 3]); // bufferSizeDB
                put_u32(b, 0); // maxBitrate
                put_u32(b, 0); // avgBitrate
                write_descriptor(b, 0x05, |b| b.extend_from_slice(&t.codec_private));
            });
            write_descriptor(b, 0x06, |b| b.push(0x02));
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remux::tests::{fixture_fragments, video};

    /// (type, size) of each top-level box; the sizes must cover `data` exactly.
    fn top_level(data: &[u8]) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            out.push((
                String::from_utf8_lossy(&data[at + 4..at + 8]).into_owned(),
                size,
            ));
            at += size;
        }
        assert_eq!(at, data.len());
        out
    }

    #[test]
    fn brands_and_track_ids() {
        let (h, _) = fixture_fragments("producer-c-1.6.4_h264_aac_putmedia.mkv");
        let v = TrackConfig::from_track(&h.tracks[0]).unwrap();
        let a = TrackConfig::from_track(&h.tracks[1]).unwrap();
        let single = init_segment(&[&v]);
        let boxes = top_level(&single);
        assert_eq!(boxes[0], ("ftyp".into(), 36));
        assert_eq!(&single[8..36], b"iso6\0\0\0\0iso6mp41dashcmfcavc1");
        assert_eq!(boxes[1].0, "moov");
        let both = init_segment(&[&v, &a]);
        let size = top_level(&both)[0].1;
        assert_eq!(
            &both[16..size],
            b"iso6mp41dashavc1",
            "no cmfc with two tracks"
        );
        // next_track_ID follows the largest Matroska TrackNumber.
        let far = video(9, None);
        let init = init_segment(&[&far, &v]);
        let mvhd = init.windows(4).position(|w| w == b"mvhd").unwrap();
        assert_eq!(init[mvhd + 100..mvhd + 104], 10u32.to_be_bytes());
        let tkhd = init.windows(4).position(|w| w == b"tkhd").unwrap();
        assert_eq!(init[tkhd + 16..tkhd + 20], 9u32.to_be_bytes());
    }

    #[test]
    fn the_avcc_is_the_codec_private_as_stored() {
        let v = video(1, None);
        let init = init_segment(&[&v]);
        let at = init.windows(4).position(|w| w == b"avcC").unwrap();
        let size = u32::from_be_bytes(init[at - 4..at].try_into().unwrap()) as usize;
        assert_eq!(init[at + 4..at - 4 + size], v.codec_private[..]);
    }
}
