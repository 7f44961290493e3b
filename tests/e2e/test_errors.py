"""Every error of CONTRACT.md's table: the documented status and detail, and nothing changed."""

from __future__ import annotations

import pytest


@pytest.fixture
def paused(api):
    run = api.start(user_id="test_user", session_id="test_session").json()
    assert run["status"] == "PAUSED"
    return run


def _unchanged(dump, before, response, status):
    assert response.status == status, response
    assert dump() == before
    return response.json()["detail"]


def test_unknown_agent_is_404(api, dump):
    before = dump()
    response = api.start(agent_id="nobody", session_id="s")
    assert _unchanged(dump, before, response, 404) == "Agent not found"


def test_unknown_run_is_404(api, dump, paused):
    before = dump()
    response = api.continue_("no-such-run", [], session_id="test_session")
    assert _unchanged(dump, before, response, 404) == "No runs found for run ID no-such-run"
    assert api.get("no-such-run").status == 404


@pytest.mark.parametrize(
    "change",
    [{"session_id": "other_session"}, {"agent_id": "ops"}, {"user_id": "someone_else"}],
    ids=["other-session", "other-agent", "other-user"],
)
def test_run_of_another_session_agent_or_user_is_404(api, dump, paused, change):
    before = dump()
    fields = {"session_id": "test_session", **change}
    call_id = paused["tools"][0]["tool_call_id"]
    response = api.continue_(paused["run_id"], [{"tool_call_id": call_id, "confirmed": True}], **fields)
    assert _unchanged(dump, before, response, 404) == f"No runs found for run ID {paused['run_id']}"


def test_reading_a_run_with_another_session_is_404(api, paused):
    assert api.get(paused["run_id"], "other_session").status == 404
    assert api.get(paused["run_id"], "test_session").status == 200


@pytest.mark.parametrize("message", [None, ""], ids=["missing", "empty"])
def test_missing_or_empty_message_is_422(api, dump, message):
    before = dump()
    fields = {"session_id": "s"} if message is None else {"message": message, "session_id": "s"}
    response = api.call("POST", "/agents/{agent_id}/runs", {"agent_id": "data_manager"}, fields=fields)
    [error] = _unchanged(dump, before, response, 422)
    assert error["loc"] == ["body", "message"] and error["msg"] and error["type"]


def test_bad_boolean_is_422(api, dump):
    before = dump()
    response = api.start(session_id="s", stream="perhaps")
    [error] = _unchanged(dump, before, response, 422)
    assert error["loc"] == ["body", "stream"]


def test_continue_without_session_id_is_400(api, dump, paused):
    before = dump()
    call_id = paused["tools"][0]["tool_call_id"]
    response = api.continue_(paused["run_id"], [{"tool_call_id": call_id, "confirmed": True}])
    assert _unchanged(dump, before, response, 400) == "session_id is required for this action"


def test_tools_that_are_not_json_is_400(api, dump, paused):
    before = dump()
    response = api.continue_(paused["run_id"], "[{tool_call_id: oops", session_id="test_session")
    assert _unchanged(dump, before, response, 400) == "Invalid JSON in tools field"


@pytest.mark.parametrize("tools", ['{"tool_call_id": "x"}', '["x"]', "[1, 2]"])
def test_tools_that_are_not_an_array_of_objects_is_400(api, dump, paused, tools):
    before = dump()
    response = api.continue_(paused["run_id"], tools, session_id="test_session")
    assert "array" in _unchanged(dump, before, response, 400)


def test_unknown_tool_call_id_is_400(api, dump, paused):
    before = dump()
    response = api.continue_(
        paused["run_id"], [{"tool_call_id": "call_forged", "confirmed": True}], session_id="test_session"
    )
    assert "call_forged" in _unchanged(dump, before, response, 400)


def test_one_bad_decision_applies_none_of_them(api, dump, paused):
    before = dump()
    call_id = paused["tools"][0]["tool_call_id"]
    response = api.continue_(
        paused["run_id"],
        [{"tool_call_id": call_id, "confirmed": True}, {"tool_call_id": "call_forged", "confirmed": True}],
        session_id="test_session",
    )
    _unchanged(dump, before, response, 400)


def test_an_echo_cannot_change_the_tool_or_its_arguments(api, dump, paused):
    # Given a paused delete of 50 users
    before = dump()
    echoed = dict(paused["tools"][0], confirmed=True, tool_args={"table_name": "payments", "count": 5000})

    # When a continue tries to swap the arguments
    response = api.continue_(paused["run_id"], [echoed], session_id="test_session")

    # Then it is refused and nothing ran
    assert "cannot change" in _unchanged(dump, before, response, 400)
    renamed = dict(paused["tools"][0], confirmed=True, tool_name="send_notification")
    response = api.continue_(paused["run_id"], [renamed], session_id="test_session")
    _unchanged(dump, before, response, 400)


def test_body_over_the_limit_is_413(api, dump, runtime_env, monkeypatch):
    before = dump()
    response = api.start("x" * 300_000, session_id="s")
    assert _unchanged(dump, before, response, 413)


def test_continue_of_a_completed_run_is_409(api, dump, paused):
    call_id = paused["tools"][0]["tool_call_id"]
    decision = [{"tool_call_id": call_id, "confirmed": True}]
    assert (
        api.continue_(paused["run_id"], decision, session_id="test_session").json()["status"] == "COMPLETED"
    )
    before = dump()

    response = api.continue_(paused["run_id"], decision, session_id="test_session")

    assert _unchanged(dump, before, response, 409) == "run is already continued"


def test_continue_of_a_cancelled_run_is_409(api, dump, paused):
    cancel = api.call(
        "POST",
        "/agents/{agent_id}/runs/{run_id}/cancel",
        {"agent_id": "data_manager", "run_id": paused["run_id"]},
        fields={"session_id": "test_session"},
    )
    assert cancel.status == 200 and cancel.json()["status"] == "CANCELLED"
    before = dump()

    call_id = paused["tools"][0]["tool_call_id"]
    response = api.continue_(
        paused["run_id"], [{"tool_call_id": call_id, "confirmed": True}], session_id="test_session"
    )

    assert _unchanged(dump, before, response, 409) == "run is already cancelled"
    assert api.get(paused["run_id"]).json()["tools"][0]["result"] is None


def test_cancel_of_an_unknown_run_is_404(api, dump):
    before = dump()
    response = api.call(
        "POST",
        "/agents/{agent_id}/runs/{run_id}/cancel",
        {"agent_id": "data_manager", "run_id": "nope"},
        fields={"session_id": "s"},
    )
    assert _unchanged(dump, before, response, 404) == "No runs found for run ID nope"


def test_a_paused_continue_without_tools_is_400_and_an_empty_list_keeps_it_paused(api, dump, paused):
    before = dump()
    response = api.continue_(paused["run_id"], session_id="test_session")
    assert "tools" in _unchanged(dump, before, response, 400)

    still = api.continue_(paused["run_id"], [], session_id="test_session").json()
    assert still["status"] == "PAUSED" and len(still["requirements"]) == 1


def test_paging_out_of_range_is_422(api):
    response = api.call("GET", "/sessions", query={"page": "0"})
    assert response.status == 422
    assert response.json()["detail"][0]["loc"] == ["query", "page"]


def test_model_failure_is_a_saved_error_run_that_a_continue_resumes(api, model):
    # Given a model that keeps failing
    model.inject("500", times=10)

    # When a run starts
    failed = api.start(session_id="s-err")

    # Then the answer is 200 ERROR with the reason, and the run is saved
    assert failed.status == 200
    run = failed.json()
    assert run["status"] == "ERROR" and "HTTP 500" in run["content"]
    assert api.get(run["run_id"], "s-err").json()["status"] == "ERROR"

    # When the model is back and the client continues the run
    model.clear()
    resumed = api.continue_(run["run_id"], session_id="s-err").json()

    # Then it resumes from the stored user message, not from scratch
    assert resumed["status"] == "PAUSED"
    assert resumed["tools"][0]["tool_args"] == {"table_name": "users", "count": 50}
    assert [m["role"] for m in resumed["messages"]][:1] == ["user"]
    assert sum(1 for m in resumed["messages"] if m["role"] == "user") == 1
