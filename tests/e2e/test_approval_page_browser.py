"""An approval link, opened in a real browser: headless Chromium against the dev server.

A run pauses on delete_records; the local notifier prints its approve link (plain http, as the dev
server tells the handler through ``x-forwarded-proto``). Chromium opens it and shows the call and its
arguments; a mouse click on Approve posts the form and shows the outcome; the local resume queue's
worker completes the run; opening the link again says it was already used. Screenshots of each page
are kept in a temporary folder.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from signoff_dev.devserver import DevServer
from tests.support.api import multipart
from tests.support.cdp import CHROMIUM, Browser
from tests.support.devserver import local_server

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (make setup installs it with apt)"
)


@pytest.fixture
def server(db, model, monkeypatch):
    monkeypatch.setenv("SIGNOFF_AGENTS_MODULE", "catalog")
    for name in ("SIGNOFF_EVENT_BUS", "SIGNOFF_NOTIFY_URL", "SIGNOFF_SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    with local_server(db, model.base_url) as dev:
        yield dev
        dev.queue.wait_idle(30)


@pytest.fixture
def browser():
    with Browser() as started:
        yield started


def _run(server: DevServer, run: dict) -> dict:
    url = f"{server.base_url}/agents/data_manager/runs/{run['run_id']}?session_id={run['session_id']}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def test_approving_in_a_browser_runs_the_tool_once_and_the_link_is_then_spent(server, browser, tmp_path):
    body, content_type = multipart(
        {
            "message": "Delete 50 old records from the users table",
            "user_id": "dana",
            "session_id": f"s-{uuid.uuid4().hex[:8]}",
        }
    )
    request = urllib.request.Request(
        f"{server.base_url}/agents/data_manager/runs", data=body, headers={"Content-Type": content_type}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        run = json.loads(response.read())
    assert run["status"] == "PAUSED", run
    [call] = server.notifier.wait_for(run["run_id"])["tool_calls"]
    approve = call["approve_url"]
    assert approve.startswith(f"{server.base_url}/approve/")
    page = browser.new_page()

    # The link shows what would run, and decides nothing by itself
    response = page.navigate(approve)
    assert response["status"] == 200 and response["url"] == approve
    assert page.evaluate("document.title") == "Approve delete_records"
    assert json.loads(page.text("#tool-args")) == {"count": 50, "table_name": "users"}
    assert page.text("#requested-by") == "dana"
    assert page.text("button#decide") == "Approve"
    assert _run(server, run)["status"] == "PAUSED"
    shot = page.screenshot(tmp_path / "1-confirm.png")

    # A click on Approve posts the form and shows the outcome
    response = page.click("button#decide")
    assert response["status"] == 200 and response["url"] == approve
    assert page.text("#outcome") == "You approved delete_records."
    page.screenshot(tmp_path / "2-outcome.png")

    # The local queue's worker finishes the run
    deadline = time.monotonic() + 30
    while (current := _run(server, run))["status"] != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert current["status"] == "COMPLETED", current
    assert current["tools"][0]["result"] == "Deleted 50 records from users"

    # The link is spent
    response = page.navigate(approve)
    assert response["status"] == 410
    assert page.text("#problem") == "Already used"
    page.screenshot(tmp_path / "3-used.png")

    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    assert all((tmp_path / name).stat().st_size > 5_000 for name in ("2-outcome.png", "3-used.png"))
    page.close()
