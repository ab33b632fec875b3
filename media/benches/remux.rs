//! fMP4 remuxing throughput vs `ffmpeg -c copy` (BENCHMARKS.md, issue 10).
//!
//! Setup: ffmpeg makes a 120 s 1080p30 H.264 MKV (8 Mbit/s, a key frame every 2 s, one
//! Cluster per GOP: 60 stored fragments of ~2 MB) in /dev/shm, and each Cluster is also written
//! to its own file there, as the store keeps fragments. Then, per round, in the same process:
//!
//! - **ffmpeg**: `ffmpeg -i in.mkv -c copy -f hls -hls_segment_type fmp4 -hls_time 2` writing the
//!   init segment, 60 media segments and the playlist to /dev/shm: one process per round (start,
//!   probe, demux, mux, file writes, all timed end to end). Its start-up alone (the same command
//!   stopped after the probe, `-t 0 -f null`) is timed too and shown separately.
//! - **file → files**: the same job done by Kinescope's code: read in.mkv, `MkvReader` over it,
//!   per fragment `fragment_samples` + `media_segment`, each segment written to its own file
//!   (plus the init segment). The like-for-like comparison.
//! - **server path**: what a `getMP4MediaFragment.mp4` request does besides HTTP, the token and
//!   the catalog lookup: read the stored fragment file, `fragment_samples`, `media_segment`
//!   (the segment's parts are sent as they are, so nothing is written).
//! - **remux only**: `fragment_samples` + `media_segment` on fragments already in memory.
//!
//! Segments/s and MB/s of segment output; ratios are to ffmpeg in the same round.
//!   cargo bench -p kinescope-media --bench remux
//!   (REMUX_ROUNDS=5 REMUX_SECONDS=120 REMUX_BITRATE=8M are the defaults)

use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kinescope_media::mkv::{Event, Fragment, Limits, MkvReader, TrackHeader};
use kinescope_media::mp4::{init_segment, media_segment};
use kinescope_media::remux::{TrackConfig, fragment_samples};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ffmpeg(args: &[&str], dir: &Path) {
    let out = Command::new("ffmpeg")
        .current_dir(dir)
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg (run scripts/install-test-deps)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn parse(data: Bytes) -> (TrackHeader, Vec<Fragment>) {
    let mut reader = MkvReader::new(Limits::default());
    reader.push(data);
    reader.finish();
    let (mut header, mut fragments) = (None, Vec::new());
    while let Some(e) = reader.poll() {
        match e.expect("valid MKV") {
            Event::TrackHeader(h) if header.is_none() => header = Some(h),
            Event::Fragment(f) => fragments.push(f),
            _ => {}
        }
    }
    (header.expect("track header"), fragments)
}

fn configs(header: &TrackHeader) -> Vec<TrackConfig> {
    header
        .tracks
        .iter()
        .map(|t| TrackConfig::from_track(t).expect("H.264"))
        .collect()
}

/// One fragment as a media segment, as the player builds it; returns its parts.
fn segment(configs: &[TrackConfig], scale: u64, n: u32, f: &Fragment) -> Vec<Bytes> {
    segment_of(configs, scale, n, &f.bytes, f.timecode, f.duration)
}

fn segment_of(
    configs: &[TrackConfig],
    scale: u64,
    n: u32,
    cluster: &[Bytes],
    timecode: u64,
    duration: u64,
) -> Vec<Bytes> {
    let start = timecode * scale;
    let samples = fragment_samples(
        configs,
        scale,
        cluster,
        start,
        Some(start + duration * scale),
    )
    .expect("remuxable");
    let runs: Vec<_> = configs.iter().zip(&samples).collect();
    media_segment(n, &runs)
}

fn clear(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("output dir");
}

fn dir_bytes(dir: &Path, ext: &str) -> (usize, u64) {
    let mut n = 0;
    let mut bytes = 0;
    for e in std::fs::read_dir(dir).expect("dir") {
        let e = e.expect("entry");
        if e.path().extension().is_some_and(|x| x == ext) {
            n += 1;
            bytes += e.metadata().expect("metadata").len();
        }
    }
    (n, bytes)
}

/// Kinescope, MKV file in, segment files out: returns (time, segments, output bytes); adds
/// the time spent reading the input and creating and writing the output files to `io`.
fn file_to_files(input: &Path, out: &Path, io: &mut Duration) -> (Duration, usize, u64) {
    clear(out);
    let t = Instant::now();
    let data = Bytes::from(std::fs::read(input).expect("in.mkv"));
    *io += t.elapsed();
    let (header, fragments) = parse(data);
    let configs = configs(&header);
    let scale = header.timecode_scale;
    let init = init_segment(&configs.iter().collect::<Vec<_>>());
    std::fs::write(out.join("init.mp4"), &init).expect("write init");
    let mut bytes = init.len() as u64;
    for (i, f) in fragments.iter().enumerate() {
        let parts = segment(&configs, scale, i as u32 + 1, f);
        let w = Instant::now();
        let mut file =
            std::fs::File::create(out.join(format!("seg_{i:03}.m4s"))).expect("create segment");
        for p in &parts {
            file.write_all(p).expect("write segment");
            bytes += p.len() as u64;
        }
        drop(file);
        *io += w.elapsed();
    }
    (t.elapsed(), fragments.len(), bytes)
}

/// Best of a few runs of `f` would flatter us; instead the sum of `runs` runs.
fn repeat(runs: usize, mut f: impl FnMut() -> (Duration, usize, u64)) -> (Duration, usize, u64) {
    let mut total = (Duration::ZERO, 0, 0);
    for _ in 0..runs {
        let (d, n, b) = f();
        total.0 += d;
        total.1 += n;
        total.2 += b;
    }
    total
}

struct Rate {
    per_s: f64,
    mb_s: f64,
}

fn rate((d, n, b): (Duration, usize, u64)) -> Rate {
    let s = d.as_secs_f64();
    Rate {
        per_s: n as f64 / s,
        mb_s: b as f64 / s / 1e6,
    }
}

fn main() {
    let rounds: usize = env_or("REMUX_ROUNDS", 5);
    let seconds: u32 = env_or("REMUX_SECONDS", 120);
    let bitrate: String = env_or("REMUX_BITRATE", "8M".to_owned());
    let shm = PathBuf::from("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(&shm)
    } else {
        tempfile::tempdir()
    }
    .expect("temp dir");
    let dir = dir.path();
    let t = seconds.to_string();
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=30",
            "-t",
            &t,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            &bitrate,
            "-g",
            "60",
            "-keyint_min",
            "60",
            "-sc_threshold",
            "0",
            "-f",
            "matroska",
            "-cluster_time_limit",
            "2100",
            "-cluster_size_limit",
            "50000000",
            "in.mkv",
        ],
        dir,
    );
    let input = dir.join("in.mkv");
    let data = Bytes::from(std::fs::read(&input).expect("in.mkv"));
    let (header, fragments) = parse(data.clone());
    let configs = configs(&header);
    let scale = header.timecode_scale;
    let segments = fragments.len();

    // The store: one file per fragment, each holding the Cluster's bytes.
    let store = dir.join("store");
    std::fs::create_dir_all(&store).expect("store dir");
    let stored: Vec<(PathBuf, u64, u64)> = fragments
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let path = store.join(format!("{i:03}.mkv"));
            std::fs::write(&path, f.bytes.concat()).expect("store fragment");
            (path, f.timecode, f.duration)
        })
        .collect();
    let server_path = || {
        let t = Instant::now();
        let mut bytes = 0u64;
        for (i, (path, timecode, duration)) in stored.iter().enumerate() {
            let cluster = Bytes::from(std::fs::read(path).expect("stored fragment"));
            let parts = segment_of(
                &configs,
                scale,
                i as u32 + 1,
                &[cluster],
                *timecode,
                *duration,
            );
            bytes += black_box(parts).iter().map(|p| p.len() as u64).sum::<u64>();
        }
        (t.elapsed(), stored.len(), bytes)
    };
    let remux_only = || {
        let t = Instant::now();
        let mut bytes = 0u64;
        for (i, f) in fragments.iter().enumerate() {
            let parts = segment(&configs, scale, i as u32 + 1, f);
            bytes += black_box(parts).iter().map(|p| p.len() as u64).sum::<u64>();
        }
        (t.elapsed(), fragments.len(), bytes)
    };

    let ff_out = dir.join("ffmpeg");
    let ff_args = [
        "-i",
        "../in.mkv",
        "-c",
        "copy",
        "-f",
        "hls",
        "-hls_time",
        "2",
        "-hls_segment_type",
        "fmp4",
        "-hls_playlist_type",
        "vod",
        "-hls_fmp4_init_filename",
        "init.mp4",
        "-hls_segment_filename",
        "seg_%03d.m4s",
        "out.m3u8",
    ];
    let ffmpeg_run = || {
        clear(&ff_out);
        let t = Instant::now();
        ffmpeg(&ff_args, &ff_out);
        let d = t.elapsed();
        let (n, b) = dir_bytes(&ff_out, "m4s");
        let init = std::fs::metadata(ff_out.join("init.mp4")).map_or(0, |m| m.len());
        (d, n, b + init)
    };
    let ffmpeg_start = || {
        let t = Instant::now();
        ffmpeg(
            &["-i", "in.mkv", "-t", "0", "-c", "copy", "-f", "null", "-"],
            dir,
        );
        t.elapsed()
    };
    let ours_out = dir.join("ours");

    // Warm up both (page cache, ffmpeg's libraries) and check that they agree on the output.
    let (_, ff_n, ff_b) = ffmpeg_run();
    let mut warm_io = Duration::ZERO;
    let (_, our_n, our_b) = file_to_files(&input, &ours_out, &mut warm_io);
    eprintln!(
        "input: {} s, {:.1} MB MKV, {segments} stored fragments (largest {:.2} MB); \
         ffmpeg writes {ff_n} segments ({:.1} MB with init), Kinescope {our_n} ({:.1} MB)",
        seconds,
        data.len() as f64 / 1e6,
        fragments.iter().map(Fragment::size).max().unwrap_or(0) as f64 / 1e6,
        ff_b as f64 / 1e6,
        our_b as f64 / 1e6,
    );

    println!(
        "| round | ffmpeg -c copy seg/s (MB/s) | ffmpeg start+probe | file → files seg/s (MB/s) | of which file read + writes | ratio | ratio, ffmpeg's start excluded | server path seg/s (MB/s) | ratio | remux only seg/s (MB/s) | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for round in 1..=rounds {
        // ffmpeg runs about a tenth of a second per pass; ours far less: repeat ours to
        // measure over a comparable span.
        let ff_total = repeat(3, ffmpeg_run);
        let ff = rate(ff_total);
        let start = (0..3).map(|_| ffmpeg_start()).min().unwrap_or_default();
        let ff_steady = rate((ff_total.0.saturating_sub(start * 3), ff_total.1, ff_total.2));
        let mut io = Duration::ZERO;
        let files_total = repeat(10, || file_to_files(&input, &ours_out, &mut io));
        let files = rate(files_total);
        let server = rate(repeat(20, server_path));
        let remux = rate(repeat(50, remux_only));
        println!(
            "| {round} | {:.0} ({:.0}) | {:.0} ms | {:.0} ({:.0}) | {:.0} % | {:.1} | {:.1} | {:.0} ({:.0}) | {:.1} | {:.0} ({:.0}) | {:.1} |",
            ff.per_s,
            ff.mb_s,
            start.as_secs_f64() * 1e3,
            files.per_s,
            files.mb_s,
            100.0 * io.as_secs_f64() / files_total.0.as_secs_f64(),
            files.per_s / ff.per_s,
            files.per_s / ff_steady.per_s,
            server.per_s,
            server.mb_s,
            server.per_s / ff.per_s,
            remux.per_s,
            remux.mb_s,
            remux.per_s / ff.per_s,
        );
    }
}
