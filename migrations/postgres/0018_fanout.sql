-- Durable Parallel and Map. A Parallel's branches, a Map's iterations and a distributed Map's
-- child executions each run as an execution of their own (a child), step by step on whichever
-- worker takes them, while the state that started them waits holding no worker. A fan-out is a
-- map run: its children's inputs are stored when the state starts it, and at most
-- max_concurrency of them run at once across every worker (the counters are updated in the
-- transaction that ends a child, which starts the next one). The child whose end decides the
-- run (the last, or a failure past the tolerated ones) enqueues its parent's step in the same
-- transaction. A redrive of the parent runs again only the children that did not succeed.

CREATE TABLE map_runs (
    id                    TEXT   PRIMARY KEY,
    execution_id          TEXT   NOT NULL REFERENCES executions (id),
    step                  BIGINT NOT NULL,          -- the parent's step that started it
    state                 TEXT   NOT NULL,
    kind                  TEXT   NOT NULL,          -- PARALLEL | MAP | DISTRIBUTED
    status                TEXT   NOT NULL,          -- RUNNING | SUCCEEDED | FAILED | ABORTED
    total                 BIGINT NOT NULL,
    max_concurrency       BIGINT NOT NULL,          -- 0: every child at once
    tolerated_count       BIGINT,
    tolerated_percentage  DOUBLE PRECISION,
    pending               BIGINT NOT NULL,          -- not started yet
    running               BIGINT NOT NULL,
    succeeded             BIGINT NOT NULL,
    failed                BIGINT NOT NULL,
    starts                TEXT   NOT NULL,          -- each branch's StartAt (a JSON array)
    variables             TEXT   NOT NULL,          -- the variables every child starts with
    context               TEXT   NOT NULL,          -- what $$.Execution shows inside: the root execution
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    UNIQUE (execution_id, step)
);

-- One child of a run: its input, kept from the start so that it can start later (MaxConcurrency)
-- or again (redrive); execution_id once it has started.
CREATE TABLE map_items (
    run_id        TEXT   NOT NULL REFERENCES map_runs (id),
    idx           BIGINT NOT NULL,
    branch        BIGINT NOT NULL,
    input         TEXT   NOT NULL,
    map_item      TEXT,                             -- $$.Map.Item inside it (JSON); NULL in a branch
    status        TEXT   NOT NULL,                  -- PENDING | STARTED
    execution_id  TEXT,
    PRIMARY KEY (run_id, idx)
);

CREATE INDEX map_items_pending ON map_items (run_id, status, idx);

-- A child execution knows its run and place, and where its machine is in the workflow's
-- definition (a JSON array of [state, branch] from the top; NULL for a top-level execution).
-- A parent names the run it waits for (kept when it fails there, for redrive).
ALTER TABLE executions ADD COLUMN parent_id TEXT;
ALTER TABLE executions ADD COLUMN map_run_id TEXT;
ALTER TABLE executions ADD COLUMN child_index BIGINT;
ALTER TABLE executions ADD COLUMN machine_path TEXT;
ALTER TABLE executions ADD COLUMN map_item TEXT;
ALTER TABLE executions ADD COLUMN context TEXT;
ALTER TABLE executions ADD COLUMN waiting_run TEXT;

CREATE INDEX executions_by_map_run ON executions (map_run_id, status);
CREATE INDEX executions_by_parent ON executions (parent_id);
