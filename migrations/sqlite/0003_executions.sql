-- Workflows and their executions. An execution's position (the state it is at, that state's raw
-- input, the variables, when the state was entered) moves one state per step; each step commits
-- its history events and the new position in one transaction, guarded by the step number, so a
-- duplicate delivery of a step changes nothing.

CREATE TABLE workflows (
    name        TEXT   PRIMARY KEY,
    version     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE workflow_versions (
    name        TEXT   NOT NULL REFERENCES workflows (name),
    version     BIGINT NOT NULL,
    definition  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE executions (
    id            TEXT   PRIMARY KEY,
    workflow      TEXT   NOT NULL REFERENCES workflows (name),
    name          TEXT   NOT NULL,
    version       BIGINT NOT NULL,
    status        TEXT   NOT NULL,          -- RUNNING | SUCCEEDED | FAILED | ABORTED
    input         TEXT   NOT NULL,
    output        TEXT,
    error         TEXT,
    cause         TEXT,
    state         TEXT   NOT NULL,          -- the current (or failed) state
    state_input   TEXT   NOT NULL,
    variables     TEXT   NOT NULL,
    entered_at    BIGINT NOT NULL,
    step          BIGINT NOT NULL,
    redrive_count BIGINT NOT NULL DEFAULT 0,
    started_at    BIGINT NOT NULL,
    stopped_at    BIGINT,
    updated_at    BIGINT NOT NULL,
    UNIQUE (workflow, name)
);

CREATE TABLE execution_events (
    execution_id TEXT   NOT NULL REFERENCES executions (id),
    seq          BIGINT NOT NULL,
    kind         TEXT   NOT NULL,
    state        TEXT,
    details      TEXT   NOT NULL,
    at           BIGINT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

CREATE INDEX executions_by_status ON executions (status, updated_at);
