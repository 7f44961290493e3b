"""The refusal table (README, "Who may do what"): for each reason a decision is refused, what every
channel answers, one test per cell; each also proves the refused decision changed nothing.

The busy cells (an invocation is executing the run) are in test_found_from_outside.py: the API
continue answers 409 with Retry-After; webhook and link answer 202, Slack 200, the queue takes it:
the decision is kept and applied once the run is free.
"""

from __future__ import annotations

import json
import os

import psycopg
import pytest

from tests.e2e.test_approvals import _slack, _token, _webhook
from tests.support.agents import EXECUTIONS

CHANNELS = ["api", "webhook", "slack", "link", "queue"]

# reason -> channel -> (status, text in the answer); None: the channel cannot express it.
TABLE: dict[str, dict[str, tuple[int, str] | None]] = {
    "expired": {
        "api": (410, "has expired"),
        "webhook": (410, "has expired"),
        "slack": (410, "has expired"),
        "link": (410, "Link expired"),
        "queue": (0, "has expired"),
    },
    "already decided": {
        "api": (400, "is not a paused tool call of this run"),
        "webhook": (409, "tool call was already decided"),
        "slack": (409, "tool call was already decided"),
        "link": (409, "Already used"),
        "queue": (0, "tool call was already decided"),
    },
    "digest stale": {
        "api": None,  # the continue cannot carry a digest; a changed echo is 400 instead
        "webhook": (409, "other arguments"),
        "slack": (409, "other arguments"),
        "link": None,  # a link is bound to its call, whose arguments cannot change while it waits
        "queue": (0, "other arguments"),
    },
    "replayed": {
        "api": None,  # a continue has no delivery id: its duplicate finds the call decided
        "webhook": (409, "already received"),
        "slack": (409, "already received"),
        "link": (409, "Already used"),
        "queue": (0, "already received"),
    },
}
CELLS = [
    (reason, channel) for reason, row in TABLE.items() for channel in CHANNELS if row[channel] is not None
]


def _paused(api, aws) -> tuple[dict, dict]:
    # two calls in one turn: deciding one leaves the run paused on the other
    message = 'call transfer {"amount": 9} and call delete_records {"table_name": "t", "count": 1}'
    run = api.start(message, agent_id="ops", session_id="s-table").json()
    assert run["status"] == "PAUSED" and len(run["requirements"]) == 2
    [event] = aws.events()
    return run, event["detail"]["tool_calls"][0]


def _decide(
    api, aws, run, links, channel: str, *, event_id="evt-t", digest=None, action_ts=None, approve=True
):
    call_id = run["tools"][0]["tool_call_id"]
    if channel == "api":
        answer = api.continue_(
            run["run_id"],
            [{"tool_call_id": call_id, "confirmed": approve}],
            session_id=run["session_id"],
            agent_id="ops",
        )
        return answer.status, answer.text
    if channel == "webhook":
        body = {
            "event_id": event_id,
            "run_id": run["run_id"],
            "tool_call_id": call_id,
            "decision": "approve" if approve else "reject",
            "approver": "ops-bot",
        }
        if digest:
            body["args_digest"] = digest
        answer = _webhook(api, body)
        return answer.status, answer.text
    if channel == "slack":
        answer = _slack(api, run, digest=digest, action_ts=action_ts)
        return answer.status, answer.text
    if channel == "link":
        answer = api.call("POST", "/approve/{token}", {"token": _token(links["approve_url"])}, fields={})
        return answer.status, answer.text
    message = {
        "kind": "decision",
        "event_id": event_id,
        "run_id": run["run_id"],
        "tool_call_id": call_id,
        "decision": "approve",
        "approver": "ops-bot",
        **({"args_digest": digest} if digest else {}),
    }
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=json.dumps(message))
    result = aws.run_worker()
    assert result == {"batchItemFailures": []}  # refused for good, not retried
    # the queue has no one to answer: the refusal and its reason go to the run's audit log
    with psycopg.connect(os.environ["SIGNOFF_DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT detail->>'reason' FROM run_events WHERE kind = 'decision_refused' AND channel = 'queue'"
            " ORDER BY event_id"
        ).fetchall()
    return 0, rows[-1][0] if rows else ""


def _expire(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "UPDATE runs SET state = jsonb_set(state, '{tools,0,expires_at}',"
            " to_jsonb(extract(epoch FROM now())::bigint - 1))"
        )


def _calls(db: str) -> list:
    with psycopg.connect(db) as conn:
        return conn.execute("SELECT tool_call_id, state, decided_by FROM tool_calls ORDER BY 1").fetchall()


@pytest.mark.parametrize(("reason", "channel"), CELLS)
def test_refusal_table(api, aws, db, dump, reason, channel):
    # Given a paused call in the situation the reason names
    run, links = _paused(api, aws)
    kwargs: dict = {}
    if reason == "expired":
        _expire(db)
    elif reason == "already decided":
        other = "api" if channel != "api" else "webhook"
        status, text = _decide(api, aws, run, links, other, event_id="evt-first", approve=False)
        assert status == 200, text
    elif reason == "digest stale":
        kwargs["digest"] = "0" * 64
    elif reason == "replayed":
        kwargs = {"event_id": "evt-same", "action_ts": "1700000000.000001"}
        if channel == "link":
            kwargs = {}
        status, _ = _decide(api, aws, run, links, channel, **kwargs)
        assert status == (0 if channel == "queue" else 200)
        aws.resume_messages()
    before = dump()
    calls_before = _calls(db)

    # When the decision arrives through the channel
    status, text = _decide(api, aws, run, links, channel, **kwargs)

    # Then the channel answers as the table says, and nothing changed (an audit line at most)
    expected_status, expected_text = TABLE[reason][channel]  # type: ignore[misc]
    assert status == expected_status, text
    assert expected_text in text
    after = dump()
    assert {k: v for k, v in after.items() if k != "run_events"} == {
        k: v for k, v in before.items() if k != "run_events"
    }
    assert _calls(db) == calls_before
    assert aws.resume_messages() == []
    assert EXECUTIONS == []


def test_a_decider_who_is_not_allowed_is_refused_on_every_channel_and_recorded(api, aws, db, dump):
    # Given a finance-guarded call of alice's
    run = api.call(
        "POST",
        "/agents/{agent_id}/runs",
        {"agent_id": "guarded"},
        fields={"message": 'call wire_money {"amount": 77}', "session_id": "s-na"},
        claims={"sub": "alice"},
    ).json()
    [event] = aws.events()
    assert event["detail"]["tool_calls"][0]["approve_url"] is None  # no link: a link proves no one
    before = dump()
    call_id = run["tools"][0]["tool_call_id"]

    # When bob (API), a webhook naming eve, Slack's dana and a queue message naming eve approve it
    api_answer = api.call(
        "POST",
        "/agents/{agent_id}/runs/{run_id}/continue",
        {"agent_id": "guarded", "run_id": run["run_id"]},
        fields={
            "session_id": run["session_id"],
            "tools": json.dumps([{"tool_call_id": call_id, "confirmed": True}]),
        },
        claims={"sub": "bob"},
    )
    webhook = _webhook(
        api,
        {
            "event_id": "e1",
            "run_id": run["run_id"],
            "tool_call_id": call_id,
            "decision": "approve",
            "approver": "eve",
        },
    )
    slack = _slack(api, run)
    queued = {
        "kind": "decision",
        "event_id": "e2",
        "run_id": run["run_id"],
        "tool_call_id": call_id,
        "decision": "approve",
        "approver": "eve",
    }
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=json.dumps(queued))
    aws.run_worker()

    # Then: bob cannot even see the run (404); the signed channels are refused 403; all recorded
    assert api_answer.status == 404
    assert (webhook.status, slack.status) == (403, 403)
    assert "eve is not an approver of wire_money" in webhook.text
    assert "slack:dana is not an approver of wire_money" in slack.text
    with psycopg.connect(db) as conn:
        refused = conn.execute(
            "SELECT actor, channel FROM run_events WHERE kind = 'decision_refused' ORDER BY event_id"
        ).fetchall()
    assert refused == [("eve", "webhook"), ("slack:dana", "slack"), ("eve", "queue")]
    after = dump()
    assert {k: v for k, v in after.items() if k != "run_events"} == {
        k: v for k, v in before.items() if k != "run_events"
    }
    assert EXECUTIONS == []
