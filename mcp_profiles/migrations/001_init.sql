-- Profiles: the JSON document plus the columns we look up and list by.
CREATE TABLE profiles (
    pk          INTEGER PRIMARY KEY,
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
    UNIQUE (namespace, id)
);
CREATE UNIQUE INDEX profiles_alias ON profiles (namespace, alias) WHERE alias IS NOT NULL;
CREATE INDEX profiles_kind ON profiles (namespace, kind, id);

-- Tags, so listing by tag uses an index instead of reading every document.
CREATE TABLE profile_tags (
    namespace   TEXT    NOT NULL,
    tag         TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    profile_pk  INTEGER NOT NULL REFERENCES profiles (pk) ON DELETE CASCADE,
    PRIMARY KEY (namespace, tag, id)
) WITHOUT ROWID;
CREATE INDEX profile_tags_pk ON profile_tags (profile_pk);

-- Every version of every profile: who, why, what changed, and the whole document.
CREATE TABLE revisions (
    profile_pk  INTEGER NOT NULL REFERENCES profiles (pk) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    namespace   TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    reason      TEXT,
    changed_at  TEXT    NOT NULL,
    diff        TEXT    NOT NULL,
    snapshot    TEXT    NOT NULL,
    PRIMARY KEY (profile_pk, version)
) WITHOUT ROWID;

-- Raw inputs of upsert_profile_from_data. This table is also the job queue.
CREATE TABLE data_items (
    id                  TEXT    PRIMARY KEY,
    namespace           TEXT    NOT NULL,
    profile_pk          INTEGER NOT NULL REFERENCES profiles (pk) ON DELETE CASCADE,
    sha256              TEXT    NOT NULL,
    content             TEXT    NOT NULL,
    input_type          TEXT,
    status              TEXT    NOT NULL
                        CHECK (status IN ('pending', 'processing', 'done', 'failed')),
    error               TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    input_tokens        INTEGER NOT NULL DEFAULT 0,
    output_tokens       INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens   INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens  INTEGER NOT NULL DEFAULT 0,
    requests            INTEGER NOT NULL DEFAULT 0,
    result              TEXT,
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL,
    UNIQUE (profile_pk, sha256)
);
CREATE INDEX data_items_queue ON data_items (status, created_at);
CREATE INDEX data_items_profile ON data_items (profile_pk, status);

-- Model provider connections. Secrets are never stored, only the variable holding them.
CREATE TABLE connections (
    namespace    TEXT NOT NULL,
    id           TEXT NOT NULL,
    name         TEXT,
    provider_id  TEXT NOT NULL,
    api_key_env  TEXT,
    settings     TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT NOT NULL,
    PRIMARY KEY (namespace, id)
) WITHOUT ROWID;

-- Full-text search over name, alias, summary and attribute values; rowid = profiles.pk.
CREATE VIRTUAL TABLE profiles_fts USING fts5 (
    name, alias, summary, attrs,
    tokenize = 'unicode61 remove_diacritics 2'
);
