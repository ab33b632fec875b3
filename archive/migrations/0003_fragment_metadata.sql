-- The producer's fragment metadata (spec §3.5, design/0009): the user tags sent with a
-- fragment, returned after its Cluster by GetMedia and GetMediaForFragmentList. NULL for a
-- fragment without any (most), else a JSON array of [name, value] pairs in the producer's order.
ALTER TABLE fragments ADD COLUMN metadata TEXT;
