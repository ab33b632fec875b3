//! MPEG-TS segments of real uploads checked by independent readers (issue 10, HLS
//! `getTSFragment.ts`): every fragment of the official producers' uploads in `testdata/mkv/`
//! becomes one segment; mpeg2ts-reader demuxes each segment on its own (PSI, continuity, PES
//! count and timestamps); ffprobe counts every frame of the concatenated segments, and ffmpeg
//! and GStreamer decode them without a warning. An H.265 stream made by ffmpeg on the fly gets
//! the same checks. A missing tool fails the test (`scripts/install-test-deps` installs them).
//!
//! `TrackConfig` and `TrackSamples` are built here from the MKV by a small helper (codec
//! records parsed with `kinescope_media::codec`, decode times from the block timecodes,
//! decode order kept), so these tests do not depend on the production fragmenter.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use kinescope_media::codec::{AudioSpecificConfig, AvcDecoderConfig, HevcDecoderConfig};
use kinescope_media::mkv::{
    Event, Fragment, Limits, MkvReader, Track, TrackHeader, TrackType, cluster_frames,
};
use kinescope_media::remux::{Codec, Sample, TrackConfig, TrackSamples, VIDEO_TIMESCALE};
use kinescope_media::ts;

use mpeg2ts_reader::demultiplex::{
    self, DemuxContext, FilterChangeset, FilterRequest, NullPacketFilter, PatPacketFilter,
    PmtPacketFilter,
};
use mpeg2ts_reader::pes::{self, PesContents, PtsDts};
use mpeg2ts_reader::{StreamType, packet_filter_switch, psi};

const UPLOADS: [&str; 3] = [
    "producer-c-1.6.4_h264_putmedia.mkv",
    "producer-c-1.6.4_h264_aac_putmedia.mkv",
    "kvssink-3.6.0_h264_putmedia.mkv",
];

/// An MKV as segments take it: the track configurations and each fragment's samples.
struct Source {
    tracks: Vec<TrackConfig>,
    fragments: Vec<Vec<TrackSamples>>,
}

impl Source {
    fn from_mkv(data: &Bytes) -> Self {
        let mut r = MkvReader::new(Limits::default());
        r.push(data.clone());
        r.finish();
        let mut header: Option<TrackHeader> = None;
        let mut fragments: Vec<Fragment> = Vec::new();
        while let Some(e) = r.poll() {
            match e.expect("valid MKV") {
                Event::TrackHeader(h) => header = header.or(Some(h)),
                Event::Fragment(f) => fragments.push(f),
                _ => {}
            }
        }
        let header = header.expect("a track header");
        let tracks: Vec<TrackConfig> = header.tracks.iter().filter_map(track_config).collect();
        let scale = header.timecode_scale;
        // Presentation times per track and fragment, in each track's timescale.
        let mut frames = Vec::new();
        for f in &fragments {
            let mut per_track: BTreeMap<u64, Vec<(u64, bool, Bytes)>> = BTreeMap::new();
            for frame in cluster_frames(&f.bytes).unwrap() {
                let Some(t) = tracks.iter().find(|t| t.number == frame.track) else {
                    continue;
                };
                let ns = u128::try_from(frame.timecode).unwrap() * u128::from(scale);
                let pts = (ns * u128::from(t.timescale) / 1_000_000_000) as u64;
                per_track
                    .entry(frame.track)
                    .or_default()
                    .push((pts, frame.key, frame.data));
            }
            frames.push(per_track);
        }
        // Decode times are the sorted presentation times, moved back by the largest reorder
        // delay of the track so that no PTS precedes its DTS; one second of headroom keeps
        // them positive.
        let mut delay: BTreeMap<u64, u64> = BTreeMap::new();
        for per_track in &frames {
            for (track, list) in per_track {
                let mut sorted: Vec<u64> = list.iter().map(|f| f.0).collect();
                sorted.sort_unstable();
                let d = list
                    .iter()
                    .zip(&sorted)
                    .map(|(f, s)| s.saturating_sub(f.0))
                    .max()
                    .unwrap_or(0);
                let entry = delay.entry(*track).or_default();
                *entry = (*entry).max(d);
            }
        }
        let fragments = frames
            .into_iter()
            .map(|per_track| {
                per_track
                    .into_iter()
                    .map(|(track, list)| {
                        let timescale =
                            tracks.iter().find(|t| t.number == track).unwrap().timescale;
                        let headroom = u64::from(timescale);
                        let mut sorted: Vec<u64> = list.iter().map(|f| f.0).collect();
                        sorted.sort_unstable();
                        let dts: Vec<u64> = sorted
                            .iter()
                            .map(|s| s + headroom - delay[&track])
                            .collect();
                        let samples = list
                            .into_iter()
                            .enumerate()
                            .map(|(i, (pts, key, data))| Sample {
                                decode_time: dts[i],
                                duration: dts
                                    .get(i + 1)
                                    .map_or(1, |next| (next - dts[i]).max(1) as u32),
                                composition_offset: (pts + headroom - dts[i]) as i32,
                                key,
                                data,
                            })
                            .collect();
                        TrackSamples { track, samples }
                    })
                    .collect()
            })
            .collect();
        Self { tracks, fragments }
    }

    /// Every fragment cut before each of its key frames (single-track sources).
    fn split_at_key_frames(self) -> Self {
        let mut fragments = Vec::new();
        for runs in self.fragments {
            for run in runs {
                for sample in run.samples {
                    if sample.key || fragments.is_empty() {
                        fragments.push(vec![TrackSamples {
                            track: run.track,
                            samples: Vec::new(),
                        }]);
                    }
                    fragments.last_mut().unwrap()[0].samples.push(sample);
                }
            }
        }
        Self {
            tracks: self.tracks,
            fragments,
        }
    }

    /// One segment per fragment.
    fn segments(&self) -> Vec<Vec<u8>> {
        let tracks: Vec<&TrackConfig> = self.tracks.iter().collect();
        self.fragments
            .iter()
            .map(|runs| ts::segment(&tracks, runs).unwrap().concat())
            .collect()
    }

    fn frame_count(&self, codec: fn(&Codec) -> bool) -> u64 {
        let numbers: Vec<u64> = self
            .tracks
            .iter()
            .filter(|t| codec(&t.codec))
            .map(|t| t.number)
            .collect();
        self.fragments
            .iter()
            .flatten()
            .filter(|r| numbers.contains(&r.track))
            .map(|r| r.samples.len() as u64)
            .sum()
    }
}

fn track_config(t: &Track) -> Option<TrackConfig> {
    let (codec_string, timescale, (width, height), codec) = match t.codec_id.as_str() {
        "V_MPEG4/ISO/AVC" => {
            let c = AvcDecoderConfig::parse(&t.codec_private).unwrap();
            let sps = c.first_sps().unwrap();
            let size = (sps.width, sps.height);
            (c.codec_string(), VIDEO_TIMESCALE, size, Codec::Avc(c))
        }
        "V_MPEGH/ISO/HEVC" => {
            let c = HevcDecoderConfig::parse(&t.codec_private).unwrap();
            let sps = c.first_sps().unwrap();
            let size = (sps.width, sps.height);
            (
                c.codec_string("hvc1"),
                VIDEO_TIMESCALE,
                size,
                Codec::Hevc(c),
            )
        }
        id if id.starts_with("A_AAC") => {
            let c = AudioSpecificConfig::parse(&t.codec_private).unwrap();
            (c.codec_string(), c.sample_rate(), (0, 0), Codec::Aac(c))
        }
        _ => return None,
    };
    let audio = t.track_type == TrackType::Audio;
    Some(TrackConfig {
        number: t.number,
        codec,
        codec_private: t.codec_private.clone(),
        timescale,
        codec_string,
        width,
        height,
        sample_rate: if audio { timescale } else { 0 },
        channels: t.channels.unwrap_or(0) as u8,
        default_duration: None,
    })
}

fn fixture(name: &str) -> Bytes {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/mkv")
        .join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (run scripts/install-test-deps)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

// --- mpeg2ts-reader as the independent demuxer ---

packet_filter_switch! {
    Filters<Demuxed> {
        Pes: pes::PesPacketFilter<Demuxed, Recorder>,
        Pat: PatPacketFilter<Demuxed>,
        Pmt: PmtPacketFilter<Demuxed>,
        Null: NullPacketFilter<Demuxed>,
    }
}

/// What mpeg2ts-reader found in one segment.
#[derive(Default)]
pub struct Demuxed {
    changeset: FilterChangeset<Filters>,
    /// (PID, stream_type) as the PMT announced them.
    streams: Vec<(u16, u8)>,
    /// (PID, PTS, DTS) of every PES packet, in order.
    pes: Vec<(u16, u64, u64)>,
    continuity_errors: usize,
}

impl std::fmt::Debug for Demuxed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demuxed")
            .field("streams", &self.streams)
            .field("pes", &self.pes.len())
            .finish_non_exhaustive()
    }
}

impl DemuxContext for Demuxed {
    type F = Filters;

    fn filter_changeset(&mut self) -> &mut FilterChangeset<Filters> {
        &mut self.changeset
    }

    fn construct(&mut self, req: FilterRequest<'_, '_>) -> Filters {
        match req {
            FilterRequest::ByPid(psi::pat::PAT_PID) => Filters::Pat(PatPacketFilter::default()),
            FilterRequest::Pmt {
                pid,
                program_number,
            } => Filters::Pmt(PmtPacketFilter::new(pid, program_number)),
            FilterRequest::ByStream {
                stream_type,
                stream_info,
                ..
            } if matches!(
                stream_type,
                StreamType::H264 | StreamType::H265 | StreamType::ADTS
            ) =>
            {
                let pid = u16::from(stream_info.elementary_pid());
                self.streams.push((pid, stream_type.0));
                Filters::Pes(pes::PesPacketFilter::new(Recorder { pid }))
            }
            _ => Filters::Null(NullPacketFilter::default()),
        }
    }
}

#[derive(Debug)]
pub struct Recorder {
    pid: u16,
}

impl pes::ElementaryStreamConsumer<Demuxed> for Recorder {
    fn start_stream(&mut self, _: &mut Demuxed) {}

    fn begin_packet(&mut self, ctx: &mut Demuxed, header: pes::PesHeader<'_>) {
        let PesContents::Parsed(Some(parsed)) = header.contents() else {
            panic!("PES header without timestamps on PID {:#x}", self.pid);
        };
        let (pts, dts) = match parsed.pts_dts().unwrap() {
            PtsDts::PtsOnly(Ok(pts)) => (pts.value(), pts.value()),
            PtsDts::Both {
                pts: Ok(pts),
                dts: Ok(dts),
            } => (pts.value(), dts.value()),
            other => panic!("{other:?}"),
        };
        ctx.pes.push((self.pid, pts, dts));
    }

    fn continue_packet(&mut self, _: &mut Demuxed, _: &[u8]) {}

    fn end_packet(&mut self, _: &mut Demuxed) {}

    fn continuity_error(&mut self, ctx: &mut Demuxed) {
        ctx.continuity_errors += 1;
    }
}

fn demux(segment: &[u8]) -> Demuxed {
    let mut ctx = Demuxed::default();
    let mut demux = demultiplex::Demultiplex::new(&mut ctx);
    demux.push(&mut ctx, segment);
    ctx
}

/// Each segment of `source` on its own: the PMT lists every track on its PID with its
/// stream_type, the continuity counters have no gap, and each sample is one PES packet with
/// its PTS and DTS, in decode order. Returns how many PES packets carried a DTS.
fn check_with_mpeg2ts_reader(name: &str, source: &Source) -> usize {
    let want_streams: Vec<(u16, u8)> = source
        .tracks
        .iter()
        .map(|t| match t.codec {
            Codec::Avc(_) => (ts::VIDEO_PID, 0x1b),
            Codec::Hevc(_) => (ts::VIDEO_PID, 0x24),
            Codec::Aac(_) => (ts::AUDIO_PID, 0x0f),
        })
        .collect();
    let segments = source.segments();
    let mut with_dts = 0;
    for (segment, runs) in segments.iter().zip(&source.fragments) {
        let d = demux(segment);
        assert_eq!(d.continuity_errors, 0, "{name}");
        let mut streams = d.streams.clone();
        streams.sort_unstable();
        assert_eq!(streams, want_streams, "{name}");
        with_dts += d.pes.iter().filter(|p| p.1 != p.2).count();
        for run in runs {
            let track = source
                .tracks
                .iter()
                .find(|t| t.number == run.track)
                .unwrap();
            let pid = if is_audio(&track.codec) {
                ts::AUDIO_PID
            } else {
                ts::VIDEO_PID
            };
            let got: Vec<(u64, u64)> = d
                .pes
                .iter()
                .filter(|p| p.0 == pid)
                .map(|p| (p.1, p.2))
                .collect();
            let to_90k = |t: i64| {
                (i128::from(t) * 90_000 / i128::from(track.timescale)).rem_euclid(1 << 33) as u64
            };
            let want: Vec<(u64, u64)> = run
                .samples
                .iter()
                .map(|s| {
                    let dts = s.decode_time as i64;
                    (to_90k(dts + i64::from(s.composition_offset)), to_90k(dts))
                })
                .collect();
            assert_eq!(got, want, "{name} track {}", run.track);
        }
    }
    with_dts
}

#[test]
fn every_fragment_demuxes_with_mpeg2ts_reader() {
    for name in UPLOADS {
        let source = Source::from_mkv(&fixture(name));
        assert!(source.fragments.len() > 1, "{name}");
        check_with_mpeg2ts_reader(name, &source);
    }
}

// --- ffprobe, ffmpeg and GStreamer on the concatenated segments ---

fn is_video(c: &Codec) -> bool {
    matches!(c, Codec::Avc(_) | Codec::Hevc(_))
}

fn is_audio(c: &Codec) -> bool {
    matches!(c, Codec::Aac(_))
}

/// Writes the segments one after the other, as a player fetching them would read them.
fn write_concatenated(source: &Source, dir: &Path) -> std::path::PathBuf {
    let path = dir.join("segments.ts");
    std::fs::write(&path, source.segments().concat()).unwrap();
    path
}

/// Frames ffprobe decodes per codec type (`video`, `audio`).
fn ffprobe_frames(path: &Path) -> BTreeMap<String, u64> {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-of", "json"])
        .args(["-show_entries", "stream=codec_type,nb_read_frames"])
        .arg(path));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut frames = BTreeMap::new();
    for stream in json["streams"].as_array().unwrap() {
        let kind = stream["codec_type"].as_str().unwrap().to_string();
        let n: u64 = stream["nb_read_frames"].as_str().unwrap().parse().unwrap();
        *frames.entry(kind).or_default() += n;
    }
    frames
}

/// ffmpeg decodes the file without printing a warning.
fn ffmpeg_decodes_silently(path: &Path) {
    let out = run(Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "warning", "-i"])
        .arg(path)
        .args(["-f", "null", "-"]));
    assert!(
        out.stderr.is_empty(),
        "ffmpeg warned on {path:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A GStreamer pipeline over the file exits 0 within a minute with nothing on stderr.
fn gstreamer_decodes_silently(path: &Path, pipeline: &str) {
    let mut args = vec!["60", "gst-launch-1.0", "-q", "filesrc"];
    let location = format!("location={}", path.display());
    args.push(&location);
    args.extend(pipeline.split_whitespace());
    let out = run(Command::new("timeout").args(&args));
    assert!(
        out.stderr.is_empty(),
        "GStreamer warned on {path:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn producer_uploads_play_in_ffmpeg_and_gstreamer() {
    let dir = tempfile::tempdir().unwrap();
    for name in UPLOADS {
        let source = Source::from_mkv(&fixture(name));
        let path = write_concatenated(&source, dir.path());
        let mut want = BTreeMap::new();
        want.insert("video".to_string(), source.frame_count(is_video));
        let audio = source.frame_count(is_audio);
        if audio > 0 {
            want.insert("audio".to_string(), audio);
        }
        assert_eq!(ffprobe_frames(&path), want, "{name}");
        ffmpeg_decodes_silently(&path);
        let pipeline = if audio > 0 {
            "! tsdemux name=d d. ! queue ! h264parse ! avdec_h264 ! fakesink \
             d. ! queue ! aacparse ! avdec_aac ! fakesink"
        } else {
            "! tsdemux ! h264parse ! avdec_h264 ! fakesink"
        };
        gstreamer_decodes_silently(&path, pipeline);
    }
}

#[test]
fn hevc_from_ffmpeg_plays_in_ffmpeg_and_gstreamer() {
    let dir = tempfile::tempdir().unwrap();
    let mkv = dir.path().join("hevc.mkv");
    run(Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
        ])
        .args(["-i", "testsrc=size=320x240:rate=25", "-t", "2"])
        .args([
            "-c:v",
            "libx265",
            "-g",
            "25",
            "-x265-params",
            "log-level=error",
        ])
        .args(["-f", "matroska"])
        .arg(&mkv));
    let source = Source::from_mkv(&Bytes::from(std::fs::read(&mkv).unwrap()));
    assert!(matches!(source.tracks[0].codec, Codec::Hevc(_)));
    // ffmpeg writes one Cluster per 5 s here: cut the single fragment at its key frames so
    // that there are several segments, as a KVS producer sends one GOP per fragment.
    let source = source.split_at_key_frames();
    assert_eq!(source.fragments.len(), 2);
    assert!(
        check_with_mpeg2ts_reader("hevc.mkv", &source) > 0,
        "B-frames: PES packets with a DTS"
    );
    let path = write_concatenated(&source, dir.path());
    let mut want = BTreeMap::new();
    want.insert("video".to_string(), 50);
    assert_eq!(ffprobe_frames(&path), want);
    ffmpeg_decodes_silently(&path);
    gstreamer_decodes_silently(&path, "! tsdemux ! h265parse ! avdec_h265 ! fakesink");
}

#[test]
fn sparse_video_gets_pcr_only_packets_that_players_accept() {
    // The first fragment of the AAC upload with its video slowed to a third of its frame
    // rate: 120 ms between video frames, so the PCRs between them come in PCR-only packets
    // before audio.
    let mut source = Source::from_mkv(&fixture("producer-c-1.6.4_h264_aac_putmedia.mkv"));
    // Video frames past the end of the audio are dropped, so that the streams end together.
    source.fragments.truncate(1);
    assert!(is_video(&source.tracks[0].codec) && is_audio(&source.tracks[1].codec));
    let audio_end = source.fragments[0]
        .iter()
        .filter(|r| r.track != source.tracks[0].number)
        .map(|r| {
            r.samples.last().unwrap().decode_time * 90_000 / u64::from(source.tracks[1].timescale)
        })
        .max()
        .unwrap();
    for run in &mut source.fragments[0] {
        if run.track == source.tracks[0].number {
            let start = run.samples[0].decode_time;
            for s in &mut run.samples {
                s.decode_time = start + 3 * (s.decode_time - start);
            }
            run.samples.retain(|s| s.decode_time <= audio_end);
        }
    }
    let segment = &source.segments()[0];
    let pcr_only = segment
        .chunks(188)
        .filter(|p| p[3] >> 4 == 0b10 && p[5] & 0x10 != 0)
        .count();
    assert!(pcr_only > 10, "{pcr_only} PCR-only packets");
    check_with_mpeg2ts_reader("sparse video", &source);
    let dir = tempfile::tempdir().unwrap();
    let path = write_concatenated(&source, dir.path());
    let mut want = BTreeMap::new();
    want.insert("video".to_string(), source.frame_count(is_video));
    want.insert("audio".to_string(), source.frame_count(is_audio));
    assert_eq!(ffprobe_frames(&path), want);
    ffmpeg_decodes_silently(&path);
    gstreamer_decodes_silently(
        &path,
        "! tsdemux name=d d. ! queue ! h264parse ! avdec_h264 ! fakesink \
         d. ! queue ! aacparse ! avdec_aac ! fakesink",
    );
}
