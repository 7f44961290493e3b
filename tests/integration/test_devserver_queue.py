"""The dev server's local resume queue: background runs and approval links finish without AWS.

Through the dev server (handlers in-process, and in two container processes): a ``background=true``
start answers 202 and the local queue hands the run to ResumeWorkerFunction, which pauses it; the local
notifier prints (and keeps) the approval links, built from the request as ``http://127.0.0.1:<port>``;
a POST to the approve link records the decision, and the queue's worker completes the run.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from signoff_dev.devserver import DevServer
from tests.support.api import multipart

ROOT = Path(__file__).resolve().parents[2]
MESSAGE = "Delete 50 old records from the users table"


@pytest.fixture(params=[1, 2], ids=["in-process", "2-containers"])
def server(request, db, model, monkeypatch):
    monkeypatch.setenv("SIGNOFF_AGENTS_MODULE", "catalog")
    for name in ("SIGNOFF_EVENT_BUS", "SIGNOFF_NOTIFY_URL", "SIGNOFF_SLACK_WEBHOOK_URL", "SIGNOFF_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    dev = DevServer(
        ROOT,
        port=0,
        database_url=db,
        model_base_url=model.base_url,
        containers=request.param,
        upkeep_seconds=0,
        announce=False,
    )
    dev.start()
    try:
        yield dev
    finally:
        assert dev.queue is not None and dev.queue.wait_idle(30), "the local queue did not drain"
        dev.stop()


def _request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _start(base_url: str, **fields: str) -> tuple[int, dict[str, Any]]:
    body, content_type = multipart({"message": MESSAGE, "user_id": "ann", **fields})
    status, data = _request(f"{base_url}/agents/data_manager/runs", body, {"Content-Type": content_type})
    return status, json.loads(data)


def _wait_for(base_url: str, run: dict[str, Any], wanted: str, timeout_s: float = 30) -> dict[str, Any]:
    url = f"{base_url}/agents/data_manager/runs/{run['run_id']}?session_id={run['session_id']}"
    deadline = time.monotonic() + timeout_s
    while True:
        status, data = _request(url)
        assert status == 200, data
        current = json.loads(data)
        if current["status"] == wanted or time.monotonic() > deadline:
            assert current["status"] == wanted, current
            return current
        time.sleep(0.1)


def test_a_background_start_answers_202_and_the_local_queue_runs_it_to_its_pause(server):
    session = f"s-{uuid.uuid4().hex[:8]}"

    status, accepted = _start(server.base_url, session_id=session, background="true")

    assert status == 202, accepted
    assert accepted["status"] == "PENDING" and accepted["session_id"] == session
    paused = _wait_for(server.base_url, accepted, "PAUSED")
    assert [tool["tool_name"] for tool in paused["tools"]] == ["delete_records"]
    assert paused["tools"][0]["tool_args"] == {"table_name": "users", "count": 50}
    # The worker got a real SQS event: what it processed shows in the queue's counters
    assert server.queue.wait_idle(10) and server.queue.delivered >= 1 and not server.queue.dead_letters
    # The pause was announced locally, with links to this server (plain http, the truth locally)
    links = server.notifier.links(accepted["run_id"])
    [call_links] = links.values()
    assert call_links["approve"].startswith(f"{server.base_url}/approve/")
    assert call_links["reject"].startswith(f"{server.base_url}/approve/")


def test_posting_the_printed_approve_link_completes_the_run_through_the_queue(server):
    status, run = _start(server.base_url, session_id=f"s-{uuid.uuid4().hex[:8]}")
    assert status == 200 and run["status"] == "PAUSED", run
    detail = server.notifier.wait_for(run["run_id"])
    [call] = detail["tool_calls"]
    assert call["tool_call_id"] == run["tools"][0]["tool_call_id"]

    status, page = _request(
        call["approve_url"], b"note=ok", {"Content-Type": "application/x-www-form-urlencoded"}
    )

    assert status == 200, page
    assert b"You approved" in page
    done = _wait_for(server.base_url, run, "COMPLETED")
    assert done["tools"][0]["result"] == "Deleted 50 records from users"
    assert done["tools"][0]["confirmed"] is True
    # The link was single-use
    status, page = _request(
        call["approve_url"], b"note=again", {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 409 and b"Already used" in page


HYGIENE_TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Parameters:
  EventBusName: {Type: String, Default: default}
  SecretArn: {Type: String, Default: "arn:aws:secretsmanager:us-east-1:123456789012:secret:real-AbCdEf"}
  Level: {Type: String, Default: loud}
Globals:
  Function:
    Timeout: 30
    Environment:
      Variables:
        SIGNOFF_QUEUE_URL: !Ref ResumeQueue
        SIGNOFF_EVENT_BUS: !Ref EventBusName
        SIGNOFF_WEBHOOK_SECRET_ARN: !Ref SecretArn
        STACK_QUEUE_ARN: !GetAtt ResumeQueue.Arn
        STACK_NAME: !Sub "${AWS::StackName}-x"
        ECHO_LEVEL: !Ref Level
        ECHO_SHARED: globals
Resources:
  ResumeQueue:
    Type: AWS::SQS::Queue
  EchoAFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo/
      Handler: app.lambda_handler
      Events:
        Get: {Type: HttpApi, Properties: {Method: GET, Path: /a}}
  EchoBFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo/
      Handler: app.lambda_handler
      Environment:
        Variables:
          ECHO_SHARED: only-b
          ECHO_B: "1"
      Events:
        Get: {Type: HttpApi, Properties: {Method: GET, Path: /b}}
"""

HYGIENE_HANDLER = """\
import json, os

def lambda_handler(event, context):
    seen = {k: v for k, v in os.environ.items() if k.startswith(("SIGNOFF_", "STACK_", "ECHO_"))}
    return {"statusCode": 200, "body": json.dumps(seen)}
"""


@pytest.mark.parametrize("containers", [1, 2], ids=["in-process", "2-containers"])
def test_each_function_gets_its_own_template_environment_and_nothing_that_reaches_aws(
    tmp_path, postgres_url, standin, monkeypatch, containers
):
    for name in ("SIGNOFF_EVENT_BUS", "SIGNOFF_QUEUE_URL", "ECHO_LEVEL", "ECHO_SHARED", "ECHO_B"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("SIGNOFF_WEBHOOK_SECRET", raising=False)
    (tmp_path / "template.yaml").write_text(HYGIENE_TEMPLATE)
    (tmp_path / "echo").mkdir()
    (tmp_path / "echo" / "app.py").write_text(HYGIENE_HANDLER)
    dev = DevServer(
        tmp_path,
        port=0,
        database_url=postgres_url,
        model_base_url=standin.base_url,
        containers=containers,
        announce=False,
    )
    dev.start()
    try:
        seen = [json.loads(_request(f"{dev.base_url}/{path}")[1]) for path in ("a", "b", "a", "b")]
    finally:
        dev.stop()

    a, b = seen[0], seen[1]
    assert seen[2] == a and seen[3] == b
    # Never from the template: the real queue, the real bus, a real secret; nothing needing a stack
    for env in (a, b):
        assert not {"SIGNOFF_QUEUE_URL", "SIGNOFF_EVENT_BUS", "SIGNOFF_WEBHOOK_SECRET_ARN"} & set(env)
        assert not {"STACK_QUEUE_ARN", "STACK_NAME"} & set(env)
        assert not any("Ref" in value or "{" in value for value in env.values())
        # The local secret of signed webhooks instead
        assert env["SIGNOFF_WEBHOOK_SECRET"] == "dev-webhook-secret"
        assert env["ECHO_LEVEL"] == "loud"
    # Each function its own values, never merged
    assert a["ECHO_SHARED"] == "globals" and "ECHO_B" not in a
    assert b["ECHO_SHARED"] == "only-b" and b["ECHO_B"] == "1"
    # And the dev server's own process is left as it was
    assert not {"ECHO_LEVEL", "ECHO_SHARED", "ECHO_B", "SIGNOFF_WEBHOOK_SECRET"} & set(os.environ)


def test_the_upkeep_runs_the_scheduled_function_on_its_timer(db, model, monkeypatch):
    monkeypatch.setenv("SIGNOFF_AGENTS_MODULE", "catalog")
    dev = DevServer(
        ROOT, port=0, database_url=db, model_base_url=model.base_url, upkeep_seconds=0.2, announce=False
    )
    results: list[dict[str, Any]] = []
    run_upkeep = dev.run_upkeep
    dev.run_upkeep = lambda: results.append(run_upkeep()) or results[-1]  # type: ignore[method-assign]
    dev.start()
    try:
        deadline = time.monotonic() + 20
        while len(results) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        dev.stop()
    assert len(results) >= 2
    assert results[0] == {
        "ExpireApprovalsFunction": {"expired": [], "dead": [], "kept_decisions_applied": [], "requeued": []}
    }


def test_the_local_queue_redelivers_failed_messages_and_dead_letters_them_after_five_receives():
    from signoff_dev.queue import LocalQueue

    events: list[dict[str, Any]] = []

    def deliver(event: dict[str, Any]) -> dict[str, Any]:
        events.append(event)
        failing = [r for r in event["Records"] if json.loads(r["body"])["run_id"] != "ok"]
        if any(json.loads(r["body"])["run_id"] == "crash" for r in failing):
            raise RuntimeError("the invocation died")
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in failing]}

    queue = LocalQueue(deliver, batch_size=5, visibility_timeout_s=0.01, max_receives=5)
    queue.start()
    try:
        queue.send({"kind": "resume", "run_id": "ok", "agent_id": "a"})
        assert queue.wait_idle(5)
        queue.send({"kind": "resume", "run_id": "bad", "agent_id": "a"})
        assert queue.wait_idle(5)
        queue.send({"kind": "resume", "run_id": "crash", "agent_id": "a"})
        assert queue.wait_idle(5)
    finally:
        queue.stop()

    first = events[0]["Records"][0]
    assert set(first) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert first["eventSource"] == "aws:sqs" and first["attributes"]["ApproximateReceiveCount"] == "1"
    bad = [e["Records"][0] for e in events if json.loads(e["Records"][0]["body"])["run_id"] == "bad"]
    assert [r["attributes"]["ApproximateReceiveCount"] for r in bad] == ["1", "2", "3", "4", "5"]
    assert len({r["messageId"] for r in bad}) == 1 and len({r["receiptHandle"] for r in bad}) == 5
    assert queue.delivered == 1 and queue.retried == 8
    assert [message["run_id"] for message in queue.dead_letters] == ["bad", "crash"]


def test_make_invoke_signs_the_sample_approval_events_over_their_final_body():
    from signoff.approvals import verify_signature
    from signoff.channels.slack import verify_slack
    from signoff_dev.apigw import event_body_bytes
    from signoff_dev.invoke import placeholder_values, prepare_event

    values = placeholder_values([], {"RUN_ID": "run-1", "TOOL_CALL_ID": "call_1"})
    secrets = {"webhook_secret": "wh-secret", "slack_signing_secret": "slack-secret"}

    webhook, missing = prepare_event(
        json.loads((ROOT / "events/approval_webhook.json").read_text()), values, **secrets
    )
    assert not missing
    body = event_body_bytes(webhook)
    assert b'"run_id": "run-1"' in body
    verify_signature("wh-secret", webhook["headers"]["signoff-signature"], body)

    slack, missing = prepare_event(
        json.loads((ROOT / "events/approval_slack.json").read_text()), values, **secrets
    )
    assert not missing
    headers = slack["headers"]
    verify_slack(
        "slack-secret",
        headers["x-slack-request-timestamp"],
        headers["x-slack-signature"],
        event_body_bytes(slack),
    )

    # An approval link's token, given as the whole printed link
    link = placeholder_values([], {"TOKEN": "http://127.0.0.1:7777/approve/tok_123"})
    page, missing = prepare_event(
        json.loads((ROOT / "events/approval_link_post.json").read_text()), link, **secrets
    )
    assert (
        not missing
        and page["rawPath"] == "/approve/tok_123"
        and page["pathParameters"] == {"token": "tok_123"}
    )
