-- AgentOS's approvals API: every paused call that waits on a human is an approval record, kept on its
-- tool_calls row (one record per call: approver rights are per tool). The record's status follows
-- the call's state; who may see it follows the run's owner and the tool's approvers, stored here at
-- the pause so that a list is one indexed query.
ALTER TABLE tool_calls
    ADD COLUMN approval_id text,
    ADD COLUMN approval_type text CHECK (approval_type IN ('required', 'audit')),
    ADD COLUMN approvers text[] NOT NULL DEFAULT '{}',
    ADD COLUMN resolution_data jsonb,
    ADD COLUMN approval_deleted_at timestamptz;
CREATE UNIQUE INDEX tool_calls_approval_idx ON tool_calls (approval_id) WHERE approval_id IS NOT NULL;
CREATE INDEX tool_calls_pending_approvals_idx ON tool_calls (created_at DESC, approval_id)
    WHERE approval_id IS NOT NULL AND state = 'awaiting_decision';
CREATE INDEX tool_calls_approvers_idx ON tool_calls USING gin (approvers) WHERE approval_id IS NOT NULL;
