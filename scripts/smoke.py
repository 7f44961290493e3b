"""Smoke test of a running Signoff API (a deployed stack, or `make dev`): the seed's flow, then a
signed-webhook approval when a webhook secret is given.

    make smoke URL=https://abc.execute-api.eu-west-1.amazonaws.com [TOKEN=eyJ...] [WEBHOOK_SECRET=...]

Only the standard library: it runs anywhere Python 3.12 does. Exits 0 when every step passed.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

MESSAGE = "Delete 50 old records from the users table"


class SmokeFailed(Exception):
    """A step did not answer what a working stack answers."""


class Client:
    """HTTP calls to the API with the bearer token, if any."""

    def __init__(self, base_url: str, token: str = "", timeout_s: float = 60) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base_url + path, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def json(
        self,
        method: str,
        path: str,
        fields: dict[str, Any] | None = None,
        raw: bytes | None = None,
        headers: dict | None = None,
        expect: int = 200,
    ) -> dict[str, Any]:
        body = raw if raw is not None else (json.dumps(fields).encode() if fields is not None else None)
        status, data = self.request(
            method, path, body, {"content-type": "application/json", **(headers or {})}
        )
        if status != expect:
            raise SmokeFailed(f"{method} {path}: expected {expect}, got {status}: {data[:300]!r}")
        return json.loads(data)


def _paused_call(run: dict[str, Any]) -> dict[str, Any]:
    if run.get("status") != "PAUSED" or not run.get("tools"):
        raise SmokeFailed(f"the run did not pause for a confirmation: {json.dumps(run)[:300]}")
    return run["tools"][0]


def seed_flow(client: Client, say=print) -> str:
    """Start the seed's run, see it pause on delete_records, approve it, see it complete."""
    session = f"smoke-{uuid.uuid4().hex[:8]}"
    run = client.json(
        "POST", "/agents/data_manager/runs", {"message": MESSAGE, "session_id": session, "user_id": "smoke"}
    )
    call = _paused_call(run)
    say(f"ok  start: run {run['run_id']} PAUSED, {call['tool_name']} awaiting confirmation")
    done = client.json(
        "POST",
        f"/agents/data_manager/runs/{run['run_id']}/continue",
        {
            "tools": [{"tool_call_id": call["tool_call_id"], "confirmed": True}],
            "session_id": session,
            "stream": False,
        },
    )
    if done.get("status") != "COMPLETED":
        raise SmokeFailed(f"the approved run did not complete: {json.dumps(done)[:300]}")
    say(f"ok  continue: run {run['run_id']} COMPLETED")
    return run["run_id"]


def webhook_flow(client: Client, secret: str, say=print, wait_s: float = 120) -> str:
    """Start a run, approve its call with a signed webhook, wait for the resume queue to finish it."""
    session = f"smoke-{uuid.uuid4().hex[:8]}"
    run = client.json(
        "POST", "/agents/data_manager/runs", {"message": MESSAGE, "session_id": session, "user_id": "smoke"}
    )
    call = _paused_call(run)
    body = json.dumps(
        {
            "event_id": f"smoke-{uuid.uuid4().hex}",
            "run_id": run["run_id"],
            "tool_call_id": call["tool_call_id"],
            "decision": "approve",
            "approver": "smoke-test",
        }
    ).encode()
    stamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    decided = client.json(
        "POST", "/approvals/webhook", raw=body, headers={"Signoff-Signature": f"t={stamp},v1={digest}"}
    )
    say(f"ok  webhook: decision recorded ({decided.get('decision') or decided.get('status') or 'accepted'})")
    deadline = time.monotonic() + wait_s
    while True:
        state = client.json("GET", f"/agents/data_manager/runs/{run['run_id']}?session_id={session}")
        if state.get("status") == "COMPLETED":
            say(f"ok  resume: run {run['run_id']} COMPLETED through the resume queue")
            return run["run_id"]
        if state.get("status") in ("ERROR", "CANCELLED") or time.monotonic() > deadline:
            raise SmokeFailed(f"the webhook-approved run did not complete: {json.dumps(state)[:300]}")
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "url", help="the API's base URL (the stack's ApiUrl output, or http://127.0.0.1:7777)"
    )
    parser.add_argument("--token", default="", help="a JWT for the API (make user ... prints one)")
    parser.add_argument("--webhook-secret", default="", help="the WebhookSecretArn secret's value")
    args = parser.parse_args(argv)
    client = Client(args.url, args.token)
    try:
        status, _ = client.request("GET", "/openapi.json")
        if status != 200:
            raise SmokeFailed(f"GET /openapi.json answered {status}")
        print("ok  GET /openapi.json")
        seed_flow(client)
        if args.webhook_secret:
            webhook_flow(client, args.webhook_secret)
        else:
            print("--  webhook approval skipped (no WEBHOOK_SECRET)")
    except (SmokeFailed, urllib.error.URLError, TimeoutError) as error:
        print(f"FAIL {error}", file=sys.stderr)
        return 1
    print("smoke: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
