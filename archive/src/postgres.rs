//! The PostgreSQL catalog: the behaviour of the SQLite catalog (same errors, same ordering, same
//! conformance suite) on a shared database, schema in `migrations/postgres/` (design/0012).
//!
//! Unlike SQLite it keeps no stream records in memory: another process may write the same
//! database, so every read asks PostgreSQL (streams are looked up by a unique index). Version
//! checks and the tag limit lock the stream's row (`SELECT … FOR UPDATE`) inside the
//! transaction that checks and writes, so concurrent calls on one stream, from this process or
//! another, run one after the other. Fragment rows are group-committed (design/0007) with
//! `synchronous_commit = on`: a row is durable before `add_fragment` returns.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use kinescope_api::control::{StorageTier, StreamInfo};
use kinescope_api::{
    DeviceName, FragmentNumber, KmsKeyId, MediaType, StreamArn, StreamRef, TagKey, TagValue, Tags,
    Timestamp, Version,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};

use crate::catalog::{
    FragmentRow, LogBacklog, MAX_RETENTION_HOURS, MAX_TAGS, Relocation, StreamId, TimestampKind,
};
use crate::rows::{
    DELETED_STREAMS, EXPIRE, EXPIRE_OLDEST, FRAGMENT_COLUMNS, FRAGMENTS_IN_LOG, LIVE_STREAM,
    LOG_BACKLOG, LOG_KEYS_IN_USE, MARK_DELETED, RELOCATE, STORED_BYTES, STREAM_COLUMNS, corrupt,
    encode_metadata, fragment_from_row, int, keys_in_use_sql, log_backlog_from_row, missing_stream,
    stream_from_row, ts_column,
};
use crate::{Catalog, CatalogError, StreamRecord};

/// A fragment row on its way to the group committer, and where its outcome goes.
type PendingRow = (
    FragmentRow,
    tokio::sync::oneshot::Sender<Result<(), CatalogError>>,
);

/// Most fragment rows committed in one statement.
const GROUP_COMMIT_MAX: usize = 256;

/// The connection pool's size and deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgPoolSettings {
    pub max_connections: u32,
    /// How long a request waits for a free connection (or a new one to open) before it fails.
    pub acquire_timeout: Duration,
    /// Longest a statement may run on the server (PostgreSQL `statement_timeout`).
    pub statement_timeout: Duration,
}

impl Default for PgPoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

impl PgPoolSettings {
    /// Takes `max_connections`, `acquire_timeout` and `statement_timeout` (seconds) out of a
    /// `postgres://` URL's query, leaving the rest for the driver.
    pub fn from_url(url: &str) -> Result<(Self, String), String> {
        let mut settings = Self::default();
        let Some((base, query)) = url.split_once('?') else {
            return Ok((settings, url.to_owned()));
        };
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let secs = || {
                value
                    .parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|_| format!("catalog URL: {key} must be whole seconds, not '{value}'"))
            };
            match key {
                "max_connections" => {
                    settings.max_connections = value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("catalog URL: bad max_connections '{value}'"))?;
                }
                "acquire_timeout" => settings.acquire_timeout = secs()?,
                "statement_timeout" => settings.statement_timeout = secs()?,
                _ => rest.push(pair),
            }
        }
        let url = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        Ok((settings, url))
    }
}

/// The PostgreSQL catalog.
#[derive(Debug)]
pub struct PgCatalog {
    pool: PgPool,
    /// Fragment rows go through one task that commits whatever has queued up at once.
    fragments: tokio::sync::mpsc::Sender<PendingRow>,
}

impl PgCatalog {
    /// Connects to the database at `url` (`postgres://…`, with the [`PgPoolSettings`] keys in
    /// its query) and applies migrations.
    pub async fn open(url: &str) -> Result<Self, CatalogError> {
        let (settings, url) = PgPoolSettings::from_url(url)
            .map_err(|m| CatalogError::Database(sqlx::Error::Configuration(m.into())))?;
        Self::connect(PgConnectOptions::from_str(&url)?, settings).await
    }

    /// Connects with explicit options and applies migrations (idempotent; concurrent openers
    /// wait for each other on sqlx's migration lock).
    pub async fn connect(
        options: PgConnectOptions,
        settings: PgPoolSettings,
    ) -> Result<Self, CatalogError> {
        let statement_ms = settings.statement_timeout.as_millis().to_string();
        let options = options.options([
            ("synchronous_commit", "on"),
            ("statement_timeout", statement_ms.as_str()),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            // A connection that died with the server is found before it is handed out.
            .test_before_acquire(true)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let (fragments, queue) = tokio::sync::mpsc::channel(4 * GROUP_COMMIT_MAX);
        tokio::spawn(group_commit(pool.clone(), queue));
        Ok(Self { pool, fragments })
    }

    /// Closes every connection (tests drop their database afterwards).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The id and version of the stream named by `r`, its row locked until `tx` ends.
    async fn lock_stream(
        tx: &mut Transaction<'_, Postgres>,
        r: &StreamRef,
    ) -> Result<(i64, String), CatalogError> {
        let (sql, key) = match r {
            StreamRef::Name(n) => (
                "SELECT id, version FROM streams WHERE name = $1 FOR UPDATE",
                n.as_str(),
            ),
            StreamRef::Arn(a) => (
                "SELECT id, version FROM streams WHERE arn = $1 FOR UPDATE",
                a.as_str(),
            ),
        };
        let row = sqlx::query(sql).bind(key).fetch_optional(&mut **tx).await?;
        let row = row.ok_or_else(|| CatalogError::StreamNotFound(r.to_string()))?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// Locks the stream and checks that it is at version `expected`.
    async fn lock_at_version(
        tx: &mut Transaction<'_, Postgres>,
        r: &StreamRef,
        expected: Option<&Version>,
    ) -> Result<i64, CatalogError> {
        let (id, version) = Self::lock_stream(tx, r).await?;
        match expected {
            Some(expected) if version != expected.as_str() => Err(CatalogError::VersionMismatch {
                stream: r.to_string(),
                expected: expected.to_string(),
            }),
            _ => Ok(id),
        }
    }
}

/// Commits queued fragment rows, as many per statement as have queued up. If the database
/// refuses the batch (a stream was deleted meanwhile, a duplicate number), nothing of it was
/// written, and each row is retried alone so that it fails alone. If the connection failed,
/// whether the batch committed is unknown: every row reports the error (it is never reported
/// stored without being stored).
async fn group_commit(pool: PgPool, mut queue: tokio::sync::mpsc::Receiver<PendingRow>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_MAX {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let rows: Vec<&FragmentRow> = batch.iter().map(|(row, _)| row).collect();
        match insert_fragments(&pool, &rows).await {
            Ok(()) => {
                for (_, reply) in batch {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) if e.as_database_error().is_some() => {
                if let [(row, _)] = &batch[..] {
                    let stream = row.stream;
                    if let Some((_, reply)) = batch.pop() {
                        let _ = reply.send(Err(missing_stream(e, stream)));
                    }
                    continue;
                }
                for (row, reply) in batch {
                    let outcome = insert_fragments(&pool, &[&row])
                        .await
                        .map_err(|e| missing_stream(e, row.stream));
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, rows = batch.len(), "committing fragment rows failed");
                for (_, reply) in batch {
                    let _ = reply.send(Err(CatalogError::Database(sqlx::Error::Protocol(
                        e.to_string(),
                    ))));
                }
            }
        }
    }
}

/// Inserts `rows` in one statement (one commit, one WAL flush).
async fn insert_fragments(pool: &PgPool, rows: &[&FragmentRow]) -> Result<(), sqlx::Error> {
    let column = |f: fn(&FragmentRow) -> i64| rows.iter().map(|r| f(r)).collect::<Vec<i64>>();
    let numbers: Vec<&str> = rows.iter().map(|r| r.number.as_str()).collect();
    let keys: Vec<&str> = rows.iter().map(|r| r.object_key.as_str()).collect();
    let metadata: Vec<Option<String>> = rows.iter().map(|r| encode_metadata(&r.metadata)).collect();
    sqlx::query(
        "INSERT INTO fragments (fragment_number, stream_id, producer_ts_ms, server_ts_ms, \
         duration_ms, size_bytes, object_key, object_offset, object_length, header_id, metadata) \
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], \
         $6::int8[], $7::text[], $8::int8[], $9::int8[], $10::int8[], $11::text[])",
    )
    .bind(numbers)
    .bind(column(|r| r.stream.0))
    .bind(column(|r| r.producer_timestamp.as_millis()))
    .bind(column(|r| r.server_timestamp.as_millis()))
    .bind(column(|r| int(r.duration_ms)))
    .bind(column(|r| int(r.size)))
    .bind(keys)
    .bind(column(|r| int(r.offset)))
    .bind(column(|r| int(r.length)))
    .bind(column(|r| r.header_id))
    .bind(metadata)
    .execute(pool)
    .await
    .map(|_| ())
}

/// `s` as a LIKE pattern that matches itself literally, for a prefix match.
fn like_prefix(s: &str) -> String {
    let mut p = String::with_capacity(s.len() + 1);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[async_trait]
impl Catalog for PgCatalog {
    async fn ping(&self) -> Result<(), CatalogError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_stream(
        &self,
        info: &StreamInfo,
        storage_tier: StorageTier,
        tags: &Tags,
    ) -> Result<StreamRecord, CatalogError> {
        if tags.len() > MAX_TAGS {
            return Err(CatalogError::TooManyTags {
                stream: info.stream_name.to_string(),
                count: tags.len(),
            });
        }
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO streams (name, arn, device_name, media_type, kms_key_id, version, \
             status, creation_time_ms, data_retention_hours, storage_tier) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(info.stream_name.as_str())
        .bind(info.stream_arn.as_str())
        .bind(info.device_name.as_ref().map(DeviceName::as_str))
        .bind(info.media_type.as_ref().map(MediaType::as_str))
        .bind(info.kms_key_id.as_ref().map(KmsKeyId::as_str))
        .bind(info.version.as_str())
        .bind(info.status.as_str())
        .bind(info.creation_time.as_millis())
        .bind(i64::from(info.data_retention_in_hours))
        .bind(storage_tier.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = inserted else {
            return Err(CatalogError::StreamExists(info.stream_name.to_string()));
        };
        let id: i64 = row.try_get(0)?;
        let (keys, values): (Vec<&str>, Vec<&str>) =
            tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).unzip();
        sqlx::query(
            "INSERT INTO stream_tags (stream_id, tag_key, tag_value) \
             SELECT $1, * FROM UNNEST($2::text[], $3::text[])",
        )
        .bind(id)
        .bind(keys)
        .bind(values)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(StreamRecord {
            id: StreamId(id),
            info: info.clone(),
            storage_tier,
        })
    }

    async fn stream(&self, r: &StreamRef) -> Result<StreamRecord, CatalogError> {
        let (column, key) = match r {
            StreamRef::Name(n) => ("name", n.as_str()),
            StreamRef::Arn(a) => ("arn", a.as_str()),
        };
        let sql = format!("SELECT {STREAM_COLUMNS} FROM streams WHERE {column} = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| CatalogError::StreamNotFound(r.to_string()))?;
        stream_from_row(&row)
    }

    async fn list_streams(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StreamRecord>, CatalogError> {
        let sql = format!(
            "SELECT {STREAM_COLUMNS} FROM streams WHERE ($1::text IS NULL OR name LIKE $1) \
             AND ($2::text IS NULL OR name > $2) AND {LIVE_STREAM} ORDER BY name LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(prefix.map(like_prefix))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(stream_from_row).collect()
    }

    async fn update_stream(
        &self,
        r: &StreamRef,
        expected: &Version,
        new_version: &Version,
        device_name: Option<&DeviceName>,
        media_type: Option<&MediaType>,
    ) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        let id = Self::lock_at_version(&mut tx, r, Some(expected)).await?;
        sqlx::query(
            "UPDATE streams SET device_name = COALESCE($1, device_name), \
             media_type = COALESCE($2, media_type), version = $3 WHERE id = $4",
        )
        .bind(device_name.map(DeviceName::as_str))
        .bind(media_type.map(MediaType::as_str))
        .bind(new_version.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn change_retention(
        &self,
        r: &StreamRef,
        expected: &Version,
        new_version: &Version,
        delta_hours: i64,
    ) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        let id = Self::lock_at_version(&mut tx, r, Some(expected)).await?;
        let current: i64 = sqlx::query("SELECT data_retention_hours FROM streams WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let hours = current.saturating_add(delta_hours);
        if !(0..=MAX_RETENTION_HOURS).contains(&hours) {
            return Err(CatalogError::RetentionOutOfRange {
                stream: r.to_string(),
                hours,
            });
        }
        sqlx::query("UPDATE streams SET data_retention_hours = $1, version = $2 WHERE id = $3")
            .bind(hours)
            .bind(new_version.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_stream(
        &self,
        arn: &StreamArn,
        expected: Option<&Version>,
    ) -> Result<(), CatalogError> {
        let r = StreamRef::Arn(arn.clone());
        let mut tx = self.pool.begin().await?;
        let id = Self::lock_at_version(&mut tx, &r, expected).await?;
        sqlx::query(MARK_DELETED).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn deleted_streams(&self) -> Result<Vec<StreamId>, CatalogError> {
        let ids: Vec<i64> = sqlx::query_scalar(DELETED_STREAMS)
            .fetch_all(&self.pool)
            .await?;
        Ok(ids.into_iter().map(StreamId).collect())
    }

    async fn remove_stream(&self, id: StreamId) -> Result<(), CatalogError> {
        sqlx::query("DELETE FROM streams WHERE id = $1 AND status = 'DELETING'")
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn tag_stream(&self, r: &StreamRef, tags: &Tags) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        // The row lock serializes every tag change of the stream: the count below is exact.
        let id = Self::lock_at_version(&mut tx, r, None).await?;
        let (keys, values): (Vec<&str>, Vec<&str>) =
            tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).unzip();
        sqlx::query(
            "INSERT INTO stream_tags (stream_id, tag_key, tag_value) \
             SELECT $1, * FROM UNNEST($2::text[], $3::text[]) \
             ON CONFLICT (stream_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value",
        )
        .bind(id)
        .bind(keys)
        .bind(values)
        .execute(&mut *tx)
        .await?;
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM stream_tags WHERE stream_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if count > MAX_TAGS {
            // Dropping the transaction rolls the inserts back.
            return Err(CatalogError::TooManyTags {
                stream: r.to_string(),
                count,
            });
        }
        tx.commit().await?;
        Ok(())
    }

    async fn untag_stream(&self, r: &StreamRef, keys: &[TagKey]) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        let id = Self::lock_at_version(&mut tx, r, None).await?;
        let keys: Vec<&str> = keys.iter().map(TagKey::as_str).collect();
        sqlx::query("DELETE FROM stream_tags WHERE stream_id = $1 AND tag_key = ANY($2)")
            .bind(id)
            .bind(keys)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn stream_tags(&self, r: &StreamRef) -> Result<Tags, CatalogError> {
        let id = self.stream(r).await?.id;
        let rows = sqlx::query("SELECT tag_key, tag_value FROM stream_tags WHERE stream_id = $1")
            .bind(id.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let k: String = row.try_get(0)?;
                let v: String = row.try_get(1)?;
                let key = TagKey::parse(&k).map_err(|_| corrupt("tag_key", &k))?;
                let value = TagValue::parse(&v).map_err(|_| corrupt("tag_value", &v))?;
                Ok((key, value))
            })
            .collect()
    }

    async fn add_track_header(&self, stream: StreamId, header: &[u8]) -> Result<i64, CatalogError> {
        let id = sqlx::query_scalar(
            "INSERT INTO track_headers (stream_id, header) VALUES ($1, $2) RETURNING id",
        )
        .bind(stream.0)
        .bind(header)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| missing_stream(e, stream))?;
        Ok(id)
    }

    async fn add_fragment(&self, f: &FragmentRow) -> Result<(), CatalogError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let gone = || CatalogError::Database(sqlx::Error::PoolClosed);
        self.fragments
            .send((f.clone(), reply))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    async fn last_fragment_number(&self) -> Result<Option<FragmentNumber>, CatalogError> {
        let max: Option<String> = sqlx::query_scalar("SELECT MAX(fragment_number) FROM fragments")
            .fetch_one(&self.pool)
            .await?;
        max.map(|m| FragmentNumber::parse(&m).map_err(|_| corrupt("fragment_number", m)))
            .transpose()
    }

    async fn latest_producer_timestamp(
        &self,
        stream: StreamId,
    ) -> Result<Option<Timestamp>, CatalogError> {
        let max: Option<i64> =
            sqlx::query_scalar("SELECT MAX(producer_ts_ms) FROM fragments WHERE stream_id = $1")
                .bind(stream.0)
                .fetch_one(&self.pool)
                .await?;
        Ok(max.map(Timestamp::from_millis))
    }

    async fn list_fragments(
        &self,
        stream: StreamId,
        kind: TimestampKind,
        start: Timestamp,
        end: Timestamp,
        after: Option<(Timestamp, FragmentNumber)>,
        limit: u32,
    ) -> Result<Vec<FragmentRow>, CatalogError> {
        let column = ts_column(kind);
        // The cursor as a row comparison, so that the (stream, timestamp, number) index both
        // filters and orders.
        let cursor = if after.is_some() {
            format!("AND ({column}, fragment_number) > ($4, $5)")
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT {FRAGMENT_COLUMNS} FROM fragments WHERE stream_id = $1 \
             AND {column} BETWEEN $2 AND $3 {cursor} \
             ORDER BY {column}, fragment_number LIMIT ${}",
            if after.is_some() { 6 } else { 4 }
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(stream.0)
            .bind(start.as_millis())
            .bind(end.as_millis());
        if let Some((t, n)) = &after {
            q = q.bind(t.as_millis()).bind(n.as_str());
        }
        let rows = q.bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.iter().map(|r| fragment_from_row(r, stream)).collect()
    }

    async fn fragments_after(
        &self,
        stream: StreamId,
        after: Option<&FragmentNumber>,
        limit: u32,
        newest_first: bool,
    ) -> Result<Vec<FragmentRow>, CatalogError> {
        let (cmp, order) = if newest_first {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let sql = format!(
            "SELECT {FRAGMENT_COLUMNS} FROM fragments WHERE stream_id = $1 \
             AND ($2::text IS NULL OR fragment_number {cmp} $2) \
             ORDER BY fragment_number {order} LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(stream.0)
            .bind(after.map(FragmentNumber::as_str))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| fragment_from_row(r, stream)).collect()
    }

    async fn latest_fragments(
        &self,
        stream: StreamId,
        kind: TimestampKind,
        start: Timestamp,
        end: Timestamp,
        limit: u32,
    ) -> Result<Vec<FragmentRow>, CatalogError> {
        let column = ts_column(kind);
        let sql = format!(
            "SELECT {FRAGMENT_COLUMNS} FROM fragments WHERE stream_id = $1 \
             AND {column} BETWEEN $2 AND $3 \
             ORDER BY {column} DESC, fragment_number DESC LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(stream.0)
            .bind(start.as_millis())
            .bind(end.as_millis())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<FragmentRow> = rows
            .iter()
            .map(|r| fragment_from_row(r, stream))
            .collect::<Result<_, _>>()?;
        out.reverse();
        Ok(out)
    }

    async fn count_fragments(
        &self,
        stream: StreamId,
        kind: TimestampKind,
        start: Timestamp,
        before: (Timestamp, &FragmentNumber),
    ) -> Result<u64, CatalogError> {
        let column = ts_column(kind);
        let sql = format!(
            "SELECT COUNT(*) FROM fragments WHERE stream_id = $1 AND {column} >= $2 \
             AND ({column}, fragment_number) < ($3, $4)"
        );
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(stream.0)
            .bind(start.as_millis())
            .bind(before.0.as_millis())
            .bind(before.1.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn fragments_by_number(
        &self,
        stream: StreamId,
        numbers: &[FragmentNumber],
    ) -> Result<Vec<FragmentRow>, CatalogError> {
        let numbers: Vec<&str> = numbers.iter().map(FragmentNumber::as_str).collect();
        let sql = format!(
            "SELECT {FRAGMENT_COLUMNS} FROM fragments \
             WHERE stream_id = $1 AND fragment_number = ANY($2)"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(stream.0)
            .bind(numbers)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| fragment_from_row(r, stream)).collect()
    }

    async fn track_header(
        &self,
        stream: StreamId,
        id: i64,
    ) -> Result<Option<Vec<u8>>, CatalogError> {
        Ok(
            sqlx::query_scalar("SELECT header FROM track_headers WHERE id = $1 AND stream_id = $2")
                .bind(id)
                .bind(stream.0)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn log_backlog(&self) -> Result<Vec<LogBacklog>, CatalogError> {
        sqlx::query(LOG_BACKLOG)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(log_backlog_from_row)
            .collect()
    }

    async fn fragments_in_log(
        &self,
        stream: StreamId,
        limit: u32,
    ) -> Result<Vec<FragmentRow>, CatalogError> {
        sqlx::query(FRAGMENTS_IN_LOG)
            .bind(stream.0)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| fragment_from_row(row, stream))
            .collect()
    }

    async fn relocate_fragments(&self, moves: &[Relocation]) -> Result<u64, CatalogError> {
        let mut tx = self.pool.begin().await?;
        let mut moved = 0;
        for m in moves {
            moved += sqlx::query(RELOCATE)
                .bind(&m.to_key)
                .bind(int(m.to_offset))
                .bind(m.number.as_str())
                .bind(&m.from_key)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(moved)
    }

    async fn expire_fragments(
        &self,
        stream: StreamId,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<String>, CatalogError> {
        Ok(sqlx::query_scalar(EXPIRE)
            .bind(stream.0)
            .bind(before.as_millis())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn expire_oldest(&self, limit: u32) -> Result<Vec<(String, u64)>, CatalogError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(EXPIRE_OLDEST)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(k, n)| (k, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    async fn stored_bytes(&self) -> Result<u64, CatalogError> {
        let n: i64 = sqlx::query_scalar(STORED_BYTES)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn keys_in_use(&self, keys: &[String]) -> Result<Vec<String>, CatalogError> {
        let mut out = Vec::new();
        for batch in keys.chunks(500) {
            let sql = keys_in_use_sql(batch.len());
            let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
            for k in batch {
                q = q.bind(k);
            }
            out.extend(q.fetch_all(&self.pool).await?);
        }
        Ok(out)
    }

    async fn log_keys_in_use(&self) -> Result<Vec<String>, CatalogError> {
        Ok(sqlx::query_scalar(LOG_KEYS_IN_USE)
            .fetch_all(&self.pool)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, RandomState};

    use super::*;

    /// The server the tests create their databases on: $KINESCOPE_TEST_POSTGRES, else the
    /// PostgreSQL every CI machine runs. Unreachable is a failure, never a skip.
    fn admin_url() -> String {
        std::env::var("KINESCOPE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
    }

    /// A database of its own for one test, dropped by [`TestDb::drop_now`].
    struct TestDb {
        admin: PgPool,
        name: String,
        options: PgConnectOptions,
    }

    impl TestDb {
        async fn create() -> Self {
            let url = admin_url();
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .unwrap_or_else(|e| {
                    panic!("PostgreSQL at {url} (set KINESCOPE_TEST_POSTGRES) is unreachable: {e}")
                });
            let name = format!("kinescope_test_{:016x}", RandomState::new().hash_one(0u8));
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin)
                .await
                .unwrap();
            let options = PgConnectOptions::from_str(&url).unwrap().database(&name);
            Self {
                admin,
                name,
                options,
            }
        }

        async fn drop_now(self) {
            let sql = format!("DROP DATABASE {} WITH (FORCE)", self.name);
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&self.admin)
                .await
                .unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_conformance_suite_and_migrates_idempotently() {
        let db = TestDb::create().await;
        let catalog = PgCatalog::connect(db.options.clone(), PgPoolSettings::default())
            .await
            .unwrap();
        crate::conformance::run(&catalog).await;
        let before = catalog.list_streams(None, None, 100).await.unwrap();
        catalog.close().await;
        // Opening again runs the migrations again: nothing changes.
        let reopened = PgCatalog::connect(db.options.clone(), PgPoolSettings::default())
            .await
            .unwrap();
        assert_eq!(
            reopened.list_streams(None, None, 100).await.unwrap(),
            before
        );
        reopened.close().await;
        db.drop_now().await;
    }

    #[test]
    fn pool_settings_come_out_of_the_url() {
        let (s, url) = PgPoolSettings::from_url(
            "postgres://u@h/db?max_connections=4&sslmode=disable&acquire_timeout=2&statement_timeout=9",
        )
        .unwrap();
        assert_eq!(url, "postgres://u@h/db?sslmode=disable");
        assert_eq!(
            s,
            PgPoolSettings {
                max_connections: 4,
                acquire_timeout: Duration::from_secs(2),
                statement_timeout: Duration::from_secs(9),
            }
        );
        let (d, url) = PgPoolSettings::from_url("postgres://h/db").unwrap();
        assert_eq!(
            (d, url.as_str()),
            (PgPoolSettings::default(), "postgres://h/db")
        );
        assert!(PgPoolSettings::from_url("postgres://h/db?max_connections=0").is_err());
        assert!(PgPoolSettings::from_url("postgres://h/db?acquire_timeout=x").is_err());
    }

    #[test]
    fn prefixes_match_literally() {
        assert_eq!(like_prefix("cam_a%\\"), "cam\\_a\\%\\\\%");
    }
}
