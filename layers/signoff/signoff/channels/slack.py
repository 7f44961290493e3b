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
    """A Slack ``block_actions`` interaction, as decisions; ``reply_to`` is its response_url.

    Approve / Reject decide one confirmation; Submit answers every input call of the message from
    the message's input blocks (``state.values``): the human's fields, the agent's questions, and
    externally computed results.

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
        run_id = str(target["run_id"])
        response_url = payload.get("response_url")
        if action["action_id"] == "submit":
            decisions = _submitted(target, (payload.get("state") or {}).get("values") or {})
        else:
            approve = {"approve": True, "reject": False}[action["action_id"]]
            digest = str(target["args_digest"]) if target.get("args_digest") else None
            decisions = [Decision(str(target["tool_call_id"]), approve, shown_digest=digest)]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, UnicodeDecodeError, RecursionError):
        raise InvalidInput("not a Signoff approval action") from None
    if not decisions:
        raise InvalidInput("not a Signoff approval action")
    if unstorable_path([run_id, approver, delivery, [d.__dict__ for d in decisions]]) or not (
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
    return Received(decisions[0], decider, run_id, more=tuple(decisions[1:]))


def _submitted(target: dict[str, Any], values: dict[str, Any]) -> list[Decision]:
    """The decisions a Submit makes: one per input call the button names, from its input blocks."""
    decisions = []
    for call in target["calls"]:
        call_id, kind = str(call["id"]), call["kind"]
        prefix = f"signoff:{call_id}:"
        mine = {key[len(prefix) :]: value for key, value in values.items() if key.startswith(prefix)}
        digest = str(call["args_digest"]) if call.get("args_digest") else None
        if kind == "questions":
            answers = {}
            for key, state in mine.items():
                element = next(iter(state.values()))
                if element.get("selected_options") is not None:
                    chosen = [o["value"] for o in element["selected_options"]]
                else:
                    chosen = [element["selected_option"]["value"]] if element.get("selected_option") else []
                answers["#" + key.removeprefix("q:")] = chosen
            decisions.append(Decision(call_id, answers=answers, shown_digest=digest))
        elif kind == "result":
            element = next(iter(mine.get("result", {"": {}}).values()))
            decisions.append(Decision(call_id, result=element.get("value"), shown_digest=digest))
        else:
            fields = {
                key.removeprefix("field:"): next(iter(state.values())).get("value")
                for key, state in mine.items()
                if key.startswith("field:")
            }
            decisions.append(
                Decision(
                    call_id,
                    values={k: v for k, v in fields.items() if v not in (None, "")},
                    shown_digest=digest,
                )
            )
    return decisions


def slack_message(detail: dict[str, Any]) -> dict[str, Any]:
    """A Block Kit message for a pause, as AgentOS's Slack interface answers each kind: Approve /
    Reject buttons for a confirmation; input blocks inline, with one Submit button for the message,
    for the human's fields, the agent's questions and external results. A call that only its
    approvers may resolve (``@approval(required)``) gets no buttons here: they decide it."""
    blocks: list[dict[str, Any]] = [
        _section(
            f"*{_escape(detail['agent_name'])}* needs a decision for run `{detail['run_id']}`"
            + (f" (requested by {_escape(detail['user_id'])})" if detail.get("user_id") else "")
        )
    ]
    if detail.get("request"):
        blocks.append(_section(_quoted(f"Request: {detail['request']}")))
    if detail.get("references"):
        blocks.append(_context(_escape("What the agent read:\n" + _references(detail["references"]))))
    submit: list[dict[str, Any]] = []
    for call in detail["tool_calls"]:
        args = _escape(json.dumps(call["tool_args"], ensure_ascii=False)[:2500])
        blocks.append(_section(f"`{call['tool_name']}` with `{args}`"))
        if call.get("approval_type") == "required":
            who = ", ".join(call.get("approvers") or []) or "an approval admin"
            blocks.append(_context(f"Waiting for {who} to resolve it in the approvals inbox or API"))
            continue
        call_id = call["tool_call_id"]
        if call.get("user_feedback_schema") is not None:
            blocks.extend(_question_blocks(call_id, call["user_feedback_schema"]))
            submit.append({"id": call_id, "kind": "questions", "args_digest": call["args_digest"]})
        elif call["requirement"] == "user_input":
            for field in call.get("user_input_schema") or []:
                blocks.append(
                    _text_input(f"signoff:{call_id}:field:{field['name']}", field["name"], field.get("value"))
                )
            submit.append({"id": call_id, "kind": "user_input", "args_digest": call["args_digest"]})
        elif call["requirement"] == "external_execution":
            blocks.append(_text_input(f"signoff:{call_id}:result", "Result", None, multiline=True))
            submit.append({"id": call_id, "kind": "result", "args_digest": call["args_digest"]})
        else:
            blocks.append(_decision_buttons(detail["run_id"], call))
    if submit:
        value = json.dumps({"run_id": detail["run_id"], "calls": submit})
        button = {
            "type": "button",
            "style": "primary",
            "action_id": "submit",
            "text": {"type": "plain_text", "text": "Submit"},
            "value": value[:2000],
        }
        blocks.append(
            {"type": "actions", "block_id": f"signoff:submit:{detail['run_id']}"[:255], "elements": [button]}
        )
    return {"text": f"{detail['agent_name']} needs a decision", "blocks": blocks}


def _escape(text: str) -> str:
    """Text from a user or the model, shown as itself in mrkdwn: no links, mentions (``<!channel>``)
    or formatting it did not ask for (Slack's three escapes)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _quoted(text: str, limit: int = 1500) -> str:
    """A block quote of ``text`` (cut at ``limit`` characters), escaped."""
    cut = text if len(text) <= limit else text[:limit] + "…"
    return "\n".join(f"&gt; {line}" for line in _escape(cut).splitlines() or [""])


def _references(references: list[dict[str, Any]]) -> str:
    lines = []
    for number, ref in enumerate(references[:5], 1):
        where = ref.get("title") or ref.get("document_id") or "passage"
        excerpt = (ref.get("excerpt") or "")[:150]
        lines.append(f"[{number}] {where}: {excerpt}" if excerpt else f"[{number}] {where}")
    return "\n".join(lines)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def _plain(text: str, limit: int = 75) -> dict[str, Any]:
    return {"type": "plain_text", "text": (text or " ")[:limit]}


def _text_input(block_id: str, label: str, value: Any, *, multiline: bool = False) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": "value", "multiline": multiline}
    if value is not None:
        element["initial_value"] = (value if isinstance(value, str) else json.dumps(value))[:3000]
    return {"type": "input", "block_id": block_id[:255], "label": _plain(label, 2000), "element": element}


def _question_blocks(call_id: str, questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    blocks = []
    for index, question in enumerate(questions):
        options = [
            {"text": _plain(o["label"]), "value": o["label"][:150]}
            | ({"description": _plain(o["description"])} if o.get("description") else {})
            for o in question["options"]
        ]
        element = (
            {"type": "checkboxes", "action_id": "choice", "options": options}
            if question.get("multi_select")
            else {
                "type": "static_select",
                "action_id": "choice",
                "options": options,
                "placeholder": _plain("Choose"),
            }
        )
        blocks.append(
            {
                "type": "input",
                "block_id": f"signoff:{call_id}:q:{index}"[:255],
                "label": _plain(question["question"], 2000),
                "element": element,
            }
        )
    return blocks


def _decision_buttons(run_id: str, call: dict[str, Any]) -> dict[str, Any]:
    value = json.dumps(
        {"run_id": run_id, "tool_call_id": call["tool_call_id"], "args_digest": call["args_digest"]}
    )
    return {
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
