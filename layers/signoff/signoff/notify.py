"""Tells the world a run paused: EventBridge, a signed webhook, a Slack message with buttons."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from signoff.approvals import sign
from signoff.state import RunState

_TIMEOUT_S = 3.0


class NotificationFailed(Exception):
    """At least one channel failed; the pause itself is saved and unaffected."""


def _iso(epoch: int | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch else None


def paused_detail(state: RunState, links: dict[str, dict[str, str]]) -> dict[str, Any]:
    """What every channel says about a pause: the run and each pending call with its links."""
    return {
        "run_id": state.run_id,
        "agent_id": state.agent_id,
        "agent_name": state.agent_name,
        "session_id": state.session_id,
        "user_id": state.user_id,
        "content": state.content,
        "tool_calls": [
            {
                "tool_call_id": call.tool_call_id,
                "tool_name": call.tool_name,
                "tool_args": call.tool_args,
                "args_digest": call.args_digest,
                "requirement": call.requirement,
                "expires_at": _iso(call.expires_at),
                "approve_url": links.get(call.tool_call_id, {}).get("approve"),
                "reject_url": links.get(call.tool_call_id, {}).get("reject"),
            }
            for call in state.pending_tools
        ],
    }


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


def _post_json(url: str, payload: dict[str, Any] | bytes, headers: dict[str, str] | None = None) -> None:
    import urllib.request  # http.client and its friends: only when a notification is actually sent

    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(  # noqa: S310 - configured https endpoints
        url, data=body, method="POST", headers={"Content-Type": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:  # noqa: S310
        response.read()


class Notifier:
    """Publishes ``RunPaused`` after the pause is committed, to every configured channel.

    Args:
        event_bus: EventBridge bus name (empty: no event).
        webhook_url: URL that receives a signed JSON notification (empty: none).
        webhook_secret: the secret that signs it, or a function returning it (read only when a
            notification is actually sent, so functions that never send need no access to it).
        slack_webhook_url: a Slack incoming-webhook URL (empty: no Slack message).
    """

    def __init__(
        self,
        *,
        event_bus: str = "",
        webhook_url: str = "",
        webhook_secret: str | Callable[[], str] = "",
        slack_webhook_url: str = "",
    ) -> None:
        self.event_bus = event_bus
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.slack_webhook_url = slack_webhook_url

    @cached_property
    def _events(self) -> Any:
        import boto3

        return boto3.client("events")

    def run_paused(self, state: RunState, links: dict[str, dict[str, str]]) -> None:
        """Send to every channel; raise ``NotificationFailed`` naming those that failed."""
        detail = paused_detail(state, links)
        failures = []
        if self.event_bus:
            try:
                result = self._events.put_events(
                    Entries=[
                        {
                            "Source": "signoff",
                            "DetailType": "RunPaused",
                            "Detail": json.dumps(detail),
                            "EventBusName": self.event_bus,
                        }
                    ]
                )
                if result.get("FailedEntryCount"):
                    failures.append("eventbridge")
            except Exception:  # any SDK failure: reported below, retried via the queue
                failures.append("eventbridge")
        if self.webhook_url:
            raw = json.dumps({"type": "RunPaused", "detail": detail}).encode()
            try:
                secret = self.webhook_secret() if callable(self.webhook_secret) else self.webhook_secret
                _post_json(self.webhook_url, raw, {"Signoff-Signature": sign(secret, int(time.time()), raw)})
            except Exception:
                failures.append("webhook")
        if self.slack_webhook_url:
            try:
                _post_json(self.slack_webhook_url, slack_message(detail))
            except Exception:
                failures.append("slack")
        if failures:
            raise NotificationFailed(", ".join(failures))


def update_slack_message(response_url: str, message: dict[str, Any]) -> bool:
    """Replace the Slack message with the outcome (best effort: the decision is already saved)."""
    try:
        _post_json(response_url, message)
    except Exception:
        return False
    return True
