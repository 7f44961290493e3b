"""Drives the Lambda handlers with real API Gateway HTTP API events, as a client would."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from signoff_dev.apigw import FakeLambdaContext, http_api_event
from signoff_dev.handlers import invoke

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


def multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    """Encode fields the way ``curl -F`` does."""
    boundary = "------------------------" + uuid.uuid4().hex[:16]
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def bearer_token(claims: dict[str, Any]) -> str:
    """A JWT carrying ``claims`` as API Gateway forwards it (already verified there; unsigned here)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def encode(fields: dict[str, Any], form: str) -> tuple[bytes, str]:
    if form == "multipart":
        return multipart({k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()})
    if form == "urlencoded":
        flat = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        return urlencode(flat).encode(), "application/x-www-form-urlencoded"
    return json.dumps(fields).encode(), "application/json"


class Response:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.status = raw["statusCode"]
        self.headers = {k.lower(): v for k, v in (raw.get("headers") or {}).items()}
        self.text = raw.get("body") or ""

    def json(self) -> Any:
        return json.loads(self.text)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.text[:300]}>"


ROUTES = {
    ("POST", "/agents/{agent_id}/runs"): "StartRunFunction",
    ("POST", "/agents/{agent_id}/runs/{run_id}/continue"): "ContinueRunFunction",
    ("POST", "/agents/{agent_id}/runs/{run_id}/cancel"): "ContinueRunFunction",
    ("GET", "/agents/{agent_id}/runs/{run_id}"): "ReadRunsFunction",
    ("GET", "/agents/{agent_id}/runs"): "ReadRunsFunction",
    ("GET", "/agents/{agent_id}/runs/{run_id}/events"): "ReadRunsFunction",
    ("GET", "/sessions"): "ReadRunsFunction",
    ("GET", "/sessions/{session_id}/runs"): "ReadRunsFunction",
    ("GET", "/sessions/{session_id}"): "ReadRunsFunction",
    ("GET", "/sessions/{session_id}/runs/{run_id}"): "ReadRunsFunction",
    ("DELETE", "/sessions/{session_id}"): "SessionsFunction",
    ("POST", "/sessions/{session_id}/rename"): "SessionsFunction",
    ("GET", "/health"): "ReadRunsFunction",
    ("GET", "/config"): "ReadRunsFunction",
    ("GET", "/agents"): "ReadRunsFunction",
    ("GET", "/agents/{agent_id}"): "ReadRunsFunction",
    ("POST", "/approvals/webhook"): "ApprovalsFunction",
    ("POST", "/approvals/slack"): "ApprovalsFunction",
    ("GET", "/approve/{token}"): "ApprovalsFunction",
    ("POST", "/approve/{token}"): "ApprovalsFunction",
    ("GET", "/approvals"): "ApprovalsFunction",
    ("GET", "/approvals/count"): "ApprovalsFunction",
    ("GET", "/approvals/{approval_id}"): "ApprovalsFunction",
    ("GET", "/approvals/{approval_id}/status"): "ApprovalsFunction",
    ("GET", "/approvals/{approval_id}/context"): "ApprovalsFunction",
    ("POST", "/approvals/{approval_id}/resolve"): "ApprovalsFunction",
    ("DELETE", "/approvals/{approval_id}"): "ApprovalsFunction",
    ("GET", "/inbox"): "ApprovalsFunction",
    ("GET", "/inbox/{asset}"): "ApprovalsFunction",
    ("POST", "/knowledge/{kb}/documents"): "KnowledgeFunction",
    ("GET", "/knowledge/{kb}/documents"): "KnowledgeFunction",
    ("DELETE", "/knowledge/{kb}/documents/{document_id}"): "KnowledgeFunction",
    ("POST", "/knowledge/{kb}/search"): "KnowledgeFunction",
}


class Api:
    """A client of the handlers: each call is one Lambda invocation on a real event shape.

    Args:
        timeout_ms: the Lambda timeout each invocation gets (its context counts down from it).
    """

    def __init__(self, timeout_ms: int = 30_000) -> None:
        self.timeout_ms = timeout_ms

    def call(
        self,
        method: str,
        route: str,
        params: dict[str, str] | None = None,
        *,
        fields: dict[str, Any] | None = None,
        form: str = "multipart",
        query: dict[str, str] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        claims: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        params = params or {}
        path = route.format(**params)
        headers = {"user-agent": "curl/8.5.0", "accept": "*/*", **(headers or {})}
        if fields is not None:
            body, content_type = encode(fields, form)
        if content_type:
            headers["content-type"] = content_type
        if claims is not None:
            # API Gateway forwards the bearer token its JWT authorizer verified.
            headers.setdefault("authorization", f"Bearer {bearer_token(claims)}")
        event = http_api_event(
            method,
            path,
            query=urlencode(query or {}),
            headers=headers,
            body=body or b"",
            route_key=f"{method} {route}",
            path_parameters=params or None,
            authorizer_claims=claims,
        )
        function = ROUTES[(method, route)]
        context = FakeLambdaContext(function, timeout_ms=self.timeout_ms)
        return Response(invoke(function, event, context))

    def start(
        self, message: str | None = "Delete 50 old records from the users table", **fields: Any
    ) -> Response:
        body = {"message": message, **fields} if message is not None else dict(fields)
        form = body.pop("form", "multipart")
        return self.call(
            "POST",
            "/agents/{agent_id}/runs",
            {"agent_id": body.pop("agent_id", "data_manager")},
            fields=body,
            form=form,
        )

    def continue_(self, run_id: str, tools: Any = None, **fields: Any) -> Response:
        body = dict(fields)
        if tools is not None:
            body["tools"] = tools if isinstance(tools, str) else json.dumps(tools)
        form = body.pop("form", "multipart")
        agent_id = body.pop("agent_id", "data_manager")
        return self.call(
            "POST",
            "/agents/{agent_id}/runs/{run_id}/continue",
            {"agent_id": agent_id, "run_id": run_id},
            fields=body,
            form=form,
        )

    def get(self, run_id: str, session_id: str | None = None, agent_id: str = "data_manager") -> Response:
        return self.call(
            "GET",
            "/agents/{agent_id}/runs/{run_id}",
            {"agent_id": agent_id, "run_id": run_id},
            query={"session_id": session_id} if session_id else None,
        )


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())
