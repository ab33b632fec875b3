//! ADTS framing of raw AAC frames (ISO/IEC 13818-7 §6.2, `adts_fixed_header` and
//! `adts_variable_header`), as MPEG-TS carries AAC (stream_type 0x0F). The fixed fields come
//! from the track's AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1).

use crate::codec::AudioSpecificConfig;

/// Size of an ADTS header without CRC.
pub const HEADER_SIZE: usize = 7;
/// The largest `aac_frame_length` (13 bits), header included.
const MAX_FRAME_LENGTH: usize = (1 << 13) - 1;

/// The fixed part of every ADTS header of one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adts {
    /// `profile_ObjectType`: the MPEG-4 audio object type minus 1.
    profile: u8,
    sampling_frequency_index: u8,
    channel_configuration: u8,
}

impl Adts {
    /// The ADTS parameters of a track, or why ADTS cannot carry it: only object types 1–4
    /// (Main, LC, SSR, LTP) fit the 2-bit profile; HE-AAC (5, 29) is written as its core
    /// object type with the core sampling rate, as decoders find SBR/PS implicitly; an
    /// explicit sampling frequency (index 15) and channel configuration 0 (a
    /// program_config_element) have no ADTS form here.
    pub fn new(config: &AudioSpecificConfig) -> Result<Self, String> {
        let object_type = config
            .sbr
            .map_or(config.audio_object_type, |s| s.core_object_type);
        if !(1..=4).contains(&object_type) {
            return Err(format!("AAC object type {object_type} has no ADTS profile"));
        }
        if config.sampling_frequency_index > 12 {
            return Err(format!(
                "sampling frequency {} Hz has no ADTS sampling_frequency_index",
                config.sampling_frequency
            ));
        }
        if !(1..=7).contains(&config.channel_configuration) {
            return Err(format!(
                "channel configuration {} has no ADTS form",
                config.channel_configuration
            ));
        }
        Ok(Self {
            profile: object_type - 1,
            sampling_frequency_index: config.sampling_frequency_index,
            channel_configuration: config.channel_configuration,
        })
    }

    /// The header of one frame of `frame_len` raw bytes (MPEG-4 ID, no CRC, one raw data
    /// block, buffer fullness 0x7FF for variable rate); `None` when the frame is too long.
    pub fn header(&self, frame_len: usize) -> Option<[u8; HEADER_SIZE]> {
        let len = frame_len + HEADER_SIZE;
        if len > MAX_FRAME_LENGTH {
            return None;
        }
        let len = len as u16;
        let ch = self.channel_configuration;
        Some([
            0xff,
            0xf1,
            (self.profile << 6) | (self.sampling_frequency_index << 2) | (ch >> 2),
            ((ch & 3) << 6) | (len >> 11) as u8,
            (len >> 3) as u8,
            ((len & 7) as u8) << 5 | 0x1f,
            0xfc,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads an ADTS header field by field, as ISO/IEC 13818-7 Table 6.3/6.4 lay them out.
    fn fields(h: &[u8; HEADER_SIZE]) -> [u32; 13] {
        let bits = h.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let mut pos = 56;
        let mut take = |n: u32| {
            pos -= n;
            ((bits >> pos) & ((1 << n) - 1)) as u32
        };
        [
            take(12),
            take(1),
            take(2),
            take(1),
            take(2),
            take(4),
            take(1),
            take(3),
            take(1),
            take(1),
            take(2),
            take(13),
            take(11),
        ]
    }

    #[test]
    fn header_fields_follow_the_audio_specific_config() {
        // AAC LC, 44100 Hz (index 4), stereo.
        let asc = AudioSpecificConfig::parse(&[0x12, 0x10]).unwrap();
        let h = Adts::new(&asc).unwrap().header(371).unwrap();
        // syncword, ID, layer, protection_absent, profile, sf index, private, channels,
        // original, home, copyright bits, frame length, buffer fullness.
        assert_eq!(
            fields(&h),
            [0xfff, 0, 0, 1, 1, 4, 0, 2, 0, 0, 0, 378, 0x7ff]
        );
        assert_eq!(h[6] & 3, 0, "one raw data block");
    }

    #[test]
    fn he_aac_is_written_as_its_core() {
        // HE-AAC (5) with explicit SBR: core 24000 Hz (index 6), mono, extension 48000 Hz,
        // core object type 2.
        let asc = AudioSpecificConfig::parse(&[0x2b, 0x09, 0x88, 0x00]).unwrap();
        assert_eq!(asc.audio_object_type, 5);
        let h = Adts::new(&asc).unwrap().header(10).unwrap();
        let f = fields(&h);
        assert_eq!((f[4], f[5], f[7], f[11]), (1, 6, 1, 17));
    }

    #[test]
    fn what_adts_cannot_carry_is_refused() {
        let too_long = AudioSpecificConfig::parse(&[0x12, 0x10]).unwrap();
        assert!(Adts::new(&too_long).unwrap().header(8185).is_none());
        assert!(Adts::new(&too_long).unwrap().header(8184).is_some());
        // Object type 23 (ER AAC LD), 48000 Hz, stereo.
        let ld = AudioSpecificConfig::parse(&[0xb9, 0x90]).unwrap();
        assert_eq!(ld.audio_object_type, 23);
        assert!(Adts::new(&ld).is_err());
        // AAC LC with channel configuration 0.
        let pce = AudioSpecificConfig::parse(&[0x12, 0x00]).unwrap();
        assert!(Adts::new(&pce).is_err());
    }
}
