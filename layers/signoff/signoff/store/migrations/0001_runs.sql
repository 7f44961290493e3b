-- Sessions, runs (one row each), tool calls (one row each) and the append-only audit log.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE sessions (
    session_id  text PRIMARY KEY,
    agent_id    text NOT NULL,
    user_id     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_user_idx ON sessions (user_id, updated_at DESC);

CREATE TABLE runs (
    run_id      text PRIMARY KEY,
    session_id  text NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    agent_id    text NOT NULL,
    user_id     text,
    status      text NOT NULL
                CHECK (status IN ('PENDING', 'RUNNING', 'PAUSED', 'COMPLETED', 'ERROR', 'CANCELLED')),
    -- Bumped by every write: a save or claim conditional on it is the run's lock.
    version     integer NOT NULL DEFAULT 1,
    lease_until timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- The versioned RunState document (messages, tools, content, metrics).
    state       jsonb NOT NULL
);
CREATE INDEX runs_session_idx ON runs (session_id, created_at);
CREATE INDEX runs_lease_idx ON runs (lease_until) WHERE status = 'RUNNING';

CREATE TABLE tool_calls (
    run_id              text NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    tool_call_id        text NOT NULL,
    tool_name           text NOT NULL,
    args                jsonb NOT NULL,
    args_digest         text NOT NULL,
    requirement         text CHECK (requirement IN ('confirmation', 'user_input', 'external_execution')),
    state               text NOT NULL CHECK (state IN (
                            'proposed', 'awaiting_decision', 'approved', 'rejected', 'expired',
                            'executing', 'succeeded', 'failed', 'outcome_unknown')),
    decided_by          text,
    decided_at          timestamptz,
    decision_channel    text,
    decision_digest     text,
    note                text,
    result              text,
    approval_token_hash text UNIQUE,
    expires_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, tool_call_id)
);
CREATE INDEX tool_calls_expiry_idx ON tool_calls (expires_at) WHERE state = 'awaiting_decision';

CREATE TABLE run_events (
    event_id   bigserial PRIMARY KEY,
    run_id     text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    kind       text NOT NULL,
    actor      text,
    channel    text,
    detail     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX run_events_run_idx ON run_events (run_id, event_id);
