"""Slack: a message with Approve / Reject buttons on each pause (an incoming-webhook URL), and the
button presses at ``/approvals/slack`` (Slack's v0 signature); the message is then replaced by the
outcome, also when the decision is kept for a run that is executing and applied later."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import parse_qs

from signoff.channels import Announcer, Incoming, Received, Reply, Secret
from signoff.decisions import Decider, Decision
from signoff.errors import InvalidInput, NotAuthenticated, NotConfigured
from signoff.identity import Principal
from signoff.inputs import unstorable_path

NAME = "slack"
ROUTE = "/approvals/slack"
SIGNATURE_TOLERANCE_S = 300


def announcer(settings: Any, secret: Secret) -> Announcer | None:
    if not settings.slack_webhook_url:
        return None

    def announce(detail: dict[str, Any]) -> None:
        from signoff.channels._http import post_json

        post_json(settings.slack_webhook_url, slack_message(detail))

    return announce


def receive(request: Incoming, settings: Any, secret: Secret) -> Received:
    """Verify Slack's signature, then read the button press.

    Raises:
        NotConfigured: no signing secret. NotAuthenticated: a bad or stale signature.
        InvalidInput: not a Signoff button press.
    """
    key = secret(NAME)
    if not key:
        raise NotConfigured("Slack approvals are not configured (no signing secret)")
    headers = request.headers
    verify_slack(
        key, headers.get("x-slack-request-timestamp", ""), headers.get("x-slack-signature", ""), request.body
    )
    return parse(request.body, meta=request.meta)


def reply(outcome: Any, received: Received) -> Reply:
    """The message that replaces the buttons (Slack wants a 200 even when the decision is kept)."""
    message = decision_message(outcome)
    reply_to = received.decider.reply_to
    return Reply(200, message, (lambda: tell(reply_to, message)) if reply_to else None)


def decision_message(outcome: Any) -> dict[str, Any]:
    call = outcome.call
    verb = "approved" if outcome.verdict == "approve" else "rejected"
    icon = ":white_check_mark:" if verb == "approved" else ":no_entry_sign:"
    text = f"{icon} `{call.tool_name}` {verb} by {call.decided_by}"
    if outcome.deferred:
        text = (
            f":hourglass_flowing_sand: `{call.tool_name}`: your decision ({verb}) is kept; the run is "
            "executing right now, and it is applied as soon as the run is free"
        )
    return {
        "replace_original": True,
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }


def tell(response_url: str, message: dict[str, Any]) -> bool:
    """Replace the Slack message with the outcome (best effort: the decision is already saved)."""
    from signoff.channels._http import post_json

    try:
        post_json(response_url, message)
    except Exception:
        return False
    return True


def verify_slack(
    signing_secret: str, timestamp: str, signature: str, body: bytes, *, now: float | None = None
) -> None:
    """Check Slack's ``X-Slack-Signature`` (v0) over ``v0:<timestamp>:<body>``.

    Raises:
        NotAuthenticated: missing, stale (over five minutes) or wrong.
    """
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        raise NotAuthenticated("missing Slack timestamp") from None
    now = time.time() if now is None else now
    if abs(now - sent) > SIGNATURE_TOLERANCE_S:
        raise NotAuthenticated("Slack request timestamp is outside the 5 minute window")
    base = f"v0:{sent}:".encode() + body
    expected = "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    if not signature or not hmac.compare_digest(expected, signature):
        raise NotAuthenticated("invalid Slack signature")


def parse(body: bytes, *, meta: dict[str, Any]) -> Received:
    """A Slack ``block_actions`` interaction, as a decision; ``reply_to`` is its response_url.

    Raises:
        InvalidInput: not a Signoff button press.
    """
    try:
        payload = json.loads(parse_qs(body.decode())["payload"][0])
        action = payload["actions"][0]
        target = json.loads(action["value"])
        user = payload.get("user") or {}
        approver = f"slack:{user.get('username') or user.get('name') or user.get('id')}"
        delivery = f"slack:{action.get('action_ts') or payload.get('trigger_id')}:{user.get('id')}"
        approve = {"approve": True, "reject": False}[action["action_id"]]
        run_id, tool_call_id = str(target["run_id"]), str(target["tool_call_id"])
        digest = str(target["args_digest"]) if target.get("args_digest") else None
        response_url = payload.get("response_url")
    except (KeyError, IndexError, TypeError, ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidInput("not a Signoff approval action") from None
    if unstorable_path([run_id, tool_call_id, approver, delivery, digest]) or not (
        response_url is None or isinstance(response_url, str)
    ):
        raise InvalidInput("not a Signoff approval action")
    decider = Decider(
        Principal(approver, ()),
        approver,
        NAME,
        vouched=True,
        delivery_id=delivery,
        meta=dict(meta),
        reply_to=response_url,
    )
    return Received(Decision(tool_call_id, approve, shown_digest=digest), decider, run_id)


def slack_message(detail: dict[str, Any]) -> dict[str, Any]:
    """A Block Kit message with Approve / Reject buttons for each pending confirmation."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*{detail['agent_name']}* needs a decision for run `{detail['run_id']}`"
                + (f" (requested by {detail['user_id']})" if detail.get("user_id") else ""),
            },
        }
    ]
    for call in detail["tool_calls"]:
        args = json.dumps(call["tool_args"], ensure_ascii=False)[:2500]
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"`{call['tool_name']}` with `{args}`"}}
        )
        if call["requirement"] != "confirmation":
            continue
        value = json.dumps(
            {
                "run_id": detail["run_id"],
                "tool_call_id": call["tool_call_id"],
                "args_digest": call["args_digest"],
            }
        )
        blocks.append(
            {
                "type": "actions",
                "block_id": f"signoff:{call['tool_call_id']}"[:255],
                "elements": [
                    {
                        "type": "button",
                        "style": "primary",
                        "action_id": "approve",
                        "text": {"type": "plain_text", "text": "Approve"},
                        "value": value,
                    },
                    {
                        "type": "button",
                        "style": "danger",
                        "action_id": "reject",
                        "text": {"type": "plain_text", "text": "Reject"},
                        "value": value,
                    },
                ],
            }
        )
    return {"text": f"{detail['agent_name']} needs a decision", "blocks": blocks}
