-- Data lifecycle: an item's size outlives its content (retention deletes raw content of
-- processed items but keeps id, sha256, status and usage), and old versions are pruned by
-- age, so revisions are found by when they were made.
ALTER TABLE data_items ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
UPDATE data_items SET bytes = length(CAST(content AS BLOB));
ALTER TABLE data_items ADD COLUMN content_deleted_at TEXT;
CREATE INDEX data_items_retention ON data_items (status, updated_at) WHERE content_deleted_at IS NULL;
CREATE INDEX revisions_changed_at ON revisions (changed_at);
