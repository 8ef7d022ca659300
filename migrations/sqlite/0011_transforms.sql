-- Derived tables (`sluice:transform`): a SELECT over curated tables written as a curated table.
-- A run is a conversion_runs row (its files go through the same manifest, publish and vacuum);
-- this row, written at its commit, says what it was built from. `previous_run` is the committed
-- run it replaces (0 for the first): two runs that raced from the same state cannot both commit,
-- so each input of a derived table is built exactly once.

CREATE TABLE transform_runs (
    run_id       BIGINT NOT NULL PRIMARY KEY REFERENCES conversion_runs (id),
    catalog_db   TEXT   NOT NULL,
    target       TEXT   NOT NULL,               -- the derived table's name
    input_id     TEXT   NOT NULL,               -- tf-…: SHA-256 over the SQL, the partitioning and every file read
    sql_text     TEXT   NOT NULL,
    sources      TEXT   NOT NULL,               -- JSON [{"table", "files_read", "files_total", ...}]
    previous_run BIGINT NOT NULL,
    rows_written BIGINT NOT NULL,
    committed_at BIGINT NOT NULL
);

CREATE UNIQUE INDEX transform_runs_once ON transform_runs (catalog_db, target, previous_run);
CREATE INDEX transform_runs_by_target ON transform_runs (catalog_db, target, run_id);
