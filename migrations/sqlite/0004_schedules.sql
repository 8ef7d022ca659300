-- Cron schedules of workflows. A tick is claimed by inserting its row: one replica wins, so each
-- tick fires once however many schedulers run; its execution is named after the tick, so even a
-- start repeated after a crash starts one execution.

CREATE TABLE schedules (
    name           TEXT   PRIMARY KEY,
    cron           TEXT   NOT NULL,
    timezone       TEXT   NOT NULL,
    workflow       TEXT   NOT NULL REFERENCES workflows (name),
    input          TEXT   NOT NULL,
    catchup        TEXT   NOT NULL,   -- skip | latest | all
    window_seconds BIGINT NOT NULL,
    overlap        TEXT   NOT NULL,   -- skip | buffer-one | allow
    paused         BIGINT NOT NULL DEFAULT 0,
    last_tick      BIGINT NOT NULL,   -- ticks after this (ms) are still to come
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE schedule_ticks (
    schedule     TEXT   NOT NULL REFERENCES schedules (name) ON DELETE CASCADE,
    tick         BIGINT NOT NULL,
    outcome      TEXT   NOT NULL,     -- claimed | started | skipped-missed | skipped-overlap | buffered
    execution_id TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (schedule, tick)
);
