"""Writes the sample events in events/ (HTTP API v2 as AWS sends them, plus the migrate custom resource)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "layers" / "signoff"))

from signoff.local.apigw import ACCOUNT_ID, REGION, http_api_event  # noqa: E402

API_ID = "r3pmxmplak"
HOST = f"{API_ID}.execute-api.{REGION}.amazonaws.com"
SOURCE_IP = "203.0.113.10"
USER_AGENT = "curl/8.5.0"
BOUNDARY = "------------------------4ebf00fbcf09b4a2"  # the shape of curl's -F boundaries
EPOCH_MS = 1767268800000  # 2026-01-01T12:00:00Z: fixed, so regenerating changes nothing
AGENT = "data_manager"
SESSION = "test_session"
USER = "test_user"


def multipart(fields: dict[str, str]) -> bytes:
    """A multipart/form-data body exactly as ``curl -F name=value ...`` sends it.

    Args:
        fields: the form fields, in order.

    Returns:
        The body bytes (delimited by ``BOUNDARY``).
    """
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    return ("".join(parts) + f"--{BOUNDARY}--\r\n").encode()


def event(
    number: int,
    method: str,
    path: str,
    route: str,
    params: dict[str, str] | None = None,
    *,
    query: str = "",
    content_type: str | None = None,
    body: bytes = b"",
) -> dict:
    """One HTTP API v2 event with fixed ids and time.

    Args:
        number: distinguishes the request id, trace id and time of each sample.
        method: the HTTP method.
        path: the request path.
        route: the route path from template.yaml.
        params: the path parameters.
        query: the raw query string.
        content_type: the request's content type, if it has a body.
        body: the raw body.

    Returns:
        The event.
    """
    headers = {"accept": "*/*", "host": HOST, "user-agent": USER_AGENT}
    if content_type:
        headers["content-type"] = content_type
        headers["content-length"] = str(len(body))
    headers["x-amzn-trace-id"] = f"Root=1-{EPOCH_MS // 1000:08x}-{number:024x}"
    headers["x-forwarded-for"] = SOURCE_IP
    headers["x-forwarded-port"] = "443"
    headers["x-forwarded-proto"] = "https"
    return http_api_event(
        method,
        path,
        query=query,
        headers=headers,
        body=body,
        route_key=f"{method} {route}",
        path_parameters=params,
        source_ip=SOURCE_IP,
        api_id=API_ID,
        request_id=f"SgnOffEvent{number:03d}Q=",
        time_epoch_ms=EPOCH_MS + number * 1000,
    )


def build() -> dict[str, dict]:
    """All sample events by file name.

    Returns:
        file name → event.
    """
    form = f"multipart/form-data; boundary={BOUNDARY}"
    start_fields = {
        "message": "Delete 50 old records from the users table",
        "user_id": USER,
        "session_id": SESSION,
    }
    runs = f"/agents/{AGENT}/runs"
    run = f"{runs}/__RUN_ID__"
    run_params = {"agent_id": AGENT, "run_id": "__RUN_ID__"}
    approve = json.dumps([{"tool_call_id": "__TOOL_CALL_ID__", "confirmed": True}])
    reject = json.dumps(
        [
            {
                "tool_call_id": "__TOOL_CALL_ID__",
                "confirmed": False,
                "confirmation_note": "Not now: the users table is under audit",
            }
        ]
    )
    return {
        "start_run.json": event(
            1,
            "POST",
            runs,
            "/agents/{agent_id}/runs",
            {"agent_id": AGENT},
            content_type=form,
            body=multipart(start_fields),
        ),
        "start_run_urlencoded.json": event(
            2,
            "POST",
            runs,
            "/agents/{agent_id}/runs",
            {"agent_id": AGENT},
            content_type="application/x-www-form-urlencoded",
            body=urlencode(start_fields).encode(),
        ),
        "start_run_json.json": event(
            3,
            "POST",
            runs,
            "/agents/{agent_id}/runs",
            {"agent_id": AGENT},
            content_type="application/json",
            body=json.dumps(start_fields).encode(),
        ),
        "start_run_stream.json": event(
            4,
            "POST",
            runs,
            "/agents/{agent_id}/runs",
            {"agent_id": AGENT},
            content_type=form,
            body=multipart({**start_fields, "stream": "true"}),
        ),
        "continue_run.json": event(
            5,
            "POST",
            f"{run}/continue",
            "/agents/{agent_id}/runs/{run_id}/continue",
            run_params,
            content_type=form,
            body=multipart({"tools": approve, "session_id": SESSION, "stream": "false"}),
        ),
        "continue_run_reject.json": event(
            6,
            "POST",
            f"{run}/continue",
            "/agents/{agent_id}/runs/{run_id}/continue",
            run_params,
            content_type=form,
            body=multipart({"tools": reject, "session_id": SESSION, "stream": "false"}),
        ),
        "cancel_run.json": event(
            7,
            "POST",
            f"{run}/cancel",
            "/agents/{agent_id}/runs/{run_id}/cancel",
            run_params,
            content_type=form,
            body=multipart({"session_id": SESSION}),
        ),
        "get_run.json": event(
            8, "GET", run, "/agents/{agent_id}/runs/{run_id}", run_params, query=f"session_id={SESSION}"
        ),
        "list_runs.json": event(
            9, "GET", runs, "/agents/{agent_id}/runs", {"agent_id": AGENT}, query=f"session_id={SESSION}"
        ),
        "list_sessions.json": event(10, "GET", "/sessions", "/sessions", query=f"user_id={USER}"),
        "session_runs.json": event(
            11, "GET", f"/sessions/{SESSION}/runs", "/sessions/{session_id}/runs", {"session_id": SESSION}
        ),
        "migrate_create.json": migrate_create(),
    }


def migrate_create() -> dict:
    """A CloudFormation custom resource Create event for MigrateFunction.

    Returns:
        The event; its ResponseURL points at a closed local port, so a local invoke does not hang on it.
    """
    stack = (
        f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/signoff-dev/6b2a8f30-e6a1-11f0-9c3b-0a1b2c3d4e5f"
    )
    token = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:signoff-dev-MigrateFunction-Xmpl1a2b3c4d"
    return {
        "RequestType": "Create",
        "ServiceToken": token,
        "ResponseURL": "http://127.0.0.1:9/",
        "StackId": stack,
        "RequestId": "5d478078-13e9-baf0-464a-7ef285ecc786",
        "LogicalResourceId": "DatabaseMigrations",
        "ResourceType": "Custom::SignoffMigrations",
        "ResourceProperties": {
            "ServiceToken": token,
            "ServiceTimeout": "360",
            "SignoffLayerVersion": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:SignoffLayer:1",
        },
    }


def main() -> int:
    """Write every event into events/ (pretty JSON, stable key order).

    Returns:
        The exit code.
    """
    out = ROOT / "events"
    out.mkdir(exist_ok=True)
    for name, data in build().items():
        (out / name).write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote events/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
