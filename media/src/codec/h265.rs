//! H.265/HEVC configuration: the `hvcC` HEVCDecoderConfigurationRecord (ISO/IEC 14496-15
//! §8.3.3.1, the Matroska `V_MPEGH/ISO/HEVC` CodecPrivate), the sequence parameter set up to
//! the bit depths (ITU-T H.265 §7.3.2.2) with profile_tier_level (§7.3.3), and the codecs
//! string of ISO/IEC 14496-15 Annex E.3 (RFC 6381 §3.3):
//! `hvc1.<profile_space letter><profile_idc>.<compat flags reversed, hex>.<L|H><level>.<constraint bytes>`.

use std::fmt::Write as _;

use super::CodecError;
use super::bits::BitReader;
use super::cursor::ByteCursor;
use super::nal::{H265_NAL_SPS, h265_nal_type};

const HVCC: &str = "hvcC";
const SPS: &str = "H.265 SPS";

/// The general profile, tier and level (H.265 §7.3.3), as carried by both `hvcC` and the SPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileTierLevel {
    /// `general_profile_space` (0..=3).
    pub profile_space: u8,
    /// `general_tier_flag`: false = Main tier, true = High tier.
    pub tier_flag: bool,
    /// `general_profile_idc` (1 Main, 2 Main 10, 3 Main Still Picture, 4 RExt, …).
    pub profile_idc: u8,
    /// `general_profile_compatibility_flag[0..32]`, flag 0 in the most significant bit.
    pub profile_compatibility_flags: u32,
    /// The 48 bits from `general_progressive_source_flag` up to and including
    /// `general_inbld_flag`/reserved bit, in the low 48 bits.
    pub constraint_indicator_flags: u64,
    /// `general_level_idc` (level × 30, e.g. 93 for 3.1).
    pub level_idc: u8,
}

impl ProfileTierLevel {
    /// The ISO/IEC 14496-15 Annex E codecs parameter for sample entry `sample_entry`
    /// (`"hvc1"` when parameter sets live in the sample entry only, `"hev1"` when they may also
    /// be in-band), e.g. `hvc1.1.6.L93.B0`. The constraint bytes are upper-case hex with
    /// trailing zero bytes omitted (all of them when all six are zero).
    pub fn codec_string(&self, sample_entry: &str) -> String {
        let mut s = String::with_capacity(sample_entry.len() + 24);
        s.push_str(sample_entry);
        s.push('.');
        if let Some(letter) = [None, Some('A'), Some('B'), Some('C')]
            .get(usize::from(self.profile_space))
            .copied()
            .flatten()
        {
            s.push(letter);
        }
        let tier = if self.tier_flag { 'H' } else { 'L' };
        // Writing to a String cannot fail.
        let _ = write!(
            s,
            "{}.{:X}.{tier}{}",
            self.profile_idc,
            self.profile_compatibility_flags.reverse_bits(),
            self.level_idc
        );
        let constraint = self.constraint_indicator_flags.to_be_bytes();
        let constraint = &constraint[2..];
        let len = constraint
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        for byte in &constraint[..len] {
            let _ = write!(s, ".{byte:X}");
        }
        s
    }

    /// The 12 bytes of the general profile_tier_level fields.
    fn from_bytes(b: [u8; 12]) -> Self {
        Self {
            profile_space: b[0] >> 6,
            tier_flag: b[0] & 0x20 != 0,
            profile_idc: b[0] & 0x1f,
            profile_compatibility_flags: u32::from_be_bytes([b[1], b[2], b[3], b[4]]),
            constraint_indicator_flags: b[5..11]
                .iter()
                .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)),
            level_idc: b[11],
        }
    }
}

/// A parsed `hvcC` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcDecoderConfig {
    /// The general profile, tier and level.
    pub general: ProfileTierLevel,
    /// `min_spatial_segmentation_idc`.
    pub min_spatial_segmentation_idc: u16,
    /// `parallelismType`.
    pub parallelism_type: u8,
    /// `chromaFormat` (`chroma_format_idc`).
    pub chroma_format_idc: u8,
    /// Luma bit depth (`bitDepthLumaMinus8` + 8).
    pub bit_depth_luma: u8,
    /// Chroma bit depth (`bitDepthChromaMinus8` + 8).
    pub bit_depth_chroma: u8,
    /// `avgFrameRate` in frames per 256 seconds (0 = unspecified).
    pub avg_frame_rate: u16,
    /// `constantFrameRate` (0..=2).
    pub constant_frame_rate: u8,
    /// `numTemporalLayers`.
    pub num_temporal_layers: u8,
    /// `temporalIdNested`.
    pub temporal_id_nested: bool,
    /// Size in bytes of each sample's NAL unit length prefix: 1, 2 or 4.
    pub nal_length_size: u8,
    /// The parameter set and SEI arrays, in record order.
    pub arrays: Vec<NalArray>,
}

/// One `hvcC` array: NAL units of one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NalArray {
    /// `array_completeness`: all NAL units of this type are here (none in-band).
    pub complete: bool,
    /// `NAL_unit_type` of every unit in the array.
    pub nal_unit_type: u8,
    /// The NAL units, with their two-byte headers.
    pub nal_units: Vec<Vec<u8>>,
}

impl HevcDecoderConfig {
    /// Parses an `hvcC` record (the box payload, or a Matroska CodecPrivate).
    pub fn parse(data: &[u8]) -> Result<Self, CodecError> {
        let mut c = ByteCursor::new(HVCC, data);
        let version = c.u8()?;
        if version != 1 {
            return Err(CodecError::UnsupportedVersion {
                what: HVCC,
                version,
            });
        }
        let mut ptl = [0u8; 12];
        ptl.copy_from_slice(c.bytes(12)?);
        let general = ProfileTierLevel::from_bytes(ptl);
        let min_spatial_segmentation_idc = c.u16()? & 0x0fff;
        let parallelism_type = c.u8()? & 0x03;
        let chroma_format_idc = c.u8()? & 0x03;
        let bit_depth_luma = (c.u8()? & 0x07) + 8;
        let bit_depth_chroma = (c.u8()? & 0x07) + 8;
        let avg_frame_rate = c.u16()?;
        let flags = c.u8()?;
        let nal_length_size = match flags & 0x03 {
            2 => {
                return Err(CodecError::InvalidValue {
                    field: "lengthSizeMinusOne",
                    value: 2,
                });
            }
            minus_one => minus_one + 1,
        };
        let num_arrays = c.u8()?;
        let mut arrays = Vec::new();
        for _ in 0..num_arrays {
            let head = c.u8()?;
            let nal_unit_type = head & 0x3f;
            let count = c.u16()?;
            let mut nal_units = Vec::new();
            for _ in 0..count {
                let nal = c.u16_prefixed()?;
                let header = *nal.first().ok_or(CodecError::Truncated {
                    what: "hvcC NAL unit",
                    offset: 0,
                })?;
                let actual = h265_nal_type(header);
                if actual != nal_unit_type {
                    return Err(CodecError::UnexpectedNalType {
                        what: "hvcC array",
                        expected: nal_unit_type,
                        actual,
                    });
                }
                nal_units.push(nal.to_vec());
            }
            arrays.push(NalArray {
                complete: head & 0x80 != 0,
                nal_unit_type,
                nal_units,
            });
        }
        Ok(Self {
            general,
            min_spatial_segmentation_idc,
            parallelism_type,
            chroma_format_idc,
            bit_depth_luma,
            bit_depth_chroma,
            avg_frame_rate,
            constant_frame_rate: flags >> 6,
            num_temporal_layers: (flags >> 3) & 0x07,
            temporal_id_nested: flags & 0x04 != 0,
            nal_length_size,
            arrays,
        })
    }

    /// The NAL units of type `nal_unit_type` across all arrays, in record order.
    pub fn nal_units(&self, nal_unit_type: u8) -> impl Iterator<Item = &[u8]> {
        self.arrays
            .iter()
            .filter(move |a| a.nal_unit_type == nal_unit_type)
            .flat_map(|a| a.nal_units.iter().map(Vec::as_slice))
    }

    /// Parses the record's first SPS.
    pub fn first_sps(&self) -> Result<Sps, CodecError> {
        let nal = self
            .nal_units(H265_NAL_SPS)
            .next()
            .ok_or(CodecError::MissingParameterSet {
                what: HVCC,
                parameter_set: "SPS",
            })?;
        Sps::parse(nal)
    }

    /// The codecs parameter for `sample_entry` (`"hvc1"` or `"hev1"`), e.g. `hvc1.1.6.L93.B0`.
    pub fn codec_string(&self, sample_entry: &str) -> String {
        self.general.codec_string(sample_entry)
    }
}

/// What an H.265 sequence parameter set says about the picture format and picture order.
/// Parsing stops after `log2_max_pic_order_cnt_lsb_minus4`; nothing later is needed for a
/// container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    /// `sps_video_parameter_set_id`.
    pub video_parameter_set_id: u8,
    /// `sps_max_sub_layers_minus1` + 1.
    pub max_sub_layers: u8,
    /// `sps_temporal_id_nesting_flag`.
    pub temporal_id_nesting: bool,
    /// The general profile, tier and level.
    pub general: ProfileTierLevel,
    /// `sps_seq_parameter_set_id` (0..=15).
    pub seq_parameter_set_id: u8,
    /// `chroma_format_idc` (0 = monochrome, 1 = 4:2:0, 2 = 4:2:2, 3 = 4:4:4).
    pub chroma_format_idc: u8,
    /// `separate_colour_plane_flag` (4:4:4 only).
    pub separate_colour_plane: bool,
    /// `pic_width_in_luma_samples` (coded width).
    pub pic_width_in_luma_samples: u32,
    /// `pic_height_in_luma_samples` (coded height).
    pub pic_height_in_luma_samples: u32,
    /// Displayed width, after the conformance window.
    pub width: u32,
    /// Displayed height, after the conformance window.
    pub height: u32,
    /// Luma bit depth (`bit_depth_luma_minus8` + 8).
    pub bit_depth_luma: u8,
    /// Chroma bit depth (`bit_depth_chroma_minus8` + 8).
    pub bit_depth_chroma: u8,
    /// Bits of `slice_pic_order_cnt_lsb` (`log2_max_pic_order_cnt_lsb_minus4` + 4).
    pub log2_max_pic_order_cnt_lsb: u8,
}

impl Sps {
    /// Parses a sequence parameter set NAL unit, two-byte header included (`42 01 …`).
    pub fn parse(nal: &[u8]) -> Result<Self, CodecError> {
        if nal.len() < 2 {
            return Err(CodecError::Truncated {
                what: SPS,
                offset: nal.len(),
            });
        }
        let actual = h265_nal_type(nal[0]);
        if actual != H265_NAL_SPS {
            return Err(CodecError::UnexpectedNalType {
                what: SPS,
                expected: H265_NAL_SPS,
                actual,
            });
        }
        let mut r = BitReader::new(SPS, &nal[2..]);
        let video_parameter_set_id = r.read_bits(4)? as u8;
        let max_sub_layers_minus1 = r.read_bits(3)? as u8;
        if max_sub_layers_minus1 > 6 {
            return Err(CodecError::InvalidValue {
                field: "sps_max_sub_layers_minus1",
                value: i64::from(max_sub_layers_minus1),
            });
        }
        let temporal_id_nesting = r.read_flag()?;
        let general = read_profile_tier_level(&mut r, max_sub_layers_minus1)?;
        let seq_parameter_set_id = r.read_ue_max("sps_seq_parameter_set_id", 15)? as u8;
        let chroma_format_idc = r.read_ue_max("chroma_format_idc", 3)? as u8;
        let separate_colour_plane = chroma_format_idc == 3 && r.read_flag()?;
        let pic_width_in_luma_samples = r.read_ue()?;
        let pic_height_in_luma_samples = r.read_ue()?;
        let window = if r.read_flag()? {
            [r.read_ue()?, r.read_ue()?, r.read_ue()?, r.read_ue()?].map(u64::from)
        } else {
            [0; 4]
        };
        let bit_depth_luma = r.read_ue_max("bit_depth_luma_minus8", 8)? as u8 + 8;
        let bit_depth_chroma = r.read_ue_max("bit_depth_chroma_minus8", 8)? as u8 + 8;
        let log2_max_pic_order_cnt_lsb =
            r.read_ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)? as u8 + 4;

        // §7.4.3.2.1 with SubWidthC/SubHeightC of Table 6-1.
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (sub_width, sub_height) = match chroma_array_type {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let width = cropped(
            "conf_win_left/right_offset",
            pic_width_in_luma_samples,
            sub_width * (window[0] + window[1]),
        )?;
        let height = cropped(
            "conf_win_top/bottom_offset",
            pic_height_in_luma_samples,
            sub_height * (window[2] + window[3]),
        )?;
        Ok(Self {
            video_parameter_set_id,
            max_sub_layers: max_sub_layers_minus1 + 1,
            temporal_id_nesting,
            general,
            seq_parameter_set_id,
            chroma_format_idc,
            separate_colour_plane,
            pic_width_in_luma_samples,
            pic_height_in_luma_samples,
            width,
            height,
            bit_depth_luma,
            bit_depth_chroma,
            log2_max_pic_order_cnt_lsb,
        })
    }

    /// The codecs parameter for `sample_entry` (`"hvc1"` or `"hev1"`), e.g. `hvc1.1.6.L93.B0`.
    pub fn codec_string(&self, sample_entry: &str) -> String {
        self.general.codec_string(sample_entry)
    }
}

/// The fields of an H.265 picture parameter set that the start of a picture's first slice
/// segment header depends on (§7.3.2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PpsSliceFields {
    /// `output_flag_present_flag`.
    pub output_flag_present: bool,
    /// `num_extra_slice_header_bits`.
    pub num_extra_slice_header_bits: u8,
}

impl PpsSliceFields {
    /// Reads them from a PPS NAL unit, two-byte header included (`44 01 …`).
    pub fn parse(nal: &[u8]) -> Result<Self, CodecError> {
        const PPS: &str = "H.265 PPS";
        let payload = nal.get(2..).ok_or(CodecError::Truncated {
            what: PPS,
            offset: nal.len(),
        })?;
        let mut r = BitReader::new(PPS, payload);
        let _pps_pic_parameter_set_id = r.read_ue_max("pps_pic_parameter_set_id", 63)?;
        let _pps_seq_parameter_set_id = r.read_ue_max("pps_seq_parameter_set_id", 15)?;
        let _dependent_slice_segments_enabled = r.read_flag()?;
        Ok(Self {
            output_flag_present: r.read_flag()?,
            num_extra_slice_header_bits: r.read_bits(3)? as u8,
        })
    }
}

/// The `slice_pic_order_cnt_lsb` of a picture's first slice segment (NAL unit types 0–21, the
/// two-byte header included), read from its header (H.265 §7.3.6.1); 0 for an IDR picture,
/// which has none.
pub fn slice_pic_order_cnt_lsb(
    nal: &[u8],
    sps: &Sps,
    pps: &PpsSliceFields,
) -> Result<u32, CodecError> {
    const SLICE: &str = "H.265 slice segment header";
    let payload = nal.get(2..).ok_or(CodecError::Truncated {
        what: SLICE,
        offset: nal.len(),
    })?;
    let nal_type = h265_nal_type(nal[0]);
    let mut r = BitReader::new(SLICE, payload);
    if !r.read_flag()? {
        return Err(CodecError::InvalidValue {
            field: "first_slice_segment_in_pic_flag",
            value: 0,
        });
    }
    if (16..=23).contains(&nal_type) {
        let _no_output_of_prior_pics = r.read_flag()?;
    }
    let _slice_pic_parameter_set_id = r.read_ue_max("slice_pic_parameter_set_id", 63)?;
    for _ in 0..pps.num_extra_slice_header_bits {
        let _slice_reserved_flag = r.read_flag()?;
    }
    let _slice_type = r.read_ue_max("slice_type", 2)?;
    if pps.output_flag_present {
        let _pic_output_flag = r.read_flag()?;
    }
    if sps.separate_colour_plane {
        let _colour_plane_id = r.read_bits(2)?;
    }
    if matches!(nal_type, 19 | 20) {
        return Ok(0);
    }
    r.read_bits(u32::from(sps.log2_max_pic_order_cnt_lsb))
}

/// `profile_tier_level(1, sps_max_sub_layers_minus1)`, H.265 §7.3.3: the general part is
/// kept, the sub-layer parts are skipped.
fn read_profile_tier_level(
    r: &mut BitReader<'_>,
    max_sub_layers_minus1: u8,
) -> Result<ProfileTierLevel, CodecError> {
    let mut general = [0u8; 12];
    for byte in &mut general {
        *byte = r.read_bits(8)? as u8;
    }
    let mut present = [(false, false); 7];
    for p in present.iter_mut().take(usize::from(max_sub_layers_minus1)) {
        *p = (r.read_flag()?, r.read_flag()?);
    }
    if max_sub_layers_minus1 > 0 {
        // reserved_zero_2bits for i in max_sub_layers_minus1..8.
        r.skip(2 * (8 - usize::from(max_sub_layers_minus1)))?;
    }
    for &(profile_present, level_present) in present.iter() {
        if profile_present {
            // sub_layer profile space … sub_layer_inbld_flag/reserved: 88 bits.
            r.skip(88)?;
        }
        if level_present {
            r.skip(8)?;
        }
    }
    Ok(ProfileTierLevel::from_bytes(general))
}

fn cropped(field: &'static str, size: u32, crop: u64) -> Result<u32, CodecError> {
    u64::from(size)
        .checked_sub(crop)
        .filter(|&s| s > 0)
        .and_then(|s| u32::try_from(s).ok())
        .ok_or(CodecError::InvalidValue {
            field,
            value: i64::try_from(crop).unwrap_or(i64::MAX),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    // No libx265 or ffmpeg on the build machine, so the parameter sets below come from the
    // mp4ff test suite (Eyevinn/mp4ff `hevc/*_test.go`), which asserts the values checked
    // here; the `hvcC` records around them are assembled per ISO/IEC 14496-15 §8.3.3.1.

    /// VPS, SPS, PPS of a Main profile, level 4 (120), constraint byte 0x90, 640×360 stream
    /// (`hevcdecoderconfigurationrecord_test.go`; the size is checked by hand against the
    /// ue(v) fields: pic_width_in_luma_samples 640, pic_height_in_luma_samples 360).
    const MAIN_L120_VPS: &str = "40010c01ffff016000000300900000030000030078959809";
    const MAIN_L120_SPS: &str = "420101016000000300900000030000030078a00502016965959a4932bc05a80808082000000300200000030321";
    const MAIN_L120_PPS: &str = "4401c172b46240";

    /// VPS, SPS, PPS of a Main 10, level 4.1 (123) stream: 960×544 coded, conformance
    /// window bottom offset 2 → 960×540 (`hvcc_test.go`, `sps_test.go`).
    const MAIN10_VPS: &str = "40010c01ffff022000000300b0000003000003007b18b024";
    const MAIN10_SPS: &str = "420101022000000300b0000003000003007ba0078200887db6718b92448053888892cf24a69272c9124922dc91aa48fca223ff000100016a02020201";
    const MAIN10_PPS: &str = "4401c0252f053240";

    /// A Main 10 HDR10 3840×2160 level 5.2 (156) SPS (`sps_test.go`).
    const MAIN10_UHD_SPS: &str =
        "420101022000000300b0000003000003009ca001e020021c4d8815ee4595602d4244024020";

    /// A Main profile SPS whose codecs string mp4ff asserts as `hvc1.1.6.L123.B0`
    /// (`mime_test.go`).
    const MAIN_L123_SPS: &str = "420101016000000300b0000003000003007ba003c08010e59447924525ac041400000300040000030067c36bdcf50007a12000f42640";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// An `hvcC` record (4-byte lengths, 4:2:0, one temporal layer, complete arrays) whose
    /// profile_tier_level is copied from the SPS, as muxers do.
    fn hvcc(bit_depth: u8, nals: &[Vec<u8>]) -> Vec<u8> {
        let sps = nals.iter().find(|n| h265_nal_type(n[0]) == 33).unwrap();
        let sps = Sps::parse(sps).unwrap();
        let ptl = sps.general;
        let mut out = vec![
            1,
            (ptl.profile_space << 6) | (u8::from(ptl.tier_flag) << 5) | ptl.profile_idc,
        ];
        out.extend_from_slice(&ptl.profile_compatibility_flags.to_be_bytes());
        out.extend_from_slice(&ptl.constraint_indicator_flags.to_be_bytes()[2..]);
        out.push(ptl.level_idc);
        out.extend_from_slice(&[0xf0, 0x00, 0xfc, 0xfd]);
        out.extend_from_slice(&[0xf8 | (bit_depth - 8), 0xf8 | (bit_depth - 8), 0, 0]);
        out.push(0x0f); // constantFrameRate 0, 1 temporal layer, nested, lengthSizeMinusOne 3
        out.push(nals.len() as u8);
        for nal in nals {
            out.push(0x80 | h265_nal_type(nal[0]));
            out.extend_from_slice(&[0, 1]);
            out.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            out.extend_from_slice(nal);
        }
        out
    }

    /// The Main L120 parameter sets with level 93 (3.1) and constraint byte 0xB0
    /// (progressive, non-packed, frame-only) patched into the VPS and SPS
    /// profile_tier_level: the classic `hvc1.1.6.L93.B0` configuration.
    fn main_l93_nals() -> Vec<Vec<u8>> {
        let mut vps = hex(MAIN_L120_VPS);
        let mut sps = hex(MAIN_L120_SPS);
        // General PTL starts at byte 6 of the VPS and byte 3 of the SPS; after the 00 00 03
        // emulation-prevention bytes the constraint byte sits 6 bytes in and the level 14.
        for (nal, ptl) in [(&mut vps, 6), (&mut sps, 3)] {
            assert_eq!((nal[ptl + 6], nal[ptl + 14]), (0x90, 0x78));
            nal[ptl + 6] = 0xb0;
            nal[ptl + 14] = 0x5d;
        }
        vec![vps, sps, hex(MAIN_L120_PPS)]
    }

    #[test]
    fn main_profile_l93_codec_string() {
        let record = hvcc(8, &main_l93_nals());
        let config = HevcDecoderConfig::parse(&record).unwrap();
        assert_eq!(config.codec_string("hvc1"), "hvc1.1.6.L93.B0");
        assert_eq!(config.codec_string("hev1"), "hev1.1.6.L93.B0");
        assert_eq!(
            config.general,
            ProfileTierLevel {
                profile_space: 0,
                tier_flag: false,
                profile_idc: 1,
                profile_compatibility_flags: 0x6000_0000,
                constraint_indicator_flags: 0xb000_0000_0000,
                level_idc: 93,
            }
        );
        assert_eq!(config.nal_length_size, 4);
        assert_eq!(config.num_temporal_layers, 1);
        assert!(config.temporal_id_nested);
        assert_eq!(config.arrays.len(), 3);
        assert_eq!(
            config.nal_units(34).collect::<Vec<_>>(),
            [&hex(MAIN_L120_PPS)[..]]
        );
        let sps = config.first_sps().unwrap();
        assert_eq!(sps.general, config.general);
        assert_eq!(sps.codec_string("hvc1"), "hvc1.1.6.L93.B0");
    }

    #[test]
    fn main_l120_stream() {
        let nals = [MAIN_L120_VPS, MAIN_L120_SPS, MAIN_L120_PPS]
            .map(hex)
            .to_vec();
        let config = HevcDecoderConfig::parse(&hvcc(8, &nals)).unwrap();
        assert_eq!(config.codec_string("hvc1"), "hvc1.1.6.L120.90");
        let sps = config.first_sps().unwrap();
        assert_eq!(sps.chroma_format_idc, 1);
        assert_eq!((sps.bit_depth_luma, sps.bit_depth_chroma), (8, 8));
        assert_eq!((sps.width, sps.height), (640, 360));
    }

    #[test]
    fn main10_stream_with_conformance_window() {
        let nals = [MAIN10_VPS, MAIN10_SPS, MAIN10_PPS].map(hex).to_vec();
        let config = HevcDecoderConfig::parse(&hvcc(10, &nals)).unwrap();
        assert_eq!(config.codec_string("hvc1"), "hvc1.2.4.L123.B0");
        assert_eq!((config.bit_depth_luma, config.bit_depth_chroma), (10, 10));
        let sps = config.first_sps().unwrap();
        assert_eq!(
            sps,
            Sps {
                video_parameter_set_id: 0,
                max_sub_layers: 1,
                temporal_id_nesting: true,
                general: config.general,
                seq_parameter_set_id: 0,
                chroma_format_idc: 1,
                separate_colour_plane: false,
                pic_width_in_luma_samples: 960,
                pic_height_in_luma_samples: 544,
                width: 960,
                height: 540,
                bit_depth_luma: 10,
                bit_depth_chroma: 10,
                log2_max_pic_order_cnt_lsb: 10,
            }
        );
    }

    #[test]
    fn more_sps_vectors() {
        let sps = Sps::parse(&hex(MAIN10_UHD_SPS)).unwrap();
        assert_eq!((sps.width, sps.height), (3840, 2160));
        assert_eq!(sps.bit_depth_luma, 10);
        assert_eq!(sps.codec_string("hev1"), "hev1.2.4.L156.B0");

        let sps = Sps::parse(&hex(MAIN_L123_SPS)).unwrap();
        assert_eq!(sps.codec_string("hvc1"), "hvc1.1.6.L123.B0");
        assert_eq!((sps.width, sps.height), (1920, 1080));
    }

    #[test]
    fn codec_string_rules() {
        let ptl = ProfileTierLevel {
            profile_space: 1,
            tier_flag: true,
            profile_idc: 4,
            // Flags 4 and 5 → reversed 0x30.
            profile_compatibility_flags: 0x0c00_0000,
            constraint_indicator_flags: 0x9800_0100_0000,
            level_idc: 153,
        };
        assert_eq!(ptl.codec_string("hev1"), "hev1.A4.30.H153.98.0.1");
        let ptl = ProfileTierLevel {
            profile_space: 3,
            constraint_indicator_flags: 0,
            ..ptl
        };
        assert_eq!(ptl.codec_string("hvc1"), "hvc1.C4.30.H153");
        // Flag 0 alone reverses to bit 0.
        let ptl = ProfileTierLevel {
            profile_space: 2,
            profile_compatibility_flags: 0x8000_0000,
            ..ptl
        };
        assert_eq!(ptl.codec_string("hvc1"), "hvc1.B4.1.H153");
    }

    #[test]
    fn sub_layer_profile_tier_level_is_skipped() {
        // Rebuild the Main 10 SPS with sps_max_sub_layers_minus1 = 1 and a sub-layer carrying
        // both profile (88 bits) and level (8 bits), then the rest unchanged.
        let original = hex(MAIN10_SPS);
        let mut bits: Vec<bool> = Vec::new();
        let push = |bits: &mut Vec<bool>, value: u64, n: u32| {
            bits.extend((0..n).rev().map(|i| (value >> i) & 1 == 1));
        };
        let mut r = BitReader::new("test", &original[2..]);
        r.skip(8).unwrap(); // vps id, max_sub_layers_minus1 = 0, nesting
        push(&mut bits, 0b0000_0011, 8); // vps id 0, max_sub_layers_minus1 1, nesting
        for _ in 0..12 {
            push(&mut bits, u64::from(r.read_bits(8).unwrap()), 8);
        }
        push(&mut bits, 0b11, 2); // sub_layer_profile_present, sub_layer_level_present
        push(&mut bits, 0, 14); // reserved_zero_2bits × 7
        push(&mut bits, 0x0123_4567_89ab_cdef, 64);
        push(&mut bits, 0xabcdef, 24);
        push(&mut bits, 90, 8);
        while let Ok(bit) = r.read_flag() {
            bits.push(bit);
        }
        let mut rbsp = vec![0u8; bits.len().div_ceil(8)];
        for (i, &b) in bits.iter().enumerate() {
            if b {
                rbsp[i / 8] |= 0x80 >> (i % 8);
            }
        }
        // Emulation prevention (H.265 §7.4.2): 03 after 00 00 when the next byte is ≤ 3.
        let mut nal = vec![0x42, 0x01];
        let mut zeros = 0;
        for &b in &rbsp {
            if zeros >= 2 && b <= 3 {
                nal.push(3);
                zeros = 0;
            }
            nal.push(b);
            zeros = if b == 0 { zeros + 1 } else { 0 };
        }
        let sps = Sps::parse(&nal).unwrap();
        assert_eq!(sps.max_sub_layers, 2);
        assert_eq!((sps.width, sps.height), (960, 540));
        assert_eq!(sps.bit_depth_luma, 10);
    }

    #[test]
    fn record_errors() {
        let nals = [MAIN10_VPS, MAIN10_SPS, MAIN10_PPS].map(hex).to_vec();
        let good = hvcc(10, &nals);
        let mut bad = good.clone();
        bad[0] = 0;
        assert_eq!(
            HevcDecoderConfig::parse(&bad),
            Err(CodecError::UnsupportedVersion {
                what: "hvcC",
                version: 0
            })
        );
        let mut bad = good.clone();
        bad[21] = 0x0e;
        assert!(matches!(
            HevcDecoderConfig::parse(&bad),
            Err(CodecError::InvalidValue {
                field: "lengthSizeMinusOne",
                ..
            })
        ));
        // The VPS array labelled as SPS.
        let mut bad = good.clone();
        bad[23] = 0x80 | 33;
        assert!(matches!(
            HevcDecoderConfig::parse(&bad),
            Err(CodecError::UnexpectedNalType {
                expected: 33,
                actual: 32,
                ..
            })
        ));
        // A record without arrays has no SPS.
        let mut empty = good[..23].to_vec();
        empty[22] = 0;
        let config = HevcDecoderConfig::parse(&empty).unwrap();
        assert!(matches!(
            config.first_sps(),
            Err(CodecError::MissingParameterSet { .. })
        ));
        assert!(matches!(
            Sps::parse(&hex(MAIN10_VPS)),
            Err(CodecError::UnexpectedNalType { actual: 32, .. })
        ));
        // A conformance window as large as the picture leaves nothing.
        assert!(matches!(
            cropped("conf_win", 16, 16),
            Err(CodecError::InvalidValue { value: 16, .. })
        ));
        assert_eq!(cropped("conf_win", 544, 4), Ok(540));
    }

    #[test]
    fn every_truncation_is_an_error_and_never_panics() {
        for (bit_depth, nals) in [
            (8, main_l93_nals()),
            (10, [MAIN10_VPS, MAIN10_SPS, MAIN10_PPS].map(hex).to_vec()),
        ] {
            let record = hvcc(bit_depth, &nals);
            for len in 0..record.len() {
                assert!(
                    HevcDecoderConfig::parse(&record[..len]).is_err(),
                    "cut at {len}"
                );
            }
        }
        // The SPS parser stops after the bit depths, so only cuts before them must fail.
        for sps in [MAIN10_SPS, MAIN10_UHD_SPS, MAIN_L123_SPS, MAIN_L120_SPS] {
            let sps = hex(sps);
            for len in 0..sps.len() {
                let _ = Sps::parse(&sps[..len]);
            }
            assert!(Sps::parse(&sps[..20]).is_err());
        }
    }

    #[test]
    fn corrupted_records_never_panic() {
        let record = hvcc(10, &[MAIN10_VPS, MAIN10_SPS, MAIN10_PPS].map(hex));
        for i in 0..record.len() {
            for flip in [0x01, 0x10, 0x80, 0xff] {
                let mut bad = record.clone();
                bad[i] ^= flip;
                if let Ok(config) = HevcDecoderConfig::parse(&bad) {
                    let _ = config.first_sps();
                }
            }
        }
    }
}
