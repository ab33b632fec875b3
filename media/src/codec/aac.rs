//! MPEG-4 audio configuration: the AudioSpecificConfig of ISO/IEC 14496-3 §1.6.2.1 (the
//! Matroska `A_AAC` CodecPrivate and the `esds` DecoderSpecificInfo), its sampling frequency
//! (Table 1.18) and channel configuration (Table 1.19), the RFC 6381 §3.3 codecs string
//! (`mp4a.40.<audioObjectType>`), and the two-byte AudioSpecificConfig a muxer must supply when
//! a producer leaves CodecPrivate out.
//!
//! Only the header fields are read (object type, frequency, channels, and the explicit SBR/PS
//! extension of §1.6.2.1 for object types 5 and 29); GASpecificConfig and later are not.

use super::CodecError;
use super::bits::BitReader;

const ASC: &str = "AudioSpecificConfig";

/// Table 1.18: `samplingFrequencyIndex` 0..=12.
const SAMPLING_FREQUENCIES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// A parsed AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// `audioObjectType` as first signalled (2 = AAC LC, 5 = SBR/HE-AAC, 29 = PS/HE-AAC v2,
    /// up to 95 with the escape).
    pub audio_object_type: u8,
    /// `samplingFrequencyIndex` (0xf when the frequency is explicit).
    pub sampling_frequency_index: u8,
    /// The (core) sampling frequency in Hz.
    pub sampling_frequency: u32,
    /// `channelConfiguration` (0 = defined by a program_config_element).
    pub channel_configuration: u8,
    /// The explicitly signalled SBR/PS extension, for object types 5 and 29.
    pub sbr: Option<ExplicitSbr>,
}

/// The fields following `channelConfiguration` when SBR or PS is signalled explicitly
/// (hierarchical signalling, ISO/IEC 14496-3 §1.6.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExplicitSbr {
    /// The output sampling frequency in Hz (`extensionSamplingFrequency`).
    pub sampling_frequency: u32,
    /// The core coder's `audioObjectType` (usually 2, AAC LC).
    pub core_object_type: u8,
}

impl AudioSpecificConfig {
    /// Parses an AudioSpecificConfig.
    pub fn parse(data: &[u8]) -> Result<Self, CodecError> {
        let mut r = BitReader::raw(ASC, data);
        let audio_object_type = read_object_type(&mut r)?;
        if audio_object_type == 0 {
            return Err(CodecError::InvalidValue {
                field: "audioObjectType",
                value: 0,
            });
        }
        let (sampling_frequency_index, sampling_frequency) = read_frequency(&mut r)?;
        let channel_configuration = r.read_bits(4)? as u8;
        let sbr = if matches!(audio_object_type, 5 | 29) {
            let (_, sampling_frequency) = read_frequency(&mut r)?;
            let core_object_type = read_object_type(&mut r)?;
            if core_object_type == 22 {
                let _extension_channel_configuration = r.read_bits(4)?;
            }
            Some(ExplicitSbr {
                sampling_frequency,
                core_object_type,
            })
        } else {
            None
        };
        Ok(Self {
            audio_object_type,
            sampling_frequency_index,
            sampling_frequency,
            channel_configuration,
            sbr,
        })
    }

    /// The decoder's output sampling rate in Hz: the SBR rate when signalled, else the
    /// sampling frequency.
    pub fn sample_rate(&self) -> u32 {
        self.sbr
            .map_or(self.sampling_frequency, |sbr| sbr.sampling_frequency)
    }

    /// Number of channels per Table 1.19, or `None` when the configuration is 0 (given by a
    /// program_config_element) or reserved.
    pub fn channels(&self) -> Option<u8> {
        match self.channel_configuration {
            c @ 1..=6 => Some(c),
            7 | 12 | 14 => Some(8),
            11 => Some(7),
            13 => Some(24),
            _ => None,
        }
    }

    /// The RFC 6381 codecs parameter, e.g. `mp4a.40.2` (object type indication 0x40, MPEG-4
    /// audio, then `audioObjectType` in decimal).
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.audio_object_type)
    }

    /// The two-byte AudioSpecificConfig (GASpecificConfig flags all zero) for an object type
    /// below 31 other than 5 and 29 (explicit SBR/PS needs more bytes; HE-AAC streams decode
    /// as AAC LC with implicit signalling), a sampling rate from Table 1.18 and 1–6 or 8
    /// channels, e.g. `11 90` for (2, 48000, 2). For tracks whose producer omitted
    /// CodecPrivate.
    pub fn build_two_byte(
        audio_object_type: u8,
        sample_rate: u32,
        channels: u8,
    ) -> Result<[u8; 2], CodecError> {
        if !(1..=30).contains(&audio_object_type) || matches!(audio_object_type, 5 | 29) {
            return Err(CodecError::InvalidValue {
                field: "audioObjectType",
                value: i64::from(audio_object_type),
            });
        }
        let index = SAMPLING_FREQUENCIES
            .iter()
            .position(|&f| f == sample_rate)
            .ok_or(CodecError::InvalidValue {
                field: "sampling frequency",
                value: i64::from(sample_rate),
            })? as u16;
        let channel_configuration = match channels {
            1..=6 => u16::from(channels),
            8 => 7,
            _ => {
                return Err(CodecError::InvalidValue {
                    field: "channels",
                    value: i64::from(channels),
                });
            }
        };
        let bits =
            (u16::from(audio_object_type) << 11) | (index << 7) | (channel_configuration << 3);
        Ok(bits.to_be_bytes())
    }
}

/// `GetAudioObjectType()`: five bits, 31 escaping to 32 + six more.
fn read_object_type(r: &mut BitReader<'_>) -> Result<u8, CodecError> {
    let aot = r.read_bits(5)? as u8;
    if aot == 31 {
        Ok(32 + r.read_bits(6)? as u8)
    } else {
        Ok(aot)
    }
}

/// `samplingFrequencyIndex` and, for index 0xf, the explicit 24-bit `samplingFrequency`.
fn read_frequency(r: &mut BitReader<'_>) -> Result<(u8, u32), CodecError> {
    let index = r.read_bits(4)? as u8;
    let frequency = match index {
        0xf => r.read_bits(24)?,
        _ => SAMPLING_FREQUENCIES
            .get(usize::from(index))
            .copied()
            .ok_or(CodecError::InvalidValue {
                field: "samplingFrequencyIndex",
                value: i64::from(index),
            })?,
    };
    if frequency == 0 {
        return Err(CodecError::InvalidValue {
            field: "samplingFrequency",
            value: 0,
        });
    }
    Ok((index, frequency))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// CodecPrivate of track 2 (`A_AAC`, SamplingFrequency 48000.0, Channels 2) of
    /// `shared/fixtures/producer/producer-c-1.6.4_h264_aac_putmedia.mkv` (EBML element 0x63A2
    /// at file offset 345), written by the KVS C producer SDK 1.6.4.
    const PRODUCER_C_ASC: [u8; 2] = [0x11, 0x90];

    #[test]
    fn producer_c_aac_lc_48k_stereo() {
        let asc = AudioSpecificConfig::parse(&PRODUCER_C_ASC).unwrap();
        assert_eq!(
            asc,
            AudioSpecificConfig {
                audio_object_type: 2,
                sampling_frequency_index: 3,
                sampling_frequency: 48000,
                channel_configuration: 2,
                sbr: None,
            }
        );
        assert_eq!(asc.sample_rate(), 48000);
        assert_eq!(asc.channels(), Some(2));
        assert_eq!(asc.codec_string(), "mp4a.40.2");
        assert_eq!(
            AudioSpecificConfig::build_two_byte(2, 48000, 2),
            Ok(PRODUCER_C_ASC)
        );
    }

    #[test]
    fn common_configs() {
        // AAC LC 44.1 kHz stereo (12 10), 16 kHz mono (14 08), 48 kHz 7.1 (11 b8).
        let asc = AudioSpecificConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!((asc.sample_rate(), asc.channels()), (44100, Some(2)));
        let asc = AudioSpecificConfig::parse(&[0x14, 0x08]).unwrap();
        assert_eq!((asc.sample_rate(), asc.channels()), (16000, Some(1)));
        let asc = AudioSpecificConfig::parse(&[0x11, 0xb8]).unwrap();
        assert_eq!((asc.channel_configuration, asc.channels()), (7, Some(8)));
        assert_eq!(
            AudioSpecificConfig::build_two_byte(2, 48000, 8),
            Ok([0x11, 0xb8])
        );
        // Implicit SBR signalling (sync extension 0x2b7 after the LC config) reads as LC.
        let asc = AudioSpecificConfig::parse(&[0x12, 0x10, 0x56, 0xe5, 0x00]).unwrap();
        assert_eq!(asc.codec_string(), "mp4a.40.2");
    }

    #[test]
    fn explicit_he_aac() {
        // 00101 0110 0010 0011 00010 000: SBR, core 24 kHz stereo, 48 kHz output, core LC.
        let asc = AudioSpecificConfig::parse(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(asc.audio_object_type, 5);
        assert_eq!(asc.sampling_frequency, 24000);
        assert_eq!(
            asc.sbr,
            Some(ExplicitSbr {
                sampling_frequency: 48000,
                core_object_type: 2,
            })
        );
        assert_eq!(asc.sample_rate(), 48000);
        assert_eq!(asc.codec_string(), "mp4a.40.5");
        // 11101 0110 0001 0011 00010 000: PS (HE-AAC v2), mono core.
        let asc = AudioSpecificConfig::parse(&[0xeb, 0x09, 0x88, 0x00]).unwrap();
        assert_eq!(asc.codec_string(), "mp4a.40.29");
        assert_eq!(asc.channels(), Some(1));
        assert_eq!(asc.sample_rate(), 48000);
    }

    #[test]
    fn escapes() {
        // Object type escape: 11111 001010 → 42 (USAC); then index 3, 2 channels.
        // Bits: 11111001 01000110 010xxxxx.
        let asc = AudioSpecificConfig::parse(&[0xf9, 0x46, 0x40]).unwrap();
        assert_eq!(asc.audio_object_type, 42);
        assert_eq!(asc.sample_rate(), 48000);
        assert_eq!(asc.channels(), Some(2));
        assert_eq!(asc.codec_string(), "mp4a.40.42");
        // Explicit frequency: 00010 1111 <24 bits = 50000> 0001 → LC, 50 kHz, mono.
        let bits: u64 = (0b00010 << 32) | (0b1111 << 28) | (50000 << 4) | 0b0001;
        let bytes = (bits << 3).to_be_bytes();
        let asc = AudioSpecificConfig::parse(&bytes[3..]).unwrap();
        assert_eq!(asc.sampling_frequency_index, 0xf);
        assert_eq!(asc.sample_rate(), 50000);
        assert_eq!(asc.channels(), Some(1));
    }

    #[test]
    fn invalid_values() {
        // Object type 0.
        assert!(matches!(
            AudioSpecificConfig::parse(&[0x01, 0x90]),
            Err(CodecError::InvalidValue {
                field: "audioObjectType",
                ..
            })
        ));
        // Reserved sampling frequency index 13.
        assert!(matches!(
            AudioSpecificConfig::parse(&[0x16, 0x90]),
            Err(CodecError::InvalidValue {
                field: "samplingFrequencyIndex",
                value: 13
            })
        ));
        // Explicit frequency of zero.
        assert!(AudioSpecificConfig::parse(&[0x17, 0x80, 0x00, 0x00, 0x10]).is_err());
        // Channel configuration 0 (program_config_element) and reserved 8.
        let asc = AudioSpecificConfig::parse(&[0x11, 0x80]).unwrap();
        assert_eq!(asc.channels(), None);
        let asc = AudioSpecificConfig::parse(&[0x11, 0xc0]).unwrap();
        assert_eq!(asc.channels(), None);
        for (aot, rate, channels) in [
            (0, 48000, 2),
            (5, 48000, 2),
            (31, 48000, 2),
            (2, 47999, 2),
            (2, 48000, 7),
        ] {
            assert!(matches!(
                AudioSpecificConfig::build_two_byte(aot, rate, channels),
                Err(CodecError::InvalidValue { .. })
            ));
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let inputs: [&[u8]; 4] = [
            &PRODUCER_C_ASC,
            &[0x2b, 0x11, 0x88],
            &[0xf9, 0x46, 0x40],
            &[0x17, 0x80, 0x61, 0xa8, 0x08],
        ];
        for input in inputs {
            assert!(AudioSpecificConfig::parse(input).is_ok());
            for len in 0..input.len() {
                assert!(matches!(
                    AudioSpecificConfig::parse(&input[..len]),
                    Err(CodecError::Truncated { .. })
                ));
            }
        }
    }

    proptest! {
        #[test]
        fn build_then_parse(
            aot in (1u8..=30).prop_filter("explicit SBR/PS", |a| !matches!(a, 5 | 29)),
            index in 0usize..13,
            channels in prop_oneof![1u8..=6, Just(8u8)],
        ) {
            let rate = SAMPLING_FREQUENCIES[index];
            let bytes = AudioSpecificConfig::build_two_byte(aot, rate, channels).unwrap();
            let asc = AudioSpecificConfig::parse(&bytes).unwrap();
            prop_assert_eq!(asc.audio_object_type, aot);
            prop_assert_eq!(asc.sample_rate(), rate);
            prop_assert_eq!(asc.channels(), Some(channels));
        }
    }
}
