-- Conversion (Glue ETL): landed objects of a table become Hive-partitioned Parquet, exactly once.
-- A run writes its files under a staging prefix; one transaction records the files, their lineage
-- and a bookmark per source object (the commit point); then the files are moved into place.

CREATE TABLE conversion_runs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    table_id            BIGINT NOT NULL REFERENCES catalog_tables (id),
    curated_table_id    BIGINT REFERENCES catalog_tables (id),
    status              TEXT   NOT NULL,        -- running | committed | published | failed
    dest                TEXT   NOT NULL,        -- curated lake key prefix of the table
    started_at          BIGINT NOT NULL,
    finished_at         BIGINT,
    sources             BIGINT NOT NULL DEFAULT 0,
    records_read        BIGINT NOT NULL DEFAULT 0,
    records_written     BIGINT NOT NULL DEFAULT 0,
    records_quarantined BIGINT NOT NULL DEFAULT 0,
    files               BIGINT NOT NULL DEFAULT 0,
    bytes_written       BIGINT NOT NULL DEFAULT 0,
    duration_ms         BIGINT NOT NULL DEFAULT 0,
    error               TEXT,
    report              TEXT                    -- the ConvertReport document (JSON)
);

CREATE TABLE curated_files (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id           BIGINT NOT NULL REFERENCES conversion_runs (id),
    curated_table_id BIGINT NOT NULL REFERENCES catalog_tables (id),
    path             TEXT   NOT NULL UNIQUE,    -- final key in the curated lake
    staging_path     TEXT   NOT NULL,
    partition_id     BIGINT REFERENCES partitions (id),
    rows             BIGINT NOT NULL,
    bytes            BIGINT NOT NULL,
    schema_version   BIGINT NOT NULL,
    state            TEXT   NOT NULL,           -- staged | published | removed
    created_at       BIGINT NOT NULL
);

-- Bookmarks: a source object is converted once per table; the key makes a second commit fail.
CREATE TABLE converted_objects (
    table_id            BIGINT NOT NULL REFERENCES catalog_tables (id),
    source_key          TEXT   NOT NULL,
    run_id              BIGINT NOT NULL REFERENCES conversion_runs (id),
    records_read        BIGINT NOT NULL,
    records_written     BIGINT NOT NULL,
    records_quarantined BIGINT NOT NULL,
    quarantine_path     TEXT,
    converted_at        BIGINT NOT NULL,
    PRIMARY KEY (table_id, source_key)
);

-- Lineage: which output files each source object fed, and with how many rows.
CREATE TABLE file_sources (
    file_id     BIGINT NOT NULL REFERENCES curated_files (id),
    source_key  TEXT   NOT NULL,
    rows        BIGINT NOT NULL,
    PRIMARY KEY (file_id, source_key)
);

CREATE INDEX curated_files_by_table ON curated_files (curated_table_id, state);
CREATE INDEX file_sources_by_source ON file_sources (source_key);
