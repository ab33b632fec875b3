//! ListFragments at scale (BENCHMARKS.md): one stream with 1,000,000 fragments (one every 2 s,
//! 23 days), then 1,000 queries for a random one-hour range (1,800 fragments, first page of
//! 1,000) through `Catalog::list_fragments`, next to the same SQL run directly on a second sqlx
//! pool (the baseline: the database alone). Prints p50/p99 of each and the ratio — on SQLite,
//! then on PostgreSQL (a fresh database on $KINESCOPE_TEST_POSTGRES, default the machine's
//! postgres://postgres@127.0.0.1:5432/test, dropped afterwards).
//!   cargo bench -p kinescope-archive --bench list_fragments

use std::future::Future;
use std::time::{Duration, Instant};

use kinescope_api::Timestamp;
use kinescope_api::control::StorageTier;
use kinescope_archive::{Catalog, PgCatalog, SqliteCatalog, StreamId, TimestampKind};
use sqlx::{Executor, Row};

mod common;

const FRAGMENTS: i64 = 1_000_000;
const STEP_MS: i64 = 2_000;
const T0: i64 = 1_700_000_000_000;
const QUERIES: usize = 1_000;
const RAW_SQL: &str = "SELECT fragment_number, producer_ts_ms, server_ts_ms, duration_ms, size_bytes, \
     object_key, object_offset, object_length, header_id FROM fragments WHERE stream_id = $1 AND \
     producer_ts_ms BETWEEN $2 AND $3 ORDER BY producer_ts_ms, fragment_number LIMIT 1001";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Creates the stream and its header; (stream, header id).
async fn stream(catalog: &dyn Catalog) -> (StreamId, i64) {
    let stream = catalog
        .create_stream(
            &common::stream_info("bench", 1),
            StorageTier::Hot,
            &Default::default(),
        )
        .await
        .unwrap();
    let header = catalog.add_track_header(stream.id, b"h").await.unwrap();
    (stream.id, header)
}

/// The bulk load: 500-row INSERT statements, run 20 per transaction by `run`.
fn insert_statements(stream: StreamId, header: i64) -> Vec<Vec<String>> {
    let mut batches = Vec::new();
    let mut n = 0;
    while n < FRAGMENTS {
        let mut tx = Vec::new();
        for _ in 0..20 {
            if n >= FRAGMENTS {
                break;
            }
            let rows = 500.min(FRAGMENTS - n);
            let values: Vec<String> = (n..n + rows)
                .map(|i| {
                    let t = T0 + i * STEP_MS;
                    format!(
                        "('{:020}', {}, {t}, {}, 2000, 100000, 'k/{i}', 0, 100000, {header})",
                        i + 1,
                        stream.0,
                        t + 150
                    )
                })
                .collect();
            tx.push(format!(
                "INSERT INTO fragments (fragment_number, stream_id, producer_ts_ms, server_ts_ms, duration_ms, \
                 size_bytes, object_key, object_offset, object_length, header_id) VALUES {}",
                values.join(",")
            ));
            n += rows;
        }
        batches.push(tx);
    }
    batches
}

/// Random hour windows, the same for every database.
fn windows() -> Vec<i64> {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    (0..QUERIES)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            T0 + (seed % ((FRAGMENTS * STEP_MS - 3_600_000) as u64)) as i64
        })
        .collect()
}

/// Sorted latencies of `query` over the windows; each must return a full page.
async fn measure<F: Future<Output = usize>>(query: impl Fn(i64) -> F) -> Vec<Duration> {
    let mut out = Vec::with_capacity(QUERIES);
    for start in windows() {
        let t = Instant::now();
        assert_eq!(query(start).await, 1001);
        out.push(t.elapsed());
    }
    out.sort();
    out
}

async fn through_catalog(catalog: &dyn Catalog, stream: StreamId) -> Vec<Duration> {
    measure(|start| async move {
        catalog
            .list_fragments(
                stream,
                TimestampKind::Producer,
                Timestamp::from_millis(start),
                Timestamp::from_millis(start + 3_600_000),
                None,
                1001,
            )
            .await
            .unwrap()
            .len()
    })
    .await
}

fn report(db: &str, raw: &[Duration], ours: &[Duration]) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {db}: one-hour ListFragments page (1,000 of 1,800) over 1,000,000 fragments | p50 ms | p99 ms |"
    );
    println!("|---|---|---|");
    println!(
        "| SQL on a plain sqlx pool (baseline) | {:.2} | {:.2} |",
        ms(percentile(raw, 0.5)),
        ms(percentile(raw, 0.99))
    );
    println!(
        "| Catalog::list_fragments | {:.2} | {:.2} |",
        ms(percentile(ours, 0.5)),
        ms(percentile(ours, 0.99))
    );
    println!(
        "{db}: ratio of p99 (catalog / baseline): {:.2}\n",
        ms(percentile(ours, 0.99)) / ms(percentile(raw, 0.99))
    );
}

async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let catalog = SqliteCatalog::open(&path).await.unwrap();
    let (stream, header) = stream(&catalog).await;
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&path))
        .await
        .unwrap();
    let load = Instant::now();
    common::load(&pool, insert_statements(stream, header)).await;
    println!(
        "SQLite: loaded {FRAGMENTS} fragments in {:.1} s",
        load.elapsed().as_secs_f64()
    );
    let ours = through_catalog(&catalog, stream).await;
    let raw = measure(|start| {
        let pool = &pool;
        async move {
            let rows = sqlx::query(RAW_SQL)
                .bind(stream.0)
                .bind(start)
                .bind(start + 3_600_000)
                .fetch_all(pool)
                .await
                .unwrap();
            let _: String = rows[0].get(0);
            rows.len()
        }
    })
    .await;
    report("SQLite", &raw, &ours);
}

async fn postgres() {
    let db = common::ScratchPg::create().await;
    {
        let catalog = PgCatalog::open(&db.url).await.unwrap();
        let (stream, header) = stream(&catalog).await;
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let load = Instant::now();
        common::load(&pool, insert_statements(stream, header)).await;
        pool.execute("ANALYZE fragments").await.unwrap();
        println!(
            "PostgreSQL: loaded {FRAGMENTS} fragments in {:.1} s",
            load.elapsed().as_secs_f64()
        );
        let ours = through_catalog(&catalog, stream).await;
        let raw = measure(|start| {
            let pool = &pool;
            async move {
                let rows = sqlx::query(RAW_SQL)
                    .bind(stream.0)
                    .bind(start)
                    .bind(start + 3_600_000)
                    .fetch_all(pool)
                    .await
                    .unwrap();
                let _: String = rows[0].get(0);
                rows.len()
            }
        })
        .await;
        report("PostgreSQL", &raw, &ours);
        pool.close().await;
    }
    db.remove().await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    sqlite().await;
    postgres().await;
}
