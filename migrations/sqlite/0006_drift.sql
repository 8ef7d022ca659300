-- Drift reports: the verdict in columns for listing, the whole report as a JSON document (also
-- written to the lake under reports/drift/<id>.json).

CREATE TABLE drift_reports (
    id          TEXT   PRIMARY KEY,
    subject     TEXT   NOT NULL,   -- what was checked: a model group, a table, a dataset
    detected    BIGINT NOT NULL,   -- 0 | 1
    reasons     TEXT   NOT NULL,   -- JSON array of strings
    report      TEXT   NOT NULL,   -- JSON document, format 1
    created_at  BIGINT NOT NULL
);

CREATE INDEX drift_reports_by_subject ON drift_reports (subject, created_at);
