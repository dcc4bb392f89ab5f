-- Current documents are stored zlib-compressed (BLOB) from now on, like revisions (007).
-- The compression of existing rows is a Python step of this migration
-- (store._compress_documents), run in the same transaction; readers accept both forms.
SELECT 1;
