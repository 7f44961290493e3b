-- A session's name, as the owner renamed it (POST /sessions/{session_id}/rename); NULL: the first
-- run's message names it, as in AgentOS.
ALTER TABLE sessions ADD COLUMN session_name text;
