//! EBML primitives (RFC 8794 §4): element IDs, variable-size integers, and the few data types
//! Kinescope reads and writes. Readers take a byte slice and answer `Ok(None)` when more bytes
//! are needed, so they work on any chunking.

/// An element's data size: a number of bytes, or "unknown" (all value bits set, §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Known(u64),
    Unknown,
}

/// A malformed EBML header field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VintError {
    /// The first byte is zero: a VINT longer than 8 bytes (or an ID longer than 4).
    TooLong,
    /// An ID whose value bits are all zero or all one (reserved, §5).
    ReservedId,
}

/// Reads an element ID (1–4 bytes, marker bit kept). `Ok(None)`: need more bytes.
pub fn read_id(buf: &[u8]) -> Result<Option<(u32, usize)>, VintError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let len = first.leading_zeros() as usize + 1;
    if len > 4 {
        return Err(VintError::TooLong);
    }
    if buf.len() < len {
        return Ok(None);
    }
    let id = buf[..len]
        .iter()
        .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
    let value_bits = 7 * len as u32;
    let value = id & ((1u32 << value_bits) - 1);
    if value == 0 || value == (1u32 << value_bits) - 1 {
        return Err(VintError::ReservedId);
    }
    Ok(Some((id, len)))
}

/// Reads a data size (1–8 bytes). `Ok(None)`: need more bytes.
pub fn read_size(buf: &[u8]) -> Result<Option<(Size, usize)>, VintError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first == 0 {
        return Err(VintError::TooLong);
    }
    let len = first.leading_zeros() as usize + 1;
    if buf.len() < len {
        return Ok(None);
    }
    let mut value = u64::from(first) & (0xFF >> len);
    for &b in &buf[1..len] {
        value = (value << 8) | u64::from(b);
    }
    let all_ones = (1u64 << (7 * len)) - 1;
    Ok(Some((
        if value == all_ones {
            Size::Unknown
        } else {
            Size::Known(value)
        },
        len,
    )))
}

/// An unsigned integer element's value (0–8 bytes, big-endian).
pub fn read_uint(data: &[u8]) -> Option<u64> {
    (data.len() <= 8).then(|| data.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// A float element's value (0, 4 or 8 bytes).
pub fn read_float(data: &[u8]) -> Option<f64> {
    match data.len() {
        0 => Some(0.0),
        4 => Some(f64::from(f32::from_be_bytes(data.try_into().ok()?))),
        8 => Some(f64::from_be_bytes(data.try_into().ok()?)),
        _ => None,
    }
}

/// A string element's value: UTF-8 up to the first NUL (§7.4 allows NUL padding).
pub fn read_string(data: &[u8]) -> String {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

/// Appends an element ID (its bytes already carry the length marker).
pub fn write_id(out: &mut Vec<u8>, id: u32) {
    let len = 4 - (id.leading_zeros() / 8) as usize;
    out.extend_from_slice(&id.to_be_bytes()[4 - len.max(1)..]);
}

/// Appends a data size in the shortest form that cannot be mistaken for "unknown".
pub fn write_size(out: &mut Vec<u8>, size: u64) {
    let len = (1..=8).find(|&n| size < (1u64 << (7 * n)) - 1).unwrap_or(8);
    write_size_len(out, size, len);
}

/// Appends a data size using exactly `len` bytes (as the real service writes 4- and 8-byte
/// sizes). `size` must fit.
pub fn write_size_len(out: &mut Vec<u8>, size: u64, len: usize) {
    debug_assert!((1..=8).contains(&len) && size < (1u64 << (7 * len)) - 1);
    let marked = size | (1u64 << (7 * len));
    out.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

/// The 8-byte "unknown size" marker.
pub const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// Appends an unsigned integer element in its shortest form.
pub fn write_uint(out: &mut Vec<u8>, id: u32, value: u64) {
    let len = (8 - value.leading_zeros() as usize / 8).max(1);
    write_id(out, id);
    write_size(out, len as u64);
    out.extend_from_slice(&value.to_be_bytes()[8 - len..]);
}

/// Appends a binary or string element.
pub fn write_bytes(out: &mut Vec<u8>, id: u32, value: &[u8]) {
    write_id(out, id);
    write_size(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// Appends a master element whose children `body` writes, with its size filled in after.
pub fn write_master(out: &mut Vec<u8>, id: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    body(&mut inner);
    write_id(out, id);
    write_size(out, inner.len() as u64);
    out.extend_from_slice(&inner);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids() {
        assert_eq!(
            read_id(&[0x1A, 0x45, 0xDF, 0xA3]),
            Ok(Some((0x1A45_DFA3, 4)))
        );
        assert_eq!(read_id(&[0xA3, 0]), Ok(Some((0xA3, 1))));
        assert_eq!(read_id(&[0x1A, 0x45]), Ok(None));
        assert_eq!(read_id(&[]), Ok(None));
        assert_eq!(read_id(&[0x08, 1, 2, 3, 4]), Err(VintError::TooLong));
        assert_eq!(read_id(&[0x00]), Err(VintError::TooLong));
        assert_eq!(read_id(&[0x80]), Err(VintError::ReservedId));
        assert_eq!(read_id(&[0xFF]), Err(VintError::ReservedId));
    }

    #[test]
    fn sizes() {
        assert_eq!(read_size(&[0x81]), Ok(Some((Size::Known(1), 1))));
        assert_eq!(read_size(&[0xFF]), Ok(Some((Size::Unknown, 1))));
        assert_eq!(read_size(&UNKNOWN_SIZE), Ok(Some((Size::Unknown, 8))));
        assert_eq!(read_size(&[0x40, 0x02]), Ok(Some((Size::Known(2), 2))));
        assert_eq!(read_size(&[0x7F, 0xFF]), Ok(Some((Size::Unknown, 2))));
        assert_eq!(read_size(&[0x01, 0, 0, 0, 0, 0, 0]), Ok(None));
        assert_eq!(
            read_size(&[0x00, 1, 2, 3, 4, 5, 6, 7, 8]),
            Err(VintError::TooLong)
        );
        // 2^56 declared: a valid size, which callers must refuse by limit, not allocate.
        let huge = [0x01, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(read_size(&huge), Ok(Some((Size::Known(0), 8))));
        let big = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE];
        assert_eq!(read_size(&big), Ok(Some((Size::Known((1 << 56) - 2), 8))));
    }

    #[test]
    fn writes() {
        let mut out = Vec::new();
        write_id(&mut out, 0x1A45_DFA3);
        write_id(&mut out, 0xA3);
        write_size(&mut out, 126);
        write_size(&mut out, 127);
        assert_eq!(out, [0x1A, 0x45, 0xDF, 0xA3, 0xA3, 0xFE, 0x40, 0x7F]);
        let mut out = Vec::new();
        write_uint(&mut out, crate::mkv::ids::TIMECODE_SCALE, 1_000_000);
        assert_eq!(out, [0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40]);
        let mut out = Vec::new();
        write_uint(&mut out, crate::mkv::ids::TIMECODE, 0);
        assert_eq!(out, [0xE7, 0x81, 0x00]);
        let mut out = Vec::new();
        write_size_len(&mut out, 17, 4);
        assert_eq!(out, [0x10, 0, 0, 17]);
    }

    proptest! {
        #[test]
        fn sizes_round_trip(size in 0u64..(1 << 56) - 1) {
            let mut out = Vec::new();
            write_size(&mut out, size);
            prop_assert_eq!(read_size(&out), Ok(Some((Size::Known(size), out.len()))));
        }

        #[test]
        fn ids_round_trip(len in 1usize..=4, value: u32) {
            let bits = 7 * len as u32;
            let v = (value % ((1u32 << bits) - 2)) + 1;
            let id = v | (1u32 << bits);
            let mut out = Vec::new();
            write_id(&mut out, id);
            prop_assert_eq!(read_id(&out), Ok(Some((id, len))));
        }

        #[test]
        fn any_bytes_never_panic(bytes: Vec<u8>) {
            let _ = read_id(&bytes);
            let _ = read_size(&bytes);
            let _ = read_uint(&bytes);
            let _ = read_float(&bytes);
        }
    }
}
