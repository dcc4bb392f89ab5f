-- Current documents are stored zlib-compressed (BLOB) from now on, like revisions (007).
-- The compression of existing rows is a Python step of this migration
-- (store._compress_documents), run in the same transaction; readers accept both forms.

-- Message Batches sent by 'process --batch': the API's batch id and the custom ids of
-- its requests (each a digest of the request), so an interrupted run finds the batch
-- again instead of sending the same requests twice.
CREATE TABLE extraction_batches (
    id          TEXT PRIMARY KEY,
    namespace   TEXT NOT NULL,
    model       TEXT NOT NULL,
    custom_ids  TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('submitted', 'ended')),
    created_at  TEXT NOT NULL,
    ended_at    TEXT
);

-- Of an item's requests, how many went through a batch (billed at half price).
ALTER TABLE data_items ADD COLUMN batch_requests INTEGER NOT NULL DEFAULT 0;
