"""`make smoke` against `make dev`: the deploy's smoke test passes on a working API, fails on a broken one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from signoff_dev.devserver import DevServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dev_api(postgres_url, standin, db):
    server = DevServer(
        ROOT, port=0, database_url=postgres_url, model_base_url=standin.base_url, upkeep_seconds=0
    )
    base_url = server.start()
    yield base_url
    server.stop()


def _make_smoke(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", "smoke", *args],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_make_smoke_passes_the_seed_flow_and_a_signed_webhook_approval_on_make_dev(dev_api):
    # When the smoke test runs against the local API with the dev webhook secret
    result = _make_smoke(f"URL={dev_api}", "WEBHOOK_SECRET=dev-webhook-secret")

    # Then every step passed: the pause, the approval, and the webhook approval resumed by the queue
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PAUSED, delete_records awaiting confirmation" in result.stdout
    assert "COMPLETED through the resume queue" in result.stdout
    assert result.stdout.rstrip().endswith("smoke: OK")


def test_make_smoke_fails_on_a_wrong_webhook_secret(dev_api):
    result = _make_smoke(f"URL={dev_api}", "WEBHOOK_SECRET=not-the-secret")
    assert result.returncode != 0
    assert "POST /approvals/webhook: expected 200, got 401" in result.stderr


def test_make_smoke_needs_a_url():
    result = _make_smoke()
    assert result.returncode != 0 and "make smoke URL=" in result.stdout
