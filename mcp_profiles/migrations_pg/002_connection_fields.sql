-- The AI-management connection shape (alias, state, version, modification time) in real
-- columns. Before, they lived under a reserved "$meta" key inside settings; move them out.
ALTER TABLE connections ADD COLUMN alias TEXT;
ALTER TABLE connections ADD COLUMN is_active BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE connections ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE connections ADD COLUMN updated_at TEXT;
UPDATE connections SET
    alias = settings::jsonb -> '$meta' ->> 'alias',
    is_active = coalesce((settings::jsonb -> '$meta' ->> 'is_active')::boolean, TRUE),
    version = coalesce((settings::jsonb -> '$meta' ->> 'version')::integer, 1),
    updated_at = settings::jsonb -> '$meta' ->> 'updated_at',
    settings = (settings::jsonb - '$meta')::text
WHERE jsonb_typeof(settings::jsonb -> '$meta') = 'object';
CREATE UNIQUE INDEX connections_alias ON connections (namespace, alias) WHERE alias IS NOT NULL;
