"""The approver's inbox in a real browser: headless Chromium against the dev server with JWTs.

dana asks two agents for things only the finance group may approve. Someone outside finance signs in
through the dev sign-in and sees nothing; fiona (finance) signs in and sees both calls, then a third
one arriving without a reload; she approves one with a note, approves another from the keyboard and
rejects the third (whose arguments are hostile markup, shown as text); the runs finish and the inbox
empties. Other tests open an item's conversation and references, approve an editable call with
changed arguments, and have a requester fill in a tool's fields and answer an agent's questions.
With ``SIGNOFF_SCREENSHOTS=1`` the screenshots go to ``docs/`` (else a temporary folder).
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

from signoff_dev import jwt
from signoff_dev.devserver import DevServer
from tests.support.agents import EXECUTIONS
from tests.support.api import multipart
from tests.support.cdp import CHROMIUM, Browser, Page
from tests.support.devserver import local_server

ROOT = Path(__file__).resolve().parents[2]
HANDBOOK = (
    "# Refund policy\n\n## Refund window\n\nCustomers can ask for a refund within 30 days of delivery.\n\n"
    "## Gift cards\n\nGift cards are never refunded or exchanged for cash."
)
HOSTILE_CUSTOMER = '<img src=x onerror="alert(1)">'
HOSTILE_REASON = (
    '</script><script>alert(2)</script>"><svg onload=alert(3)> ok\u202egnp.exe ' + "long text " * 300
)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (make setup installs it with apt)"
)


@pytest.fixture
def server(db, model, monkeypatch):
    monkeypatch.setenv("SIGNOFF_AGENTS_MODULE", "tests.support.agents")
    for name in (
        "SIGNOFF_EVENT_BUS",
        "SIGNOFF_NOTIFY_URL",
        "SIGNOFF_SLACK_WEBHOOK_URL",
        "SIGNOFF_INBOX_AUTHORIZE_URL",
        "SIGNOFF_INBOX_TOKEN_URL",
        "SIGNOFF_INBOX_CLIENT_ID",
        "SIGNOFF_INBOX_LOGOUT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    EXECUTIONS.clear()
    with local_server(db, model.base_url, auth="jwt") as dev:
        yield dev
        dev.queue.wait_idle(30)


@pytest.fixture
def browser():
    with Browser() as started:
        yield started


@pytest.fixture
def shots(tmp_path) -> Path:
    if os.environ.get("SIGNOFF_SCREENSHOTS") == "1":
        return ROOT / "docs"
    return tmp_path


# ---------------------------------------------------------------------------------------- helpers


def _request(
    server: DevServer,
    method: str,
    path: str,
    user: str,
    *,
    groups: tuple[str, ...] = (),
    fields: dict[str, str] | None = None,
    body: Any = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {jwt.mint(user, groups=groups, secret=server.jwt_secret)}"}
    data = None
    if fields is not None:
        data, headers["Content-Type"] = multipart(fields)
    elif body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(f"{server.base_url}{path}", data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _start(server: DevServer, agent_id: str, message: str) -> dict:
    status, run = _request(
        server,
        "POST",
        f"/agents/{agent_id}/runs",
        "dana",
        fields={"message": message, "session_id": f"s-{uuid.uuid4().hex[:8]}"},
    )
    assert status == 200 and run["status"] == "PAUSED", run
    return run


def _add_handbook(server: DevServer) -> None:
    status, body = _request(
        server,
        "POST",
        "/knowledge/handbook/documents",
        "dana",
        body={"text": HANDBOOK, "document_id": "refunds"},
    )
    assert status == 201, body


def _refund_run(server: DevServer) -> dict:
    return _start(
        server,
        "billing",
        'call search_knowledge_base {"query": "refund window days", "limit": 2} '
        'then call refund_payment {"customer": "acme", "amount": 1500, "reason": "late delivery"}',
    )


def _pending(server: DevServer) -> dict[str, dict]:
    """run id → its pending approval record, as fiona (finance) sees them."""
    status, page = _request(server, "GET", "/approvals?status=pending", "fiona", groups=("finance",))
    assert status == 200, page
    return {record["run_id"]: record for record in page["data"]}


def _run(server: DevServer, run: dict) -> dict:
    status, body = _request(
        server,
        "GET",
        f"/agents/{run['agent_id']}/runs/{run['run_id']}?session_id={run['session_id']}",
        "dana",
    )
    assert status == 200, body
    return body


def _wait_completed(server: DevServer, run: dict, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while (current := _run(server, run))["status"] != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert current["status"] == "COMPLETED", current
    return current


def _sign_in(page: Page, server: DevServer, user: str, groups: str = "") -> None:
    """Open the inbox, follow "Sign in" to the dev sign-in page, sign in, and wait for the list."""
    page.navigate(f"{server.base_url}/inbox")
    page.wait_for("document.querySelector('#sign-in')")
    response = page.click("#sign-in")
    assert response["url"].startswith(f"{server.base_url}/dev/oauth2/authorize?"), response
    page.type_into("#user_id", user)
    if groups:
        page.type_into("#groups", groups)
    response = page.click("button#sign-in")
    assert response["url"].startswith(f"{server.base_url}/inbox?code="), response["url"]
    page.wait_for(
        "document.querySelector('#summary') && !document.querySelector('#items[aria-busy]')"
        " && document.querySelector('#summary').textContent !== 'Loading…'"
    )


def _item(approval_id: str) -> str:
    return f'li.item[data-approval-id="{approval_id}"]'


def _texts(page: Page, selector: str) -> list[str]:
    return page.evaluate(f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.textContent)")


# ---------------------------------------------------------------------------------------- tests


def test_the_shell_holds_no_data_and_carries_its_policy(server):
    # Given a pending call
    run = _refund_run_without_knowledge(server)

    # When the page is fetched without a token
    with urllib.request.urlopen(f"{server.base_url}/inbox", timeout=30) as response:
        status, headers, page = response.status, response.headers, response.read().decode()

    # Then it is the shell: sign-in configuration, the policy, and nothing of the call
    assert status == 200
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "require-trusted-types-for 'script'" in policy and "frame-ancestors 'none'" in policy
    assert headers["Cache-Control"] == "no-store" and headers["Referrer-Policy"] == "no-referrer"
    for secret in ("refund_payment", "dana", "acme", run["run_id"]):
        assert secret not in page
    # And the API itself still wants a token
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{server.base_url}/approvals", timeout=30)
    assert refused.value.code == 401


def _refund_run_without_knowledge(server: DevServer) -> dict:
    return _start(server, "billing", 'call refund_payment {"customer": "acme", "amount": 1500}')


def test_an_approver_decides_in_the_browser_and_the_runs_finish(server, browser, shots):
    # Given two runs of two agents paused on calls the finance group decides
    _add_handbook(server)
    refund = _refund_run(server)
    time.sleep(1.1)  # created_at is in seconds: the invoice is the newer one
    invoice = _start(server, "invoicing", 'call adjust_invoice {"invoice": "INV-7", "amount": 9900}')
    page = browser.new_page()
    page.set_viewport(1280, 800)

    # When someone outside finance signs in, they see none of them
    _sign_in(page, server, "mallory")
    assert page.text("#summary") == "Nothing waits for your decision."
    assert _texts(page, "li.item") == []
    assert page.evaluate("document.title") == "Inbox · Signoff"
    # (and the sign-in left no code in the address bar, and no PKCE verifier behind)
    assert page.evaluate("location.search") == ""
    assert page.evaluate("sessionStorage.getItem('signoff.inbox.pkce')") is None
    page.click("#sign-out", navigates=False)
    page.wait_for("document.querySelector('#sign-in')")
    assert page.evaluate("sessionStorage.getItem('signoff.inbox.token')") is None

    # When fiona (finance) signs in, she sees both calls, newest first, with who asked and what
    _sign_in(page, server, "fiona", "finance")
    pending = _pending(server)
    first, second = pending[refund["run_id"]], pending[invoice["run_id"]]
    page.wait_for("document.querySelectorAll('li.item').length === 2")
    assert page.evaluate("document.title") == "(2) Inbox · Signoff"
    assert page.evaluate("[...document.querySelectorAll('li.item')].map(e => e.dataset.approvalId)") == [
        second["id"],
        first["id"],
    ]
    assert page.text(f"{_item(first['id'])} h2") == "refund_payment from Billing"
    assert page.text(f"{_item(first['id'])} .requester") == "dana"
    assert _texts(page, f"{_item(first['id'])} .arg-list dt code") == ["amount", "customer", "reason"]
    assert _texts(page, f"{_item(first['id'])} .arg-list dd pre") == ["1500", "acme", "late delivery"]
    page.screenshot(shots / "inbox-desktop.png")
    page.set_viewport(390, 844, mobile=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
    page.screenshot(shots / "inbox-phone.png")
    page.set_viewport(1280, 800)

    # When a third call arrives, with hostile markup in its arguments, it appears without a reload
    hostile = _start(
        server,
        "billing",
        "call refund_payment "
        + json.dumps({"customer": HOSTILE_CUSTOMER, "amount": 1, "reason": HOSTILE_REASON}),
    )
    third = _pending(server)[hostile["run_id"]]
    page.wait_for(f"document.querySelector('{_item(third['id'])}')", timeout_s=25)
    assert page.evaluate("document.title") == "(3) Inbox · Signoff"

    # Then its arguments show as text: nothing was injected, no script ran, no dialog opened
    amount, customer, _ = _texts(page, f"{_item(third['id'])} .arg-list dd > *")
    assert (customer, amount) == (HOSTILE_CUSTOMER, "1")
    page.click(f"{_item(third['id'])} .arg-list details.more summary", navigates=False)
    page.wait_for(f"document.querySelector('{_item(third['id'])} .arg-list pre.full')")
    full = page.text(f"{_item(third['id'])} .arg-list pre.full")
    assert full == HOSTILE_REASON.replace("\u202e", "⟦U+202E⟧")
    assert "invisible or direction-changing" in page.text(f"{_item(third['id'])} .warning")
    assert page.evaluate("document.querySelectorAll('img, svg, iframe').length") == 0
    assert page.evaluate("document.querySelectorAll('script').length") == 2  # the module and the config
    assert page.dialogs == []

    # When she approves the refund with a note
    page.type_into(f"{_item(first['id'])} textarea[name=note]", "ok per the handbook")
    page.click(f"{_item(first['id'])} button.approve", navigates=False)

    # Then it leaves the list, and the page says what happened
    page.wait_for(f"!document.querySelector('{_item(first['id'])}')")
    assert "Approved refund_payment from Billing." in _texts(page, "#log li")[0]

    # When she approves the invoice from the keyboard: note, Tab to Approve, Enter
    page.type_into(f"{_item(second['id'])} textarea[name=note]", "fine")
    page.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Approve"
    page.press("Enter")
    page.wait_for(f"!document.querySelector('{_item(second['id'])}')")

    # And she rejects the hostile one; a reject needs a note
    page.click(f"{_item(third['id'])} button.reject", navigates=False)
    assert page.text(f"{_item(third['id'])} .field-error") == "Write a note saying why: the agent is told it."
    page.type_into(f"{_item(third['id'])} textarea[name=note]", "not a real customer")
    page.click(f"{_item(third['id'])} button.reject", navigates=False)
    page.wait_for(f"!document.querySelector('{_item(third['id'])}')")

    # Then the runs finish: the approved calls ran once, the rejected one never
    for run in (refund, invoice, hostile):
        _wait_completed(server, run)
    assert sorted(name for name, _ in EXECUTIONS) == ["adjust_invoice", "refund_payment"]
    assert ("refund_payment", {"customer": "acme", "amount": 1500, "reason": "late delivery"}) in EXECUTIONS
    # And each decision is on its record, by fiona, with the note and the digest she was shown
    _, decided = _request(server, "GET", f"/approvals/{first['id']}", "fiona", groups=("finance",))
    assert decided["status"] == "approved" and decided["resolved_by"] == "fiona"
    assert decided["resolution_data"]["note"] == "ok per the handbook"
    assert decided["resolution_data"]["args_digest"] == first["args_digest"]
    _, refused = _request(server, "GET", f"/approvals/{third['id']}", "fiona", groups=("finance",))
    assert refused["status"] == "rejected" and refused["resolution_data"]["note"] == "not a real customer"

    # And the inbox is empty
    page.wait_for("document.querySelector('#items li.empty')")
    assert page.evaluate("document.title") == "Inbox · Signoff"
    assert page.text("#summary") == "Nothing waits for your decision."
    assert page.dialogs == [] and page.exceptions == []
    for name in ("inbox-desktop.png", "inbox-phone.png"):
        data = (shots / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(data) < 400_000, name
    page.close()


def test_an_opened_item_shows_the_conversation_and_what_the_agent_read(server, browser, shots):
    # Given a refund the agent asked for after reading the handbook
    _add_handbook(server)
    refund = _refund_run(server)
    record = _pending(server)[refund["run_id"]]
    status, _ = _request(server, "GET", f"/approvals/{record['id']}/context", "fiona", groups=("finance",))
    if status == 404:
        pytest.skip("this backend has no GET /approvals/{id}/context yet (main adds it)")
    page = browser.new_page()
    page.set_viewport(1280, 800)
    _sign_in(page, server, "fiona", "finance")

    # When she opens the item's conversation
    item = _item(record["id"])
    page.click(f"{item} details.context > summary", navigates=False)
    page.wait_for(f"document.querySelector('{item} .references')")
    page.click(f"{item} details.conversation-box > summary", navigates=False)

    # Then she sees what was asked, the calls the agent made, and the passages it read
    roles = _texts(page, f"{item} .conversation .msg > .role")
    assert roles[0] == "User" and "Agent" in roles
    assert "search_knowledge_base" in page.text(f"{item} .conversation")
    assert "Refund policy" in page.text(f"{item} .references")
    assert "30 days" in page.text(f"{item} .references")
    page.screenshot(shots / "inbox-item.png", selector=item)
    assert page.dialogs == [] and page.exceptions == []
    page.close()


def test_an_editable_call_is_approved_with_the_changed_arguments(server, browser):
    # Given a paused invoice correction whose arguments the approver may change
    invoice = _start(server, "invoicing", 'call adjust_invoice {"invoice": "INV-7", "amount": 9900}')
    record = _pending(server)[invoice["run_id"]]
    if not record.get("editable"):
        pytest.skip("this backend does not mark calls editable yet (main's @tool(editable=True))")
    page = browser.new_page()
    _sign_in(page, server, "fiona", "finance")
    item = _item(record["id"])

    # When she edits the amount, first with a typo, then right, and approves
    page.click(f"{item} button.quiet", navigates=False)  # "Edit arguments"
    page.wait_for(f"document.querySelector('{item} textarea[name=amount]')")
    page.evaluate(f"document.querySelector('{item} textarea[name=amount]').value = ''")
    page.type_into(f"{item} textarea[name=amount]", "95OO")
    page.click(f"{item} button.approve", navigates=False)
    assert page.text(f"{item} .field-error:not([hidden])") == "This is not valid JSON."
    page.evaluate(f"document.querySelector('{item} textarea[name=amount]').value = ''")
    page.type_into(f"{item} textarea[name=amount]", "9500")
    page.click(f"{item} button.approve", navigates=False)
    page.wait_for(f"!document.querySelector('{item}')")

    # Then the call ran with her arguments
    _wait_completed(server, invoice)
    assert EXECUTIONS == [("adjust_invoice", {"invoice": "INV-7", "amount": 9500, "memo": ""})]
    assert page.dialogs == [] and page.exceptions == []
    page.close()


def test_the_requester_fills_in_user_input_and_answers_questions(server, browser):
    # Given two of dana's runs waiting on her: a ticket's fields, and the agent's questions
    ticket = _start(server, "helpdesk", 'call file_ticket {"title": "Disk full"}')
    questions = [
        {
            "question": "Which floor?",
            "header": "Floor",
            "options": [{"label": "First", "description": "By the lifts"}, {"label": "Second"}],
        },
        {
            "question": "Which extras?",
            "header": "Extras",
            "options": [{"label": "Coffee"}, {"label": "Screen"}, {"label": "Parking"}],
            "multi_select": True,
        },
    ]
    asked = _start(server, "concierge", "call ask_user " + json.dumps({"questions": questions}))
    status, records = _request(server, "GET", "/approvals?status=pending&decidable=true", "dana")
    assert status == 200, records
    by_run = {record["run_id"]: record for record in records["data"]}
    page = browser.new_page()
    _sign_in(page, server, "dana")
    page.wait_for("document.querySelectorAll('li.item').length === 2")

    # When she sets the ticket's priority and due date and submits
    item = _item(by_run[ticket["run_id"]]["id"])
    fields = page.evaluate(
        f"[...document.querySelectorAll('{item} .decide .field label')].map(e => e.textContent)"
    )
    assert fields == ["title", "priority", "due_in_days", "Note (needed to reject)"]
    assert page.evaluate(f"document.querySelector('{item} .decide .field input').value") == "Disk full"
    page.type_into(f"{item} .decide .field:nth-of-type(2) input", "high")
    page.evaluate(f"document.querySelector('{item} input[type=number]').value = '2'")
    page.click(f"{item} button.approve", navigates=False)
    page.wait_for(f"!document.querySelector('{item}')")

    # And answers the questions
    item = _item(by_run[asked["run_id"]]["id"])
    for label in ("Second", "Coffee", "Parking"):
        page.click(f"{item} input[value='{label}']", navigates=False)
    page.click(f"{item} button.approve", navigates=False)
    page.wait_for(f"!document.querySelector('{item}')")

    # Then both runs finish with what she gave
    _wait_completed(server, ticket)
    done = _wait_completed(server, asked)
    assert ("file_ticket", {"title": "Disk full", "priority": "high", "due_in_days": 2}) in EXECUTIONS
    [answered] = [tool for tool in done["tools"] if tool["tool_name"] == "ask_user"]
    assert "Second" in json.dumps(answered) and "Parking" in json.dumps(answered)
    assert page.dialogs == [] and page.exceptions == []
    page.close()
