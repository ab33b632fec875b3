//! MPEG-2 transport stream segments (ISO/IEC 13818-1) for HLS `getTSFragment.ts` (issue 10):
//! one self-contained segment per stored fragment, holding all its tracks.
//!
//! Layout of a segment: the PAT (§2.4.4.3) and the PMT (§2.4.4.8, program 1 on PID
//! [`PMT_PID`]), then PES packets (§2.4.3.6) interleaved across tracks by decode time.
//! Video is H.264 (stream_type 0x1B, §2.14) or H.265 (0x24, §2.17) as Annex B access units,
//! one per PES packet, each led by an access unit delimiter and key frames by their parameter
//! sets; audio is AAC in ADTS (0x0F), one frame per PES packet (two 48 kHz frames already span more
//! than the 40 ms a PCR may lag in audio-only segments).
//!
//! Timing: a sample's decode time (track timescale) becomes a 90 kHz DTS, PTS = DTS +
//! composition offset, both mod 2^33; DTS is written only when it differs from PTS. The PCR
//! (§2.4.2.2) is on the first video PID (the first audio PID when there is no video), in the
//! first packet of every PES packet on that PID and in PCR-only packets whenever other data
//! would leave it more than 40 ms behind; it runs [`PCR_DELAY`] behind the DTS of the data
//! that follows it and never goes backwards. Key frames set the random_access_indicator.
//!
//! Continuity counters start at 0 on every PID in every segment. The output is whole
//! 188-byte packets; payload bytes are copied once, from the samples into the output.

mod adts;
mod packet;
mod pes;
#[cfg(test)]
mod tests;
mod video;

use bytes::{Bytes, BytesMut};

use crate::remux::{Codec, RemuxError, Sample, TrackConfig, TrackSamples};
use adts::Adts;
use packet::{PACKET_SIZE, PAT_PID, PacketWriter, Signals};
use pes::{AUDIO_STREAM_ID, VIDEO_STREAM_ID};
use video::VideoFormat;

/// PID of the program map table.
pub const PMT_PID: u16 = 0x1000;
/// PID of the first video track; further tracks take the next free PIDs.
pub const VIDEO_PID: u16 = 0x100;
/// PID of the first audio track.
pub const AUDIO_PID: u16 = 0x101;
/// How far the PCR runs behind the DTS of the data after it, in 90 kHz ticks (0.7 s, as
/// ffmpeg's default `max_delay`).
pub const PCR_DELAY: u64 = 63_000;

/// Longest stretch of stream time without a PCR, in 90 kHz ticks (40 ms).
const PCR_INTERVAL: u64 = 3_600;
/// The segment is returned in chunks of about this size, cut at PES boundaries.
const CHUNK_SIZE: usize = 64 * 1024;
const PROGRAM_NUMBER: u16 = 1;
/// Tracks per segment: as many as video stream_ids (0xE0..=0xEF), far above KVS's 3.
const MAX_TRACKS: usize = 16;

/// One MPEG-TS segment holding every sample of `runs`, whose tracks are described by
/// `tracks` (matched by track number; a track without samples is still listed in the PMT).
/// The bytes are returned as chunks of whole packets, in order.
///
/// Errors: a track with timescale 0 or an AAC configuration ADTS cannot express
/// ([`RemuxError::InvalidCodecPrivateData`]); more than 16 tracks, a run for a track not in
/// `tracks`, a video sample whose NAL unit lengths do not add up, an empty sample or an AAC
/// frame longer than ADTS allows ([`RemuxError::InvalidFrame`]).
pub fn segment(tracks: &[&TrackConfig], runs: &[TrackSamples]) -> Result<Vec<Bytes>, RemuxError> {
    let mut streams = streams(tracks)?;
    let mut cursors = Vec::with_capacity(runs.len());
    for run in runs {
        let stream = streams
            .iter()
            .position(|s| s.config.number == run.track)
            .ok_or_else(|| {
                RemuxError::InvalidFrame(format!(
                    "samples for track {}, which has no track configuration",
                    run.track
                ))
            })?;
        // A presentation time never precedes its decode time in TS (ISO/IEC 13818-1 §2.4.3.7):
        // negative composition offsets (B-frames, as fMP4 carries them) move the track's
        // decode times back by the largest of them.
        streams[stream].dts_shift = run
            .samples
            .iter()
            .map(|s| -i128::from(s.composition_offset))
            .max()
            .unwrap_or(0)
            .max(0);
        cursors.push(Cursor {
            stream,
            samples: &run.samples,
            next: 0,
        });
    }
    let pcr_pid = streams
        .iter()
        .find(|s| s.kind.is_video())
        .or(streams.first())
        .map_or(VIDEO_PID, |s| s.pid);

    let mut muxer = Muxer {
        out: BytesMut::with_capacity(capacity(runs)),
        chunks: Vec::new(),
        packets: PacketWriter::default(),
        pcr_pid,
        last_pcr: None,
    };
    muxer.tables(&streams);
    while let Some(c) = next_cursor(&cursors, &streams) {
        let cursor = &mut cursors[c];
        muxer.pes(&streams[cursor.stream], &cursor.samples[cursor.next])?;
        cursor.next += 1;
    }
    Ok(muxer.finish())
}

/// A track as the segment carries it.
struct Stream<'a> {
    config: &'a TrackConfig,
    /// Track ticks subtracted from every decode time so that no PTS precedes its DTS.
    dts_shift: i128,
    pid: u16,
    stream_id: u8,
    kind: Kind<'a>,
}

enum Kind<'a> {
    Video(VideoFormat<'a>),
    Audio(Adts),
}

impl Kind<'_> {
    fn is_video(&self) -> bool {
        matches!(self, Kind::Video(_))
    }
}

impl Stream<'_> {
    fn stream_type(&self) -> u8 {
        match self.config.codec {
            Codec::Avc(_) => 0x1b,
            Codec::Hevc(_) => 0x24,
            Codec::Aac(_) => 0x0f,
        }
    }

    /// A 90 kHz time from `t` ticks of the track's timescale (not yet reduced mod 2^33).
    fn to_90khz(&self, t: i128) -> i128 {
        t * 90_000 / i128::from(self.config.timescale)
    }

    /// (PTS, DTS) of a sample in 90 kHz ticks: the PTS mod 2^33, the DTS in full for ordering
    /// and the PCR (truncated to 64 bits only when absurdly large, which keeps it right mod
    /// 2^33).
    fn times(&self, sample: &Sample) -> (u64, u64) {
        let decode = i128::from(sample.decode_time);
        let dts = self.to_90khz(decode - self.dts_shift);
        let pts = self.to_90khz(decode + i128::from(sample.composition_offset));
        let modulus = i128::from(pes::TIMESTAMP_MODULUS);
        (pts.rem_euclid(modulus) as u64, dts as u64)
    }
}

/// The streams of the PMT, in track order: the first video track on [`VIDEO_PID`], the first
/// audio track on [`AUDIO_PID`], any further track on the next PIDs after them; stream_ids
/// count up from 0xE0 (video) and 0xC0 (audio).
fn streams<'a>(tracks: &[&'a TrackConfig]) -> Result<Vec<Stream<'a>>, RemuxError> {
    if tracks.len() > MAX_TRACKS {
        return Err(RemuxError::InvalidFrame(format!(
            "{} tracks; a segment holds at most {MAX_TRACKS}",
            tracks.len()
        )));
    }
    let (mut videos, mut audios) = (0u8, 0u8);
    let mut extra_pids = AUDIO_PID + 1..;
    let mut streams = Vec::with_capacity(tracks.len());
    for &config in tracks {
        let invalid = |reason: String| RemuxError::InvalidCodecPrivateData {
            track: config.number,
            reason,
        };
        if config.timescale == 0 {
            return Err(invalid("timescale 0".into()));
        }
        let (kind, count, first_pid, first_id) = match &config.codec {
            Codec::Avc(c) => (
                Kind::Video(VideoFormat::avc(c)),
                &mut videos,
                VIDEO_PID,
                VIDEO_STREAM_ID,
            ),
            Codec::Hevc(c) => (
                Kind::Video(VideoFormat::hevc(c)),
                &mut videos,
                VIDEO_PID,
                VIDEO_STREAM_ID,
            ),
            Codec::Aac(c) => (
                Kind::Audio(Adts::new(c).map_err(invalid)?),
                &mut audios,
                AUDIO_PID,
                AUDIO_STREAM_ID,
            ),
        };
        let pid = if *count == 0 {
            first_pid
        } else {
            extra_pids.next().unwrap_or(first_pid)
        };
        streams.push(Stream {
            config,
            dts_shift: 0,
            pid,
            stream_id: first_id + *count,
            kind,
        });
        *count += 1;
    }
    Ok(streams)
}

/// Where one run stands.
struct Cursor<'a> {
    stream: usize,
    samples: &'a [Sample],
    next: usize,
}

impl Cursor<'_> {
    fn next_dts(&self, streams: &[Stream<'_>]) -> Option<u64> {
        let sample = self.samples.get(self.next)?;
        Some(streams[self.stream].times(sample).1)
    }
}

/// The run whose next sample decodes first (video first on ties, so the PCR leads).
fn next_cursor(cursors: &[Cursor<'_>], streams: &[Stream<'_>]) -> Option<usize> {
    cursors
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let dts = c.next_dts(streams)?;
            Some(((dts, !streams[c.stream].kind.is_video()), i))
        })
        .min()
        .map(|(_, i)| i)
}

/// Bytes to reserve: the payload plus packet and PES overhead.
fn capacity(runs: &[TrackSamples]) -> usize {
    let (bytes, count) = runs
        .iter()
        .flat_map(|r| &r.samples)
        .fold((0usize, 0usize), |(b, n), s| (b + s.data.len(), n + 1));
    (bytes / 184 + 2 * count + 2) * PACKET_SIZE
}

struct Muxer {
    out: BytesMut,
    chunks: Vec<Bytes>,
    packets: PacketWriter,
    pcr_pid: u16,
    last_pcr: Option<u64>,
}

impl Muxer {
    fn tables(&mut self, streams: &[Stream<'_>]) {
        let mut pat = section_header(0x00, PROGRAM_NUMBER, 4);
        pat.extend(PROGRAM_NUMBER.to_be_bytes());
        pat.extend((0xe000 | PMT_PID).to_be_bytes());
        self.packets.write_section(&mut self.out, PAT_PID, &pat);

        let mut pmt = section_header(0x02, PROGRAM_NUMBER, 4 + 5 * streams.len());
        pmt.extend((0xe000 | self.pcr_pid).to_be_bytes());
        pmt.extend(0xf000u16.to_be_bytes());
        for s in streams {
            pmt.push(s.stream_type());
            pmt.extend((0xe000 | s.pid).to_be_bytes());
            pmt.extend(0xf000u16.to_be_bytes());
        }
        self.packets.write_section(&mut self.out, PMT_PID, &pmt);
    }

    /// Writes one sample as one PES packet, with the PCR its position calls for.
    fn pes(&mut self, stream: &Stream<'_>, sample: &Sample) -> Result<(), RemuxError> {
        let (pts, dts) = stream.times(sample);
        let target = dts
            .saturating_sub(PCR_DELAY)
            .max(self.last_pcr.unwrap_or(0));
        let pcr = if stream.pid == self.pcr_pid {
            self.last_pcr = Some(target);
            Some(target)
        } else {
            if self
                .last_pcr
                .is_none_or(|last| target >= last.saturating_add(PCR_INTERVAL))
            {
                self.packets.write_pcr(&mut self.out, self.pcr_pid, target);
                self.last_pcr = Some(target);
            }
            None
        };
        let signals = Signals {
            pcr,
            random_access: sample.key,
        };

        let adts_header;
        let mut gather: Vec<&[u8]> = Vec::new();
        match &stream.kind {
            Kind::Video(format) => format
                .access_unit(&sample.data, sample.key, &mut gather)
                .map_err(|reason| invalid(stream, sample, &reason))?,
            Kind::Audio(_) if sample.data.is_empty() => {
                return Err(invalid(stream, sample, "empty AAC frame"));
            }
            Kind::Audio(adts) => {
                adts_header = adts
                    .header(sample.data.len())
                    .ok_or_else(|| invalid(stream, sample, "AAC frame too long for ADTS"))?;
                gather.extend([&adts_header[..], &sample.data[..]]);
            }
        }
        let payload_len = gather.iter().map(|g| g.len()).sum();
        let (header, header_len) = pes::header(stream.stream_id, pts, dts, payload_len);
        gather.insert(0, &header[..header_len]);
        self.packets
            .write_pes(&mut self.out, stream.pid, signals, &gather);
        if self.out.len() >= CHUNK_SIZE {
            self.chunks.push(self.out.split().freeze());
        }
        Ok(())
    }

    fn finish(mut self) -> Vec<Bytes> {
        if !self.out.is_empty() {
            self.chunks.push(self.out.freeze());
        }
        self.chunks
    }
}

fn invalid(stream: &Stream<'_>, sample: &Sample, reason: &str) -> RemuxError {
    RemuxError::InvalidFrame(format!(
        "track {} sample at decode time {}: {reason}",
        stream.config.number, sample.decode_time
    ))
}

/// The start of a PSI section (§2.4.4.3, §2.4.4.8) of `table_id` whose fields after
/// `last_section_number` take `body_len` bytes: `section_length` counts them, the 5 bytes
/// before them and the CRC_32.
fn section_header(table_id: u8, id: u16, body_len: usize) -> Vec<u8> {
    let section_length = (5 + body_len + 4) as u16;
    let mut s = Vec::with_capacity(8 + body_len + 4);
    s.push(table_id);
    // section_syntax_indicator, '0', reserved '11'.
    s.extend((0xb000 | section_length).to_be_bytes());
    s.extend(id.to_be_bytes());
    // reserved '11', version_number 0, current_next_indicator 1.
    s.push(0xc1);
    s.extend([0, 0]);
    s
}
