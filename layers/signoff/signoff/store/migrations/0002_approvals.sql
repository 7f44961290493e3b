-- Approval links (one token per tool call and decision, stored hashed) and webhook replay guard.
CREATE TABLE approval_tokens (
    token_hash   text PRIMARY KEY,
    run_id       text NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    tool_call_id text NOT NULL,
    decision     text NOT NULL CHECK (decision IN ('approve', 'reject')),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX approval_tokens_call_idx ON approval_tokens (run_id, tool_call_id);

CREATE TABLE webhook_deliveries (
    delivery_id text PRIMARY KEY,
    channel     text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_age_idx ON webhook_deliveries (received_at);

-- Superseded by approval_tokens.
ALTER TABLE tool_calls DROP COLUMN approval_token_hash;
