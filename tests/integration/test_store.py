"""PostgresRunStore on a real PostgreSQL: round trips, optimistic locking, history, audit rows, recovery."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from catalog import AGENTS
from signoff.agent import AgentCatalog
from signoff.config import Settings
from signoff.decisions import Decision
from signoff.errors import LeaseLost, NotFound
from signoff.models.base import Deadline, ModelResponse, ToolCallRequest
from signoff.service import ContinueInput, Dependencies, StartInput, continue_run, start_run
from signoff.state import RunState, ToolCall, args_digest
from signoff.store.migrations import apply_migrations
from signoff.store.postgres import PostgresRunStore

SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots"
DELETE_MESSAGE = "Delete 50 old records from the users table"


class ScriptedModel:
    """A Model answering from a queue; records the messages of each request."""

    id = "scripted"
    provider = "Test"

    def __init__(self, *responses: ModelResponse) -> None:
        self.queue = list(responses)
        self.requests: list[list[dict[str, Any]]] = []

    def request(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], deadline: Deadline):
        self.requests.append(copy.deepcopy(messages))
        if not self.queue:
            raise AssertionError("the model was called more often than scripted")
        return self.queue.pop(0)


def delete_call(call_id: str = "call_delete_1") -> ModelResponse:
    args = json.dumps({"table_name": "users", "count": 50})
    return ModelResponse(
        None, [ToolCallRequest(call_id, "delete_records", args)], input_tokens=20, output_tokens=8
    )


def text(content: str) -> ModelResponse:
    return ModelResponse(content, input_tokens=12, output_tokens=4)


def deps_for(store: PostgresRunStore, model: ScriptedModel, **settings: Any) -> Dependencies:
    return Dependencies(store, AgentCatalog(AGENTS), lambda agent: model, Settings(**settings))


def new_state(session_id: str = "s1", user_id: str | None = "alice", message: str = "hello") -> RunState:
    return RunState(
        run_id=str(uuid.uuid4()),
        agent_id="data_manager",
        agent_name="Data Manager",
        agent_version="v1",
        session_id=session_id,
        user_id=user_id,
        status="RUNNING",
        input_content=message,
        messages=[{"role": "user", "content": message}],
        model="gpt-4o-mini",
    )


def count(db: str, sql: str, *params: Any) -> int:
    with psycopg.connect(db) as conn:
        return conn.execute(sql, params).fetchone()[0]


@pytest.fixture
def store(db: str):
    s = PostgresRunStore(db)
    yield s
    s.close()


# --- round trips --------------------------------------------------------------------------------


def test_create_then_load_returns_an_equal_state(store: PostgresRunStore):
    # Given a new run with a tool call and metrics
    state = new_state()
    state.tools.append(ToolCall(tool_call_id="c1", tool_name="delete_records", tool_args={"count": 1}))
    state.metrics.add_usage(3, 4)

    # When it is created and loaded back
    history = store.create_run(state, lease_seconds=60, history_runs=3)
    loaded = store.load(state.run_id)

    # Then the stored state equals the original, and the run is held by a live lease
    assert history == []
    assert loaded is not None
    assert loaded.state == state
    assert loaded.lease_live is True


def test_load_of_an_unknown_run_is_none(store: PostgresRunStore):
    assert store.load("no-such-run") is None


def test_save_bumps_the_version_and_persists_the_change(store: PostgresRunStore):
    # Given a created run
    state = new_state()
    store.create_run(state, lease_seconds=60, history_runs=0)

    # When it is saved twice with changes
    state.content = "first"
    store.save(state, lease_seconds=60)
    state.content, state.status = "second", "COMPLETED"
    store.save(state, lease_seconds=60)

    # Then each save bumped the version, and the last write is what loads
    assert state.version == 3
    loaded = store.load(state.run_id)
    assert loaded is not None
    assert (loaded.state.version, loaded.state.content, loaded.state.status) == (3, "second", "COMPLETED")
    assert loaded.lease_live is False


def test_stale_save_raises_lease_lost_and_changes_nothing(store: PostgresRunStore, db: str):
    # Given two invocations that loaded the same run version
    state = new_state()
    store.create_run(state, lease_seconds=60, history_runs=0)
    first = store.load(state.run_id).state
    second = store.load(state.run_id).state

    # When the first saves, then the second saves its (now stale) copy
    first.content = "winner"
    store.save(first, lease_seconds=60)
    second.content = "loser"
    second.tools.append(ToolCall(tool_call_id="c9", tool_name="delete_records", state="executing"))
    with pytest.raises(LeaseLost):
        store.save(second, lease_seconds=60)

    # Then the stored run is the winner's, and the loser wrote no tool call and no event
    loaded = store.load(state.run_id).state
    assert (loaded.content, loaded.version) == ("winner", 2)
    assert loaded.tools == []
    assert count(db, "SELECT count(*) FROM tool_calls WHERE run_id = %s", state.run_id) == 0
    assert second.version == 1


def test_pause_saved_by_one_store_is_continued_by_another(db: str):
    # Given a run paused through one store (one warm container)
    model = ScriptedModel(delete_call(), text("Deleted 50 records from users."))
    first_store = PostgresRunStore(db)
    started = start_run(
        deps_for(first_store, model),
        "data_manager",
        StartInput(DELETE_MESSAGE, session_id="sess-1", user_id="alice"),
        principal=None,
        deadline=Deadline.unlimited(),
    ).state
    first_store.close()
    assert started.status == "PAUSED"

    # When another store (a fresh container, new connection) continues it with a confirmation
    second_store = PostgresRunStore(db)
    try:
        result = continue_run(
            deps_for(second_store, model),
            "data_manager",
            started.run_id,
            ContinueInput("sess-1", [Decision("call_delete_1", confirmed=True)]),
            principal=None,
            deadline=Deadline.unlimited(),
        ).state

        # Then the run completes with the tool's result, and that is what is stored
        assert result.status == "COMPLETED"
        assert result.content == "Deleted 50 records from users."
        [call] = result.tools
        assert (call.result, call.confirmed, call.requires_confirmation) == (
            "Deleted 50 records from users",
            True,
            False,
        )
        assert model.requests[1][-1] == {
            "role": "tool",
            "tool_call_id": "call_delete_1",
            "content": "Deleted 50 records from users",
        }
        stored = second_store.load(started.run_id).state
        assert stored.status == "COMPLETED"
        assert stored.tools[0].result == "Deleted 50 records from users"
        assert stored.metrics.total_tokens == result.metrics.total_tokens > 0
    finally:
        second_store.close()


def test_create_run_in_another_users_session_is_refused_and_inserts_nothing(store: PostgresRunStore, db: str):
    # Given alice's session with one run
    store.create_run(new_state("shared", "alice"), lease_seconds=60, history_runs=0)
    before = [count(db, f"SELECT count(*) FROM {t}") for t in ("sessions", "runs", "run_events")]

    # When bob, then an anonymous caller, start a run in that session
    for intruder in ("bob", None):
        intruding = new_state("shared", intruder)
        with pytest.raises(NotFound):
            store.create_run(intruding, lease_seconds=60, history_runs=3)
        assert store.load(intruding.run_id) is None

    # Then nothing was written
    after = [count(db, f"SELECT count(*) FROM {t}") for t in ("sessions", "runs", "run_events")]
    assert after == before


def test_create_run_in_a_session_of_another_agent_is_refused(store: PostgresRunStore):
    store.create_run(new_state("shared", "alice"), lease_seconds=60, history_runs=0)
    other = new_state("shared", "alice")
    other.agent_id = "other_agent"
    with pytest.raises(NotFound):
        store.create_run(other, lease_seconds=60, history_runs=0)


def test_history_is_the_last_completed_runs_of_the_session_oldest_first(store: PostgresRunStore, db: str):
    # Given four completed runs, one paused run, and a run in another session
    for n in range(1, 5):
        state = new_state("s1", "alice", f"question {n}")
        store.create_run(state, lease_seconds=60, history_runs=0)
        state.messages.append({"role": "assistant", "content": f"answer {n}"})
        state.status = "COMPLETED"
        store.save(state, lease_seconds=60)
    paused = new_state("s1", "alice", "question paused")
    store.create_run(paused, lease_seconds=60, history_runs=0)
    paused.status = "PAUSED"
    store.save(paused, lease_seconds=60)
    elsewhere = new_state("s2", "alice", "other session")
    store.create_run(elsewhere, lease_seconds=60, history_runs=0)
    elsewhere.status = "COMPLETED"
    store.save(elsewhere, lease_seconds=60)

    # When a new run starts in the session with history_runs=2
    history = store.create_run(new_state("s1", "alice", "question 5"), lease_seconds=60, history_runs=2)

    # Then the model sees the last two completed runs, in order, and nothing else
    assert history == [
        {"role": "user", "content": "question 3"},
        {"role": "assistant", "content": "answer 3"},
        {"role": "user", "content": "question 4"},
        {"role": "assistant", "content": "answer 4"},
    ]
    assert store.create_run(new_state("s1", "alice", "q6"), lease_seconds=60, history_runs=0) == []


def test_history_reaches_the_model_through_the_service(db: str, store: PostgresRunStore):
    # Given a completed run in a session
    model = ScriptedModel(text("Paris."), text("You asked about France."))
    deps = deps_for(store, model)
    start = StartInput("Capital of France?", session_id="geo", user_id="alice")
    start_run(deps, "data_manager", start, principal=None, deadline=Deadline.unlimited())

    # When a second run starts in the same session
    follow_up = StartInput("What did I ask?", session_id="geo", user_id="alice")
    start_run(deps, "data_manager", follow_up, principal=None, deadline=Deadline.unlimited())

    # Then the model got the first run's exchange before the new message
    second = model.requests[1]
    assert [m["content"] for m in second if m["role"] != "system"] == [
        "Capital of France?",
        "Paris.",
        "What did I ask?",
    ]


def test_save_writes_tool_call_rows_and_audit_events(db: str, store: PostgresRunStore):
    # Given a run paused on delete_records
    model = ScriptedModel(delete_call(), text("Done."))
    deps = deps_for(store, model)
    run = start_run(
        deps,
        "data_manager",
        StartInput(DELETE_MESSAGE, session_id="s1", user_id="alice"),
        principal=None,
        deadline=Deadline.unlimited(),
    ).state

    # Then the paused call has a row awaiting a decision, with an expiry and the argument digest
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT tool_name, args, state, requirement, args_digest, expires_at > now() AS expires_later,"
            " decided_by, result FROM tool_calls WHERE run_id = %s",
            (run.run_id,),
        ).fetchone()
    assert row[:4] == (
        "delete_records",
        {"table_name": "users", "count": 50},
        "awaiting_decision",
        "confirmation",
    )
    assert row[4] == run.tools[0].args_digest and len(row[4]) == 64
    assert row[5] is True
    assert row[6:] == (None, None)

    # When alice confirms
    continue_run(
        deps,
        "data_manager",
        run.run_id,
        ContinueInput("s1", [Decision("call_delete_1", confirmed=True)], user_id="alice"),
        principal=None,
        deadline=Deadline.unlimited(),
    )

    # Then the row records the decision and the result, and the audit log tells the story in order
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT state, decided_by, decided_at IS NOT NULL, decision_channel,"
            " decision_digest = args_digest, result, expires_at > created_at"
            " FROM tool_calls WHERE run_id = %s",
            (run.run_id,),
        ).fetchone()
        kinds = [
            r[0]
            for r in conn.execute(
                "SELECT kind FROM run_events WHERE run_id = %s ORDER BY event_id", (run.run_id,)
            )
        ]
        decision = conn.execute(
            "SELECT actor, channel, detail FROM run_events WHERE run_id = %s AND kind = 'decision'",
            (run.run_id,),
        ).fetchone()
    # (the expiry the call had while it waited stays on the row as a record)
    assert row == ("succeeded", "alice", True, "api", True, "Deleted 50 records from users", True)
    assert kinds == ["created", "started", "paused", "decision", "continued", "completed"]
    assert decision[0:2] == ("alice", "api")
    assert decision[2]["decision"] == "approved"
    assert decision[2]["tool_call_id"] == "call_delete_1"
    assert [e["kind"] for e in store.run_events(run.run_id)] == kinds


def test_a_recovered_call_that_pauses_again_still_expires(db: str, store: PostgresRunStore):
    # Given a run whose invocation died while delete_records was executing (lease already expired)
    state = new_state("s1", "alice", DELETE_MESSAGE)
    state.messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_delete_1",
                    "type": "function",
                    "function": {
                        "name": "delete_records",
                        "arguments": '{"table_name": "users", "count": 50}',
                    },
                }
            ],
        }
    )
    agent = AgentCatalog(AGENTS).get("data_manager")
    tool = agent.tool("delete_records")
    args = {"table_name": "users", "count": 50}
    state.tools.append(
        ToolCall(
            tool_call_id="call_delete_1",
            tool_name="delete_records",
            tool_args=args,
            args_digest=args_digest("delete_records", args),
            requirement="confirmation",
            schema_hash=tool.schema_hash,
            requires_confirmation=False,
            confirmed=True,
            state="executing",
        )
    )
    store.create_run(state, lease_seconds=60, history_runs=0)
    store.save(state, lease_seconds=0)  # the executing checkpoint, then the container died

    # When the run is continued (recovery): the outcome is unknown, so it pauses for a human again
    result = continue_run(
        deps_for(store, ScriptedModel()),
        "data_manager",
        state.run_id,
        ContinueInput("s1", None, user_id="alice"),
        principal=None,
        deadline=Deadline.unlimited(),
    ).state
    assert result.status == "PAUSED"
    assert [c.tool_call_id for c in result.pending_tools] == ["call_delete_1"]

    # Then the re-paused call is awaiting a decision with an expiry, like any other pause
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT state, expires_at IS NOT NULL FROM tool_calls WHERE run_id = %s", (state.run_id,)
        ).fetchone()
    assert row == ("awaiting_decision", True)


# --- connections and migrations -----------------------------------------------------------------


def test_connection_killed_by_the_server_is_reopened_on_the_next_load(store: PostgresRunStore, db: str):
    # Given a store with an open connection
    state = new_state()
    store.create_run(state, lease_seconds=60, history_runs=0)
    pid = store._conn.info.backend_pid

    # When the server terminates that connection (failover, idle timeout, proxy restart)
    with psycopg.connect(db, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0] is True

    # Then the next load works on a new connection
    loaded = store.load(state.run_id)
    assert loaded is not None and loaded.state.run_id == state.run_id
    assert store._conn.info.backend_pid != pid


def test_save_after_the_connection_was_killed_succeeds_once(store: PostgresRunStore, db: str):
    # Given a store whose connection the server killed
    state = new_state()
    store.create_run(state, lease_seconds=60, history_runs=0)
    with psycopg.connect(db, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (store._conn.info.backend_pid,))

    # When a save follows
    state.content = "after reconnect"
    store.save(state, lease_seconds=60)

    # Then it was applied exactly once
    loaded = store.load(state.run_id).state
    assert (loaded.content, loaded.version) == ("after reconnect", 2)


def test_migrations_are_applied_once_and_create_the_vector_extension(db: str):
    # When migrations run again on the already migrated database
    applied = apply_migrations(db)

    # Then nothing is applied twice, every file is recorded, and pgvector is available
    assert applied == []
    with psycopg.connect(db) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        vector = conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        distance = conn.execute("SELECT '[1,0]'::vector <-> '[0,0]'::vector").fetchone()[0]
    assert versions and versions[0].startswith("0001")
    assert vector == 1
    assert distance == 1.0


# --- snapshots ----------------------------------------------------------------------------------


def test_snapshot_of_a_paused_run_still_loads_and_continues(db: str, store: PostgresRunStore):
    # Given a paused RunState saved by version 1 of the code
    document = json.loads((SNAPSHOTS / "run_state_v1.json").read_text())
    state = RunState.from_document(document)
    assert state.schema_version == 1
    assert state.status == "PAUSED"
    [pending] = state.pending_tools

    # When it is stored and continued with today's code
    store.create_run(state, lease_seconds=0, history_runs=0)
    model = ScriptedModel(text("Deleted 50 records from users."))
    result = continue_run(
        deps_for(store, model),
        "data_manager",
        state.run_id,
        ContinueInput(state.session_id, [Decision(pending.tool_call_id, confirmed=True)]),
        principal=None,
        deadline=Deadline.unlimited(),
    ).state

    # Then the tool the human saw ran and the run completed
    assert result.status == "COMPLETED"
    assert result.tool(pending.tool_call_id).result == "Deleted 50 records from users"
    assert model.requests[0][-1]["content"] == "Deleted 50 records from users"


def test_two_containers_taking_turns_keep_the_tool_call_rows_equal_to_the_state(db: str):
    # Given two containers (two stores) and a run with two calls, one of them awaiting a decision
    first, second = PostgresRunStore(db), PostgresRunStore(db)
    state = new_state()
    first.create_run(state, lease_seconds=60, history_runs=0)
    state.tools += [
        ToolCall(
            tool_call_id="a", tool_name="delete_records", state="awaiting_decision", expires_at=2_000_000_000
        ),
        ToolCall(tool_call_id="b", tool_name="delete_records", state="succeeded", result="done"),
    ]
    first.save(
        state,
        lease_seconds=60,
        tokens=[
            {"token_hash": "h1", "tool_call_id": "a", "decision": "approve", "expires_at": 2_000_000_000}
        ],
    )

    # When the other container decides the call, then the first one saves twice more from its load
    theirs = second.load(state.run_id).state
    theirs.tools[0].state, theirs.tools[0].decided_by = "executing", "bob"
    second.save(theirs, lease_seconds=60)
    mine = first.load(state.run_id).state
    mine.tools[0].state, mine.tools[0].result = "succeeded", "deleted"
    first.save(mine, lease_seconds=60)
    mine.status = "COMPLETED"
    first.save(mine, lease_seconds=60)

    # Then the rows say what the final state says, and the decided call's link is used up
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT tool_call_id, state, result, decided_by FROM tool_calls WHERE run_id = %s ORDER BY 1",
            (state.run_id,),
        ).fetchall()
        unused = conn.execute("SELECT count(*) FROM approval_tokens WHERE used_at IS NULL").fetchone()[0]
    assert rows == [("a", "succeeded", "deleted", "bob"), ("b", "succeeded", "done", None)]
    assert unused == 0
    assert store_status(db, state.run_id) == ("COMPLETED", 5)
    first.close()
    second.close()


def store_status(db: str, run_id: str) -> tuple[str, int]:
    with psycopg.connect(db) as conn:
        return conn.execute("SELECT status, version FROM runs WHERE run_id = %s", (run_id,)).fetchone()
