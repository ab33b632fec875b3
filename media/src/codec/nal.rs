//! NAL unit framing: Annex-B byte streams (ITU-T H.264 Annex B / H.265 Annex B, start codes
//! `00 00 01` and `00 00 00 01`) and the length-prefixed format of MP4/Matroska samples
//! (ISO/IEC 14496-15 §5.3.2, `lengthSizeMinusOne` + 1 = 1, 2 or 4 bytes), plus the NAL unit
//! header type fields of H.264 §7.3.1 and H.265 §7.3.1.2.
//!
//! Conversions allocate only the output, sized from the input; iterators borrow.

use super::CodecError;

/// H.264 `nal_unit_type` of a coded slice of an IDR picture.
pub const H264_NAL_IDR: u8 = 5;
/// H.264 `nal_unit_type` of a sequence parameter set.
pub const H264_NAL_SPS: u8 = 7;
/// H.264 `nal_unit_type` of a picture parameter set.
pub const H264_NAL_PPS: u8 = 8;
/// H.265 `nal_unit_type` of a video parameter set.
pub const H265_NAL_VPS: u8 = 32;
/// H.265 `nal_unit_type` of a sequence parameter set.
pub const H265_NAL_SPS: u8 = 33;
/// H.265 `nal_unit_type` of a picture parameter set.
pub const H265_NAL_PPS: u8 = 34;

/// The H.264 `nal_unit_type` of a NAL unit whose first (header) byte is `header`.
pub fn h264_nal_type(header: u8) -> u8 {
    header & 0x1f
}

/// Whether an H.264 `nal_unit_type` is a coded slice of an IDR picture.
pub fn h264_is_idr(nal_type: u8) -> bool {
    nal_type == H264_NAL_IDR
}

/// The H.265 `nal_unit_type` of a NAL unit whose first header byte is `header`.
pub fn h265_nal_type(header: u8) -> u8 {
    (header >> 1) & 0x3f
}

/// Whether an H.265 `nal_unit_type` is an IRAP picture (BLA, IDR, CRA or reserved IRAP:
/// 16..=23, H.265 Table 7-1).
pub fn h265_is_irap(nal_type: u8) -> bool {
    (16..=23).contains(&nal_type)
}

/// The NAL units of an Annex-B byte stream, without start codes or trailing zero bytes.
/// Empty NAL units are skipped; non-zero bytes before the first start code are an error.
pub fn annex_b_nal_units(data: &[u8]) -> AnnexBNalUnits<'_> {
    AnnexBNalUnits {
        data,
        pos: None,
        done: false,
    }
}

/// Iterator returned by [`annex_b_nal_units`].
#[derive(Debug, Clone)]
pub struct AnnexBNalUnits<'a> {
    data: &'a [u8],
    /// Start of the next NAL unit payload; `None` before the first start code was found.
    pos: Option<usize>,
    done: bool,
}

impl<'a> Iterator for AnnexBNalUnits<'a> {
    type Item = Result<&'a [u8], CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut pos = match self.pos {
            Some(pos) => pos,
            None => {
                let first = find_start_code(self.data, 0);
                let leading = &self.data[..first.unwrap_or(self.data.len())];
                if let Some(offset) = leading.iter().position(|&b| b != 0) {
                    self.done = true;
                    return Some(Err(CodecError::MissingStartCode { offset }));
                }
                match first {
                    Some(start) => start + 3,
                    None => {
                        self.done = true;
                        return None;
                    }
                }
            }
        };
        loop {
            let end = find_start_code(self.data, pos);
            let nal = trim_trailing_zeros(&self.data[pos..end.unwrap_or(self.data.len())]);
            match end {
                Some(end) => pos = end + 3,
                None => {
                    self.done = true;
                    pos = self.data.len();
                }
            }
            self.pos = Some(pos);
            if !nal.is_empty() {
                return Some(Ok(nal));
            }
            if self.done {
                return None;
            }
        }
    }
}

/// The NAL units of a buffer of `length_size`-byte big-endian length prefixes each followed by
/// that many bytes (an MP4/Matroska AVC or HEVC sample). `length_size` must be 1, 2 or 4.
pub fn length_prefixed_nal_units(
    data: &[u8],
    length_size: u8,
) -> Result<LengthPrefixedNalUnits<'_>, CodecError> {
    check_length_size(length_size)?;
    Ok(LengthPrefixedNalUnits {
        data,
        pos: 0,
        length_size: usize::from(length_size),
    })
}

/// Iterator returned by [`length_prefixed_nal_units`]. Yields one error and then stops when a
/// length prefix or its NAL unit runs past the end of the buffer.
#[derive(Debug, Clone)]
pub struct LengthPrefixedNalUnits<'a> {
    data: &'a [u8],
    pos: usize,
    length_size: usize,
}

impl<'a> Iterator for LengthPrefixedNalUnits<'a> {
    type Item = Result<&'a [u8], CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.data[self.pos..];
        if rest.is_empty() {
            return None;
        }
        let offset = self.pos;
        // Whatever happens next, this call consumes the rest on error.
        self.pos = self.data.len();
        let Some((prefix, rest)) = rest.split_at_checked(self.length_size) else {
            return Some(Err(CodecError::NalLengthOverrun {
                offset,
                length: self.length_size,
                available: rest.len(),
            }));
        };
        let length = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let Some(nal) = rest.get(..length) else {
            return Some(Err(CodecError::NalLengthOverrun {
                offset,
                length,
                available: rest.len(),
            }));
        };
        self.pos = offset + self.length_size + length;
        Some(Ok(nal))
    }
}

/// Converts an Annex-B byte stream to length-prefixed NAL units with `length_size`-byte
/// prefixes (1, 2 or 4). Empty NAL units are dropped.
pub fn annex_b_to_length_prefixed(data: &[u8], length_size: u8) -> Result<Vec<u8>, CodecError> {
    check_length_size(length_size)?;
    let max = match length_size {
        1 => usize::from(u8::MAX),
        2 => usize::from(u16::MAX),
        _ => usize::try_from(u32::MAX).unwrap_or(usize::MAX),
    };
    let mut out = Vec::with_capacity(data.len() + usize::from(length_size));
    for nal in annex_b_nal_units(data) {
        let nal = nal?;
        if nal.len() > max {
            return Err(CodecError::NalTooLarge {
                length: nal.len(),
                length_size,
            });
        }
        let prefix = (nal.len() as u64).to_be_bytes();
        out.extend_from_slice(&prefix[8 - usize::from(length_size)..]);
        out.extend_from_slice(nal);
    }
    Ok(out)
}

/// Converts length-prefixed NAL units (`length_size` = 1, 2 or 4) to an Annex-B byte stream
/// with a four-byte start code before each NAL unit. Empty NAL units are dropped.
pub fn length_prefixed_to_annex_b(data: &[u8], length_size: u8) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(data.len() + 4);
    for nal in length_prefixed_nal_units(data, length_size)? {
        let nal = nal?;
        if !nal.is_empty() {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
    }
    Ok(out)
}

fn check_length_size(length_size: u8) -> Result<(), CodecError> {
    match length_size {
        1 | 2 | 4 => Ok(()),
        _ => Err(CodecError::InvalidValue {
            field: "NAL unit length size",
            value: i64::from(length_size),
        }),
    }
}

/// Index of the first `00 00 01` at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    data.get(from..)?
        .windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|i| from + i)
}

fn trim_trailing_zeros(nal: &[u8]) -> &[u8] {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &nal[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn collect(data: &[u8]) -> Result<Vec<&[u8]>, CodecError> {
        annex_b_nal_units(data).collect()
    }

    #[test]
    fn nal_type_helpers() {
        // Header bytes of the real H.264 SPS/PPS in the producer fixtures and an IDR slice.
        assert_eq!(h264_nal_type(0x67), H264_NAL_SPS);
        assert_eq!(h264_nal_type(0x68), H264_NAL_PPS);
        assert_eq!(h264_nal_type(0x65), H264_NAL_IDR);
        assert!(h264_is_idr(h264_nal_type(0x65)));
        assert!(!h264_is_idr(h264_nal_type(0x41)));
        // H.265 VPS/SPS/PPS headers (40 01, 42 01, 44 01), IDR_W_RADL (26 01), CRA (2a 01),
        // TRAIL_R (02 01).
        assert_eq!(h265_nal_type(0x40), H265_NAL_VPS);
        assert_eq!(h265_nal_type(0x42), H265_NAL_SPS);
        assert_eq!(h265_nal_type(0x44), H265_NAL_PPS);
        assert!(h265_is_irap(h265_nal_type(0x26)));
        assert!(h265_is_irap(h265_nal_type(0x2a)));
        assert!(!h265_is_irap(h265_nal_type(0x02)));
        assert!(!h265_is_irap(24));
        assert!(h265_is_irap(16) && h265_is_irap(23) && !h265_is_irap(15));
    }

    #[test]
    fn splits_annex_b_with_both_start_code_lengths() {
        let stream = [
            0, 0, 0, 1, 0x67, 0x64, 0x0a, // SPS with a 4-byte start code
            0, 0, 1, 0x68, 0xeb, // PPS with a 3-byte start code
            0, 0, 0, 0, 1, 0x65, 0x88, 0x80, 0,
            0, // IDR after trailing_zero_8bits, trailing zeros
        ];
        assert_eq!(
            collect(&stream).unwrap(),
            [&[0x67, 0x64, 0x0a][..], &[0x68, 0xeb], &[0x65, 0x88, 0x80]]
        );
    }

    #[test]
    fn annex_b_edge_cases() {
        assert_eq!(collect(&[]).unwrap(), Vec::<&[u8]>::new());
        assert_eq!(collect(&[0, 0]).unwrap(), Vec::<&[u8]>::new());
        assert_eq!(collect(&[0, 0, 1]).unwrap(), Vec::<&[u8]>::new());
        // Empty NAL units between start codes are skipped.
        assert_eq!(collect(&[0, 0, 1, 0, 0, 1, 9]).unwrap(), [&[9u8][..]]);
        assert_eq!(
            collect(&[0x67, 0, 0, 1, 9]),
            Err(CodecError::MissingStartCode { offset: 0 })
        );
        assert_eq!(
            collect(&[0, 5]),
            Err(CodecError::MissingStartCode { offset: 1 })
        );
    }

    #[test]
    fn annex_b_to_length_prefixed_each_size() {
        let stream = [0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce];
        assert_eq!(
            annex_b_to_length_prefixed(&stream, 4).unwrap(),
            [0, 0, 0, 2, 0x67, 0x42, 0, 0, 0, 2, 0x68, 0xce]
        );
        assert_eq!(
            annex_b_to_length_prefixed(&stream, 2).unwrap(),
            [0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce]
        );
        assert_eq!(
            annex_b_to_length_prefixed(&stream, 1).unwrap(),
            [2, 0x67, 0x42, 2, 0x68, 0xce]
        );
        assert!(matches!(
            annex_b_to_length_prefixed(&stream, 3),
            Err(CodecError::InvalidValue { value: 3, .. })
        ));
        let mut big = vec![0, 0, 1];
        big.extend(std::iter::repeat_n(0x41, 256));
        assert_eq!(
            annex_b_to_length_prefixed(&big, 1),
            Err(CodecError::NalTooLarge {
                length: 256,
                length_size: 1
            })
        );
        assert_eq!(annex_b_to_length_prefixed(&big, 2).unwrap().len(), 258);
    }

    #[test]
    fn length_prefixed_iteration_and_overrun() {
        let data = [0, 2, 0x67, 0x42, 0, 1, 0x68];
        let nals: Vec<_> = length_prefixed_nal_units(&data, 2).unwrap().collect();
        assert_eq!(nals, [Ok(&[0x67u8, 0x42][..]), Ok(&[0x68u8][..])]);
        assert_eq!(
            length_prefixed_to_annex_b(&data, 2).unwrap(),
            [0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68]
        );

        let data = [0, 2, 0x67, 0x42, 0, 5, 0x68];
        let nals: Vec<_> = length_prefixed_nal_units(&data, 2).unwrap().collect();
        assert_eq!(
            nals,
            [
                Ok(&[0x67u8, 0x42][..]),
                Err(CodecError::NalLengthOverrun {
                    offset: 4,
                    length: 5,
                    available: 1
                })
            ]
        );
        assert!(length_prefixed_to_annex_b(&data, 2).is_err());
        // A prefix cut short.
        let nals: Vec<_> = length_prefixed_nal_units(&[0, 0, 0], 4).unwrap().collect();
        assert_eq!(
            nals,
            [Err(CodecError::NalLengthOverrun {
                offset: 0,
                length: 4,
                available: 3
            })]
        );
        assert!(length_prefixed_nal_units(&data, 0).is_err());
        // Zero-length NAL units are yielded by the iterator and dropped by the conversion.
        let data = [0, 0, 0, 0, 0, 0, 0, 1, 9];
        let nals: Vec<_> = length_prefixed_nal_units(&data, 4).unwrap().collect();
        assert_eq!(nals, [Ok(&[][..]), Ok(&[9u8][..])]);
        assert_eq!(
            length_prefixed_to_annex_b(&data, 4).unwrap(),
            [0, 0, 0, 1, 9]
        );
    }

    /// Turns arbitrary bytes into a valid NAL unit: emulation prevention per H.264 §7.4.1
    /// (`03` after `00 00` when the next byte is ≤ 3) and a final stop-bit byte.
    fn valid_nal(payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0x41];
        let mut zeros = 0;
        for &b in payload.iter().chain(&[0x80]) {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            out.push(b);
            zeros = if b == 0 { zeros + 1 } else { 0 };
        }
        out
    }

    proptest! {
        #[test]
        fn annex_b_length_prefixed_round_trip(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            long_start_codes in proptest::collection::vec(any::<bool>(), 8),
            length_size in prop_oneof![Just(2u8), Just(4u8)],
        ) {
            let nals: Vec<Vec<u8>> = payloads.iter().map(|p| valid_nal(p)).collect();
            let mut stream = Vec::new();
            for (nal, long) in nals.iter().zip(&long_start_codes) {
                if *long {
                    stream.push(0);
                }
                stream.extend_from_slice(&[0, 0, 1]);
                stream.extend_from_slice(nal);
            }
            let prefixed = annex_b_to_length_prefixed(&stream, length_size).unwrap();
            let units: Vec<&[u8]> = length_prefixed_nal_units(&prefixed, length_size)
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            prop_assert_eq!(&units, &nals);
            let back = length_prefixed_to_annex_b(&prefixed, length_size).unwrap();
            let again: Vec<&[u8]> = collect(&back).unwrap();
            prop_assert_eq!(&again, &nals);
            prop_assert_eq!(annex_b_to_length_prefixed(&back, length_size).unwrap(), prefixed);
        }

        #[test]
        fn conversions_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            for length_size in 0..=5 {
                let _ = annex_b_to_length_prefixed(&data, length_size);
                let _ = length_prefixed_to_annex_b(&data, length_size);
            }
            let _ = collect(&data);
        }
    }
}
