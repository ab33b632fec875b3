//! An MSB-first bit reader for the syntax elements of ITU-T H.264 §7.2 and H.265 §7.2:
//! `u(n)`, `f(1)`, `ue(v)` and `se(v)` (exp-Golomb, H.264 §9.1 / H.265 §9.2).
//!
//! [`BitReader::new`] reads an RBSP out of a NAL unit payload, dropping each
//! emulation-prevention byte (the `03` of `00 00 03`, H.264 §7.4.1) on the fly, so nothing is
//! copied. [`BitReader::raw`] reads a plain bitstream such as an MPEG-4 AudioSpecificConfig
//! (ISO/IEC 14496-3), where `00 00 03` means what it says. Reading past the end is an error,
//! never a panic.

use super::CodecError;

/// Reads bits MSB-first from a byte slice, optionally removing emulation-prevention bytes.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    what: &'static str,
    data: &'a [u8],
    /// Index in `data` of the next byte to load into `current`.
    next: usize,
    /// Whether `00 00 03` sequences have their `03` removed.
    rbsp: bool,
    /// Consecutive zero bytes just loaded (for emulation-prevention detection).
    zeros: u8,
    /// The byte being read and how many of its bits are left (0 = load the next byte).
    current: u8,
    bits_left: u8,
    /// Bytes of payload (after emulation-prevention removal) loaded so far.
    loaded: usize,
}

impl<'a> BitReader<'a> {
    /// A reader over the RBSP carried by `payload` (a NAL unit without its header), removing
    /// emulation-prevention bytes. `what` names the structure in errors, e.g. `"H.264 SPS"`.
    pub fn new(what: &'static str, payload: &'a [u8]) -> Self {
        Self::with_mode(what, payload, true)
    }

    /// A reader over a plain bitstream: every byte is data.
    pub fn raw(what: &'static str, data: &'a [u8]) -> Self {
        Self::with_mode(what, data, false)
    }

    fn with_mode(what: &'static str, data: &'a [u8], rbsp: bool) -> Self {
        Self {
            what,
            data,
            next: 0,
            rbsp,
            zeros: 0,
            current: 0,
            bits_left: 0,
            loaded: 0,
        }
    }

    /// Bits consumed so far, counted in the payload after emulation-prevention removal.
    pub fn position(&self) -> usize {
        self.loaded * 8 - usize::from(self.bits_left)
    }

    /// `u(n)`: the next `n` bits as an unsigned integer, `n` ≤ 32.
    pub fn read_bits(&mut self, n: u32) -> Result<u32, CodecError> {
        if n > 32 {
            return Err(CodecError::InvalidValue {
                field: "bit count",
                value: i64::from(n),
            });
        }
        let mut value = 0u64;
        for _ in 0..n {
            value = (value << 1) | u64::from(self.read_bit()?);
        }
        // At most 32 bits were shifted in.
        Ok(value as u32)
    }

    /// `u(1)` as a flag.
    pub fn read_flag(&mut self) -> Result<bool, CodecError> {
        Ok(self.read_bit()? == 1)
    }

    /// `ue(v)`: an unsigned exp-Golomb code. More than 31 leading zero bits is an error (the
    /// value would not fit 32 bits).
    pub fn read_ue(&mut self) -> Result<u32, CodecError> {
        let start = self.position() / 8;
        let mut leading_zeros = 0u32;
        while self.read_bit()? == 0 {
            leading_zeros += 1;
            if leading_zeros > 31 {
                return Err(CodecError::ExpGolombOverflow { offset: start });
            }
        }
        let suffix = self.read_bits(leading_zeros)?;
        // (2^lz - 1) + suffix ≤ 2^32 - 2 for lz ≤ 31.
        Ok(((1u64 << leading_zeros) - 1 + u64::from(suffix)) as u32)
    }

    /// `ue(v)` for a syntax element whose spec range is `0..=max`; a larger value is
    /// [`CodecError::InvalidValue`] naming `field`.
    pub fn read_ue_max(&mut self, field: &'static str, max: u32) -> Result<u32, CodecError> {
        let value = self.read_ue()?;
        if value > max {
            return Err(CodecError::InvalidValue {
                field,
                value: i64::from(value),
            });
        }
        Ok(value)
    }

    /// `se(v)`: a signed exp-Golomb code (H.264 Table 9-3: 1, −1, 2, −2, …).
    pub fn read_se(&mut self) -> Result<i32, CodecError> {
        let k = i64::from(self.read_ue()?);
        let value = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        // |value| ≤ 2^31 - 1 because k ≤ 2^32 - 2.
        Ok(value as i32)
    }

    /// Skips `n` bits.
    pub fn skip(&mut self, n: usize) -> Result<(), CodecError> {
        for _ in 0..n {
            self.read_bit()?;
        }
        Ok(())
    }

    fn read_bit(&mut self) -> Result<u8, CodecError> {
        if self.bits_left == 0 {
            self.load_byte()?;
        }
        self.bits_left -= 1;
        Ok((self.current >> self.bits_left) & 1)
    }

    fn load_byte(&mut self) -> Result<(), CodecError> {
        let mut byte = self.next_source_byte()?;
        if self.rbsp && self.zeros >= 2 && byte == 0x03 {
            self.zeros = 0;
            byte = self.next_source_byte()?;
        }
        self.zeros = if byte == 0 {
            self.zeros.saturating_add(1)
        } else {
            0
        };
        self.current = byte;
        self.bits_left = 8;
        self.loaded += 1;
        Ok(())
    }

    fn next_source_byte(&mut self) -> Result<u8, CodecError> {
        let byte = *self.data.get(self.next).ok_or(CodecError::Truncated {
            what: self.what,
            offset: self.loaded,
        })?;
        self.next += 1;
        Ok(byte)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_bits_msb_first() {
        let mut r = BitReader::raw("test", &[0b1010_0110, 0xff, 0x00, 0x01, 0x80]);
        assert_eq!(r.read_bits(3), Ok(0b101));
        assert_eq!(r.read_flag(), Ok(false));
        assert_eq!(r.read_bits(4), Ok(0b0110));
        assert_eq!(r.read_bits(0), Ok(0));
        assert_eq!(r.read_bits(32), Ok(0xff00_0180));
        assert_eq!(r.position(), 40);
        assert_eq!(
            r.read_flag(),
            Err(CodecError::Truncated {
                what: "test",
                offset: 5
            })
        );
    }

    #[test]
    fn more_than_32_bits_is_an_error() {
        let mut r = BitReader::raw("test", &[0; 8]);
        assert!(matches!(
            r.read_bits(33),
            Err(CodecError::InvalidValue { .. })
        ));
    }

    #[test]
    fn exp_golomb_table() {
        // H.264 Table 9-2: 1 → 0, 010 → 1, 011 → 2, 00100 → 3, 00111 → 6, 0001000 → 7.
        // Bits: 1 010 011 00100 00111 0001000 + padding.
        let bits = "1010011001000011100010000";
        let mut bytes = vec![0u8; bits.len().div_ceil(8)];
        for (i, b) in bits.bytes().enumerate() {
            if b == b'1' {
                bytes[i / 8] |= 0x80 >> (i % 8);
            }
        }
        let mut r = BitReader::raw("test", &bytes);
        let ue: Vec<u32> = (0..6).map(|_| r.read_ue().unwrap()).collect();
        assert_eq!(ue, [0, 1, 2, 3, 6, 7]);
        let mut r = BitReader::raw("test", &bytes);
        let se: Vec<i32> = (0..6).map(|_| r.read_se().unwrap()).collect();
        // H.264 Table 9-3: k → (−1)^(k+1) · ceil(k ÷ 2).
        assert_eq!(se, [0, 1, -1, 2, -3, 4]);
    }

    #[test]
    fn bounded_ue() {
        // 00111 (6) twice.
        let mut r = BitReader::raw("test", &[0b0011_1001, 0b1100_0000]);
        assert_eq!(r.read_ue_max("x", 6), Ok(6));
        assert_eq!(
            r.read_ue_max("chroma_format_idc", 5),
            Err(CodecError::InvalidValue {
                field: "chroma_format_idc",
                value: 6
            })
        );
    }

    #[test]
    fn largest_exp_golomb_codes() {
        // 31 zeros, a one, 31 ones: 2^32 - 2.
        let mut bytes = [0xffu8; 8];
        bytes[..3].fill(0);
        bytes[3] = 0x01; // bits 24..31: 0000000 1 → 31 zeros, then the marker.
        let mut r = BitReader::raw("test", &bytes);
        assert_eq!(r.read_ue(), Ok(u32::MAX - 1));
        let mut r = BitReader::raw("test", &bytes);
        assert_eq!(r.read_se(), Ok(-(i32::MAX)));
        // 32 zeros.
        let mut r = BitReader::raw("test", &[0, 0, 0, 0, 0xff]);
        assert_eq!(
            r.read_ue(),
            Err(CodecError::ExpGolombOverflow { offset: 0 })
        );
    }

    #[test]
    fn removes_emulation_prevention_bytes() {
        let data = [0x00, 0x00, 0x03, 0x01, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03];
        let mut r = BitReader::new("test", &data);
        assert_eq!(r.read_bits(32), Ok(0x0000_0100));
        assert_eq!(r.read_bits(24), Ok(0x0000));
        // The trailing `00 00 03` leaves nothing after the 03.
        assert!(matches!(r.read_bits(8), Err(CodecError::Truncated { .. })));

        // Only after two zero bytes, and the zero count restarts after a removed 03.
        let data = [0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x03];
        let mut r = BitReader::new("test", &data);
        assert_eq!(r.read_bits(32), Ok(0x0003_0000));
        assert_eq!(r.read_bits(16), Ok(0x0003));

        // A raw reader keeps them.
        let mut r = BitReader::raw("test", &[0x00, 0x00, 0x03]);
        assert_eq!(r.read_bits(24), Ok(0x0000_0003));
    }

    #[test]
    fn skip_and_truncation() {
        let mut r = BitReader::new("test", &[0xf0, 0x0f]);
        r.skip(4).unwrap();
        assert_eq!(r.read_bits(8), Ok(0x00));
        assert_eq!(r.read_bits(4), Ok(0xf));
        assert!(r.skip(1).is_err());
        // A ue(v) whose suffix runs past the end.
        let mut r = BitReader::new("test", &[0x01]);
        assert!(matches!(r.read_ue(), Err(CodecError::Truncated { .. })));
    }

    proptest! {
        #[test]
        fn ue_round_trips(values in proptest::collection::vec(any::<u32>().prop_map(|v| v.min(u32::MAX - 1)), 1..20)) {
            // Encode each value as ue(v) into a bit string, then read them back.
            let mut bits = Vec::new();
            for &v in &values {
                let code = u64::from(v) + 1;
                let len = 64 - code.leading_zeros();
                bits.extend(std::iter::repeat_n(false, len as usize - 1));
                bits.extend((0..len).rev().map(|i| (code >> i) & 1 == 1));
            }
            let mut bytes = vec![0u8; bits.len().div_ceil(8)];
            for (i, &b) in bits.iter().enumerate() {
                if b {
                    bytes[i / 8] |= 0x80 >> (i % 8);
                }
            }
            let mut r = BitReader::raw("test", &bytes);
            for &v in &values {
                prop_assert_eq!(r.read_ue(), Ok(v));
            }
        }
    }
}
