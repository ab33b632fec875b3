-- Fragments whose bytes are still in the fragment log (design/0014), in packing order. Partial:
-- only those rows, a few minutes' worth, whatever the table's size. Queries must repeat the
-- condition exactly (archive/src/rows.rs, FRAGMENTS_IN_LOG).
CREATE INDEX fragments_in_log ON fragments (stream_id, fragment_number) WHERE object_key LIKE 'log/%';
