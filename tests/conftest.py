"""Shared fixtures: a real PostgreSQL (pgserver), the local stand-in model, handler invocation."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# No test may reach a real provider or AWS by accident: the model is the local stand-in, and
# AWS calls go to moto or nowhere.
os.environ.pop("OPENAI_API_KEY", None)
os.environ.update(
    {
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "SIGNOFF_BEDROCK_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "SignoffTest",
        "SIGNOFF_MODEL_MAX_RETRIES": "2",
        "SIGNOFF_MODEL_TIMEOUT_S": "5",
    }
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh embedded PostgreSQL 16 + pgvector for the test session, migrated."""
    from signoff_dev.postgres import start_postgres, stop_postgres

    data_dir = Path(tempfile.mkdtemp(prefix="signoff-test-pg-")) / "pgdata"
    server, url = start_postgres(data_dir)
    yield url
    stop_postgres(server)
    shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture
def db(postgres_url: str) -> Iterator[str]:
    """The database URL, emptied before the test so each test starts from nothing."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE sessions, runs, tool_calls, run_events, approval_tokens, webhook_deliveries,"
            " knowledge_documents, knowledge_chunks, knowledge_uploads RESTART IDENTITY CASCADE"
        )
    yield postgres_url


@pytest.fixture(scope="session")
def standin():
    """The deterministic OpenAI-compatible stand-in, on a loopback port."""
    from signoff_dev.standin import StandinModel

    model = StandinModel(timeout_sleep_s=8)
    base_url = model.start()
    os.environ["OPENAI_BASE_URL"] = base_url
    yield model
    model.stop()


@pytest.fixture
def model(standin):
    """The stand-in with its request log and injected faults cleared."""
    standin.clear()
    standin.latency_s = 0.0
    yield standin
    standin.clear()


@pytest.fixture(scope="session")
def bedrock_standin():
    """The deterministic Bedrock Runtime stand-in, checking every SigV4 signature in full."""
    from signoff_dev.bedrock_standin import BedrockStandin

    standin = BedrockStandin(
        timeout_sleep_s=8,
        credentials=(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]),
    )
    os.environ["SIGNOFF_BEDROCK_ENDPOINT_URL"] = standin.start()
    yield standin
    standin.stop()


@pytest.fixture
def bedrock(bedrock_standin):
    """The Bedrock stand-in with its request log and injected faults cleared."""
    bedrock_standin.clear()
    bedrock_standin.latency_s = 0.0
    yield bedrock_standin
    bedrock_standin.clear()


@pytest.fixture
def runtime_env(db: str, model, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Environment for driving the Lambda handlers: real DB, stand-in model, fresh caches."""
    monkeypatch.setenv("SIGNOFF_DATABASE_URL", db)
    monkeypatch.setenv("SIGNOFF_AGENTS_MODULE", "tests.support.agents")
    _reset_runtime()
    yield
    _reset_runtime()


def _reset_runtime() -> None:
    from signoff import runtime

    runtime.reset(keep_store=False, keep_provided=False)


@pytest.fixture
def api(runtime_env):
    """A client that drives the Lambda handlers with API Gateway events."""
    from tests.support.agents import CRASH_IN, EXECUTIONS
    from tests.support.api import Api

    EXECUTIONS.clear()
    CRASH_IN.clear()
    return Api()


@pytest.fixture
def dump(db: str):
    """Returns every row of every table, to prove a request changed nothing."""
    import psycopg

    def take() -> dict[str, list]:
        with psycopg.connect(db) as conn:
            return {
                table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
                for table in (
                    "sessions",
                    "runs",
                    "tool_calls",
                    "run_events",
                    "approval_tokens",
                    "webhook_deliveries",
                    "knowledge_documents",
                    "knowledge_uploads",
                )
            }

    return take


WEBHOOK_SECRET = "whsec-test-0123456789"
SLACK_SECRET = "slack-signing-test-secret"


@pytest.fixture
def aws(runtime_env, monkeypatch: pytest.MonkeyPatch):
    """moto SQS + EventBridge, wired into the runtime: queue, bus and the approval secrets."""
    from moto import mock_aws

    with mock_aws():
        from tests.support.aws import AwsWorld

        world = AwsWorld()
        monkeypatch.setenv("SIGNOFF_QUEUE_URL", world.queue_url)
        monkeypatch.setenv("SIGNOFF_EVENT_BUS", "default")
        monkeypatch.setenv("SIGNOFF_WEBHOOK_SECRET", WEBHOOK_SECRET)
        monkeypatch.setenv("SIGNOFF_SLACK_SIGNING_SECRET", SLACK_SECRET)
        _reset_runtime()
        yield world
        _reset_runtime()
