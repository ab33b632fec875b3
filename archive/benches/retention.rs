//! Retention at scale (issue 12, BENCHMARKS.md "Lifecycle"): 100 streams hold 1,000,000
//! expired fragments (10,000 each, packed 60 to an object: 16,700 objects), while the same 100
//! streams ingest at 2 Mbit/s (a 250 KB fragment per stream per second through
//! `Archive::append`: the fragment log's group commit, then the catalog row — the point where
//! PutMedia ACKs PERSISTED). Ingest alone for 20 s before and 20 s after (the baseline), and
//! ingest while one retention pass deletes all 1,000,000 rows and their objects. Prints the deletion rate and
//! the p50/p99 ingest latency of each phase, and the ratio of the p99s (aim ≤ 1.2) — on SQLite,
//! then on PostgreSQL (a fresh database on $KINESCOPE_TEST_POSTGRES, default the machine's
//! postgres://postgres@127.0.0.1:5432/test, dropped afterwards).
//!   cargo bench -p kinescope-archive --bench retention
//!
//! The expired objects are small (their rows say 100,000 bytes each, the files hold a few):
//! 250 GB of real objects do not fit here. Deleting a file costs about the same either way on
//! ext4; deleting large objects on S3 costs the same request as small ones.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kinescope_api::Timestamp;
use kinescope_api::control::StorageTier;
use kinescope_archive::{
    Archive, Catalog, Durability, FragmentLog, LocalStore, NewFragment, PgCatalog, SqliteCatalog,
    StreamId,
};
use kinescope_media::mkv::TrackHeader;
use sqlx::Executor;
use tokio::sync::watch;

mod common;

const STREAMS: usize = 100;
const EXPIRED_PER_STREAM: i64 = 10_000;
const PER_OBJECT: i64 = 60;
const FRAGMENT_BYTES: usize = 250_000;
const BASELINE: Duration = Duration::from_secs(20);
const HOUR: i64 = 3_600_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn now() -> Timestamp {
    Timestamp::from_millis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
}

/// Creates the streams (retention 1 hour) and their headers: (stream, header id) each.
async fn streams(catalog: &dyn Catalog) -> Vec<(StreamId, i64)> {
    let mut out = Vec::new();
    for i in 0..STREAMS {
        let s = catalog
            .create_stream(
                &common::stream_info(&format!("cam-{i:03}"), 1),
                StorageTier::Hot,
                &Default::default(),
            )
            .await
            .unwrap();
        out.push((s.id, catalog.add_track_header(s.id, b"h").await.unwrap()));
    }
    out
}

/// Rows of expired fragments, one per second ending two hours ago, in packed objects (written
/// as plain files: the store's own writes would fsync 16,700 times before the bench starts):
/// one transaction's INSERT statements per stream.
fn seed(media: &std::path::Path, streams: &[(StreamId, i64)]) -> Vec<Vec<String>> {
    let t_end = now().as_millis() - 2 * HOUR;
    let mut number = 0i64;
    let mut out = Vec::new();
    for (stream, header) in streams {
        let mut tx = Vec::new();
        for first in (0..EXPIRED_PER_STREAM).step_by(PER_OBJECT as usize) {
            let last = (first + PER_OBJECT).min(EXPIRED_PER_STREAM) - 1;
            let key = format!("streams/{}/{first}-{last}", stream.0);
            let file = media.join(&key);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, b"expired").unwrap();
            let values: Vec<String> = (first..=last)
                .map(|i| {
                    number += 1;
                    let t = t_end - (EXPIRED_PER_STREAM - i) * 1000;
                    format!(
                        "('{number:020}', {}, {t}, {t}, 1000, 100000, '{key}', {}, 100000, {header})",
                        stream.0,
                        (i - first) * 100_000
                    )
                })
                .collect();
            tx.push(format!(
                "INSERT INTO fragments (fragment_number, stream_id, producer_ts_ms, server_ts_ms, \
                 duration_ms, size_bytes, object_key, object_offset, object_length, header_id) \
                 VALUES {}",
                values.join(",")
            ));
        }
        out.push(tx);
    }
    out
}

/// One stream's camera: a fragment every second (a random phase apart from the others), each
/// append's latency sent to `out` with when it started, until `stop`.
async fn camera(
    archive: Arc<Archive>,
    (stream, header_id): (StreamId, i64),
    phase: Duration,
    payload: Bytes,
    out: tokio::sync::mpsc::UnboundedSender<(Instant, Duration)>,
    mut stop: watch::Receiver<bool>,
) {
    let header = Arc::new(TrackHeader {
        version: 0,
        tracks: Vec::new(),
        timecode_scale: 1_000_000,
        ebml_header: Vec::new(),
        segment_header: Vec::new(),
    });
    tokio::time::sleep(phase).await;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let t = now();
        let started = Instant::now();
        archive
            .append(NewFragment {
                stream,
                number: archive.next_fragment_number(t),
                producer_timestamp: t,
                server_timestamp: t,
                duration_ms: 1000,
                header_id,
                header: header.clone(),
                metadata: Vec::new(),
                rest: vec![payload.clone()],
                live_bytes: None,
            })
            .await
            .unwrap();
        let _ = out.send((started, started.elapsed()));
    }
}

fn summary(what: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {what} | {} | {:.1} | {:.1} |",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99))
    );
    percentile(&samples, 0.99)
}

/// Ingest alone, then ingest beside a retention pass over the seeded rows, on `catalog`.
async fn measure(
    db: &str,
    dir: &std::path::Path,
    catalog: Arc<dyn Catalog>,
    streams: &[(StreamId, i64)],
) {
    let log = FragmentLog::open(dir.join("log")).unwrap().0;
    let store = Arc::new(LocalStore::open(dir.join("media")).unwrap());
    let archive = Arc::new(
        Archive::open(catalog, store, log, Durability::Log)
            .await
            .unwrap(),
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop) = watch::channel(false);
    let payload = Bytes::from(vec![0x42u8; FRAGMENT_BYTES]);
    let cameras: Vec<_> = streams
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let phase = Duration::from_millis((i as u64 * 1000) / STREAMS as u64);
            tokio::spawn(camera(
                archive.clone(),
                *s,
                phase,
                payload.clone(),
                tx.clone(),
                stop.clone(),
            ))
        })
        .collect();
    // Ingest settles for 2 s, then the baseline.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline_from = Instant::now();
    tokio::time::sleep(BASELINE).await;
    let deleting_from = Instant::now();
    let report = archive.enforce_retention(now()).await.unwrap();
    let deleting_for = deleting_from.elapsed();
    let deleted_at = Instant::now();
    tokio::time::sleep(BASELINE).await;
    stop_tx.send(true).unwrap();
    for c in cameras {
        c.await.unwrap();
    }
    drop(tx);
    let (mut alone, mut beside) = (Vec::new(), Vec::new());
    while let Some((started, took)) = rx.recv().await {
        if started >= deleting_from && started < deleting_from + deleting_for {
            beside.push(took);
        } else if (started >= baseline_from && started < deleting_from)
            || (started >= deleted_at && started < deleted_at + BASELINE)
        {
            alone.push(took);
        }
    }
    assert_eq!(report.fragments, STREAMS as u64 * EXPIRED_PER_STREAM as u64);
    println!(
        "{db}: retention deleted {} fragments and {} objects in {:.1} s: {:.0} fragments/s",
        report.fragments,
        report.objects,
        deleting_for.as_secs_f64(),
        report.fragments as f64 / deleting_for.as_secs_f64()
    );
    println!(
        "| {db}: {STREAMS} streams at 2 Mbit/s, Archive::append | fragments | p50 ms | p99 ms |"
    );
    println!("|---|---|---|---|");
    let base = summary("ingest alone (baseline)", alone);
    let with = summary("ingest while retention deletes", beside);
    println!(
        "{db}: ratio of p99 (with deletion / alone): {:.2} (aim ≤ 1.2)\n",
        with.as_secs_f64() / base.as_secs_f64()
    );
}

async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let catalog = Arc::new(SqliteCatalog::open(&path).await.unwrap());
    let streams = streams(catalog.as_ref()).await;
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&path))
        .await
        .unwrap();
    let load = Instant::now();
    common::load(&pool, seed(&dir.path().join("media"), &streams)).await;
    pool.close().await;
    println!("SQLite: seeded in {:.1} s", load.elapsed().as_secs_f64());
    measure("SQLite", dir.path(), catalog, &streams).await;
}

async fn postgres() {
    let db = common::ScratchPg::create().await;
    {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Arc::new(PgCatalog::open(&db.url).await.unwrap());
        let streams = streams(catalog.as_ref()).await;
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let load = Instant::now();
        common::load(&pool, seed(&dir.path().join("media"), &streams)).await;
        pool.execute("ANALYZE fragments").await.unwrap();
        pool.close().await;
        println!(
            "PostgreSQL: seeded in {:.1} s",
            load.elapsed().as_secs_f64()
        );
        measure("PostgreSQL", dir.path(), catalog, &streams).await;
    }
    db.remove().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        sqlite().await;
        postgres().await;
    });
}
