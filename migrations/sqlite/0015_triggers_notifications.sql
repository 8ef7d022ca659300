-- Triggers (a workflow started by new landings under a prefix, or by detected drift) and
-- notification rules (webhooks on failures, drift, quarantine and rollbacks), with what each
-- did. Every claim is a row insert under a primary key, so that however many servers poll, each
-- object is counted once, each trigger window starts one execution and each event is delivered
-- once per rule.

CREATE TABLE triggers (
    name        TEXT   PRIMARY KEY,
    definition  TEXT   NOT NULL,   -- JSON of ops::workflows::triggers::TriggerDefinition (versioned)
    workflow    TEXT   NOT NULL REFERENCES workflows (name),
    paused      BIGINT NOT NULL DEFAULT 0,
    since       BIGINT NOT NULL,   -- events and objects from this time (ms) on count
    cursor      BIGINT NOT NULL,   -- newest event or object time seen (ms)
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- New objects a landing trigger has counted; `fire` is the window that took them.
CREATE TABLE trigger_objects (
    trigger_name  TEXT   NOT NULL REFERENCES triggers (name) ON DELETE CASCADE,
    key           TEXT   NOT NULL,
    last_modified BIGINT NOT NULL,
    size          BIGINT NOT NULL,
    seen_at       BIGINT NOT NULL,
    fire          TEXT,
    PRIMARY KEY (trigger_name, key)
);

CREATE INDEX trigger_objects_pending ON trigger_objects (trigger_name, fire, seen_at);

-- One row per firing: a landing window or a drift report, and the execution it started.
CREATE TABLE trigger_fires (
    trigger_name TEXT   NOT NULL REFERENCES triggers (name) ON DELETE CASCADE,
    fire         TEXT   NOT NULL,
    outcome      TEXT   NOT NULL,   -- claimed | started | skipped-window
    execution_id TEXT,
    detail       TEXT   NOT NULL,   -- JSON: what fired it (keys and counts, or the drift report)
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (trigger_name, fire)
);

CREATE TABLE notification_rules (
    name        TEXT   PRIMARY KEY,
    definition  TEXT   NOT NULL,   -- JSON of ops::notifications::RuleDefinition (versioned)
    secret      TEXT,              -- HMAC key of the X-Sluice-Signature header; never listed
    paused      BIGINT NOT NULL DEFAULT 0,
    since       BIGINT NOT NULL,
    cursor      BIGINT NOT NULL,   -- newest event time seen (ms)
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE notification_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    rule            TEXT   NOT NULL REFERENCES notification_rules (name) ON DELETE CASCADE,
    event           TEXT   NOT NULL,   -- the event's key: one delivery per rule and event
    kind            TEXT   NOT NULL,   -- execution.failed | execution.timed_out | drift.detected | ...
    body            TEXT   NOT NULL,   -- the JSON sent
    status          TEXT   NOT NULL,   -- pending | delivered | failed
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT NOT NULL DEFAULT 0,
    last_status     BIGINT,            -- the receiver's last HTTP status
    last_error      TEXT,
    event_at        BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    UNIQUE (rule, event)
);

CREATE INDEX notification_deliveries_due ON notification_deliveries (status, next_attempt_at);
CREATE INDEX conversion_runs_by_finish ON conversion_runs (finished_at);
CREATE INDEX drift_reports_by_time ON drift_reports (created_at);
