//! A bounds-checked big-endian byte cursor for the byte-aligned configuration records
//! (`avcC`, ISO/IEC 14496-15 §5.3.3.1; `hvcC`, §8.3.3.1). Every read checks the remaining
//! length first and reports [`CodecError::Truncated`] instead of panicking.

use super::CodecError;

/// Reads big-endian integers and sub-slices from a byte slice.
#[derive(Debug)]
pub(crate) struct ByteCursor<'a> {
    what: &'static str,
    data: &'a [u8],
    pos: usize,
}

impl<'a> ByteCursor<'a> {
    /// A cursor at the start of `data`; `what` names the structure in errors.
    pub(crate) fn new(what: &'static str, data: &'a [u8]) -> Self {
        Self { what, data, pos: 0 }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if n > self.remaining() {
            return Err(CodecError::Truncated {
                what: self.what,
                offset: self.pos,
            });
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// The next byte.
    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.bytes(1)?[0])
    }

    /// The next big-endian 16-bit integer.
    pub(crate) fn u16(&mut self) -> Result<u16, CodecError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A `u16`-length-prefixed NAL unit, as in the parameter-set lists of `avcC` and `hvcC`.
    pub(crate) fn u16_prefixed(&mut self) -> Result<&'a [u8], CodecError> {
        let len = self.u16()?;
        self.bytes(usize::from(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_and_stops_at_the_end() {
        let mut c = ByteCursor::new("test", &[1, 2, 3, 4, 5, 6, 7, 0, 2, 9, 8]);
        assert_eq!(c.u8(), Ok(1));
        assert_eq!(c.u16(), Ok(0x0203));
        assert_eq!(c.bytes(4), Ok(&[4u8, 5, 6, 7][..]));
        assert_eq!(c.u16_prefixed(), Ok(&[9u8, 8][..]));
        assert_eq!(c.remaining(), 0);
        assert_eq!(
            c.u8(),
            Err(CodecError::Truncated {
                what: "test",
                offset: 11
            })
        );
    }

    #[test]
    fn length_prefix_past_the_end_is_truncation() {
        let mut c = ByteCursor::new("test", &[0, 5, 1, 2]);
        assert!(matches!(
            c.u16_prefixed(),
            Err(CodecError::Truncated { .. })
        ));
    }
}
