"""No secret (OpenAI key, database URL, webhook and Slack secrets) ever reaches a log line or a response.

Each test sets distinctive secret values, drives a flow with failures along the way, captures every
log line (caplog at DEBUG for every logger, plus the stream Powertools writes its JSON lines to, plus
stdout/stderr) and everything returned or sent (responses with headers, EventBridge events, queue
messages, notifications, the Slack update, the CloudFormation reply), and looks for each secret in
plain, URL-encoded, JSON-escaped, hex and base64 form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urlencode, urlparse

import pytest

from signoff.approvals import sign
from signoff_dev.apigw import FakeLambdaContext

ROOT = Path(__file__).resolve().parents[2]
ALICE = {"sub": "alice"}


# ------------------------------------------------------------------------------------- the secrets


def _variants(secret: str) -> dict[str, str]:
    """The forms a secret could take in a log or a body; base64 at all three byte alignments."""
    raw = secret.encode()
    forms = {
        "plain": secret,
        "url-encoded": quote(secret, safe=""),
        "form-encoded": quote_plus(secret),
        "json-escaped": json.dumps(secret)[1:-1],
        "hex": raw.hex(),
    }
    for pad in range(3):
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            encoded = encode(b"\0" * pad + raw).decode()
            # the part of the encoding that only depends on the secret's own bytes
            start = 4 if pad else 0
            end = (pad + len(raw)) // 3 * 4
            forms[f"{name}-{pad}"] = encoded[start:end]
    return forms


class Secrets:
    """Distinctive values for every secret, with the characters that encodings change."""

    def __init__(self) -> None:
        token = uuid.uuid4().hex
        self.openai_key = f"sk-proj-SgnfLeak/{token[:10]}+Key="
        self.webhook = f"whsec/SgnfLeak+Hook={token[10:20]}"
        self.slack_signing = f"slk/SgnfLeak+Sign={token[20:30]}"
        self.slack_hook_token = f"SgnfLeakSlackHook{token[:12]}"  # the secret part of a Slack webhook URL
        self.db_password = f"pg/SgnfLeak+Pw={token[12:24]}"
        self.db_url = ""

    def named(self) -> dict[str, str]:
        values = {
            "OPENAI_API_KEY": self.openai_key,
            "SIGNOFF_WEBHOOK_SECRET": self.webhook,
            "SIGNOFF_SLACK_SIGNING_SECRET": self.slack_signing,
            "slack webhook URL token": self.slack_hook_token,
            "database password": self.db_password,
        }
        if self.db_url:
            values["SIGNOFF_DATABASE_URL"] = self.db_url
        return values


def _role_url(db: str, password: str) -> str:
    """A login role with a password on the test server; its URL (Unix socket, as pgserver serves)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(db, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'signoff_app'").fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL(verb + " ROLE signoff_app LOGIN SUPERUSER PASSWORD {}").format(sql.Literal(password))
        )
    socket_dir = parse_qs(urlparse(db).query)["host"][0]
    url = f"postgresql://signoff_app:{quote(password, safe='')}@/postgres?host={socket_dir}"
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("signoff_app",)
    return url


@pytest.fixture
def secrets(aws, db, monkeypatch) -> Secrets:
    """The runtime configured with distinctive secrets (after runtime_env, which drops the key)."""
    from tests.conftest import _reset_runtime

    values = Secrets()
    values.db_url = _role_url(db, values.db_password)
    monkeypatch.setenv("OPENAI_API_KEY", values.openai_key)
    monkeypatch.setenv("SIGNOFF_WEBHOOK_SECRET", values.webhook)
    monkeypatch.setenv("SIGNOFF_SLACK_SIGNING_SECRET", values.slack_signing)
    monkeypatch.setenv("SIGNOFF_DATABASE_URL", values.db_url)
    _reset_runtime()
    return values


# ------------------------------------------------------------------------------------- the capture


class Capture:
    """Everything that left the handlers: log output and every value returned or sent."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.outputs: list[tuple[str, Any]] = []

    def add(self, where: str, value: Any) -> Any:
        self.outputs.append((where, value))
        return value


def _stream_handlers() -> list[logging.StreamHandler]:
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    return [h for logger in loggers for h in logger.handlers if type(h) is logging.StreamHandler]


@pytest.fixture
def captured(api, caplog, capsys, monkeypatch) -> Capture:
    """Capture at DEBUG: caplog for every logger, and the streams Powertools writes JSON lines to."""
    import tests.support.api as api_module
    from signoff_dev.handlers import load_handler

    # import every handler first, so that their loggers exist and get redirected
    for name in ("start_run", "continue_run", "read_runs", "approvals", "resume_worker", "migrate"):
        load_handler(ROOT / "functions" / name, "app.lambda_handler")
    capture = Capture()
    caplog.set_level(logging.DEBUG)
    for handler in _stream_handlers():
        monkeypatch.setattr(handler, "stream", capture.stream)
    levels = {}
    for name in ("signoff", "service_undefined"):
        logger = logging.getLogger(name)
        levels[name] = logger.level
        logger.setLevel(logging.DEBUG)

    real_invoke = api_module.invoke

    def recording_invoke(*args: Any, **kwargs: Any) -> Any:
        return capture.add("response", real_invoke(*args, **kwargs))

    monkeypatch.setattr(api_module, "invoke", recording_invoke)
    yield capture
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _assert_nothing_leaked(
    secrets: Secrets, capture: Capture, caplog, capsys, *, after_a_flow: bool = True
) -> None:
    out, err = capsys.readouterr()
    formatter = logging.Formatter()
    texts: dict[str, str] = {
        "powertools/stream log output": capture.stream.getvalue(),
        "stdout": out,
        "stderr": err,
        "caplog text": caplog.text,
    }
    for index, record in enumerate(caplog.records):
        parts = [record.getMessage(), repr(record.__dict__)]
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
        texts[f"log record {index} ({record.name})"] = "\n".join(parts)
    for index, (where, value) in enumerate(capture.outputs):
        texts[f"{where} {index}"] = value if isinstance(value, str) else json.dumps(value, default=repr)
    if after_a_flow:  # the capture itself works: it saw Powertools lines and the responses
        assert '"service":"signoff"' in capture.stream.getvalue()
        assert sum(where == "response" for where, _ in capture.outputs) > 5
    leaks = [
        f"{name} ({form}) in {where}: ...{_around(text, variant)}..."
        for name, secret in secrets.named().items()
        for form, variant in _variants(secret).items()
        for where, text in texts.items()
        if variant and variant in text
    ]
    assert not leaks, "secrets leaked:\n" + "\n".join(leaks)


def _around(text: str, variant: str, width: int = 120) -> str:
    at = text.index(variant)
    return text[max(0, at - width) : at + len(variant) + 40].replace("\n", " ")


# ------------------------------------------------------------------------------------------ helpers


def _start(api, message: str, session_id: str, *, agent_id: str = "data_manager"):
    return api.call(
        "POST",
        "/agents/{agent_id}/runs",
        {"agent_id": agent_id},
        fields={"message": message, "session_id": session_id},
        claims=ALICE,
    )


def _webhook(api, secret: str, body: dict, *, timestamp: int | None = None):
    raw = json.dumps(body).encode()
    return api.call(
        "POST",
        "/approvals/webhook",
        body=raw,
        content_type="application/json",
        headers={
            "signoff-signature": sign(secret, int(time.time()) if timestamp is None else timestamp, raw)
        },
    )


def _slack(api, secret: str, run: dict, response_url: str):
    payload = {
        "type": "block_actions",
        "user": {"id": "U1", "username": "dana"},
        "response_url": response_url,
        "actions": [
            {
                "action_id": "approve",
                "action_ts": f"{time.time():.6f}",
                "value": json.dumps(
                    {"run_id": run["run_id"], "tool_call_id": run["tools"][0]["tool_call_id"]}
                ),
            }
        ],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time()))
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return api.call(
        "POST",
        "/approvals/slack",
        body=body,
        content_type="application/x-www-form-urlencoded",
        headers={"x-slack-request-timestamp": ts, "x-slack-signature": signature},
    )


def _worker(aws, capture: Capture) -> None:
    messages = aws.resume_messages()
    capture.add("queue messages", [m["Body"] for m in messages])
    capture.add("worker result", aws.run_worker(messages))


def _events(aws, capture: Capture) -> list[dict]:
    return capture.add("eventbridge events", aws.events())


def _db_text(dump) -> str:
    return json.dumps(dump(), default=str)


# -------------------------------------------------------------------------------------------- tests


def test_no_secret_leaks_through_a_flow_with_model_errors_webhooks_slack_and_links(
    api, aws, model, secrets, captured, caplog, capsys, dump, monkeypatch
):
    from tests.conftest import _reset_runtime
    from tests.support.capture import CaptureServer

    with CaptureServer() as receiver:
        monkeypatch.setenv("SIGNOFF_NOTIFY_URL", receiver.url + "/hook")
        monkeypatch.setenv(
            "SIGNOFF_SLACK_WEBHOOK_URL", f"{receiver.url}/services/T0/B0/{secrets.slack_hook_token}"
        )
        _reset_runtime()

        # a pause announced on every channel (EventBridge, signed webhook, Slack message)
        paused = _start(api, "Delete 50 old records from the users table", "s-leak-1").json()
        assert paused["status"] == "PAUSED"
        captured.add("notifications", receiver.wait_for(2, with_headers=True))
        _events(aws, captured)

        # a model failure: the run ends in ERROR with the error text
        model.inject("500", 3)
        errored = _start(api, "Delete 5 old records from the logs table", "s-leak-2").json()
        assert errored["status"] == "ERROR"

        # forged and stale webhooks, then a valid one that approves; the worker completes the run
        decision = {
            "event_id": "evt-leak-1",
            "run_id": paused["run_id"],
            "tool_call_id": paused["tools"][0]["tool_call_id"],
            "decision": "approve",
            "approver": "ops-bot",
        }
        assert _webhook(api, "not-the-secret", decision).status == 401
        assert _webhook(api, secrets.webhook, decision, timestamp=int(time.time()) - 3600).status == 401
        assert _webhook(api, secrets.webhook, decision).status == 200
        assert _webhook(api, secrets.webhook, decision).status == 409  # replay
        _worker(aws, captured)
        assert api.get(paused["run_id"]).json()["status"] == "COMPLETED"

        # Slack: a forged press, then a valid one whose message is updated at response_url
        slack_run = _start(api, "Delete 7 old records from the audit table", "s-leak-3").json()
        _events(aws, captured)
        assert _slack(api, "not-the-secret", slack_run, receiver.url + "/respond").status == 401
        assert _slack(api, secrets.slack_signing, slack_run, receiver.url + "/respond").status == 200
        _worker(aws, captured)
        assert api.get(slack_run["run_id"]).json()["status"] == "COMPLETED"

        # approval links: the page, and a rejection through it
        link_run = _start(api, "Delete 9 old records from the carts table", "s-leak-4").json()
        [event] = _events(aws, captured)
        token = urlparse(event["detail"]["tool_calls"][0]["reject_url"]).path.rsplit("/", 1)[1]
        assert api.call("GET", "/approve/{token}", {"token": token}).status == 200
        posted = api.call(
            "POST", "/approve/{token}", {"token": token}, fields={"note": "no"}, form="urlencoded"
        )
        assert posted.status == 200
        _worker(aws, captured)
        assert api.get(link_run["run_id"]).json()["status"] == "COMPLETED"

        captured.add("everything posted to receivers", receiver.received)

    # a Slack webhook that is down: the notification fails and is retried through the queue
    monkeypatch.setenv("SIGNOFF_NOTIFY_URL", "")
    monkeypatch.setenv(
        "SIGNOFF_SLACK_WEBHOOK_URL", f"http://127.0.0.1:9/services/T0/B0/{secrets.slack_hook_token}"
    )
    _reset_runtime()
    assert _start(api, "Delete 3 old records from the tmp table", "s-leak-5").json()["status"] == "PAUSED"
    _worker(aws, captured)

    # reads of everything, as the owner
    for session in ("s-leak-1", "s-leak-2", "s-leak-3", "s-leak-4", "s-leak-5"):
        for run in api.call(
            "GET", "/sessions/{session_id}/runs", {"session_id": session}, claims=ALICE
        ).json():
            api.call(
                "GET",
                "/agents/{agent_id}/runs/{run_id}/events",
                {"agent_id": "data_manager", "run_id": run["run_id"]},
                claims=ALICE,
            )
    api.call("GET", "/sessions", claims=ALICE)
    captured.add("model requests", model.requests)
    captured.add("database", _db_text(dump))

    _assert_nothing_leaked(secrets, captured, caplog, capsys)


def test_no_secret_leaks_when_the_database_fails(
    api, aws, secrets, captured, caplog, capsys, dump, monkeypatch
):
    from signoff_dev.handlers import load_handler
    from tests.conftest import _reset_runtime

    # a statement the database refuses (text PostgreSQL cannot store)
    refused = api.call(
        "POST",
        "/agents/{agent_id}/runs",
        {"agent_id": "data_manager"},
        fields={"message": "nul \x00 byte", "session_id": "s-db-1"},
        claims=ALICE,
    )
    assert refused.status >= 400
    paused = _start(api, "Delete 50 old records from the users table", "s-db-2").json()
    assert paused["status"] == "PAUSED"
    _events(aws, captured)

    # the database unreachable, at a URL that carries the password
    password = quote(secrets.db_password, safe="")
    down = f"postgresql://signoff_app:{password}@127.0.0.1:1/postgres?connect_timeout=2"
    monkeypatch.setenv("SIGNOFF_DATABASE_URL", down)
    _reset_runtime()
    assert _start(api, "hello", "s-db-3").status == 503
    assert api.get(paused["run_id"]).status == 503
    continued = api.call(
        "POST",
        "/agents/{agent_id}/runs/{run_id}/continue",
        {"agent_id": "data_manager", "run_id": paused["run_id"]},
        fields={"session_id": "s-db-2", "tools": json.dumps([{"tool_call_id": "x", "confirmed": True}])},
        claims=ALICE,
    )
    assert continued.status == 503
    webhook = _webhook(
        api,
        secrets.webhook,
        {
            "event_id": "e-db",
            "run_id": paused["run_id"],
            "tool_call_id": "x",
            "decision": "approve",
            "approver": "a",
        },
    )
    assert webhook.status == 503
    message = {"Body": json.dumps({"run_id": paused["run_id"], "agent_id": "data_manager"})}
    captured.add("worker result", aws.run_worker([message]))

    # the migrations custom resource against the unreachable database reports FAILED with a reason
    migrate = load_handler(ROOT / "functions" / "migrate", "app.lambda_handler")
    reply = migrate(
        {"RequestType": "Create", "StackId": "stack", "RequestId": "req", "LogicalResourceId": "Migrations"},
        FakeLambdaContext("MigrateFunction", timeout_ms=60_000),
    )
    assert reply["Status"] == "FAILED"
    captured.add("cloudformation reply", reply)

    monkeypatch.setenv("SIGNOFF_DATABASE_URL", secrets.db_url)
    _reset_runtime()
    captured.add("database", _db_text(dump))

    _assert_nothing_leaked(secrets, captured, caplog, capsys)


def _secret_arn(name: str, value: str) -> str:
    import boto3

    botocore_logger = logging.getLogger("botocore")
    level = botocore_logger.level
    botocore_logger.setLevel(logging.INFO)  # the test's own call is not the system under test
    try:
        client = boto3.client("secretsmanager")
        return client.create_secret(Name=f"signoff/{name}-{uuid.uuid4().hex[:8]}", SecretString=value)["ARN"]
    finally:
        botocore_logger.setLevel(level)


def test_no_secret_leaks_when_every_secret_comes_from_secrets_manager(
    api, aws, model, secrets, captured, caplog, capsys, dump, db, monkeypatch
):
    # Given every secret in Secrets Manager, the database one as RDS writes it (JSON with a password)
    from tests.conftest import _reset_runtime

    socket_dir = parse_qs(urlparse(db).query)["host"][0]
    rds = {
        "engine": "postgres",
        "host": socket_dir,
        "port": 5432,
        "username": "signoff_app",
        "password": secrets.db_password,
        "dbname": "postgres",
        "sslmode": "disable",
    }
    arns = {
        "SIGNOFF_DATABASE_SECRET_ARN": _secret_arn("db", json.dumps(rds)),
        "SIGNOFF_OPENAI_SECRET_ARN": _secret_arn("openai", secrets.openai_key),
        "SIGNOFF_WEBHOOK_SECRET_ARN": _secret_arn("webhook", secrets.webhook),
        "SIGNOFF_SLACK_SIGNING_SECRET_ARN": _secret_arn("slack", secrets.slack_signing),
    }
    for name in (
        "SIGNOFF_DATABASE_URL",
        "OPENAI_API_KEY",
        "SIGNOFF_WEBHOOK_SECRET",
        "SIGNOFF_SLACK_SIGNING_SECRET",
    ):
        monkeypatch.setenv(name, "")
    for name, arn in arns.items():
        monkeypatch.setenv(name, arn)
    _reset_runtime()

    # When runs pause, fail, and are decided by webhook and Slack
    paused = _start(api, "Delete 50 old records from the users table", "s-sm-1").json()
    assert paused["status"] == "PAUSED", paused
    _events(aws, captured)
    model.inject("500", 3)
    assert _start(api, "Delete 5 old records from the logs table", "s-sm-2").json()["status"] == "ERROR"
    decision = {
        "event_id": "evt-sm-1",
        "run_id": paused["run_id"],
        "tool_call_id": paused["tools"][0]["tool_call_id"],
        "decision": "approve",
        "approver": "ops-bot",
    }
    assert _webhook(api, "not-the-secret", decision).status == 401
    assert _webhook(api, secrets.webhook, decision).status == 200
    slack_run = _start(api, "Delete 7 old records from the audit table", "s-sm-3").json()
    _events(aws, captured)
    assert _slack(api, secrets.slack_signing, slack_run, "http://127.0.0.1:9/respond").status == 200
    _worker(aws, captured)
    assert api.get(paused["run_id"]).json()["status"] == "COMPLETED"
    captured.add("database", _db_text(dump))

    # Then no secret appears anywhere
    _assert_nothing_leaked(secrets, captured, caplog, capsys)


def test_the_leak_scan_would_see_a_leaked_secret(secrets, captured, caplog, capsys):
    # Given a secret that does leak, in base64 inside a longer line, on the Powertools logger
    from signoff.observability import logger

    leaked = base64.b64encode(b"prefix:" + secrets.webhook.encode() + b":suffix").decode()
    logger.debug("token %s", leaked)

    # Then the scan reports it
    with pytest.raises(AssertionError, match="SIGNOFF_WEBHOOK_SECRET"):
        _assert_nothing_leaked(secrets, captured, caplog, capsys, after_a_flow=False)


def test_stdout_is_scanned_too(secrets, captured, caplog, capsys):
    print(quote_plus(secrets.openai_key))
    sys.stdout.flush()

    with pytest.raises(AssertionError, match="OPENAI_API_KEY"):
        _assert_nothing_leaked(secrets, captured, caplog, capsys, after_a_flow=False)
