-- Callback tasks (`.waitForTaskToken`). The step that runs such a Task issues its token before
-- the job runs (one per step: a step run again after a worker died reuses it), the job is given
-- the token, and the execution then waits, holding no worker, with `executions.callback_token`
-- set. SendTaskSuccess / SendTaskFailure answer the token once; SendTaskHeartbeat moves its
-- heartbeat deadline. `due_at` is when the wait runs out (the earlier of TimeoutSeconds from
-- issue and HeartbeatSeconds from the last heartbeat; NULL: never), and is when a step checks it.

CREATE TABLE task_tokens (
    token         TEXT   PRIMARY KEY,
    execution_id  TEXT   NOT NULL REFERENCES executions (id),
    step          BIGINT NOT NULL,              -- the step that issued it
    state         TEXT   NOT NULL,
    status        TEXT   NOT NULL,              -- WAITING | SUCCEEDED | FAILED | TIMED_OUT
    input         TEXT,                         -- the job's input, once it ran (what is asked)
    output        TEXT,
    error         TEXT,
    cause         TEXT,
    heartbeat_ms  BIGINT,                       -- HeartbeatSeconds, in ms
    timeout_at    BIGINT,                       -- issue + TimeoutSeconds
    heartbeat_at  BIGINT NOT NULL,              -- issue, then the last heartbeat
    due_at        BIGINT,
    created_at    BIGINT NOT NULL,
    answered_at   BIGINT,
    UNIQUE (execution_id, step)
);

CREATE INDEX task_tokens_by_status ON task_tokens (status, created_at);

ALTER TABLE executions ADD COLUMN callback_token TEXT;
