"""Crashes between steps, a deadline that runs out, a failing model and a failing database.

A crash is a ``SimulatedCrash`` (a BaseException, as when Lambda kills the process) raised at
the chosen point; afterwards the run must be visible, nothing the user sent may be lost, and a
tool whose execution may have started must never run again on its own.
"""

from __future__ import annotations

import psycopg
import pytest

from tests.support.agents import CRASH_IN, EXECUTIONS, SimulatedCrash


def _expire_lease(db: str, run_id: str) -> None:
    """What time does to a dead invocation's lease."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE runs SET lease_until = now() - interval '1 second' WHERE run_id = %s", (run_id,))


def _stored(db: str, run_id: str) -> dict:
    with psycopg.connect(db) as conn:
        status, lease_live, state = conn.execute(
            "SELECT status, lease_until > now(), state FROM runs WHERE run_id = %s", (run_id,)
        ).fetchone()
    return {"status": status, "lease_live": lease_live, "state": state}


def _only_run_id(db: str) -> str:
    with psycopg.connect(db) as conn:
        return conn.execute("SELECT run_id FROM runs").fetchone()[0]


def _ops(api, message, session="s-crash"):
    return api.start(message, agent_id="ops", session_id=session)


def _continue(api, run_id, tools=None, session="s-crash"):
    return api.continue_(run_id, tools, agent_id="ops", session_id=session)


def test_crash_after_the_model_answered_keeps_the_users_message(api, db, monkeypatch):
    # Given an invocation that dies after the model answered, before the pause is saved
    from signoff.store.postgres import PostgresRunStore

    real_save = PostgresRunStore.save

    def dying_save(self, state, **kwargs):
        if state.status == "PAUSED":
            raise SimulatedCrash("killed before saving the pause")
        return real_save(self, state, **kwargs)

    monkeypatch.setattr(PostgresRunStore, "save", dying_save)
    with pytest.raises(SimulatedCrash):
        _ops(api, 'call transfer {"amount": 500}')
    monkeypatch.setattr(PostgresRunStore, "save", real_save)

    # Then the run is visible as RUNNING under a live lease, with the user's message stored
    run_id = _only_run_id(db)
    stored = _stored(db, run_id)
    assert stored["status"] == "RUNNING" and stored["lease_live"]
    assert stored["state"]["messages"][0] == {"role": "user", "content": 'call transfer {"amount": 500}'}
    assert _continue(api, run_id).status == 409  # still leased: someone may be working on it

    # When the lease has expired and the client continues
    _expire_lease(db, run_id)
    resumed = _continue(api, run_id).json()

    # Then the model is asked again and the run pauses as it should have
    assert resumed["status"] == "PAUSED"
    assert resumed["tools"][0]["tool_args"] == {"amount": 500}
    assert EXECUTIONS == []


def test_crash_while_a_confirmed_tool_runs_asks_a_human_again(api, db):
    # Given a confirmed transfer whose invocation dies mid-tool
    paused = _ops(api, 'call transfer {"amount": 700}').json()
    call_id = paused["tools"][0]["tool_call_id"]
    CRASH_IN.add("transfer")
    with pytest.raises(SimulatedCrash):
        _continue(api, paused["run_id"], [{"tool_call_id": call_id, "confirmed": True}])

    # Then the run shows RUNNING with the call marked as executing
    stored = _stored(db, paused["run_id"])
    assert stored["status"] == "RUNNING"
    assert stored["state"]["tools"][0]["state"] == "executing"

    # When it is recovered after its lease expired
    _expire_lease(db, paused["run_id"])
    recovered = _continue(api, paused["run_id"]).json()

    # Then the transfer is not re-run on its own: a human is asked again, told why
    assert recovered["status"] == "PAUSED"
    [call] = recovered["tools"]
    assert call["requires_confirmation"] is True and call["confirmed"] is None
    assert "may or may not have taken effect" in call["confirmation_note"]
    assert len(EXECUTIONS) == 1

    # And a fresh confirmation runs it, once
    done = _continue(api, paused["run_id"], [{"tool_call_id": call_id, "confirmed": True}]).json()
    assert done["status"] == "COMPLETED"
    assert done["tools"][0]["result"] == "Transferred 700"
    assert len(EXECUTIONS) == 2


def test_crash_while_an_idempotent_tool_runs_reruns_it_on_recovery(api, db):
    paused = _ops(api, 'call set_flag {"name": "beta"}').json()
    call_id = paused["tools"][0]["tool_call_id"]
    CRASH_IN.add("set_flag")
    with pytest.raises(SimulatedCrash):
        _continue(api, paused["run_id"], [{"tool_call_id": call_id, "confirmed": True}])
    _expire_lease(db, paused["run_id"])

    recovered = _continue(api, paused["run_id"]).json()

    assert recovered["status"] == "COMPLETED"
    assert recovered["tools"][0]["result"] == "Flag beta set"
    assert [name for name, _ in EXECUTIONS] == ["set_flag", "set_flag"]


def test_crash_after_the_tool_returned_keeps_its_result_and_never_reruns_it(api, db, monkeypatch):
    # Given a confirmed transfer that succeeds, then the invocation dies calling the model
    paused = _ops(api, 'call transfer {"amount": 900}').json()
    call_id = paused["tools"][0]["tool_call_id"]
    from signoff.models.openai_chat import OpenAIChat

    real_request = OpenAIChat.request

    def dying_request(self, messages, tools, deadline):
        raise SimulatedCrash("killed calling the model")

    monkeypatch.setattr(OpenAIChat, "request", dying_request)
    with pytest.raises(SimulatedCrash):
        _continue(api, paused["run_id"], [{"tool_call_id": call_id, "confirmed": True}])
    monkeypatch.setattr(OpenAIChat, "request", real_request)

    # Then the tool's result was saved before the model call
    stored = _stored(db, paused["run_id"])
    assert stored["state"]["tools"][0]["state"] == "succeeded"
    assert stored["state"]["messages"][-1]["role"] == "tool"

    # When recovered, the model gets the saved result and the transfer did not run again
    _expire_lease(db, paused["run_id"])
    done = _continue(api, paused["run_id"]).json()
    assert done["status"] == "COMPLETED"
    assert "Transferred 900" in done["content"]
    assert len(EXECUTIONS) == 1


def test_the_sweep_marks_dead_runs_as_resumable_errors(api, db, monkeypatch):
    from signoff import runtime, service

    paused = _ops(api, 'call transfer {"amount": 1}').json()
    CRASH_IN.add("transfer")
    call_id = paused["tools"][0]["tool_call_id"]
    with pytest.raises(SimulatedCrash):
        _continue(api, paused["run_id"], [{"tool_call_id": call_id, "confirmed": True}])
    _expire_lease(db, paused["run_id"])

    swept = service.sweep_stale_runs(runtime.dependencies())

    assert swept == [paused["run_id"]]
    run = api.get(paused["run_id"], agent_id="ops").json()
    assert run["status"] == "ERROR"
    assert "while transfer was running" in run["content"]
    again = _continue(api, paused["run_id"]).json()
    assert again["status"] == "PAUSED" and len(EXECUTIONS) == 1


def test_a_slow_model_near_the_deadline_hands_the_run_off_instead_of_losing_it(api, db, model, monkeypatch):
    # Given a Lambda with 7 s left, a 5 s safety margin and a model that takes 1.5 s
    from tests.support.api import Api

    monkeypatch.setenv("SIGNOFF_DEADLINE_MARGIN_MS", "5000")
    from tests.conftest import _reset_runtime

    _reset_runtime()
    slow = Api(timeout_ms=7_000)
    model.latency_s = 1.5

    # When a run needs two model turns (an automatic tool, then the answer)
    response = slow.start('call lookup_user {"name": "ada"}', agent_id="ops", session_id="s-slow")

    # Then after the first turn there is no time for a second: 202, RUNNING, saved
    assert response.status == 202
    run = response.json()
    assert run["status"] == "RUNNING"
    assert run["tools"][0]["result"] == "ada is an admin"
    assert _stored(db, run["run_id"])["lease_live"] is False

    # And a later invocation finishes it without re-running the tool
    model.latency_s = 0
    done = api.continue_(run["run_id"], agent_id="ops", session_id="s-slow").json()
    assert done["status"] == "COMPLETED" and "ada is an admin" in done["content"]
    assert len(EXECUTIONS) == 1


def test_rate_limits_are_retried_within_the_invocation(api, model):
    model.inject("429", times=2)
    run = api.start(session_id="s-429").json()
    assert run["status"] == "PAUSED"


def test_malformed_tool_call_json_is_retried(api, model):
    model.inject("malformed_tool_call", times=1)
    run = api.start(session_id="s-malformed").json()
    assert run["status"] == "PAUSED"
    assert run["tools"][0]["tool_args"] == {"table_name": "users", "count": 50}


def test_a_failed_save_leaves_the_previous_state_intact(api, db):
    # Given a paused run and a database that fails in the middle of the next save
    paused = api.start(session_id="s-dbfail").json()
    before = _stored(db, paused["run_id"])
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION fail_event() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER fail_event BEFORE INSERT ON run_events FOR EACH ROW EXECUTE FUNCTION fail_event()"
        )
    try:
        # When a continue's claim fails inside the save statement
        call_id = paused["tools"][0]["tool_call_id"]
        failed = api.continue_(
            paused["run_id"], [{"tool_call_id": call_id, "confirmed": True}], session_id="s-dbfail"
        )
        assert failed.status == 503
        assert "disk full" not in failed.text  # no internals in the answer
    finally:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("DROP TRIGGER fail_event ON run_events")
            conn.execute("DROP FUNCTION fail_event()")

    # Then nothing of it was written: the run is still PAUSED at the same version
    after = _stored(db, paused["run_id"])
    assert after["status"] == "PAUSED" and after["state"] == before["state"]
    assert (
        api.continue_(
            paused["run_id"], [{"tool_call_id": call_id, "confirmed": True}], session_id="s-dbfail"
        ).json()["status"]
        == "COMPLETED"
    )


def test_a_continue_outliving_its_lease_answers_the_run_as_it_is_not_409(api, db, model, monkeypatch):
    """Soak flow 845: the sweep took over a live invocation whose model call was still retrying.

    The continue's claim had succeeded (the decision is stored and the tool ran), so its request is
    no duplicate: it must not be told 409 "already continued". It gets the run as it now is.
    """
    import dataclasses
    import threading
    import time

    from tests.conftest import _reset_runtime

    # Given a lease far shorter than a model call that retries three 500s (at least 1.75 s of sleep)
    monkeypatch.setenv("SIGNOFF_LEASE_SECONDS", "1")
    monkeypatch.setenv("SIGNOFF_MODEL_MAX_RETRIES", "3")
    _reset_runtime()
    from signoff import runtime, service
    from signoff.store.postgres import PostgresRunStore

    paused = _ops(api, 'call transfer {"amount": 845}').json()
    run_id, call_id = paused["run_id"], paused["tools"][0]["tool_call_id"]
    # and the upkeep function in a container of its own, sweeping as soon as the lease is dead
    upkeep = dataclasses.replace(runtime.dependencies(), store=PostgresRunStore(db))
    swept: list[str] = []

    def sweep_when_the_lease_dies() -> None:
        give_up = time.monotonic() + 15
        while time.monotonic() < give_up:
            stored = _stored(db, run_id)
            if EXECUTIONS and stored["status"] == "RUNNING" and stored["lease_live"] is False:
                swept.extend(service.sweep_stale_runs(upkeep))
                return
            time.sleep(0.02)

    sweeper = threading.Thread(target=sweep_when_the_lease_dies)
    sweeper.start()
    model.inject("500", 3)

    # When the one copy of the decision is sent, and its model call outlives the lease
    answer = _continue(api, run_id, [{"tool_call_id": call_id, "confirmed": True}])
    sweeper.join()

    # Then the sweep took the run over, and the continue answers with the run's state, not 409
    assert swept == [run_id]
    assert answer.status == 200, answer.text
    body = answer.json()
    assert body["status"] == "ERROR" and "continue the run to resume it" in body["content"]
    assert body["tools"][0]["confirmed"] is True
    assert EXECUTIONS == [("transfer", {"amount": 845})]
    # and continuing the errored run completes it without running the tool again
    resumed = _continue(api, run_id)
    assert resumed.status == 200 and resumed.json()["status"] == "COMPLETED"
    assert EXECUTIONS == [("transfer", {"amount": 845})]
