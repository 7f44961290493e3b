"""Decisions from outside the API: signed webhooks, Slack, approval links; the queue resumes runs."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import urlencode, urlparse

import pytest

from signoff.approvals import sign
from tests.conftest import SLACK_SECRET, WEBHOOK_SECRET
from tests.support.agents import EXECUTIONS


@pytest.fixture
def paused(api, aws):
    """A paused delete_records run, with the RunPaused event it published."""
    run = api.start(user_id="test_user", session_id="test_session").json()
    assert run["status"] == "PAUSED"
    [event] = aws.events()
    return run, event


def _webhook(api, body: dict, *, secret=WEBHOOK_SECRET, timestamp=None, raw: bytes | None = None):
    raw = raw if raw is not None else json.dumps(body).encode()
    signature = sign(secret, int(time.time()) if timestamp is None else timestamp, raw)
    return api.call(
        "POST",
        "/approvals/webhook",
        body=raw,
        content_type="application/json",
        headers={"signoff-signature": signature},
    )


def _decision(run, **extra):
    return {
        "event_id": extra.pop("event_id", "evt-1"),
        "run_id": run["run_id"],
        "tool_call_id": run["tools"][0]["tool_call_id"],
        "decision": "approve",
        "approver": "ops-bot",
        **extra,
    }


def _token(url: str) -> str:
    return urlparse(url).path.rsplit("/", 1)[1]


def test_a_pause_publishes_one_event_with_links_only_after_it_is_committed(api, aws, db, monkeypatch):
    import psycopg

    from signoff.notify import Notifier

    seen_in_db = []
    real = Notifier.run_paused

    def spy(self, state, links):
        with psycopg.connect(db) as conn:
            seen_in_db.append(
                conn.execute("SELECT status FROM runs WHERE run_id = %s", (state.run_id,)).fetchone()
            )
        return real(self, state, links)

    monkeypatch.setattr(Notifier, "run_paused", spy)

    run = api.start(user_id="test_user", session_id="test_session").json()

    [event] = aws.events()
    assert seen_in_db == [("PAUSED",)]
    assert event["detail-type"] == "RunPaused" and event["source"] == "signoff"
    detail = event["detail"]
    assert (detail["run_id"], detail["agent_id"], detail["user_id"]) == (
        run["run_id"],
        "data_manager",
        "test_user",
    )
    [call] = detail["tool_calls"]
    assert call["tool_name"] == "delete_records"
    assert call["tool_args"] == {"table_name": "users", "count": 50}
    assert call["approve_url"].startswith("https://") and "/approve/" in call["approve_url"]
    assert call["approve_url"] != call["reject_url"]
    assert call["expires_at"]


def test_a_signed_webhook_approves_and_the_worker_completes_the_run(api, aws, paused):
    run, _ = paused

    response = _webhook(api, _decision(run, note="looks fine"))

    assert response.status == 200
    assert response.json()["decision"] == "approved" and response.json()["resumed"] is True
    assert api.get(run["run_id"]).json()["status"] == "PAUSED"  # decided, not yet run
    worker = aws.run_worker()
    assert worker == {"batchItemFailures": []}
    done = api.get(run["run_id"]).json()
    assert done["status"] == "COMPLETED"
    assert done["tools"][0]["result"] == "Deleted 50 records from users"


def test_a_webhook_can_name_the_call_by_its_approval_token(api, aws, paused):
    run, event = paused
    token = _token(event["detail"]["tool_calls"][0]["reject_url"])

    response = _webhook(
        api,
        {
            "event_id": "evt-t",
            "token": token,
            "decision": "reject",
            "approver": "sec",
            "note": "not on a Friday",
        },
    )

    assert response.status == 200 and response.json()["decision"] == "rejected"
    aws.run_worker()
    done = api.get(run["run_id"]).json()
    assert done["status"] == "COMPLETED" and done["tools"][0]["result"] is None
    assert "not on a Friday" in done["content"]


@pytest.mark.parametrize(
    ("tamper", "status"),
    [
        ({"secret": "wrong-secret"}, 401),
        ({"timestamp": int(time.time()) - 600}, 401),
    ],
    ids=["bad-signature", "old-timestamp"],
)
def test_bad_signatures_and_old_timestamps_change_nothing(api, aws, paused, dump, tamper, status):
    run, _ = paused
    before = dump()

    response = _webhook(api, _decision(run), **tamper)

    assert response.status == status
    assert dump() == before and aws.resume_messages() == []


def test_a_body_changed_after_signing_is_refused(api, aws, paused, dump):
    run, _ = paused
    before = dump()
    signed = json.dumps(_decision(run, decision="reject")).encode()
    signature = sign(WEBHOOK_SECRET, int(time.time()), signed)
    forged = signed.replace(b'"reject"', b'"approve"')

    response = api.call(
        "POST",
        "/approvals/webhook",
        body=forged,
        content_type="application/json",
        headers={"signoff-signature": signature},
    )

    assert response.status == 401 and dump() == before


def test_a_replayed_webhook_is_refused_and_changes_nothing(api, aws, paused, dump):
    run, _ = paused
    assert _webhook(api, _decision(run)).status == 200
    before = dump()

    replay = _webhook(api, _decision(run))

    assert replay.status == 409 and "already received" in replay.json()["detail"]
    assert dump() == before


def test_webhook_body_errors_are_422(api, aws, paused, dump):
    before = dump()
    response = _webhook(api, {"event_id": "e", "decision": "maybe", "approver": "x"})
    assert response.status == 422
    fields = {tuple(e["loc"]) for e in response.json()["detail"]}
    assert ("body", "decision") in fields and ("body", "token") in fields
    assert dump() == before


def test_approval_link_get_shows_but_never_decides(api, aws, paused, dump):
    _run, event = paused
    approve_url = event["detail"]["tool_calls"][0]["approve_url"]
    before = dump()

    page = api.call("GET", "/approve/{token}", {"token": _token(approve_url)})

    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert "delete_records" in page.text and "users" in page.text and "test_user" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert dump() == before


def test_approval_link_post_decides_once(api, aws, paused, dump):
    run, event = paused
    token = _token(event["detail"]["tool_calls"][0]["approve_url"])

    first = api.call("POST", "/approve/{token}", {"token": token}, fields={"note": "go"}, form="urlencoded")

    assert first.status == 200 and "approved" in first.text
    aws.run_worker()
    assert api.get(run["run_id"]).json()["status"] == "COMPLETED"
    before = dump()
    again = api.call("POST", "/approve/{token}", {"token": token}, fields={}, form="urlencoded")
    page = api.call("GET", "/approve/{token}", {"token": token})
    assert again.status == 409 and "already used" in again.text.lower()
    assert page.status == 410 and "already used" in page.text.lower()
    assert dump() == before


def test_the_other_link_of_a_decided_call_is_dead_too(api, aws, paused, dump):
    _run, event = paused
    links = event["detail"]["tool_calls"][0]
    assert (
        api.call(
            "POST", "/approve/{token}", {"token": _token(links["reject_url"])}, fields={}, form="urlencoded"
        ).status
        == 200
    )
    before = dump()

    late = api.call(
        "POST", "/approve/{token}", {"token": _token(links["approve_url"])}, fields={}, form="urlencoded"
    )

    assert late.status == 409 and dump() == before


def test_an_expired_link_changes_nothing(api, aws, paused, dump, db):
    import psycopg

    _run, event = paused
    token = _token(event["detail"]["tool_calls"][0]["approve_url"])
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE approval_tokens SET expires_at = now() - interval '1 minute'")
    before = dump()

    response = api.call("POST", "/approve/{token}", {"token": token}, fields={}, form="urlencoded")

    assert response.status == 410 and "expired" in response.text.lower()
    assert dump() == before


def test_unknown_links_are_404(api, aws):
    assert api.call("GET", "/approve/{token}", {"token": "nope"}).status == 404


def test_link_pages_escape_what_they_show(api, aws):
    paused = api.start(
        'call lookup_user {"name": "x"} then call delete_records '
        '{"table_name": "<script>alert(1)</script>", "count": 1}',
        agent_id="ops",
        session_id="s-xss",
    )
    run = paused.json()
    if run["status"] != "PAUSED":  # the stand-in runs one call per turn with "then"
        pytest.skip("stand-in did not produce the paused call")
    [event] = aws.events()
    token = _token(event["detail"]["tool_calls"][0]["approve_url"])
    page = api.call("GET", "/approve/{token}", {"token": token})
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;" in page.text


def _slack(
    api,
    run,
    *,
    action="approve",
    secret=SLACK_SECRET,
    timestamp=None,
    response_url=None,
    call_index=0,
    digest=None,
    action_ts=None,
):
    payload = {
        "type": "block_actions",
        "user": {"id": "U123", "username": "dana"},
        "trigger_id": "t-1",
        "response_url": response_url,
        "actions": [
            {
                "action_id": action,
                "action_ts": action_ts or f"{time.time():.6f}",
                "type": "button",
                "value": json.dumps(
                    {
                        "run_id": run["run_id"],
                        "tool_call_id": run["tools"][call_index]["tool_call_id"],
                        **({"args_digest": digest} if digest else {}),
                    }
                ),
            }
        ],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return api.call(
        "POST",
        "/approvals/slack",
        body=body,
        content_type="application/x-www-form-urlencoded",
        headers={"x-slack-request-timestamp": ts, "x-slack-signature": signature},
    )


def test_a_slack_button_with_a_valid_signature_approves(api, aws, paused):
    run, _ = paused
    from tests.support.capture import CaptureServer

    with CaptureServer() as slack:
        response = _slack(api, run, response_url=slack.url + "/respond")
        assert response.status == 200
        assert "approved by slack:dana" in response.json()["text"]
        [update] = slack.wait_for(1)
    assert update["replace_original"] is True and "approved" in update["text"]
    aws.run_worker()
    done = api.get(run["run_id"]).json()
    assert done["status"] == "COMPLETED"
    assert done["tools"][0]["confirmed"] is True


def test_a_slack_request_with_a_bad_signature_changes_nothing(api, aws, paused, dump):
    run, _ = paused
    before = dump()
    assert _slack(api, run, secret="not-the-secret").status == 401
    assert _slack(api, run, timestamp=int(time.time()) - 3600).status == 401
    assert dump() == before


def test_sqs_redelivery_of_a_resume_message_runs_the_tool_once(api, aws):
    # Given a webhook-approved run whose resume message is delivered twice
    run = api.start('call transfer {"amount": 300}', agent_id="ops", session_id="s-redeliver").json()
    aws.events()
    assert _webhook(api, _decision(run, event_id="evt-r")).status == 200
    [message] = aws.resume_messages()

    # When the worker gets it, and then gets it again (SQS at-least-once)
    first = aws.run_worker([message])
    second = aws.run_worker([message], receive_count=2)

    # Then the transfer ran exactly once and both deliveries succeeded
    assert first == second == {"batchItemFailures": []}
    assert EXECUTIONS == [("transfer", {"amount": 300})]
    assert api.get(run["run_id"], agent_id="ops").json()["status"] == "COMPLETED"


def test_an_http_continue_racing_the_queue_runs_the_tool_once(api, aws):
    run = api.start('call transfer {"amount": 301}', agent_id="ops", session_id="s-race").json()
    aws.events()
    call_id = run["tools"][0]["tool_call_id"]
    assert _webhook(api, _decision(run, event_id="evt-race")).status == 200

    # the HTTP continue arrives first (nothing left to decide, so it just runs), then the message
    http_answer = api.continue_(run["run_id"], [], agent_id="ops", session_id="s-race")
    worker = aws.run_worker()

    assert http_answer.json()["status"] == "COMPLETED"
    assert worker == {"batchItemFailures": []}
    assert EXECUTIONS == [("transfer", {"amount": 301})]
    assert (
        api.continue_(
            run["run_id"], [{"tool_call_id": call_id, "confirmed": True}], agent_id="ops", session_id="s-race"
        ).status
        == 409
    )


def test_an_expired_pause_fails_closed_and_the_model_is_told(api, aws, db, model):
    import psycopg

    run = api.start('call transfer {"amount": 999}', agent_id="ops", session_id="s-expire").json()
    aws.events()
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE tool_calls SET expires_at = now() - interval '1 second'")
        # the call's expiry lives in the run document; the row mirrors it for the sweep's query
        conn.execute(
            "UPDATE runs SET state = jsonb_set(state, '{tools,0,expires_at}',"
            " to_jsonb(extract(epoch FROM now())::bigint - 1))"
        )

    upkeep = aws.run_upkeep()
    assert upkeep["expired"] == [run["run_id"]]
    aws.run_worker()

    done = api.get(run["run_id"], agent_id="ops").json()
    assert done["status"] == "COMPLETED"
    [call] = done["tools"]
    assert call["result"] is None and call["confirmation_note"] == "Approval expired"
    assert "expired" in done["content"]
    assert EXECUTIONS == []
    told = [m for m in model.requests[-1]["messages"] if m["role"] == "tool"]
    assert "did not run" in told[0]["content"]


def test_background_start_and_continue_answer_202_and_the_worker_does_the_work(api, aws):
    started = api.start(session_id="s-bg", background="true")
    assert started.status == 202
    assert started.json() == {"run_id": started.json()["run_id"], "session_id": "s-bg", "status": "PENDING"}
    run_id = started.json()["run_id"]
    assert api.get(run_id).json()["status"] == "PENDING"

    aws.run_worker()
    paused = api.get(run_id).json()
    assert paused["status"] == "PAUSED"

    call_id = paused["tools"][0]["tool_call_id"]
    queued = api.continue_(
        run_id, [{"tool_call_id": call_id, "confirmed": True}], session_id="s-bg", background="true"
    )
    assert queued.status == 202 and queued.json()["status"] == "PENDING"
    aws.run_worker()
    assert api.get(run_id).json()["status"] == "COMPLETED"


def test_a_failed_notification_keeps_the_pause_and_is_retried_through_the_queue(api, aws, monkeypatch):
    from tests.conftest import _reset_runtime
    from tests.support.capture import CaptureServer

    monkeypatch.setenv("SIGNOFF_NOTIFY_URL", "http://127.0.0.1:9/unreachable")
    _reset_runtime()

    run = api.start(session_id="s-notify").json()

    assert run["status"] == "PAUSED"
    [message] = aws.resume_messages()
    assert json.loads(message["Body"])["kind"] == "notify"
    # still unreachable: the worker reports the message as failed, so SQS retries it
    assert aws.run_worker([message])["batchItemFailures"]
    with CaptureServer() as receiver:
        monkeypatch.setenv("SIGNOFF_NOTIFY_URL", receiver.url + "/hook")
        _reset_runtime()
        assert aws.run_worker([message]) == {"batchItemFailures": []}
        [(body, headers)] = receiver.wait_for(1, with_headers=True)
    assert body["type"] == "RunPaused" and body["detail"]["run_id"] == run["run_id"]
    from signoff.approvals import verify_signature

    verify_signature(WEBHOOK_SECRET, headers["signoff-signature"], json.dumps(body).encode())
    assert api.get(run["run_id"]).json()["status"] == "PAUSED"


def test_a_deadline_handoff_is_finished_by_the_worker(api, aws, model, monkeypatch):
    from tests.conftest import _reset_runtime
    from tests.support.api import Api

    monkeypatch.setenv("SIGNOFF_DEADLINE_MARGIN_MS", "5000")
    _reset_runtime()
    model.latency_s = 1.5
    handed = Api(timeout_ms=7_000).start('call lookup_user {"name": "ada"}', agent_id="ops", session_id="s-h")
    assert handed.status == 202
    model.latency_s = 0

    aws.run_worker()

    assert api.get(handed.json()["run_id"], agent_id="ops").json()["status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("how", "trips"),
    [("webhook", 2), ("webhook with token", 2), ("link", 2), ("link page", 1), ("replayed webhook", 1)],
)
def test_database_round_trips_per_decision(api, aws, paused, how, trips):
    # Given a paused call, and the approvals container's one store
    from signoff.runtime import get_store

    run, event = paused
    links = event["detail"]["tool_calls"][0]
    if how == "replayed webhook":
        assert _webhook(api, _decision(run)).status == 200
    store = get_store()
    store.round_trips = 0

    # When it is decided (or looked at) through one channel
    if how in ("webhook", "replayed webhook"):
        answer = _webhook(api, _decision(run))
    elif how == "webhook with token":
        token = _token(links["approve_url"])
        answer = _webhook(
            api, {"event_id": "evt-2", "token": token, "decision": "approve", "approver": "ops"}
        )
    elif how == "link":
        answer = api.call("POST", "/approve/{token}", {"token": _token(links["approve_url"])}, fields={})
    else:
        answer = api.call("GET", "/approve/{token}", {"token": _token(links["approve_url"])})

    # Then the link or the run is read with the replay check in one query, and the decision is one write
    assert answer.status == (409 if how == "replayed webhook" else 200), answer.text
    assert store.round_trips == trips
