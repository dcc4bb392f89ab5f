-- Profile keys are never reused. A key freed by a delete could otherwise be given to the
-- next profile created (INTEGER PRIMARY KEY takes max + 1), and work still holding the old
-- key (an extraction in flight) would land in another tenant's profile. AUTOINCREMENT
-- would need the table rebuilt, which the foreign keys pointing at it make unsafe inside a
-- migration's transaction; a high-water mark holds the same guarantee for existing files.
CREATE TABLE profile_keys (last INTEGER NOT NULL);
INSERT INTO profile_keys (last) SELECT coalesce(max(pk), 0) FROM profiles;
CREATE TRIGGER profiles_key_never_reused BEFORE INSERT ON profiles
WHEN NEW.pk IS NULL OR NEW.pk <= (SELECT last FROM profile_keys)
BEGIN
    SELECT RAISE(ABORT, 'profile key reused: insert with pk = (SELECT last + 1 FROM profile_keys)');
END;
CREATE TRIGGER profiles_key_high_water AFTER INSERT ON profiles
BEGIN
    UPDATE profile_keys SET last = NEW.pk;
END;

-- When a failed attempt (the model rate limited, overloaded or unreachable) may be tried
-- again; NULL: as soon as a worker is free.
ALTER TABLE data_items ADD COLUMN next_attempt_at REAL;

-- An estimate of each item's tokens, taken at submit, so the worker can decide what to claim
-- and whether a batch is full without reading the items' content (about 3.5 characters a
-- token for the items stored before this column; chunking.estimate_tokens for new ones).
ALTER TABLE data_items ADD COLUMN tokens INTEGER NOT NULL DEFAULT 0;
UPDATE data_items SET tokens = (length(content) * 2 + 6) / 7;
