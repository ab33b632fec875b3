//! The transport-stream packet layer of ISO/IEC 13818-1: 188-byte packets (§2.4.3.2) with
//! per-PID continuity counters, the adaptation field (§2.4.3.4: PCR, random_access_indicator,
//! stuffing), program-specific information sections (PAT §2.4.4.3, PMT §2.4.4.8) with their
//! CRC_32 (Annex A), and a PES packet split across packets straight from its source slices.

use std::collections::BTreeMap;

use bytes::{BufMut, BytesMut};

/// Size of a transport stream packet.
pub const PACKET_SIZE: usize = 188;
/// `sync_byte`.
pub const SYNC_BYTE: u8 = 0x47;
/// PID of the program association table.
pub const PAT_PID: u16 = 0x0000;

const HEADER_SIZE: usize = 4;
const PAYLOAD_SIZE: usize = PACKET_SIZE - HEADER_SIZE;
/// `adaptation_field_length` plus the flags byte.
const AF_FIXED: usize = 2;
/// `program_clock_reference_base` (33), reserved (6), `_extension` (9).
const PCR_SIZE: usize = 6;
const PCR_FLAG: u8 = 0x10;
const RANDOM_ACCESS_FLAG: u8 = 0x40;

/// Writes packets into one buffer, keeping a continuity counter per PID that starts at 0 and
/// advances only on packets that carry payload (§2.4.3.3).
#[derive(Debug, Default)]
pub struct PacketWriter {
    counters: BTreeMap<u16, u8>,
}

/// What the first packet of a PES packet signals in its adaptation field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    /// `program_clock_reference_base`, in 90 kHz ticks (taken mod 2^33).
    pub pcr: Option<u64>,
    /// `random_access_indicator`: the PES starts a point a decoder can start from.
    pub random_access: bool,
}

impl PacketWriter {
    /// Writes one PSI section (`section` ends before its CRC_32, which is appended) in as many
    /// packets as it needs, with `pointer_field` 0 and the last packet padded with 0xFF.
    pub fn write_section(&mut self, out: &mut BytesMut, pid: u16, section: &[u8]) {
        let crc = crc32_mpeg2(section).to_be_bytes();
        let pointer = [0u8];
        let chunks: [&[u8]; 3] = [&pointer, section, &crc];
        let total = 1 + section.len() + crc.len();
        let mut source = Gather::new(&chunks);
        let mut first = true;
        let mut left = total;
        while left > 0 {
            let n = left.min(PAYLOAD_SIZE);
            self.header(out, pid, first, false, true);
            source.copy_to(out, n);
            out.put_bytes(0xff, PAYLOAD_SIZE - n);
            left -= n;
            first = false;
        }
    }

    /// Writes one PES packet whose bytes are the concatenation of `chunks` (PES header first),
    /// split into packets with `payload_unit_start_indicator` on the first. The first packet
    /// carries `signals` in its adaptation field; the last is padded with adaptation-field
    /// stuffing so that no packet is left partial.
    pub fn write_pes(&mut self, out: &mut BytesMut, pid: u16, signals: Signals, chunks: &[&[u8]]) {
        let mut left: usize = chunks.iter().map(|c| c.len()).sum();
        let mut source = Gather::new(chunks);
        let mut first = true;
        while left > 0 {
            let (flags, fields) = if first {
                let flags = signals.pcr.map_or(0, |_| PCR_FLAG)
                    | if signals.random_access {
                        RANDOM_ACCESS_FLAG
                    } else {
                        0
                    };
                (flags, signals.pcr.map_or(0, |_| PCR_SIZE))
            } else {
                (0, 0)
            };
            // Adaptation field bytes the flags need, before any stuffing.
            let needed = if flags == 0 { 0 } else { AF_FIXED + fields };
            let n = left.min(PAYLOAD_SIZE - needed);
            let af = PAYLOAD_SIZE - n;
            self.header(out, pid, first, af > 0, true);
            if af > 0 {
                write_adaptation_field(out, af, flags, signals.pcr.filter(|_| first));
            }
            source.copy_to(out, n);
            left -= n;
            first = false;
        }
    }

    /// Writes a packet with an adaptation field carrying only a PCR and no payload (it repeats
    /// the PID's last continuity counter).
    pub fn write_pcr(&mut self, out: &mut BytesMut, pid: u16, pcr: u64) {
        self.header(out, pid, false, true, false);
        write_adaptation_field(out, PAYLOAD_SIZE, PCR_FLAG, Some(pcr));
    }

    fn header(&mut self, out: &mut BytesMut, pid: u16, start: bool, af: bool, payload: bool) {
        // The counter holds the next value; a packet without payload repeats the last one.
        let counter = self.counters.entry(pid).or_insert(0);
        let cc = if payload {
            let cc = *counter;
            *counter = (cc + 1) & 0x0f;
            cc
        } else {
            counter.wrapping_sub(1) & 0x0f
        };
        let control = (u8::from(af) << 1) | u8::from(payload);
        out.put_u8(SYNC_BYTE);
        out.put_u16((u16::from(start) << 14) | (pid & 0x1fff));
        out.put_u8((control << 4) | cc);
    }
}

/// Writes an adaptation field occupying `size` bytes of the packet (its length byte included):
/// `flags`, the PCR when given, then stuffing. `size` 1 is the one-byte field of length 0.
fn write_adaptation_field(out: &mut BytesMut, size: usize, flags: u8, pcr: Option<u64>) {
    out.put_u8((size - 1) as u8);
    if size == 1 {
        return;
    }
    out.put_u8(flags);
    let mut used = AF_FIXED;
    if let Some(pcr) = pcr {
        let base = pcr & ((1 << 33) - 1);
        // base (33 bits), 6 reserved bits set, extension 0 (9 bits).
        let bits = (base << 15) | (0x3f << 9);
        out.put_slice(&bits.to_be_bytes()[2..]);
        used += PCR_SIZE;
    }
    out.put_bytes(0xff, size - used);
}

/// The MPEG-2 CRC_32 of ISO/IEC 13818-1 Annex A: polynomial 0x04C11DB7, initial value
/// 0xFFFFFFFF, no reflection, no final XOR. A section followed by its CRC has CRC 0.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xffff_ffff, |crc, &b| {
        (crc << 8) ^ CRC_TABLE[usize::from((crc >> 24) as u8 ^ b)]
    })
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// A cursor over a list of slices, copied out in packet-sized pieces.
struct Gather<'a> {
    chunks: &'a [&'a [u8]],
    index: usize,
    offset: usize,
}

impl<'a> Gather<'a> {
    fn new(chunks: &'a [&'a [u8]]) -> Self {
        Self {
            chunks,
            index: 0,
            offset: 0,
        }
    }

    /// Copies the next `n` bytes (which the chunks must hold) to `out`.
    fn copy_to(&mut self, out: &mut BytesMut, mut n: usize) {
        while n > 0 {
            let chunk = &self.chunks[self.index][self.offset..];
            let take = chunk.len().min(n);
            out.put_slice(&chunk[..take]);
            n -= take;
            self.offset += take;
            if self.offset == self.chunks[self.index].len() {
                self.index += 1;
                self.offset = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parsed fields of one packet.
    struct Packet<'a> {
        pid: u16,
        start: bool,
        cc: u8,
        adaptation: Option<&'a [u8]>,
        payload: &'a [u8],
    }

    fn parse(p: &[u8]) -> Packet<'_> {
        assert_eq!(p.len(), PACKET_SIZE);
        assert_eq!(p[0], SYNC_BYTE);
        let control = p[3] >> 4;
        let (adaptation, rest) = if control & 2 != 0 {
            let len = usize::from(p[4]);
            (Some(&p[5..5 + len]), &p[5 + len..])
        } else {
            (None, &p[4..])
        };
        Packet {
            pid: u16::from_be_bytes([p[1], p[2]]) & 0x1fff,
            start: p[1] & 0x40 != 0,
            cc: p[3] & 0x0f,
            adaptation,
            payload: if control & 1 != 0 { rest } else { &[] },
        }
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        // CRC-32/MPEG-2 check value for "123456789".
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_e6e7);
        let data = b"any section";
        let mut with_crc = data.to_vec();
        with_crc.extend_from_slice(&crc32_mpeg2(data).to_be_bytes());
        assert_eq!(crc32_mpeg2(&with_crc), 0);
    }

    #[test]
    fn pes_of_every_length_fills_whole_packets_with_its_bytes() {
        for pcr in [None, Some(0x1_2345_6789)] {
            for len in (1..400).chain([183, 184, 185, 176, 177, 178, 366, 367, 368]) {
                let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let (a, b) = data.split_at(len / 3);
                let mut w = PacketWriter::default();
                let mut out = BytesMut::new();
                let signals = Signals {
                    pcr,
                    random_access: len % 2 == 0,
                };
                w.write_pes(&mut out, 0x100, signals, &[a, b]);
                assert_eq!(out.len() % PACKET_SIZE, 0, "{len}");
                let mut payload = Vec::new();
                for (i, p) in out.chunks(PACKET_SIZE).enumerate() {
                    let p = parse(p);
                    assert_eq!((p.pid, p.start, p.cc), (0x100, i == 0, i as u8 & 15));
                    assert!(!p.payload.is_empty());
                    if let Some(af) = p.adaptation.filter(|af| !af.is_empty()) {
                        if i == 0 {
                            assert_eq!(af[0] & PCR_FLAG != 0, pcr.is_some());
                            assert_eq!(af[0] & RANDOM_ACCESS_FLAG != 0, len % 2 == 0);
                        } else {
                            assert_eq!(af[0], 0);
                        }
                        let fields = if i == 0 && pcr.is_some() { 7 } else { 1 };
                        assert!(af[fields..].iter().all(|&b| b == 0xff));
                        if let Some(pcr) = pcr.filter(|_| i == 0) {
                            let mut v = [0u8; 8];
                            v[2..].copy_from_slice(&af[1..7]);
                            assert_eq!(u64::from_be_bytes(v) >> 15, pcr);
                        }
                    }
                    payload.extend_from_slice(p.payload);
                }
                assert_eq!(payload, data, "{len}");
            }
        }
    }

    #[test]
    fn counters_are_per_pid_and_pcr_only_packets_do_not_advance_them() {
        let mut w = PacketWriter::default();
        let mut out = BytesMut::new();
        let big = [0u8; 300];
        w.write_pes(&mut out, 0x100, Signals::default(), &[&big]);
        w.write_pcr(&mut out, 0x100, 90_000);
        w.write_pes(&mut out, 0x101, Signals::default(), &[&big[..10]]);
        for _ in 0..15 {
            w.write_pes(&mut out, 0x100, Signals::default(), &[&big[..10]]);
        }
        let packets: Vec<Packet<'_>> = out.chunks(PACKET_SIZE).map(parse).collect();
        let video: Vec<(u8, bool)> = packets
            .iter()
            .filter(|p| p.pid == 0x100)
            .map(|p| (p.cc, p.payload.is_empty()))
            .collect();
        assert_eq!(video[..4], [(0, false), (1, false), (1, true), (2, false)]);
        assert_eq!(video.last(), Some(&(0, false)), "wraps after 15");
        let audio = packets.iter().find(|p| p.pid == 0x101).unwrap();
        assert_eq!(audio.cc, 0);
        let pcr = &packets[2];
        assert_eq!(pcr.adaptation.map(<[u8]>::len), Some(183));
    }

    #[test]
    fn sections_carry_a_pointer_field_and_their_crc() {
        let mut w = PacketWriter::default();
        let mut out = BytesMut::new();
        let section = [
            0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00,
        ];
        w.write_section(&mut out, PAT_PID, &section);
        assert_eq!(out.len(), PACKET_SIZE);
        let p = parse(&out);
        assert!(p.start && p.adaptation.is_none());
        assert_eq!(p.payload[0], 0, "pointer_field");
        assert_eq!(&p.payload[1..13], &section);
        assert_eq!(crc32_mpeg2(&p.payload[1..17]), 0);
        assert!(p.payload[17..].iter().all(|&b| b == 0xff));
    }
}
