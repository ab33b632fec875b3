//! The PES packet header of ISO/IEC 13818-1 §2.4.3.6/§2.4.3.7: `stream_id`,
//! `PES_packet_length`, `data_alignment_indicator` and the 33-bit PTS and DTS.

/// `stream_id` of the first video stream.
pub const VIDEO_STREAM_ID: u8 = 0xe0;
/// `stream_id` of the first audio stream.
pub const AUDIO_STREAM_ID: u8 = 0xc0;
/// The largest header [`header`] writes.
pub const MAX_HEADER_SIZE: usize = 19;

/// 2^33: PTS and DTS wrap here.
pub const TIMESTAMP_MODULUS: u64 = 1 << 33;

/// The PES header for `payload_len` bytes of elementary stream starting at an access unit:
/// PTS always, DTS only when it differs from PTS (both taken mod 2^33). `PES_packet_length`
/// is 0 (unbounded, allowed for video only, §2.4.3.7) when the packet is too long for it.
pub fn header(
    stream_id: u8,
    pts: u64,
    dts: u64,
    payload_len: usize,
) -> ([u8; MAX_HEADER_SIZE], usize) {
    let (pts, dts) = (pts % TIMESTAMP_MODULUS, dts % TIMESTAMP_MODULUS);
    let with_dts = dts != pts;
    let data_len: usize = if with_dts { 10 } else { 5 };
    let packet_len = 3 + data_len + payload_len;
    let packet_len = u16::try_from(packet_len).unwrap_or(0);
    let mut h = [0u8; MAX_HEADER_SIZE];
    h[..3].copy_from_slice(&[0, 0, 1]);
    h[3] = stream_id;
    h[4..6].copy_from_slice(&packet_len.to_be_bytes());
    // '10', not scrambled, no priority, data_alignment_indicator, not copyrighted, copy.
    h[6] = 0x84;
    h[7] = if with_dts { 0xc0 } else { 0x80 };
    h[8] = data_len as u8;
    timestamp(&mut h[9..14], if with_dts { 0x3 } else { 0x2 }, pts);
    if with_dts {
        timestamp(&mut h[14..19], 0x1, dts);
    }
    (h, 9 + data_len)
}

/// A 33-bit timestamp after a 4-bit prefix, with marker bits (§2.4.3.7).
fn timestamp(out: &mut [u8], prefix: u8, t: u64) {
    out[0] = (prefix << 4) | (((t >> 30) as u8 & 0x07) << 1) | 1;
    out[1..3].copy_from_slice(&((((t >> 15) & 0x7fff) << 1 | 1) as u16).to_be_bytes());
    out[3..5].copy_from_slice(&((((t & 0x7fff) << 1) | 1) as u16).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_timestamp(b: &[u8]) -> u64 {
        assert_eq!(b[0] & 1, 1);
        assert_eq!(b[2] & 1, 1);
        assert_eq!(b[4] & 1, 1);
        (u64::from(b[0] >> 1 & 7) << 30)
            | (u64::from(u16::from_be_bytes([b[1], b[2]]) >> 1) << 15)
            | u64::from(u16::from_be_bytes([b[3], b[4]]) >> 1)
    }

    #[test]
    fn pts_only_when_dts_is_equal() {
        let (h, n) = header(AUDIO_STREAM_ID, 0x1_2345_6789, 0x1_2345_6789, 100);
        assert_eq!(n, 14);
        assert_eq!(&h[..4], &[0, 0, 1, 0xc0]);
        assert_eq!(u16::from_be_bytes([h[4], h[5]]), 108);
        assert_eq!((h[7], h[8], h[9] >> 4), (0x80, 5, 2));
        assert_eq!(read_timestamp(&h[9..14]), 0x1_2345_6789);
    }

    #[test]
    fn pts_and_dts_wrap_at_33_bits() {
        let (h, n) = header(
            VIDEO_STREAM_ID,
            TIMESTAMP_MODULUS + 3600,
            TIMESTAMP_MODULUS - 1,
            70_000,
        );
        assert_eq!(n, 19);
        assert_eq!(u16::from_be_bytes([h[4], h[5]]), 0, "unbounded");
        assert_eq!((h[7], h[8], h[9] >> 4, h[14] >> 4), (0xc0, 10, 3, 1));
        assert_eq!(read_timestamp(&h[9..14]), 3600);
        assert_eq!(read_timestamp(&h[14..19]), TIMESTAMP_MODULUS - 1);
    }
}
