-- The AI-management connection shape (alias, state, version, modification time) in real
-- columns. Before, they lived under a reserved "$meta" key inside settings; move them out.
ALTER TABLE connections ADD COLUMN alias TEXT;
ALTER TABLE connections ADD COLUMN is_active INTEGER NOT NULL DEFAULT 1;
ALTER TABLE connections ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE connections ADD COLUMN updated_at TEXT;
UPDATE connections SET
    alias = json_extract(settings, '$."$meta".alias'),
    is_active = coalesce(json_extract(settings, '$."$meta".is_active'), 1),
    version = coalesce(json_extract(settings, '$."$meta".version'), 1),
    updated_at = json_extract(settings, '$."$meta".updated_at'),
    settings = json_remove(settings, '$."$meta"')
WHERE json_valid(settings) AND json_type(settings, '$."$meta"') = 'object';
CREATE UNIQUE INDEX connections_alias ON connections (namespace, alias) WHERE alias IS NOT NULL;
