//! Codec configuration parsing: what a track's `CodecPrivate` (or an fMP4 sample entry) says
//! about the elementary stream, as pure functions over byte slices.
//!
//! Specs followed, one file each:
//! - [`bits`]: the RBSP bit reader of ITU-T H.264 §7.2 / H.265 §7.2 (`u(n)`, `ue(v)`, `se(v)`,
//!   emulation-prevention removal per H.264 §7.4.1).
//! - [`nal`]: Annex-B byte streams (H.264/H.265 Annex B) and the length-prefixed NAL unit
//!   format of ISO/IEC 14496-15 §5.3.2; NAL unit header types (H.264 §7.4.1, H.265 §7.4.2.2).
//! - [`h264`]: the `avcC` AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1) and the
//!   H.264 sequence parameter set (§7.3.2.1.1, VUI Annex E.1.1); codecs string per RFC 6381 §3.3.
//! - [`h265`]: the `hvcC` HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1), the H.265
//!   sequence parameter set (§7.3.2.2) and profile_tier_level (§7.3.3); codecs string per
//!   ISO/IEC 14496-15 Annex E.3.
//! - [`aac`]: the MPEG-4 AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1); codecs string per
//!   RFC 6381 §3.3.
//!
//! Every parser returns [`CodecError`] on malformed or truncated input and never panics; no
//! allocation is sized by an untrusted length before that length is checked against the input.

pub mod aac;
pub mod bits;
mod cursor;
pub mod h264;
pub mod h265;
pub mod nal;

pub use aac::AudioSpecificConfig;
pub use bits::BitReader;
pub use h264::{AvcDecoderConfig, Sps as AvcSps};
pub use h265::{HevcDecoderConfig, ProfileTierLevel, Sps as HevcSps};

/// Why a codec configuration or NAL unit stream could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ended before the structure did. `offset` is the byte offset (into the
    /// structure, after emulation-prevention removal for RBSP data) of the read that ran out.
    #[error("{what} truncated at byte {offset}")]
    Truncated {
        /// The structure being read, e.g. `"avcC"` or `"H.264 SPS"`.
        what: &'static str,
        /// Byte offset of the read that ran out.
        offset: usize,
    },
    /// A configuration record with a `configurationVersion` this parser does not know.
    #[error("{what}: unsupported configuration version {version}")]
    UnsupportedVersion {
        /// The record, e.g. `"avcC"`.
        what: &'static str,
        /// The version found.
        version: u8,
    },
    /// A syntax element outside the range its spec allows.
    #[error("{field}: invalid value {value}")]
    InvalidValue {
        /// The syntax element, named as in its spec.
        field: &'static str,
        /// The value found.
        value: i64,
    },
    /// An exp-Golomb code (`ue(v)`/`se(v)`) with more than 31 leading zero bits.
    #[error("exp-Golomb code with more than 31 leading zero bits at byte {offset}")]
    ExpGolombOverflow {
        /// Byte offset (RBSP) where the code started.
        offset: usize,
    },
    /// A NAL unit of the wrong type was given to a parser.
    #[error("expected a {what} NAL unit (type {expected}), got type {actual}")]
    UnexpectedNalType {
        /// What was expected, e.g. `"H.264 SPS"`.
        what: &'static str,
        /// The expected `nal_unit_type`.
        expected: u8,
        /// The `nal_unit_type` found.
        actual: u8,
    },
    /// A length-prefixed NAL unit whose length runs past the end of the buffer.
    #[error("NAL unit length {length} at byte {offset} runs past the end ({available} bytes left)")]
    NalLengthOverrun {
        /// Byte offset of the length prefix.
        offset: usize,
        /// The length read from the prefix.
        length: usize,
        /// Bytes left after the prefix.
        available: usize,
    },
    /// A NAL unit too long for the requested length-prefix size.
    #[error("NAL unit of {length} bytes does not fit a {length_size}-byte length prefix")]
    NalTooLarge {
        /// The NAL unit's length.
        length: usize,
        /// The length-prefix size asked for.
        length_size: u8,
    },
    /// An Annex-B byte stream with non-zero bytes before its first start code.
    #[error("Annex-B stream has data before its first start code (byte {offset})")]
    MissingStartCode {
        /// Offset of the first non-zero byte before any start code.
        offset: usize,
    },
    /// A decoder configuration record without the parameter set that was asked for.
    #[error("{what} carries no {parameter_set}")]
    MissingParameterSet {
        /// The record, e.g. `"avcC"`.
        what: &'static str,
        /// The parameter set, e.g. `"SPS"`.
        parameter_set: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// No parser panics on arbitrary bytes, with or without a plausible header in front.
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = AvcDecoderConfig::parse(&data);
            let _ = HevcDecoderConfig::parse(&data);
            let _ = AvcSps::parse(&data);
            let _ = HevcSps::parse(&data);
            let _ = AudioSpecificConfig::parse(&data);

            let mut avc_sps = vec![0x67];
            avc_sps.extend_from_slice(&data);
            let _ = AvcSps::parse(&avc_sps);
            let mut hevc_sps = vec![0x42, 0x01];
            hevc_sps.extend_from_slice(&data);
            let _ = HevcSps::parse(&hevc_sps);
            let mut avcc = vec![1];
            avcc.extend_from_slice(&data);
            let _ = AvcDecoderConfig::parse(&avcc);
            let mut hvcc = vec![1];
            hvcc.extend_from_slice(&data);
            let _ = HevcDecoderConfig::parse(&hvcc);

            for length_size in [1, 2, 3, 4] {
                let _ = nal::length_prefixed_to_annex_b(&data, length_size);
                let _ = nal::annex_b_to_length_prefixed(&data, length_size);
            }
            let mut reader = BitReader::new("random", &data);
            while reader.read_ue().is_ok() && reader.read_se().is_ok() {}
        }
    }

    #[test]
    fn errors_render_with_context() {
        let err = CodecError::Truncated {
            what: "avcC",
            offset: 7,
        };
        assert_eq!(err.to_string(), "avcC truncated at byte 7");
        let err = CodecError::InvalidValue {
            field: "chroma_format_idc",
            value: 4,
        };
        assert_eq!(err.to_string(), "chroma_format_idc: invalid value 4");
    }
}
