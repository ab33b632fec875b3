//! The embedded catalog: SQLite through sqlx, schema in `migrations/`. WAL mode with
//! `synchronous = FULL`, so a committed row survives a power cut (DESIGN.md convention 7).
//! Every mutation is one conditional statement or one transaction, so version checks and the
//! tag limit hold under concurrent requests.
//!
//! Stream records are also held in memory: the SQLite file belongs to this process, so every
//! write passes through here and the copy is exact. Reads of a stream (DescribeStream,
//! GetDataEndpoint, and the stream lookup of every data-plane request) never wait for the
//! database; mutations are serialized and update the copy in commit order.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use kinescope_api::control::{StorageTier, StreamInfo};
use kinescope_api::{
    DeviceName, FragmentNumber, KmsKeyId, MediaType, StreamArn, StreamRef, TagKey, TagValue, Tags,
    Timestamp, Version,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::OwnedMutexGuard;

use crate::catalog::{FragmentRow, LogBacklog, Relocation, StreamId, TimestampKind};
use crate::catalog::{MAX_RETENTION_HOURS, MAX_TAGS};
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

/// Most fragment rows committed in one transaction.
const GROUP_COMMIT_MAX: usize = 256;

/// The SQLite catalog.
#[derive(Debug)]
pub struct SqliteCatalog {
    pool: SqlitePool,
    /// Fragment rows go through one task that commits whatever has queued up in one
    /// transaction: one fsync for many fragments (group commit), each row still durable before
    /// its `add_fragment` returns.
    fragments: tokio::sync::mpsc::Sender<PendingRow>,
    streams: RwLock<Streams>,
    /// Held across each mutation and its update of `streams`.
    write: tokio::sync::Mutex<()>,
    /// Whose turn it is to write: SQLite has one writer at a time, and a writer that finds the
    /// database locked sleeps in its busy handler (up to 100 ms a try) while others may take
    /// the lock before it. Taking turns here, in order, keeps a long job (retention deleting
    /// a million rows, a batch at a time) from starving the fragment commits (issue 12).
    turn: Arc<tokio::sync::Mutex<()>>,
}

/// Every stream, by name, and the name of every ARN.
#[derive(Debug, Default)]
struct Streams {
    by_name: BTreeMap<String, StreamRecord>,
    names_by_arn: HashMap<String, String>,
}

impl Streams {
    fn insert(&mut self, r: StreamRecord) {
        let name = r.info.stream_name.to_string();
        self.names_by_arn
            .insert(r.info.stream_arn.to_string(), name.clone());
        self.by_name.insert(name, r);
    }

    fn remove(&mut self, name: &str) {
        if let Some(r) = self.by_name.remove(name) {
            self.names_by_arn.remove(r.info.stream_arn.as_str());
        }
    }

    fn get(&self, r: &StreamRef) -> Option<&StreamRecord> {
        match r {
            StreamRef::Name(n) => self.by_name.get(n.as_str()),
            StreamRef::Arn(a) => self
                .names_by_arn
                .get(a.as_str())
                .and_then(|n| self.by_name.get(n)),
        }
    }
}

impl SqliteCatalog {
    /// Opens (creating if needed) the catalog database at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, CatalogError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        Self::with_options(options, 8).await
    }

    /// A private in-memory catalog, for tests.
    pub async fn in_memory() -> Result<Self, CatalogError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        // One connection: every connection to `:memory:` would be a separate database.
        Self::with_options(options, 1).await
    }

    async fn with_options(
        options: SqliteConnectOptions,
        max_connections: u32,
    ) -> Result<Self, CatalogError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {STREAM_COLUMNS} FROM streams WHERE {LIVE_STREAM}"
        )))
        .fetch_all(&pool)
        .await?;
        let mut streams = Streams::default();
        for row in &rows {
            streams.insert(stream_from_row(row)?);
        }
        let (fragments, queue) = tokio::sync::mpsc::channel(4 * GROUP_COMMIT_MAX);
        let turn = Arc::new(tokio::sync::Mutex::new(()));
        tokio::spawn(group_commit(pool.clone(), turn.clone(), queue));
        Ok(Self {
            pool,
            streams: RwLock::new(streams),
            write: tokio::sync::Mutex::new(()),
            turn,
            fragments,
        })
    }

    /// Re-reads one stream from the database into memory (after a committed change).
    async fn refresh(&self, r: &StreamRef) -> Result<(), CatalogError> {
        let (column, key) = match r {
            StreamRef::Name(n) => ("name", n.as_str()),
            StreamRef::Arn(a) => ("arn", a.as_str()),
        };
        let sql = format!("SELECT {STREAM_COLUMNS} FROM streams WHERE {column} = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = row {
            let record = stream_from_row(&row)?;
            self.streams.write().expect("not poisoned").insert(record);
        }
        Ok(())
    }

    /// The id and version of the stream named by `r`.
    async fn id_and_version(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        r: &StreamRef,
    ) -> Result<(i64, String), CatalogError> {
        let (sql, key) = match r {
            StreamRef::Name(n) => (
                "SELECT id, version FROM streams WHERE name = $1",
                n.as_str(),
            ),
            StreamRef::Arn(a) => ("SELECT id, version FROM streams WHERE arn = $1", a.as_str()),
        };
        let row = sqlx::query(sql).bind(key).fetch_optional(&mut **tx).await?;
        let row = row.ok_or_else(|| CatalogError::StreamNotFound(r.to_string()))?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// Starts a transaction that holds the write lock from its first statement, so that a
    /// read-check-write sequence cannot interleave with another writer; it waits for its turn
    /// among this process's writers first (see [`SqliteCatalog::turn`]).
    async fn begin_write(
        &self,
    ) -> Result<(OwnedMutexGuard<()>, Transaction<'_, Sqlite>), CatalogError> {
        let turn = self.turn.clone().lock_owned().await;
        Ok((turn, self.pool.begin_with("BEGIN IMMEDIATE").await?))
    }
}

/// Commits queued fragment rows, as many per transaction as have queued up. A row that fails
/// (its stream was deleted) fails alone; the others commit.
async fn group_commit(
    pool: SqlitePool,
    turn: Arc<tokio::sync::Mutex<()>>,
    mut queue: tokio::sync::mpsc::Receiver<PendingRow>,
) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_MAX {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let outcome: Result<Vec<Result<(), CatalogError>>, sqlx::Error> = async {
            let _turn = turn.lock().await;
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let mut results = Vec::with_capacity(batch.len());
            for (row, _) in &batch {
                results.push(
                    insert_fragment(&mut tx, row)
                        .await
                        .map_err(|e| missing_stream(e, row.stream)),
                );
            }
            tx.commit().await?;
            Ok(results)
        }
        .await;
        match outcome {
            Ok(results) => {
                for ((_, reply), result) in batch.into_iter().zip(results) {
                    let _ = reply.send(result);
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

async fn insert_fragment(
    tx: &mut Transaction<'_, Sqlite>,
    f: &FragmentRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO fragments (fragment_number, stream_id, producer_ts_ms, server_ts_ms, \
         duration_ms, size_bytes, object_key, object_offset, object_length, header_id, metadata) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(f.number.as_str())
    .bind(f.stream.0)
    .bind(f.producer_timestamp.as_millis())
    .bind(f.server_timestamp.as_millis())
    .bind(int(f.duration_ms))
    .bind(int(f.size))
    .bind(&f.object_key)
    .bind(int(f.offset))
    .bind(int(f.length))
    .bind(f.header_id)
    .bind(encode_metadata(&f.metadata))
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

#[async_trait]
impl Catalog for SqliteCatalog {
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
        let _write = self.write.lock().await;
        let (_turn, mut tx) = self.begin_write().await?;
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
        for (k, v) in tags {
            sqlx::query(
                "INSERT INTO stream_tags (stream_id, tag_key, tag_value) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(k.as_str())
            .bind(v.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let record = StreamRecord {
            id: StreamId(id),
            info: info.clone(),
            storage_tier,
        };
        self.streams
            .write()
            .expect("not poisoned")
            .insert(record.clone());
        Ok(record)
    }

    async fn stream(&self, r: &StreamRef) -> Result<StreamRecord, CatalogError> {
        let streams = self.streams.read().expect("not poisoned");
        streams
            .get(r)
            .cloned()
            .ok_or_else(|| CatalogError::StreamNotFound(r.to_string()))
    }

    async fn list_streams(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StreamRecord>, CatalogError> {
        let streams = self.streams.read().expect("not poisoned");
        let from = match after {
            Some(a) => std::ops::Bound::Excluded(a),
            None => std::ops::Bound::Unbounded,
        };
        Ok(streams
            .by_name
            .range::<str, _>((from, std::ops::Bound::Unbounded))
            .filter(|(name, _)| prefix.is_none_or(|p| name.starts_with(p)))
            .take(limit as usize)
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn update_stream(
        &self,
        r: &StreamRef,
        expected: &Version,
        new_version: &Version,
        device_name: Option<&DeviceName>,
        media_type: Option<&MediaType>,
    ) -> Result<(), CatalogError> {
        let _write = self.write.lock().await;
        let (_turn, mut tx) = self.begin_write().await?;
        let (id, version) = self.id_and_version(&mut tx, r).await?;
        if version != expected.as_str() {
            return Err(CatalogError::VersionMismatch {
                stream: r.to_string(),
                expected: expected.to_string(),
            });
        }
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
        self.refresh(r).await
    }

    async fn change_retention(
        &self,
        r: &StreamRef,
        expected: &Version,
        new_version: &Version,
        delta_hours: i64,
    ) -> Result<(), CatalogError> {
        let _write = self.write.lock().await;
        let (_turn, mut tx) = self.begin_write().await?;
        let (id, version) = self.id_and_version(&mut tx, r).await?;
        if version != expected.as_str() {
            return Err(CatalogError::VersionMismatch {
                stream: r.to_string(),
                expected: expected.to_string(),
            });
        }
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
        self.refresh(r).await
    }

    async fn delete_stream(
        &self,
        arn: &StreamArn,
        expected: Option<&Version>,
    ) -> Result<(), CatalogError> {
        let r = StreamRef::Arn(arn.clone());
        let _write = self.write.lock().await;
        let (_turn, mut tx) = self.begin_write().await?;
        let (id, version) = self.id_and_version(&mut tx, &r).await?;
        if let Some(expected) = expected
            && version != expected.as_str()
        {
            return Err(CatalogError::VersionMismatch {
                stream: r.to_string(),
                expected: expected.to_string(),
            });
        }
        sqlx::query(MARK_DELETED).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        self.streams
            .write()
            .expect("not poisoned")
            .remove(arn.stream_name().as_str());
        Ok(())
    }

    async fn deleted_streams(&self) -> Result<Vec<StreamId>, CatalogError> {
        let ids: Vec<i64> = sqlx::query_scalar(DELETED_STREAMS)
            .fetch_all(&self.pool)
            .await?;
        Ok(ids.into_iter().map(StreamId).collect())
    }

    async fn remove_stream(&self, id: StreamId) -> Result<(), CatalogError> {
        let (_turn, mut tx) = self.begin_write().await?;
        sqlx::query("DELETE FROM streams WHERE id = $1 AND status = 'DELETING'")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn tag_stream(&self, r: &StreamRef, tags: &Tags) -> Result<(), CatalogError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let (id, _) = self.id_and_version(&mut tx, r).await?;
        for (k, v) in tags {
            sqlx::query(
                "INSERT INTO stream_tags (stream_id, tag_key, tag_value) VALUES ($1, $2, $3) \
                 ON CONFLICT (stream_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value",
            )
            .bind(id)
            .bind(k.as_str())
            .bind(v.as_str())
            .execute(&mut *tx)
            .await?;
        }
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM stream_tags WHERE stream_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
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
        let (_turn, mut tx) = self.begin_write().await?;
        let (id, _) = self.id_and_version(&mut tx, r).await?;
        for k in keys {
            sqlx::query("DELETE FROM stream_tags WHERE stream_id = $1 AND tag_key = $2")
                .bind(id)
                .bind(k.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn stream_tags(&self, r: &StreamRef) -> Result<Tags, CatalogError> {
        let mut tx = self.pool.begin().await?;
        let (id, _) = self.id_and_version(&mut tx, r).await?;
        let rows = sqlx::query("SELECT tag_key, tag_value FROM stream_tags WHERE stream_id = $1")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
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
        // RETURNING in a transaction of its own: outside one, sqlx may hand back the row before
        // SQLite commits (sqlx issue 3430).
        let (_turn, mut tx) = self.begin_write().await?;
        let row = sqlx::query(
            "INSERT INTO track_headers (stream_id, header) VALUES ($1, $2) RETURNING id",
        )
        .bind(stream.0)
        .bind(header)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| missing_stream(e, stream))?;
        tx.commit().await?;
        Ok(row.try_get(0)?)
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
        let row = sqlx::query("SELECT MAX(fragment_number) FROM fragments")
            .fetch_one(&self.pool)
            .await?;
        let max: Option<String> = row.try_get(0)?;
        max.map(|m| FragmentNumber::parse(&m).map_err(|_| corrupt("fragment_number", m)))
            .transpose()
    }

    async fn latest_producer_timestamp(
        &self,
        stream: StreamId,
    ) -> Result<Option<Timestamp>, CatalogError> {
        let row = sqlx::query("SELECT MAX(producer_ts_ms) FROM fragments WHERE stream_id = $1")
            .bind(stream.0)
            .fetch_one(&self.pool)
            .await?;
        let max: Option<i64> = row.try_get(0)?;
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
        let sql = format!(
            "SELECT {FRAGMENT_COLUMNS} FROM fragments WHERE stream_id = $1 AND {column} BETWEEN $2 AND $3 \
             AND ($4 IS NULL OR {column} > $4 OR ({column} = $4 AND fragment_number > $5)) \
             ORDER BY {column}, fragment_number LIMIT $6"
        );
        let (after_ts, after_number) = match &after {
            Some((t, n)) => (Some(t.as_millis()), Some(n.as_str())),
            None => (None, None),
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(stream.0)
            .bind(start.as_millis())
            .bind(end.as_millis())
            .bind(after_ts)
            .bind(after_number)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
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
             AND ($2 IS NULL OR fragment_number {cmp} $2) ORDER BY fragment_number {order} LIMIT $3"
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
            "SELECT {FRAGMENT_COLUMNS} FROM fragments WHERE stream_id = $1 AND {column} BETWEEN $2 AND $3 \
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
             AND ({column} < $3 OR ({column} = $3 AND fragment_number < $4))"
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
        let mut out = Vec::with_capacity(numbers.len());
        for batch in numbers.chunks(500) {
            let placeholders: Vec<String> =
                (0..batch.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT {FRAGMENT_COLUMNS} FROM fragments WHERE stream_id = $1 AND fragment_number IN ({})",
                placeholders.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(stream.0);
            for n in batch {
                q = q.bind(n.as_str());
            }
            for row in q.fetch_all(&self.pool).await? {
                out.push(fragment_from_row(&row, stream)?);
            }
        }
        Ok(out)
    }

    async fn track_header(
        &self,
        stream: StreamId,
        id: i64,
    ) -> Result<Option<Vec<u8>>, CatalogError> {
        let row = sqlx::query("SELECT header FROM track_headers WHERE id = $1 AND stream_id = $2")
            .bind(id)
            .bind(stream.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
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
        let (_turn, mut tx) = self.begin_write().await?;
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
        // Committed before the objects go (sqlx issue 3430: see `add_track_header`).
        let (_turn, mut tx) = self.begin_write().await?;
        let keys = sqlx::query_scalar(EXPIRE)
            .bind(stream.0)
            .bind(before.as_millis())
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(keys)
    }

    async fn expire_oldest(&self, limit: u32) -> Result<Vec<(String, u64)>, CatalogError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(EXPIRE_OLDEST)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
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
    use super::*;

    #[tokio::test]
    async fn in_memory_passes_the_conformance_suite() {
        crate::conformance::run(&SqliteCatalog::in_memory().await.unwrap()).await;
    }

    #[tokio::test]
    async fn file_catalog_passes_the_conformance_suite_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let catalog = SqliteCatalog::open(&path).await.unwrap();
        crate::conformance::run(&catalog).await;
        let before = catalog.list_streams(None, None, 100).await.unwrap();
        drop(catalog);
        let reopened = SqliteCatalog::open(&path).await.unwrap();
        assert_eq!(
            reopened.list_streams(None, None, 100).await.unwrap(),
            before
        );
    }
}
