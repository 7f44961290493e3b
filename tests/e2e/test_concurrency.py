"""Duplicate and concurrent continues through the local HTTP server, across separate "Lambda containers".

Real Lambda runs one event per container and scales out, so duplicate continues of one paused run
race in different processes, each with its own database connection. The dev server with
``containers=6`` reproduces that: every request below runs in one of six worker processes. The
confirmed tool, ``ledger_entry``, inserts a row into ``test_ledger``, so its executions are counted
by the database, whichever process ran it.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from signoff_dev.devserver import DevServer
from tests.support.api import multipart

ROOT = Path(__file__).resolve().parents[2]
DUPLICATES = 20
CONFLICTS = ("run is already running", "run is already continued")


@pytest.fixture(scope="module")
def server(postgres_url, standin):
    """The dev server with six warm containers, shared by this module's tests (warm, like Lambda)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIGNOFF_DATABASE_URL", postgres_url)
        patch.setenv("SIGNOFF_AGENTS_MODULE", "tests.support.agents")
        dev = DevServer(
            ROOT,
            port=0,
            database_url=postgres_url,
            model_base_url=standin.base_url,
            containers=6,
            announce=False,
        )
        dev.start()
        try:
            yield dev
        finally:
            dev.stop()


@pytest.fixture
def base_url(server, db, model):
    """The server's URL, with an emptied database and an empty ledger."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS test_ledger (id serial PRIMARY KEY, amount int, memo text)")
        conn.execute("TRUNCATE test_ledger")
    return server.base_url


def _post(url: str, fields: dict[str, str]) -> tuple[int, dict]:
    body, content_type = multipart(fields)
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _start(base_url: str, message: str) -> dict:
    session = f"s-{uuid.uuid4().hex[:8]}"
    status, run = _post(
        f"{base_url}/agents/ledger/runs", {"message": message, "session_id": session, "user_id": "ann"}
    )
    assert status == 200, run
    assert run["status"] == "PAUSED", run
    return run


def _continue(base_url: str, run: dict, confirmed: bool | None) -> tuple[int, dict]:
    fields = {"session_id": run["session_id"], "user_id": "ann"}
    if confirmed is not None:
        call_id = run["tools"][0]["tool_call_id"]
        fields["tools"] = json.dumps([{"tool_call_id": call_id, "confirmed": confirmed}])
    return _post(f"{base_url}/agents/ledger/runs/{run['run_id']}/continue", fields)


def _all_at_once(base_url: str, run: dict, decisions: list[bool]) -> list[tuple[bool, int, dict]]:
    """Send one continue per decision, all released at the same moment; (decision, status, body) each."""
    barrier = threading.Barrier(len(decisions))
    answers: list[tuple[bool, int, dict] | None] = [None] * len(decisions)

    def send(index: int, confirmed: bool) -> None:
        barrier.wait()
        answers[index] = (confirmed, *_continue(base_url, run, confirmed))

    threads = [threading.Thread(target=send, args=(i, d)) for i, d in enumerate(decisions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(answer is not None for answer in answers), "a continue got no answer"
    return answers  # type: ignore[return-value]


def _ledger(db: str) -> list[tuple[int, str]]:
    with psycopg.connect(db) as conn:
        return conn.execute("SELECT amount, memo FROM test_ledger ORDER BY id").fetchall()


def test_twenty_identical_concurrent_confirmations_write_the_ledger_once(base_url, db):
    run = _start(base_url, 'call ledger_entry {"amount": 125, "memo": "x"}')

    answers = _all_at_once(base_url, run, [True] * DUPLICATES)

    statuses = Counter(status for _, status, _ in answers)
    assert statuses == {200: 1, 409: DUPLICATES - 1}, statuses
    [winner] = [body for _, status, body in answers if status == 200]
    assert winner["status"] == "COMPLETED"
    assert "Ledger entry of 125 written" in winner["content"]
    assert {body["detail"] for _, status, body in answers if status == 409} <= set(CONFLICTS)
    assert _ledger(db) == [(125, "x")]


def test_concurrent_confirmations_and_rejections_have_one_winner_whose_decision_holds(base_url, db):
    run = _start(base_url, 'call ledger_entry {"amount": 250, "memo": "mixed"}')
    decisions = [index % 2 == 0 for index in range(DUPLICATES)]

    answers = _all_at_once(base_url, run, decisions)

    winners = [(confirmed, body) for confirmed, status, body in answers if status == 200]
    assert len(winners) == 1, Counter(status for _, status, _ in answers)
    [(confirmed, body)] = winners
    assert sum(1 for _, status, _ in answers if status == 409) == DUPLICATES - 1
    assert {body["detail"] for _, status, body in answers if status == 409} <= set(CONFLICTS)
    assert body["status"] == "COMPLETED"
    assert body["tools"][0]["confirmed"] is confirmed
    assert _ledger(db) == ([(250, "mixed")] if confirmed else [])
    # And what the run shows afterwards is the winner's outcome
    status, stored = _get(f"{base_url}/agents/ledger/runs/{run['run_id']}?session_id={run['session_id']}")
    assert status == 200 and stored["status"] == "COMPLETED"
    assert stored["tools"][0]["confirmed"] is confirmed


def test_duplicate_continues_one_after_another_are_refused_after_the_first(base_url, db):
    run = _start(base_url, 'call ledger_entry {"amount": 375, "memo": "seq"}')

    first = _continue(base_url, run, True)
    later = [_continue(base_url, run, True) for _ in range(4)]

    assert first[0] == 200 and first[1]["status"] == "COMPLETED"
    assert later == [(409, {"detail": "run is already continued"})] * 4
    assert _ledger(db) == [(375, "seq")]


def test_a_handler_that_dies_answers_502_and_the_run_recovers_without_running_the_tool_again(
    base_url, db, server
):
    # Given a confirmed tool whose invocation dies right after the tool wrote its row
    run = _start(base_url, 'call ledger_entry_crashy {"amount": 500, "memo": "crash"}')

    status, body = _continue(base_url, run, True)

    # Then the client sees what API Gateway answers for a failed Lambda, and the tool ran once
    assert (status, body) == (502, {"message": "Internal Server Error"})
    assert _ledger(db) == [(500, "crash")]
    # And the server keeps serving (the dead container was replaced): the run shows RUNNING
    url = f"{base_url}/agents/ledger/runs/{run['run_id']}?session_id={run['session_id']}"
    status, stored = _get(url)
    assert status == 200 and stored["status"] == "RUNNING"
    assert _continue(base_url, run, None) == (409, {"detail": "run is already running"})

    # When its lease has run out and the client continues it
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "UPDATE runs SET lease_until = now() - interval '1 second' WHERE run_id = %s", (run["run_id"],)
        )
    status, recovered = _continue(base_url, run, None)

    # Then a human is asked again about the interrupted call; rejecting it finishes the run
    assert status == 200 and recovered["status"] == "PAUSED", recovered
    assert recovered["tools"][0]["tool_call_id"] == run["tools"][0]["tool_call_id"]
    status, done = _continue(base_url, recovered, False)
    assert status == 200 and done["status"] == "COMPLETED"
    assert _ledger(db) == [(500, "crash")]
