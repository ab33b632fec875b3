-- Kinescope catalog schema on PostgreSQL: the same tables, columns and meaning as the SQLite
-- migrations one directory up (0001-0003 there), written as one PostgreSQL migration. Names and
-- fragment numbers use the "C" collation so that ORDER BY, comparisons and indexes are in byte
-- order, as in SQLite (fixed-width fragment numbers: text order is numeric order). Ids come from
-- identity sequences and are never reused.

CREATE TABLE streams (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    arn TEXT COLLATE "C" NOT NULL UNIQUE,
    device_name TEXT,
    media_type TEXT,
    kms_key_id TEXT,
    version TEXT NOT NULL,
    status TEXT NOT NULL,
    creation_time_ms BIGINT NOT NULL,
    data_retention_hours BIGINT NOT NULL,
    storage_tier TEXT NOT NULL
);

CREATE TABLE stream_tags (
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (stream_id, tag_key)
);

-- The EBML header, Info and Tracks of an upload, referenced by every fragment that follows it.
CREATE TABLE track_headers (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    header BYTEA NOT NULL
);
CREATE INDEX track_headers_by_stream ON track_headers (stream_id);

-- One row per fragment; its bytes are in the object store at (object_key, object_offset,
-- object_length). metadata: NULL, or a JSON array of [name, value] pairs (design/0009).
CREATE TABLE fragments (
    fragment_number TEXT COLLATE "C" PRIMARY KEY,
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    producer_ts_ms BIGINT NOT NULL,
    server_ts_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    size_bytes BIGINT NOT NULL,
    object_key TEXT NOT NULL,
    object_offset BIGINT NOT NULL,
    object_length BIGINT NOT NULL,
    header_id BIGINT NOT NULL REFERENCES track_headers(id) ON DELETE CASCADE,
    metadata TEXT
);

-- Range queries order by (timestamp, fragment_number): a page is read in index order.
CREATE INDEX fragments_by_producer_ts ON fragments (stream_id, producer_ts_ms, fragment_number);
CREATE INDEX fragments_by_server_ts ON fragments (stream_id, server_ts_ms, fragment_number);
CREATE INDEX fragments_by_stream_number ON fragments (stream_id, fragment_number);
