"""AgentOS's approvals API: records of every paused call that waits on a person, seen and decided per
tool, with the shapes Agno's own response models parse; and ``@approval`` with Agno's meaning."""

from __future__ import annotations

import json

import psycopg
import pytest
from agno.os.routers.approvals.schema import ApprovalCountResponse, ApprovalResponse, ApprovalStatusResponse
from agno.os.schema import PaginatedResponse

from tests.support.agents import EXECUTIONS, WHILE_RUNNING

ALICE = {"sub": "alice"}
BOB = {"sub": "bob"}
DAVE_FINANCE = {"sub": "dave", "cognito:groups": ["finance"]}
ADA_ADMIN = {"sub": "ada", "cognito:groups": ["admins"]}
PAY = 'call pay_vendor {"vendor": "acme", "amount": 500}'
ALL_THREE = f'{PAY} and call wire_out {{"amount": 70}} and call archive_report {{"name": "q3"}}'


@pytest.fixture
def admins(runtime_env, monkeypatch):
    from tests.conftest import _reset_runtime

    monkeypatch.setenv("SIGNOFF_APPROVAL_ADMINS", "admins")
    _reset_runtime()


def _start(api, message: str, claims=ALICE, session_id: str = "s-pay") -> dict:
    run = api.call(
        "POST",
        "/agents/{agent_id}/runs",
        {"agent_id": "payouts"},
        fields={"message": message, "session_id": session_id},
        claims=claims,
    ).json()
    assert run["status"] == "PAUSED", run
    return run


def _get(api, path: str, claims, params=None, query=None):
    return api.call("GET", path, params or {}, claims=claims, query=query)


def _resolve(api, approval_id: str, claims, status="approved", **data):
    fields = {"status": status, "resolved_by": "mallory"}
    if data:
        fields["resolution_data"] = data
    return api.call(
        "POST",
        "/approvals/{approval_id}/resolve",
        {"approval_id": approval_id},
        fields=fields,
        form="json",
        claims=claims,
    )


def _continue(api, run, decisions, claims=ALICE):
    return api.call(
        "POST",
        "/agents/{agent_id}/runs/{run_id}/continue",
        {"agent_id": "payouts", "run_id": run["run_id"]},
        fields={"session_id": run["session_id"], "tools": json.dumps(decisions)},
        claims=claims,
    )


def _approval_ids(run) -> dict[str, str]:
    return {t["tool_name"]: t["approval_id"] for t in run["tools"]}


def test_every_waiting_call_has_its_own_record_in_agnos_shapes(api, aws, admins):
    # Given one turn with three calls waiting on people
    run = _start(api, ALL_THREE)
    ids = _approval_ids(run)
    assert all(ids.values()) and len(set(ids.values())) == 3
    assert {t["tool_name"]: t["approval_type"] for t in run["tools"]} == {
        "pay_vendor": "required",
        "wire_out": "required",
        "archive_report": None,
    }

    # When the admin lists, counts and reads them
    listed = _get(api, "/approvals", ADA_ADMIN, query={"status": "pending"})
    count = _get(api, "/approvals/count", ADA_ADMIN)
    one = _get(api, "/approvals/{approval_id}", ADA_ADMIN, {"approval_id": ids["pay_vendor"]})
    status = _get(api, "/approvals/{approval_id}/status", ADA_ADMIN, {"approval_id": ids["pay_vendor"]})

    # Then Agno's own models parse every answer, and the records say what waits
    page = PaginatedResponse[ApprovalResponse].model_validate(listed.json())
    assert page.meta.total_count == 3 and {a.tool_name for a in page.data} == set(ids)
    assert ApprovalCountResponse.model_validate(count.json()).count == 3
    record = ApprovalResponse.model_validate(one.json())
    assert (record.status, record.approval_type, record.pause_type) == ("pending", "required", "confirmation")
    assert (record.run_id, record.user_id, record.agent_id) == (run["run_id"], "alice", "payouts")
    assert record.tool_args == {"vendor": "acme", "amount": 500}
    assert {r["id"] for r in record.requirements} == {t["tool_call_id"] for t in run["tools"]}
    assert ApprovalStatusResponse.model_validate(status.json()).status == "pending"


def test_seeing_is_per_tool_and_others_get_404(api, aws, admins):
    run = _start(api, ALL_THREE)
    ids = _approval_ids(run)

    def visible(claims) -> set[str]:
        return {a["tool_name"] for a in _get(api, "/approvals", claims).json()["data"]}

    # The owner sees her run's records; finance sees the call of its tool; the admin sees all
    assert visible(ALICE) == {"pay_vendor", "wire_out", "archive_report"}
    assert visible(DAVE_FINANCE) == {"wire_out"}
    assert visible(ADA_ADMIN) == {"pay_vendor", "wire_out", "archive_report"}
    assert visible(BOB) == set()
    assert _get(api, "/approvals/count", BOB).json()["count"] == 0
    # Anyone else cannot read, resolve or delete a record: 404 as for one that does not exist
    for path in ("/approvals/{approval_id}", "/approvals/{approval_id}/status"):
        assert _get(api, path, BOB, {"approval_id": ids["archive_report"]}).status == 404
        assert _get(api, path, DAVE_FINANCE, {"approval_id": ids["archive_report"]}).status == 404
    assert _resolve(api, ids["archive_report"], BOB).status == 404
    assert (
        api.call(
            "DELETE", "/approvals/{approval_id}", {"approval_id": ids["archive_report"]}, claims=BOB
        ).status
        == 404
    )


def test_a_required_approval_is_resolved_by_an_admin_and_the_run_resumes(api, aws, admins, db):
    # Given alice's required pay_vendor call
    run = _start(api, PAY)
    approval_id = run["tools"][0]["approval_id"]
    aws.events()

    # When alice herself continues or resolves it, she is refused with AgentOS's words
    mine = _continue(api, run, [{"tool_call_id": run["tools"][0]["tool_call_id"], "confirmed": True}])
    assert (mine.status, mine.json()) == (
        403,
        {"detail": "This run requires admin approval before it can be continued"},
    )
    assert _resolve(api, approval_id, ALICE).status == 403
    assert EXECUTIONS == []

    # When the admin resolves it (the body's resolved_by is ignored)
    resolved = _resolve(api, approval_id, ADA_ADMIN, note="budgeted")

    # Then the record is approved by ada, and the run resumes through the queue and completes
    assert resolved.status == 200, resolved
    record = ApprovalResponse.model_validate(resolved.json())
    assert (record.status, record.resolved_by) == ("approved", "ada")
    assert record.resolution_data == {"note": "budgeted"}
    aws.run_worker()
    done = _get(
        api, "/agents/{agent_id}/runs/{run_id}", ALICE, {"agent_id": "payouts", "run_id": run["run_id"]}
    )
    assert done.json()["status"] == "COMPLETED"
    assert EXECUTIONS == [("pay_vendor", {"vendor": "acme", "amount": 500})]

    # And alice's continue naming the call as resolved answers the run as it stands, running nothing
    again = _continue(api, run, [{"tool_call_id": run["tools"][0]["tool_call_id"], "confirmed": True}])
    assert again.status == 200 and again.json()["status"] == "COMPLETED"
    assert EXECUTIONS == [("pay_vendor", {"vendor": "acme", "amount": 500})]
    # ... while the opposite decision is no decision on a paused call
    other = _continue(api, run, [{"tool_call_id": run["tools"][0]["tool_call_id"], "confirmed": False}])
    assert other.status == 409
    # And the audit trail says who resolved it, through which channel
    with psycopg.connect(db) as conn:
        [(actor, channel)] = conn.execute(
            "SELECT actor, channel FROM run_events WHERE kind = 'decision' AND run_id = %s", (run["run_id"],)
        ).fetchall()
    assert (actor, channel) == ("ada", "approvals")


def test_a_required_tool_with_approvers_is_resolved_by_them_not_by_the_admins(api, aws, admins):
    run = _start(api, 'call wire_out {"amount": 9}', session_id="s-wire")
    approval_id = run["tools"][0]["approval_id"]

    # the admins see it, but finance, the tool's approvers, resolves it
    assert _get(api, "/approvals/{approval_id}", ADA_ADMIN, {"approval_id": approval_id}).status == 200
    refused = _resolve(api, approval_id, ADA_ADMIN)
    assert (refused.status, refused.json()) == (
        403,
        {"detail": "ada may not resolve the approval of wire_out"},
    )
    rejected = _resolve(api, approval_id, DAVE_FINANCE, status="rejected", note="not this week")

    assert rejected.status == 200 and rejected.json()["status"] == "rejected"
    aws.run_worker()
    assert EXECUTIONS == []


def test_resolving_twice_is_409_and_a_pending_record_cannot_be_deleted(api, aws, admins):
    run = _start(api, ALL_THREE)
    approval_id = _approval_ids(run)["archive_report"]

    pending_delete = api.call(
        "DELETE", "/approvals/{approval_id}", {"approval_id": approval_id}, claims=ALICE
    )
    assert pending_delete.status == 409
    assert _resolve(api, approval_id, ALICE, status="rejected").status == 200
    again = _resolve(api, approval_id, ALICE)
    assert again.status == 409 and again.json() == {
        "detail": "Approval is already 'rejected' and cannot be resolved"
    }

    deleted = api.call("DELETE", "/approvals/{approval_id}", {"approval_id": approval_id}, claims=ALICE)
    assert deleted.status == 204
    assert _get(api, "/approvals/{approval_id}", ALICE, {"approval_id": approval_id}).status == 404
    assert approval_id not in {a["id"] for a in _get(api, "/approvals", ALICE).json()["data"]}


def test_a_resolution_bound_to_other_arguments_or_past_expiry_changes_nothing(api, aws, admins, db, dump):
    run = _start(api, ALL_THREE)
    approval_id = _approval_ids(run)["archive_report"]
    before = dump()

    stale = _resolve(api, approval_id, ALICE, args_digest="0" * 64)
    assert stale.status == 409
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "UPDATE runs SET state = jsonb_set(state, '{tools,2,expires_at}',"
            " to_jsonb(extract(epoch FROM now())::bigint - 1))"
        )
    expired = _resolve(api, approval_id, ALICE)
    assert expired.status == 410
    assert dump()["tool_calls"] == before["tool_calls"]


def test_a_resolution_while_the_run_executes_is_kept_and_applied(api, aws, db):
    # Given ops's two calls, the owner confirming transfer, and a resolution of the other meanwhile
    message = 'call transfer {"amount": 5} and call delete_records {"table_name": "t", "count": 2}'
    run = api.start(message, agent_id="ops", session_id="s-kept", user_id="owner").json()
    approval_id = run["tools"][1]["approval_id"]
    answers = []
    WHILE_RUNNING["transfer"] = lambda: answers.append(_resolve(api, approval_id, None))

    api.continue_(
        run["run_id"],
        [{"tool_call_id": run["tools"][0]["tool_call_id"], "confirmed": True}],
        session_id=run["session_id"],
        agent_id="ops",
    )

    [kept] = answers
    assert kept.status == 202 and kept.json()["status"] == "pending" and "kept" in kept.json()["detail"]
    aws.run_worker()
    done = api.get(run["run_id"], agent_id="ops").json()
    assert done["status"] == "COMPLETED", done
    assert [t["result"] for t in done["tools"]] == ["Transferred 5", "Deleted 2 records from t"], done[
        "tools"
    ]


def test_an_audit_approval_records_the_owners_decision(api, aws, admins):
    run = _start(api, 'call close_account {"account": "a-1"}', session_id="s-audit")
    approval_id = run["tools"][0]["approval_id"]

    decided = _continue(api, run, [{"tool_call_id": run["tools"][0]["tool_call_id"], "confirmed": True}])

    assert decided.status == 200 and decided.json()["status"] == "COMPLETED"
    record = _get(api, "/approvals/{approval_id}", ALICE, {"approval_id": approval_id}).json()
    assert (record["approval_type"], record["status"], record["resolved_by"]) == (
        "audit",
        "approved",
        "alice",
    )


def test_bad_resolve_bodies_and_filters_are_422(api, aws, admins):
    run = _start(api, ALL_THREE)
    approval_id = _approval_ids(run)["archive_report"]
    bad = api.call(
        "POST",
        "/approvals/{approval_id}/resolve",
        {"approval_id": approval_id},
        fields={"status": "ok"},
        form="json",
        claims=ALICE,
    )
    assert bad.status == 422
    assert _get(api, "/approvals", ALICE, query={"status": "maybe"}).status == 422
    assert _get(api, "/approvals", ALICE, query={"limit": "5000"}).status == 422
