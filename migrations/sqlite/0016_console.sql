-- The console: sessions of people logged in with a token, and the indexes that keep the
-- executions list a range scan however many executions there are and however it is filtered.

-- A session: its cookie's id is kept only as a SHA-256 hash; it lives while its token does
-- (revoking the token ends every session opened with it) and until it expires. `csrf` is the
-- value every state-changing form of the session must send back.
CREATE TABLE console_sessions (
    id_hash     TEXT   PRIMARY KEY,
    token_id    TEXT   NOT NULL REFERENCES api_tokens (id),
    csrf        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

CREATE INDEX executions_by_start ON executions (started_at, id);
CREATE INDEX executions_by_workflow_start ON executions (workflow, started_at, id);
CREATE INDEX executions_by_status_start ON executions (status, started_at, id);
