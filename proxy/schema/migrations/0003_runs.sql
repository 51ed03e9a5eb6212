-- Runs: each process start of a Loom instance is a run (loom.run.id), and
-- loom.seq numbers the calls of one run from 1 with no gaps, so a gap is
-- found per (instance_id, run_id). The instance id is stable for as long as
-- the instance's spool directory lives; a run that crashed has no closing
-- marker span (name 'loom run', loom.run.event 'stop' in attributes).
ALTER TABLE loom.spans ADD COLUMN run_id text; -- loom.run.id

CREATE INDEX spans_instance_run_seq_idx ON loom.spans (instance_id, run_id, seq);
-- The new index leads with instance_id too: the old one is redundant.
DROP INDEX loom.spans_instance_seq_idx;
