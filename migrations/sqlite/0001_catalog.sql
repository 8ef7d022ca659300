-- The Glue-style catalog. Times are epoch milliseconds (BIGINT) and documents are JSON text, so
-- the same queries run on SQLite and Postgres through sqlx's Any driver.

CREATE TABLE crawls (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    catalog_db      TEXT    NOT NULL,
    prefix          TEXT    NOT NULL,
    status          TEXT    NOT NULL,           -- running | succeeded | failed
    started_at      BIGINT  NOT NULL,
    finished_at     BIGINT,
    objects_listed  BIGINT  NOT NULL DEFAULT 0,
    objects_crawled BIGINT  NOT NULL DEFAULT 0,
    objects_failed  BIGINT  NOT NULL DEFAULT 0,
    objects_skipped BIGINT  NOT NULL DEFAULT 0,
    bytes_read      BIGINT  NOT NULL DEFAULT 0,
    duration_ms     BIGINT  NOT NULL DEFAULT 0,
    error           TEXT,
    report          TEXT                        -- the CrawlReport document (JSON)
);

CREATE TABLE catalog_databases (
    name        TEXT   PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

CREATE TABLE catalog_tables (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    catalog_db      TEXT    NOT NULL REFERENCES catalog_databases (name),
    name            TEXT    NOT NULL,
    location        TEXT    NOT NULL,           -- lake key prefix of the table's objects
    kind            TEXT    NOT NULL,           -- data | firehose_errors
    format          TEXT    NOT NULL,
    compression     TEXT    NOT NULL,
    schema_policy   TEXT    NOT NULL,           -- update | log
    current_version BIGINT  NOT NULL,
    partition_keys  TEXT    NOT NULL,           -- JSON [{"name","type"}]
    properties      TEXT    NOT NULL,           -- JSON (error codes of envelope tables, ...)
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    UNIQUE (catalog_db, name)
);

CREATE TABLE schema_versions (
    table_id    BIGINT NOT NULL REFERENCES catalog_tables (id),
    version     BIGINT NOT NULL,
    schema      TEXT   NOT NULL,                -- StoredSchema (JSON, versioned format)
    diff        TEXT   NOT NULL,                -- SchemaDiff against the previous version (JSON)
    crawl_id    BIGINT REFERENCES crawls (id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (table_id, version)
);

-- Schema changes seen on tables whose policy is `log`: recorded, not applied.
CREATE TABLE schema_changes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    table_id    BIGINT NOT NULL REFERENCES catalog_tables (id),
    crawl_id    BIGINT NOT NULL REFERENCES crawls (id),
    version     BIGINT NOT NULL,                -- the version the diff is against
    diff        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE schema_conflicts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    table_id    BIGINT NOT NULL REFERENCES catalog_tables (id),
    crawl_id    BIGINT NOT NULL REFERENCES crawls (id),
    column_path TEXT   NOT NULL,
    types       TEXT   NOT NULL,                -- JSON ["bigint","string"]
    examples    TEXT   NOT NULL,                -- JSON {"type": "example"}
    created_at  BIGINT NOT NULL
);

CREATE TABLE partitions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    table_id        BIGINT NOT NULL REFERENCES catalog_tables (id),
    location        TEXT   NOT NULL,
    partition_values TEXT  NOT NULL,            -- JSON ["2024","05","30","00"], in partition_keys order
    object_count    BIGINT NOT NULL DEFAULT 0,
    bytes           BIGINT NOT NULL DEFAULT 0,
    record_estimate BIGINT NOT NULL DEFAULT 0,
    crawl_id        BIGINT REFERENCES crawls (id),  -- NULL for partitions of curated tables
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (table_id, location)
);

CREATE TABLE objects (
    key             TEXT   PRIMARY KEY,
    etag            TEXT,
    size            BIGINT NOT NULL,
    last_modified   BIGINT NOT NULL,
    status          TEXT   NOT NULL,            -- crawled | failed
    format          TEXT,
    compression     TEXT,
    table_id        BIGINT REFERENCES catalog_tables (id),
    partition_id    BIGINT REFERENCES partitions (id),
    records         BIGINT NOT NULL DEFAULT 0,
    records_exact   BIGINT NOT NULL DEFAULT 0,  -- 1 when `records` was counted, 0 when estimated
    sampled_records BIGINT NOT NULL DEFAULT 0,
    malformed_records BIGINT NOT NULL DEFAULT 0,
    failure_reason  TEXT,
    error_codes     TEXT,                       -- JSON {"code": count} for Firehose error envelopes
    crawl_id        BIGINT NOT NULL REFERENCES crawls (id),
    crawled_at      BIGINT NOT NULL
);

CREATE INDEX objects_by_table ON objects (table_id, partition_id);
CREATE INDEX partitions_by_table ON partitions (table_id);
