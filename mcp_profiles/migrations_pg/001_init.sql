-- The PostgreSQL schema: the same tables as SQLite's migrations/, mapped natively.
-- Profile keys come from an identity sequence, so a deleted profile's key is never reused.
CREATE TABLE profiles (
    pk          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace   TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    alias       TEXT,
    kind        TEXT    NOT NULL CHECK (kind IN ('user', 'assistant')),
    name        TEXT,
    summary     TEXT,
    version     INTEGER NOT NULL,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    document    TEXT    NOT NULL,
    -- Full-text search: words of name, alias, summary and attribute values, lowercased and
    -- without diacritics (done in Python, the same rules as the query side).
    search      TSVECTOR NOT NULL DEFAULT ''::tsvector,
    UNIQUE (namespace, id)
);
CREATE UNIQUE INDEX profiles_alias ON profiles (namespace, alias) WHERE alias IS NOT NULL;
CREATE INDEX profiles_kind ON profiles (namespace, kind, id);
CREATE INDEX profiles_search ON profiles USING GIN (search);

CREATE TABLE profile_tags (
    namespace   TEXT    NOT NULL,
    tag         TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    profile_pk  BIGINT  NOT NULL REFERENCES profiles (pk) ON DELETE CASCADE,
    PRIMARY KEY (namespace, tag, id)
);
CREATE INDEX profile_tags_pk ON profile_tags (profile_pk);

CREATE TABLE revisions (
    profile_pk  BIGINT  NOT NULL REFERENCES profiles (pk) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    namespace   TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    reason      TEXT,
    changed_at  TEXT    NOT NULL,
    diff        TEXT    NOT NULL,
    snapshot    TEXT    NOT NULL,
    PRIMARY KEY (profile_pk, version)
);
CREATE INDEX revisions_changed_at ON revisions (changed_at);

-- Raw inputs of upsert_profile_from_data, and the job queue. ``seq`` orders items as they
-- were submitted (SQLite's rowid).
CREATE TABLE data_items (
    seq                 BIGINT  GENERATED ALWAYS AS IDENTITY UNIQUE,
    id                  TEXT    PRIMARY KEY,
    namespace           TEXT    NOT NULL,
    profile_pk          BIGINT  NOT NULL REFERENCES profiles (pk) ON DELETE CASCADE,
    sha256              TEXT    NOT NULL,
    content             TEXT    NOT NULL,
    input_type          TEXT,
    status              TEXT    NOT NULL
                        CHECK (status IN ('pending', 'processing', 'done', 'failed')),
    error               TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    input_tokens        BIGINT  NOT NULL DEFAULT 0,
    output_tokens       BIGINT  NOT NULL DEFAULT 0,
    cache_read_tokens   BIGINT  NOT NULL DEFAULT 0,
    cache_write_tokens  BIGINT  NOT NULL DEFAULT 0,
    requests            BIGINT  NOT NULL DEFAULT 0,
    result              TEXT,
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL,
    claimed_by          TEXT,
    claimed_at          DOUBLE PRECISION,
    -- when a failed attempt may be tried again (NULL: as soon as a worker is free)
    next_attempt_at     DOUBLE PRECISION,
    -- the item's token estimate, taken at submit, so claims need not read the content
    tokens              INTEGER NOT NULL DEFAULT 0,
    -- the content's size, which outlives the content (retention deletes processed content)
    bytes               INTEGER NOT NULL DEFAULT 0,
    content_deleted_at  TEXT,
    -- of an item's requests, how many went through a Message Batch (billed at half price)
    batch_requests      BIGINT  NOT NULL DEFAULT 0,
    UNIQUE (profile_pk, sha256)
);
CREATE INDEX data_items_queue ON data_items (status, created_at);
CREATE INDEX data_items_profile ON data_items (profile_pk, status, seq);
CREATE INDEX data_items_retention ON data_items (status, updated_at) WHERE content_deleted_at IS NULL;

CREATE TABLE connections (
    namespace    TEXT NOT NULL,
    id           TEXT NOT NULL,
    name         TEXT,
    provider_id  TEXT NOT NULL,
    api_key_env  TEXT,
    settings     TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT NOT NULL,
    PRIMARY KEY (namespace, id)
);

-- Message Batches sent by 'process --batch': the API's batch id and the custom ids of its
-- requests, so an interrupted run finds the batch again instead of sending it twice.
CREATE TABLE extraction_batches (
    id          TEXT PRIMARY KEY,
    namespace   TEXT NOT NULL,
    model       TEXT NOT NULL,
    custom_ids  TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('submitted', 'ended')),
    created_at  TEXT NOT NULL,
    ended_at    TEXT
);
