//! One video access unit as an MPEG-TS elementary stream needs it (ISO/IEC 13818-1 §2.14 for
//! AVC, §2.17 for HEVC): the sample's length-prefixed NAL units (ISO/IEC 14496-15 §5.3.2) as an
//! Annex B byte stream (H.264/H.265 Annex B), led by an access unit delimiter (H.264 §7.3.2.4,
//! H.265 §7.3.2.5) and, on key frames, by the parameter sets of the decoder configuration
//! record unless the sample carries its own. The result is a list of slices that borrow the
//! sample and the record: nothing is copied here.

use crate::codec::nal::{
    H264_NAL_PPS, H264_NAL_SPS, H265_NAL_PPS, H265_NAL_SPS, H265_NAL_VPS, h264_nal_type,
    h265_nal_type, length_prefixed_nal_units,
};
use crate::codec::{AvcDecoderConfig, HevcDecoderConfig};

const START_CODE: &[u8] = &[0, 0, 0, 1];
/// H.264 access unit delimiter (type 9), primary_pic_type 7 (any slice type).
const H264_AUD: &[u8] = &[0x09, 0xf0];
/// H.265 access unit delimiters (type 35, layer 0), pic_type 2 (any), by
/// `nuh_temporal_id_plus1` - 1: an AUD has its access unit's TemporalId (H.265 §7.4.2.4.4).
const H265_AUDS: [[u8; 3]; 7] = {
    let mut auds = [[0x46, 0, 0x50]; 7];
    let mut i = 0;
    while i < 7 {
        auds[i][1] = i as u8 + 1;
        i += 1;
    }
    auds
};
const H264_NAL_AUD: u8 = 9;
const H265_NAL_AUD: u8 = 35;

/// What a video track contributes to every access unit.
#[derive(Debug)]
pub struct VideoFormat<'a> {
    nal_length_size: u8,
    hevc: bool,
    /// The parameter sets to put before key frames, in decoding order (VPS, SPS, PPS).
    parameter_sets: Vec<&'a [u8]>,
}

impl<'a> VideoFormat<'a> {
    pub fn avc(config: &'a AvcDecoderConfig) -> Self {
        Self {
            nal_length_size: config.nal_length_size,
            hevc: false,
            parameter_sets: config
                .sps
                .iter()
                .chain(&config.pps)
                .map(Vec::as_slice)
                .collect(),
        }
    }

    pub fn hevc(config: &'a HevcDecoderConfig) -> Self {
        Self {
            nal_length_size: config.nal_length_size,
            hevc: true,
            parameter_sets: [H265_NAL_VPS, H265_NAL_SPS, H265_NAL_PPS]
                .into_iter()
                .flat_map(|t| config.nal_units(t))
                .collect(),
        }
    }

    /// Appends the Annex B access unit of `sample` to `out` as slices; an error says why the
    /// sample is not a sequence of non-empty length-prefixed NAL units.
    pub fn access_unit<'s>(
        &'s self,
        sample: &'s [u8],
        key: bool,
        out: &mut Vec<&'s [u8]>,
    ) -> Result<(), String> {
        let mut nal_units = Vec::new();
        let units =
            length_prefixed_nal_units(sample, self.nal_length_size).map_err(|e| e.to_string())?;
        for nal in units {
            let nal = nal.map_err(|e| e.to_string())?;
            if !nal.is_empty() {
                nal_units.push(nal);
            }
        }
        if nal_units.is_empty() {
            return Err("no NAL units".into());
        }
        let mut in_band = [false; 3];
        for nal in &nal_units {
            if let Some(i) = self.parameter_set_index(nal[0]) {
                in_band[i] = true;
            }
        }
        let first = nal_units[0];
        let has_aud = self.is_aud(first[0]);
        if !has_aud {
            let aud = if self.hevc {
                // nuh_temporal_id_plus1 of the first NAL unit (0, forbidden, read as 1).
                let tid = first.get(1).map_or(0, |b| usize::from(b & 0x07));
                &H265_AUDS[tid.max(1) - 1][..]
            } else {
                H264_AUD
            };
            out.extend([START_CODE, aud]);
        }
        let needs_parameter_sets = key
            && if self.hevc {
                !in_band.iter().all(|&b| b)
            } else {
                !(in_band[1] && in_band[2])
            };
        let mut rest = nal_units.as_slice();
        if has_aud {
            out.extend([START_CODE, rest[0]]);
            rest = &rest[1..];
        }
        if needs_parameter_sets {
            for ps in &self.parameter_sets {
                out.extend([START_CODE, ps]);
            }
        }
        for nal in rest {
            out.extend([START_CODE, nal]);
        }
        Ok(())
    }

    fn is_aud(&self, header: u8) -> bool {
        self.nal_type(header)
            == if self.hevc {
                H265_NAL_AUD
            } else {
                H264_NAL_AUD
            }
    }

    /// 0, 1, 2 for a VPS, SPS, PPS.
    fn parameter_set_index(&self, header: u8) -> Option<usize> {
        match (self.hevc, self.nal_type(header)) {
            (true, H265_NAL_VPS) => Some(0),
            (true, H265_NAL_SPS) | (false, H264_NAL_SPS) => Some(1),
            (true, H265_NAL_PPS) | (false, H264_NAL_PPS) => Some(2),
            _ => None,
        }
    }

    fn nal_type(&self, header: u8) -> u8 {
        if self.hevc {
            h265_nal_type(header)
        } else {
            h264_nal_type(header)
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn avc() -> AvcDecoderConfig {
        AvcDecoderConfig {
            profile_idc: 66,
            profile_compatibility: 0,
            level_idc: 30,
            nal_length_size: 4,
            sps: vec![vec![0x67, 1, 2]],
            pps: vec![vec![0x68, 3]],
            high_profile: None,
        }
    }

    fn prefixed(nal_units: &[&[u8]]) -> Vec<u8> {
        nal_units
            .iter()
            .flat_map(|n| {
                (n.len() as u32)
                    .to_be_bytes()
                    .into_iter()
                    .chain(n.iter().copied())
            })
            .collect()
    }

    fn annex_b(format: &VideoFormat<'_>, sample: &[u8], key: bool) -> Vec<u8> {
        let mut out = Vec::new();
        format.access_unit(sample, key, &mut out).unwrap();
        out.concat()
    }

    #[test]
    fn key_frames_get_an_aud_and_the_parameter_sets() {
        let config = avc();
        let f = VideoFormat::avc(&config);
        let idr = prefixed(&[&[0x65, 9, 9]]);
        assert_eq!(
            annex_b(&f, &idr, true),
            [
                &[0, 0, 0, 1, 0x09, 0xf0][..],
                &[0, 0, 0, 1, 0x67, 1, 2],
                &[0, 0, 0, 1, 0x68, 3],
                &[0, 0, 0, 1, 0x65, 9, 9],
            ]
            .concat()
        );
        let p = prefixed(&[&[0x41, 7], &[0x41, 8]]);
        assert_eq!(
            annex_b(&f, &p, false),
            [
                0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x41, 7, 0, 0, 0, 1, 0x41, 8
            ]
        );
    }

    #[test]
    fn in_band_aud_and_parameter_sets_are_not_repeated() {
        let config = avc();
        let f = VideoFormat::avc(&config);
        let sample = prefixed(&[&[0x09, 0x10], &[0x67, 5], &[0x68, 6], &[0x65, 1]]);
        assert_eq!(
            annex_b(&f, &sample, true),
            [
                0, 0, 0, 1, 0x09, 0x10, 0, 0, 0, 1, 0x67, 5, 0, 0, 0, 1, 0x68, 6, 0, 0, 0, 1, 0x65,
                1
            ]
        );
        // An AUD but no parameter sets: they go after the AUD.
        let sample = prefixed(&[&[0x09, 0x10], &[0x65, 1]]);
        assert_eq!(
            annex_b(&f, &sample, true),
            [
                &[0, 0, 0, 1, 0x09, 0x10][..],
                &[0, 0, 0, 1, 0x67, 1, 2],
                &[0, 0, 0, 1, 0x68, 3],
                &[0, 0, 0, 1, 0x65, 1],
            ]
            .concat()
        );
    }

    /// An hvcC record with a VPS, SPS, PPS and a prefix SEI array, 4-byte lengths.
    pub(in crate::ts) fn hvcc() -> Vec<u8> {
        let mut hvcc = vec![
            1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93, 0xf0, 0, 0xfc,
        ];
        hvcc.extend([0xfd, 0xf8, 0xf8, 0, 0, 0x0f, 4]);
        for (t, body) in [
            (39u8, &[0xaa][..]),
            (32, &[0x0c]),
            (33, &[0x0d]),
            (34, &[0x0e]),
        ] {
            hvcc.extend([0x80 | t, 0, 1, 0, 3, t << 1, 1]);
            hvcc.extend(body);
        }
        hvcc
    }

    #[test]
    fn hevc_uses_its_own_aud_and_vps_sps_pps() {
        let hvcc = hvcc();
        let config = HevcDecoderConfig::parse(&hvcc).unwrap();
        let f = VideoFormat::hevc(&config);
        let idr = prefixed(&[&[19 << 1, 1, 0xab]]);
        let trail = prefixed(&[&[1 << 1, 3, 0xcd]]);
        assert_eq!(
            annex_b(&f, &trail, false),
            [0, 0, 0, 1, 0x46, 0x03, 0x50, 0, 0, 0, 1, 2, 3, 0xcd],
            "the AUD takes the TemporalId of the picture"
        );
        assert_eq!(
            annex_b(&f, &idr, true),
            [
                &[0, 0, 0, 1, 0x46, 0x01, 0x50][..],
                &[0, 0, 0, 1, 64, 1, 0x0c],
                &[0, 0, 0, 1, 66, 1, 0x0d],
                &[0, 0, 0, 1, 68, 1, 0x0e],
                &[0, 0, 0, 1, 38, 1, 0xab],
            ]
            .concat()
        );
    }

    #[test]
    fn a_length_past_the_end_is_an_error() {
        let config = avc();
        let f = VideoFormat::avc(&config);
        let mut out = Vec::new();
        assert!(f.access_unit(&[0, 0, 0, 9, 0x65], true, &mut out).is_err());
        assert!(f.access_unit(&[], true, &mut out).is_err());
        assert!(f.access_unit(&[0, 0, 0, 0], true, &mut out).is_err());
    }
}
