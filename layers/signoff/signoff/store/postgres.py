"""PostgreSQL run store (psycopg 3): one statement per load, one per save."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from signoff.errors import LeaseLost, NotFound, StoreUnavailable, UnstorableValue
from signoff.state import RunState, RunStatus, ToolCall
from signoff.store.base import (
    ApprovalViewer,
    LoadedRun,
    RunEvent,
    SessionDeletion,
    SessionPage,
    SessionRecord,
)

T = TypeVar("T")

_CREATE_RUN = """
WITH sess AS (
    INSERT INTO sessions AS s (session_id, agent_id, user_id)
    VALUES (%(session_id)s, %(agent_id)s, %(user_id)s)
    ON CONFLICT (session_id) DO UPDATE SET updated_at = now()
    WHERE s.agent_id = EXCLUDED.agent_id AND s.user_id IS NOT DISTINCT FROM EXCLUDED.user_id
    RETURNING session_id
), run AS (
    INSERT INTO runs (run_id, session_id, agent_id, user_id, status, version, lease_until, state, request)
    SELECT %(run_id)s, sess.session_id, %(agent_id)s, %(user_id)s, %(status)s, %(version)s,
           now() + make_interval(secs => %(lease)s), %(state)s, left(%(request)s, 1000)
    FROM sess
    RETURNING run_id
), ev AS (
    INSERT INTO run_events (run_id, kind, actor, channel, detail)
    SELECT run.run_id, 'created', %(user_id)s, 'api', %(meta)s FROM run
)
SELECT (SELECT count(*) FROM run) AS created,
       (SELECT coalesce(jsonb_agg(h.messages ORDER BY h.created_at), '[]'::jsonb) FROM (
            SELECT state->'messages' AS messages, created_at FROM runs
            WHERE session_id = %(session_id)s AND status = 'COMPLETED'
            ORDER BY created_at DESC LIMIT %(history)s) h) AS history
"""

# The save statement, one CTE per kind of write; a save sends only the ones it has rows for (fewer
# CTEs to plan and run: without server-side prepared statements every save is planned again).
_SAVE_UPDATED = """
WITH updated AS (
    UPDATE runs SET status = %(status)s, version = version + 1, state = %(state)s, updated_at = now(),
        lease_until = CASE WHEN %(status)s = 'RUNNING' THEN now() + make_interval(secs => %(lease)s) END
        {consume}
    WHERE run_id = %(run_id)s AND version = %(version)s
    RETURNING run_id, deferred
)"""
# Drops the deferred decisions this save consumed (applied or refused), keeping any that arrived since.
_CONSUME_DEFERRED = """, deferred = (
        SELECT coalesce(jsonb_agg(d), '[]'::jsonb) FROM jsonb_array_elements(runs.deferred) d
        WHERE NOT (d->>'id' = ANY (%(consumed)s::text[])))"""
_SAVE_PARTS = {
    "calls": """calls AS (
    INSERT INTO tool_calls AS t (run_id, tool_call_id, tool_name, args, args_digest, requirement, state,
        decided_by, decided_at, decision_channel, decision_digest, note, result, expires_at,
        approval_id, approval_type, approvers, resolution_data, asks, requested_by)
    SELECT updated.run_id, c.tool_call_id, c.tool_name, c.args, c.args_digest, c.requirement, c.state,
        c.decided_by, to_timestamp(c.decided_at), c.decision_channel, c.decision_digest, c.note, c.result,
        to_timestamp(c.expires_at), c.approval_id, c.approval_type, coalesce(c.approvers, '{}'),
        c.resolution_data, c.asks, c.requested_by
    FROM updated, jsonb_to_recordset(%(calls)s) AS c(
        tool_call_id text, tool_name text, args jsonb, args_digest text, requirement text, state text,
        decided_by text, decided_at bigint, decision_channel text, decision_digest text, note text,
        result text, expires_at bigint, approval_id text, approval_type text, approvers text[],
        resolution_data jsonb, asks jsonb, requested_by text)
    ON CONFLICT (run_id, tool_call_id) DO UPDATE SET
        args = EXCLUDED.args, args_digest = EXCLUDED.args_digest, state = EXCLUDED.state,
        decided_by = EXCLUDED.decided_by, decided_at = EXCLUDED.decided_at,
        decision_channel = EXCLUDED.decision_channel, decision_digest = EXCLUDED.decision_digest,
        note = EXCLUDED.note, result = EXCLUDED.result,
        expires_at = EXCLUDED.expires_at, resolution_data = EXCLUDED.resolution_data,
        asks = EXCLUDED.asks, updated_at = now()
    WHERE (t.state, t.result, t.decided_at, t.args_digest, t.expires_at)
        IS DISTINCT FROM (EXCLUDED.state, EXCLUDED.result, EXCLUDED.decided_at, EXCLUDED.args_digest,
                          EXCLUDED.expires_at)
)""",
    "tokens": """tokens AS (
    INSERT INTO approval_tokens (token_hash, run_id, tool_call_id, decision, expires_at)
    SELECT k.token_hash, updated.run_id, k.tool_call_id, k.decision, to_timestamp(k.expires_at)
    FROM updated, jsonb_to_recordset(%(tokens)s)
        AS k(token_hash text, tool_call_id text, decision text, expires_at bigint)
)""",
    "used": """used AS (
    UPDATE approval_tokens SET used_at = now()
    FROM updated
    WHERE approval_tokens.run_id = updated.run_id AND approval_tokens.used_at IS NULL
      AND approval_tokens.tool_call_id = ANY (%(closed_calls)s::text[])
)""",
    "delivery": """delivery AS (
    INSERT INTO webhook_deliveries (delivery_id, channel)
    SELECT %(delivery)s, split_part(%(delivery)s, ':', 1) FROM updated
    ON CONFLICT DO NOTHING
)""",
    "events": """ev AS (
    INSERT INTO run_events (run_id, kind, actor, channel, detail)
    SELECT updated.run_id, e.kind, e.actor, e.channel, coalesce(e.detail, '{}'::jsonb)
    FROM updated, jsonb_to_recordset(%(events)s) AS e(kind text, actor text, channel text, detail jsonb)
)""",
}


@lru_cache(maxsize=64)
def _save_statement(parts: frozenset[str]) -> str:
    ctes = [_SAVE_PARTS[name] for name in _SAVE_PARTS if name in parts]
    head = _SAVE_UPDATED.replace("{consume}", _CONSUME_DEFERRED if "consume" in parts else "")
    tail = "\nSELECT count(*) AS saved, (SELECT deferred FROM updated) AS deferred FROM updated\n"
    return ",\n".join([head, *ctes]) + tail  # constants only


# Keeps a decision for a run an invocation is executing: no version bump, so the executing
# invocation's next save still succeeds and reads it back; only while the run is still busy.
_DEFER = """
WITH kept AS (
    UPDATE runs SET deferred = deferred || %(items)s
    WHERE run_id = %(run_id)s
      AND (status = 'PENDING' OR (status = 'RUNNING' AND lease_until > now()))
    RETURNING run_id
), delivery AS (
    INSERT INTO webhook_deliveries (delivery_id, channel)
    SELECT %(delivery)s, split_part(%(delivery)s, ':', 1) FROM kept WHERE %(delivery)s::text IS NOT NULL
    ON CONFLICT DO NOTHING
)
SELECT count(*) AS kept FROM kept
"""


# The columns a loaded run is built from (``_loaded``), the replay check of a webhook delivery included.
_RUN_COLUMNS = """r.status, r.version, coalesce(r.lease_until > now(), false) AS lease_live, r.state,
       r.deferred,
       %(delivery)s::text IS NOT NULL AND EXISTS (
            SELECT 1 FROM webhook_deliveries WHERE delivery_id = %(delivery)s) AS delivery_seen"""

_LOAD = f"""
SELECT {_RUN_COLUMNS},
       CASE WHEN %(history)s > 0 THEN (
            SELECT coalesce(jsonb_agg(h.messages ORDER BY h.created_at), '[]'::jsonb) FROM (
                SELECT state->'messages' AS messages, created_at FROM runs
                WHERE session_id = r.session_id AND status = 'COMPLETED' AND run_id <> r.run_id
                  AND created_at < r.created_at
                ORDER BY created_at DESC LIMIT %(history)s) h)
       ELSE '[]'::jsonb END AS history
FROM runs r WHERE r.run_id = %(run_id)s
"""  # noqa: S608 - built from constants only


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _state_of(row: dict[str, Any]) -> RunState:
    state = RunState.from_document(row["state"])
    state.status = RunStatus(row["status"])
    state.version = row["version"]
    return state


_LOAD_BY_APPROVAL_LINK = f"""
SELECT t.run_id, t.tool_call_id, t.decision, extract(epoch FROM t.expires_at) AS expires_at, t.used_at,
       {_RUN_COLUMNS}
FROM approval_tokens t JOIN runs r USING (run_id)
WHERE t.token_hash = %(token_hash)s
"""  # noqa: S608 - built from constants only

_WRITTEN_RUNS = 64

_SESSION_COLUMNS = """session_id, agent_id, user_id, session_name,
    extract(epoch FROM created_at)::bigint AS created_at,
    extract(epoch FROM updated_at)::bigint AS updated_at"""
_SESSION = f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = %s"  # noqa: S608 - constants only
_RENAME_SESSION = f"""
UPDATE sessions SET session_name = %s, updated_at = now() WHERE session_id = %s
RETURNING {_SESSION_COLUMNS}
"""  # noqa: S608 - built from constants only

# Every run of a session, locked, with whether an invocation is executing it (as ``LoadedRun.busy``).
_LOCK_SESSION_RUNS = """
SELECT run_id, status, version, state,
       status = 'PENDING' OR (status = 'RUNNING' AND coalesce(lease_until > now(), false)) AS busy
FROM runs WHERE session_id = %s ORDER BY created_at, run_id FOR UPDATE
"""

_INSERT_EVENTS = """
INSERT INTO run_events (run_id, kind, actor, channel, detail)
SELECT e.run_id, e.kind, e.actor, e.channel, coalesce(e.detail, '{}'::jsonb)
FROM jsonb_to_recordset(%(events)s) AS e(run_id text, kind text, actor text, channel text, detail jsonb)
"""


def _tombstone(state: RunState, event: RunEvent) -> dict[str, Any]:
    """The one audit row a deleted run keeps: who deleted it, when, from where, and what it was
    waiting for (tool names, never arguments, messages or results)."""
    return {
        "run_id": state.run_id,
        "kind": event.kind,
        "actor": event.actor,
        "channel": event.channel,
        "detail": {
            **event.detail,
            "session_id": state.session_id,
            "agent_id": state.agent_id,
            "status": state.status,
            "waiting_calls": [
                {"tool_call_id": call.tool_call_id, "tool_name": call.tool_name}
                for call in state.pending_tools
            ],
        },
    }


def _call_rows(state: RunState) -> dict[str, dict[str, Any]]:
    """The ``tool_calls`` rows of a state, by call id, as the save statement takes them."""
    return {
        t.tool_call_id: {
            "tool_call_id": t.tool_call_id,
            "tool_name": t.tool_name,
            "args": t.tool_args,
            "args_digest": t.args_digest,
            "requirement": t.requirement,
            "state": t.state,
            "decided_by": t.decided_by,
            "decided_at": t.decided_at,
            "decision_channel": t.decision_channel,
            "decision_digest": t.decision_digest,
            "note": t.confirmation_note,
            "result": t.result,
            "expires_at": t.expires_at,
            "approval_id": t.approval_id,
            "approval_type": t.approval_type,
            "approvers": t.approvers,
            "resolution_data": t.resolution_data,
            "asks": _asks(t),
            "requested_by": state.user_id,
        }
        for t in state.tools
    }


def _asks(call: ToolCall) -> dict[str, Any] | None:
    """What a person is asked on an approval record (the user-input fields, the agent's questions)."""
    if call.approval_id is None or (call.user_input_schema is None and call.user_feedback_schema is None):
        return None
    asks = {"user_input_schema": call.user_input_schema, "user_feedback_schema": call.user_feedback_schema}
    return {key: value for key, value in asks.items() if value is not None}


def _open(conninfo: str, timeout_s: int) -> psycopg.Connection:
    return psycopg.connect(
        conninfo, autocommit=True, prepare_threshold=None, row_factory=dict_row, connect_timeout=timeout_s
    )


# invalid_authorization_specification, invalid_password; libpq reports some only in the message.
_AUTH_SQLSTATES = ("28000", "28P01")
_AUTH_MESSAGES = ("password authentication failed", "pam authentication failed")


def _refused_credentials(exc: psycopg.OperationalError) -> bool:
    """Whether a failed connect was the server refusing the user or password (not the network)."""
    if getattr(exc, "sqlstate", None) in _AUTH_SQLSTATES:
        return True
    message = str(exc).lower()
    unknown_role = 'role "' in message and "does not exist" in message
    return "fatal" in message and (unknown_role or any(text in message for text in _AUTH_MESSAGES))


def _flatten(history: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [message for run_messages in history for message in (run_messages or [])]


# An approval record is a tool_calls row that waits (or waited) on a person, read with its run.
# A record's status as conditions on its row, one per status, exclusive (so that a filter names the
# call's state and can use the partial indexes); the status column is derived from them.
_STATUS_CONDITIONS = {
    "pending": "t.state = 'awaiting_decision'",
    "expired": "t.state = 'expired'",
    "cancelled": "t.decision_channel = 'cancel' AND t.state NOT IN ('awaiting_decision', 'expired')",
    "rejected": "t.state = 'rejected' AND t.decision_channel IS DISTINCT FROM 'cancel'",
    "approved": (
        "t.state NOT IN ('awaiting_decision', 'expired', 'rejected')"
        " AND t.decision_channel IS DISTINCT FROM 'cancel'"
    ),
}
_APPROVAL_STATUS = (
    "CASE "
    + " ".join(f"WHEN {condition} THEN '{status}'" for status, condition in _STATUS_CONDITIONS.items())
    + " END"
)

_APPROVAL_COLUMNS = f"""t.approval_id AS id, t.run_id, r.session_id, t.tool_call_id,
       {_APPROVAL_STATUS} AS status,
       t.approval_type, t.requirement AS pause_type, t.tool_name, t.args AS tool_args, t.args_digest,
       extract(epoch FROM t.expires_at)::bigint AS expires_at, r.agent_id, r.user_id,
       t.approvers, t.resolution_data, t.note,
       CASE WHEN t.state <> 'awaiting_decision' THEN t.decided_by END AS resolved_by,
       CASE WHEN t.state <> 'awaiting_decision' THEN extract(epoch FROM t.decided_at)::bigint END
           AS resolved_at,
       extract(epoch FROM t.created_at)::bigint AS created_at,
       extract(epoch FROM t.updated_at)::bigint AS updated_at,
       r.status AS run_status, r.request, t.asks"""
# A record's ``requirements``: the calls of its run still awaiting a decision (``s``), as AgentOS lists them.
_REQUIREMENTS = """coalesce(jsonb_agg(jsonb_build_object(
                'id', s.tool_call_id, 'created_at', extract(epoch FROM s.created_at)::bigint,
                'tool_execution', jsonb_build_object(
                    'tool_call_id', s.tool_call_id, 'tool_name', s.tool_name, 'tool_args', s.args,
                    'approval_id', s.approval_id, 'approval_type', s.approval_type,
                    'pause_type', s.requirement)) ORDER BY s.created_at, s.tool_call_id), '[]'::jsonb)"""

_APPROVAL = f"""
SELECT {_APPROVAL_COLUMNS},
       (SELECT {_REQUIREMENTS} FROM tool_calls s
        WHERE s.run_id = t.run_id AND s.state = 'awaiting_decision') AS requirements
FROM tool_calls t JOIN runs r USING (run_id)
WHERE t.approval_id IS NOT NULL AND t.approval_deleted_at IS NULL AND t.approval_id = %(id)s
"""  # noqa: S608 - built from constants only

# What led to a record's call: its run's document parts and the session's earlier runs.
_APPROVAL_CONTEXT = """
SELECT t.approval_id AS id, t.run_id, r.user_id, t.approvers, r.state->>'input_content' AS request,
       coalesce(r.state->'messages', '[]'::jsonb) AS messages,
       coalesce(r.state->'references', '[]'::jsonb) AS "references",
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                    'run_id', h.run_id, 'input', h.state->>'input_content', 'content', h.state->>'content',
                    'status', h.status, 'created_at', extract(epoch FROM h.created_at)::bigint)
                ORDER BY h.created_at), '[]'::jsonb)
        FROM (SELECT run_id, state, status, created_at FROM runs
              WHERE session_id = r.session_id AND created_at < r.created_at AND run_id <> r.run_id
              ORDER BY created_at DESC LIMIT 20) h) AS history
FROM tool_calls t JOIN runs r USING (run_id)
WHERE t.approval_id = %(id)s AND t.approval_deleted_at IS NULL
"""

# What the viewer may decide (mirrors signoff.authz.refusal / required_approval_refusal): a pending,
# unexpired call a person answers (not an external result); a ``required`` one by its tool's
# approvers, or the admins when it names none, never the requester; any other by its tool's
# approvers, or when it names none by the run's owner (anyone, without authentication).
_DECIDABLE = """t.state = 'awaiting_decision' AND coalesce(t.expires_at > now(), true)
  AND t.requirement <> 'external_execution'
  AND CASE WHEN t.approval_type = 'required' THEN
           %(me)s::text IS NOT NULL AND t.requested_by IS DISTINCT FROM %(me)s
           AND CASE WHEN cardinality(t.approvers) > 0 THEN t.approvers && %(names)s::text[]
                    ELSE %(admin)s END
      WHEN cardinality(t.approvers) > 0 THEN %(me)s::text IS NOT NULL AND t.approvers && %(names)s::text[]
      ELSE %(me)s::text IS NULL OR t.requested_by = %(me)s END"""

_EQUAL_FILTERS = {
    "user_id": "t.requested_by = %(user_id)s",
    "agent_id": "t.run_id IN (SELECT run_id FROM runs WHERE agent_id = %(agent_id)s)",
    "run_id": "t.run_id = %(run_id)s",
    "approval_type": "t.approval_type = %(approval_type)s",
    "pause_type": "t.requirement = %(pause_type)s",
    "tool_name": "t.tool_name = %(tool_name)s",
}


def _approval_where(viewer: ApprovalViewer, filters: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The conditions of an approvals query on ``tool_calls t`` alone (constant fragments chosen by
    the filters given, so the planner sees only what applies) and their parameters."""
    conditions = ["t.approval_id IS NOT NULL", "t.approval_deleted_at IS NULL"]
    if not viewer.everyone:
        conditions.append("(t.requested_by = %(me)s OR t.approvers && %(names)s::text[])")
    if filters.get("status"):
        conditions.append(_STATUS_CONDITIONS[filters["status"]])
    if filters.get("decidable"):
        conditions.append(_DECIDABLE)
    conditions += [sql for name, sql in _EQUAL_FILTERS.items() if filters.get(name)]
    params = {
        "me": viewer.user_id,
        "names": list(viewer.names),
        "admin": viewer.admin,
        **{name: filters.get(name) for name in _EQUAL_FILTERS},
    }
    return "\n  AND ".join(conditions), params


class PostgresRunStore:
    """A :class:`~signoff.store.base.RunStore` on PostgreSQL.

    Holds one connection per container, opened on first use and re-opened once when it turns
    out to be dead (e.g. closed by the server while the Lambda container was frozen). Works
    behind RDS Proxy and PgBouncer: no server-side prepared statements.

    Args:
        conninfo: a libpq URL, or a function returning one (read lazily, e.g. from a secret).
        refresh: returns the connection string read afresh (the secret, not its cache); called once
            when the database refuses the credentials, e.g. after a rotation, before giving up.
        max_idle_s: a connection unused for longer is closed and a new one opened before the next
            statement (0: no limit). Set it below the server's ``idle_session_timeout``, so that a
            statement never meets a connection the server already closed.
        connect_timeout_s: how long a connect may wait (a paused Aurora takes ~15 s to resume).
        clock: wall-clock seconds (a frozen Lambda container's idle time counts).
    """

    def __init__(
        self,
        conninfo: str | Callable[[], str],
        *,
        refresh: Callable[[], str] | None = None,
        max_idle_s: float = 0,
        connect_timeout_s: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._conninfo = conninfo
        self._refresh = refresh
        self._max_idle_s = max_idle_s
        self._clock = clock
        self._last_used = 0.0
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()
        self.round_trips = 0
        # run id → (version, tool call rows as stored at that version), for the runs this container
        # loaded or saved last; a save from that version skips the rows that did not change.
        self._written: dict[str, tuple[int, dict[str, dict[str, Any]]]] = {}

    def _connect(self) -> psycopg.Connection:
        conninfo = self._conninfo() if callable(self._conninfo) else self._conninfo
        try:
            return _open(conninfo, self._connect_timeout_s)
        except psycopg.OperationalError as exc:
            if self._refresh is None or not _refused_credentials(exc):
                raise StoreUnavailable() from exc
        # The credentials were refused: the cached secret may be stale (rotated). Read it once more.
        try:
            return _open(self._refresh(), self._connect_timeout_s)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable() from exc

    @property
    def connected(self) -> bool:
        """Whether this store holds an open connection now."""
        return self._conn is not None and not self._conn.closed

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _execute(self, work: Callable[[psycopg.Connection], T], *, retry_safe: bool = True) -> T:
        """Run ``work`` on the connection; re-open a dead connection once.

        A statement that failed because the connection was dead never reached the server's
        commit, except when the connection died after sending; ``retry_safe`` says the work is
        harmless to repeat (reads, and writes conditional on a version they bump).
        """
        with self._lock:
            idle_s = self._clock() - self._last_used
            if self._conn is not None and self._max_idle_s and idle_s > self._max_idle_s:
                # The server may have closed it (idle_session_timeout): a fresh one, not a failed write.
                self._conn.close()
                self._conn = None
            for attempt in (1, 2):
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                try:
                    self.round_trips += 1
                    self._last_used = self._clock()
                    return work(self._conn)
                except psycopg.OperationalError as exc:
                    broken = self._conn.closed or self._conn.broken
                    if broken:
                        self._conn.close()
                        self._conn = None
                    if not broken or attempt == 2 or not retry_safe:
                        raise StoreUnavailable() from exc
                except psycopg.DataError as exc:
                    # A value the database refuses (inputs are checked before; this is the backstop).
                    raise UnstorableValue() from exc
                except psycopg.Error as exc:
                    # Statements are single and atomic: a failure left nothing half-written.
                    raise StoreUnavailable("Database error, nothing was changed; try again") from exc
            raise AssertionError("unreachable")

    def create_run(
        self,
        state: RunState,
        *,
        lease_seconds: int,
        history_runs: int,
        meta: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        params = {
            "meta": Jsonb(meta or {}, dumps=_dumps),
            "session_id": state.session_id,
            "agent_id": state.agent_id,
            "user_id": state.user_id,
            "run_id": state.run_id,
            "status": state.status,
            "version": state.version,
            "lease": lease_seconds,
            "state": Jsonb(state.document(), dumps=_dumps),
            "history": history_runs,
            "request": state.input_content,
        }
        row = self._execute(lambda conn: conn.execute(_CREATE_RUN, params).fetchone())
        if not row or not row["created"]:
            raise NotFound(f"No session found for session ID {state.session_id}")
        return _flatten(row["history"])

    def load(self, run_id: str, *, history_runs: int = 0, delivery_id: str | None = None) -> LoadedRun | None:
        params = {"run_id": run_id, "history": history_runs, "delivery": delivery_id}
        row = self._execute(lambda conn: conn.execute(_LOAD, params).fetchone())
        if row is None:
            return None
        return self._loaded(row, _flatten(row["history"]))

    def load_by_token(
        self, token_hash: str, *, delivery_id: str | None = None
    ) -> tuple[dict[str, Any], LoadedRun] | None:
        params = {"token_hash": token_hash, "delivery": delivery_id}
        row = self._execute(lambda conn: conn.execute(_LOAD_BY_APPROVAL_LINK, params).fetchone())
        if row is None:
            return None
        token = {key: row[key] for key in ("run_id", "tool_call_id", "decision", "expires_at", "used_at")}
        return token, self._loaded(row, [])

    def _loaded(self, row: dict[str, Any], history: list[dict[str, Any]]) -> LoadedRun:
        """A run from ``_RUN_COLUMNS``; its tool call rows are remembered for the next save."""
        state = _state_of(row)
        self._remember(state.run_id, state.version, _call_rows(state))
        return LoadedRun(
            state, bool(row["lease_live"]), history, bool(row["delivery_seen"]), list(row["deferred"] or [])
        )

    def save(
        self,
        state: RunState,
        *,
        lease_seconds: int,
        events: list[RunEvent] = (),  # type: ignore[assignment]
        tokens: list[dict[str, Any]] = (),  # type: ignore[assignment]
        delivery: str | None = None,
        consumed: list[str] = (),  # type: ignore[assignment]
    ) -> list[dict[str, Any]]:
        """Write the state if its stored version is still ``state.version``; bump the version.

        One statement: the run row, its tool call rows, new approval tokens, the tokens of calls
        no longer awaiting a decision marked used (links are single-use), audit events, and the
        deferred decisions ``consumed`` removed. Returns the deferred decisions still waiting on the
        run (kept while it was busy), read under the row lock in the same statement.

        Raises:
            LeaseLost: the run changed since it was loaded (another invocation claimed it).
        """
        write_id = uuid.uuid4().hex
        document = state.document()
        document["write_id"] = write_id
        rows = _call_rows(state)
        # Rows this container last wrote for this very version are in the database as they are:
        # send only the calls that changed, and close links only of calls that were still open.
        cached = self._written.get(state.run_id)
        known = cached[1] if cached and cached[0] == state.version else {}
        calls = [row for call_id, row in rows.items() if known.get(call_id) != row]
        closed = [
            call_id
            for call_id, row in rows.items()
            if row["state"] != "awaiting_decision"
            and (call_id not in known or known[call_id]["state"] == "awaiting_decision")
        ]
        params = {
            "run_id": state.run_id,
            "version": state.version,
            "status": state.status,
            "lease": lease_seconds,
            "tokens": Jsonb(list(tokens), dumps=_dumps),
            "delivery": delivery,
            "closed_calls": closed,
            "state": Jsonb(document, dumps=_dumps),
            "calls": Jsonb(calls, dumps=_dumps),
            "events": Jsonb([e.__dict__ for e in events], dumps=_dumps),
            "consumed": list(consumed),
        }
        wanted = {
            "calls": calls,
            "tokens": tokens,
            "used": closed,
            "delivery": delivery,
            "events": events,
            "consume": consumed,
        }
        statement = _save_statement(frozenset(name for name, rows in wanted.items() if rows))

        def write(conn: psycopg.Connection) -> list[dict[str, Any]] | None:
            row = conn.execute(statement, params).fetchone()
            if row and row["saved"]:
                return list(row["deferred"] or [])
            # Zero rows: either someone else wrote, or this very write committed before the
            # connection died and is now being retried. The write id tells them apart.
            mine = conn.execute(
                "SELECT state->>'write_id' = %s AS mine, deferred FROM runs WHERE run_id = %s",
                (write_id, state.run_id),
            ).fetchone()
            return list(mine["deferred"] or []) if mine and mine["mine"] else None

        waiting = self._execute(write)
        if waiting is None:
            raise LeaseLost(state.run_id)
        state.version += 1
        self._remember(state.run_id, state.version, rows)
        return waiting

    def defer(self, run_id: str, items: list[dict[str, Any]], *, delivery: str | None = None) -> bool:
        """Keep decisions on a run an invocation is executing; ``False`` when it is no longer busy."""
        params = {
            "run_id": run_id,
            "items": Jsonb(items, dumps=_dumps),
            "delivery": delivery,
        }
        row = self._execute(lambda conn: conn.execute(_DEFER, params).fetchone(), retry_safe=False)
        return bool(row and row["kept"])

    def runs_with_deferred_decisions(self, *, limit: int) -> list[str]:
        """Runs that are free (not executing) and still hold decisions kept while they were busy."""
        query = (
            "SELECT run_id FROM runs WHERE deferred <> '[]'::jsonb"
            " AND NOT (status = 'PENDING' OR (status = 'RUNNING' AND lease_until > now()))"
            " ORDER BY updated_at LIMIT %s"
        )
        return [row["run_id"] for row in self._execute(lambda conn: conn.execute(query, (limit,)).fetchall())]

    def _remember(self, run_id: str, version: int, rows: dict[str, dict[str, Any]]) -> None:
        self._written.pop(run_id, None)
        self._written[run_id] = (version, rows)
        while len(self._written) > _WRITTEN_RUNS:
            self._written.pop(next(iter(self._written)))

    def list_runs(
        self, *, agent_id: str | None, session_id: str | None, user_id: str | None, status: str | None
    ) -> list[RunState]:
        query = (
            "SELECT status, version, state FROM runs"
            " WHERE (%(agent_id)s::text IS NULL OR agent_id = %(agent_id)s)"
            " AND (%(session_id)s::text IS NULL OR session_id = %(session_id)s)"
            " AND (%(user_id)s::text IS NULL OR user_id = %(user_id)s)"
            " AND (%(status)s::text IS NULL OR status = %(status)s)"
            " ORDER BY created_at, run_id LIMIT 1000"
        )
        params = {"agent_id": agent_id, "session_id": session_id, "user_id": user_id, "status": status}
        rows = self._execute(lambda conn: conn.execute(query, params).fetchall())
        return [_state_of(row) for row in rows]

    def list_sessions(
        self, *, user_id: str | None, agent_id: str | None, page: int, limit: int
    ) -> SessionPage:
        query = """
            SELECT s.session_id, s.agent_id, s.user_id,
                   extract(epoch FROM s.created_at)::bigint AS created_at,
                   extract(epoch FROM s.updated_at)::bigint AS updated_at,
                   coalesce(s.session_name,
                            (SELECT r.state->>'input_content' FROM runs r WHERE r.session_id = s.session_id
                             ORDER BY r.created_at LIMIT 1)) AS session_name,
                   count(*) OVER () AS total
            FROM sessions s
            WHERE (%(user_id)s::text IS NULL OR s.user_id = %(user_id)s)
              AND (%(agent_id)s::text IS NULL OR s.agent_id = %(agent_id)s)
            ORDER BY s.updated_at DESC, s.session_id
            LIMIT %(limit)s OFFSET %(offset)s
        """
        params = {"user_id": user_id, "agent_id": agent_id, "limit": limit, "offset": (page - 1) * limit}
        rows = self._execute(lambda conn: conn.execute(query, params).fetchall())
        total = int(rows[0].pop("total")) if rows else 0
        for row in rows[1:]:
            row.pop("total")
        return SessionPage(rows, total)

    def session(self, session_id: str) -> SessionRecord | None:
        row = self._execute(lambda conn: conn.execute(_SESSION, (session_id,)).fetchone())
        return SessionRecord(**row) if row else None

    def rename_session(self, session_id: str, session_name: str) -> SessionRecord | None:
        params = (session_name, session_id)
        row = self._execute(lambda conn: conn.execute(_RENAME_SESSION, params).fetchone())
        return SessionRecord(**row) if row else None

    def delete_session(self, session_id: str, *, owner: str | None, tombstone: RunEvent) -> SessionDeletion:
        """Delete the session, its runs and all that hangs off them, unless a run is executing.

        One transaction that first locks the session row (a concurrent start in the session waits
        for it) and every run row (a concurrent claim either committed before, and the run is busy,
        or finds its run gone and loses). The runs' tool calls and approval links go with them (the
        foreign keys cascade), and with them any decision kept on a run; the runs' audit rows are
        replaced by one tombstone each.
        """

        def work(conn: psycopg.Connection) -> SessionDeletion:
            with conn.transaction():
                session = conn.execute(
                    "SELECT user_id FROM sessions WHERE session_id = %s FOR UPDATE", (session_id,)
                ).fetchone()
                if session is None or session["user_id"] != owner:
                    return SessionDeletion.MISSING
                rows = conn.execute(_LOCK_SESSION_RUNS, (session_id,)).fetchall()
                if any(row["busy"] for row in rows):
                    return SessionDeletion.BUSY
                run_ids = [row["run_id"] for row in rows]
                tombstones = [_tombstone(_state_of(row), tombstone) for row in rows]
                conn.execute("DELETE FROM run_events WHERE run_id = ANY (%s::text[])", (run_ids,))
                conn.execute(_INSERT_EVENTS, {"events": Jsonb(tombstones, dumps=_dumps)})
                conn.execute("DELETE FROM sessions WHERE session_id = %s", (session_id,))
                for run_id in run_ids:
                    self._written.pop(run_id, None)
                return SessionDeletion.DELETED

        return self._execute(work)

    def stale_runs(self, *, limit: int) -> list[LoadedRun]:
        """RUNNING runs whose lease has expired: their invocation died."""
        query = (
            "SELECT status, version, false AS lease_live, state FROM runs"
            " WHERE status = 'RUNNING' AND lease_until < now() ORDER BY lease_until LIMIT %s"
        )
        rows = self._execute(lambda conn: conn.execute(query, (limit,)).fetchall())
        return [LoadedRun(_state_of(row), False) for row in rows]

    def runs_with_expired_calls(self, *, limit: int) -> list[str]:
        query = (
            "SELECT DISTINCT t.run_id FROM tool_calls t JOIN runs r USING (run_id)"
            " WHERE t.state = 'awaiting_decision' AND t.expires_at <= now() AND r.status = 'PAUSED'"
            " LIMIT %s"
        )
        return [row["run_id"] for row in self._execute(lambda conn: conn.execute(query, (limit,)).fetchall())]

    def stranded_runs(self, *, older_than_s: int, limit: int) -> list[tuple[str, str]]:
        """Runs that wait for the queue but may have lost their message."""
        query = """
            SELECT r.run_id, r.agent_id FROM runs r
            WHERE r.updated_at < now() - make_interval(secs => %(age)s)
              AND (r.status = 'PENDING'
                   OR (r.status = 'PAUSED' AND NOT EXISTS (
                        SELECT 1 FROM tool_calls t
                        WHERE t.run_id = r.run_id AND t.state = 'awaiting_decision')))
            ORDER BY r.updated_at LIMIT %(limit)s
        """
        rows = self._execute(
            lambda conn: conn.execute(query, {"age": older_than_s, "limit": limit}).fetchall()
        )
        return [(row["run_id"], row["agent_id"]) for row in rows]

    def next_upkeep_due(self, *, stranded_after_s: int) -> float | None:
        """When the upkeep next has work here (epoch seconds), or None when nothing will ever be due.

        The earliest of: a pending decision's expiry, a RUNNING run's lease end (its invocation may
        die), a run waiting for the queue becoming stranded, and now when a free run still holds
        decisions kept while it was busy.
        """
        query = """
            SELECT extract(epoch FROM least(
                (SELECT min(t.expires_at) FROM tool_calls t JOIN runs r USING (run_id)
                 WHERE t.state = 'awaiting_decision' AND r.status = 'PAUSED'),
                (SELECT min(lease_until) FROM runs WHERE status = 'RUNNING'),
                (SELECT min(r.updated_at) + make_interval(secs => %(age)s) FROM runs r
                 WHERE r.status = 'PENDING'
                    OR (r.status = 'PAUSED' AND NOT EXISTS (
                        SELECT 1 FROM tool_calls t
                        WHERE t.run_id = r.run_id AND t.state = 'awaiting_decision'))),
                (SELECT now() FROM runs WHERE deferred <> '[]'::jsonb
                   AND NOT (status = 'PENDING' OR (status = 'RUNNING' AND lease_until > now()))
                 LIMIT 1)
            ))::float AS due
        """
        row = self._execute(lambda conn: conn.execute(query, {"age": stranded_after_s}).fetchone())
        return None if row is None or row["due"] is None else float(row["due"])

    def append_events(self, run_id: str, events: list[RunEvent]) -> None:
        """Add to the audit log without touching the run (e.g. a refused decision)."""
        query = (
            "INSERT INTO run_events (run_id, kind, actor, channel, detail)"
            " SELECT %(run_id)s, e.kind, e.actor, e.channel, coalesce(e.detail, '{}'::jsonb)"
            " FROM jsonb_to_recordset(%(events)s) AS e(kind text, actor text, channel text, detail jsonb)"
        )
        params = {"run_id": run_id, "events": Jsonb([e.__dict__ for e in events], dumps=_dumps)}
        self._execute(lambda conn: conn.execute(query, params))

    def run_events(self, run_id: str) -> list[dict[str, Any]]:
        query = (
            "SELECT event_id, extract(epoch FROM at)::float AS at, kind, actor, channel, detail"
            " FROM run_events WHERE run_id = %s ORDER BY event_id"
        )
        return self._execute(lambda conn: conn.execute(query, (run_id,)).fetchall())

    def approvals(
        self, *, viewer: ApprovalViewer, filters: dict[str, Any], limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of the approval records ``viewer`` may see, newest first, and how many there are.

        The page's keys are found first (the indexes walk newest first; the count comes with them);
        only those rows are then read in full, with their runs and the calls paused beside them.
        """
        where, params = _approval_where(viewer, filters)
        query = f"""
WITH page AS (
    SELECT t.run_id, t.tool_call_id, t.created_at AS at, t.approval_id AS key
    FROM tool_calls t
    WHERE {where}
    ORDER BY t.created_at DESC, t.approval_id LIMIT %(limit)s OFFSET %(offset)s
), waiting AS MATERIALIZED (
    -- once per run of the page (a lateral lookup by run: the key's index, never a scan)
    SELECT p.run_id, w.requirements
    FROM (SELECT DISTINCT run_id FROM page) p, LATERAL (
        SELECT {_REQUIREMENTS} AS requirements
        FROM tool_calls s WHERE s.run_id = p.run_id AND s.state = 'awaiting_decision') w
)
SELECT {_APPROVAL_COLUMNS}, coalesce(w.requirements, '[]'::jsonb) AS requirements,
       (SELECT count(*) FROM tool_calls t WHERE {where}) AS total
FROM page JOIN tool_calls t USING (run_id, tool_call_id) JOIN runs r USING (run_id)
LEFT JOIN waiting w USING (run_id)
ORDER BY page.at DESC, page.key"""  # noqa: S608 - constant fragments only; values are parameters
        params.update(limit=limit, offset=offset)
        rows = self._execute(lambda conn: conn.execute(query, params).fetchall())
        total = int(rows[0]["total"]) if rows else 0
        for row in rows:
            row.pop("total")
        if not rows and offset:
            total, _ = self._count_approvals(where, params)
        return rows, total

    def _count_approvals(self, where: str, params: dict[str, Any]) -> tuple[int, float | None]:
        """How many records match, and when the newest of them was created (epoch seconds)."""
        query = (
            "SELECT count(*) AS n, extract(epoch FROM max(t.created_at))::float8 AS latest"  # noqa: S608
            f" FROM tool_calls t WHERE {where}"
        )
        row = self._execute(lambda conn: conn.execute(query, params).fetchone())
        return int(row["n"]), row["latest"]

    def pending_approval_count(
        self, *, viewer: ApprovalViewer, filters: dict[str, Any]
    ) -> tuple[int, float | None]:
        """How many pending records ``viewer`` sees, and when the newest of them paused (epoch
        seconds): together they change whenever the list does, whatever else happened meanwhile."""
        return self._count_approvals(*_approval_where(viewer, {**filters, "status": "pending"}))

    def approval(self, approval_id: str) -> dict[str, Any] | None:
        """One approval record by id, whoever may see it (the caller checks)."""
        return self._execute(lambda conn: conn.execute(_APPROVAL, {"id": approval_id}).fetchone())

    def approval_context(self, approval_id: str) -> dict[str, Any] | None:
        """What led to an approval record's call: its run's request, this run's messages and
        references, and the earlier runs of the session (their requests and answers, oldest first)."""
        return self._execute(lambda conn: conn.execute(_APPROVAL_CONTEXT, {"id": approval_id}).fetchone())

    def hide_approval(self, approval_id: str) -> bool:
        """Take a resolved record out of the approvals API (its run's audit trail keeps the decision)."""
        query = (
            "UPDATE tool_calls SET approval_deleted_at = now()"
            " WHERE approval_id = %s AND state <> 'awaiting_decision' AND approval_deleted_at IS NULL"
            " RETURNING approval_id"
        )
        return self._execute(lambda conn: conn.execute(query, (approval_id,)).fetchone()) is not None
