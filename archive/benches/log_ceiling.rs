//! The fragment log's durable-write rate next to the disk's (BENCHMARKS.md, issue 11): C
//! concurrent writers each append 256 KiB fragments to the [`FragmentLog`] and wait for each to
//! be durable (as uploads wait for PERSISTED), for a few seconds; then, in the same run, the
//! baseline: one thread appending the same fragments to a plain file with one `fdatasync` per
//! batch of the size the log's group commit reached (fragments per sync), the physical limit
//! of appending at that batch size — and at 16 per sync, the figure issue 11 quotes for this
//! machine kind. Prints fragments/s of each and the ratios, per concurrency.
//!   cargo bench -p kinescope-archive --bench log_ceiling

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kinescope_archive::FragmentLog;

const FRAGMENT: usize = 256 << 10;
const SECONDS: u64 = 5;

/// Fragments per second through the log with `writers` concurrent writers, and fragments per
/// sync.
async fn engine(writers: u64, payload: &Bytes) -> (f64, f64) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (log, _) = FragmentLog::open(dir.path()).unwrap();
    let log = Arc::new(log);
    let (done, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (log, done, stop, payload) =
                (log.clone(), done.clone(), stop.clone(), payload.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let mut r = log.record();
                    r.write(vec![payload.clone()]).await.unwrap();
                    log.append(r, w, n).await.unwrap();
                    n += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(SECONDS)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed) as f64;
    (n / elapsed, n / log.syncs().max(1) as f64)
}

/// Fragments per second appending to one file, one `fdatasync` per `batch` fragments.
fn plain(batch: usize, payload: &[u8]) -> f64 {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut f = std::fs::File::create(dir.path().join("plain")).unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(SECONDS) {
        for _ in 0..batch {
            f.write_all(payload).unwrap();
        }
        f.sync_data().unwrap();
        n += batch as u64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let payload = Bytes::from((0..FRAGMENT).map(|i| i as u8).collect::<Vec<u8>>());
    println!("{FRAGMENT}-byte fragments, {SECONDS} s per measurement");
    println!(
        "writers | log fragments/s | fragments per sync | plain loop at that batch | ratio | plain loop, 16 per sync | ratio"
    );
    for writers in [16, 64, 256] {
        let (fps, batch) = engine(writers, &payload).await;
        let batch_size = batch.round().max(1.0) as usize;
        let base = plain(batch_size, &payload);
        let base16 = plain(16, &payload);
        println!(
            "{writers:7} | {fps:15.0} | {batch:18.1} | {base:24.0} | {:5.2} | {base16:23.0} | {:.2}",
            fps / base,
            fps / base16
        );
    }
}
