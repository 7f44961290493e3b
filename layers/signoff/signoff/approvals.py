"""Approval tokens and links, and the signatures that authenticate decisions from outside."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from signoff.agent import Agent
from signoff.errors import NotAuthenticated
from signoff.inputs import MAX_JSON_DEPTH, UNSTORABLE_MESSAGE, json_depth, unstorable_path
from signoff.state import RunState

SIGNATURE_HEADER = "signoff-signature"
SIGNATURE_TOLERANCE_S = 300


def hash_token(token: str) -> str:
    """Tokens are stored only as this digest; the plain token exists in the link alone."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class IssuedLinks:
    """Approval tokens minted at a pause: rows for the store, plain links for the notification."""

    rows: list[dict[str, Any]]
    links: dict[str, dict[str, str]]
    fresh: list[str]  # the calls that started waiting now


def issue_tokens(state: RunState, agent: Agent, *, now: int, fresh_only: bool = True) -> IssuedLinks:
    """Give every pending confirmation call an approve and a reject link, each single-use.

    A call's expiry is set once, when it first waits; ``fresh_only=False`` mints new links for
    calls that already wait (a notification re-sent from the queue) without moving the expiry.
    """
    rows: list[dict[str, Any]] = []
    links: dict[str, dict[str, str]] = {}
    fresh: list[str] = []
    base = (state.public_url or "").rstrip("/")
    for call in state.pending_tools:
        if call.expires_at is None:
            tool = agent.tool(call.tool_name)
            ttl = (tool.approval_ttl_seconds if tool else None) or agent.approval_ttl_seconds
            call.expires_at = now + ttl
            fresh.append(call.tool_call_id)
        elif fresh_only:
            continue
        tool = agent.tool(call.tool_name)
        if call.requirement != "confirmation" or (
            tool is not None and (tool.approvers or not tool.allow_self_approval)
        ):
            continue  # a link proves no identity: such tools are decided where identity is known
        links[call.tool_call_id] = {}
        for decision in ("approve", "reject"):
            token = secrets.token_urlsafe(32)
            rows.append(
                {
                    "token_hash": hash_token(token),
                    "tool_call_id": call.tool_call_id,
                    "decision": decision,
                    "expires_at": call.expires_at,
                }
            )
            links[call.tool_call_id][decision] = f"{base}/approvals/{token}"
    return IssuedLinks(rows, links, fresh)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Signoff-Signature`` header value for a body: ``t=<unix>,v1=<hex HMAC-SHA256>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(secret: str, header: str, body: bytes, *, now: float | None = None) -> int:
    """Check a ``Signoff-Signature`` header; return its timestamp.

    Raises:
        NotAuthenticated: missing, malformed, wrong, or older than five minutes.
    """
    pairs = [item.strip().split("=", 1) for item in header.split(",") if "=" in item]
    parts = dict(pairs)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        raise NotAuthenticated("missing or malformed signature") from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > SIGNATURE_TOLERANCE_S:
        raise NotAuthenticated("signature timestamp is outside the 5 minute window")
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    candidates = [
        v for k, v in (item.split("=", 1) for item in header.split(",") if "=" in item) if k == "v1"
    ]
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise NotAuthenticated("invalid signature")
    return timestamp


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


@dataclass
class ExternalDecision:
    """One decision as a webhook or Slack delivers it, validated."""

    delivery_id: str
    approve: bool
    approver: str
    approver_groups: tuple[str, ...] = ()
    note: str | None = None
    token: str | None = None
    run_id: str | None = None
    tool_call_id: str | None = None
    args_digest: str | None = None  # the arguments the decider was shown, when the sender says


_DECISIONS = {"approve": True, "approved": True, "reject": False, "rejected": False}


def _field_error(name: str, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", name], "msg": msg, "type": kind}


def parse_webhook_body(body: bytes) -> ExternalDecision:
    """Validate ``/approvals/webhook``'s JSON body.

    ``{"event_id", "decision": "approve"|"reject", "approver", "note"?, and either "token" or
    "run_id" + "tool_call_id"}``.

    Raises:
        InvalidFields: with one entry per problem.
    """
    import json

    from signoff.errors import InvalidFields

    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise InvalidFields([_field_error("body", "JSON decode error", "json_invalid")]) from None
    if not isinstance(data, dict):
        raise InvalidFields([_field_error("body", "Input should be a valid dictionary", "dict_type")])
    if json_depth(data) > MAX_JSON_DEPTH:
        raise InvalidFields([_field_error("body", "JSON is nested too deeply", "json_invalid")])
    bad = unstorable_path(data)
    if bad is not None:
        raise InvalidFields([_field_error(bad[0], UNSTORABLE_MESSAGE, "string_type")])
    errors = []

    def text(name: str, required: bool, limit: int = 512) -> str | None:
        value = data.get(name)
        if value is None or value == "":
            if required:
                errors.append(_field_error(name, "Field required", "missing"))
            return None
        if not isinstance(value, str) or len(value) > limit:
            errors.append(
                _field_error(name, f"Input should be a string of at most {limit} characters", "string_type")
            )
            return None
        return value

    event_id = text("event_id", True, 200)
    approver = text("approver", True, 200)
    note = text("note", False, 2000)
    token = text("token", False)
    run_id = text("run_id", False, 200)
    tool_call_id = text("tool_call_id", False, 200)
    digest = text("args_digest", False, 128)
    groups = data.get("approver_groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) and len(g) <= 200 for g in groups):
        errors.append(_field_error("approver_groups", "Input should be a list of strings", "list_type"))
        groups = []
    decision = data.get("decision")
    if not isinstance(decision, str) or decision.lower() not in _DECISIONS:
        errors.append(_field_error("decision", "Input should be 'approve' or 'reject'", "enum"))
    if not token and not (run_id and tool_call_id):
        errors.append(_field_error("token", "Give token, or run_id and tool_call_id", "missing"))
    if errors:
        raise InvalidFields(errors)
    return ExternalDecision(
        delivery_id=f"webhook:{event_id}",
        approve=_DECISIONS[str(decision).lower()],
        approver=approver or "",
        approver_groups=tuple(groups)[:50],
        note=note,
        token=token,
        run_id=run_id,
        tool_call_id=tool_call_id,
        args_digest=digest,
    )


def parse_queue_decision(message: dict[str, Any]) -> ExternalDecision:
    """A ``{"kind": "decision", ...}`` message on the resume queue: the webhook body's fields.

    Raises:
        InvalidFields: with one entry per problem (the message is dropped, not retried).
    """
    import json

    return parse_webhook_body(json.dumps({k: v for k, v in message.items() if k != "kind"}).encode())


def parse_slack_payload(body: bytes) -> tuple[ExternalDecision, str | None]:
    """Validate a Slack ``block_actions`` interaction; return the decision and its response_url.

    Raises:
        InvalidInput: not a Signoff button press.
    """
    import json
    from urllib.parse import parse_qs

    from signoff.errors import InvalidInput

    try:
        payload = json.loads(parse_qs(body.decode())["payload"][0])
        action = payload["actions"][0]
        target = json.loads(action["value"])
        user = payload.get("user") or {}
        decision = ExternalDecision(
            delivery_id=f"slack:{action.get('action_ts') or payload.get('trigger_id')}:{user.get('id')}",
            approve={"approve": True, "reject": False}[action["action_id"]],
            approver=f"slack:{user.get('username') or user.get('name') or user.get('id')}",
            run_id=str(target["run_id"]),
            tool_call_id=str(target["tool_call_id"]),
            args_digest=str(target["args_digest"]) if target.get("args_digest") else None,
        )
    except (KeyError, IndexError, TypeError, ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidInput("not a Signoff approval action") from None
    if unstorable_path([decision.run_id, decision.tool_call_id, decision.approver, decision.delivery_id]):
        raise InvalidInput("not a Signoff approval action")
    return decision, payload.get("response_url")
