-- A batch forecast that a workflow's step makes names its execution: the step run again (its
-- worker killed after the run was recorded, before the step committed) finds that run rather
-- than recording a second, and writes its files under the same keys.

ALTER TABLE batch_forecasts ADD COLUMN execution_id TEXT;

CREATE UNIQUE INDEX batch_forecasts_by_execution ON batch_forecasts (model_group, execution_id)
    WHERE execution_id IS NOT NULL;
