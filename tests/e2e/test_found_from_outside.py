"""What an outside tester broke, each shown as a user sees it and as the database holds it afterwards.

1. An outside decision arriving while the run executes is kept and applied once the run is free:
   never a second execution, never a lost decision; the API continue still answers 409.
2. A continue naming an expired call is 410 and changes nothing, whether or not the sweep ran.
3. Groups match exactly (see also tests/unit/test_http_parsing.py).
4. A run handed off at the deadline waits for its worker and is never swept to ERROR.
5. Model output that cannot be stored ends the run ERROR with the reason, and leaves no lease.
And: approver rights are per tool.
"""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from tests.e2e.test_approvals import _slack, _token, _webhook
from tests.support.agents import EXECUTIONS, WHILE_RUNNING

TWO_CALLS = 'call transfer {"amount": 7} and call delete_records {"table_name": "logs", "count": 3}'


def _two_calls(api) -> dict:
    run = api.start(TWO_CALLS, agent_id="ops", session_id="s-two", user_id="owner").json()
    assert run["status"] == "PAUSED" and [t["tool_name"] for t in run["tools"]] == [
        "transfer",
        "delete_records",
    ]
    return run


def _confirm(api, run, index: int, **fields):
    call_id = run["tools"][index]["tool_call_id"]
    return api.continue_(
        run["run_id"],
        [{"tool_call_id": call_id, "confirmed": True}],
        session_id=run["session_id"],
        agent_id="ops",
        **fields,
    )


def _call_rows(db: str, run_id: str) -> dict[str, str]:
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT tool_name, state FROM tool_calls WHERE run_id = %s", (run_id,)).fetchall()
    return dict(rows)


def _kept(db: str, run_id: str) -> list:
    with psycopg.connect(db) as conn:
        return conn.execute("SELECT deferred FROM runs WHERE run_id = %s", (run_id,)).fetchone()[0]


def _outside_approval(api, aws, run, channel: str, links: dict) -> tuple[int, str]:
    """Approve the delete_records call of ``run`` through one outside channel."""
    call_id = run["tools"][1]["tool_call_id"]
    if channel == "webhook":
        body = {
            "event_id": f"evt-{channel}",
            "run_id": run["run_id"],
            "tool_call_id": call_id,
            "decision": "approve",
            "approver": "ops-bot",
        }
        answer = _webhook(api, body)
        return answer.status, answer.text
    if channel == "slack":
        answer = _slack(api, run, call_index=1, response_url=None)
        return answer.status, answer.text
    if channel == "link":
        token = _token(links[call_id]["approve_url"])
        answer = api.call("POST", "/approve/{token}", {"token": token}, fields={})
        return answer.status, answer.text
    message = {
        "kind": "decision",
        "event_id": "evt-queue",
        "run_id": run["run_id"],
        "tool_call_id": call_id,
        "decision": "approve",
        "approver": "ops-bot",
    }
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=json.dumps(message))
    aws.run_worker()
    return 202, ""


@pytest.mark.parametrize("channel", ["webhook", "slack", "link", "queue"])
def test_an_outside_decision_during_execution_is_kept_and_applied_once_the_run_is_free(api, aws, db, channel):
    # Given one turn with two calls: transfer and delete_records, both awaiting a decision
    run = _two_calls(api)
    [paused_event] = aws.events()
    links = {c["tool_call_id"]: c for c in paused_event["detail"]["tool_calls"]}
    answers: list[tuple[int, str]] = []
    # ... and an outside approval of delete_records arriving while transfer executes
    WHILE_RUNNING["transfer"] = lambda: answers.append(_outside_approval(api, aws, run, channel, links))

    # When the owner confirms only transfer
    owner = _confirm(api, run, 0)

    # Then the outside sender was told its decision is kept (202), and it touched nothing meanwhile
    [(status, text)] = answers
    # (Slack's interactivity protocol wants a 200; the message it shows says the decision is kept)
    assert status == (200 if channel == "slack" else 202), text
    if channel in ("webhook",):
        assert json.loads(text)["deferred"] is True
        assert "applied" in json.loads(text)["detail"]
    if channel == "slack":
        assert "kept" in json.loads(text)["text"]
    if channel == "link":
        assert "kept" in text
    # ... transfer ran once and its result is saved; delete_records is approved, not lost
    assert owner.status == 200, owner
    assert EXECUTIONS == [("transfer", {"amount": 7})]
    assert _call_rows(db, run["run_id"]) == {"transfer": "succeeded", "delete_records": "approved"}
    assert _kept(db, run["run_id"]) == []

    # When the queued resume runs
    aws.run_worker()

    # Then the run completes with each tool run exactly once
    done = api.get(run["run_id"], agent_id="ops").json()
    assert done["status"] == "COMPLETED", done
    assert _call_rows(db, run["run_id"]) == {"transfer": "succeeded", "delete_records": "succeeded"}
    assert done["tools"][0]["result"] == "Transferred 7"
    assert done["tools"][1]["result"] == "Deleted 3 records from logs"
    with psycopg.connect(db) as conn:
        kinds = [
            (kind, channel_)
            for kind, channel_ in conn.execute(
                "SELECT kind, channel FROM run_events WHERE run_id = %s AND kind = 'decision'"
                " ORDER BY event_id",
                (run["run_id"],),
            )
        ]
    assert kinds == [("decision", "api"), ("decision", channel)]


def test_a_continue_while_the_run_executes_is_409_with_retry_after_and_changes_nothing(api, aws, db):
    # Given a tool executing, and the owner's second continue for the other call arriving meanwhile
    run = _two_calls(api)
    answers = []
    WHILE_RUNNING["transfer"] = lambda: answers.append(_confirm(api, run, 1))

    _confirm(api, run, 0)

    # Then that continue was refused as busy, told when to retry, and the call still waits
    [busy] = answers
    assert busy.status == 409 and busy.json() == {"detail": "run is already running"}
    assert busy.headers["retry-after"] == "5"
    assert _call_rows(db, run["run_id"])["delete_records"] == "awaiting_decision"


def test_a_kept_decision_that_no_longer_holds_is_dropped_and_the_decider_told(api, aws, db):
    # Given a Slack approval kept while transfer executes, and the owner rejecting that call
    # in the same breath (the run is free again before the kept decision is applied)
    from tests.support.capture import CaptureServer

    run = _two_calls(api)
    with CaptureServer() as slack:

        def slack_then_owner() -> None:
            answer = _slack(api, run, call_index=1, response_url=slack.url + "/respond")
            assert answer.status == 200 and "kept" in answer.json()["text"]

        WHILE_RUNNING["transfer"] = slack_then_owner
        _confirm(api, run, 0)
        # the kept approval was applied: the owner's later reject of the same call is refused
        reject = api.continue_(
            run["run_id"],
            [{"tool_call_id": run["tools"][1]["tool_call_id"], "confirmed": False}],
            session_id=run["session_id"],
            agent_id="ops",
        )
        assert reject.status in (400, 409)
        kept, applied = slack.wait_for(2)
    assert "is kept" in kept["text"]
    assert "applied once the run was free" in applied["text"]


def test_a_kept_decision_for_a_call_that_expired_meanwhile_is_dropped_with_a_reason(api, aws, db):
    # Given a webhook approval of purge_cache (a two-second approval window) kept while transfer
    # executes, and the window closing before the run is free
    message = 'call transfer {"amount": 7} and call purge_cache {"region": "eu"}'
    run = api.start(message, agent_id="ops", session_id="s-lapse").json()
    assert run["status"] == "PAUSED"

    def approve_then_wait() -> None:
        status, _ = _outside_approval(api, aws, run, "webhook", {})
        assert status == 202
        time.sleep(2.2)

    WHILE_RUNNING["transfer"] = approve_then_wait

    # When the owner's continue finishes transfer
    owner = _confirm(api, run, 0)

    # Then the kept approval was checked again, refused as expired, and purge_cache never ran
    assert owner.status == 200
    assert _call_rows(db, run["run_id"])["purge_cache"] == "awaiting_decision"
    assert _kept(db, run["run_id"]) == []
    with psycopg.connect(db) as conn:
        [(detail,)] = conn.execute(
            "SELECT detail FROM run_events WHERE run_id = %s AND kind = 'deferred_decision_dropped'",
            (run["run_id"],),
        ).fetchall()
    assert "expired" in detail["reason"]
    assert EXECUTIONS == [("transfer", {"amount": 7})]


# ---------------------------------------------------------------------------------------- 2. expiry


def test_a_continue_naming_an_expired_call_is_410_and_changes_nothing(api, aws, db, dump):
    # Given a paused call whose approval window passed, before any sweep ran
    run = api.start('call transfer {"amount": 41}', agent_id="ops", session_id="s-exp").json()
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "UPDATE runs SET state = jsonb_set(state, '{tools,0,expires_at}',"
            " to_jsonb(extract(epoch FROM now())::bigint - 2))"
        )
    before = dump()

    # When the owner approves it through the API
    answer = _confirm(api, run, 0)

    # Then 410, the tool did not run, and nothing changed
    assert answer.status == 410, answer
    assert "expired" in answer.json()["detail"]
    assert EXECUTIONS == []
    assert dump() == before


def test_one_expired_call_refuses_the_whole_continue(api, aws, db, dump):
    run = _two_calls(api)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "UPDATE runs SET state = jsonb_set(state, '{tools,1,expires_at}',"
            " to_jsonb(extract(epoch FROM now())::bigint - 2))"
        )
    before = dump()
    decisions = [{"tool_call_id": t["tool_call_id"], "confirmed": True} for t in run["tools"]]

    answer = api.continue_(run["run_id"], decisions, session_id=run["session_id"], agent_id="ops")

    assert answer.status == 410
    assert EXECUTIONS == [] and dump() == before


# ------------------------------------------------------------------------------------ 4. hand-off


def test_a_handed_off_run_waits_for_its_worker_and_is_never_swept(api, aws, db, model, monkeypatch):
    from tests.conftest import _reset_runtime
    from tests.support.api import Api

    # Given a short lease and an invocation that runs out of time: it hands the run off (202)
    monkeypatch.setenv("SIGNOFF_DEADLINE_MARGIN_MS", "5000")
    monkeypatch.setenv("SIGNOFF_LEASE_SECONDS", "1")
    _reset_runtime()
    model.latency_s = 1.5
    handed = Api(timeout_ms=7_000).start(
        'call lookup_user {"name": "ada"}', agent_id="ops", session_id="s-ho"
    )
    model.latency_s = 0
    assert handed.status == 202 and handed.json()["status"] == "RUNNING"
    run_id = handed.json()["run_id"]

    # When the sweep runs after the lease would have ended
    time.sleep(1.2)
    upkeep = aws.run_upkeep()

    # Then it is not swept, a continue is told it is busy, and the worker finishes it
    assert upkeep["dead"] == []
    assert api.continue_(run_id, None, session_id="s-ho", agent_id="ops").status == 409
    aws.run_worker()
    assert api.get(run_id, agent_id="ops").json()["status"] == "COMPLETED"


# ------------------------------------------------------------------------- 5. unstorable model output


@pytest.mark.parametrize("value", ["a\\u0000b", "\\ud800x"])
def test_model_arguments_that_cannot_be_stored_end_the_run_error_without_a_lease(api, aws, db, model, value):
    # Given a model whose tool arguments decode to NUL or a lone surrogate
    message = 'call lookup_user {"name": "' + value + '"}'

    # When a run starts
    answer = api.start(message, agent_id="ops", session_id="s-nul")

    # Then the model was retried, the run ended ERROR with the reason, not the client's 4xx
    assert answer.status == 200, answer
    run = answer.json()
    assert run["status"] == "ERROR"
    assert "cannot be stored" in run["content"]
    with psycopg.connect(db) as conn:
        status, lease = conn.execute(
            "SELECT status, lease_until FROM runs WHERE run_id = %s", (run["run_id"],)
        ).fetchone()
    assert (status, lease) == ("ERROR", None)
    assert len([r for r in model.requests if r.get("messages")]) >= 2  # retried before giving up


# ------------------------------------------------------------------------------ per-tool approvers


def test_an_approver_of_one_tool_cannot_decide_the_owners_other_calls(api, dump):
    from tests.e2e.test_security import _continue

    # Given alice's run with a finance-guarded call and an unguarded one
    message = 'call wire_money {"amount": 10} and call archive_report {"name": "q3"}'
    run = api.call(
        "POST",
        "/agents/{agent_id}/runs",
        {"agent_id": "mixed"},
        fields={"message": message, "session_id": "s-mixed"},
        claims={"sub": "alice"},
    ).json()
    assert run["status"] == "PAUSED"
    archive = run["tools"][1]["tool_call_id"]
    before = dump()

    # When dave (finance) tries to approve alice's unguarded call
    answer = _continue(
        api,
        run,
        [{"tool_call_id": archive, "confirmed": True}],
        claims={"sub": "dave", "cognito:groups": ["finance"]},
    )

    # Then 403, recorded, nothing ran; alice herself may decide it
    assert answer.status == 403
    assert "only the run's owner" in answer.json()["detail"]
    assert dump()["tool_calls"] == before["tool_calls"]
    mine = _continue(api, run, [{"tool_call_id": archive, "confirmed": True}], claims={"sub": "alice"})
    assert mine.status == 200 and mine.json()["status"] == "PAUSED"
    assert EXECUTIONS == [("archive_report", {"name": "q3"})]


@pytest.mark.parametrize("channel", ["api", "webhook", "link"])
def test_after_the_sweep_expired_a_call_every_path_still_answers_410(api, aws, db, channel):
    # Given a paused call past its expiry, and the sweep that marked it expired
    run = api.start('call transfer {"amount": 43}', agent_id="ops", session_id="s-swept").json()
    [paused_event] = aws.events()
    approve_url = paused_event["detail"]["tool_calls"][0]["approve_url"]
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE tool_calls SET expires_at = now() - interval '1 second'")
        conn.execute(
            "UPDATE runs SET state = jsonb_set(state, '{tools,0,expires_at}',"
            " to_jsonb(extract(epoch FROM now())::bigint - 1))"
        )
    assert aws.run_upkeep()["expired"] == [run["run_id"]]

    # When a decision arrives anyway, then it is told the call expired (not that it is undecidable)
    if channel == "api":
        answer = _confirm(api, run, 0)
        status = answer.status
    elif channel == "webhook":
        body = {
            "event_id": "evt-swept",
            "run_id": run["run_id"],
            "tool_call_id": run["tools"][0]["tool_call_id"],
            "decision": "approve",
            "approver": "ops-bot",
        }
        status = _webhook(api, body).status
    else:
        status = api.call("POST", "/approve/{token}", {"token": _token(approve_url)}, fields={}).status
    assert status == 410
    assert EXECUTIONS == []
