"""User-input and external-execution tools, automatic tools, and failing tools, end to end."""

from __future__ import annotations

from tests.support.agents import EXECUTIONS


def _start(api, message, session="s-kinds"):
    return api.start(message, agent_id="ops", session_id=session).json()


def test_user_input_tool_pauses_with_a_schema_and_runs_with_the_users_value(api, model):
    # Given the model wants to book a room but the user must pick it
    paused = _start(api, 'call book_room {"title": "Standup"}')

    # Then the model was not offered the room, and the run waits for the user
    [offered] = [t["function"] for t in model.requests[0]["tools"] if t["function"]["name"] == "book_room"]
    assert list(offered["parameters"]["properties"]) == ["title"]
    assert offered["parameters"]["required"] == ["title"]
    assert paused["status"] == "PAUSED"
    assert paused["content"] == "I have tools to execute, but I need user input."
    [call] = paused["tools"]
    assert call["requires_user_input"] is True
    assert call["user_input_schema"] == [
        {"name": "title", "field_type": "str", "description": "Meeting title", "value": "Standup"},
        {
            "name": "room",
            "field_type": "str",
            "description": "Room to book, chosen by the user",
            "value": None,
        },
    ]

    # When the user fills the field in
    answer = [
        {"tool_call_id": call["tool_call_id"], "user_input_schema": [{"name": "room", "value": "Blue"}]}
    ]
    run = api.continue_(paused["run_id"], answer, agent_id="ops", session_id="s-kinds").json()

    # Then the tool ran with the user's value and the model's other arguments
    assert run["status"] == "COMPLETED"
    assert run["tools"][0]["result"] == "Booked Blue for Standup"
    assert run["tools"][0]["answered"] is True
    assert EXECUTIONS == [("book_room", {"title": "Standup", "room": "Blue"})]


def test_external_tool_takes_the_clients_result_and_never_runs_here(api, model):
    paused = _start(api, 'call charge_card {"amount": 1299}')
    assert paused["content"] == "I have tools to execute, but it needs external execution."
    call_id = paused["tools"][0]["tool_call_id"]
    assert paused["tools"][0]["external_execution_required"] is True

    missing = api.continue_(
        paused["run_id"], [{"tool_call_id": call_id}], agent_id="ops", session_id="s-kinds"
    )
    assert missing.status == 400 and "result is required" in missing.json()["detail"]

    run = api.continue_(
        paused["run_id"],
        [{"tool_call_id": call_id, "result": "charged, receipt r-42"}],
        agent_id="ops",
        session_id="s-kinds",
    ).json()
    assert run["status"] == "COMPLETED"
    assert run["tools"][0]["result"] == "charged, receipt r-42"
    assert "charged, receipt r-42" in run["content"]


def test_automatic_tools_run_without_a_pause(api):
    run = _start(api, 'call lookup_user {"name": "ada"}')
    assert run["status"] == "COMPLETED"
    assert run["tools"][0]["result"] == "ada is an admin"
    assert "ada is an admin" in run["content"]


def test_invalid_arguments_go_back_to_the_model_and_never_reach_a_human(api):
    run = _start(api, 'call delete_records {"table_name": "users", "count": "many"}')
    assert run["status"] == "COMPLETED"
    [call] = run["tools"]
    assert call["tool_call_error"] is True and call["requires_confirmation"] is None
    assert "count" in call["result"]


def test_a_confirmed_tool_that_raises_is_reported_and_the_run_finishes(api):
    paused = _start(api, 'call explode {"reason": "disk full"}')
    call_id = paused["tools"][0]["tool_call_id"]
    run = api.continue_(
        paused["run_id"], [{"tool_call_id": call_id, "confirmed": True}], agent_id="ops", session_id="s-kinds"
    ).json()
    assert run["status"] == "COMPLETED"
    assert run["tools"][0]["tool_call_error"] is True
    assert "boom: disk full" in run["tools"][0]["result"]
    assert len(EXECUTIONS) == 1
