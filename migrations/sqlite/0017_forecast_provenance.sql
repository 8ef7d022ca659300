-- What a forecast run was made from, so that a chart can show each series' history beside its
-- forecast and the actuals that landed later: the input it read (a file of series), the
-- dataset it came from when the input was a dataset's file (its table, catalog and spec, as
-- JSON), and the lake key of the history kept beside the forecast (the last points of each
-- series before the forecast starts). All are empty for runs written before this migration.

ALTER TABLE batch_forecasts ADD COLUMN input TEXT;
ALTER TABLE batch_forecasts ADD COLUMN dataset TEXT;
ALTER TABLE batch_forecasts ADD COLUMN history_key TEXT;

CREATE INDEX batch_forecasts_by_created ON batch_forecasts (created_at, id);
