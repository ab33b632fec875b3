//! H.264/AVC configuration: the `avcC` AVCDecoderConfigurationRecord (ISO/IEC 14496-15
//! §5.3.3.1, the Matroska `V_MPEG4/ISO/AVC` CodecPrivate) and the sequence parameter set
//! (ITU-T H.264 §7.3.2.1.1, VUI per Annex E.1.1), with the RFC 6381 §3.3 codecs string
//! (`avc1.PPCCLL`).
//!
//! The SPS is parsed to its `rbsp_stop_one_bit`, so a truncated or mis-parsed SPS is an error
//! rather than a plausible wrong answer.

use super::CodecError;
use super::bits::BitReader;
use super::cursor::ByteCursor;
use super::nal::{H264_NAL_PPS, H264_NAL_SPS, h264_nal_type};

const AVCC: &str = "avcC";
const SPS: &str = "H.264 SPS";

/// A parsed `avcC` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcDecoderConfig {
    /// `AVCProfileIndication` (the SPS `profile_idc`).
    pub profile_idc: u8,
    /// `profile_compatibility` (the SPS constraint-flags byte).
    pub profile_compatibility: u8,
    /// `AVCLevelIndication` (the SPS `level_idc`).
    pub level_idc: u8,
    /// Size in bytes of each sample's NAL unit length prefix: 1, 2 or 4.
    pub nal_length_size: u8,
    /// The sequence parameter set NAL units, with their one-byte headers.
    pub sps: Vec<Vec<u8>>,
    /// The picture parameter set NAL units, with their one-byte headers.
    pub pps: Vec<Vec<u8>>,
    /// The high-profile extension fields, when the record carries them (profiles other than
    /// 66, 77 and 88; many muxers, GStreamer and x264 among them, omit them). A tail shorter
    /// than the extension's four fixed bytes is ignored, as some muxers leave a stray byte.
    pub high_profile: Option<AvcHighProfileExtension>,
}

/// The fields an `avcC` record appends for profiles other than Baseline, Main and Extended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcHighProfileExtension {
    /// `chroma_format` (0 = monochrome, 1 = 4:2:0, 2 = 4:2:2, 3 = 4:4:4).
    pub chroma_format_idc: u8,
    /// Luma bit depth (`bit_depth_luma_minus8` + 8).
    pub bit_depth_luma: u8,
    /// Chroma bit depth (`bit_depth_chroma_minus8` + 8).
    pub bit_depth_chroma: u8,
    /// Sequence parameter set extension NAL units.
    pub sps_ext: Vec<Vec<u8>>,
}

impl AvcDecoderConfig {
    /// Parses an `avcC` record (the box payload, or a Matroska CodecPrivate).
    pub fn parse(data: &[u8]) -> Result<Self, CodecError> {
        let mut c = ByteCursor::new(AVCC, data);
        let version = c.u8()?;
        if version != 1 {
            return Err(CodecError::UnsupportedVersion {
                what: AVCC,
                version,
            });
        }
        let profile_idc = c.u8()?;
        let profile_compatibility = c.u8()?;
        let level_idc = c.u8()?;
        let nal_length_size = match c.u8()? & 0x03 {
            2 => {
                return Err(CodecError::InvalidValue {
                    field: "lengthSizeMinusOne",
                    value: 2,
                });
            }
            minus_one => minus_one + 1,
        };
        let num_sps = c.u8()? & 0x1f;
        let sps = read_nal_list(&mut c, usize::from(num_sps))?;
        let num_pps = c.u8()?;
        let pps = read_nal_list(&mut c, usize::from(num_pps))?;
        // Muxers often omit the extension and some leave a stray byte or two instead; only a
        // tail long enough for the extension's fixed part is read as one.
        let high_profile = if matches!(profile_idc, 66 | 77 | 88) || c.remaining() < 4 {
            None
        } else {
            let chroma_format_idc = c.u8()? & 0x03;
            let bit_depth_luma = (c.u8()? & 0x07) + 8;
            let bit_depth_chroma = (c.u8()? & 0x07) + 8;
            let num_sps_ext = c.u8()?;
            let sps_ext = read_nal_list(&mut c, usize::from(num_sps_ext))?;
            Some(AvcHighProfileExtension {
                chroma_format_idc,
                bit_depth_luma,
                bit_depth_chroma,
                sps_ext,
            })
        };
        for nal in &sps {
            check_nal_type(nal, H264_NAL_SPS, "avcC SPS")?;
        }
        for nal in &pps {
            check_nal_type(nal, H264_NAL_PPS, "avcC PPS")?;
        }
        Ok(Self {
            profile_idc,
            profile_compatibility,
            level_idc,
            nal_length_size,
            sps,
            pps,
            high_profile,
        })
    }

    /// Parses the record's first SPS.
    pub fn first_sps(&self) -> Result<Sps, CodecError> {
        let nal = self.sps.first().ok_or(CodecError::MissingParameterSet {
            what: AVCC,
            parameter_set: "SPS",
        })?;
        Sps::parse(nal)
    }

    /// The RFC 6381 codecs parameter, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        codec_string(self.profile_idc, self.profile_compatibility, self.level_idc)
    }
}

/// What an H.264 sequence parameter set says about the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    /// `profile_idc` (66 Baseline, 77 Main, 100 High, …).
    pub profile_idc: u8,
    /// `constraint_set0_flag` … `constraint_set5_flag` and the two reserved bits, as one byte.
    pub constraint_flags: u8,
    /// `level_idc` (level × 10, e.g. 31 for 3.1).
    pub level_idc: u8,
    /// `seq_parameter_set_id` (0..=31).
    pub seq_parameter_set_id: u8,
    /// `chroma_format_idc` (0 = monochrome, 1 = 4:2:0, 2 = 4:2:2, 3 = 4:4:4).
    pub chroma_format_idc: u8,
    /// `separate_colour_plane_flag` (4:4:4 only).
    pub separate_colour_plane: bool,
    /// Luma bit depth (`bit_depth_luma_minus8` + 8).
    pub bit_depth_luma: u8,
    /// Chroma bit depth (`bit_depth_chroma_minus8` + 8).
    pub bit_depth_chroma: u8,
    /// `pic_order_cnt_type` (0, 1 or 2).
    pub pic_order_cnt_type: u8,
    /// Bits of `frame_num` in a slice header (`log2_max_frame_num_minus4` + 4).
    pub log2_max_frame_num: u8,
    /// Bits of `pic_order_cnt_lsb` in a slice header (`log2_max_pic_order_cnt_lsb_minus4` + 4),
    /// with `pic_order_cnt_type` 0.
    pub log2_max_pic_order_cnt_lsb: Option<u8>,
    /// `max_num_ref_frames`.
    pub max_num_ref_frames: u32,
    /// `frame_mbs_only_flag`: false when fields or MBAFF may occur.
    pub frame_mbs_only: bool,
    /// Displayed width in luma samples, after frame cropping.
    pub width: u32,
    /// Displayed height in luma samples (frame height), after frame cropping.
    pub height: u32,
    /// Sample aspect ratio (`aspect_ratio_idc` per Table E-1, or `Extended_SAR`), if signalled.
    pub sample_aspect_ratio: Option<(u16, u16)>,
    /// VUI timing information, if signalled.
    pub timing: Option<VuiTiming>,
    /// `max_num_reorder_frames` from the VUI bitstream restrictions, if signalled (0 means no
    /// B-frame reordering).
    pub max_num_reorder_frames: Option<u32>,
}

/// VUI `timing_info` (H.264 §E.2.1): a frame lasts `2 × num_units_in_tick / time_scale`
/// seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VuiTiming {
    /// `num_units_in_tick`.
    pub num_units_in_tick: u32,
    /// `time_scale` (Hz).
    pub time_scale: u32,
    /// `fixed_frame_rate_flag`.
    pub fixed_frame_rate: bool,
}

impl Sps {
    /// Parses a sequence parameter set NAL unit, header byte included (e.g. `67 64 00 1f …`).
    pub fn parse(nal: &[u8]) -> Result<Self, CodecError> {
        check_nal_type(nal, H264_NAL_SPS, SPS)?;
        // check_nal_type saw the header byte.
        let mut r = BitReader::new(SPS, &nal[1..]);
        let profile_idc = r.read_bits(8)? as u8;
        let constraint_flags = r.read_bits(8)? as u8;
        let level_idc = r.read_bits(8)? as u8;
        let seq_parameter_set_id = r.read_ue_max("seq_parameter_set_id", 31)? as u8;

        let mut chroma_format_idc = 1;
        let mut separate_colour_plane = false;
        let mut bit_depth_luma = 8;
        let mut bit_depth_chroma = 8;
        if matches!(
            profile_idc,
            100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
        ) {
            chroma_format_idc = r.read_ue_max("chroma_format_idc", 3)? as u8;
            if chroma_format_idc == 3 {
                separate_colour_plane = r.read_flag()?;
            }
            bit_depth_luma = r.read_ue_max("bit_depth_luma_minus8", 6)? as u8 + 8;
            bit_depth_chroma = r.read_ue_max("bit_depth_chroma_minus8", 6)? as u8 + 8;
            let _qpprime_y_zero_transform_bypass = r.read_flag()?;
            if r.read_flag()? {
                // seq_scaling_matrix_present_flag
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.read_flag()? {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        let log2_max_frame_num = r.read_ue_max("log2_max_frame_num_minus4", 12)? as u8 + 4;
        let pic_order_cnt_type = r.read_ue_max("pic_order_cnt_type", 2)? as u8;
        let mut log2_max_pic_order_cnt_lsb = None;
        match pic_order_cnt_type {
            0 => {
                log2_max_pic_order_cnt_lsb =
                    Some(r.read_ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)? as u8 + 4);
            }
            1 => {
                let _delta_pic_order_always_zero = r.read_flag()?;
                let _offset_for_non_ref_pic = r.read_se()?;
                let _offset_for_top_to_bottom_field = r.read_se()?;
                let cycle = r.read_ue_max("num_ref_frames_in_pic_order_cnt_cycle", 255)?;
                for _ in 0..cycle {
                    let _offset_for_ref_frame = r.read_se()?;
                }
            }
            _ => {}
        }
        let max_num_ref_frames = r.read_ue()?;
        let _gaps_in_frame_num_value_allowed = r.read_flag()?;
        let width_mbs = u64::from(r.read_ue()?) + 1;
        let height_map_units = u64::from(r.read_ue()?) + 1;
        let frame_mbs_only = r.read_flag()?;
        if !frame_mbs_only {
            let _mb_adaptive_frame_field = r.read_flag()?;
        }
        let _direct_8x8_inference = r.read_flag()?;
        let crop = if r.read_flag()? {
            [r.read_ue()?, r.read_ue()?, r.read_ue()?, r.read_ue()?].map(u64::from)
        } else {
            [0; 4]
        };

        // §7.4.2.1.1: frame size and the crop units of Table 6-1.
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let field_factor = if frame_mbs_only { 1 } else { 2 };
        let (crop_unit_x, crop_unit_y) = match chroma_array_type {
            0 => (1, field_factor),
            1 => (2, 2 * field_factor),
            2 => (2, field_factor),
            _ => (1, field_factor),
        };
        let width = cropped(
            "frame_crop_left/right_offset",
            width_mbs * 16,
            crop_unit_x * (crop[0] + crop[1]),
        )?;
        let height = cropped(
            "frame_crop_top/bottom_offset",
            field_factor * height_map_units * 16,
            crop_unit_y * (crop[2] + crop[3]),
        )?;

        let mut sps = Self {
            profile_idc,
            constraint_flags,
            level_idc,
            seq_parameter_set_id,
            chroma_format_idc,
            separate_colour_plane,
            bit_depth_luma,
            bit_depth_chroma,
            pic_order_cnt_type,
            log2_max_frame_num,
            log2_max_pic_order_cnt_lsb,
            max_num_ref_frames,
            frame_mbs_only,
            width,
            height,
            sample_aspect_ratio: None,
            timing: None,
            max_num_reorder_frames: None,
        };
        if r.read_flag()? {
            sps.parse_vui(&mut r)?;
        }
        if !r.read_flag()? {
            return Err(CodecError::InvalidValue {
                field: "rbsp_stop_one_bit",
                value: 0,
            });
        }
        Ok(sps)
    }

    /// The RFC 6381 codecs parameter, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        codec_string(self.profile_idc, self.constraint_flags, self.level_idc)
    }

    /// `vui_parameters()`, H.264 §E.1.1.
    fn parse_vui(&mut self, r: &mut BitReader<'_>) -> Result<(), CodecError> {
        if r.read_flag()? {
            // aspect_ratio_info_present_flag
            let idc = r.read_bits(8)? as u8;
            self.sample_aspect_ratio = if idc == 255 {
                Some((r.read_bits(16)? as u16, r.read_bits(16)? as u16))
            } else {
                sample_aspect_ratio(idc)
            };
        }
        if r.read_flag()? {
            let _overscan_appropriate = r.read_flag()?;
        }
        if r.read_flag()? {
            // video_signal_type_present_flag: video_format, video_full_range_flag.
            r.skip(4)?;
            if r.read_flag()? {
                // colour_primaries, transfer_characteristics, matrix_coefficients.
                r.skip(24)?;
            }
        }
        if r.read_flag()? {
            let _chroma_sample_loc_type_top_field = r.read_ue()?;
            let _chroma_sample_loc_type_bottom_field = r.read_ue()?;
        }
        if r.read_flag()? {
            let num_units_in_tick = r.read_bits(32)?;
            let time_scale = r.read_bits(32)?;
            let fixed_frame_rate = r.read_flag()?;
            self.timing = Some(VuiTiming {
                num_units_in_tick,
                time_scale,
                fixed_frame_rate,
            });
        }
        let nal_hrd = r.read_flag()?;
        if nal_hrd {
            skip_hrd_parameters(r)?;
        }
        let vcl_hrd = r.read_flag()?;
        if vcl_hrd {
            skip_hrd_parameters(r)?;
        }
        if nal_hrd || vcl_hrd {
            let _low_delay_hrd = r.read_flag()?;
        }
        let _pic_struct_present = r.read_flag()?;
        if r.read_flag()? {
            // bitstream_restriction_flag
            let _motion_vectors_over_pic_boundaries = r.read_flag()?;
            let _max_bytes_per_pic_denom = r.read_ue()?;
            let _max_bits_per_mb_denom = r.read_ue()?;
            let _log2_max_mv_length_horizontal = r.read_ue()?;
            let _log2_max_mv_length_vertical = r.read_ue()?;
            self.max_num_reorder_frames = Some(r.read_ue()?);
            let _max_dec_frame_buffering = r.read_ue()?;
        }
        Ok(())
    }
}

fn codec_string(profile_idc: u8, constraints: u8, level_idc: u8) -> String {
    format!("avc1.{profile_idc:02x}{constraints:02x}{level_idc:02x}")
}

fn read_nal_list(c: &mut ByteCursor<'_>, count: usize) -> Result<Vec<Vec<u8>>, CodecError> {
    // Each entry takes at least its 2-byte length, so `count` is bounded by the input.
    let mut out = Vec::with_capacity(count.min(c.remaining() / 2));
    for _ in 0..count {
        out.push(c.u16_prefixed()?.to_vec());
    }
    Ok(out)
}

/// The `pic_order_cnt_lsb` of a coded slice (NAL unit types 1 and 5, header byte included)
/// of a frame picture, read from its slice header (H.264 §7.3.3) with the stream's SPS; `None`
/// when the SPS's `pic_order_cnt_type` is not 0 (type 2 pictures are output in decoding
/// order; type 1 is not read). A field picture is an error: its order needs both fields.
pub fn slice_pic_order_cnt_lsb(nal: &[u8], sps: &Sps) -> Result<Option<u32>, CodecError> {
    const SLICE: &str = "H.264 slice header";
    let Some(lsb_bits) = sps.log2_max_pic_order_cnt_lsb else {
        return Ok(None);
    };
    let header = *nal.first().ok_or(CodecError::Truncated {
        what: SLICE,
        offset: 0,
    })?;
    let idr = h264_nal_type(header) == 5;
    let mut r = BitReader::new(SLICE, &nal[1..]);
    let _first_mb_in_slice = r.read_ue()?;
    let _slice_type = r.read_ue_max("slice_type", 9)?;
    let _pic_parameter_set_id = r.read_ue_max("pic_parameter_set_id", 255)?;
    if sps.separate_colour_plane {
        let _colour_plane_id = r.read_bits(2)?;
    }
    let _frame_num = r.read_bits(u32::from(sps.log2_max_frame_num))?;
    if !sps.frame_mbs_only && r.read_flag()? {
        return Err(CodecError::InvalidValue {
            field: "field_pic_flag",
            value: 1,
        });
    }
    if idr {
        let _idr_pic_id = r.read_ue()?;
    }
    Ok(Some(r.read_bits(u32::from(lsb_bits))?))
}

fn check_nal_type(nal: &[u8], expected: u8, what: &'static str) -> Result<(), CodecError> {
    let header = *nal
        .first()
        .ok_or(CodecError::Truncated { what, offset: 0 })?;
    let actual = h264_nal_type(header);
    if actual != expected {
        return Err(CodecError::UnexpectedNalType {
            what,
            expected,
            actual,
        });
    }
    Ok(())
}

fn cropped(field: &'static str, size: u64, crop: u64) -> Result<u32, CodecError> {
    size.checked_sub(crop)
        .filter(|&s| s > 0)
        .and_then(|s| u32::try_from(s).ok())
        .ok_or(CodecError::InvalidValue {
            field,
            value: i64::try_from(crop).unwrap_or(i64::MAX),
        })
}

/// `scaling_list()`, H.264 §7.3.2.1.1.1: only the syntax is consumed.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), CodecError> {
    let mut last_scale = 8i32;
    let mut next_scale = 8i32;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = r.read_se()?;
            if !(-128..=127).contains(&delta) {
                return Err(CodecError::InvalidValue {
                    field: "delta_scale",
                    value: i64::from(delta),
                });
            }
            next_scale = (last_scale + delta + 256) % 256;
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

/// `hrd_parameters()`, H.264 §E.1.2: only the syntax is consumed.
fn skip_hrd_parameters(r: &mut BitReader<'_>) -> Result<(), CodecError> {
    let cpb_cnt = r.read_ue_max("cpb_cnt_minus1", 31)? + 1;
    r.skip(8)?; // bit_rate_scale, cpb_size_scale
    for _ in 0..cpb_cnt {
        let _bit_rate_value_minus1 = r.read_ue()?;
        let _cpb_size_value_minus1 = r.read_ue()?;
        let _cbr_flag = r.read_flag()?;
    }
    // initial_cpb_removal_delay_length_minus1, cpb_removal_delay_length_minus1,
    // dpb_output_delay_length_minus1, time_offset_length.
    r.skip(20)
}

/// Table E-1: `aspect_ratio_idc` 1..=16.
fn sample_aspect_ratio(idc: u8) -> Option<(u16, u16)> {
    const TABLE: [(u16, u16); 16] = [
        (1, 1),
        (12, 11),
        (10, 11),
        (16, 11),
        (40, 33),
        (24, 11),
        (20, 11),
        (32, 11),
        (80, 33),
        (18, 11),
        (15, 11),
        (64, 33),
        (160, 99),
        (4, 3),
        (3, 2),
        (2, 1),
    ];
    TABLE.get(usize::from(idc).checked_sub(1)?).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CodecPrivate of track 1 (`V_MPEG4/ISO/AVC`, PixelWidth 640, PixelHeight 480) of
    /// `shared/fixtures/producer/producer-c-1.6.4_h264_putmedia.mkv` and
    /// `producer-c-1.6.4_h264_aac_putmedia.mkv` (identical in both; EBML element 0x63A2 at
    /// file offset 232, 45 bytes), written by the KVS C producer SDK 1.6.4.
    const PRODUCER_C_AVCC: &str = "0164001effe1001d6764001eacb201407b602d4180415000000300100000030328f162e48001000568ebccb22c";

    /// CodecPrivate of track 1 (`V_MPEG4/ISO/AVC`, 640×480) of
    /// `shared/fixtures/producer/kvssink-3.6.0_h264_putmedia.mkv` (element 0x63A2 at file
    /// offset 230, 45 bytes): GStreamer kvssink 3.6.0 with x264 in High 4:4:4 Predictive
    /// (profile 244, 4:4:4, 10-bit), without the high-profile avcC extension.
    const KVSSINK_AVCC: &str = "01f4001effe1001c67f4001e90d9640280f6c05a83030320000003002000000791e2c5c901000668ebcc448440";

    /// An `avcC` from the mp4ff test suite (`avc/avcdecoderconfig_test.go`), x264-style High
    /// profile SPS (VUI timing 1/60, bitstream restrictions) with the high-profile extension
    /// `fd f8 f8 00` (4:2:0, 8-bit, no SPS extensions) present.
    const MP4FF_AVCC_WITH_EXTENSION: &str = "0164001effe100196764001eacd940a02ff9610000030001000003003c8f162d9601000568ebecb22cfdf8f800";

    /// A High profile `avcC` from the mp4ff test suite with a single stray byte after the PPS
    /// list instead of the high-profile extension, as some muxers write.
    const MP4FF_AVCC_STRAY_BYTE: &str = "01640029ffe1002667640029ac3ca5014016ec050808080a00000300020000030065c0c000b71a00022551f89f0501000468ef752500";

    /// SPSs of the mp4ff test suite (`avc/sps_test.go`) with the values it asserts: High 3.2
    /// 1280×720 with NAL HRD and pic_struct; High 1.3 320×180 (crop bottom 6); Main 5.0
    /// 2688×1520 with NAL and VCL HRD.
    const MP4FF_SPS_HIGH_720P_HRD: &str =
        "67640020accac05005bb0169e0000003002000000c9c4c000432380008647c12401cb1c31380";
    const MP4FF_SPS_HIGH_180P: &str = "6764000dacd941419f9e10000003001000000303c0f1429960";
    const MP4FF_SPS_MAIN_1520P: &str = "674d00329a64015005fff8037010101400000fa000013883a1800fee0003fb52ef2e343001fdc0007f6a5de5c280";

    /// The Baseline SPS of the mux.js test suite (`test/test-sps.js`): 720×404 after
    /// cropping (frame_crop_bottom_offset 2), profile 66, level 30.
    const MUXJS_BASELINE_SPS: [u8; 24] = [
        103, 66, 192, 30, 217, 0, 180, 53, 249, 225, 0, 0, 3, 0, 1, 0, 0, 3, 0, 60, 15, 22, 46, 72,
    ];

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn producer_c_avcc() {
        let avcc = AvcDecoderConfig::parse(&hex(PRODUCER_C_AVCC)).unwrap();
        assert_eq!(avcc.profile_idc, 100);
        assert_eq!(avcc.profile_compatibility, 0);
        assert_eq!(avcc.level_idc, 30);
        assert_eq!(avcc.nal_length_size, 4);
        assert_eq!(avcc.sps.len(), 1);
        assert_eq!(avcc.pps, [hex("68ebccb22c")]);
        assert_eq!(avcc.high_profile, None);
        assert_eq!(avcc.codec_string(), "avc1.64001e");

        let sps = avcc.first_sps().unwrap();
        assert_eq!(sps.codec_string(), "avc1.64001e");
        assert_eq!(
            sps,
            Sps {
                profile_idc: 100,
                constraint_flags: 0,
                level_idc: 30,
                seq_parameter_set_id: 0,
                chroma_format_idc: 1,
                separate_colour_plane: false,
                bit_depth_luma: 8,
                bit_depth_chroma: 8,
                pic_order_cnt_type: 2,
                log2_max_frame_num: 4,
                log2_max_pic_order_cnt_lsb: None,
                max_num_ref_frames: 3,
                frame_mbs_only: true,
                width: 640,
                height: 480,
                sample_aspect_ratio: Some((1, 1)),
                // 25 frames per second: a frame is two ticks of 1/50 s.
                timing: Some(VuiTiming {
                    num_units_in_tick: 1,
                    time_scale: 50,
                    fixed_frame_rate: true,
                }),
                max_num_reorder_frames: Some(0),
            }
        );
    }

    #[test]
    fn kvssink_avcc_high_444_10_bit() {
        let avcc = AvcDecoderConfig::parse(&hex(KVSSINK_AVCC)).unwrap();
        assert_eq!(avcc.profile_idc, 244);
        assert_eq!(avcc.nal_length_size, 4);
        assert_eq!(avcc.high_profile, None);
        assert_eq!(avcc.pps, [hex("68ebcc448440")]);
        assert_eq!(avcc.codec_string(), "avc1.f4001e");
        let sps = avcc.first_sps().unwrap();
        assert_eq!(sps.chroma_format_idc, 3);
        assert!(!sps.separate_colour_plane);
        assert_eq!((sps.bit_depth_luma, sps.bit_depth_chroma), (10, 10));
        assert_eq!((sps.width, sps.height), (640, 480));
        assert!(sps.frame_mbs_only);
        assert_eq!(
            sps.timing,
            Some(VuiTiming {
                num_units_in_tick: 1,
                time_scale: 60,
                fixed_frame_rate: true,
            })
        );
        assert_eq!(sps.sample_aspect_ratio, Some((1, 1)));
    }

    #[test]
    fn mp4ff_sps_vectors() {
        let sps = Sps::parse(&hex(MP4FF_SPS_HIGH_720P_HRD)).unwrap();
        assert_eq!(sps.codec_string(), "avc1.640020");
        assert_eq!((sps.width, sps.height), (1280, 720));
        assert_eq!(sps.max_num_ref_frames, 2);
        assert_eq!(sps.sample_aspect_ratio, Some((1, 1)));
        assert_eq!(
            sps.timing,
            Some(VuiTiming {
                num_units_in_tick: 1,
                time_scale: 100,
                fixed_frame_rate: true,
            })
        );
        assert_eq!(sps.max_num_reorder_frames, Some(1));

        let sps = Sps::parse(&hex(MP4FF_SPS_HIGH_180P)).unwrap();
        assert_eq!(sps.codec_string(), "avc1.64000d");
        assert_eq!((sps.width, sps.height), (320, 180));
        assert_eq!(sps.max_num_ref_frames, 4);
        assert_eq!(sps.sample_aspect_ratio, None);
        assert_eq!(sps.timing.map(|t| t.time_scale), Some(60));
        assert_eq!(sps.max_num_reorder_frames, Some(2));

        let sps = Sps::parse(&hex(MP4FF_SPS_MAIN_1520P)).unwrap();
        assert_eq!(sps.codec_string(), "avc1.4d0032");
        assert_eq!((sps.width, sps.height), (2688, 1520));
        assert_eq!(
            sps.timing,
            Some(VuiTiming {
                num_units_in_tick: 1000,
                time_scale: 20000,
                fixed_frame_rate: true,
            })
        );
        assert_eq!(sps.max_num_reorder_frames, None);
    }

    #[test]
    fn muxjs_baseline_sps_with_cropping() {
        let sps = Sps::parse(&MUXJS_BASELINE_SPS).unwrap();
        assert_eq!(sps.profile_idc, 66);
        assert_eq!(sps.constraint_flags, 0xc0);
        assert_eq!(sps.level_idc, 30);
        assert_eq!((sps.width, sps.height), (720, 404));
        assert_eq!(sps.codec_string(), "avc1.42c01e");
    }

    #[test]
    fn high_profile_extension_when_present() {
        let data = hex(MP4FF_AVCC_WITH_EXTENSION);
        let avcc = AvcDecoderConfig::parse(&data).unwrap();
        assert_eq!(
            avcc.high_profile,
            Some(AvcHighProfileExtension {
                chroma_format_idc: 1,
                bit_depth_luma: 8,
                bit_depth_chroma: 8,
                sps_ext: vec![],
            })
        );
        assert_eq!(avcc.codec_string(), "avc1.64001e");
        let sps = avcc.first_sps().unwrap();
        assert_eq!((sps.width, sps.height), (640, 360));
        // Fewer than the extension's four fixed bytes: tolerated as junk, like ffmpeg does.
        for cut in 1..4 {
            let avcc = AvcDecoderConfig::parse(&data[..data.len() - cut]).unwrap();
            assert_eq!(avcc.high_profile, None);
        }
        // An extension announcing an SPS extension that is not there is truncation.
        let mut bad = data.clone();
        *bad.last_mut().unwrap() = 1;
        assert!(matches!(
            AvcDecoderConfig::parse(&bad),
            Err(CodecError::Truncated { what: "avcC", .. })
        ));
    }

    #[test]
    fn stray_byte_instead_of_extension() {
        let avcc = AvcDecoderConfig::parse(&hex(MP4FF_AVCC_STRAY_BYTE)).unwrap();
        assert_eq!(avcc.high_profile, None);
        assert_eq!(avcc.pps, [hex("68ef7525")]);
        assert_eq!(avcc.codec_string(), "avc1.640029");
        let sps = avcc.first_sps().unwrap();
        assert_eq!((sps.width, sps.height), (1280, 720));
    }

    #[test]
    fn baseline_records_ignore_trailing_bytes() {
        // Baseline avcC of the mux.js SPS with one PPS, then junk that is not an extension.
        let mut data = vec![1, 66, 0xc0, 30, 0xff, 0xe1, 0, 24];
        data.extend_from_slice(&MUXJS_BASELINE_SPS);
        data.extend_from_slice(&[1, 0, 4, 0x68, 0xce, 0x38, 0x80, 0xfc]);
        let avcc = AvcDecoderConfig::parse(&data).unwrap();
        assert_eq!(avcc.high_profile, None);
        assert_eq!(avcc.codec_string(), "avc1.42c01e");
        assert_eq!(avcc.first_sps().unwrap().width, 720);
    }

    #[test]
    fn record_errors() {
        let mut data = hex(PRODUCER_C_AVCC);
        data[0] = 0;
        assert_eq!(
            AvcDecoderConfig::parse(&data),
            Err(CodecError::UnsupportedVersion {
                what: "avcC",
                version: 0
            })
        );
        let mut data = hex(PRODUCER_C_AVCC);
        data[4] = 0xfe;
        assert!(matches!(
            AvcDecoderConfig::parse(&data),
            Err(CodecError::InvalidValue {
                field: "lengthSizeMinusOne",
                ..
            })
        ));
        // The PPS slot holding the SPS.
        let mut data = hex(PRODUCER_C_AVCC);
        let pps_header = data.len() - 5;
        data[pps_header] = 0x67;
        assert!(matches!(
            AvcDecoderConfig::parse(&data),
            Err(CodecError::UnexpectedNalType { actual: 7, .. })
        ));
        // No SPS at all.
        let avcc = AvcDecoderConfig::parse(&[1, 66, 0, 30, 0xff, 0xe0, 0]).unwrap();
        assert_eq!(
            avcc.first_sps(),
            Err(CodecError::MissingParameterSet {
                what: "avcC",
                parameter_set: "SPS"
            })
        );
        assert!(matches!(
            Sps::parse(&hex("68ebccb22c")),
            Err(CodecError::UnexpectedNalType { actual: 8, .. })
        ));
        assert!(Sps::parse(&[]).is_err());
    }

    #[test]
    fn every_truncation_of_real_inputs_is_an_error() {
        for record in [PRODUCER_C_AVCC, KVSSINK_AVCC] {
            let data = hex(record);
            for len in 0..data.len() {
                assert!(
                    AvcDecoderConfig::parse(&data[..len]).is_err(),
                    "{record} cut at {len}"
                );
            }
            let sps = AvcDecoderConfig::parse(&data).unwrap().sps.remove(0);
            for len in 0..sps.len() {
                assert!(
                    Sps::parse(&sps[..len]).is_err(),
                    "{record} SPS cut at {len}"
                );
            }
        }
        for sps in [
            MP4FF_SPS_HIGH_720P_HRD,
            MP4FF_SPS_HIGH_180P,
            MP4FF_SPS_MAIN_1520P,
        ] {
            let sps = hex(sps);
            for len in 0..sps.len() {
                assert!(Sps::parse(&sps[..len]).is_err(), "SPS cut at {len}");
            }
        }
    }

    #[test]
    fn corrupted_real_inputs_never_panic() {
        for record in [PRODUCER_C_AVCC, KVSSINK_AVCC] {
            let data = hex(record);
            for i in 0..data.len() {
                for flip in [0x01, 0x10, 0x80, 0xff] {
                    let mut bad = data.clone();
                    bad[i] ^= flip;
                    if let Ok(avcc) = AvcDecoderConfig::parse(&bad) {
                        let _ = avcc.first_sps();
                    }
                }
            }
        }
    }

    /// A bit string for building SPS variants.
    #[derive(Default)]
    struct Bits(Vec<bool>);

    impl Bits {
        fn ue(&mut self, v: u32) {
            let code = u64::from(v) + 1;
            let len = 64 - code.leading_zeros();
            self.0.extend(std::iter::repeat_n(false, len as usize - 1));
            self.0.extend((0..len).rev().map(|i| (code >> i) & 1 == 1));
        }

        fn se(&mut self, v: i32) {
            self.ue(if v > 0 {
                2 * v as u32 - 1
            } else {
                2 * v.unsigned_abs()
            });
        }

        /// Packs the bits behind `header` with emulation prevention (H.264 §7.4.1).
        fn nal(mut self, header: u8) -> Vec<u8> {
            while self.0.last() == Some(&false) {
                self.0.pop();
            }
            let mut rbsp = vec![0u8; self.0.len().div_ceil(8)];
            for (i, &b) in self.0.iter().enumerate() {
                if b {
                    rbsp[i / 8] |= 0x80 >> (i % 8);
                }
            }
            let mut nal = vec![header];
            let mut zeros = 0;
            for b in rbsp {
                if zeros >= 2 && b <= 3 {
                    nal.push(3);
                    zeros = 0;
                }
                nal.push(b);
                zeros = if b == 0 { zeros + 1 } else { 0 };
            }
            nal
        }
    }

    /// Rewrites a real SPS (which has `seq_scaling_matrix_present_flag` = 0) to carry the
    /// given scaling lists (index → delta_scale values), leaving every other field as it was.
    fn with_scaling_lists(sps: &[u8], lists: &[(usize, &[i32])]) -> Vec<u8> {
        let mut r = BitReader::new("test", &sps[1..]);
        r.skip(24).unwrap();
        r.read_ue().unwrap();
        let chroma_format_idc = r.read_ue().unwrap();
        if chroma_format_idc == 3 {
            r.read_flag().unwrap();
        }
        r.read_ue().unwrap();
        r.read_ue().unwrap();
        r.read_flag().unwrap();
        let prefix = r.position();
        assert_eq!(r.read_flag(), Ok(false));
        let mut all = BitReader::new("test", &sps[1..]);
        let mut bits = Bits::default();
        while let Ok(bit) = all.read_flag() {
            bits.0.push(bit);
        }
        let tail = bits.0.split_off(prefix + 1);
        bits.0.truncate(prefix);
        bits.0.push(true);
        let count = if chroma_format_idc == 3 { 12 } else { 8 };
        for i in 0..count {
            match lists.iter().find(|(index, _)| *index == i) {
                Some((_, deltas)) => {
                    bits.0.push(true);
                    for &d in *deltas {
                        bits.se(d);
                    }
                }
                None => bits.0.push(false),
            }
        }
        bits.0.extend(tail);
        bits.nal(sps[0])
    }

    #[test]
    fn scaling_lists_are_skipped() {
        let flat16 = [1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 127, -128];
        let mut full64 = vec![1; 64];
        full64[10] = -100;
        // Stops reading when nextScale reaches 0 at j = 4: 8+1+1+1 = 11, then −11.
        let early_stop = [1, 1, 1, -11];
        // delta −8 at j = 0: useDefaultScalingMatrixFlag.
        let default = [-8];
        let lists: [(usize, &[i32]); 5] = [
            (0, &flat16),
            (2, &default),
            (6, &full64),
            (7, &early_stop),
            (11, &full64),
        ];

        let producer = AvcDecoderConfig::parse(&hex(PRODUCER_C_AVCC)).unwrap();
        let original = producer.first_sps().unwrap();
        let sps = with_scaling_lists(&producer.sps[0], &lists[..4]);
        assert_eq!(Sps::parse(&sps), Ok(original));

        // 4:4:4 has twelve lists; list 11 is an 8×8 chroma list.
        let kvssink = AvcDecoderConfig::parse(&hex(KVSSINK_AVCC)).unwrap();
        let original = kvssink.first_sps().unwrap();
        let sps = with_scaling_lists(&kvssink.sps[0], &lists);
        assert_eq!(Sps::parse(&sps), Ok(original));

        // A delta_scale outside −128..=127 is rejected.
        let sps = with_scaling_lists(&producer.sps[0], &[(1, &[128])]);
        assert!(matches!(
            Sps::parse(&sps),
            Err(CodecError::InvalidValue {
                field: "delta_scale",
                value: 128
            })
        ));
    }

    #[test]
    fn pic_order_cnt_type_1_and_cropping() {
        // A Main profile SPS built field by field: POC type 1 with a 3-entry cycle,
        // 1920×1088 coded, cropped by 8 lines at the bottom, 4:2:0, no VUI.
        let mut b = Bits::default();
        let push =
            |b: &mut Bits, v: u32, n: u32| b.0.extend((0..n).rev().map(|i| (v >> i) & 1 == 1));
        push(&mut b, 77, 8);
        push(&mut b, 0x40, 8);
        push(&mut b, 40, 8);
        b.ue(0); // seq_parameter_set_id
        b.ue(0); // log2_max_frame_num_minus4
        b.ue(1); // pic_order_cnt_type
        b.0.push(false); // delta_pic_order_always_zero_flag
        b.se(-3); // offset_for_non_ref_pic
        b.se(2); // offset_for_top_to_bottom_field
        b.ue(3);
        for offset in [2, -4, 6] {
            b.se(offset);
        }
        b.ue(4); // max_num_ref_frames
        b.0.push(false); // gaps_in_frame_num_value_allowed_flag
        b.ue(119); // pic_width_in_mbs_minus1
        b.ue(67); // pic_height_in_map_units_minus1
        b.0.push(true); // frame_mbs_only_flag
        b.0.push(true); // direct_8x8_inference_flag
        b.0.push(true); // frame_cropping_flag
        for offset in [0, 0, 0, 4] {
            b.ue(offset);
        }
        b.0.push(false); // vui_parameters_present_flag
        b.0.push(true); // rbsp_stop_one_bit
        let sps = Sps::parse(&b.nal(0x67)).unwrap();
        assert_eq!(sps.pic_order_cnt_type, 1);
        assert_eq!(sps.max_num_ref_frames, 4);
        assert_eq!((sps.width, sps.height), (1920, 1080));
        assert_eq!(sps.timing, None);
        assert_eq!(sps.codec_string(), "avc1.4d4028");
    }

    #[test]
    fn interlaced_and_separate_colour_plane_crop_units() {
        // High 4:4:4 with separate_colour_plane_flag (ChromaArrayType 0) and field coding:
        // crop units are 1 horizontally and 2 (fields) vertically.
        let mut b = Bits::default();
        let push =
            |b: &mut Bits, v: u32, n: u32| b.0.extend((0..n).rev().map(|i| (v >> i) & 1 == 1));
        push(&mut b, 244, 8);
        push(&mut b, 0, 8);
        push(&mut b, 40, 8);
        b.ue(1); // seq_parameter_set_id
        b.ue(3); // chroma_format_idc
        b.0.push(true); // separate_colour_plane_flag
        b.ue(0);
        b.ue(0);
        b.0.push(false); // qpprime_y_zero_transform_bypass_flag
        b.0.push(false); // seq_scaling_matrix_present_flag
        b.ue(0); // log2_max_frame_num_minus4
        b.ue(0); // pic_order_cnt_type
        b.ue(2); // log2_max_pic_order_cnt_lsb_minus4
        b.ue(1);
        b.0.push(false);
        b.ue(44); // 720 wide
        b.ue(17); // 18 map units of field pairs: 576 lines
        b.0.push(false); // frame_mbs_only_flag
        b.0.push(true); // mb_adaptive_frame_field_flag
        b.0.push(true);
        b.0.push(true); // frame_cropping_flag
        for offset in [2, 6, 1, 3] {
            b.ue(offset);
        }
        b.0.push(false);
        b.0.push(true);
        let sps = Sps::parse(&b.nal(0x67)).unwrap();
        assert!(sps.separate_colour_plane && !sps.frame_mbs_only);
        assert_eq!(sps.seq_parameter_set_id, 1);
        assert_eq!((sps.width, sps.height), (712, 568));
    }

    #[test]
    fn sample_aspect_ratio_table() {
        assert_eq!(sample_aspect_ratio(0), None);
        assert_eq!(sample_aspect_ratio(1), Some((1, 1)));
        assert_eq!(sample_aspect_ratio(16), Some((2, 1)));
        assert_eq!(sample_aspect_ratio(17), None);
    }
}
