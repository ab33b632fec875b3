//! The ISO BMFF box header (ISO/IEC 14496-12 §4.2): `Box` (size, type) and `FullBox` (plus
//! version and flags), written around a closure that fills the body, and the MPEG-4 systems
//! descriptor header of ISO/IEC 14496-1 §8.3.3 (tag, expandable size) used inside `esds`.

/// Appends a box of type `fourcc` whose body `body` writes. Bodies this module writes are
/// headers and configuration records, far below 4 GiB; a larger one gets a saturated size.
pub(super) fn write_box(buf: &mut Vec<u8>, fourcc: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(fourcc);
    body(buf);
    let size = u32::try_from(buf.len() - start).unwrap_or(u32::MAX);
    buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Appends a FullBox: a box whose body starts with `version` (8 bits) and `flags` (24 bits).
pub(super) fn write_full_box(
    buf: &mut Vec<u8>,
    fourcc: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    write_box(buf, fourcc, |buf| {
        buf.push(version);
        buf.extend_from_slice(&flags.to_be_bytes()[1..]);
        body(buf);
    });
}

/// Appends a descriptor with `tag` whose body `body` writes, its size in the minimal
/// expandable form (7 bits per byte, high bit = more follows; at most 4 bytes, 2^28 − 1).
pub(super) fn write_descriptor(buf: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    body(&mut inner);
    let size = inner.len().min((1 << 28) - 1);
    buf.push(tag);
    for shift in [21, 14, 7] {
        if size >= 1 << shift {
            buf.push(0x80 | (size >> shift) as u8 & 0x7f);
        }
    }
    buf.push(size as u8 & 0x7f);
    buf.extend_from_slice(&inner[..size]);
}

pub(super) fn put_u16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_be_bytes());
}

pub(super) fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_be_bytes());
}

pub(super) fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_sizes_cover_header_and_body() {
        let mut buf = vec![0xaa];
        write_box(&mut buf, b"moov", |b| {
            write_full_box(b, b"mvhd", 1, 0x020001, |b| put_u32(b, 7));
        });
        assert_eq!(
            buf[1..],
            [
                0, 0, 0, 24, b'm', b'o', b'o', b'v', 0, 0, 0, 16, b'm', b'v', b'h', b'd', 1, 2, 0,
                1, 0, 0, 0, 7
            ]
        );
    }

    #[test]
    fn descriptor_sizes_are_minimal_expandable() {
        let mut buf = Vec::new();
        write_descriptor(&mut buf, 5, |b| b.extend_from_slice(&[1, 2]));
        assert_eq!(buf, [5, 2, 1, 2]);
        let mut buf = Vec::new();
        write_descriptor(&mut buf, 3, |b| b.extend_from_slice(&[0; 200]));
        assert_eq!(buf[..3], [3, 0x81, 0x48]);
        assert_eq!(buf.len(), 203);
    }
}
