-- Stable schemas. A conflict says what became of its minority values, with the counts seen; a
-- type change the table's policy does not apply waits in type_changes for a person's decision.

ALTER TABLE schema_conflicts ADD COLUMN counts TEXT NOT NULL DEFAULT '[]';          -- JSON [["double", 9990], ["string", 10]]
ALTER TABLE schema_conflicts ADD COLUMN resolved_type TEXT NOT NULL DEFAULT 'string';
ALTER TABLE schema_conflicts ADD COLUMN resolution TEXT NOT NULL DEFAULT 'written_as_text'; -- quarantined | written_as_text

CREATE TABLE type_changes (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    table_id        BIGINT NOT NULL REFERENCES catalog_tables (id),
    column_path     TEXT   NOT NULL,
    from_type       TEXT   NOT NULL,                -- type names, as shown
    to_type         TEXT   NOT NULL,
    to_field        TEXT   NOT NULL,                -- StoredSchema of the one proposed field
    status          TEXT   NOT NULL,                -- pending | accepted | dismissed
    counts          TEXT   NOT NULL,                -- JSON [["double", n], ["string", m]], summed over crawls
    objects         TEXT   NOT NULL,                -- JSON [key, ...]: the first objects that carry the new type
    objects_total   BIGINT NOT NULL,
    first_crawl_id  BIGINT NOT NULL REFERENCES crawls (id),
    last_crawl_id   BIGINT NOT NULL REFERENCES crawls (id),
    first_seen      BIGINT NOT NULL,
    last_seen       BIGINT NOT NULL,
    decided_by      TEXT,
    decided_at      BIGINT,
    reason          TEXT,
    applied_version BIGINT                          -- the schema version an acceptance made
);

-- objects.status gains 'gone': deleted from the landing area after a crawl, out of the figures.

CREATE UNIQUE INDEX type_changes_pending ON type_changes (table_id, column_path, to_type) WHERE status = 'pending';

-- The old default policy was stored as 'update' on every table, so a choice cannot be told from
-- the default: tables move to the new default, add_columns (sluice catalog set-policy T update
-- restores the old behaviour).
UPDATE catalog_tables SET schema_policy = 'add_columns' WHERE schema_policy = 'update';
