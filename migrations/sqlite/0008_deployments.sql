-- Deployments of a model version to an endpoint (all at once, canary or linear, with a bake
-- time and automatic rollback), and the per-process serving figures their controller reads.

CREATE TABLE deployments (
    id                TEXT   PRIMARY KEY,
    endpoint          TEXT   NOT NULL REFERENCES endpoints (name),
    from_version      BIGINT,
    to_version        BIGINT NOT NULL,
    settings          TEXT   NOT NULL,   -- JSON: strategy, percents, bake, thresholds
    original_variants TEXT   NOT NULL,   -- the endpoint's variants before, restored on rollback
    status            TEXT   NOT NULL,   -- baking | succeeded | rolled-back
    weight            BIGINT NOT NULL,   -- percent of traffic on to_version
    step_started_at   BIGINT NOT NULL,
    reason            TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);

CREATE INDEX deployments_by_endpoint ON deployments (endpoint, created_at);

CREATE TABLE serving_stats (
    endpoint   TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    process    TEXT   NOT NULL,
    at         BIGINT NOT NULL,   -- end of the flushed interval (ms)
    requests   BIGINT NOT NULL,
    errors     BIGINT NOT NULL,   -- answers with a 5xx status
    buckets    TEXT   NOT NULL,   -- JSON: request counts per latency bucket
    PRIMARY KEY (endpoint, version, process, at)
);
