"""User-input tools written the way Agno documents them, through the real handlers and the stand-in model.

``file_ticket`` declares ``user_input_fields=["priority", "due_in_days"]``: those are the human's alone.
``plan_trip`` declares none: the model sees every argument and the human may change any of them.
"""

from __future__ import annotations

import pytest

from tests.support.agents import EXECUTIONS

SESSION = "s-user-input"
TICKET = 'call file_ticket {"title": "Disk full"}'


def _start(api, message):
    return api.start(message, agent_id="helpdesk", session_id=SESSION).json()


def _continue(api, run_id, tools):
    return api.continue_(run_id, tools, agent_id="helpdesk", session_id=SESSION)


def _status(api, run_id):
    return api.get(run_id, SESSION, agent_id="helpdesk").json()["status"]


def _events(api, run_id):
    response = api.call(
        "GET",
        "/agents/{agent_id}/runs/{run_id}/events",
        {"agent_id": "helpdesk", "run_id": run_id},
        query={"session_id": SESSION},
    )
    return response.json()["events"]


def _answer(call_id, **values):
    return [
        {"tool_call_id": call_id, "user_input_schema": [{"name": k, "value": v} for k, v in values.items()]}
    ]


def _sent_parameters(model, name):
    [function] = [t["function"] for t in model.requests[0]["tools"] if t["function"]["name"] == name]
    return function["parameters"]


def test_the_model_is_never_offered_the_humans_fields_and_the_run_pauses_for_them(api, model):
    # When the model files a ticket with only its own argument
    paused = _start(api, TICKET)

    # Then the schema it was sent had neither the priority nor the due date
    assert _sent_parameters(model, "file_ticket") == {
        "type": "object",
        "properties": {"title": {"type": "string", "description": "What is wrong"}},
        "required": ["title"],
    }
    # and the run paused (it did not fail on the missing fields), listing every argument
    assert paused["status"] == "PAUSED"
    assert paused["content"] == "I have tools to execute, but I need user input."
    [call] = paused["tools"]
    assert call["requires_user_input"] is True and call["tool_args"] == {"title": "Disk full"}
    assert call["user_input_schema"] == [
        {"name": "title", "field_type": "str", "description": "What is wrong", "value": "Disk full"},
        {
            "name": "priority",
            "field_type": "str",
            "description": "How urgent it is, chosen by the human",
            "value": None,
        },
        {
            "name": "due_in_days",
            "field_type": "int",
            "description": "Days until it is due, chosen by the human",
            "value": None,
        },
    ]
    [requirement] = paused["requirements"]
    assert requirement["tool_execution"]["user_input_schema"] == call["user_input_schema"]
    assert EXECUTIONS == []


def test_the_minimal_payload_fills_the_humans_field_and_the_tool_runs_with_it(api):
    paused = _start(api, TICKET)
    call_id = paused["tools"][0]["tool_call_id"]

    # When the human gives only the priority (the due date has a default)
    run = _continue(api, paused["run_id"], _answer(call_id, priority="high")).json()

    # Then the tool ran with the model's title, the human's priority and its own default
    assert run["status"] == "COMPLETED"
    [call] = run["tools"]
    assert call["result"] == "Filed 'Disk full' as high, due in 5 days"
    assert call["answered"] is True and call["requires_user_input"] is False
    assert call["tool_args"] == {"title": "Disk full", "priority": "high"}
    assert [f["value"] for f in call["user_input_schema"]] == ["Disk full", "high", None]
    assert EXECUTIONS == [("file_ticket", {"title": "Disk full", "priority": "high", "due_in_days": 5})]
    assert "Filed 'Disk full' as high" in run["content"]


def test_the_full_echo_of_the_paused_tool_object_works_the_same(api):
    paused = _start(api, TICKET)

    # When an AgentOS client echoes the paused object with the values filled in
    echo = dict(paused["tools"][0])
    echo["user_input_schema"] = [
        {**field, "value": {"priority": "low", "due_in_days": 2}.get(field["name"], field["value"])}
        for field in echo["user_input_schema"]
    ]
    run = _continue(api, paused["run_id"], [echo]).json()

    # Then the tool ran with the echoed human values and the stored model value
    assert run["status"] == "COMPLETED"
    assert EXECUTIONS == [("file_ticket", {"title": "Disk full", "priority": "low", "due_in_days": 2})]


@pytest.mark.parametrize(
    ("values", "status", "says"),
    [
        pytest.param({}, 400, "needs a value for priority", id="no-value"),
        pytest.param({"priority": None}, 400, "needs a value for priority", id="null-value"),
        pytest.param({"due_in_days": 1}, 400, "needs a value for priority", id="only-the-optional-one"),
        pytest.param(
            {"title": "Rename me", "priority": "high"}, 400, "title of tool call", id="changes-the-models-arg"
        ),
        pytest.param({"priority": "high", "assignee": "bob"}, 400, "no field assignee", id="unknown-field"),
        pytest.param({"priority": "high", "due_in_days": "soon"}, 422, None, id="wrong-type"),
    ],
)
def test_a_refused_answer_changes_nothing_and_the_run_stays_paused(api, dump, values, status, says):
    paused = _start(api, TICKET)
    call_id = paused["tools"][0]["tool_call_id"]
    before = dump()

    # When the answer is incomplete, reaches for the model's argument, or does not fit the signature
    response = _continue(api, paused["run_id"], _answer(call_id, **values))

    # Then it is refused, nothing in the database moved, and the run still waits for the human
    assert response.status == status, response
    detail = response.json()["detail"]
    if status == 422:
        [error] = detail
        assert error["loc"] == ["body", "tools", call_id, "user_input_schema", "due_in_days"]
        assert error["type"] == "int_parsing"
    else:
        assert says in detail
    assert dump() == before
    assert _status(api, paused["run_id"]) == "PAUSED"
    assert EXECUTIONS == []

    # and a correct answer still completes it
    run = _continue(api, paused["run_id"], _answer(call_id, priority="high")).json()
    assert run["status"] == "COMPLETED"


def test_an_echo_may_repeat_the_models_values_but_not_change_them(api, dump):
    paused = _start(api, TICKET)
    echo = dict(paused["tools"][0])
    before = dump()

    # When the echo changes the model's title in the schema
    echo["user_input_schema"] = [
        {**field, "value": {"title": "Something else", "priority": "high"}.get(field["name"], field["value"])}
        for field in echo["user_input_schema"]
    ]
    response = _continue(api, paused["run_id"], [echo])

    # Then it is refused and nothing changed
    assert response.status == 400 and "model's argument" in response.json()["detail"]
    assert dump() == before and _status(api, paused["run_id"]) == "PAUSED"


def test_a_value_the_model_sends_for_the_humans_field_never_stands_in_for_the_human(api, dump):
    # Given a model that sends the priority although it was not offered
    paused = _start(api, 'call file_ticket {"title": "Disk full", "priority": "low"}')

    # Then the run still pauses; as Agno, the model's value is shown in the schema, pre-filled
    assert paused["status"] == "PAUSED"
    call = paused["tools"][0]
    assert [(f["name"], f["value"]) for f in call["user_input_schema"]] == [
        ("title", "Disk full"),
        ("priority", "low"),
        ("due_in_days", None),
    ]

    # When the client answers without the priority, the model's value is not taken in its place
    before = dump()
    refused = _continue(api, paused["run_id"], _answer(call["tool_call_id"], due_in_days=1))
    assert refused.status == 400 and "needs a value for priority" in refused.json()["detail"]
    assert dump() == before and EXECUTIONS == []

    # Only the human's own value runs
    run = _continue(api, paused["run_id"], _answer(call["tool_call_id"], priority="high")).json()
    assert run["status"] == "COMPLETED"
    assert EXECUTIONS == [("file_ticket", {"title": "Disk full", "priority": "high", "due_in_days": 5})]


def test_the_audit_keeps_the_models_and_the_humans_values(api):
    paused = _start(api, 'call file_ticket {"title": "Disk full", "priority": "low"}')
    call = paused["tools"][0]
    run = _continue(
        api, paused["run_id"], _answer(call["tool_call_id"], priority="high", due_in_days=2)
    ).json()
    assert run["status"] == "COMPLETED"

    [decision] = [e for e in _events(api, paused["run_id"]) if e["kind"] == "decision"]
    detail = decision["detail"]
    assert detail["proposed_args"] == {"title": "Disk full", "priority": "low"}
    assert detail["user_input"] == {"priority": "high", "due_in_days": 2}
    assert detail["proposed_args_digest"] != detail["args_digest"]
    assert detail["decision"] == "approved"


def test_without_declared_fields_the_model_sees_everything_and_the_human_may_change_any_of_it(api, model):
    # When the model plans a trip, leaving the nights out
    paused = _start(api, 'call plan_trip {"city": "Oslo"}')

    # Then (as Agno) the model was offered every argument, and the run pauses with its value pre-filled
    assert _sent_parameters(model, "plan_trip")["required"] == ["city", "nights"]
    assert paused["status"] == "PAUSED"
    call = paused["tools"][0]
    assert [(f["name"], f["value"]) for f in call["user_input_schema"]] == [
        ("city", "Oslo"),
        ("nights", None),
    ]

    # When the human gives the nights, the model's city stands
    run = _continue(api, paused["run_id"], _answer(call["tool_call_id"], nights="3")).json()
    assert run["status"] == "COMPLETED"
    assert EXECUTIONS == [("plan_trip", {"city": "Oslo", "nights": 3})]
    assert run["tools"][0]["tool_args"] == {"city": "Oslo", "nights": 3}


def test_without_declared_fields_the_human_may_override_the_models_value(api):
    paused = _start(api, 'call plan_trip {"city": "Oslo", "nights": 2}')
    call_id = paused["tools"][0]["tool_call_id"]

    run = _continue(api, paused["run_id"], _answer(call_id, city="Bergen")).json()

    assert run["status"] == "COMPLETED"
    assert EXECUTIONS == [("plan_trip", {"city": "Bergen", "nights": 2})]
