"""Attacks on the handlers: other users' runs, spoofed identities, forged decisions, hostile input.

At handler level "authenticated" means JWT claims in ``requestContext.authorizer.jwt.claims`` (API
Gateway's authorizer verified the token before Lambda ran). Missing and bad tokens are answered 401
by API Gateway itself; here every request either carries claims or none at all (AuthMode=none).
Each refused request answers its documented status and leaves the database exactly as it was.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import pytest

from signoff.approvals import sign
from signoff.state import args_digest
from signoff_dev.apigw import FakeLambdaContext, http_api_event
from signoff_dev.handlers import invoke
from tests.conftest import WEBHOOK_SECRET
from tests.support.agents import EXECUTIONS
from tests.support.api import ROUTES, Response, encode, multipart

ALICE = {"sub": "alice"}
BOB = {"sub": "bob"}
MALLORY = {"sub": "mallory"}
DAVE_FINANCE = {"sub": "dave", "cognito:groups": ["finance"]}
ALICE_FINANCE = {"sub": "alice", "cognito:groups": ["finance"]}
CAROL = {"sub": "carol"}

RUNS = "/agents/{agent_id}/runs"
RUN = "/agents/{agent_id}/runs/{run_id}"
CONTINUE = RUN + "/continue"
CANCEL = RUN + "/cancel"
EVENTS = RUN + "/events"

WIRE = 'call wire_money {"amount": 5000}'
ROTATE = 'call rotate_key {"name": "deploy-key"}'

SPOOFED_HEADERS = {
    "x-user-id": "alice",
    "x-amzn-oidc-identity": "alice",
    "x-amzn-oidc-data": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.",
    "x-forwarded-user": "alice",
    "x-remote-user": "alice",
    "x-authenticated-userid": "alice",
    "x-cognito-groups": "finance",
    "authorization": "Bearer garbage.not-a.jwt",
}
FORGED_CONTEXT = {
    "authorizer": {"jwt": {"claims": {"sub": "alice", "cognito:groups": "[finance]"}, "scopes": None}}
}

# SQL and other hostile text. None contains a NUL byte: PostgreSQL text cannot hold one at all.
NASTY = [
    "'; DROP TABLE runs; --",
    '" OR 1=1 --',
    "x' OR '1'='1",
    "1); DELETE FROM sessions; --",
    "$$; TRUNCATE run_events CASCADE; $$",
    "Robert'); DROP TABLE sessions;--",
    "%27%3B%20DROP%20TABLE%20runs%3B--",
    "\\x00\\u0000",
    "ünïcødé ✓ 🚀 \u202egnp.exe Ω ́",
]
NASTY_IDS = ["drop", "or-1-1", "quote-or", "delete", "dollar", "bobby", "urlenc", "escaped-nul", "unicode"]
NUL = "nul\x00byte'; DROP TABLE runs; --"
SURROGATE = "lone \ud800 surrogate"  # valid in a JSON string ("\\ud800"), not encodable as UTF-8
# Text PostgreSQL cannot store, and how it arrives: a client error, never a 5xx.
UNSTORABLE = [(NUL, "multipart"), (NUL, "json"), (SURROGATE, "json")]
UNSTORABLE_IDS = ["nul-multipart", "nul-json", "lone-surrogate-json"]


# --------------------------------------------------------------------------------------------- helpers


def _start(
    api,
    message: str = "Delete 50 old records from the users table",
    *,
    agent_id: str = "data_manager",
    claims: dict | None = None,
    headers: dict | None = None,
    form: str = "multipart",
    **fields: Any,
):
    return api.call(
        "POST",
        RUNS,
        {"agent_id": agent_id},
        fields={"message": message, **fields},
        form=form,
        claims=claims,
        headers=headers,
    )


def _decisions(run: dict, *, confirmed: bool = True, note: str | None = None) -> list[dict]:
    decision: dict[str, Any] = {"tool_call_id": run["tools"][0]["tool_call_id"], "confirmed": confirmed}
    if note is not None:
        decision["confirmation_note"] = note
    return [decision]


def _continue(api, run: dict, tools: Any, *, claims=None, headers=None, form="multipart", **fields):
    body = {"session_id": run["session_id"], **fields}
    if tools is not None:
        body["tools"] = tools if isinstance(tools, str) else json.dumps(tools)
    return api.call(
        "POST",
        CONTINUE,
        {"agent_id": run["agent_id"], "run_id": run["run_id"]},
        fields=body,
        form=form,
        claims=claims,
        headers=headers,
    )


def _read(api, route: str, run: dict, *, claims=None, headers=None, **query: str):
    return api.call(
        "GET",
        route,
        {"agent_id": run["agent_id"], "run_id": run["run_id"]},
        query={"session_id": run["session_id"], **query},
        claims=claims,
        headers=headers,
    )


def _cancel(api, run: dict, *, claims=None, **fields: str):
    return api.call(
        "POST",
        CANCEL,
        {"agent_id": run["agent_id"], "run_id": run["run_id"]},
        fields={"session_id": run["session_id"], **fields},
        claims=claims,
    )


def _event_call(event: dict[str, Any]) -> Response:
    """One invocation with a hand-built event (for what ``Api.call`` cannot express)."""
    function = ROUTES[tuple(event["routeKey"].split(" ", 1))]
    return Response(invoke(function, event, FakeLambdaContext(function, timeout_ms=30_000)))


def _call_from(
    source_ip: str,
    method: str,
    route: str,
    params: dict[str, str],
    *,
    fields: dict[str, Any] | None = None,
    query: dict[str, str] | None = None,
    claims: dict | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A request whose API Gateway context names ``source_ip`` as the client."""
    from urllib.parse import urlencode

    all_headers = dict(headers or {})
    body = b""
    if fields is not None:
        body, all_headers["content-type"] = encode(fields, "multipart")
    return _event_call(
        http_api_event(
            method,
            route.format(**params),
            query=urlencode(query or {}),
            headers=all_headers,
            body=body,
            route_key=f"{method} {route}",
            path_parameters=params,
            source_ip=source_ip,
            authorizer_claims=claims,
        )
    )


def _assert_unchanged(dump, before, response, status: int, detail: str | None = None) -> Any:
    assert response.status == status, response
    assert dump() == before, "the database changed"
    body = response.json()
    if detail is not None:
        assert body["detail"] == detail
    return body["detail"]


def _assert_4xx_unchanged(dump, before, response) -> None:
    assert 400 <= response.status < 500, response
    assert "detail" in response.json()
    assert dump() == before, "the database changed"


def _assert_refused_and_recorded(dump, before, response, detail: str) -> tuple:
    """403 with ``detail``; one new ``decision_refused`` audit row and nothing else changed."""
    assert response.status == 403, response
    assert response.json() == {"detail": detail}
    after = dump()
    assert {k: v for k, v in after.items() if k != "run_events"} == {
        k: v for k, v in before.items() if k != "run_events"
    }
    old = before["run_events"]
    assert after["run_events"][: len(old)] == old
    new = after["run_events"][len(old) :]
    assert [row[3] for row in new] == ["decision_refused"], new
    return new[0]


def _assert_tables_intact(dump, before) -> None:
    """Every table still exists (dump selects from each) and every earlier row is still there."""
    after = dump()
    for table, key in (("sessions", 1), ("runs", 1), ("tool_calls", 2), ("approval_tokens", 1)):
        assert {row[:key] for row in before[table]} <= {row[:key] for row in after[table]}, table
    assert after["run_events"][: len(before["run_events"])] == before["run_events"]
    assert len(after["webhook_deliveries"]) >= len(before["webhook_deliveries"])


def _not_found(run_id: str) -> str:
    return f"No runs found for run ID {run_id}"


def _webhook(api, body: dict | bytes):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return api.call(
        "POST",
        "/approvals/webhook",
        body=raw,
        content_type="application/json",
        headers={"signoff-signature": sign(WEBHOOK_SECRET, int(time.time()), raw)},
    )


def _webhook_decision(run: dict, index: int = 0, **extra: Any) -> dict:
    return {
        "event_id": extra.pop("event_id", f"evt-{time.monotonic_ns()}"),
        "run_id": run["run_id"],
        "tool_call_id": run["tools"][index]["tool_call_id"],
        "decision": "approve",
        "approver": "ops-bot",
        **extra,
    }


@pytest.fixture
def alice_run(api):
    """Alice's paused delete_records run, started with her verified claims."""
    run = _start(api, claims=ALICE, session_id="alice-session").json()
    assert run["status"] == "PAUSED" and run["user_id"] == "alice"
    return run


@pytest.fixture
def open_run(api):
    """A paused run started without claims (AuthMode=none), owned by the user_id the client named."""
    run = _start(api, user_id="alice", session_id="open-session").json()
    assert run["status"] == "PAUSED" and run["user_id"] == "alice"
    return run


def _guarded(api, message: str = WIRE, *, claims=ALICE, session_id: str = "guarded-session", **fields):
    run = _start(api, message, agent_id="guarded", claims=claims, session_id=session_id, **fields).json()
    assert run["status"] == "PAUSED", run
    return run


# ------------------------------------------------------------------------------ another user's run


@pytest.mark.parametrize("named_user", [None, "alice"], ids=["plain", "form-says-alice"])
@pytest.mark.parametrize("action", ["read", "events", "continue", "cancel"])
def test_bob_cannot_read_continue_cancel_or_audit_alices_run(api, dump, alice_run, action, named_user):
    # Given alice's paused run and bob's verified claims (optionally naming alice in the request)
    before = dump()
    extra = {"user_id": named_user} if named_user else {}

    # When bob acts on it
    if action == "read":
        response = _read(api, RUN, alice_run, claims=BOB, **extra)
    elif action == "events":
        response = _read(api, EVENTS, alice_run, claims=BOB, **extra)
    elif action == "continue":
        response = _continue(api, alice_run, _decisions(alice_run), claims=BOB, **extra)
    else:
        response = _cancel(api, alice_run, claims=BOB, **extra)

    # Then it is as if the run did not exist, and nothing changed
    _assert_unchanged(dump, before, response, 404, _not_found(alice_run["run_id"]))
    assert _read(api, RUN, alice_run, claims=ALICE).json()["status"] == "PAUSED"


def test_bob_lists_none_of_alices_runs_or_sessions(api, dump, alice_run):
    before = dump()
    for query in ({}, {"user_id": "alice"}, {"session_id": "alice-session"}, {"status": "PAUSED"}):
        runs = api.call("GET", RUNS, {"agent_id": "data_manager"}, query=query, claims=BOB)
        assert runs.status == 200 and runs.json() == [], query
    for query in ({}, {"user_id": "alice"}, {"agent_id": "data_manager"}):
        sessions = api.call("GET", "/sessions", query=query, claims=BOB)
        assert sessions.status == 200 and sessions.json()["data"] == [], query
        assert sessions.json()["meta"]["total_count"] == 0
    for query in ({}, {"user_id": "alice"}):
        runs = api.call(
            "GET", "/sessions/{session_id}/runs", {"session_id": "alice-session"}, query=query, claims=BOB
        )
        assert runs.status == 404 and runs.json() == {"detail": "No session found with id alice-session"}
    assert dump() == before
    # while alice sees her own
    mine = api.call("GET", RUNS, {"agent_id": "data_manager"}, claims=ALICE).json()
    assert [r["run_id"] for r in mine] == [alice_run["run_id"]]
    sessions = api.call("GET", "/sessions", claims=ALICE).json()["data"]
    assert [s["session_id"] for s in sessions] == ["alice-session"]


def test_bob_cannot_start_a_run_in_alices_session(api, dump, alice_run):
    before = dump()

    response = _start(api, "what did I ask before?", claims=BOB, session_id="alice-session")

    _assert_unchanged(dump, before, response, 404, "No session found for session ID alice-session")


# ------------------------------------------------------------------------------- the principal wins


def test_the_authenticated_principal_wins_over_the_user_id_field(api, dump):
    # Given alice's claims and a form that says mallory
    run = _start(api, claims=ALICE, user_id="mallory", session_id="s-principal").json()

    # Then the run and its session are alice's, and mallory sees nothing
    assert run["user_id"] == "alice"
    assert _read(api, RUN, run, claims=ALICE).json()["user_id"] == "alice"
    assert _read(api, RUN, run, claims=MALLORY).status == 404
    assert api.call("GET", "/sessions", query={"user_id": "mallory"}, claims=MALLORY).json()["data"] == []
    assert {row[2] for row in dump()["sessions"]} == {"alice"}

    # And a continue by alice naming mallory is still alice's decision
    done = _continue(api, run, _decisions(run), claims=ALICE, user_id="mallory")
    assert done.status == 200 and done.json()["status"] == "COMPLETED"
    events = _read(api, EVENTS, run, claims=ALICE).json()["events"]
    [decision] = [e for e in events if e["kind"] == "decision"]
    assert decision["actor"] == "alice"


def test_a_principal_with_a_user_id_in_the_json_body_is_still_the_principal(api):
    run = _start(api, claims=BOB, form="json", user_id="alice", session_id="s-json-principal").json()
    assert run["user_id"] == "bob"


# ------------------------------------------------------------------- without claims (AuthMode=none)


def test_without_claims_spoofed_identity_headers_are_ignored_and_the_run_has_no_owner(api):
    run = _start(api, headers=SPOOFED_HEADERS, session_id="s-spoof").json()

    assert run["user_id"] is None
    assert api.call("GET", "/sessions", query={"user_id": "alice"}).json()["data"] == []


def test_without_claims_the_user_id_field_is_trusted_as_in_agentos_and_headers_are_not(api):
    run = _start(api, headers=SPOOFED_HEADERS, user_id="mallory", session_id="s-spoof-2").json()

    assert run["user_id"] == "mallory"


def test_a_request_context_in_the_json_body_is_just_an_ignored_field(api):
    anonymous = _start(api, form="json", requestContext=FORGED_CONTEXT, session_id="s-ctx-1").json()
    as_bob = _start(api, form="json", claims=BOB, requestContext=FORGED_CONTEXT, session_id="s-ctx-2").json()

    assert anonymous["user_id"] is None
    assert as_bob["user_id"] == "bob"


@pytest.mark.parametrize("action", ["read", "events", "continue", "cancel"])
def test_bob_with_spoofed_headers_naming_alice_is_still_bob(api, dump, alice_run, action):
    before = dump()
    if action == "read":
        response = _read(api, RUN, alice_run, claims=BOB, headers=SPOOFED_HEADERS)
    elif action == "events":
        response = _read(api, EVENTS, alice_run, claims=BOB, headers=SPOOFED_HEADERS)
    elif action == "continue":
        response = _continue(api, alice_run, _decisions(alice_run), claims=BOB, headers=SPOOFED_HEADERS)
    else:
        response = api.call(
            "POST",
            CANCEL,
            {"agent_id": "data_manager", "run_id": alice_run["run_id"]},
            fields={"session_id": alice_run["session_id"]},
            claims=BOB,
            headers=SPOOFED_HEADERS,
        )
    _assert_unchanged(dump, before, response, 404, _not_found(alice_run["run_id"]))


def test_without_claims_a_caller_naming_another_user_id_gets_404(api, dump, open_run):
    # AuthMode=none: the user_id the client gives must match the run's owner when given
    before = dump()
    wrong = {"user_id": "mallory"}

    _assert_unchanged(
        dump,
        before,
        _continue(api, open_run, _decisions(open_run), **wrong),
        404,
        _not_found(open_run["run_id"]),
    )
    _assert_unchanged(dump, before, _cancel(api, open_run, **wrong), 404, _not_found(open_run["run_id"]))
    runs = api.call("GET", RUNS, {"agent_id": "data_manager"}, query={"user_id": "mallory"})
    assert runs.json() == []


def test_without_claims_reads_are_not_scoped_by_user_id_so_the_run_id_is_the_only_guard(api, alice_run):
    # Observed AuthMode=none behaviour (as AgentOS): GET of a run ignores user_id, and without
    # claims even a run that alice started authenticated is readable by whoever knows its id.
    for query in ({}, {"user_id": "mallory"}):
        response = _read(api, RUN, alice_run, headers=SPOOFED_HEADERS, **query)
        assert response.status == 200 and response.json()["user_id"] == "alice"


def test_without_claims_alices_authenticated_run_can_be_continued_by_naming_her(api, alice_run):
    # Observed AuthMode=none behaviour: with no claims, the user_id field is trusted, also for a
    # run that was started with alice's verified claims. Only safe because in AuthMode=jwt API
    # Gateway never lets a request without a valid token reach these handlers.
    response = _continue(api, alice_run, _decisions(alice_run, confirmed=False), user_id="alice")

    assert response.status == 200 and response.json()["status"] == "COMPLETED"


def test_without_claims_alices_authenticated_run_can_be_cancelled_without_naming_anyone(api, alice_run):
    # Observed AuthMode=none behaviour: no user_id at all means "no owner check".
    response = _cancel(api, alice_run)

    assert response.status == 200 and response.json()["status"] == "CANCELLED"


# ----------------------------------------------------------- a continue cannot change the paused call


@pytest.fixture
def transfer_run(api):
    run = _start(api, 'call transfer {"amount": 300}', agent_id="ops", claims=ALICE, session_id="s-t").json()
    assert run["status"] == "PAUSED"
    return run


def _echo(run: dict, **changes: Any) -> list[dict]:
    echoed = {**run["tools"][0], "confirmed": True, **changes}
    return [echoed]


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"tool_name": "set_flag"}, "tool_name of {id} cannot be changed by a decision"),
        ({"tool_name": "drop_database"}, "tool_name of {id} cannot be changed by a decision"),
        (
            {"tool_args": {"amount": 300000}},
            "tool_args of {id} differ from the paused call; a decision applies to the stored call and "
            "cannot change it",
        ),
        (
            {"tool_args": {"amount": 300, "to": "mallory"}},
            "tool_args of {id} differ from the paused call; a decision applies to the stored call and "
            "cannot change it",
        ),
        (
            {"tool_args": '{"amount": 300000}'},
            "tool_args of {id} differ from the paused call; a decision applies to the stored call and "
            "cannot change it",
        ),
        ({"tool_args": "{amount: 1"}, "tool_args of {id} is not valid JSON"),
        (
            {"tool_args": ["amount", 300]},
            "tool_args of {id} differ from the paused call; a decision applies to the stored call and "
            "cannot change it",
        ),
    ],
    ids=[
        "other-tool",
        "unknown-tool",
        "bigger-amount",
        "extra-arg",
        "args-as-string",
        "args-bad-json",
        "list",
    ],
)
def test_a_continue_that_changes_the_tool_or_its_arguments_is_400_and_nothing_runs(
    api, dump, model, transfer_run, changes, detail
):
    before, requests = dump(), len(model.requests)

    response = _continue(api, transfer_run, _echo(transfer_run, **changes), claims=ALICE)

    _assert_unchanged(dump, before, response, 400, detail.format(id=transfer_run["tools"][0]["tool_call_id"]))
    assert EXECUTIONS == [] and len(model.requests) == requests


def test_the_unchanged_echo_runs_the_stored_call(api, transfer_run):
    response = _continue(api, transfer_run, _echo(transfer_run, tool_args='{"amount": 300}'), claims=ALICE)

    assert response.status == 200 and response.json()["status"] == "COMPLETED"
    assert EXECUTIONS == [("transfer", {"amount": 300})]


# ------------------------------------------------------------------------------------- approvers


def test_the_owner_outside_the_approver_groups_is_refused_and_the_refusal_recorded(api, dump):
    run = _guarded(api)
    before = dump()

    response = _continue(api, run, _decisions(run), claims=ALICE)

    row = _assert_refused_and_recorded(dump, before, response, "alice is not an approver of wire_money")
    _, run_id, _, _, actor, channel, detail = row
    assert (run_id, actor, channel) == (run["run_id"], "alice", "api")
    assert detail["tool_name"] == "wire_money" and detail["tool_call_id"] == run["tools"][0]["tool_call_id"]
    assert detail["args_digest"] == args_digest("wire_money", {"amount": 5000})
    assert detail["source_ip"] == "127.0.0.1" and detail["user_agent"] == "curl/8.5.0"
    assert EXECUTIONS == []


def test_an_approver_in_the_group_decides_and_reads_a_run_he_does_not_own(api, dump):
    run = _guarded(api)

    # dave (finance) can read it and its audit trail, bob cannot
    assert _read(api, RUN, run, claims=DAVE_FINANCE).status == 200
    assert _read(api, EVENTS, run, claims=DAVE_FINANCE).status == 200
    assert _read(api, RUN, run, claims=BOB).status == 404

    response = _continue(api, run, _decisions(run), claims=DAVE_FINANCE)

    assert response.status == 200 and response.json()["status"] == "COMPLETED"
    assert response.json()["user_id"] == "alice"
    assert EXECUTIONS == [("wire_money", {"amount": 5000})]
    events = _read(api, EVENTS, run, claims=ALICE).json()["events"]
    [decision] = [e for e in events if e["kind"] == "decision"]
    assert decision["actor"] == "dave" and decision["detail"]["decision"] == "approved"


def test_a_requester_in_the_group_may_not_approve_her_own_call(api, dump):
    run = _guarded(api, claims=ALICE_FINANCE)
    before = dump()

    response = _continue(api, run, _decisions(run), claims=ALICE_FINANCE)

    row = _assert_refused_and_recorded(
        dump, before, response, "the requester may not approve their own call of wire_money"
    )
    assert row[4] == "alice" and row[6]["reason"] == response.json()["detail"]
    assert EXECUTIONS == []


def test_a_requester_in_the_group_may_reject_her_own_call(api):
    run = _guarded(api, claims=ALICE_FINANCE)

    response = _continue(
        api, run, _decisions(run, confirmed=False, note="changed my mind"), claims=ALICE_FINANCE
    )

    assert response.status == 200 and response.json()["status"] == "COMPLETED"
    assert response.json()["tools"][0]["confirmed"] is False
    assert EXECUTIONS == []


def test_an_approver_named_by_user_id_decides(api):
    run = _guarded(api, ROTATE, session_id="s-rotate")
    assert _read(api, RUN, run, claims=CAROL).status == 200

    response = _continue(api, run, _decisions(run), claims=CAROL)

    assert response.status == 200 and response.json()["status"] == "COMPLETED"
    assert EXECUTIONS == [("rotate_key", {"name": "deploy-key"})]


def test_a_finance_approver_cannot_decide_a_security_tool(api, dump):
    run = _guarded(api, ROTATE, session_id="s-rotate-2")
    before = dump()

    # dave is no approver of rotate_key, so he cannot even see the run
    response = _continue(api, run, _decisions(run), claims=DAVE_FINANCE)

    _assert_unchanged(dump, before, response, 404, _not_found(run["run_id"]))


@pytest.mark.parametrize("headers", [None, SPOOFED_HEADERS], ids=["plain", "spoofed-headers"])
def test_an_unauthenticated_continue_of_a_tool_with_approvers_is_refused(api, dump, headers):
    run = _guarded(api, claims=None, user_id="alice", session_id="s-open-guarded")
    before = dump()

    response = _continue(api, run, _decisions(run), headers=headers, user_id="alice")

    row = _assert_refused_and_recorded(
        dump, before, response, "wire_money can only be decided by an authenticated approver"
    )
    assert row[4] == "alice" and row[5] == "api"
    assert EXECUTIONS == []


def test_a_request_context_in_a_json_continue_does_not_make_an_approver(api, dump):
    run = _guarded(api, claims=None, user_id="alice", session_id="s-open-guarded-2")
    before = dump()

    response = _continue(
        api, run, _decisions(run), form="json", user_id="alice", requestContext=FORGED_CONTEXT
    )

    _assert_refused_and_recorded(
        dump, before, response, "wire_money can only be decided by an authenticated approver"
    )


def test_one_refused_decision_refuses_the_whole_continue(api, dump):
    # Given carol may decide rotate_key but not wire_money, both paused in one turn
    run = _guarded(api, f"{WIRE} and {ROTATE}", claims=ALICE, session_id="s-both")
    assert len(run["requirements"]) == 2
    decisions = [{"tool_call_id": t["tool_call_id"], "confirmed": True} for t in run["tools"]]
    assert _read(api, RUN, run, claims=CAROL).status == 200
    before = dump()

    response = _continue(api, run, decisions, claims=CAROL)

    _assert_refused_and_recorded(dump, before, response, "carol is not an approver of wire_money")
    assert EXECUTIONS == []


def test_a_signed_webhook_approver_outside_the_groups_is_refused_and_recorded(api, aws, dump):
    run = _guarded(api, session_id="s-wh-1")
    aws.events()
    before = dump()

    response = _webhook(api, _webhook_decision(run, approver="eve"))

    row = _assert_refused_and_recorded(dump, before, response, "eve is not an approver of wire_money")
    assert row[4] == "eve" and row[5] == "webhook"
    assert aws.resume_messages() == []


def test_a_signed_webhook_naming_the_requester_cannot_approve_her_own_call(api, aws, dump):
    run = _guarded(api, session_id="s-wh-self")
    aws.events()
    before = dump()

    response = _webhook(api, _webhook_decision(run, approver="alice", approver_groups=["finance"]))

    _assert_refused_and_recorded(
        dump, before, response, "the requester may not approve their own call of wire_money"
    )


def test_a_signed_webhook_with_the_approver_group_approves(api, aws):
    run = _guarded(api, session_id="s-wh-2")
    aws.events()

    response = _webhook(api, _webhook_decision(run, approver="eve", approver_groups=["finance"]))

    assert response.status == 200, response
    assert response.json()["decision"] == "approved" and response.json()["decided_by"] == "eve"
    aws.run_worker()
    assert _read(api, RUN, run, claims=ALICE).json()["status"] == "COMPLETED"
    assert EXECUTIONS == [("wire_money", {"amount": 5000})]


def test_a_slack_button_cannot_decide_a_tool_with_approvers(api, aws, dump):
    import hashlib
    import hmac
    from urllib.parse import urlencode

    from tests.conftest import SLACK_SECRET

    run = _guarded(api, session_id="s-slack")
    aws.events()
    before = dump()
    payload = {
        "type": "block_actions",
        "user": {"id": "U1", "username": "dana"},
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
    signature = (
        "v0=" + hmac.new(SLACK_SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    )

    response = api.call(
        "POST",
        "/approvals/slack",
        body=body,
        content_type="application/x-www-form-urlencoded",
        headers={"x-slack-request-timestamp": ts, "x-slack-signature": signature},
    )

    _assert_refused_and_recorded(dump, before, response, "slack:dana is not an approver of wire_money")


def test_tools_with_approvers_get_no_approval_links(api, aws, dump):
    run = _guarded(api, f"{WIRE} and {ROTATE}", session_id="s-links")

    [event] = aws.events()

    calls = event["detail"]["tool_calls"]
    assert {c["tool_name"] for c in calls} == {"wire_money", "rotate_key"}
    assert all(c["approve_url"] is None and c["reject_url"] is None for c in calls)
    assert "/approvals/" not in json.dumps(event)
    assert dump()["approval_tokens"] == []
    assert run["status"] == "PAUSED"


# ----------------------------------------------------------------------------------- SQL injection


@pytest.mark.parametrize("value", NASTY, ids=NASTY_IDS)
@pytest.mark.parametrize("field", ["message", "session_id", "user_id"])
def test_hostile_text_in_start_fields_is_stored_as_plain_text(api, dump, alice_run, field, value):
    before = dump()
    fields = {"message": "hello there", "session_id": f"s-{field}", field: value}

    response = api.call("POST", RUNS, {"agent_id": "data_manager"}, fields=fields)

    assert response.status == 200, response
    run = response.json()
    expected = {"message": run["input"]["input_content"], "session_id": run["session_id"]}
    expected["user_id"] = run["user_id"]
    assert expected[field] == value
    _assert_tables_intact(dump, before)
    assert _read(api, RUN, alice_run, claims=ALICE).json()["status"] == "PAUSED"


@pytest.mark.parametrize(("value", "form"), UNSTORABLE, ids=UNSTORABLE_IDS)
@pytest.mark.parametrize("field", ["message", "session_id", "user_id"])
def test_unstorable_text_in_a_start_field_is_a_4xx_not_a_server_error(api, dump, field, value, form):
    before = dump()
    fields = {"message": "hello there", "session_id": "s-nul", field: value}

    response = api.call("POST", RUNS, {"agent_id": "data_manager"}, fields=fields, form=form)

    _assert_4xx_unchanged(dump, before, response)


def _continue_with(api, run: dict, field: str, value: str, form: str = "multipart"):
    decision: dict[str, Any] = {"tool_call_id": run["tools"][0]["tool_call_id"], "confirmed": False}
    fields: dict[str, Any] = {"session_id": run["session_id"], "user_id": "alice"}
    if field in ("session_id", "user_id"):
        fields[field] = value
    elif field == "tool_call_id":
        decision["tool_call_id"] = value
    else:
        decision["confirmation_note"] = value
    fields["tools"] = json.dumps([decision])
    return api.call(
        "POST", CONTINUE, {"agent_id": "data_manager", "run_id": run["run_id"]}, fields=fields, form=form
    )


CONTINUE_REFUSALS = {
    "session_id": (404, "No runs found for run ID {run_id}"),
    "user_id": (404, "No runs found for run ID {run_id}"),
    "tool_call_id": (400, "tool_call_id {value} is not a paused tool call of this run"),
}


@pytest.mark.parametrize("value", NASTY, ids=NASTY_IDS)
@pytest.mark.parametrize("field", ["session_id", "user_id", "tool_call_id"])
def test_hostile_text_in_continue_fields_finds_nothing(api, dump, open_run, field, value):
    before = dump()

    response = _continue_with(api, open_run, field, value)

    status, detail = CONTINUE_REFUSALS[field]
    _assert_unchanged(dump, before, response, status, detail.format(run_id=open_run["run_id"], value=value))


@pytest.mark.parametrize("value", NASTY, ids=NASTY_IDS)
def test_hostile_text_in_a_confirmation_note_is_just_the_note(api, dump, open_run, value):
    before = dump()

    response = _continue_with(api, open_run, "confirmation_note", value)

    assert response.status == 200, response
    assert response.json()["tools"][0]["confirmation_note"] == value
    _assert_tables_intact(dump, before)


@pytest.mark.parametrize(("value", "form"), UNSTORABLE, ids=UNSTORABLE_IDS)
@pytest.mark.parametrize("field", ["session_id", "user_id", "tool_call_id", "confirmation_note"])
def test_unstorable_text_in_a_continue_field_is_a_4xx_not_a_server_error(
    api, dump, open_run, field, value, form
):
    before = dump()

    response = _continue_with(api, open_run, field, value, form)

    _assert_4xx_unchanged(dump, before, response)
    assert _read(api, RUN, open_run).json()["status"] == "PAUSED"


@pytest.mark.parametrize("value", [*NASTY, NUL], ids=[*NASTY_IDS, "nul"])
@pytest.mark.parametrize(
    ("route", "name"),
    [
        (RUNS, "session_id"),
        (RUNS, "user_id"),
        (RUNS, "status"),
        ("/sessions", "user_id"),
        ("/sessions", "page"),
        ("/sessions", "limit"),
        ("/sessions", "agent_id"),
        (RUN, "session_id"),
        (EVENTS, "session_id"),
        ("/sessions/{session_id}/runs", "user_id"),
    ],
    ids=[
        "runs-session",
        "runs-user",
        "runs-status",
        "sessions-user",
        "sessions-page",
        "sessions-limit",
        "sessions-agent",
        "run-session",
        "events-session",
        "session-runs-user",
    ],
)
def test_hostile_query_strings_find_nothing_and_change_nothing(api, dump, open_run, route, name, value):
    before = dump()
    params = {"agent_id": "data_manager", "run_id": open_run["run_id"], "session_id": open_run["session_id"]}
    params = {key: params[key] for key in ("agent_id", "run_id", "session_id") if "{" + key + "}" in route}

    response = api.call("GET", route, params, query={name: value})

    assert response.status < 500, response
    assert dump() == before
    body = response.json()
    if "\x00" in value or name in ("status", "page", "limit"):
        assert response.status == 422 and body["detail"][0]["loc"] == ["query", name]
    elif response.status == 200:
        # a filter that matches nothing: an empty answer, never someone's data
        assert body == [] or body["data"] == [], body
    else:
        assert response.status == 404 and isinstance(body["detail"], str)


@pytest.mark.parametrize("value", [*NASTY, NUL], ids=[*NASTY_IDS, "nul"])
@pytest.mark.parametrize("encoded", [False, True], ids=["raw", "percent-encoded"])
@pytest.mark.parametrize(
    ("method", "route", "name"),
    [
        ("POST", RUNS, "agent_id"),
        ("GET", RUN, "agent_id"),
        ("GET", RUN, "run_id"),
        ("POST", CONTINUE, "run_id"),
        ("POST", CANCEL, "run_id"),
        ("GET", EVENTS, "run_id"),
        ("GET", "/sessions/{session_id}/runs", "session_id"),
        ("GET", "/approve/{token}", "token"),
        ("POST", "/approve/{token}", "token"),
    ],
    ids=[
        "start-agent",
        "get-agent",
        "get-run",
        "continue-run",
        "cancel-run",
        "events-run",
        "session",
        "link",
        "link-post",
    ],
)
def test_hostile_path_parameters_are_404_and_change_nothing(
    api, dump, open_run, method, route, name, encoded, value
):
    before = dump()
    params = {"agent_id": "data_manager", "run_id": open_run["run_id"], "session_id": open_run["session_id"]}
    params["token"] = "no-such-token"
    params = {key: value for key, value in params.items() if "{" + key + "}" in route}
    params[name] = quote(value, safe="") if encoded else value
    fields = None
    if method == "POST":
        fields = {
            "message": "hi",
            "session_id": open_run["session_id"],
            "tools": json.dumps(_decisions(open_run)),
        }

    response = api.call(method, route, params, fields=fields)

    if "\x00" in params[name]:
        # text PostgreSQL cannot store is refused before any lookup
        assert response.status == 422, response
        assert response.json()["detail"][0]["loc"][:2] == ["path", name]
    else:
        assert response.status == 404, response
    assert dump() == before


@pytest.mark.parametrize("value", NASTY, ids=NASTY_IDS)
@pytest.mark.parametrize(
    ("field", "status"),
    [
        ("event_id", 200),
        ("approver", 200),
        ("note", 200),
        ("run_id", 404),
        ("tool_call_id", 404),
        ("token", 404),
    ],
)
def test_hostile_text_in_webhook_fields(api, aws, dump, open_run, field, value, status):
    before = dump()
    body = _webhook_decision(open_run, decision="reject")
    if field == "token":
        body = {k: v for k, v in body.items() if k not in ("run_id", "tool_call_id")}
    body[field] = value

    response = _webhook(api, body)

    assert response.status == status, response
    if status == 200:
        assert response.json()["decision"] == "rejected"
        if field == "approver":
            assert response.json()["decided_by"] == value
        _assert_tables_intact(dump, before)
    else:
        assert dump() == before


@pytest.mark.parametrize("value", [NUL, SURROGATE], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize("field", ["event_id", "approver", "note", "run_id", "tool_call_id", "token"])
def test_unstorable_text_in_a_webhook_field_is_a_4xx_not_a_server_error(
    api, aws, dump, open_run, field, value
):
    before = dump()
    body = _webhook_decision(open_run, decision="reject")
    if field == "token":
        body = {k: v for k, v in body.items() if k not in ("run_id", "tool_call_id")}
    body[field] = value

    response = _webhook(api, body)

    _assert_4xx_unchanged(dump, before, response)


# -------------------------------------------------------------------- oversized and malformed bodies


def _raw_post(route: str, params: dict[str, str], body: str, *, base64_encoded: bool, content_type: str):
    """A POST whose event body is exactly ``body`` (e.g. not valid base64)."""
    event = http_api_event(
        "POST",
        route.format(**params),
        headers={"content-type": content_type, "user-agent": "curl/8.5.0"},
        route_key=f"POST {route}",
        path_parameters=params,
    )
    event["body"], event["isBase64Encoded"] = body, base64_encoded
    return _event_call(event)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _start_body(api, body: bytes, content_type: str):
    return api.call("POST", RUNS, {"agent_id": "data_manager"}, body=body, content_type=content_type)


def _continue_body(api, run: dict, body: bytes, content_type: str):
    return api.call(
        "POST",
        CONTINUE,
        {"agent_id": "data_manager", "run_id": run["run_id"]},
        body=body,
        content_type=content_type,
    )


def test_an_oversized_body_is_413(api, dump, open_run):
    before = dump()
    big = "x" * (256 * 1024 + 1)

    start = api.call("POST", RUNS, {"agent_id": "data_manager"}, fields={"message": big})
    cont = _continue(api, open_run, _decisions(open_run, note=big))
    hook = api.call(
        "POST",
        "/approvals/webhook",
        body=json.dumps({"note": big}).encode(),
        content_type="application/json",
    )

    for response in (start, cont, hook):
        assert response.status == 413, response
        assert response.json() == {"detail": "request body is larger than 262144 bytes"}
    assert dump() == before


def test_the_body_limit_follows_the_setting(api, dump, open_run, monkeypatch):
    from tests.conftest import _reset_runtime

    monkeypatch.setenv("SIGNOFF_MAX_BODY_BYTES", "2048")
    _reset_runtime()
    before = dump()

    response = api.call("POST", RUNS, {"agent_id": "data_manager"}, fields={"message": "y" * 2100})

    _assert_unchanged(dump, before, response, 413, "request body is larger than 2048 bytes")
    assert api.call("POST", RUNS, {"agent_id": "data_manager"}, fields={"message": "small"}).status == 200


def _truncated_multipart(fields: dict[str, str], keep: int) -> tuple[bytes, str]:
    """The first ``keep`` bytes of a multipart body (a negative ``keep`` cuts from the end)."""
    body, content_type = multipart(fields)
    return body[:keep], content_type


MALFORMED_START = [
    ("no-boundary", lambda: (multipart({"message": "hi"})[0], "multipart/form-data"), 400),
    # cut inside the value: "hello " arrives without its end or the closing delimiter
    ("truncated-value", lambda: _truncated_multipart({"message": "hello world"}, -53), None),
    ("truncated-headers", lambda: _truncated_multipart({"message": "hello world"}, 60), None),
    ("invalid-utf8-urlencoded", lambda: (b"message=caf\xe9", "application/x-www-form-urlencoded"), 400),
    ("invalid-utf8-multipart", lambda: _multipart_bytes(b"caf\xe9"), 400),
    ("invalid-utf8-json", lambda: (b'{"message": "caf\xe9"}', "application/json"), 422),
    ("json-array", lambda: (b'[{"message": "hi"}]', "application/json"), 422),
    ("json-scalar", lambda: (b'"hi"', "application/json"), 422),
    ("json-invalid", lambda: (b'{"message": ', "application/json"), 422),
    ("json-message-object", lambda: (b'{"message": {"$ne": null}}', "application/json"), 422),
    ("json-deep", lambda: (('{"message": ' + _deep(10_000) + "}").encode(), "application/json"), 400),
    ("json-deep-no-type", lambda: (('{"message": ' + _deep(10_000) + "}").encode(), ""), 400),
]


def _multipart_bytes(value: bytes) -> tuple[bytes, str]:
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="message"\r\n\r\n'.encode()
        + value
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize(
    ("build", "status"), [(b, s) for _, b, s in MALFORMED_START], ids=[n for n, _, _ in MALFORMED_START]
)
def test_malformed_start_bodies_are_4xx_and_change_nothing(api, dump, open_run, build, status):
    before = dump()
    body, content_type = build()

    response = _start_body(api, body, content_type)

    _assert_4xx_unchanged(dump, before, response)
    if status is not None:
        assert response.status == status, response


@pytest.mark.parametrize("route", [RUNS, CONTINUE], ids=["start", "continue"])
@pytest.mark.parametrize("body", ["%%% not base64 %%%", "bWVzc2FnZT1oaQ", "@@@@", "=" * 8])
def test_invalid_base64_bodies_are_4xx_and_change_nothing(api, dump, open_run, route, body):
    before = dump()
    params = {"agent_id": "data_manager", "run_id": open_run["run_id"]}
    params = {k: v for k, v in params.items() if "{" + k + "}" in route}

    response = _raw_post(
        route, params, body, base64_encoded=True, content_type="application/x-www-form-urlencoded"
    )

    _assert_4xx_unchanged(dump, before, response)


def _tools_field(open_run: dict, tools: str) -> tuple[bytes, str]:
    return multipart({"session_id": open_run["session_id"], "tools": tools})


@pytest.mark.parametrize(
    ("make", "status", "detail"),
    [
        (lambda run: _tools_field(run, _deep(10_000)), 400, "tools is nested deeper than 20 levels"),
        (
            lambda run: _tools_field(
                run,
                json.dumps([{"tool_call_id": run["tools"][0]["tool_call_id"], "x": json.loads(_deep(30))}]),
            ),
            400,
            "tools is nested deeper than 20 levels",
        ),
        (
            lambda run: (
                json.dumps({"session_id": run["session_id"]})[:-1].encode()
                + b', "tools": '
                + _deep(10_000).encode()
                + b"}",
                "application/json",
            ),
            400,
            "body is nested deeper than 20 levels",
        ),
        (
            lambda run: _tools_field(
                run,
                json.dumps(
                    [{"tool_call_id": run["tools"][0]["tool_call_id"], "confirmed": True}]
                    + [{"tool_call_id": f"call_{i}", "confirmed": True} for i in range(100)]
                ),
            ),
            400,
            "tools holds more than 100 decisions",
        ),
        (
            lambda run: _tools_field(run, '{"tool_call_id": "x"}'),
            400,
            "tools must be a JSON array of tool objects",
        ),
        (lambda run: _tools_field(run, '["x", 1]'), 400, "tools must be a JSON array of tool objects"),
        (lambda run: _tools_field(run, "[{"), 400, "Invalid JSON in tools field"),
        (lambda run: _tools_field(run, "\x00"), 422, None),
        (lambda run: (b'[{"session_id": "x"}]', "application/json"), 422, None),
        (lambda run: (b"\xff\xfe", "multipart/form-data"), 400, "multipart body without a boundary"),
    ],
    ids=[
        "tools-depth-10000",
        "tools-depth-30",
        "json-body-depth-10000",
        "101-decisions",
        "tools-object",
        "tools-scalars",
        "tools-invalid-json",
        "tools-nul",
        "json-array-body",
        "multipart-no-boundary",
    ],
)
def test_malformed_continue_bodies_are_4xx_and_change_nothing(api, dump, open_run, make, status, detail):
    before = dump()
    body, content_type = make(open_run)

    response = _continue_body(api, open_run, body, content_type)

    assert response.status == status, response
    if detail is not None:
        assert response.json()["detail"] == detail
    assert dump() == before
    assert EXECUTIONS == []


def test_a_truncated_multipart_continue_is_4xx_and_changes_nothing(api, dump, open_run):
    before = dump()
    body, content_type = multipart(
        {"session_id": open_run["session_id"], "tools": json.dumps(_decisions(open_run))}
    )

    response = _continue_body(api, open_run, body[: len(body) // 2 + 20], content_type)

    _assert_4xx_unchanged(dump, before, response)


@pytest.mark.parametrize(
    "raw",
    [
        _deep(10_000).encode(),
        (
            '{"event_id": "e", "approver": "x", "decision": "approve", "run_id": ' + _deep(10_000) + "}"
        ).encode(),
        b"[1, 2, 3]",
        b"\xff\xfe\x00",
    ],
    ids=["deep-array", "deep-field", "array", "invalid-utf8"],
)
def test_malformed_signed_webhook_bodies_are_4xx(api, aws, dump, open_run, raw):
    before = dump()

    response = _webhook(api, raw)

    _assert_4xx_unchanged(dump, before, response)


# ------------------------------------------------------------------------------------- audit trail


def test_the_audit_trail_records_who_when_where_and_what(api):
    # Given alice starts a run from one address and rejects the call with a note from another
    client = {"user-agent": "audit-test-client/1.0", "x-forwarded-for": "6.6.6.6"}
    started = _call_from(
        "203.0.113.7",
        "POST",
        RUNS,
        {"agent_id": "data_manager"},
        fields={"message": "Delete 50 old records from the users table", "session_id": "s-audit"},
        claims=ALICE,
        headers=client,
    )
    run = started.json()
    assert run["status"] == "PAUSED"
    decided = _call_from(
        "198.51.100.9",
        "POST",
        CONTINUE,
        {"agent_id": "data_manager", "run_id": run["run_id"]},
        fields={
            "session_id": "s-audit",
            "tools": json.dumps(_decisions(run, confirmed=False, note="not today")),
        },
        claims=ALICE,
        headers={**client, "user-agent": "audit-test-client/2.0"},
    )
    assert decided.status == 200 and decided.json()["status"] == "COMPLETED"

    # When alice reads the run's events
    response = _read(api, EVENTS, run, claims=ALICE)

    # Then they are in order, with who, when, the channel, where from, the note and the digest
    assert response.status == 200
    body = response.json()
    assert body["run_id"] == run["run_id"]
    events = body["events"]
    assert [e["kind"] for e in events] == [
        "created",
        "started",
        "paused",
        "decision",
        "continued",
        "completed",
    ]
    times = [e["at"] for e in events]
    assert times == sorted(times) and all(t > 0 for t in times)
    by_kind = {e["kind"]: e for e in events}
    for kind in ("created", "started", "decision", "continued"):
        assert (by_kind[kind]["actor"], by_kind[kind]["channel"]) == ("alice", "api"), by_kind[kind]
    decision = by_kind["decision"]["detail"]
    assert decision["decision"] == "rejected" and decision["note"] == "not today"
    assert decision["tool_call_id"] == run["tools"][0]["tool_call_id"]
    assert decision["args_digest"] == args_digest("delete_records", {"table_name": "users", "count": 50})
    assert "6.6.6.6" not in json.dumps(events)  # the client's X-Forwarded-For is not the source
    # bob (not the owner, no approver) cannot read it
    bob = _read(api, EVENTS, run, claims=BOB)
    assert bob.status == 404 and bob.json() == {"detail": _not_found(run["run_id"])}
    # and every event a request caused says where it came from (API Gateway's view)
    where = {
        kind: (by_kind[kind]["detail"].get("source_ip"), by_kind[kind]["detail"].get("user_agent"))
        for kind in ("created", "started", "decision", "continued")
    }
    assert where == {
        "created": ("203.0.113.7", "audit-test-client/1.0"),
        "started": ("203.0.113.7", "audit-test-client/1.0"),
        "decision": ("198.51.100.9", "audit-test-client/2.0"),
        "continued": ("198.51.100.9", "audit-test-client/2.0"),
    }


def test_a_cancel_is_recorded_with_who_and_where(api):
    run = _start(api, claims=ALICE, session_id="s-audit-cancel").json()

    cancelled = _call_from(
        "203.0.113.50",
        "POST",
        CANCEL,
        {"agent_id": "data_manager", "run_id": run["run_id"]},
        fields={"session_id": run["session_id"]},
        claims=ALICE,
        headers={"user-agent": "audit-cancel/1.0"},
    )

    assert cancelled.status == 200
    events = _read(api, EVENTS, run, claims=ALICE).json()["events"]
    assert [e["kind"] for e in events][-1] == "cancelled"
    last = events[-1]
    assert (last["actor"], last["channel"]) == ("alice", "api")
    assert last["detail"].get("source_ip") == "203.0.113.50"
    assert last["detail"].get("user_agent") == "audit-cancel/1.0"


def test_a_webhook_decision_is_recorded_with_approver_channel_and_source(api, aws):
    run = _guarded(api, session_id="s-audit-wh")
    aws.events()
    raw = json.dumps(_webhook_decision(run, approver="eve", approver_groups=["finance"], note="ok")).encode()
    event = http_api_event(
        "POST",
        "/approvals/webhook",
        headers={
            "content-type": "application/json",
            "user-agent": "finance-system/3",
            "signoff-signature": sign(WEBHOOK_SECRET, int(time.time()), raw),
        },
        body=raw,
        route_key="POST /approvals/webhook",
        source_ip="192.0.2.44",
    )

    assert _event_call(event).status == 200

    events = _read(api, EVENTS, run, claims=DAVE_FINANCE).json()["events"]
    [decision] = [e for e in events if e["kind"] == "decision"]
    assert (decision["actor"], decision["channel"]) == ("eve", "webhook")
    assert decision["detail"]["source_ip"] == "192.0.2.44"
    assert decision["detail"]["user_agent"] == "finance-system/3"
    assert decision["detail"]["note"] == "ok"
    assert decision["detail"]["args_digest"] == args_digest("wire_money", {"amount": 5000})


def test_in_jwt_mode_a_request_without_claims_is_401_even_past_api_gateway(api, dump, monkeypatch):
    # Given a stack deployed with AuthMode=jwt, and a request that somehow arrives without claims
    from tests.conftest import _reset_runtime

    monkeypatch.setenv("SIGNOFF_AUTH_MODE", "jwt")
    _reset_runtime()
    before = dump()

    # When it tries to start a run as test_user, and to read runs
    started = api.start(user_id="test_user", session_id="s-jwt")
    listed = api.call("GET", "/sessions", query={"user_id": "test_user"})

    # Then the handlers refuse it themselves and nothing is written
    assert started.status == 401 and listed.status == 401
    assert started.json() == {"detail": "authentication required"}
    assert dump() == before
    # while a request with verified claims works
    ok = api.call(
        "POST",
        "/agents/{agent_id}/runs",
        {"agent_id": "data_manager"},
        fields={"message": "hello", "session_id": "s-jwt"},
        claims={"sub": "alice"},
    )
    assert ok.status == 200 and ok.json()["user_id"] == "alice"
