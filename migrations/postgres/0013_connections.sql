-- Connections: named credentials HTTP Tasks authenticate with (`Authentication: {"ConnectionArn":
-- NAME}`), as EventBridge connections are for Step Functions. The secret lives here, never in a
-- definition or a history; listings show only the kind and the header names.

CREATE TABLE connections (
    name           TEXT   PRIMARY KEY,
    secret         TEXT   NOT NULL,         -- JSON {"type": "basic"|"api_key"|"bearer", ...secret}
    headers        TEXT   NOT NULL,         -- JSON object: headers every request carries
    query          TEXT   NOT NULL,         -- JSON object: query parameters every request carries
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
