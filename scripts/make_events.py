"""Writes the sample events in events/: HTTP API v2 as AWS sends them, the migrate custom resource,
an SQS batch for the resume worker and the scheduled event of the upkeep function.

Placeholders (``__NAME__``) are filled at invoke time. Two kinds cannot be precomputed here:

- ``__SIGNATURE__`` (approval_webhook.json) is ``t=<unix>,v1=<hex HMAC-SHA256 of "<unix>." + body>``
  with the webhook secret, and ``__SLACK_TIMESTAMP__`` / ``__SLACK_SIGNATURE__``
  (approval_slack.json) are ``<unix>`` / ``v0=<hex HMAC-SHA256 of "v0:<unix>:" + body>`` with the
  Slack signing secret. Both sign the *final* body (after ``__RUN_ID__`` etc. are replaced) and must
  be less than five minutes old, so whatever invokes these events computes them last:
  ``make invoke`` (``signoff_dev.invoke``) does, with the local secrets.
- ``__TOKEN__`` (approval_link_*.json) is a raw approval-link token, which only a paused run issues.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "layers" / "signoff"))
sys.path.insert(0, str(ROOT / "devtools"))

from signoff_dev.apigw import ACCOUNT_ID, REGION, http_api_event  # noqa: E402
from signoff_dev.queue import sqs_record  # noqa: E402

API_ID = "r3pmxmplak"
HOST = f"{API_ID}.execute-api.{REGION}.amazonaws.com"
SOURCE_IP = "203.0.113.10"
USER_AGENT = "curl/8.5.0"
BOUNDARY = "------------------------4ebf00fbcf09b4a2"  # the shape of curl's -F boundaries
EPOCH_MS = 1767268800000  # 2026-01-01T12:00:00Z: fixed, so regenerating changes nothing
AGENT = "data_manager"
SESSION = "test_session"
USER = "test_user"
STACK = "signoff-dev"
BROWSER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
SLACK_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


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
    headers: dict[str, str] | None = None,
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
        headers: more request headers (lower-case), or replacements of the curl-like defaults.

    Returns:
        The event.
    """
    sent = {"accept": "*/*", "host": HOST, "user-agent": USER_AGENT, **(headers or {})}
    if content_type:
        sent["content-type"] = content_type
        sent["content-length"] = str(len(body))
    sent["x-amzn-trace-id"] = f"Root=1-{EPOCH_MS // 1000:08x}-{number:024x}"
    sent["x-forwarded-for"] = SOURCE_IP
    sent["x-forwarded-port"] = "443"
    sent["x-forwarded-proto"] = "https"
    return http_api_event(
        method,
        path,
        query=query,
        headers=sent,
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
        **approval_events(),
        "resume_queue.json": resume_queue(),
        "expire_schedule.json": expire_schedule(),
        **knowledge_events(),
    }


def approval_events() -> dict[str, dict]:
    """The /approvals/... requests: a signed webhook, a Slack button press, an approval link.

    Returns:
        file name → event.
    """
    webhook_body = {
        "event_id": "evt-1",
        "run_id": "__RUN_ID__",
        "tool_call_id": "__TOOL_CALL_ID__",
        "decision": "approve",
        "approver": "ops-bot",
        "note": "ok",
    }
    link = "/approve/__TOKEN__"
    browser = {"accept": BROWSER_ACCEPT, "user-agent": BROWSER_AGENT}
    return {
        "approval_webhook.json": event(
            12,
            "POST",
            "/approvals/webhook",
            "/approvals/webhook",
            content_type="application/json",
            body=json.dumps(webhook_body).encode(),
            # Computed over the final body at invoke time: see this module's docstring.
            headers={"user-agent": "ops-bot/1.0", "signoff-signature": "__SIGNATURE__"},
        ),
        "approval_slack.json": event(
            13,
            "POST",
            "/approvals/slack",
            "/approvals/slack",
            content_type="application/x-www-form-urlencoded",
            body=urlencode({"payload": json.dumps(slack_block_actions())}).encode(),
            headers={
                "accept": "application/json,*/*",
                "user-agent": SLACK_AGENT,
                "x-slack-request-timestamp": "__SLACK_TIMESTAMP__",
                "x-slack-signature": "__SLACK_SIGNATURE__",
            },
        ),
        "approval_link_get.json": event(
            14, "GET", link, "/approve/{token}", {"token": "__TOKEN__"}, headers=browser
        ),
        "approval_link_post.json": event(
            15,
            "POST",
            link,
            "/approve/{token}",
            {"token": "__TOKEN__"},
            content_type="application/x-www-form-urlencoded",
            body=urlencode({"note": "Checked with the data owner"}).encode(),
            headers={**browser, "origin": f"https://{HOST}", "referer": f"https://{HOST}{link}"},
        ),
    }


def knowledge_events() -> dict[str, dict]:
    """The /knowledge/... requests: a markdown file upload, a JSON document, list, search, delete.

    Returns:
        file name → event.
    """
    kb = "handbook"
    documents = f"/knowledge/{kb}/documents"
    markdown = (
        "# Refund policy\n\n## Refund window\n\nCustomers can ask for a refund within 30 days of "
        "delivery.\n\n## Gift cards\n\nGift cards are never refunded.\n"
    )
    upload = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{{"team": "support"}}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="refunds.md"\r\n'
        f"Content-Type: text/markdown\r\n\r\n{markdown}\r\n--{BOUNDARY}--\r\n"
    ).encode()
    shipping = {
        "document_id": "shipping",
        "text": "# Shipping\n\nExpress delivery arrives the next business day.",
        "metadata": {"team": "logistics"},
    }
    return {
        "knowledge_upload.json": event(
            20,
            "POST",
            documents,
            "/knowledge/{kb}/documents",
            {"kb": kb},
            content_type=f"multipart/form-data; boundary={BOUNDARY}",
            body=upload,
        ),
        "knowledge_add_document.json": event(
            21,
            "POST",
            documents,
            "/knowledge/{kb}/documents",
            {"kb": kb},
            content_type="application/json",
            body=json.dumps(shipping).encode(),
        ),
        "knowledge_list.json": event(22, "GET", documents, "/knowledge/{kb}/documents", {"kb": kb}),
        "knowledge_search.json": event(
            23,
            "POST",
            f"/knowledge/{kb}/search",
            "/knowledge/{kb}/search",
            {"kb": kb},
            content_type="application/json",
            body=json.dumps({"query": "are gift cards refunded", "limit": 3}).encode(),
        ),
        "knowledge_delete.json": event(
            24,
            "DELETE",
            f"{documents}/shipping",
            "/knowledge/{kb}/documents/{document_id}",
            {"kb": kb, "document_id": "shipping"},
        ),
    }


def slack_block_actions() -> dict:
    """The ``block_actions`` payload Slack posts when someone presses a message's Approve button.

    Returns:
        The payload (the button's ``value`` is what ``signoff.channels.slack.slack_message`` put there).
    """
    return {
        "type": "block_actions",
        "user": {"id": "U0XMPL0DANA", "username": "dana", "name": "dana", "team_id": "T0XMPL0TEAM"},
        "api_app_id": "A0XMPL0APP1",
        "token": "xmplVerificationTokenUnused",
        "container": {
            "type": "message",
            "message_ts": "1767268800.000100",
            "channel_id": "C0XMPL0OPS1",
            "is_ephemeral": False,
        },
        "trigger_id": "10000000001.1000000000001.0123456789abcdef0123456789abcdef",
        "team": {"id": "T0XMPL0TEAM", "domain": "example"},
        "channel": {"id": "C0XMPL0OPS1", "name": "ops-approvals"},
        "response_url": "http://127.0.0.1:9/slack-response",
        "actions": [
            {
                "action_id": "approve",
                "block_id": "signoff:__TOOL_CALL_ID__",
                "text": {"type": "plain_text", "text": "Approve", "emoji": True},
                "value": json.dumps({"run_id": "__RUN_ID__", "tool_call_id": "__TOOL_CALL_ID__"}),
                "style": "primary",
                "type": "button",
                "action_ts": f"{EPOCH_MS // 1000 + 13}.482910",
            }
        ],
    }


def resume_queue() -> dict:
    """An SQS batch of one resume message, as Lambda's event source mapping delivers it.

    Returns:
        The event, shaped by ``signoff_dev.queue.sqs_record`` (what ``make dev``'s local queue
        delivers). Its ``md5OfBody`` is of the body with the placeholder; Lambda does not check it.
    """
    body = json.dumps({"kind": "resume", "run_id": "__RUN_ID__", "agent_id": AGENT})
    sent_ms = EPOCH_MS + 16_000
    trace = f"Root=1-{sent_ms // 1000:08x}-{16:024x};Parent=5e1b4151d1ea1c0a;Sampled=1"
    record = sqs_record(
        body,
        message_id="2e1424d4-f796-459a-8184-9c92662be6da",
        receipt_handle="AQEBzWwaftRI0KuVm4tP+/7q1rGgNqicHq/cBcbOBsXw8JNkVyAeAHLvyrR0fMLHdsOaJHMsr"
        "9H7wy+yyj1X7TnVnvT5cbhgLBLqeCKmhlkS/Dq6zX+cZ+4ckc3sjXAPh1tVVOIyKjvHAn4TtYeUqq7aRA==",
        sent_ms=sent_ms,
        first_receive_ms=sent_ms + 12,
        sender_id=f"AROAXMPL0SIGNOFF0DEV1:{STACK}-StartRunFunction-Xmpl1a2b3c4d",
        queue_arn=f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{STACK}-ResumeQueue",
        trace_header=trace,
    )
    return {"Records": [record]}


def expire_schedule() -> dict:
    """The EventBridge Scheduled Event that runs ExpireApprovalsFunction every five minutes.

    Returns:
        The event.
    """
    return {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": "2026-01-01T12:05:00Z",
        "region": REGION,
        "resources": [
            f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{STACK}-ExpireApprovalsFunctionUpkeep-Xmpl5e6f7g8h"
        ],
        "detail": {},
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
