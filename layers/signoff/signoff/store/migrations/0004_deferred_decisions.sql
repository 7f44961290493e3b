-- Decisions that arrived from outside (webhook, Slack, link, queue) while an invocation was executing
-- the run: kept on the run, never touching its executing state, and applied (checked again) when the
-- run is next free. Written without bumping the run's version, under the row lock, so an executing
-- invocation's next version-checked save reads them back in the same statement.
ALTER TABLE runs ADD COLUMN deferred jsonb NOT NULL DEFAULT '[]'::jsonb;
CREATE INDEX runs_deferred_idx ON runs (updated_at) WHERE deferred <> '[]'::jsonb;
