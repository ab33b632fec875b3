//! `kinescope put` (issue 14): uploads an MKV file, or an MKV byte stream on stdin (any
//! GStreamer or ffmpeg pipeline), or an H.264/H.265 elementary stream, through `kinescope_devices`' re-fragmenter and resilient
//! uploader. The input is read on a thread of its own (files and pipes block); fragments cross
//! to the uploader through a bounded channel, so a slow server slows the reading, not memory.
//!
//! Timestamps: a file uploaded as fast as possible ends before the current time (its
//! fragments' producer timestamps are in the past, as a recording's are: within 30 s of now
//! when the file's two ends show its length, else now, after one pass to measure it); with
//! `--realtime`, and for stdin, the first fragment is stamped with the time it is read and each
//! one is sent once its media has played.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use indicatif::{ProgressBar, ProgressStyle};
use kinescope_api::sigv4::Signer;
use kinescope_api::{StreamName, Timestamp};
use kinescope_archive::{Clock, SystemClock};
use kinescope_devices::{
    AnnexB, Codec, Elementary, OnPersisted, OutFragment, PersistedFragment, Refragmenter, Spool,
    UploadConfig, UploadStats, Uploader, cluster_span_ms,
};
use kinescope_media::mkv::MetadataTag;
use tokio::sync::{mpsc, watch};

use crate::config::{InputFormat, PutArgs};

const READ_CHUNK: usize = 1 << 20;

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
    let metadata = parse_tags(&args.tags)?;
    let format = match (args.format, args.fps) {
        (InputFormat::Mkv, _) => Format::Mkv,
        (_, None) => return Err("--format h264 and h265 need --fps".into()),
        (_, Some(fps)) if !(fps > 0.0 && fps <= 1000.0) => {
            return Err(format!("--fps {fps}: must be above 0 and at most 1000"));
        }
        (InputFormat::H264, Some(fps)) => Format::Elementary(Codec::H264, fps),
        (InputFormat::H265, Some(fps)) => Format::Elementary(Codec::H265, fps),
    };
    let now = || SystemClock.now();
    // A file sent as fast as possible ends before now: its length first (`file_duration_ms`).
    let start = if stdin || args.realtime {
        now()
    } else {
        let duration = file_duration_ms(&args.input, format, args.fragment_ms)?;
        Timestamp::from_millis(now().as_millis() - duration - 1000)
    };
    // The bar's end: the file's size (its fragments hold nearly all of it).
    let total = (!stdin)
        .then(|| std::fs::metadata(&args.input).ok().map(|m| m.len()))
        .flatten();
    let input: Box<dyn Read + Send> = if stdin {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(&args.input)
                .map_err(|e| format!("{}: {e}", args.input.display()))?,
        )
    };
    let spool = match &args.buffer_dir {
        Some(dir) => {
            let dir = dir.join(stream.as_str());
            let (spool, waiting) = Spool::open(&dir, args.buffer_dir_mib << 20)
                .map_err(|e| format!("--buffer-dir {}: {e}", dir.display()))?;
            Some((Arc::new(spool), waiting))
        }
        None => None,
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
        on_persisted: spool.as_ref().map(|(spool, _)| {
            let spool = spool.clone();
            Arc::new(move |f: &PersistedFragment| {
                if let Err(e) = spool.remove(f.producer_ms) {
                    tracing::warn!(error = %e, "deleting a PERSISTED fragment from the disk buffer");
                }
            }) as OnPersisted
        }),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let (tx, rx) = mpsc::channel(8);
    let refragmenter = Refragmenter::new(start, args.fragment_ms).with_metadata(metadata);
    let realtime = args.realtime.then_some(start);
    // Reading starts at once: with a disk buffer, a live source is recorded while the server
    // is still unreachable.
    let (fed, reader) = match spool {
        None => {
            let reader = std::thread::spawn(move || {
                read_fragments(input, format, refragmenter, realtime, |f| {
                    tx.blocking_send(f)
                        .map_err(|_| "the upload stopped".to_owned())
                })
            });
            (None, reader)
        }
        Some((spool, waiting)) => {
            let (names, queue) = std::sync::mpsc::channel();
            for ms in waiting {
                names.send(ms).expect("the queue is here");
            }
            let fed = {
                let spool = spool.clone();
                std::thread::spawn(move || feed(&spool, &queue, &tx))
            };
            let reader = std::thread::spawn(move || {
                read_fragments(input, format, refragmenter, realtime, |f| {
                    let stored = spool.store(&f).map_err(|e| format!("--buffer-dir: {e}"))?;
                    if stored.dropped > 0 {
                        tracing::warn!(
                            fragments = stored.dropped,
                            "disk buffer full: the oldest fragments dropped"
                        );
                    }
                    names
                        .send(f.producer_ms)
                        .map_err(|_| "the upload stopped".to_owned())
                })
            });
            (Some(fed), reader)
        }
    };
    let outcome = runtime.block_on(async move {
        let uploader = Uploader::open(config).await?;
        let (stats_tx, stats_rx) = watch::channel(UploadStats::default());
        let progress = tokio::spawn(progress(stats_rx, total));
        let outcome = uploader.run(rx, stats_tx).await;
        progress.abort();
        outcome
    });
    // A failed upload is reported as it is (the reader may be blocked on a live input).
    let stats = outcome.map_err(|e| e.to_string())?;
    let read = reader
        .join()
        .unwrap_or_else(|_| Err("the input reader panicked".into()))?;
    let (fed, lost) = match fed {
        Some(fed) => fed
            .join()
            .map_err(|_| "the disk buffer reader panicked")??,
        None => (read.fragments, 0),
    };
    if lost > 0 || stats.persisted != fed {
        return Err(format!(
            "{} of {} fragments PERSISTED; {lost} dropped from the full disk buffer",
            stats.persisted,
            fed + lost
        ));
    }
    let secs = started.elapsed().as_secs_f64();
    let causes = if stats.retries_by_cause.is_empty() {
        String::new()
    } else {
        let each: Vec<String> = stats
            .retries_by_cause
            .iter()
            .map(|(cause, n)| format!("{cause} {n}"))
            .collect();
        format!(" ({})", each.join(", "))
    };
    Ok(format!(
        "kinescope put: {} fragments PERSISTED ({} read now, {} from the disk buffer; {} frames \
         read, {:.1} MB in {secs:.1} s, {:.1} MB/s); {} reconnects{causes}, {} re-sent, {} found \
         stored after a lost ACK",
        stats.persisted,
        read.fragments,
        fed - read.fragments,
        read.frames,
        stats.bytes_persisted as f64 / 1e6,
        stats.bytes_persisted as f64 / 1e6 / secs.max(1e-3),
        stats.reconnects,
        stats.resent,
        stats.found_stored
    ))
}

/// `--tag NAME=VALUE`s as fragment metadata, within KVS's limits (spec §3.4: at most 10 a
/// fragment, names up to 128 bytes, values up to 256; names starting `AWS_` are the service's).
fn parse_tags(tags: &[String]) -> Result<Vec<MetadataTag>, String> {
    if tags.len() > 10 {
        return Err(format!("--tag: {} given, at most 10", tags.len()));
    }
    tags.iter()
        .map(|t| {
            let (name, value) = t
                .split_once('=')
                .ok_or_else(|| format!("--tag {t:?}: expected NAME=VALUE"))?;
            if name.is_empty() || name.len() > 128 || value.len() > 256 {
                return Err(format!(
                    "--tag {t:?}: the name must be 1 to 128 bytes and the value at most 256"
                ));
            }
            if name.starts_with("AWS_") {
                return Err(format!(
                    "--tag {t:?}: names starting AWS_ are the service's"
                ));
            }
            Ok(MetadataTag {
                name: name.to_owned(),
                value: value.to_owned(),
            })
        })
        .collect()
}

/// What the input is.
#[derive(Debug, Clone, Copy)]
enum Format {
    Mkv,
    /// An Annex-B elementary stream at so many frames per second.
    Elementary(Codec, f64),
}

/// What the input held.
struct InputRead {
    fragments: u64,
    frames: u64,
}

/// Reads the input to its end through `refragmenter`, each fragment to `forward`; with
/// `realtime` (the first fragment's producer timestamp), each once its media has played.
fn read_fragments(
    mut input: Box<dyn Read + Send>,
    format: Format,
    mut refragmenter: Refragmenter,
    realtime: Option<Timestamp>,
    mut forward: impl FnMut(OutFragment) -> Result<(), String>,
) -> Result<InputRead, String> {
    let mut elementary = match format {
        Format::Mkv => None,
        Format::Elementary(codec, fps) => Some(AnnexB::new(codec, fps)),
    };
    let mut read = InputRead {
        fragments: 0,
        frames: 0,
    };
    let t0 = Instant::now();
    loop {
        // A fresh buffer each time, handed on without a copy (the frames are slices of it).
        let mut buf = BytesMut::zeroed(READ_CHUNK);
        let n = input
            .read(&mut buf)
            .map_err(|e| format!("reading the input: {e}"))?;
        match &mut elementary {
            None if n == 0 => refragmenter.finish(),
            None => {
                buf.truncate(n);
                refragmenter.push(buf.freeze());
            }
            Some(es) => {
                if n == 0 {
                    es.finish();
                } else {
                    es.push(&buf[..n]);
                }
                while let Some(out) = es.poll() {
                    match out.map_err(|e| e.to_string())? {
                        Elementary::Track(t) => refragmenter.set_tracks(vec![t], 1_000_000),
                        Elementary::Frame(f) => {
                            refragmenter.push_frame(f).map_err(|e| e.to_string())?
                        }
                    }
                }
                if n == 0 {
                    refragmenter.finish_frames();
                }
            }
        }
        while let Some(f) = refragmenter.poll() {
            let f = f.map_err(|e| e.to_string())?;
            if let Some(start) = realtime {
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
            forward(f)?;
        }
        if n == 0 {
            return Ok(read);
        }
    }
}

/// Hands the disk buffer's fragments to the uploader in order (those of an earlier run first,
/// as fast as it takes them); (fragments handed over, fragments dropped before their turn).
fn feed(
    spool: &Spool,
    queue: &std::sync::mpsc::Receiver<i64>,
    tx: &mpsc::Sender<OutFragment>,
) -> Result<(u64, u64), String> {
    let (mut fed, mut lost) = (0, 0);
    while let Ok(ms) = queue.recv() {
        match spool.load(ms).map_err(|e| format!("--buffer-dir: {e}"))? {
            Some(f) => {
                tx.blocking_send(f)
                    .map_err(|_| "the upload stopped".to_owned())?;
                fed += 1;
            }
            None => lost += 1,
        }
    }
    Ok((fed, lost))
}

/// How long before now an MKV file's media must start for all of it to lie in the past, in
/// milliseconds: from its first and last few MiB when they show it (the span of its clusters,
/// plus 30 s for the last one), else one pass over the file, a chunk at a time.
fn file_duration_ms(
    path: &std::path::Path,
    format: Format,
    fragment_ms: u64,
) -> Result<i64, String> {
    use std::io::{Seek, SeekFrom};
    let failed = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = std::fs::File::open(path).map_err(failed)?;
    let len = file.metadata().map_err(failed)?.len();
    let mut head = Vec::new();
    (&mut file)
        .take(4 << 20)
        .read_to_end(&mut head)
        .map_err(failed)?;
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(len.saturating_sub(16 << 20)))
        .map_err(failed)?;
    file.read_to_end(&mut tail).map_err(failed)?;
    if let (Format::Mkv, Some(span)) = (format, cluster_span_ms(&head, &tail)) {
        return Ok(span + 30_000);
    }
    file.seek(SeekFrom::Start(0)).map_err(failed)?;
    let mut end = 0;
    read_fragments(
        Box::new(file),
        format,
        Refragmenter::new(Timestamp::from_millis(0), fragment_ms),
        None,
        |f| {
            end = end.max(f.producer_ms + f.duration_ms as i64);
            Ok(())
        },
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(end)
}

/// Progress on stderr: on a terminal a progress bar (bytes PERSISTED of the file's size, or a
/// spinner for stdin) with fragments sent and PERSISTED, the rate and the latest ACK latency,
/// redrawn as ACKs come; otherwise one log line a second. The bar is cleared when `stats`
/// closes or the task is aborted.
async fn progress(mut stats: watch::Receiver<UploadStats>, total: Option<u64>) {
    let started = Instant::now();
    let describe = |s: &UploadStats| {
        format!(
            "sent {}  PERSISTED {}  ACK {}  pending {}  reconnects {}",
            s.sent,
            s.persisted,
            s.last_ack_latency
                .map_or("-".into(), |d| format!("{:.0} ms", d.as_secs_f64() * 1e3)),
            s.pending,
            s.reconnects
        )
    };
    if std::io::stderr().is_terminal() {
        let bar = match total {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template(
                    "{elapsed:>4} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}  {msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template(
                    "{elapsed:>4} {spinner} {bytes} {bytes_per_sec}  {msg}",
                )
                .expect("a valid template"),
            ),
        };
        bar.enable_steady_tick(Duration::from_millis(200));
        let _clear = ClearOnDrop(bar.clone());
        while stats.changed().await.is_ok() {
            let s = stats.borrow_and_update().clone();
            bar.set_position(s.bytes_persisted);
            bar.set_message(describe(&s));
        }
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let s = stats.borrow_and_update().clone();
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{secs:>5.0} s  {:.1} MB  {:.1} MB/s  {}",
            s.bytes_persisted as f64 / 1e6,
            s.bytes_persisted as f64 / 1e6 / secs,
            describe(&s)
        );
    }
}

/// Clears a progress bar when its task ends, so the summary line starts clean.
struct ClearOnDrop(ProgressBar);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
