-- Who is processing an item, so a restarted server can tell its own crashed work
-- (owner process gone) from another live process's work (lease not yet expired).
ALTER TABLE data_items ADD COLUMN claimed_by TEXT;
ALTER TABLE data_items ADD COLUMN claimed_at REAL;
