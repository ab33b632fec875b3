//! `kinescope put` (issue 14): uploads an MKV file, or an MKV byte stream on stdin (any
//! GStreamer or ffmpeg pipeline), through `kinescope_devices`' re-fragmenter and resilient
//! uploader. The input is read on a thread of its own (files and pipes block); fragments cross
//! to the uploader through a bounded channel, so a slow server slows the reading, not memory.
//!
//! Timestamps: a file uploaded as fast as possible ends at the current time (its fragments'
//! producer timestamps are in the past, as a recording's are); with `--realtime`, and for
//! stdin, the first fragment is stamped with the time it is read and each one is sent once its
//! media has played.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kinescope_api::sigv4::Signer;
use kinescope_api::{StreamName, Timestamp};
use kinescope_archive::{Clock, SystemClock};
use kinescope_devices::{OutFragment, Refragmenter, UploadConfig, UploadStats, Uploader};
use tokio::sync::{mpsc, watch};

use crate::config::PutArgs;

const READ_CHUNK: usize = 256 << 10;

pub fn put(args: PutArgs) -> ExitCode {
    match run(args) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kinescope put: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: PutArgs) -> Result<String, String> {
    let stream = StreamName::parse(&args.stream).map_err(|e| format!("--stream: {e}"))?;
    let stdin = args.input.as_os_str() == "-";
    let now = || SystemClock.now();
    // A file sent as fast as possible ends now: its duration first (one parse of the file).
    let start = if stdin || args.realtime {
        now()
    } else {
        let duration = file_duration_ms(&args.input, args.fragment_ms)?;
        Timestamp::from_millis(now().as_millis() - duration - 1000)
    };
    let input: Box<dyn Read + Send> = if stdin {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(&args.input)
                .map_err(|e| format!("{}: {e}", args.input.display()))?,
        )
    };
    let config = UploadConfig {
        endpoint: args.endpoint,
        ca: args.ca,
        signer: Signer {
            access_key: args.access_key,
            secret: args.secret_key,
            region: args.region,
        },
        stream,
        create: args.create,
        buffer_bytes: args.buffer_mib << 20,
        give_up_after: Duration::from_secs(args.give_up_after),
        now: Arc::new(now),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let (stats, outcome, read) = runtime.block_on(async move {
        let uploader = Uploader::open(config).await.map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel(8);
        let reader = std::thread::spawn(move || {
            read_fragments(input, start, args.fragment_ms, args.realtime, &tx)
        });
        let (stats_tx, stats_rx) = watch::channel(UploadStats::default());
        let progress = tokio::spawn(progress(stats_rx));
        let outcome = uploader.run(rx, stats_tx).await;
        progress.abort();
        let read = reader
            .join()
            .unwrap_or_else(|_| Err("the input reader panicked".into()));
        let stats = match &outcome {
            Ok(s) => s.clone(),
            Err(_) => UploadStats::default(),
        };
        Ok::<_, String>((stats, outcome, read))
    })?;
    let read = read?;
    let stats = outcome.map_err(|e| e.to_string()).map(|_| stats)?;
    if stats.persisted != read.fragments {
        return Err(format!(
            "{} of {} fragments PERSISTED",
            stats.persisted, read.fragments
        ));
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(format!(
        "kinescope put: {} fragments PERSISTED ({} frames, {:.1} MB in {secs:.1} s, {:.1} MB/s); \
         {} reconnects, {} re-sent, {} found stored after a lost ACK",
        stats.persisted,
        read.frames,
        stats.bytes_persisted as f64 / 1e6,
        stats.bytes_persisted as f64 / 1e6 / secs.max(1e-3),
        stats.reconnects,
        stats.resent,
        stats.found_stored
    ))
}

/// What the input held.
struct InputRead {
    fragments: u64,
    frames: u64,
}

/// Reads the input to its end through the re-fragmenter into `tx`, paced with `realtime`.
fn read_fragments(
    mut input: Box<dyn Read + Send>,
    start: Timestamp,
    fragment_ms: u64,
    realtime: bool,
    tx: &mpsc::Sender<OutFragment>,
) -> Result<InputRead, String> {
    let mut refragmenter = Refragmenter::new(start, fragment_ms);
    let mut read = InputRead {
        fragments: 0,
        frames: 0,
    };
    let t0 = Instant::now();
    let forward = |f: OutFragment, read: &mut InputRead| -> Result<(), String> {
        if realtime {
            // Sent once its media has played: its end, from the start.
            let due = Duration::from_millis(
                (f.producer_ms + f.duration_ms as i64 - start.as_millis()).max(0) as u64,
            );
            if let Some(wait) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        read.fragments += 1;
        read.frames += f.frames as u64;
        tx.blocking_send(f)
            .map_err(|_| "the upload stopped".to_owned())
    };
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = input
            .read(&mut buf)
            .map_err(|e| format!("reading the input: {e}"))?;
        if n == 0 {
            refragmenter.finish();
        } else {
            refragmenter.push(Bytes::copy_from_slice(&buf[..n]));
        }
        while let Some(f) = refragmenter.poll() {
            forward(f.map_err(|e| e.to_string())?, &mut read)?;
        }
        if n == 0 {
            return Ok(read);
        }
    }
}

/// The media duration of an MKV file, in milliseconds, as it will be fragmented.
fn file_duration_ms(path: &std::path::Path, fragment_ms: u64) -> Result<i64, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut r = Refragmenter::new(Timestamp::from_millis(0), fragment_ms);
    r.push(Bytes::from(data));
    r.finish();
    let mut end = 0;
    while let Some(f) = r.poll() {
        let f = f.map_err(|e| format!("{}: {e}", path.display()))?;
        end = end.max(f.producer_ms + f.duration_ms as i64);
    }
    Ok(end)
}

/// Progress once a second on stderr: a line rewritten in place on a terminal, a log line
/// otherwise.
async fn progress(mut stats: watch::Receiver<UploadStats>) {
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let s = stats.borrow_and_update().clone();
        let line = format!(
            "{:>5.0} s  sent {}  PERSISTED {}  {:.1} MB  {:.1} MB/s  ACK {}  pending {}  reconnects {}",
            started.elapsed().as_secs_f64(),
            s.sent,
            s.persisted,
            s.bytes_persisted as f64 / 1e6,
            s.bytes_persisted as f64 / 1e6 / started.elapsed().as_secs_f64(),
            s.last_ack_latency
                .map_or("-".into(), |d| format!("{:.0} ms", d.as_secs_f64() * 1e3)),
            s.pending,
            s.reconnects
        );
        if terminal {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
    }
}
