"""API Gateway HTTP API (payload format 2.0) events and a Lambda context, as AWS builds them."""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
DEFAULT_API_ID = "localapi01"

_TEXT_TYPES = ("application/json", "application/javascript", "application/xml", "application/yaml")


def is_text_content_type(content_type: str | None) -> bool:
    """Whether an HTTP API delivers a body of this content type as text (else base64).

    Args:
        content_type: the request's ``Content-Type`` header, parameters included.

    Returns:
        True for ``text/*``, JSON, XML and JavaScript; False for form data, binary and unknown types.
    """
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return (
        media.startswith("text/") or media in _TEXT_TYPES or media.endswith("+json") or media.endswith("+xml")
    )


def _merge_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
) -> tuple[dict[str, str], list[str]]:
    items = headers.items() if isinstance(headers, Mapping) else (headers or [])
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in items:
        key = name.lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in str(value).split(";") if part.strip())
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else str(value)
    return merged, cookies


def claim_value(value: Any) -> str:
    """A JWT claim as an HTTP API hands it to Lambda: a string; arrays as ``"[a b]"``, numbers as digits.

    Args:
        value: the claim's JSON value.

    Returns:
        Its string form.
    """
    if isinstance(value, list | tuple):
        return "[" + " ".join(claim_value(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{claim_value(item)}" for key, item in sorted(value.items())) + "]"
    return str(value)


def new_request_id() -> str:
    """A request id shaped like API Gateway's (``"JKJaXmPLvHcESHA="``)."""
    return base64.b64encode(os.urandom(10)).decode()


def new_trace_id(epoch_s: int | None = None) -> str:
    """An X-Ray trace header value, ``Root=1-<hex time>-<24 hex>``.

    Args:
        epoch_s: the request time in epoch seconds; now when None.

    Returns:
        The ``x-amzn-trace-id`` header value.
    """
    return f"Root=1-{int(epoch_s or time.time()):08x}-{os.urandom(12).hex()}"


def http_api_event(
    method: str,
    path: str,
    *,
    query: str = "",
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    body: bytes | str | None = b"",
    route_key: str = "$default",
    path_parameters: Mapping[str, str] | None = None,
    source_ip: str = "127.0.0.1",
    authorizer_claims: Mapping[str, Any] | None = None,
    authorizer_scopes: list[str] | None = None,
    api_id: str = DEFAULT_API_ID,
    stage: str = "$default",
    request_id: str | None = None,
    time_epoch_ms: int | None = None,
) -> dict[str, Any]:
    """Build the event an HTTP API (payload format 2.0) sends to a Lambda integration.

    Headers are lower-cased and repeated headers comma-joined; the ``cookie`` header moves to
    ``cookies``; API Gateway's ``x-forwarded-*`` and ``x-amzn-trace-id`` headers are added when absent.
    JSON, XML and ``text/*`` bodies arrive as text; everything else (``multipart/form-data``,
    ``application/x-www-form-urlencoded``, binary, no content type) base64-encoded with
    ``isBase64Encoded: true``. A request without a body has no ``body`` key.

    Args:
        method: the HTTP method.
        path: the raw request path (``rawPath``), without the query string.
        query: the raw query string, without ``?``.
        headers: request headers, as a mapping or (name, value) pairs (repeats allowed).
        body: the raw request body.
        route_key: the matched route, e.g. ``"POST /agents/{agent_id}/runs"``.
        path_parameters: the route's path parameters (omitted when empty).
        source_ip: the client address.
        authorizer_claims: JWT claims when a JWT authorizer accepted the request (stringified as
            API Gateway does).
        authorizer_scopes: the token's scopes, with ``authorizer_claims`` (None: ``"scopes": null``).
        api_id: the API id (also used for the default domain name).
        stage: the stage name; ``$default`` keeps the stage out of the path.
        request_id: fixed request id (for reproducible sample events); random otherwise.
        time_epoch_ms: fixed request time (for reproducible sample events); now otherwise.

    Returns:
        The event dict, exactly the keys AWS sends.
    """
    method = method.upper()
    epoch_ms = int(time.time() * 1000) if time_epoch_ms is None else time_epoch_ms
    request_id = request_id or new_request_id()
    merged, cookies = _merge_headers(headers)
    domain = merged.get("host") or f"{api_id}.execute-api.{REGION}.amazonaws.com"
    merged.setdefault("host", domain)
    merged.setdefault("x-forwarded-for", source_ip)
    merged.setdefault("x-forwarded-port", "443")
    merged.setdefault("x-forwarded-proto", "https")
    merged.setdefault("x-amzn-trace-id", new_trace_id(epoch_ms // 1000))

    raw = body.encode() if isinstance(body, str) else (body or b"")
    if raw and "content-length" not in merged:
        merged["content-length"] = str(len(raw))

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = merged
    if query:
        params: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            params[name] = f"{params[name]},{value}" if name in params else value
        event["queryStringParameters"] = params
    when = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    context: dict[str, Any] = {
        "accountId": ACCOUNT_ID,
        "apiId": api_id,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": merged.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": stage,
        "time": when.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": epoch_ms,
    }
    if authorizer_claims is not None:
        claims = {name: claim_value(value) for name, value in authorizer_claims.items()}
        scopes = list(authorizer_scopes) if authorizer_scopes else None
        context["authorizer"] = {"jwt": {"claims": claims, "scopes": scopes}}
    event["requestContext"] = context
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if raw:
        text = None
        if is_text_content_type(merged.get("content-type")):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        event["body"] = text if text is not None else base64.b64encode(raw).decode("ascii")
        event["isBase64Encoded"] = text is None
    else:
        event["isBase64Encoded"] = False
    return event


def event_body_bytes(event: Mapping[str, Any]) -> bytes:
    """The raw request body of an HTTP API event (base64-decoded when ``isBase64Encoded``).

    Args:
        event: an HTTP API v2 event.

    Returns:
        The body bytes; empty when the event has no body.
    """
    body = event.get("body")
    if body is None:
        return b""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8")


class FakeLambdaContext:
    """A Lambda context object for local invocations; the deadline counts down from creation.

    Attributes:
        function_name: the function's name.
        function_version: always ``$LATEST``.
        invoked_function_arn: an ARN built from the name.
        memory_limit_in_mb: the configured memory.
        aws_request_id: a fresh uuid4 per context.
        log_group_name: ``/aws/lambda/<function_name>``.
        log_stream_name: a stream name shaped like Lambda's.
    """

    def __init__(self, function_name: str, timeout_ms: int = 30000, memory_mb: int = 256) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        day = datetime.now(tz=UTC).strftime("%Y/%m/%d")
        self.log_stream_name = f"{day}/[$LATEST]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self.timeout_ms = timeout_ms
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before this invocation's deadline (never negative)."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))
