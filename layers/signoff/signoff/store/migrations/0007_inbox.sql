-- The approver's inbox lists pages of pending approvals with what an approver needs at a glance,
-- read from indexed columns rather than from each run's (possibly large, compressed) state document:
-- the start of the user's request on the run, and what the human is asked on the call (the
-- user-input fields, the agent's questions), and who asked (the run's owner, copied to its calls so that
-- who may see or decide a record is a condition on the record alone).
ALTER TABLE runs ADD COLUMN request text;
ALTER TABLE tool_calls ADD COLUMN asks jsonb, ADD COLUMN requested_by text;
UPDATE runs SET request = left(state->>'input_content', 1000);
UPDATE tool_calls t SET requested_by = r.user_id FROM runs r WHERE r.run_id = t.run_id;
UPDATE tool_calls t
SET asks = jsonb_strip_nulls(jsonb_build_object(
        'user_input_schema', c->'user_input_schema', 'user_feedback_schema', c->'user_feedback_schema'))
FROM runs r, jsonb_array_elements(r.state->'tools') c
WHERE r.run_id = t.run_id AND c->>'tool_call_id' = t.tool_call_id AND t.approval_id IS NOT NULL
  AND (jsonb_typeof(c->'user_input_schema') = 'array' OR jsonb_typeof(c->'user_feedback_schema') = 'array');
-- The inbox's newest-first page of pending records of one tool walks this index.
CREATE INDEX tool_calls_pending_by_tool_idx ON tool_calls (tool_name, created_at DESC)
    WHERE approval_id IS NOT NULL AND state = 'awaiting_decision';
