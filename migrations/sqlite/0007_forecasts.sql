-- Stored forecast runs (batch, or flushed from what endpoints served): each run's Parquet file
-- in the lake, and the model version that made it.

CREATE TABLE batch_forecasts (
    id            TEXT   PRIMARY KEY,
    model_group   TEXT   NOT NULL,
    model_version BIGINT NOT NULL,
    lake_key      TEXT   NOT NULL,
    items         BIGINT NOT NULL,
    row_count     BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    source        TEXT   NOT NULL   -- batch | served
);

CREATE INDEX batch_forecasts_by_group ON batch_forecasts (model_group, created_at);
