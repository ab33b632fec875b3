-- Which fragments point into an object: retention and stream deletion delete an object once
-- no row does (rows.rs, keys_in_use_sql).
CREATE INDEX fragments_by_object_key ON fragments (object_key);
