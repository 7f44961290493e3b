"""API Gateway HTTP API events ↔ requests and responses; the one place errors become HTTP."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from signoff.authz import Principal
from signoff.errors import BadRequest, PayloadTooLarge, SignoffError, ValidationFailed
from signoff.models.base import Deadline
from signoff.service import ContinueInput, RunResult, StartInput
from signoff.state import RunState

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
MAX_FIELD_CHARS = 100_000
MAX_DECISIONS = 100
MAX_JSON_DEPTH = 20


def body_bytes(event: Mapping[str, Any], max_bytes: int) -> bytes:
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(raw, validate=False)
        except (binascii.Error, ValueError):
            raise BadRequest("body is not valid base64") from None
    else:
        data = raw.encode() if isinstance(raw, str) else bytes(raw)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
    return data


def _header(event: Mapping[str, Any], name: str) -> str:
    headers = event.get("headers") or {}
    for key, value in headers.items():
        if key.lower() == name:
            return value or ""
    return ""


def parse_fields(event: Mapping[str, Any], max_bytes: int) -> dict[str, Any]:
    """The body's fields, from multipart/form-data, urlencoded or a JSON object.

    Repeated form fields keep their last value; parts without a name, and files, are ignored.
    """
    data = body_bytes(event, max_bytes)
    content_type = _header(event, "content-type")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not data.strip():
        return {}
    if media_type == "multipart/form-data":
        return _parse_multipart(data, content_type)
    if media_type == "application/json" or (not media_type and data.lstrip()[:1] == b"{"):
        try:
            value = json.loads(data)
        except RecursionError:
            raise BadRequest(f"body is nested deeper than {MAX_JSON_DEPTH} levels") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValidationFailed([_error(["body"], "JSON decode error", "json_invalid")]) from None
        if not isinstance(value, dict):
            raise ValidationFailed([_error(["body"], "Input should be a valid dictionary", "dict_type")])
        if _depth(value) > MAX_JSON_DEPTH + 1:
            raise BadRequest(f"body is nested deeper than {MAX_JSON_DEPTH} levels")
        return value
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise BadRequest("form body is not valid UTF-8") from None
    return dict(parse_qsl(text, keep_blank_values=True))


_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_DISPOSITION_NAME = re.compile(r'\bname="([^"]*)"', re.IGNORECASE)
_DISPOSITION_FILE = re.compile(r"\bfilename\*?=", re.IGNORECASE)


def _parse_multipart(data: bytes, content_type: str) -> dict[str, Any]:
    match = _BOUNDARY.search(content_type)
    if not match:
        raise BadRequest("multipart body without a boundary")
    delimiter = b"--" + match.group(1).encode()
    fields: dict[str, Any] = {}
    for part in data.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, sep, value = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            continue
        headers = head.decode("utf-8", "replace")
        disposition = next(
            (line for line in headers.split("\r\n") if line.lower().startswith("content-disposition")), ""
        )
        name = _DISPOSITION_NAME.search(disposition)
        if not name or _DISPOSITION_FILE.search(disposition):
            continue
        if value.endswith(b"\r\n"):
            value = value[:-2]
        try:
            fields[name.group(1)] = value.decode()
        except UnicodeDecodeError:
            raise BadRequest(f"form field {name.group(1)} is not valid UTF-8") from None
    return fields


def _error(loc: list[str], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


def _text(
    fields: dict[str, Any], name: str, errors: list[dict[str, Any]], *, required: bool = False
) -> str | None:
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            errors.append(_error(["body", name], "Field required", "missing"))
        return None
    if not isinstance(value, str):
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        else:
            errors.append(_error(["body", name], "Input should be a valid string", "string_type"))
            return None
    if required and not value.strip():
        errors.append(_error(["body", name], "String should have at least 1 character", "string_too_short"))
        return None
    if len(value) > MAX_FIELD_CHARS:
        errors.append(
            _error(
                ["body", name], f"String should have at most {MAX_FIELD_CHARS} characters", "string_too_long"
            )
        )
        return None
    return value


def _flag(fields: dict[str, Any], name: str, errors: list[dict[str, Any]]) -> bool:
    value = fields.get(name)
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    errors.append(_error(["body", name], "Input should be a valid boolean", "bool_parsing"))
    return False


def start_input(event: Mapping[str, Any], max_bytes: int, configured_url: str = "") -> StartInput:
    fields = parse_fields(event, max_bytes)
    errors: list[dict[str, Any]] = []
    message = _text(fields, "message", errors, required=True)
    session_id = _text(fields, "session_id", errors)
    user_id = _text(fields, "user_id", errors)
    stream = _flag(fields, "stream", errors)
    background = _flag(fields, "background", errors)
    if errors:
        raise ValidationFailed(errors)
    return StartInput(
        message or "",
        session_id,
        user_id,
        stream,
        background,
        public_url(event, configured_url),
        request_meta(event),
    )


def continue_input(event: Mapping[str, Any], max_bytes: int, configured_url: str = "") -> ContinueInput:
    fields = parse_fields(event, max_bytes)
    errors: list[dict[str, Any]] = []
    session_id = _text(fields, "session_id", errors)
    user_id = _text(fields, "user_id", errors)
    stream = _flag(fields, "stream", errors)
    background = _flag(fields, "background", errors)
    if errors:
        raise ValidationFailed(errors)
    tools = _tools(fields.get("tools"))
    if not session_id:
        raise BadRequest("session_id is required for this action")
    return ContinueInput(
        session_id, tools, user_id, stream, background, public_url(event, configured_url), request_meta(event)
    )


def _tools(raw: Any) -> list[dict[str, Any]] | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise BadRequest("Invalid JSON in tools field") from None
        except RecursionError:
            raise BadRequest(f"tools is nested deeper than {MAX_JSON_DEPTH} levels") from None
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise BadRequest("tools must be a JSON array of tool objects")
    if len(raw) > MAX_DECISIONS:
        raise BadRequest(f"tools holds more than {MAX_DECISIONS} decisions")
    if _depth(raw) > MAX_JSON_DEPTH:
        raise BadRequest(f"tools is nested deeper than {MAX_JSON_DEPTH} levels")
    return raw


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, iteratively (a hostile payload cannot blow the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
    return deepest


def principal(event: Mapping[str, Any], groups_claim: str = "cognito:groups") -> Principal | None:
    """The caller from the JWT authorizer's verified claims; ``None`` on an open route."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    claims = (authorizer.get("jwt") or {}).get("claims") or {}
    subject = claims.get("sub")
    if not subject:
        return None
    groups = claims.get(groups_claim) or ()
    if isinstance(groups, str):
        groups = [g for g in re.split(r"[\s,\[\]]+", groups) if g]
    return Principal(str(subject), tuple(groups))


def deadline(context: Any, api_timeout_ms: int, margin_ms: int) -> Deadline:
    """The invocation's deadline: the Lambda timeout, capped by API Gateway's."""
    import time

    started = time.monotonic()

    def remaining() -> int:
        api_left = api_timeout_ms - int((time.monotonic() - started) * 1000)
        lambda_left = context.get_remaining_time_in_millis() if context is not None else api_left
        return min(api_left, lambda_left)

    return Deadline(remaining, margin_ms)


def request_meta(event: Mapping[str, Any]) -> dict[str, Any]:
    """Where a request came from, for the audit log (API Gateway's view, not the client's claims)."""
    http_context = (event.get("requestContext") or {}).get("http") or {}
    meta = {
        "source_ip": http_context.get("sourceIp"),
        "user_agent": (http_context.get("userAgent") or "")[:300],
    }
    return {key: value for key, value in meta.items() if value}


def public_url(event: Mapping[str, Any], configured: str = "") -> str:
    """The API's base URL as the client reached it (for approval links); the setting wins."""
    if configured:
        return configured.rstrip("/")
    context = event.get("requestContext") or {}
    domain = context.get("domainName") or _header(event, "host")
    if not domain:
        return ""
    scheme = (_header(event, "x-forwarded-proto") or "https").split(",")[0].strip()
    stage = context.get("stage")
    prefix = f"/{stage}" if stage and stage != "$default" else ""
    return f"{scheme}://{domain}{prefix}"


def accepted(state: RunState) -> Response:
    """202 for a run handed to the resume queue (``background=true``)."""
    return _json(202, {"run_id": state.run_id, "session_id": state.session_id, "status": "PENDING"})


def run_object(state: RunState) -> dict[str, Any]:
    """A run as CONTRACT.md shapes it."""
    pending = state.pending_tools
    return {
        "run_id": state.run_id,
        "agent_id": state.agent_id,
        "agent_name": state.agent_name,
        "session_id": state.session_id,
        "user_id": state.user_id,
        "content": state.content,
        "content_type": "str",
        "model": state.model,
        "model_provider": state.model_provider,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "status": state.status,
        "metrics": {
            "input_tokens": state.metrics.input_tokens,
            "output_tokens": state.metrics.output_tokens,
            "total_tokens": state.metrics.total_tokens,
            "duration": state.metrics.duration,
        },
        "messages": state.messages,
        "tools": [t.public() for t in state.tools],
        "requirements": [
            {
                "id": t.tool_call_id,
                "created_at": datetime.fromtimestamp(t.created_at, UTC).isoformat(),
                "tool_execution": t.public(),
            }
            for t in pending
        ],
        "input": {"input_content": state.input_content},
        "references": state.references,
    }


def _json(status: int, payload: Any) -> Response:
    from aws_lambda_powertools.event_handler import Response

    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(payload, separators=(",", ":"), default=str),
    )


def json_response(payload: Any, status: int = 200) -> Response:
    return _json(status, payload)


def run_response(result: RunResult, *, stream: bool) -> Response:
    """The run as JSON, or as a buffered ``text/event-stream`` when the client asked to stream."""
    if result.state.status == "PENDING":
        return accepted(result.state)
    if not stream:
        # 202: out of time, the run was saved RUNNING and is finished by a later invocation.
        return _json(202 if result.state.status == "RUNNING" else 200, run_object(result.state))
    from aws_lambda_powertools.event_handler import Response

    run = run_object(result.state)
    chunks = []
    for event in result.events:
        payload = dict(event)
        if event["event"] == "RunPaused":
            payload["tools"] = run["tools"]
            payload["requirements"] = run["requirements"]
        chunks.append(f"event: {event['event']}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n")
    return Response(
        status_code=200,
        content_type="text/event-stream",
        body="".join(chunks),
        headers={"Cache-Control": "no-cache"},
    )


def install_error_handlers(app: APIGatewayHttpResolver, logger: Any) -> None:
    """Map the exception tree to status codes; a 500 never carries internals."""

    @app.exception_handler(SignoffError)
    def _signoff_error(exc: SignoffError) -> Response:
        if exc.status_code >= 500:
            logger.warning("request failed", extra={"status": exc.status_code, "error": type(exc).__name__})
        return _json(exc.status_code, {"detail": exc.detail})

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("unhandled error")
        return _json(500, {"detail": "Internal server error"})

    @app.not_found
    def _not_found(exc: Exception) -> Response:
        return _json(404, {"detail": "Not Found"})


_STATUSES = ("PENDING", "RUNNING", "PAUSED", "COMPLETED", "ERROR", "CANCELLED")


def run_status(value: str | None) -> str | None:
    """A ``status`` query filter, upper-cased; 422 for anything that is not a run status."""
    if value is None or value == "":
        return None
    if value.upper() not in _STATUSES:
        raise ValidationFailed(
            [_error(["query", "status"], f"Input should be one of {', '.join(_STATUSES)}", "enum")]
        )
    return value.upper()


def paging(query: Mapping[str, str]) -> tuple[int, int]:
    errors: list[dict[str, Any]] = []
    values = []
    for name, default, top in (("page", 1, 10**6), ("limit", 20, 100)):
        raw = query.get(name)
        try:
            value = default if raw in (None, "") else int(raw)
            if not 1 <= value <= top:
                raise ValueError
        except ValueError:
            errors.append(
                _error(["query", name], f"Input should be an integer from 1 to {top}", "int_parsing")
            )
            value = default
        values.append(value)
    if errors:
        raise ValidationFailed(errors)
    return values[0], values[1]


def session_page(page_data: Any, page: int, limit: int) -> dict[str, Any]:
    total = page_data.total
    return {
        "data": [
            {**row, "session_type": "agent", "session_name": row.get("session_name")}
            for row in page_data.sessions
        ],
        "meta": {"page": page, "limit": limit, "total_pages": -(-total // limit), "total_count": total},
    }


def openapi_document() -> dict[str, Any]:
    from signoff.openapi import document

    return document()


_HTML_HEADERS = {
    # The link's token is the credential: keep it out of caches and Referer headers, and the page
    # out of frames; no script may run.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
}


def html_response(html: str, status: int = 200) -> Response:
    from aws_lambda_powertools.event_handler import Response

    return Response(
        status_code=status, content_type="text/html; charset=utf-8", body=html, headers=dict(_HTML_HEADERS)
    )


def decision_object(outcome: Any) -> dict[str, Any]:
    """What a webhook caller learns: the decision recorded and whether the run resumes now."""
    call = outcome.call
    return {
        "run_id": outcome.state.run_id,
        "tool_call_id": call.tool_call_id,
        "tool_name": call.tool_name,
        "decision": "approved" if call.state == "approved" else call.state,
        "decided_by": call.decided_by,
        "run_status": outcome.state.status,
        "pending": [t.tool_call_id for t in outcome.state.pending_tools],
        "resumed": outcome.resumed,
    }


def slack_decision_message(outcome: Any) -> dict[str, Any]:
    """The message that replaces the buttons once someone decided."""
    call = outcome.call
    verb = "approved" if call.state == "approved" else "rejected"
    icon = ":white_check_mark:" if verb == "approved" else ":no_entry_sign:"
    text = f"{icon} `{call.tool_name}` {verb} by {call.decided_by}"
    return {
        "replace_original": True,
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }
