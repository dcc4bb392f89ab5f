-- Revision diffs and snapshots are stored zlib-compressed (BLOB) from now on. The columns
-- keep their names; SQLite stores a BLOB in a TEXT column as it is. The compression of
-- existing rows is a Python step of this migration (store._compress_revisions), run in
-- the same transaction. Readers accept both forms (store.unpack).
SELECT 1;
