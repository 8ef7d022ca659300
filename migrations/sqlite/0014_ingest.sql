-- Ingest: Firehose-style delivery streams that `sluice server` accepts records for, and the
-- SigV4 credentials of `ingest` tokens (AWS SDKs sign their requests with an access key id and
-- a secret access key; the secret is kept here because a signature can only be checked by
-- computing it again).

CREATE TABLE delivery_streams (
    name        TEXT   PRIMARY KEY,
    definition  TEXT   NOT NULL,   -- JSON of ops::ingest::StreamDefinition (versioned)
    version     BIGINT NOT NULL,   -- bumped by every change (Firehose's VersionId)
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

ALTER TABLE api_tokens ADD COLUMN access_key_id TEXT;
ALTER TABLE api_tokens ADD COLUMN secret_access_key TEXT;
CREATE UNIQUE INDEX api_tokens_by_access_key ON api_tokens (access_key_id);
