-- A Task, Parallel or Map state waiting to be retried: its retriers' attempts so far (a JSON
-- array; NULL when the state was entered afresh). The retry is a queued step due at entered_at.
ALTER TABLE executions ADD COLUMN retry_attempts TEXT;
