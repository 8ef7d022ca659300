-- The model registry, serving endpoints and API tokens.
--
-- Every change to a model group (a version registered, a status set, an alias moved) bumps the
-- group's generation in the same transaction and records one event under that generation, so
-- the events are the group's full, ordered history and a server knows it is current by
-- comparing one number.

CREATE TABLE model_groups (
    name        TEXT   PRIMARY KEY,
    generation  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE model_versions (
    group_name         TEXT   NOT NULL REFERENCES model_groups (name),
    version            BIGINT NOT NULL,
    status             TEXT   NOT NULL,   -- pending | approved | rejected | archived
    status_reason      TEXT,
    artifact           TEXT   NOT NULL,   -- lake key of the model directory
    dataset_snapshot   TEXT,
    training_execution TEXT,
    hyperparameters    TEXT   NOT NULL,   -- JSON object, SageMaker names
    metrics            TEXT   NOT NULL,   -- JSON: backtest metrics of the model
    baseline_metrics   TEXT   NOT NULL,   -- JSON: seasonal naive on the same windows
    created_by         TEXT   NOT NULL,
    created_at         BIGINT NOT NULL,
    PRIMARY KEY (group_name, version)
);

CREATE TABLE model_aliases (
    group_name  TEXT   NOT NULL,
    alias       TEXT   NOT NULL,
    version     BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (group_name, alias),
    FOREIGN KEY (group_name, version) REFERENCES model_versions (group_name, version)
);

CREATE TABLE model_events (
    group_name    TEXT   NOT NULL REFERENCES model_groups (name),
    generation    BIGINT NOT NULL,
    kind          TEXT   NOT NULL,   -- registered | status | alias-moved | alias-removed
    version       BIGINT,
    alias         TEXT,
    from_version  BIGINT,
    status        TEXT,
    actor         TEXT   NOT NULL,
    reason        TEXT   NOT NULL,
    at            BIGINT NOT NULL,
    PRIMARY KEY (group_name, generation)
);

-- An endpoint serves one model group through weighted variants, each following an alias or
-- pinned to a version. Its generation moves with every change, as a group's does.
CREATE TABLE endpoints (
    name        TEXT   PRIMARY KEY,
    model_group TEXT   NOT NULL REFERENCES model_groups (name),
    variants    TEXT   NOT NULL,   -- JSON array: name, alias or version, weight
    generation  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- API tokens: only a SHA-256 of the secret is stored.
CREATE TABLE api_tokens (
    id          TEXT   PRIMARY KEY,
    name        TEXT   NOT NULL,
    secret_hash TEXT   NOT NULL UNIQUE,
    scope       TEXT   NOT NULL,   -- admin | predict
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
