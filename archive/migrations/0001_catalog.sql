-- Kinescope catalog schema: streams, their tags, the track headers of their uploads and the
-- fragment index. Portable DDL (SQLite and PostgreSQL): timestamps are BIGINT milliseconds since
-- the epoch; ids are never reused, so rows of a deleted stream can never be mistaken for a new
-- stream of the same name.

CREATE TABLE streams (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    arn TEXT NOT NULL UNIQUE,
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

-- The EBML header, Info and Tracks of an upload, stored once per version and referenced by
-- every fragment that follows it.
CREATE TABLE track_headers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    header BLOB NOT NULL
);

-- One row per fragment (one uploaded MKV cluster). fragment_number is a fixed-width decimal
-- string, so its text order is its numeric order. The bytes live in the object store at
-- (object_key, object_offset, object_length).
CREATE TABLE fragments (
    fragment_number TEXT PRIMARY KEY,
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    producer_ts_ms BIGINT NOT NULL,
    server_ts_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    size_bytes BIGINT NOT NULL,
    object_key TEXT NOT NULL,
    object_offset BIGINT NOT NULL,
    object_length BIGINT NOT NULL,
    header_id BIGINT NOT NULL REFERENCES track_headers(id)
);

CREATE INDEX fragments_by_producer_ts ON fragments (stream_id, producer_ts_ms);
CREATE INDEX fragments_by_server_ts ON fragments (stream_id, server_ts_ms);
CREATE INDEX fragments_by_stream_number ON fragments (stream_id, fragment_number);
