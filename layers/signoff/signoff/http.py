"""API Gateway HTTP API events ↔ requests and responses; the one place errors become HTTP."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from signoff import wire
from signoff.decisions import decisions_from_form
from signoff.errors import (
    AlreadyDecided,
    Conflict,
    Expired,
    InvalidFields,
    InvalidInput,
    KnowledgeIndexMismatch,
    NotAllowed,
    NotAuthenticated,
    NotConfigured,
    NotFound,
    RunBusy,
    SignoffError,
    StoreUnavailable,
    TooLarge,
)
from signoff.identity import Principal
from signoff.inputs import MAX_JSON_DEPTH, UNSTORABLE_MESSAGE, json_depth, parse_bool, unstorable_path
from signoff.models.base import Deadline
from signoff.service import ContinueInput, RunResult, StartInput
from signoff.state import RunState, RunStatus

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

    from signoff.knowledge import DocumentInput, IngestResult
    from signoff.store.base import DocumentPage, KnowledgeDocument, KnowledgeHit

MAX_FIELD_CHARS = 100_000
MAX_DECISIONS = 100


def body_bytes(event: Mapping[str, Any], max_bytes: int) -> bytes:
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(raw, validate=False)
        except (binascii.Error, ValueError):
            raise InvalidInput("body is not valid base64") from None
    else:
        data = raw.encode() if isinstance(raw, str) else bytes(raw)
    if len(data) > max_bytes:
        raise TooLarge(f"request body is larger than {max_bytes} bytes")
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
    Text PostgreSQL cannot store (NUL characters, lone surrogates) is refused with 422.
    """
    fields = _parse_body(event, max_bytes)
    _check_storable(fields, "body")
    return fields


def _check_storable(value: Any, where: str) -> None:
    path = unstorable_path(value)
    if path is not None:
        raise InvalidFields(
            [
                _error(
                    [where, *path],
                    UNSTORABLE_MESSAGE,
                    "string_type",
                )
            ]
        )


def check_request_values(event: Mapping[str, Any]) -> None:
    """Path and query values must be storable text too (422 otherwise)."""
    _check_storable(event.get("pathParameters") or {}, "path")
    _check_storable(event.get("queryStringParameters") or {}, "query")


def _parse_body(event: Mapping[str, Any], max_bytes: int) -> dict[str, Any]:
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
            raise InvalidInput(f"body is nested deeper than {MAX_JSON_DEPTH} levels") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidFields([_error(["body"], "JSON decode error", "json_invalid")]) from None
        if not isinstance(value, dict):
            raise InvalidFields([_error(["body"], "Input should be a valid dictionary", "dict_type")])
        if json_depth(value) > MAX_JSON_DEPTH + 1:
            raise InvalidInput(f"body is nested deeper than {MAX_JSON_DEPTH} levels")
        return value
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise InvalidInput("form body is not valid UTF-8") from None
    return dict(parse_qsl(text, keep_blank_values=True))


_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_DISPOSITION_NAME = re.compile(r'\bname="([^"]*)"', re.IGNORECASE)
_DISPOSITION_FILE = re.compile(r"\bfilename\*?=", re.IGNORECASE)
_DISPOSITION_FILENAME = re.compile(r'\bfilename="([^"]*)"', re.IGNORECASE)


def _multipart_parts(data: bytes, content_type: str) -> Iterator[tuple[str | None, str | None, str, bytes]]:
    """Each part of a multipart body: (field name, file name or None, part content type, bytes)."""
    match = _BOUNDARY.search(content_type)
    if not match:
        raise InvalidInput("multipart body without a boundary")
    delimiter = b"--" + match.group(1).encode()
    if delimiter + b"--" not in data:
        raise InvalidInput("multipart body is truncated (no closing boundary)")
    for part in data.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, sep, value = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            continue
        if value.endswith(b"\r\n"):
            value = value[:-2]
        headers = head.decode("utf-8", "replace").split("\r\n")
        disposition = next((h for h in headers if h.lower().startswith("content-disposition")), "")
        part_type = next(
            (h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("content-type")), ""
        )
        name = _DISPOSITION_NAME.search(disposition)
        filename = _DISPOSITION_FILENAME.search(disposition)
        is_file = filename is not None or _DISPOSITION_FILE.search(disposition) is not None
        yield (
            name.group(1) if name else None,
            (filename.group(1) if filename else "") if is_file else None,
            part_type.split(";")[0].lower(),
            value,
        )


def _field_text(name: str, value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise InvalidInput(f"form field {name} is not valid UTF-8") from None


def _parse_multipart(data: bytes, content_type: str) -> dict[str, Any]:
    return {
        name: _field_text(name, value)
        for name, filename, _, value in _multipart_parts(data, content_type)
        if name is not None and filename is None
    }


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
    try:
        return bool(parse_bool(value if isinstance(value, bool | str) else str(value)))
    except ValueError:
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
        raise InvalidFields(errors)
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
        raise InvalidFields(errors)
    raw_tools = _tools(fields.get("tools"))
    if not session_id:
        raise InvalidInput("session_id is required for this action")
    tools = None if raw_tools is None else decisions_from_form(raw_tools)
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
            raise InvalidInput("Invalid JSON in tools field") from None
        except RecursionError:
            raise InvalidInput(f"tools is nested deeper than {MAX_JSON_DEPTH} levels") from None
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise InvalidInput("tools must be a JSON array of tool objects")
    if len(raw) > MAX_DECISIONS:
        raise InvalidInput(f"tools holds more than {MAX_DECISIONS} decisions")
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise InvalidInput(f"tools is nested deeper than {MAX_JSON_DEPTH} levels")
    return raw


def principal(
    event: Mapping[str, Any], groups_claim: str = "cognito:groups", *, required: bool = False
) -> Principal | None:
    """The caller from the JWT authorizer's verified claims; ``None`` on an open route.

    ``required`` (the stack's ``AuthMode=jwt``) turns missing claims into 401: API Gateway should
    never let such a request through, and the handler does not rely on it alone.

    Groups are matched exactly, so they are read as the token carries them: API Gateway flattens an
    array claim into one string (``"[a b]"``) that cannot tell ``["not finance"]`` from
    ``["not", "finance"]``, but it forwards the ``Authorization`` header it has just verified, and
    that token's payload holds the real list. Where no exact list can be had the groups are unknown
    (``None``): they grant nothing, and the log says why.
    """
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    claims = (authorizer.get("jwt") or {}).get("claims") or {}
    subject = claims.get("sub")
    if not subject:
        if required:
            raise NotAuthenticated("authentication required")
        return None
    return Principal(str(subject), _groups(event, claims, groups_claim))


def _groups(event: Mapping[str, Any], claims: Mapping[str, Any], claim: str) -> tuple[str, ...] | None:
    value = claims.get(claim)
    if value is None or value == "":
        return ()
    if isinstance(value, list):
        return tuple(str(group) for group in value)
    token_groups = _token_claim(event, claims, claim)
    if token_groups is not None:
        return token_groups
    text = str(value)
    if not (text.startswith("[") and text.endswith("]")):
        return (text,)  # a plain string claim: one group, exactly
    inner = text[1:-1]
    if inner and not any(ch.isspace() for ch in inner):
        return (inner,)  # a flattened list of one: nothing to split
    if not inner:
        return ()
    import logging

    logging.getLogger("signoff").warning(
        "the %s claim arrived flattened (%d characters) and the bearer token could not be read: "
        "no group grants anything to %s on this request",
        claim,
        len(text),
        claims.get("sub"),
    )
    return None


def _token_claim(event: Mapping[str, Any], claims: Mapping[str, Any], claim: str) -> tuple[str, ...] | None:
    """The claim as the verified bearer token holds it (its payload, already verified by API Gateway:
    the same token, as long as its subject and issuer are the verified claims' own)."""
    header = _header(event, "authorization")
    scheme, _, token = header.partition(" ")
    parts = token.strip().split(".") if scheme.lower() == "bearer" else []
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(payload, dict) or str(payload.get("sub")) != str(claims.get("sub")):
        return None
    if "iss" in claims and str(payload.get("iss")) != str(claims.get("iss")):
        return None
    value = payload.get(claim)
    if isinstance(value, list) and all(isinstance(group, str) for group in value):
        return tuple(value)
    if isinstance(value, str):
        return (value,)
    return None


def deadline(context: Any, api_timeout_ms: int, margin_ms: int) -> Deadline:
    """The invocation's deadline: the Lambda timeout, capped by API Gateway's."""
    return Deadline.for_invocation(context, margin_ms, cap_ms=api_timeout_ms)


def caller(event: Mapping[str, Any], settings: Any) -> Principal | None:
    """The verified caller of an API route, as the settings read it (groups claim, auth mode)."""
    return principal(event, settings.jwt_groups_claim, required=settings.auth_mode == "jwt")


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


MAX_SESSION_NAME_CHARS = 500
SESSION_TYPES = ("agent", "team", "workflow")


def session_name_input(event: Mapping[str, Any], max_bytes: int) -> str:
    """The ``session_name`` of a rename (AgentOS sends ``{"session_name": ...}``; a form works too):
    required, not blank, at most 500 characters (422 otherwise)."""
    fields = parse_fields(event, max_bytes)
    errors: list[dict[str, Any]] = []
    name = _text(fields, "session_name", errors, required=True)
    if name is not None and len(name) > MAX_SESSION_NAME_CHARS:
        errors.append(
            _error(
                ["body", "session_name"],
                f"String should have at most {MAX_SESSION_NAME_CHARS} characters",
                "string_too_long",
            )
        )
    if errors:
        raise InvalidFields(errors)
    return (name or "").strip()


def check_session_type(query: Mapping[str, str], session_id: str) -> None:
    """AgentOS's optional ``type`` filter of the session routes. Signoff's sessions are all agent
    sessions: ``team`` or ``workflow`` finds none (404, as AgentOS), anything else is 422."""
    kind = query.get("type")
    if kind in (None, "", "agent"):
        return
    if kind not in SESSION_TYPES:
        raise InvalidFields(
            [_error(["query", "type"], f"Input should be one of {', '.join(SESSION_TYPES)}", "enum")]
        )
    raise NotFound(f"{kind.title()} Session with id '{session_id}' not found")


def no_content() -> Response:
    """204 without a body (AgentOS's answer to a delete)."""
    from aws_lambda_powertools.event_handler import Response

    return Response(status_code=204, body="")


def accepted(state: RunState) -> Response:
    """202 for a run handed to the resume queue (``background=true``)."""
    return _json(202, {"run_id": state.run_id, "session_id": state.session_id, "status": "PENDING"})


run_object = wire.run_object


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
    if not stream and (result.handed_off or result.state.status == "RUNNING"):
        # 202: out of time, the run was saved and is finished by the resume worker; on the wire it
        # is RUNNING, whatever it is stored as while it waits for its worker.
        return _json(202, {**run_object(result.state), "status": "RUNNING"})
    if result.state.status == "PENDING" and not result.handed_off:
        return accepted(result.state)
    if not stream:
        return _json(200, run_object(result.state))
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


# The one table from the domain's errors to HTTP statuses; the first class an error is an instance of
# wins, so subclasses come before their bases.
_STATUS_OF_ERROR: tuple[tuple[type[SignoffError], int], ...] = (
    (InvalidFields, 422),
    (InvalidInput, 400),
    (NotAuthenticated, 401),
    (NotAllowed, 403),
    (NotFound, 404),
    (AlreadyDecided, 409),
    (Conflict, 409),
    (Expired, 410),
    (TooLarge, 413),
    (NotConfigured, 501),
    (StoreUnavailable, 503),
    (KnowledgeIndexMismatch, 500),
)


def status_for(exc: SignoffError) -> int:
    """The HTTP status of a domain error (500 for anything the table does not name)."""
    from signoff.models.base import ModelFailure

    if isinstance(exc, ModelFailure):
        return 502
    return next((status for kind, status in _STATUS_OF_ERROR if isinstance(exc, kind)), 500)


def error_response(exc: SignoffError) -> Response:
    """``{"detail": ...}`` with the error's status; a busy run says when to try again."""
    response = _json(status_for(exc), {"detail": exc.detail})
    if isinstance(exc, RunBusy):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def install_error_handlers(app: APIGatewayHttpResolver, logger: Any) -> None:
    """Map the exception tree to status codes; a 500 never carries internals.

    Also refuses, before any route runs, path and query values PostgreSQL could not store.
    """

    def _check_values(app: APIGatewayHttpResolver, next_middleware: Any) -> Response:
        check_request_values(app.current_event.raw_event)
        return next_middleware(app)

    app.use(middlewares=[_check_values])

    @app.exception_handler(SignoffError)
    def _signoff_error(exc: SignoffError) -> Response:
        status = status_for(exc)
        if status >= 500:
            logger.warning("request failed", extra={"status": status, "error": type(exc).__name__})
        return error_response(exc)

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("unhandled error")
        return _json(500, {"detail": "Internal server error"})

    @app.not_found
    def _not_found(exc: Exception) -> Response:
        return _json(404, {"detail": "Not Found"})


_STATUSES = tuple(RunStatus)


def run_status(value: str | None) -> str | None:
    """A ``status`` query filter, upper-cased; 422 for anything that is not a run status."""
    if value is None or value == "":
        return None
    if value.upper() not in _STATUSES:
        raise InvalidFields(
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
        raise InvalidFields(errors)
    return values[0], values[1]


_APPROVAL_FILTERS: dict[str, tuple[str, ...] | None] = {
    "status": ("pending", "approved", "rejected", "expired", "cancelled"),
    "approval_type": ("required", "audit"),
    "pause_type": ("confirmation", "user_input", "external_execution"),
    "agent_id": None,
    "user_id": None,
    "run_id": None,
    "tool_name": None,
    # Signoff's: only the pending records the caller may decide now (the inbox's list).
    "decidable": ("true", "false"),
}


def approval_query(query: Mapping[str, str]) -> tuple[dict[str, Any], int, int]:
    """``GET /approvals``'s filters, page and limit (AgentOS: limit 1-1000, default 100); 422 otherwise."""
    errors: list[dict[str, Any]] = []
    filters: dict[str, Any] = {}
    for name, allowed in _APPROVAL_FILTERS.items():
        value = query.get(name)
        if value in (None, ""):
            continue
        if allowed is not None and value not in allowed:
            errors.append(_error(["query", name], f"Input should be one of {', '.join(allowed)}", "enum"))
        filters[name] = value
    values = []
    for name, default, top in (("page", 1, 10**6), ("limit", 100, 1000)):
        raw = query.get(name)
        try:
            number = default if raw in (None, "") else int(raw)
            if not 1 <= number <= top:
                raise ValueError
        except ValueError:
            errors.append(
                _error(["query", name], f"Input should be an integer from 1 to {top}", "int_parsing")
            )
            number = default
        values.append(number)
    if errors:
        raise InvalidFields(errors)
    filters["decidable"] = filters.get("decidable") == "true"
    return filters, values[0], values[1]


def approval_count_query(query: Mapping[str, str]) -> dict[str, Any]:
    """``GET /approvals/count``'s filters: the list's, without paging (the count is of pending ones)."""
    filters, _, _ = approval_query({k: v for k, v in query.items() if k not in ("page", "limit")})
    filters.pop("status", None)
    return filters


def resolve_input(event: Mapping[str, Any], max_bytes: int) -> tuple[bool, dict[str, Any] | None]:
    """``{"status": "approved"|"rejected", "resolution_data"?: {...}}``; a body ``resolved_by`` is
    ignored (the verified caller resolves). 422 for anything else."""
    fields = parse_fields(event, max_bytes)
    errors: list[dict[str, Any]] = []
    status = fields.get("status")
    if status not in ("approved", "rejected"):
        errors.append(
            _error(
                ["body", "status"],
                "String should match pattern '^(approved|rejected)$'",
                "string_pattern_mismatch",
            )
        )
    data = fields.get("resolution_data")
    if isinstance(data, str) and data.strip():
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, RecursionError):
            data = "invalid"
    if data in (None, ""):
        data = None
    elif not isinstance(data, dict) or json_depth(data) > MAX_JSON_DEPTH:
        errors.append(_error(["body", "resolution_data"], "Input should be a valid dictionary", "dict_type"))
    elif data.get("tool_args") is not None and not isinstance(data["tool_args"], dict):
        # The arguments of an approval with changes: all of them, by name.
        errors.append(
            _error(
                ["body", "resolution_data", "tool_args"], "Input should be a valid dictionary", "dict_type"
            )
        )
    if errors:
        raise InvalidFields(errors)
    return status == "approved", data


def approvals_page(rows: list[dict[str, Any]], total: int, page: int, limit: int) -> dict[str, Any]:
    return {
        "data": [wire.approval_object(row) for row in rows],
        "meta": {"page": page, "limit": limit, "total_pages": -(-total // limit), "total_count": total},
    }


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


# ---------------------------------------------------------------------------- knowledge

_MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdx")
_SAFE_ID = re.compile(r"[^A-Za-z0-9_.:@-]+")
MAX_METADATA_BYTES = 8192
MAX_TITLE_CHARS = 500


def document_input(event: Mapping[str, Any], max_bytes: int) -> DocumentInput:
    """A document to add: a JSON object, a multipart form (a file part, or a ``text`` field), or a
    ``text/markdown`` / ``text/plain`` body with the other fields in the query string.

    Fields: ``text`` (``text_content`` also works), ``document_id`` (defaults to the file's name),
    ``title``, ``metadata`` (a JSON object; in a form or query, its JSON text) and ``format``
    (``markdown`` or ``text``; by default from the file's name or content type, else markdown).
    """
    from signoff.knowledge import DocumentInput

    data = body_bytes(event, max_bytes)
    content_type = _header(event, "content-type")
    media = content_type.split(";", 1)[0].strip().lower()
    filename: str | None = None
    kind = media
    if media == "multipart/form-data":
        fields, upload = _multipart_with_file(data, content_type)
        if upload is not None:
            filename, kind, raw = upload
            fields["text"] = _document_text(raw)
    elif media.startswith("text/"):
        fields = {**(event.get("queryStringParameters") or {}), "text": _document_text(data)}
    else:
        fields = parse_fields(event, max_bytes)
    if "text" not in fields and "text_content" in fields:
        fields["text"] = fields["text_content"]
    errors: list[dict[str, Any]] = []
    text = fields.get("text")
    if not isinstance(text, str) or not text.strip():
        errors.append(_error(["body", "text"], "Field required: the document's text or a file", "missing"))
    document_id = _text(fields, "document_id", errors)
    title = _text(fields, "title", errors)
    if title and len(title) > MAX_TITLE_CHARS:
        errors.append(_error(["body", "title"], f"at most {MAX_TITLE_CHARS} characters", "string_too_long"))
    metadata = _metadata(fields.get("metadata"), errors)
    fmt = fields.get("format") or _format_of(filename, kind)
    if fmt not in ("markdown", "text"):
        errors.append(_error(["body", "format"], "Input should be 'markdown' or 'text'", "literal_error"))
    if errors:
        raise InvalidFields(errors)
    if document_id is None and filename:
        document_id = _SAFE_ID.sub("-", filename.rsplit("/", 1)[-1]).strip("-._:@")[:200] or None
    return DocumentInput(str(text), document_id, title, metadata, fmt)


def _multipart_with_file(
    data: bytes, content_type: str
) -> tuple[dict[str, Any], tuple[str, str, bytes] | None]:
    """The text fields of a multipart body and its first file part (name, content type, bytes)."""
    fields: dict[str, Any] = {}
    upload: tuple[str, str, bytes] | None = None
    for name, filename, part_type, value in _multipart_parts(data, content_type):
        if filename is not None:
            if upload is None:
                upload = (filename, part_type, value)
        elif name is not None:
            fields[name] = _field_text(name, value)
    return fields, upload


def _document_text(raw: bytes) -> str:
    if b"\x00" in raw:
        raise InvalidInput("only text and markdown documents are supported")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the document is not valid UTF-8 text") from None


def _format_of(filename: str | None, media: str) -> str:
    name = (filename or "").lower()
    if name.endswith(_MARKDOWN_SUFFIXES) or media == "text/markdown":
        return "markdown"
    if name.endswith(".txt") or media == "text/plain":
        return "text"
    return "markdown"


def _metadata(raw: Any, errors: list[dict[str, Any]]) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            errors.append(_error(["body", "metadata"], "metadata is not valid JSON", "json_invalid"))
            return {}
    if not isinstance(raw, dict):
        errors.append(_error(["body", "metadata"], "Input should be a JSON object", "dict_type"))
        return {}
    if json_depth(raw) > 5 or len(json.dumps(raw)) > MAX_METADATA_BYTES:
        errors.append(
            _error(["body", "metadata"], f"at most {MAX_METADATA_BYTES} bytes, 4 levels deep", "too_large")
        )
        return {}
    return raw


def search_input(event: Mapping[str, Any], max_bytes: int) -> tuple[str, int, dict[str, Any]]:
    """``query`` (required), ``limit`` (1-50, default 5) and ``filters`` (a JSON object) of a search."""
    fields = parse_fields(event, max_bytes)
    errors: list[dict[str, Any]] = []
    query = _text(fields, "query", errors, required=True)
    limit = 5
    raw_limit = fields.get("limit")
    if raw_limit not in (None, ""):
        try:
            limit = int(raw_limit)
            if isinstance(raw_limit, bool) or not 1 <= limit <= 50:
                raise ValueError
        except (TypeError, ValueError):
            errors.append(_error(["body", "limit"], "Input should be an integer from 1 to 50", "int_parsing"))
    filters = _metadata(fields.get("filters"), errors)
    if errors:
        raise InvalidFields(errors)
    return query or "", limit, filters


def document_object(document: KnowledgeDocument) -> dict[str, Any]:
    return {
        "kb": document.kb,
        "document_id": document.document_id,
        "title": document.title,
        "metadata": document.metadata,
        "status": document.status,
        "chunk_count": document.chunk_count,
        "content_digest": document.content_digest,
        "embedding_model": document.embedding_model,
        "created_at": document.created_at,
        "updated_at": document.updated_at,
    }


def ingest_response(result: IngestResult) -> Response:
    """201 for a new document, 200 for a replaced or unchanged one, 202 for one the worker ingests."""
    status = {"created": 201, "queued": 202}.get(result.outcome, 200)
    return _json(status, {**document_object(result.document), "outcome": result.outcome})


def documents_page(page_data: DocumentPage, page: int, limit: int) -> dict[str, Any]:
    total = page_data.total
    return {
        "data": [document_object(d) for d in page_data.documents],
        "meta": {"page": page, "limit": limit, "total_pages": -(-total // limit), "total_count": total},
    }


def hit_object(hit: KnowledgeHit) -> dict[str, Any]:
    return {
        "document_id": hit.document_id,
        "chunk_index": hit.chunk_index,
        "title": hit.title,
        "score": round(hit.score, 4),
        "content": hit.content,
        "metadata": hit.metadata,
    }
