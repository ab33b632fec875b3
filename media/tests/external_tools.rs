//! The MKV reader and writers against third-party tools (TESTING.md "Making test media" and
//! "Checking MKV output"): files made by ffmpeg and GStreamer parse to the packets ffprobe
//! counts, and what Kinescope writes is accepted by mkvmerge without errors or warnings and
//! decoded by ffprobe frame for frame; the fMP4 remuxed from real uploads and from ffmpeg's
//! H.265 and B-frame H.264 decodes frame for frame, in presentation order, without errors.
//! `scripts/install-test-deps` installs the tools.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use kinescope_media::mkv::{
    Event, Fragment, FragmentTags, Limits, MetadataTag, MkvReader, ProducerWriter, TrackHeader,
    TrackType, cluster_frames, getmedia_fragment,
};
use kinescope_media::mp4::{init_segment, media_segment};
use kinescope_media::remux::{TrackConfig, fragment_samples};

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (run scripts/install-test-deps)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn read(data: &Bytes) -> (Vec<TrackHeader>, Vec<Fragment>, Vec<Event>) {
    let mut r = MkvReader::new(Limits::default());
    for start in (0..data.len()).step_by(4096) {
        r.push(data.slice(start..(start + 4096).min(data.len())));
    }
    r.finish();
    let mut events = Vec::new();
    while let Some(e) = r.poll() {
        events.push(e.expect("valid MKV"));
    }
    let headers = events
        .iter()
        .filter_map(|e| e.track_header().cloned())
        .collect();
    let fragments = events
        .iter()
        .filter_map(|e| e.fragment().cloned())
        .collect();
    (headers, fragments, events)
}

/// ffprobe's packets and key packets per stream (by MKV track number = index + 1).
fn ffprobe_packets(path: &Path) -> (BTreeMap<u64, u32>, BTreeMap<u64, usize>) {
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(path));
    let mut counts = BTreeMap::new();
    let mut keys = BTreeMap::new();
    for line in String::from_utf8(out).unwrap().lines() {
        let mut parts = line.split(',');
        let index: u64 = parts.next().unwrap().parse().unwrap();
        *counts.entry(index + 1).or_insert(0) += 1;
        if parts.next().is_some_and(|f| f.starts_with('K')) {
            *keys.entry(index + 1).or_insert(0) += 1;
        }
    }
    (counts, keys)
}

fn check_against_ffprobe(path: &Path) -> Vec<Event> {
    let data = Bytes::from(std::fs::read(path).unwrap());
    let (headers, fragments, events) = read(&data);
    let mut frames = BTreeMap::new();
    for f in &fragments {
        for (t, n) in &f.frames {
            *frames.entry(*t).or_insert(0) += n;
        }
    }
    let (packets, keys) = ffprobe_packets(path);
    assert_eq!(frames, packets, "{path:?}");
    // Key frames of the video tracks (ffprobe calls every audio packet a key packet).
    for t in headers[0]
        .tracks
        .iter()
        .filter(|t| t.track_type == TrackType::Video)
    {
        let ours: usize = fragments
            .iter()
            .map(|f| f.key_frames.iter().filter(|k| k.track == t.number).count())
            .sum();
        assert_eq!(ours, keys[&t.number], "{path:?} track {}", t.number);
        // One cluster per GOP: every fragment starts with a video key frame.
        assert!(
            fragments
                .iter()
                .all(|f| f.key_frames.iter().any(|k| k.track == t.number)),
            "{path:?}"
        );
    }
    events
}

fn has_element(data: &[u8], id: &[u8]) -> bool {
    data.windows(id.len()).any(|w| w == id)
}

#[test]
fn ffmpeg_mkv_with_crc32_and_audio_before_key_frames() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ffmpeg.mkv");
    run(Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "3",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "30",
            "-keyint_min",
            "30",
            "-sc_threshold",
            "0",
            "-c:a",
            "aac",
            "-f",
            "matroska",
            "-live",
            "1",
            "-cluster_time_limit",
            "1100",
            "-cluster_size_limit",
            "50000000",
        ])
        .arg(&path));
    let data = std::fs::read(&path).unwrap();
    assert!(
        has_element(&data, &[0xBF, 0x84]),
        "ffmpeg writes CRC-32 in clusters"
    );
    let events = check_against_ffprobe(&path);
    assert!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Fragment(_)))
            .count()
            >= 3
    );
}

#[test]
fn gstreamer_streamable_mkv_video_and_audio() {
    let dir = tempfile::tempdir().unwrap();
    for (name, pipeline) in [
        (
            "v.mkv",
            "videotestsrc num-buffers=150 ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc key-int-max=30 tune=zerolatency option-string=scenecut=0 ! h264parse ! matroskamux streamable=true min-cluster-duration=0 ! filesink location=",
        ),
        (
            "av.mkv",
            "videotestsrc num-buffers=150 ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc key-int-max=30 tune=zerolatency option-string=scenecut=0 ! h264parse ! matroskamux name=mux streamable=true min-cluster-duration=0 ! filesink location=LOCATION audiotestsrc num-buffers=215 ! audio/x-raw,rate=44100,channels=2 ! audioconvert ! avenc_aac ! aacparse ! mux.",
        ),
    ] {
        let path = dir.path().join(name);
        let loc = path.to_str().unwrap();
        let pipeline = if pipeline.contains("LOCATION") {
            pipeline.replace("LOCATION", loc)
        } else {
            format!("{pipeline}{loc}")
        };
        run(Command::new("gst-launch-1.0")
            .arg("-q")
            .args(pipeline.split(' ')));
        let events = check_against_ffprobe(&path);
        // GStreamer writes Tags before the first Cluster: reported as tags, and kept in the
        // replayed header.
        assert!(matches!(events.first(), Some(Event::Tags { .. })), "{name}");
        let h = events.iter().find_map(Event::track_header).unwrap();
        assert!(h.segment_header.iter().map(|b| b.len()).sum::<usize>() > 0);
        assert_eq!(h.tracks.len(), if name == "av.mkv" { 2 } else { 1 });
    }
}

#[test]
fn writer_output_is_accepted_by_mkvmerge_and_ffprobe() {
    let data = Bytes::from(
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../testdata/mkv/producer-c-1.6.4_h264_aac_putmedia.mkv"),
        )
        .unwrap(),
    );
    let (headers, fragments, _) = read(&data);
    let header = &headers[0];
    let dir = tempfile::tempdir().unwrap();

    // Frame-level rewrite through the producer writer.
    let w = ProducerWriter::new(header.tracks.clone(), header.timecode_scale);
    let mut out = w.header().to_vec();
    let mut total = 0;
    for f in &fragments {
        let frames = cluster_frames(&f.bytes).unwrap();
        total += frames.len();
        for part in w.cluster(&frames) {
            out.extend_from_slice(&part);
        }
    }
    let rewritten = dir.path().join("rewritten.mkv");
    std::fs::write(&rewritten, &out).unwrap();

    // GetMedia framing of the same fragments, with producer metadata after each Cluster.
    let metadata = [MetadataTag {
        name: "TEST_KEY_1".into(),
        value: "TEST_VALUE_1".into(),
    }];
    let mut gm = Vec::new();
    for (i, f) in fragments.iter().enumerate() {
        let n = format!("{:047}", i + 1);
        let tags = FragmentTags {
            fragment_number: &n,
            server_timestamp_ms: 1_700_000_000_000,
            producer_timestamp_ms: 1_700_000_000_000,
            metadata: &metadata,
        };
        for part in getmedia_fragment(header, tags, &f.bytes, 0, &n) {
            gm.extend_from_slice(&part);
        }
    }
    let getmedia = dir.path().join("getmedia.mkv");
    std::fs::write(&getmedia, &gm).unwrap();

    for path in [&rewritten, &getmedia] {
        let json: serde_json::Value =
            serde_json::from_slice(&run(Command::new("mkvmerge").arg("-J").arg(path))).unwrap();
        assert_eq!(json["errors"], serde_json::json!([]), "{path:?}");
        assert_eq!(json["warnings"], serde_json::json!([]), "{path:?}");
        assert_eq!(json["container"]["recognized"], true);
        assert_eq!(json["tracks"].as_array().unwrap().len(), 2);
    }
    let (packets, _) = ffprobe_packets(&rewritten);
    assert_eq!(packets.values().sum::<u32>() as usize, total);
    let decoded = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&rewritten));
    let video_frames: usize = String::from_utf8(decoded).unwrap().trim().parse().unwrap();
    assert_eq!(
        video_frames as u32,
        fragments.iter().map(|f| f.frames[&1]).sum::<u32>()
    );
}

/// Each track of an MKV file as fMP4: the init segment and one media segment per fragment,
/// concatenated. Returns (track number, file, frames the MKV holds for it).
fn remux_tracks(data: &Bytes, dir: &Path) -> Vec<(u64, std::path::PathBuf, usize)> {
    let (headers, fragments, _) = read(data);
    let header = &headers[0];
    let configs: Vec<TrackConfig> = header
        .tracks
        .iter()
        .map(|t| TrackConfig::from_track(t).expect("supported track"))
        .collect();
    let scale = header.timecode_scale;
    let mut out = Vec::new();
    for config in &configs {
        let mut file = init_segment(&[config]).to_vec();
        let mut frames = 0;
        for (i, f) in fragments.iter().enumerate() {
            let start = f.timecode * scale;
            let end = start + f.duration * scale;
            let samples = fragment_samples(
                std::slice::from_ref(config),
                scale,
                &f.bytes,
                start,
                Some(end),
            )
            .unwrap();
            frames += samples[0].samples.len();
            for part in media_segment(i as u32 + 1, &[(config, &samples[0])]) {
                file.extend_from_slice(&part);
            }
        }
        let path = dir.join(format!("track{}.mp4", config.number));
        std::fs::write(&path, &file).unwrap();
        out.push((config.number, path, frames));
    }
    out
}

/// Frames ffprobe decodes in the first stream, and what ffmpeg reports decoding all of it.
fn decode_check(path: &Path) -> (usize, String) {
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "0",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(path));
    let frames = String::from_utf8(out).unwrap().trim().parse().unwrap();
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success(), "{path:?}");
    (frames, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn fmp4_of_real_uploads_decodes_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "producer-c-1.6.4_h264_putmedia.mkv",
        "producer-c-1.6.4_h264_aac_putmedia.mkv",
        "kvssink-3.6.0_h264_putmedia.mkv",
    ] {
        let data = Bytes::from(
            std::fs::read(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../testdata/mkv")
                    .join(name),
            )
            .unwrap(),
        );
        let (_, fragments, _) = read(&data);
        for (track, path, frames) in remux_tracks(&data, dir.path()) {
            let want: u32 = fragments
                .iter()
                .map(|f| f.frames.get(&track).copied().unwrap_or(0))
                .sum();
            assert_eq!(frames, want as usize, "{name} track {track}");
            let (decoded, errors) = decode_check(&path);
            assert_eq!(decoded, frames, "{name} track {track}");
            assert_eq!(errors, "", "{name} track {track}");
        }
    }
}

/// Frames ffprobe decodes, and their presentation times in output order.
fn decoded_pts(path: &Path) -> Vec<i64> {
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts",
            "-of",
            "csv=p=0",
        ])
        .arg(path));
    String::from_utf8(out)
        .unwrap()
        .lines()
        .filter_map(|l| l.split(',').next().filter(|pts| !pts.is_empty()))
        .map(|pts| pts.parse().unwrap())
        .collect()
}

#[test]
fn fmp4_with_video_and_audio_in_one_segment_decodes_both() {
    let data = Bytes::from(
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../testdata/mkv/producer-c-1.6.4_h264_aac_putmedia.mkv"),
        )
        .unwrap(),
    );
    let (headers, fragments, _) = read(&data);
    let header = &headers[0];
    let configs: Vec<TrackConfig> = header
        .tracks
        .iter()
        .map(|t| TrackConfig::from_track(t).unwrap())
        .collect();
    let scale = header.timecode_scale;
    let mut file = init_segment(&configs.iter().collect::<Vec<_>>()).to_vec();
    for (i, f) in fragments.iter().enumerate() {
        let start = f.timecode * scale;
        let samples = fragment_samples(
            &configs,
            scale,
            &f.bytes,
            start,
            Some(start + f.duration * scale),
        )
        .unwrap();
        let runs: Vec<_> = configs.iter().zip(&samples).collect();
        for part in media_segment(i as u32 + 1, &runs) {
            file.extend_from_slice(&part);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("av.mp4");
    std::fs::write(&path, &file).unwrap();
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=index,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&path));
    let decoded: BTreeMap<u64, u32> = String::from_utf8(out)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut fields = l.split(',');
            let index: u64 = fields.next().unwrap().parse().unwrap();
            (index + 1, fields.next().unwrap().trim().parse().unwrap())
        })
        .collect();
    let mut want = BTreeMap::new();
    for f in &fragments {
        for (t, n) in &f.frames {
            *want.entry(*t).or_insert(0) += n;
        }
    }
    assert_eq!(decoded, want);
    let (_, errors) = decode_check(&path);
    assert_eq!(errors, "");
}

#[test]
fn fmp4_of_h265_and_b_frame_h264_decodes_in_presentation_order() {
    let dir = tempfile::tempdir().unwrap();
    for (name, codec) in [
        (
            "hevc.mkv",
            &["-c:v", "libx265", "-x265-params", "log-level=error"][..],
        ),
        ("bframes.mkv", &["-c:v", "libx264", "-bf", "2"][..]),
    ] {
        let path = dir.path().join(name);
        run(Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
            .arg("testsrc=size=320x240:rate=25")
            .args(["-t", "2"])
            .args(codec)
            .args(["-g", "25", "-f", "matroska", "-cluster_time_limit", "900"])
            .arg(&path));
        let data = Bytes::from(std::fs::read(&path).unwrap());
        let (_, fragments, _) = read(&data);
        assert!(fragments.len() >= 2, "{name}");
        let tracks = remux_tracks(&data, dir.path());
        let [(track, mp4, frames)] = tracks.as_slice() else {
            panic!("{name}: one track expected");
        };
        assert_eq!(*frames, 50, "{name} track {track}");
        let (decoded, errors) = decode_check(mp4);
        assert_eq!(decoded, 50, "{name}");
        assert_eq!(errors, "", "{name}");
        let pts = decoded_pts(mp4);
        assert_eq!(pts.len(), 50, "{name}");
        assert!(pts.windows(2).all(|w| w[0] < w[1]), "{name}: {pts:?}");
    }
}
