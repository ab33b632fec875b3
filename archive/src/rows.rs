//! Columns and row decoding shared by the SQLite and PostgreSQL catalogs: both hold the same
//! tables with the same column names and types (BIGINT milliseconds, TEXT, NULL for absent), so
//! one decoder, generic over the sqlx row type, turns a row into a record for either.

use kinescope_api::control::{StorageTier, StreamInfo, StreamStatus};
use kinescope_api::{
    DeviceName, FragmentNumber, KmsKeyId, MediaType, StreamArn, StreamName, Timestamp, Version,
};
use kinescope_media::mkv::MetadataTag;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::catalog::{FragmentRow, LogBacklog, StreamId, TimestampKind};
use crate::{CatalogError, StreamRecord};

pub(crate) const STREAM_COLUMNS: &str = "id, name, arn, device_name, media_type, kms_key_id, \
     version, status, creation_time_ms, data_retention_hours, storage_tier";

pub(crate) const FRAGMENT_COLUMNS: &str = "fragment_number, producer_ts_ms, server_ts_ms, \
     duration_ms, size_bytes, object_key, object_offset, object_length, header_id, metadata";

/// A stream's fragments in the fragment log, in packing order, as [`FRAGMENT_COLUMNS`]: read
/// through the partial index `fragments_in_log`, whose condition this repeats word for word
/// (both databases use a partial index only then).
pub(crate) const FRAGMENTS_IN_LOG: &str = "SELECT fragment_number, producer_ts_ms, server_ts_ms, \
     duration_ms, size_bytes, object_key, object_offset, object_length, header_id, metadata \
     FROM fragments WHERE object_key LIKE 'log/%' AND stream_id = $1 ORDER BY fragment_number \
     LIMIT $2";

/// Per stream, what its fragments in the fragment log add up to (same partial index): stream,
/// durations, lengths, newest server timestamp. PostgreSQL's SUM of a bigint is a numeric,
/// hence the casts.
pub(crate) const LOG_BACKLOG: &str = "SELECT stream_id, CAST(SUM(duration_ms) AS BIGINT), \
     CAST(SUM(object_length) AS BIGINT), MAX(server_ts_ms) FROM fragments \
     WHERE object_key LIKE 'log/%' GROUP BY stream_id ORDER BY stream_id";

/// A row of [`LOG_BACKLOG`].
pub(crate) fn log_backlog_from_row<'r, R>(row: &'r R) -> Result<LogBacklog, CatalogError>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let uint = |i: usize, c: &'static str| -> Result<u64, CatalogError> {
        let v: i64 = row.try_get(i)?;
        u64::try_from(v).map_err(|_| corrupt(c, v.to_string()))
    };
    Ok(LogBacklog {
        stream: StreamId(row.try_get(0)?),
        duration_ms: uint(1, "duration_ms")?,
        bytes: uint(2, "object_length")?,
        newest: Timestamp::from_millis(row.try_get(3)?),
    })
}

pub(crate) const LOG_KEYS_IN_USE: &str =
    "SELECT DISTINCT object_key FROM fragments WHERE object_key LIKE 'log/%'";

/// Retention: the stream's oldest rows before a server timestamp, through the index
/// `fragments_by_server_ts`.
pub(crate) const EXPIRE: &str = "DELETE FROM fragments WHERE fragment_number IN \
     (SELECT fragment_number FROM fragments WHERE stream_id = $1 AND server_ts_ms < $2 \
     ORDER BY server_ts_ms, fragment_number LIMIT $3) RETURNING object_key";

/// DeleteStream: the stream is DELETING, under a name and ARN no lookup matches
/// (migration 0006 / postgres 0004).
pub(crate) const MARK_DELETED: &str = "UPDATE streams SET status = 'DELETING', \
     name = '#' || id, arn = arn || '#' || id WHERE id = $1";

pub(crate) const DELETED_STREAMS: &str = "SELECT id FROM streams WHERE status = 'DELETING'";

/// What a listing or lookup of streams sees: none being deleted.
pub(crate) const LIVE_STREAM: &str = "status <> 'DELETING'";

/// A storage budget: the oldest rows of every stream, through the primary key.
pub(crate) const EXPIRE_OLDEST: &str = "DELETE FROM fragments WHERE fragment_number IN \
     (SELECT fragment_number FROM fragments ORDER BY fragment_number LIMIT $1) \
     RETURNING object_key, object_length";

pub(crate) const STORED_BYTES: &str =
    "SELECT CAST(COALESCE(SUM(object_length), 0) AS BIGINT) FROM fragments";

/// `SELECT DISTINCT object_key … IN (…)` of `n` keys (`$1`…`$n`), through the index
/// `fragments_by_object_key`.
pub(crate) fn keys_in_use_sql(n: usize) -> String {
    let placeholders: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
    format!(
        "SELECT DISTINCT object_key FROM fragments WHERE object_key IN ({})",
        placeholders.join(", ")
    )
}

/// One [`Relocation`](crate::catalog::Relocation), guarded by the old place.
pub(crate) const RELOCATE: &str = "UPDATE fragments SET object_key = $1, object_offset = $2 \
     WHERE fragment_number = $3 AND object_key = $4";

/// The column of a timestamp kind.
pub(crate) fn ts_column(kind: TimestampKind) -> &'static str {
    match kind {
        TimestampKind::Producer => "producer_ts_ms",
        TimestampKind::Server => "server_ts_ms",
    }
}

pub(crate) fn corrupt(column: &'static str, value: impl Into<String>) -> CatalogError {
    CatalogError::Corrupt {
        column,
        value: value.into(),
    }
}

/// Saturates instead of wrapping: sizes and offsets beyond `i64::MAX` cannot occur.
pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The `metadata` column: NULL for none (most fragments), else a JSON array of
/// `[name, value]` pairs in the producer's order.
pub(crate) fn encode_metadata(tags: &[MetadataTag]) -> Option<String> {
    (!tags.is_empty()).then(|| {
        let pairs: Vec<[&str; 2]> = tags.iter().map(|t| [&*t.name, &*t.value]).collect();
        serde_json::to_string(&pairs).expect("strings serialize")
    })
}

fn decode_metadata(column: Option<String>) -> Result<Vec<MetadataTag>, CatalogError> {
    let Some(text) = column else {
        return Ok(Vec::new());
    };
    let pairs: Vec<[String; 2]> =
        serde_json::from_str(&text).map_err(|_| corrupt("metadata", text.clone()))?;
    Ok(pairs
        .into_iter()
        .map(|[name, value]| MetadataTag { name, value })
        .collect())
}

/// A foreign-key failure on a stream id: the stream was deleted meanwhile.
pub(crate) fn missing_stream(e: sqlx::Error, stream: StreamId) -> CatalogError {
    match e.as_database_error() {
        // SQLite's trigger on a stream being deleted aborts with SQLITE_CONSTRAINT_TRIGGER
        // (PostgreSQL's raises a foreign key violation).
        Some(d) if d.is_foreign_key_violation() || d.code().as_deref() == Some("1811") => {
            CatalogError::StreamNotFound(format!("#{}", stream.0))
        }
        _ => CatalogError::Database(e),
    }
}

/// A fragment row selected as [`FRAGMENT_COLUMNS`], read by position (pages hold up to a
/// thousand rows).
pub(crate) fn fragment_from_row<'r, R>(
    row: &'r R,
    stream: StreamId,
) -> Result<FragmentRow, CatalogError>
where
    R: Row,
    usize: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let uint = |i: usize, c: &'static str| -> Result<u64, CatalogError> {
        let v: i64 = row.try_get(i)?;
        u64::try_from(v).map_err(|_| corrupt(c, v.to_string()))
    };
    let number: String = row.try_get(0)?;
    Ok(FragmentRow {
        stream,
        number: FragmentNumber::parse(&number).map_err(|_| corrupt("fragment_number", number))?,
        producer_timestamp: Timestamp::from_millis(row.try_get(1)?),
        server_timestamp: Timestamp::from_millis(row.try_get(2)?),
        duration_ms: uint(3, "duration_ms")?,
        size: uint(4, "size_bytes")?,
        object_key: row.try_get(5)?,
        offset: uint(6, "object_offset")?,
        length: uint(7, "object_length")?,
        header_id: row.try_get(8)?,
        metadata: decode_metadata(row.try_get(9)?)?,
    })
}

/// A stream row selected as [`STREAM_COLUMNS`].
pub(crate) fn stream_from_row<'r, R>(row: &'r R) -> Result<StreamRecord, CatalogError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let text = |c: &'static str| -> Result<String, CatalogError> { Ok(row.try_get(c)?) };
    let (name, arn, version) = (text("name")?, text("arn")?, text("version")?);
    let (status, tier) = (text("status")?, text("storage_tier")?);
    let retention: i64 = row.try_get("data_retention_hours")?;
    let info = StreamInfo {
        device_name: opt(row, "device_name", DeviceName::parse)?,
        stream_name: StreamName::parse(&name).map_err(|_| corrupt("name", &name))?,
        stream_arn: StreamArn::parse(&arn).map_err(|_| corrupt("arn", &arn))?,
        media_type: opt(row, "media_type", MediaType::parse)?,
        kms_key_id: opt(row, "kms_key_id", KmsKeyId::parse)?,
        version: Version::parse(&version).map_err(|_| corrupt("version", &version))?,
        status: StreamStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        creation_time: Timestamp::from_millis(row.try_get("creation_time_ms")?),
        data_retention_in_hours: u32::try_from(retention)
            .map_err(|_| corrupt("data_retention_hours", retention.to_string()))?,
    };
    let storage_tier = StorageTier::parse(&tier).ok_or_else(|| corrupt("storage_tier", &tier))?;
    Ok(StreamRecord {
        id: StreamId(row.try_get("id")?),
        info,
        storage_tier,
    })
}

/// A nullable text column parsed into a newtype.
fn opt<'r, R, T>(
    row: &'r R,
    column: &'static str,
    parse: fn(&str) -> Result<T, kinescope_api::ApiError>,
) -> Result<Option<T>, CatalogError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let v: Option<String> = row.try_get(column)?;
    v.map(|s| parse(&s).map_err(|_| corrupt(column, s)))
        .transpose()
}
