"""What the approver's inbox reads and sends through the approvals API: only the records the caller
may decide, filtered and counted; the context of a call (the request, the conversation, what the
agent read); and approving with changed arguments, bound to the digest the approver saw."""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.support.agents import EXECUTIONS

ALICE = {"sub": "alice"}
BOB = {"sub": "bob"}
DAVE_FINANCE = {"sub": "dave", "cognito:groups": ["finance"]}
ADA_ADMIN = {"sub": "ada", "cognito:groups": ["admins"]}
PAY = 'call pay_vendor {"vendor": "acme", "amount": 500}'


@pytest.fixture
def admins(runtime_env, monkeypatch):
    from tests.conftest import _reset_runtime

    monkeypatch.setenv("SIGNOFF_APPROVAL_ADMINS", "admins")
    _reset_runtime()


def _start(api, message: str, claims=ALICE, session_id: str = "s-pay", agent_id: str = "payouts") -> dict:
    run = api.call(
        "POST",
        "/agents/{agent_id}/runs",
        {"agent_id": agent_id},
        fields={"message": message, "session_id": session_id},
        claims=claims,
    ).json()
    assert run["status"] == "PAUSED", run
    return run


def _inbox(api, claims, **query) -> dict:
    response = api.call("GET", "/approvals", {}, claims=claims, query={"decidable": "true", **query})
    assert response.status == 200, response
    return response.json()


def _count(api, claims, **query) -> int:
    response = api.call("GET", "/approvals/count", {}, claims=claims, query={"decidable": "true", **query})
    assert response.status == 200, response
    return response.json()["count"]


def _resolve(api, approval_id: str, claims, status="approved", **data):
    return api.call(
        "POST",
        "/approvals/{approval_id}/resolve",
        {"approval_id": approval_id},
        fields={"status": status, "resolution_data": data},
        form="json",
        claims=claims,
    )


def _record(api, approval_id: str, claims) -> dict:
    return api.call("GET", "/approvals/{approval_id}", {"approval_id": approval_id}, claims=claims).json()


def _events(db: str, run_id: str) -> list[tuple[str, str, dict]]:
    with psycopg.connect(db) as conn:
        return conn.execute(
            "SELECT kind, actor, detail FROM run_events WHERE run_id = %s AND kind LIKE 'decision%%'"
            " ORDER BY event_id",
            (run_id,),
        ).fetchall()


def test_the_inbox_lists_only_what_each_person_may_decide(api, aws, admins):
    # Given alice's three calls: pay_vendor (required; the admins resolve it), wire_out (required;
    # finance resolves it) and archive_report (she decides it herself)
    message = f'{PAY} and call wire_out {{"amount": 70}} and call archive_report {{"name": "q3"}}'
    run = _start(api, message)
    ids = {t["tool_name"]: t["approval_id"] for t in run["tools"]}

    def names(claims, **query) -> list[str]:
        return sorted(a["tool_name"] for a in _inbox(api, claims, **query)["data"])

    # Then each person's inbox holds what they may decide, and nothing they may only see
    assert names(ALICE) == ["archive_report"]
    assert names(ADA_ADMIN) == ["pay_vendor"]
    assert names(DAVE_FINANCE) == ["wire_out"]
    assert names(BOB) == []
    # ... the count the inbox polls agrees, filters included
    assert [_count(api, who) for who in (ALICE, ADA_ADMIN, DAVE_FINANCE, BOB)] == [1, 1, 1, 0]
    assert _count(api, ADA_ADMIN, tool_name="wire_out") == 0
    # ... with when the newest of them paused (the page refreshes when either changes)
    latest = api.call("GET", "/approvals/count", {}, claims=ADA_ADMIN, query={"decidable": "true"}).json()
    assert abs(latest["latest_at"] - _record(api, ids["pay_vendor"], ADA_ADMIN)["created_at"]) < 1
    assert api.call("GET", "/approvals/count", {}, claims=BOB).json() == {"count": 0, "latest_at": None}
    assert names(ADA_ADMIN, tool_name="pay_vendor", agent_id="payouts", user_id="alice") == ["pay_vendor"]
    assert names(ADA_ADMIN, user_id="bob") == []
    # ... while without the filter alice still sees all three records of her run, each saying
    # whether she may decide it
    seen = {a["tool_name"]: a for a in api.call("GET", "/approvals", {}, claims=ALICE).json()["data"]}
    assert {name: a["decidable"] for name, a in seen.items()} == {
        "pay_vendor": False,
        "wire_out": False,
        "archive_report": True,
    }
    # And each record carries what the inbox shows at a glance
    [pay] = _inbox(api, ADA_ADMIN)["data"]
    assert pay["request"] == message and pay["source_name"] == "Payouts" and pay["user_id"] == "alice"
    assert (pay["editable"], pay["decidable"], len(pay["args_digest"])) == (True, True, 64)
    assert _record(api, ids["wire_out"], DAVE_FINANCE)["editable"] is False  # wire_out is not editable
    assert _record(api, ids["pay_vendor"], ALICE)["editable"] is False  # never the requester


def test_an_item_opened_shows_the_request_the_conversation_and_what_the_agent_read(api, aws, model):
    # Given an earlier run in the session, then a run that searched the handbook and asks to refund
    from tests.e2e.test_knowledge_api import REFUNDS, post

    post(api, text=REFUNDS, document_id="refunds")
    api.start("Hello, I have a question", agent_id="support", session_id="s-ctx")
    message = (
        'call search_knowledge_base {"query": "refund window days", "limit": 2} '
        'then call issue_refund {"order_id": "o-17", "amount": 1500}'
    )
    paused = api.start(message, agent_id="support", session_id="s-ctx").json()
    [refund] = [t for t in paused["tools"] if t["tool_name"] == "issue_refund"]

    # When the item is opened
    context = api.call(
        "GET", "/approvals/{approval_id}/context", {"approval_id": refund["approval_id"]}
    ).json()

    # Then it holds the request, the session so far, the conversation and the passages read
    assert context["request"] == message and context["run_id"] == paused["run_id"]
    assert [h["input"] for h in context["history"]] == ["Hello, I have a question"]
    roles = [m["role"] for m in context["messages"]]
    assert roles[0] == "user" and "assistant" in roles and "tool" in roles
    proposed = [c for m in context["messages"] for c in m.get("tool_calls", [])]
    assert proposed[0]["tool_name"] == "search_knowledge_base"
    assert proposed[0]["tool_args"] == {"query": "refund window days", "limit": 2}
    assert [r["document_id"] for r in context["references"]] == ["refunds", "refunds"]
    assert context["references"] == paused["references"]


def test_the_context_is_seen_only_by_who_sees_the_record(api, aws, admins):
    run = _start(api, 'call wire_out {"amount": 70}')
    approval_id = run["tools"][0]["approval_id"]

    def context(claims):
        return api.call(
            "GET", "/approvals/{approval_id}/context", {"approval_id": approval_id}, claims=claims
        )

    assert context(DAVE_FINANCE).status == 200 and context(ALICE).status == 200
    assert context(BOB).status == 404 and context(BOB).json() == {"detail": "Approval not found"}


def test_an_admin_approves_with_changes_and_the_run_executes_the_edited_arguments(
    api, aws, admins, db, model
):
    # Given alice's pay_vendor call, awaiting an admin
    run = _start(api, PAY)
    call = run["tools"][0]
    approval_id = call["approval_id"]
    shown = _record(api, approval_id, ADA_ADMIN)["args_digest"]

    # When the admin approves it with a lower amount, bound to the digest shown
    resolved = _resolve(
        api,
        approval_id,
        ADA_ADMIN,
        args_digest=shown,
        tool_args={"vendor": "acme", "amount": 400},
        note="cap",
    )

    # Then the record shows the edited arguments, and the run executes those, once
    assert resolved.status == 200, resolved
    body = resolved.json()
    assert (body["status"], body["resolved_by"], body["tool_args"]) == (
        "approved",
        "ada",
        {"vendor": "acme", "amount": 400},
    )
    assert body["args_digest"] != shown
    aws.run_worker()
    done = api.get(run["run_id"], agent_id="payouts").json()
    assert done["status"] == "COMPLETED", done
    assert EXECUTIONS == [("pay_vendor", {"vendor": "acme", "amount": 400})]
    assert done["tools"][0]["tool_args"] == {"vendor": "acme", "amount": 400}
    # And the model was told the arguments were changed, with the ones it ran with
    told = [m for m in model.requests[-1]["messages"] if m["role"] == "tool"][-1]["content"]
    assert told.startswith("An approver changed this call's arguments before it ran.")
    assert '"amount": 400' in told and told.endswith("Paid 400 to acme")
    # And the audit trail keeps both digests and who changed them
    [(kind, actor, detail)] = _events(db, run["run_id"])
    assert (kind, actor, detail["edited_by"]) == ("decision", "ada", "ada")
    assert detail["proposed_args"] == {"vendor": "acme", "amount": 500}
    assert detail["proposed_args_digest"] == shown and detail["args_digest"] == body["args_digest"]


@pytest.mark.parametrize(
    ("claims", "data", "status", "detail"),
    [
        # a stale page: the digest it shows is not the call's any more
        (ADA_ADMIN, {"args_digest": "0" * 64, "tool_args": {"vendor": "acme", "amount": 1}}, 409, None),
        # an edit not bound to any digest
        (ADA_ADMIN, {"tool_args": {"vendor": "acme", "amount": 1}}, 400, None),
        # arguments that do not fit the signature: a wrong type, an unknown argument, a missing one
        (ADA_ADMIN, {"args_digest": "SHOWN", "tool_args": {"vendor": "acme", "amount": "lots"}}, 422, None),
        (
            ADA_ADMIN,
            {"args_digest": "SHOWN", "tool_args": {"vendor": "acme", "amount": 1, "to": "x"}},
            422,
            None,
        ),
        (ADA_ADMIN, {"args_digest": "SHOWN", "tool_args": {"amount": 1}}, 422, None),
        (ADA_ADMIN, {"args_digest": "SHOWN", "tool_args": ["vendor"]}, 422, None),
        # the requester may never rewrite her own call
        (
            ALICE,
            {"args_digest": "SHOWN", "tool_args": {"vendor": "acme", "amount": 1}},
            403,
            "the requester may not change the arguments of their own call of pay_vendor",
        ),
        # nor anyone the API cannot name
        (
            None,
            {"args_digest": "SHOWN", "tool_args": {"vendor": "acme", "amount": 1}},
            403,
            "changing the arguments of pay_vendor needs an authenticated approver",
        ),
    ],
)
def test_a_refused_edit_changes_nothing(api, aws, admins, dump, claims, data, status, detail):
    run = _start(api, PAY)
    call = run["tools"][0]
    if data.get("args_digest") == "SHOWN":
        data = {**data, "args_digest": _record(api, call["approval_id"], ADA_ADMIN)["args_digest"]}
    before = dump()

    refused = _resolve(api, call["approval_id"], claims, **data)

    assert refused.status == status, refused
    if detail:
        assert refused.json() == {"detail": detail}
    if status == 422:
        assert all(e["loc"][:3] == ["body", "resolution_data", "tool_args"] for e in refused.json()["detail"])
    after = dump()
    assert after["tool_calls"] == before["tool_calls"] and after["runs"] == before["runs"]
    assert _record(api, call["approval_id"], ADA_ADMIN)["status"] == "pending"
    assert EXECUTIONS == []


def test_only_an_editable_tool_is_edited_and_only_with_an_approval(api, aws, admins):
    run = _start(api, 'call wire_out {"amount": 70}', session_id="s-wire")
    call = run["tools"][0]
    digest = _record(api, call["approval_id"], DAVE_FINANCE)["args_digest"]

    not_editable = _resolve(
        api, call["approval_id"], DAVE_FINANCE, args_digest=digest, tool_args={"amount": 1}
    )
    assert (not_editable.status, not_editable.json()) == (
        403,
        {"detail": "wire_out does not allow approvers to change its arguments"},
    )
    pay = _start(api, PAY, session_id="s-pay2")["tools"][0]
    pay["args_digest"] = _record(api, pay["approval_id"], ADA_ADMIN)["args_digest"]
    with_reject = _resolve(
        api,
        pay["approval_id"],
        ADA_ADMIN,
        "rejected",
        args_digest=pay["args_digest"],
        tool_args={"vendor": "x", "amount": 1},
    )
    assert with_reject.status == 400
    # The same arguments as proposed are a plain approval
    same = _resolve(
        api,
        pay["approval_id"],
        ADA_ADMIN,
        args_digest=pay["args_digest"],
        tool_args={"amount": 500, "vendor": "acme"},
    )
    assert same.status == 200 and same.json()["args_digest"] == pay["args_digest"]
    assert EXECUTIONS == [] and _record(api, call["approval_id"], DAVE_FINANCE)["status"] == "pending"


def test_a_changed_echo_on_continue_stays_400_for_an_editable_tool(api, aws, admins):
    run = _start(api, 'call archive_report {"name": "q3"}', session_id="s-echo")
    call = run["tools"][0]
    echoed = {**call, "confirmed": True, "tool_args": {"name": "q4"}}
    response = api.call(
        "POST",
        "/agents/{agent_id}/runs/{run_id}/continue",
        {"agent_id": "payouts", "run_id": run["run_id"]},
        fields={"session_id": run["session_id"], "tools": json.dumps([echoed])},
        claims=ALICE,
    )
    assert response.status == 400
    assert EXECUTIONS == []


HOSTILE = '<img src=x onerror=alert(1)> <!channel> & "quotes"'


def _refund_with_reading(api, session: str) -> dict:
    from tests.e2e.test_knowledge_api import REFUNDS, post

    post(api, text=REFUNDS, document_id="refunds")
    message = (
        'call search_knowledge_base {"query": "refund window days", "limit": 2} '
        f'then call issue_refund {{"order_id": "o-17", "amount": 1500}} {HOSTILE}'
    )
    paused = api.start(message, agent_id="support", session_id=session).json()
    assert paused["status"] == "PAUSED", paused
    return paused


def test_the_link_page_shows_the_request_and_what_the_agent_read_escaped(api, aws):
    from urllib.parse import urlparse

    paused = _refund_with_reading(api, "s-link-ctx")
    [event] = [e for e in aws.events() if e["detail"]["run_id"] == paused["run_id"]]
    detail = event["detail"]
    # the notification itself carries the request and a summary of each passage
    assert detail["request"].endswith(HOSTILE)
    assert [r["title"] for r in detail["references"]] == [r["title"] for r in paused["references"]]
    token = urlparse(detail["tool_calls"][0]["approve_url"]).path.rsplit("/", 1)[1]

    page = api.call("GET", "/approve/{token}", {"token": token})

    assert page.status == 200
    assert "What the user asked" in page.text and "What the agent read" in page.text
    assert "Refund policy" in page.text and "within 30 days" in page.text
    # the model's and the user's text is shown as text, never as markup
    assert "<img" not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text


def test_the_slack_message_shows_the_request_and_references_without_mentions(api, aws, monkeypatch):
    from tests.conftest import _reset_runtime
    from tests.support.capture import CaptureServer

    with CaptureServer() as slack:
        monkeypatch.setenv("SIGNOFF_SLACK_WEBHOOK_URL", slack.url + "/incoming")
        _reset_runtime()
        _refund_with_reading(api, "s-slack-ctx")
        [posted] = slack.wait_for(1)

    texts = [
        block["text"]["text"] if block["type"] == "section" else block["elements"][0]["text"]
        for block in posted["blocks"]
        if block["type"] in ("section", "context")
    ]
    [request] = [t for t in texts if t.startswith("&gt; Request:")]
    assert "&lt;!channel&gt;" in request and "<!channel>" not in request and '&amp; "quotes"' in request
    [read] = [t for t in texts if t.startswith("What the agent read:")]
    assert "[1] Refund policy" in read


def test_two_admins_racing_an_edit_and_an_approval_have_one_winner(api, aws, admins, db):
    import threading

    # Given alice's editable pay_vendor call, and two admins deciding it at the same moment
    run = _start(api, PAY, session_id="s-race")
    approval_id = run["tools"][0]["approval_id"]
    shown = _record(api, approval_id, ADA_ADMIN)["args_digest"]
    ADA2 = {"sub": "ada2", "cognito:groups": ["admins"]}
    barrier = threading.Barrier(2)
    answers: dict[str, object] = {}

    def send(name, claims, data):
        barrier.wait()
        answers[name] = _resolve(api, approval_id, claims, **data)

    threads = [
        threading.Thread(
            target=send,
            args=("edit", ADA_ADMIN, {"args_digest": shown, "tool_args": {"vendor": "acme", "amount": 1}}),
        ),
        threading.Thread(target=send, args=("approve", ADA2, {"args_digest": shown})),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then exactly one decision holds and the other is told so; the call runs once, as decided
    statuses = sorted(answer.status for answer in answers.values())
    assert statuses == [200, 409], {k: (v.status, v.text) for k, v in answers.items()}
    winner = next(name for name, answer in answers.items() if answer.status == 200)
    aws.run_worker()
    ran_with = {"edit": {"vendor": "acme", "amount": 1}, "approve": {"vendor": "acme", "amount": 500}}[winner]
    assert list(EXECUTIONS) == [("pay_vendor", ran_with)]
    assert [kind for kind, _, _ in _events(db, run["run_id"])] == ["decision"]


def test_an_edit_sent_while_the_run_executes_is_kept_and_runs_with_the_edited_arguments(api, aws, admins, db):
    from tests.support.agents import WHILE_RUNNING

    # Given alice's archive_report (hers to confirm) and pay_vendor (the admins'), paused together
    run = _start(api, f'call archive_report {{"name": "q3"}} and {PAY}', session_id="s-kept-edit")
    archive, pay = run["tools"]
    shown = _record(api, pay["approval_id"], ADA_ADMIN)["args_digest"]
    answers = []
    # When the admin edits pay_vendor while archive_report is executing
    WHILE_RUNNING["archive_report"] = lambda: answers.append(
        _resolve(
            api, pay["approval_id"], ADA_ADMIN, args_digest=shown, tool_args={"vendor": "acme", "amount": 250}
        )
    )
    continued = api.call(
        "POST",
        "/agents/{agent_id}/runs/{run_id}/continue",
        {"agent_id": "payouts", "run_id": run["run_id"]},
        fields={
            "session_id": run["session_id"],
            "tools": json.dumps([{"tool_call_id": archive["tool_call_id"], "confirmed": True}]),
        },
        claims=ALICE,
    )

    # Then the edit is kept (202) and applied once the run is free, checked again: the call runs
    # once, with the edited arguments, and the audit names who changed them
    assert continued.status in (200, 202), continued
    [kept] = answers
    assert kept.status == 202 and "kept" in kept.json()["detail"]
    aws.run_worker()
    done = api.get(run["run_id"], agent_id="payouts").json()
    assert done["status"] == "COMPLETED", done
    assert list(EXECUTIONS) == [
        ("archive_report", {"name": "q3"}),
        ("pay_vendor", {"vendor": "acme", "amount": 250}),
    ]
    edits = [detail for kind, _, detail in _events(db, run["run_id"]) if detail.get("edited_by")]
    assert [(e["edited_by"], e["proposed_args"]["amount"]) for e in edits] == [("ada", 500)]
