//! Fuzzes the codec parsers (avcC, H.264 SPS, hvcC, H.265 SPS, AudioSpecificConfig, NAL
//! framing conversions, H.264 and H.265 slice headers' picture order counts with the
//! parameter sets they are read with): any bytes give a value or an error, never a panic. The
//! first byte chooses the parser.
#![no_main]

use kinescope_media::codec::{AudioSpecificConfig, AvcDecoderConfig, AvcSps, HevcDecoderConfig, HevcSps, h264, h265, nal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 8 {
        0 => {
            if let Ok(c) = AvcDecoderConfig::parse(rest) {
                let _ = c.codec_string();
            }
        }
        1 => {
            if let Ok(s) = AvcSps::parse(rest) {
                let _ = s.codec_string();
            }
        }
        2 => {
            if let Ok(c) = HevcDecoderConfig::parse(rest) {
                let _ = c.codec_string("hvc1");
            }
        }
        3 => {
            if let Ok(s) = HevcSps::parse(rest) {
                let _ = s.codec_string("hev1");
            }
        }
        4 => {
            if let Ok(a) = AudioSpecificConfig::parse(rest) {
                let _ = (a.codec_string(), a.sample_rate(), a.channels());
            }
        }
        6 | 7 => {
            // A length byte, that many bytes of SPS, then the slice (H.265: the PPS first, with
            // its own length byte).
            let Some((&n, rest)) = rest.split_first() else { return };
            let (sps, rest) = rest.split_at(usize::from(n).min(rest.len()));
            if which % 8 == 6 {
                if let Ok(sps) = AvcSps::parse(sps) {
                    let _ = h264::slice_pic_order_cnt_lsb(rest, &sps);
                }
            } else if let (Ok(sps), Some((&m, rest))) = (HevcSps::parse(sps), rest.split_first()) {
                let (pps, slice) = rest.split_at(usize::from(m).min(rest.len()));
                if let Ok(pps) = h265::PpsSliceFields::parse(pps) {
                    let _ = h265::slice_pic_order_cnt_lsb(slice, &sps, &pps);
                }
            }
        }
        _ => {
            for len in [1u8, 2, 4] {
                if let Ok(prefixed) = nal::annex_b_to_length_prefixed(rest, len) {
                    let back = nal::length_prefixed_to_annex_b(&prefixed, len).expect("own output parses");
                    let again = nal::annex_b_to_length_prefixed(&back, len).expect("round trip");
                    assert_eq!(again, prefixed);
                }
                let _ = nal::length_prefixed_to_annex_b(rest, len);
            }
        }
    }
});
