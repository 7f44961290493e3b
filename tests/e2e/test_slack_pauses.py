"""Slack answers every pause kind as AgentOS's Slack interface does: buttons for a confirmation, input
blocks inline with one Submit for the human's fields, the agent's questions and external results; a
call only its approvers resolve gets no buttons in the requester's message."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

import pytest

from tests.conftest import SLACK_SECRET
from tests.support.agents import EXECUTIONS
from tests.support.capture import CaptureServer

QUESTION = {
    "questions": [
        {"question": "Which city?", "header": "City", "options": [{"label": "Paris"}, {"label": "Rome"}]},
        {
            "question": "Extras?",
            "header": "Extras",
            "options": [{"label": "Wifi"}, {"label": "Parking"}],
            "multi_select": True,
        },
    ]
}


@pytest.fixture
def slack(aws, monkeypatch):
    from tests.conftest import _reset_runtime

    with CaptureServer() as server:
        monkeypatch.setenv("SIGNOFF_SLACK_WEBHOOK_URL", server.url + "/incoming")
        _reset_runtime()
        yield server


def _message(api, slack, message: str, agent_id: str, session: str) -> tuple[dict, dict]:
    run = api.start(message, agent_id=agent_id, session_id=session).json()
    assert run["status"] == "PAUSED", run
    [posted] = slack.wait_for(1)
    slack.received.clear()
    return run, posted


def _press(api, posted: dict, action_id: str, values: dict) -> object:
    [button] = [
        element
        for block in posted["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == action_id
    ]
    payload = {
        "type": "block_actions",
        "user": {"id": "U1", "username": "dana"},
        "actions": [{"action_id": action_id, "action_ts": f"{time.time():.6f}", "value": button["value"]}],
        "state": {"values": values},
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time()))
    signature = (
        "v0=" + hmac.new(SLACK_SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    )
    return api.call(
        "POST",
        "/approvals/slack",
        body=body,
        content_type="application/x-www-form-urlencoded",
        headers={"x-slack-request-timestamp": ts, "x-slack-signature": signature},
    )


def _blocks(posted: dict, kind: str) -> list[dict]:
    return [b for b in posted["blocks"] if b["type"] == kind]


def test_a_users_fields_are_input_blocks_and_submit_answers_them(api, aws, slack):
    # Given a paused book_room call: the room is the human's field
    run, posted = _message(api, slack, 'call book_room {"title": "Standup"}', "ops", "s-sl-1")
    call_id = run["tools"][0]["tool_call_id"]

    # Then the message has an input per field (the model's value pre-filled) and one Submit
    inputs = {b["block_id"]: b for b in _blocks(posted, "input")}
    assert inputs[f"signoff:{call_id}:field:title"]["element"]["initial_value"] == "Standup"
    assert "initial_value" not in inputs[f"signoff:{call_id}:field:room"]["element"]
    assert [e["action_id"] for b in _blocks(posted, "actions") for e in b["elements"]] == ["submit"]

    # When dana fills the room in and submits
    values = {
        f"signoff:{call_id}:field:title": {"value": {"type": "plain_text_input", "value": "Standup"}},
        f"signoff:{call_id}:field:room": {"value": {"type": "plain_text_input", "value": "Blue"}},
    }
    answer = _press(api, posted, "submit", values)

    # Then the call is answered and the run finishes through the queue with her value
    assert answer.status == 200, answer
    aws.run_worker()
    assert api.get(run["run_id"], agent_id="ops").json()["status"] == "COMPLETED"
    assert EXECUTIONS == [("book_room", {"title": "Standup", "room": "Blue"})]


def test_questions_are_selects_and_checkboxes_answered_by_submit(api, aws, slack, model):
    run, posted = _message(api, slack, "call ask_user " + json.dumps(QUESTION), "concierge", "s-sl-2")
    call_id = run["tools"][0]["tool_call_id"]
    inputs = {b["block_id"]: b for b in _blocks(posted, "input")}
    assert inputs[f"signoff:{call_id}:q:0"]["element"]["type"] == "static_select"
    assert inputs[f"signoff:{call_id}:q:1"]["element"]["type"] == "checkboxes"

    values = {
        f"signoff:{call_id}:q:0": {"choice": {"type": "static_select", "selected_option": {"value": "Rome"}}},
        f"signoff:{call_id}:q:1": {
            "choice": {"type": "checkboxes", "selected_options": [{"value": "Wifi"}, {"value": "Parking"}]}
        },
    }
    assert _press(api, posted, "submit", values).status == 200
    aws.run_worker()

    done = api.get(run["run_id"], agent_id="concierge").json()
    assert done["status"] == "COMPLETED"
    assert [q["selected_options"] for q in done["tools"][0]["user_feedback_schema"]] == [
        ["Rome"],
        ["Wifi", "Parking"],
    ]


def test_an_external_result_is_a_text_input(api, aws, slack):
    run, posted = _message(api, slack, 'call charge_card {"amount": 5}', "ops", "s-sl-3")
    call_id = run["tools"][0]["tool_call_id"]
    [field] = _blocks(posted, "input")
    assert field["block_id"] == f"signoff:{call_id}:result" and field["element"]["multiline"] is True

    values = {f"signoff:{call_id}:result": {"value": {"type": "plain_text_input", "value": "charged r-9"}}}
    assert _press(api, posted, "submit", values).status == 200
    aws.run_worker()
    done = api.get(run["run_id"], agent_id="ops").json()
    assert done["status"] == "COMPLETED" and done["tools"][0]["result"] == "charged r-9"


def test_a_confirmation_has_buttons_and_a_required_approval_none(api, aws, slack):
    message = 'call pay_vendor {"vendor": "acme", "amount": 5} and call archive_report {"name": "q3"}'
    run, posted = _message(api, slack, message, "payouts", "s-sl-4")
    pay_id, archive_id = (t["tool_call_id"] for t in run["tools"])

    buttons = [b for b in _blocks(posted, "actions")]
    assert [b["block_id"] for b in buttons] == [f"signoff:{archive_id}"]
    assert any(
        "Waiting for an approval admin" in e["text"]
        for b in _blocks(posted, "context")
        for e in b["elements"]
    )

    # A forged button press for the required call is refused (dana is no approver; never the requester)
    forged = dict(posted)
    forged["blocks"] = [
        {
            "type": "actions",
            "elements": [
                {
                    "action_id": "approve",
                    "value": json.dumps({"run_id": run["run_id"], "tool_call_id": pay_id}),
                }
            ],
        }
    ]
    assert _press(api, forged, "approve", {}).status == 403
    assert EXECUTIONS == []
