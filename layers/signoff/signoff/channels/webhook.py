"""Signed webhooks: a signed ``RunPaused`` POSTed to ``SIGNOFF_NOTIFY_URL``, and decisions POSTed
to ``/approvals/webhook`` with ``Signoff-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from signoff.channels import Announcer, Incoming, Received, Reply, Secret
from signoff.decisions import Decider, Decision
from signoff.errors import InvalidFields, NotAuthenticated, NotConfigured
from signoff.identity import Principal
from signoff.inputs import MAX_JSON_DEPTH, UNSTORABLE_MESSAGE, json_depth, unstorable_path

NAME = "webhook"
ROUTE = "/approvals/webhook"
SIGNATURE_HEADER = "signoff-signature"
SIGNATURE_TOLERANCE_S = 300


def announcer(settings: Any, secret: Secret) -> Announcer | None:
    if not settings.notify_url:
        return None

    def announce(detail: dict[str, Any]) -> None:
        from signoff.channels._http import post_json

        raw = json.dumps({"type": "RunPaused", "detail": detail}).encode()
        post_json(settings.notify_url, raw, {"Signoff-Signature": sign(secret(NAME), int(time.time()), raw)})

    return announce


def receive(request: Incoming, settings: Any, secret: Secret) -> Received:
    """Verify the signature, refuse stale timestamps, then parse the body.

    Raises:
        NotConfigured: no webhook secret. NotAuthenticated: a bad or stale signature.
        InvalidFields: a body without the fields a decision needs.
    """
    key = secret(NAME)
    if not key:
        raise NotConfigured("webhook approvals are not configured (no webhook secret)")
    verify_signature(key, request.headers.get(SIGNATURE_HEADER, ""), request.body)
    return parse(json_object(request.body), channel=NAME, meta=request.meta)


def reply(outcome: Any, received: Received) -> Reply:
    from signoff.wire import decision_object

    return Reply(202 if outcome.deferred else 200, decision_object(outcome))


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


_DECISIONS = {"approve": True, "approved": True, "reject": False, "rejected": False}


def _field_error(name: str, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", name], "msg": msg, "type": kind}


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object of storable text and bounded depth.

    Raises:
        InvalidFields: it is not.
    """
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
    return data


def parse(data: dict[str, Any], *, channel: str, meta: dict[str, Any]) -> Received:
    """``{"event_id", "decision": "approve"|"reject", "approver", "approver_groups"?, "note"?,
    "args_digest"?, and either "token" or "run_id" + "tool_call_id"}`` (the queue's messages too).

    Raises:
        InvalidFields: with one entry per problem.
    """
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
    approver = approver or ""
    decider = Decider(
        Principal(approver, tuple(groups)[:50]),
        approver,
        channel,
        vouched=True,
        delivery_id=f"{channel}:{event_id}",
        meta=dict(meta),
    )
    approve = _DECISIONS[str(decision).lower()]
    return Received(Decision(tool_call_id or "", approve, note, shown_digest=digest), decider, run_id, token)
