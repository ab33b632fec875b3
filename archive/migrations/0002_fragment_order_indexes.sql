-- Fragment range queries order by (timestamp, fragment_number): index exactly that, so a page
-- is read in index order without a sort.
DROP INDEX fragments_by_producer_ts;
DROP INDEX fragments_by_server_ts;
CREATE INDEX fragments_by_producer_ts ON fragments (stream_id, producer_ts_ms, fragment_number);
CREATE INDEX fragments_by_server_ts ON fragments (stream_id, server_ts_ms, fragment_number);
