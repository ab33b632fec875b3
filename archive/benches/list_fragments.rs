//! ListFragments at scale (BENCHMARKS.md): one stream with 1,000,000 fragments (one every 2 s,
//! 23 days), then 1,000 queries for a random one-hour range (1,800 fragments, first page of
//! 1,000) through `Catalog::list_fragments`, next to the same SQL run directly on a second sqlx
//! pool (the baseline: the database alone). Prints p50/p99 of each and the ratio.
//!   cargo bench -p kinescope-archive --bench list_fragments

use std::time::{Duration, Instant};

use kinescope_api::control::{StorageTier, StreamInfo, StreamStatus};
use kinescope_api::{StreamArn, StreamName, Timestamp, Version};
use kinescope_archive::{Catalog, SqliteCatalog, TimestampKind};
use sqlx::Row;

const FRAGMENTS: i64 = 1_000_000;
const STEP_MS: i64 = 2_000;
const T0: i64 = 1_700_000_000_000;
const QUERIES: usize = 1_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let catalog = SqliteCatalog::open(&path).await.unwrap();
    let name = StreamName::parse("bench").unwrap();
    let info = StreamInfo {
        device_name: None,
        stream_arn: StreamArn::new("us-west-2", "000000000000", &name, 1),
        stream_name: name,
        media_type: None,
        kms_key_id: None,
        version: Version::parse("v1").unwrap(),
        status: StreamStatus::Active,
        creation_time: Timestamp::from_millis(1),
        data_retention_in_hours: 1,
    };
    let stream = catalog
        .create_stream(&info, StorageTier::Hot, &Default::default())
        .await
        .unwrap();
    let header = catalog.add_track_header(stream.id, b"h").await.unwrap();

    // Bulk load through a second pool: 500-row statements, 20 per transaction.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&path))
        .await
        .unwrap();
    let load = Instant::now();
    let mut n = 0i64;
    while n < FRAGMENTS {
        let mut tx = pool.begin().await.unwrap();
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
                        stream.id.0,
                        t + 150
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO fragments (fragment_number, stream_id, producer_ts_ms, server_ts_ms, duration_ms, \
                 size_bytes, object_key, object_offset, object_length, header_id) VALUES {}",
                values.join(",")
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
                .unwrap();
            n += rows;
        }
        tx.commit().await.unwrap();
    }
    println!(
        "loaded {FRAGMENTS} fragments in {:.1} s",
        load.elapsed().as_secs_f64()
    );

    // Random hour windows, the same for both.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let windows: Vec<i64> = (0..QUERIES)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            T0 + (seed % ((FRAGMENTS * STEP_MS - 3_600_000) as u64)) as i64
        })
        .collect();

    let mut ours = Vec::with_capacity(QUERIES);
    for &start in &windows {
        let t = Instant::now();
        let rows = catalog
            .list_fragments(
                stream.id,
                TimestampKind::Producer,
                Timestamp::from_millis(start),
                Timestamp::from_millis(start + 3_600_000),
                None,
                1001,
            )
            .await
            .unwrap();
        ours.push(t.elapsed());
        assert_eq!(rows.len(), 1001);
    }
    let mut raw = Vec::with_capacity(QUERIES);
    for &start in &windows {
        let t = Instant::now();
        let rows = sqlx::query(
            "SELECT fragment_number, producer_ts_ms, server_ts_ms, duration_ms, size_bytes, object_key, \
             object_offset, object_length, header_id FROM fragments WHERE stream_id = $1 AND producer_ts_ms \
             BETWEEN $2 AND $3 ORDER BY producer_ts_ms, fragment_number LIMIT 1001",
        )
        .bind(stream.id.0)
        .bind(start)
        .bind(start + 3_600_000)
        .fetch_all(&pool)
        .await
        .unwrap();
        raw.push(t.elapsed());
        assert_eq!(rows.len(), 1001);
        let _: String = rows[0].get(0);
    }
    ours.sort();
    raw.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| one-hour ListFragments page (1,000 of 1,800) over 1,000,000 fragments | p50 ms | p99 ms |"
    );
    println!("|---|---|---|");
    println!(
        "| SQL on a plain sqlx pool (baseline) | {:.2} | {:.2} |",
        ms(percentile(&raw, 0.5)),
        ms(percentile(&raw, 0.99))
    );
    println!(
        "| Catalog::list_fragments | {:.2} | {:.2} |",
        ms(percentile(&ours, 0.5)),
        ms(percentile(&ours, 0.99))
    );
    println!(
        "ratio of p99 (catalog / baseline): {:.2}",
        ms(percentile(&ours, 0.99)) / ms(percentile(&raw, 0.99))
    );
}
