"""The inbox against the approvals API's contract, in headless Chromium, with the API's answers scripted.

The page and its files come from the dev server (no authentication); every ``approvals`` request the
page makes is answered by the test (CDP ``Fetch``), so that each kind of decision, each answer the API
may give (200, 202, 409, 410, 422) and the context of a call are shown exactly as the contract says,
whatever the backend of this checkout serves yet. The test reads back the requests the page sent.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from signoff_dev.devserver import DevServer
from tests.support.cdp import CHROMIUM, Browser, Page
from tests.support.devserver import local_server

ROOT = Path(__file__).resolve().parents[2]
NOW = int(time.time())

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (make setup installs it with apt)"
)


def _record(approval_id: str, tool: str, args: dict, **fields: Any) -> dict:
    return {
        "id": approval_id,
        "run_id": f"run-{approval_id}",
        "session_id": "s-1",
        "status": "pending",
        "pause_type": "confirmation",
        "tool_name": tool,
        "tool_args": args,
        "expires_at": NOW + 7200,
        "agent_id": "billing",
        "source_name": "Billing",
        "user_id": "dana",
        "created_at": NOW - 300,
        "args_digest": f"digest-{approval_id}",
        "request": "Refund acme for the late delivery",
        "editable": False,
        "user_input_schema": None,
        "user_feedback_schema": None,
        **fields,
    }


REFUND = _record(
    "a1", "refund_payment", {"customer": "acme", "amount": 1500, "reason": "late delivery"}, editable=True
)
TICKET = _record(
    "a2",
    "file_ticket",
    {"title": "Printer on fire", "priority": None, "due_in_days": 5},
    pause_type="user_input",
    created_at=NOW - 200,
    user_input_schema=[
        {"name": "title", "field_type": "str", "description": "What is wrong", "value": "Printer on fire"},
        {"name": "due_in_days", "field_type": "int", "description": "Days until due", "value": 5},
        {"name": "urgent", "field_type": "bool", "description": "Page someone", "value": False},
        {"name": "labels", "field_type": "list", "description": "Labels", "value": ["office"]},
    ],
)
TRIP = _record(
    "a3",
    "ask_user",
    {"questions": "..."},
    pause_type="user_input",
    created_at=NOW - 100,
    user_feedback_schema=[
        {
            "question": "Which city?",
            "header": "City",
            "multi_select": False,
            "options": [
                {"label": "Lisbon", "description": "Sunny"},
                {"label": "Oslo", "description": "Cold"},
            ],
        },
        {
            "question": "Which extras?",
            "header": "Extras",
            "multi_select": True,
            "options": [{"label": "Breakfast"}, {"label": "Late checkout"}, {"label": "Parking"}],
        },
    ],
)
WIRE = _record("a4", "wire_money", {"amount": 250000}, created_at=NOW - 50)
PURGE = _record("a5", "purge_cache", {"region": "eu"}, created_at=NOW - 40)
CONTEXT = {
    "approval_id": "a1",
    "run_id": "run-a1",
    "request": "Refund acme for the late delivery",
    "history": [
        {
            "run_id": "run-0",
            "input": "What is our refund window?",
            "content": "30 days.",
            "created_at": NOW - 900,
        }
    ],
    "messages": [
        {"role": "user", "content": "Refund acme for the late delivery"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "tool_call_id": "c1",
                    "tool_name": "search_knowledge_base",
                    "tool_args": {"query": "refund window"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "[1] Refund policy > Refund window ..."},
        {
            "role": "assistant",
            "content": "Within the window; refunding.",
            "tool_calls": [
                {
                    "tool_call_id": "c2",
                    "tool_name": "refund_payment",
                    "tool_args": {"customer": "acme", "amount": 1500},
                }
            ],
        },
    ],
    "references": [
        {
            "kb": "handbook",
            "document_id": "refunds",
            "chunk_index": 0,
            "title": "Refund policy",
            "score": 0.912,
            "excerpt": "Customers can ask for a refund within 30 days of delivery.",
        },
        {"title": "Gift cards", "score": 0.41, "content": "Gift cards are never refunded."},
    ],
}


class FakeApprovals:
    """The approvals API as the contract describes it; ``replies`` script the next resolve answers."""

    def __init__(self, records: list[dict]) -> None:
        self.records = {record["id"]: dict(record) for record in records}
        self.sent: list[tuple[str, str, Any]] = []
        self.replies: dict[str, list[tuple[int, Any]]] = {}

    def pending(self) -> list[dict]:
        rows = [r for r in self.records.values() if r["status"] == "pending"]
        return sorted(rows, key=lambda r: -r["created_at"])

    def __call__(self, method: str, url: str, body: str | None) -> tuple[int, Any] | None:
        parts = urlsplit(url)
        path = parts.path
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        self.sent.append(
            (method, f"{path}?{parts.query}" if parts.query else path, json.loads(body) if body else None)
        )
        if path == "/approvals/count":
            pending = self.pending()
            return 200, {"count": len(pending), "latest_at": pending[0]["created_at"] if pending else None}
        if path == "/approvals":
            rows = self.pending()
            return 200, {
                "data": rows,
                "meta": {
                    "page": int(query.get("page", 1)),
                    "limit": 50,
                    "total_pages": 1,
                    "total_count": len(rows),
                },
            }
        segments = path.strip("/").split("/")
        approval_id = segments[1]
        if segments[2:] == ["context"]:
            return (200, CONTEXT) if approval_id == "a1" else (404, {"detail": "Approval not found"})
        if segments[2:] == ["resolve"] and method == "POST":
            scripted = self.replies.get(approval_id)
            if scripted:
                return scripted.pop(0)
            decision = json.loads(body)
            self.records[approval_id].update(status=decision["status"], resolved_by="fiona")
            return 200, self.records[approval_id]
        if segments[2:] == []:
            return 200, self.records[approval_id]
        return 404, {"detail": "Not Found"}

    def resolves(self) -> list[tuple[str, Any]]:
        return [(path.split("/")[2], body) for method, path, body in self.sent if method == "POST"]


@pytest.fixture
def server(db, model, monkeypatch):
    monkeypatch.setenv("SIGNOFF_AGENTS_MODULE", "catalog")
    with local_server(db, model.base_url) as dev:
        yield dev


@pytest.fixture
def page(server):
    with Browser() as browser:
        page = browser.new_page()
        page.set_viewport(1280, 900)
        yield page
        page.close()


def _open(page: Page, server: DevServer, api: FakeApprovals) -> None:
    page.route("*/approvals*", api)
    page.navigate(f"{server.base_url}/inbox")
    page.wait_for(f"document.querySelectorAll('li.item').length === {len(api.pending())}")


def _until(page: Page, condition: Any, timeout_s: float = 10) -> None:
    """Wait for ``condition()``, letting the page's requests through meanwhile."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        page.evaluate("1")  # each round trip answers the requests that arrived
        time.sleep(0.05)


def _item(approval_id: str) -> str:
    return f'li.item[data-approval-id="{approval_id}"]'


def test_the_list_asks_for_what_the_caller_may_decide_and_says_there_is_no_sign_in(server, page):
    api = FakeApprovals([REFUND, TICKET, TRIP])

    _open(page, server, api)

    method, path, _ = api.sent[0]
    assert method == "GET" and path.startswith("/approvals?")
    assert parse_qs(urlsplit(path).query) == {
        "status": ["pending"],
        "decidable": ["true"],
        "limit": ["50"],
        "page": ["1"],
    }
    _until(page, lambda: ("GET", "/approvals/count?decidable=true", None) in api.sent)
    assert page.evaluate("document.title") == "(3) Inbox · Signoff"
    assert page.text("#account") == "No sign-in (API without authentication)"
    assert "no authentication" in page.text("p.warning")
    assert "What they asked" in page.text(_item("a1"))
    assert "Refund acme for the late delivery" in page.text(_item("a1"))
    assert page.text(f"{_item('a1')} .meta dd:nth-of-type(3)").startswith("in 2 hours")
    # Filters go into the query
    page.click("details.filter-box > summary", navigates=False)
    page.type_into("input[name=tool_name]", "refund_payment")
    page.press("Enter")
    page.wait_for("document.querySelector('.filter-box summary').textContent.startsWith('Filtered')")
    _until(page, lambda: any("tool_name=refund_payment" in path for _, path, _ in api.sent))


def test_an_opened_item_shows_the_conversation_and_what_the_agent_read(server, page, tmp_path):
    api = FakeApprovals([REFUND, WIRE])
    _open(page, server, api)
    item = _item("a1")

    page.click(f"{item} details.context > summary", navigates=False)
    page.wait_for(f"document.querySelector('{item} .references li')")
    page.click(f"{item} details.conversation-box > summary", navigates=False)

    assert ("GET", "/approvals/a1/context", None) in api.sent
    roles = page.evaluate(
        f"[...document.querySelectorAll('{item} .conversation .msg > .role')].map(e => e.textContent)"
    )
    assert roles == ["User", "Agent", "Tool result: search_knowledge_base", "Agent"]
    assert [
        t for t in page.evaluate(f"[...document.querySelectorAll('{item} .refs h4')].map(e => e.textContent)")
    ] == [
        "Refund policy",
        "Gift cards",
    ]
    assert "Customers can ask for a refund within 30 days" in page.text(f"{item} .refs")
    assert "0.912" in page.text(f"{item} .refs")
    assert "Earlier in this session (1)" in page.text(f"{item} .context-body")
    assert page.screenshot(tmp_path / "item.png", selector=item).stat().st_size > 5_000
    # A call whose context cannot be loaded says so
    page.click(f"{_item('a4')} details.context > summary", navigates=False)
    page.wait_for(f"document.querySelector('{_item('a4')} .context-body .error')")
    assert "Approval not found" in page.text(f"{_item('a4')} .context-body")


def test_user_input_is_sent_typed(server, page):
    api = FakeApprovals([TICKET])
    _open(page, server, api)
    item = _item("a2")

    # A value that is no whole number is refused before anything is sent
    page.evaluate(f"document.querySelector('{item} input[type=number]').value = '2.5'")
    page.click(f"{item} button.approve", navigates=False)
    assert page.text(f"{item} .field-error:not([hidden])") == "Enter a whole number."
    assert api.resolves() == []

    page.evaluate(f"document.querySelector('{item} input[type=number]').value = '3'")
    page.click(f"{item} input[type=checkbox]:not([id^=select])", navigates=False)
    page.click(f"{item} button.approve", navigates=False)
    page.wait_for(f"!document.querySelector('{item}')")

    assert api.resolves() == [
        (
            "a2",
            {
                "status": "approved",
                "resolution_data": {
                    "args_digest": "digest-a2",
                    "user_input": {
                        "title": "Printer on fire",
                        "due_in_days": 3,
                        "urgent": True,
                        "labels": ["office"],
                    },
                },
            },
        )
    ]


def test_answers_are_sent_per_question(server, page):
    api = FakeApprovals([TRIP])
    _open(page, server, api)
    item = _item("a3")

    page.click(f"{item} button.approve", navigates=False)
    assert page.evaluate(f"document.querySelectorAll('{item} .field-error:not([hidden])').length") == 2

    for label in ("Oslo", "Breakfast", "Parking"):
        page.click(f"{item} input[value='{label}']", navigates=False)
    page.click(f"{item} button.approve", navigates=False)
    page.wait_for(f"!document.querySelector('{item}')")

    assert api.resolves() == [
        (
            "a3",
            {
                "status": "approved",
                "resolution_data": {
                    "args_digest": "digest-a3",
                    "answers": {"Which city?": ["Oslo"], "Which extras?": ["Breakfast", "Parking"]},
                },
            },
        )
    ]


def test_edited_arguments_are_sent_whole_and_a_422_shows_next_to_its_field(server, page):
    api = FakeApprovals([REFUND])
    api.replies["a1"] = [
        (
            422,
            {
                "detail": [
                    {
                        "loc": ["body", "resolution_data", "tool_args", "amount"],
                        "msg": "Input should be a valid integer",
                        "type": "int_parsing",
                    }
                ]
            },
        )
    ]
    _open(page, server, api)
    item = _item("a1")

    page.click(f"{item} button.quiet", navigates=False)  # Edit arguments
    page.evaluate(f"document.querySelector('{item} textarea[name=amount]').value = '\"lots\"'")
    page.click(f"{item} button.approve", navigates=False)
    page.wait_for(f"document.querySelector('{item} .field-error:not([hidden])')")
    assert page.text(f"{item} .field-error:not([hidden])") == "Input should be a valid integer"
    assert (
        page.evaluate(f"document.querySelector('{item} textarea[name=amount]').getAttribute('aria-invalid')")
        == "true"
    )

    page.evaluate(f"document.querySelector('{item} textarea[name=amount]').value = '1200'")
    page.click(f"{item} button.approve", navigates=False)
    page.wait_for(f"!document.querySelector('{item}')")

    edited = {"customer": "acme", "amount": 1200, "reason": "late delivery"}
    assert [body["resolution_data"]["tool_args"] for _, body in api.resolves()] == [
        {**edited, "amount": "lots"},
        edited,
    ]
    assert all(body["resolution_data"]["args_digest"] == "digest-a1" for _, body in api.resolves())


def test_a_stale_call_is_reloaded_and_a_busy_run_keeps_the_decision(server, page):
    api = FakeApprovals([REFUND, WIRE])
    api.replies["a1"] = [(409, {"detail": "The call's arguments changed since it was shown"})]
    api.replies["a4"] = [(202, {**WIRE, "detail": "The run is executing another action"})]
    _open(page, server, api)

    # A 409: the message shows and the item is fetched again, with its new arguments
    api.records["a1"].update(tool_args={"customer": "acme", "amount": 9999}, args_digest="digest-a1-v2")
    page.click(f"{_item('a1')} button.approve", navigates=False)
    page.wait_for(f"document.querySelector('{_item('a1')} .message.warning')")
    assert "arguments changed" in page.text(f"{_item('a1')} .message")
    assert "9999" in page.text(f"{_item('a1')} .arg-list")
    assert ("GET", "/approvals/a1", None) in api.sent

    # A 202: the decision is kept; the item says so and offers no buttons
    page.click(f"{_item('a4')} button.approve", navigates=False)
    page.wait_for(
        f"document.querySelector('{_item('a4')} .message').textContent.includes('decision is kept')"
    )
    assert page.evaluate(f"document.querySelectorAll('{_item('a4')} button.approve').length") == 0


def test_several_at_once_one_request_each_with_its_own_digest(server, page):
    api = FakeApprovals([REFUND, WIRE, PURGE])
    api.replies["a5"] = [(410, {"detail": "The call expired"})]
    api.records["a5"]["status"] = "pending"
    _open(page, server, api)

    page.click(f"{_item('a4')} .item-head input[type=checkbox]", navigates=False)
    page.click(f"{_item('a5')} .item-head input[type=checkbox]", navigates=False)
    assert page.text(".selected-count") == "2 selected"
    page.click(".bulk button.reject", navigates=False)
    assert page.text(".bulk .error") == "Write a note saying why: the agents are told it."
    assert api.resolves() == []
    page.type_into(".bulk input[type=text]", "not this week")
    api.records["a5"]["status"] = "expired"  # what the reload after the 410 finds
    page.click(".bulk button.reject", navigates=False)
    page.wait_for(
        "document.querySelector('#log li') && document.querySelector('#log li').textContent.includes('of 2')"
    )

    assert api.resolves() == [  # in the list's order, newest first
        (
            "a5",
            {"status": "rejected", "resolution_data": {"args_digest": "digest-a5", "note": "not this week"}},
        ),
        (
            "a4",
            {"status": "rejected", "resolution_data": {"args_digest": "digest-a4", "note": "not this week"}},
        ),
    ]
    report = page.evaluate("[...document.querySelectorAll('#log li')].map(e => e.textContent)")
    assert any("Rejected 1 of 2." in line and "The call expired" in line for line in report)
    page.wait_for(f"!document.querySelector('{_item('a5')}') && !document.querySelector('{_item('a4')}')")
    assert page.evaluate("document.querySelectorAll('li.item').length") == 1
    assert page.dialogs == [] and page.exceptions == []


def test_a_call_decided_elsewhere_while_another_arrives_still_refreshes_the_list(server, page):
    api = FakeApprovals([REFUND, WIRE])
    _open(page, server, api)
    polls = lambda: sum(1 for _, path, _ in api.sent if path.startswith("/approvals/count"))  # noqa: E731
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    _until(page, lambda: polls() >= 1)

    # When a1 is decided in Slack and a new call arrives meanwhile: the count stays 2
    api.records["a1"]["status"] = "approved"
    newer = {**TRIP, "id": "a9", "created_at": max(r["created_at"] for r in api.records.values()) + 60}
    api.records["a9"] = newer
    assert len(api.pending()) == 2
    seen = polls()
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    _until(page, lambda: polls() > seen)

    # Then the page notices all the same (the newest call changed) and shows the list as it is now
    page.wait_for(f"document.querySelector('{_item('a9')}') !== null")
    assert page.evaluate(f"document.querySelector('{_item('a1')}')") is None
