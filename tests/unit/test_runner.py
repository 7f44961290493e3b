"""The run loop with a scripted model: pauses, tool execution, checkpoints, failures and limits."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from signoff import Agent, tool
from signoff.models.base import Deadline, ModelFailure, ModelResponse, ToolCallRequest
from signoff.runner import RunContext, Step, advance
from signoff.state import PAUSE_CONTENT, RunState


class ScriptedModel:
    """A Model that answers from a queue and records the messages and tools of each request."""

    id = "scripted"
    provider = "Test"

    def __init__(self, *responses: ModelResponse | Exception) -> None:
        self.queue = list(responses)
        self.requests: list[list[dict[str, Any]]] = []
        self.tools: list[list[dict[str, Any]]] = []

    def request(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], deadline: Deadline
    ) -> ModelResponse:
        self.requests.append(copy.deepcopy(messages))
        self.tools.append(tools)
        if not self.queue:
            raise AssertionError("the model was called more often than scripted")
        answer = self.queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def calls(*requests: tuple[str, str, dict[str, Any]], content: str | None = None) -> ModelResponse:
    return ModelResponse(
        content=content,
        tool_calls=[ToolCallRequest(id=i, name=n, arguments=json.dumps(a)) for i, n, a in requests],
        input_tokens=10,
        output_tokens=5,
    )


def text(content: str) -> ModelResponse:
    return ModelResponse(content=content, input_tokens=7, output_tokens=3)


# Tools that record what they ran, for the test to inspect.
executed: list[tuple[str, dict[str, Any]]] = []


@tool(requires_confirmation=True)
def delete_records(table_name: str, count: int) -> str:
    """Delete records from a database table.

    Args:
        table_name: Name of the table
        count: Number of records to delete
    """
    executed.append(("delete_records", {"table_name": table_name, "count": count}))
    return f"Deleted {count} records from {table_name}"


@tool
def count_records(table_name: str) -> str:
    """Count the records of a table.

    Args:
        table_name: Name of the table
    """
    executed.append(("count_records", {"table_name": table_name}))
    return f"{table_name} has 120 records"


@tool
def flaky(table_name: str) -> str:
    """Always fails."""
    executed.append(("flaky", {"table_name": table_name}))
    raise RuntimeError("disk on fire")


@tool(stop_after_tool_call=True)
def export_table(table_name: str) -> str:
    """Export a table and end the run with the link."""
    executed.append(("export_table", {"table_name": table_name}))
    return f"https://example.test/{table_name}.csv"


@tool(requires_user_input=True, user_input_fields=["recipient"])
def send_notification(recipient: str, message: str) -> str:
    """Send a notification."""
    executed.append(("send_notification", {"recipient": recipient, "message": message}))
    return "sent"


AGENT = Agent(
    id="ops",
    name="Ops",
    instructions=["You run data operations"],
    tools=[delete_records, count_records, flaky, export_table, send_notification],
    markdown=True,
)


@pytest.fixture(autouse=True)
def _clear_executed():
    executed.clear()
    yield
    executed.clear()


def new_state(message: str = "Delete 50 old records from the users table") -> RunState:
    return RunState(
        run_id="run-1",
        agent_id=AGENT.id,
        agent_name=AGENT.name,
        agent_version=AGENT.version,
        session_id="session-1",
        status="RUNNING",
        input_content=message,
        messages=[{"role": "user", "content": message}],
        model="gpt-4o-mini",
    )


class Checkpoints(list):
    """Records a deep copy of the state at each checkpoint, with how many model calls preceded it."""

    def __init__(self, model: ScriptedModel) -> None:
        super().__init__()
        self.model = model
        self.model_calls_before: list[int] = []

    def __call__(self, state: RunState) -> None:
        self.append(copy.deepcopy(state))
        self.model_calls_before.append(len(self.model.requests))


def run(
    state: RunState,
    model: ScriptedModel,
    *,
    max_turns: int = 10,
    deadline: Deadline | None = None,
    history: list[dict[str, Any]] | None = None,
) -> tuple[Step, Checkpoints, list[tuple[str, dict[str, Any]]]]:
    checkpoints = Checkpoints(model)
    events: list[tuple[str, dict[str, Any]]] = []
    ctx = RunContext(
        agent=AGENT,
        model=model,
        history=history or [],
        deadline=deadline or Deadline.unlimited(),
        max_turns=max_turns,
        checkpoint=checkpoints,
        emit=lambda name, **fields: events.append((name, fields)),
    )
    return advance(state, ctx), checkpoints, events


def tool_messages(messages: list[dict[str, Any]]) -> dict[str, str]:
    return {m["tool_call_id"]: m["content"] for m in messages if m["role"] == "tool"}


# --- pausing ------------------------------------------------------------------------------------


def test_confirmation_tool_pauses_with_the_contract_content_and_does_not_run():
    # Given a model that asks for delete_records without writing text
    model = ScriptedModel(calls(("call_1", "delete_records", {"table_name": "users", "count": 50})))
    state = new_state()

    # When the run advances
    step, _, events = run(state, model)

    # Then it pauses on that call, with the contract's content, and nothing ran
    assert step is Step.PAUSED
    assert state.status == "PAUSED"
    assert state.content == PAUSE_CONTENT["confirmation"]
    assert state.content == "I have tools to execute, but I need confirmation."
    [call] = state.pending_tools
    assert call.tool_call_id == "call_1"
    assert call.tool_args == {"table_name": "users", "count": 50}
    assert call.requires_confirmation is True
    assert call.confirmed is None
    assert executed == []
    assert "RunPaused" in [name for name, _ in events]


def test_the_model_sees_the_system_message_history_and_tools():
    # Given an earlier run's messages as history
    history = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi there"}]
    model = ScriptedModel(text("done"))

    # When the run advances
    run(new_state("what now?"), model, history=history)

    # Then the request is system + history + this run's message, with the agent's tools
    [messages] = model.requests
    assert messages[0]["role"] == "system"
    assert "You run data operations" in messages[0]["content"]
    assert messages[1:3] == history
    assert messages[3] == {"role": "user", "content": "what now?"}
    assert [t["function"]["name"] for t in model.tools[0]] == [t.name for t in AGENT.tools]


def test_model_text_is_kept_as_pause_content_when_it_wrote_some():
    model = ScriptedModel(
        calls(
            ("call_1", "delete_records", {"table_name": "users", "count": 5}), content="Shall I delete them?"
        )
    )
    state = new_state()
    run(state, model)
    assert state.content == "Shall I delete them?"


def test_user_input_tool_is_offered_without_the_humans_field_and_pauses_when_the_model_leaves_it_out():
    # Given the model proposes a notification with only its own argument
    model = ScriptedModel(calls(("call_1", "send_notification", {"message": "hi"})))
    state = new_state("notify someone")

    # When the run advances
    step, _, _ = run(state, model)

    # Then the model was never offered the human's field, and the run pauses for it
    [offered] = [t["function"] for t in model.tools[0] if t["function"]["name"] == "send_notification"]
    assert offered["parameters"]["properties"] == {"message": {"type": "string"}}
    assert offered["parameters"]["required"] == ["message"]
    assert step is Step.PAUSED
    assert state.content == PAUSE_CONTENT["user_input"]
    [call] = state.pending_tools
    assert call.requires_user_input is True
    # every argument is listed: the model's value pre-filled, the human's empty
    assert call.user_input_schema == [
        {"name": "recipient", "field_type": "str", "description": None, "value": None},
        {"name": "message", "field_type": "str", "description": None, "value": "hi"},
    ]
    assert executed == []


def test_a_user_input_call_missing_one_of_the_models_own_arguments_goes_back_to_the_model():
    # Given the model leaves out its own required argument
    model = ScriptedModel(calls(("call_1", "send_notification", {})), text("Sorry."))
    state = new_state("notify someone")

    # When the run advances
    step, _, _ = run(state, model)

    # Then no human is asked: the model is told what it missed (and not about the human's field)
    assert step is Step.COMPLETED
    [call] = state.tools
    assert call.tool_call_error is True and call.requires_user_input is None
    assert "message: Field required" in call.result and "recipient" not in call.result


def test_a_value_the_model_sends_for_the_humans_field_is_only_a_suggestion():
    # Given the model sends the human's field although it was not offered
    model = ScriptedModel(calls(("call_1", "send_notification", {"recipient": "ann", "message": "hi"})))
    state = new_state("notify ann")

    # When the run advances
    step, _, _ = run(state, model)

    # Then the run still pauses for the human, the model's value shown as Agno shows it
    assert step is Step.PAUSED
    [call] = state.pending_tools
    assert call.user_input_schema[0] == {
        "name": "recipient",
        "field_type": "str",
        "description": None,
        "value": "ann",
    }
    assert executed == []


# --- automatic tools ----------------------------------------------------------------------------


def test_auto_tool_runs_and_its_result_reaches_the_model_on_the_next_turn():
    # Given a model that counts records, then answers
    model = ScriptedModel(calls(("call_1", "count_records", {"table_name": "users"})), text("There are 120."))
    state = new_state("how many users?")

    # When the run advances
    step, _, events = run(state, model)

    # Then the tool ran once, the second request carries its result, and the run completed
    assert step is Step.COMPLETED
    assert state.status == "COMPLETED"
    assert state.content == "There are 120."
    assert executed == [("count_records", {"table_name": "users"})]
    second = model.requests[1]
    assert second[-2]["role"] == "assistant"
    assert second[-2]["tool_calls"][0]["id"] == "call_1"
    assert second[-1] == {"role": "tool", "tool_call_id": "call_1", "content": "users has 120 records"}
    [call] = state.tools
    assert (call.state, call.result, call.tool_call_error) == ("succeeded", "users has 120 records", False)
    names = [name for name, _ in events]
    assert names.index("ToolCallStarted") < names.index("ToolCallCompleted") < names.index("RunCompleted")


def test_usage_of_every_model_call_is_added_up():
    model = ScriptedModel(calls(("call_1", "count_records", {"table_name": "users"})), text("120"))
    state = new_state()
    run(state, model)
    assert state.metrics.input_tokens == 17
    assert state.metrics.output_tokens == 8
    assert state.metrics.total_tokens == 25


def test_checkpoint_before_an_auto_tool_executes_shows_it_executing():
    # Given a model that calls an automatic tool
    model = ScriptedModel(calls(("call_1", "count_records", {"table_name": "users"})), text("ok"))
    state = new_state()

    # When the run advances
    _, checkpoints, _ = run(state, model)

    # Then the first checkpoint was taken with the call 'executing' and no result yet
    first = checkpoints[0]
    [call] = first.tools
    assert call.state == "executing"
    assert call.result is None
    # and the final state says it succeeded (the checkpoint was a copy, not the live object)
    assert state.tools[0].state == "succeeded"


def test_checkpoint_after_tool_results_precedes_the_next_model_call():
    # Given a model that calls an automatic tool, then answers
    model = ScriptedModel(calls(("call_1", "count_records", {"table_name": "users"})), text("ok"))
    state = new_state()

    # When the run advances
    _, checkpoints, _ = run(state, model)

    # Then a checkpoint holding the tool message was saved after one model call and before the second
    saved_with_result = [
        (cp, before)
        for cp, before in zip(checkpoints, checkpoints.model_calls_before, strict=True)
        if "call_1" in tool_messages(cp.messages)
    ]
    assert saved_with_result, "the tool result was never checkpointed"
    checkpoint, model_calls_before = saved_with_result[0]
    assert model_calls_before == 1
    assert tool_messages(checkpoint.messages)["call_1"] == "users has 120 records"
    assert checkpoint.tools[0].state == "succeeded"


def test_unknown_tool_goes_back_to_the_model_as_an_error():
    # Given a model that calls a tool the agent does not have
    model = ScriptedModel(calls(("call_1", "drop_database", {"name": "prod"})), text("Sorry."))
    state = new_state()

    # When the run advances
    step, _, _ = run(state, model)

    # Then the model is told, the run goes on and completes
    assert step is Step.COMPLETED
    reply = tool_messages(model.requests[1])["call_1"]
    assert reply.startswith("Error:")
    assert "drop_database" in reply
    assert state.tools[0].tool_call_error is True


def test_invalid_arguments_go_back_to_the_model_and_never_reach_the_function():
    # Given a model that calls an automatic tool and a confirmation tool, both with bad arguments
    model = ScriptedModel(
        calls(
            ("call_1", "count_records", {"table": "users"}),
            ("call_2", "delete_records", {"table_name": "users", "count": "lots"}),
        ),
        text("Let me fix that."),
    )
    state = new_state()

    # When the run advances
    step, _, _ = run(state, model)

    # Then neither function ran, no human is asked, and the model gets readable errors
    assert executed == []
    assert step is Step.COMPLETED
    assert state.pending_tools == []
    replies = tool_messages(model.requests[1])
    assert replies["call_1"].startswith("Error:")
    assert "table_name" in replies["call_1"]
    assert replies["call_2"].startswith("Error:")
    assert "count" in replies["call_2"]


def test_a_tool_that_raises_is_reported_to_the_model_and_the_run_continues():
    # Given a model that calls a tool that raises
    model = ScriptedModel(calls(("call_1", "flaky", {"table_name": "users"})), text("It failed, sorry."))
    state = new_state()

    # When the run advances
    step, _, events = run(state, model)

    # Then the call is marked as an error, the model is told, and the run completes
    assert step is Step.COMPLETED
    [call] = state.tools
    assert call.tool_call_error is True
    assert call.state == "failed"
    reply = tool_messages(model.requests[1])["call_1"]
    assert reply.startswith("Error:")
    assert "disk on fire" in reply
    assert state.content == "It failed, sorry."
    assert "ToolCallError" in [name for name, _ in events]


def test_one_auto_and_one_confirmation_call_in_a_turn():
    # Given one turn with an automatic call and a confirmation call
    model = ScriptedModel(
        calls(
            ("call_1", "count_records", {"table_name": "users"}),
            ("call_2", "delete_records", {"table_name": "users", "count": 50}),
        )
    )
    state = new_state()

    # When the run advances
    step, _, _ = run(state, model)

    # Then the automatic one ran, the run pauses on the other, and the model was not called again
    assert step is Step.PAUSED
    assert executed == [("count_records", {"table_name": "users"})]
    assert [c.tool_call_id for c in state.pending_tools] == ["call_2"]
    assert state.tool("call_1").state == "succeeded"
    assert len(model.requests) == 1
    # No tool message yet: the turn is answered only when every call of it is decided
    assert tool_messages(state.messages) == {}


def test_after_confirming_the_paused_call_the_auto_one_does_not_run_twice():
    # Given a paused run whose turn had an automatic call (already run) and a confirmation call
    model = ScriptedModel(
        calls(
            ("call_1", "count_records", {"table_name": "users"}),
            ("call_2", "delete_records", {"table_name": "users", "count": 50}),
        ),
        text("Done."),
    )
    state = new_state()
    run(state, model)

    # When the human approves and the run advances again
    paused = state.tool("call_2")
    paused.state, paused.confirmed, paused.requires_confirmation = "executing", True, False
    state.status = "RUNNING"
    step, _, _ = run(state, model)

    # Then each tool ran once and the model got both results, in call order
    assert step is Step.COMPLETED
    assert executed == [
        ("count_records", {"table_name": "users"}),
        ("delete_records", {"table_name": "users", "count": 50}),
    ]
    last = model.requests[-1]
    assert [m["tool_call_id"] for m in last if m["role"] == "tool"] == ["call_1", "call_2"]
    assert tool_messages(last)["call_2"] == "Deleted 50 records from users"


def test_stop_after_tool_call_completes_with_the_tool_result():
    # Given a model that calls a stop_after_tool_call tool
    model = ScriptedModel(calls(("call_1", "export_table", {"table_name": "users"})))
    state = new_state()

    # When the run advances
    step, _, _ = run(state, model)

    # Then the run ends with the tool's result, without another model call
    assert step is Step.COMPLETED
    assert state.status == "COMPLETED"
    assert state.content == "https://example.test/users.csv"
    assert len(model.requests) == 1


# --- limits and failures ------------------------------------------------------------------------


def test_max_turns_ends_the_run_in_error():
    # Given a model that never stops calling tools
    model = ScriptedModel(*[calls((f"call_{i}", "count_records", {"table_name": "t"})) for i in range(5)])
    state = new_state()

    # When the run may take three turns
    step, _, events = run(state, model, max_turns=3)

    # Then it ends in ERROR after three model calls, saying why
    assert step is Step.FAILED
    assert state.status == "ERROR"
    assert len(model.requests) == 3
    assert "3" in state.content
    assert "turn" in state.content
    assert state.error == state.content
    assert "RunError" in [name for name, _ in events]


def test_no_time_left_hands_the_run_off_without_calling_the_model():
    # Given a deadline already inside its safety margin
    model = ScriptedModel(text("never"))
    state = new_state()
    deadline = Deadline(lambda: 1000, margin_ms=5000)

    # When the run advances
    step, _, _ = run(state, model, deadline=deadline)

    # Then it is handed off as RUNNING and the model was never called
    assert step is Step.HANDED_OFF
    assert state.status == "RUNNING"
    assert model.requests == []


def test_time_running_out_after_a_tool_saves_the_result_before_handing_off():
    # Given a deadline that runs out once the model has answered once
    model = ScriptedModel(calls(("call_1", "count_records", {"table_name": "users"})), text("never"))
    deadline = Deadline(lambda: 0 if model.requests else 10_000, margin_ms=1000)
    state = new_state()

    # When the run advances
    step, checkpoints, _ = run(state, model, deadline=deadline)

    # Then it hands off after the tool ran, with the result checkpointed and no second model call
    assert step is Step.HANDED_OFF
    assert len(model.requests) == 1
    assert "call_1" in tool_messages(checkpoints[-1].messages)


def test_model_failure_ends_the_run_in_error_with_the_reason():
    # Given a model that fails
    model = ScriptedModel(ModelFailure("model request failed: HTTP 500: boom"))
    state = new_state()

    # When the run advances
    step, _, _ = run(state, model)

    # Then the run is ERROR and its content says why
    assert step is Step.FAILED
    assert state.status == "ERROR"
    assert "HTTP 500: boom" in state.content
    assert state.error == state.content


def test_a_failed_run_can_be_advanced_again_and_complete():
    # Given a run that failed on its first model call
    model = ScriptedModel(ModelFailure("timed out"), text("Here you go."))
    state = new_state()
    run(state, model)

    # When it is retried
    state.status = "RUNNING"
    step, _, _ = run(state, model)

    # Then it completes, sending the user's message once
    assert step is Step.COMPLETED
    assert state.content == "Here you go."
    assert [m["content"] for m in model.requests[1] if m["role"] == "user"] == [
        "Delete 50 old records from the users table"
    ]


def test_tool_call_ids_reused_across_turns_still_run_and_get_answered():
    # Given an OpenAI-compatible server that numbers tool calls per turn ("call_0" every turn)
    model = ScriptedModel(
        calls(("call_0", "count_records", {"table_name": "users"})),
        calls(("call_0", "count_records", {"table_name": "orders"})),
        text("users and orders counted"),
    )
    state = new_state("count users, then orders")

    # When the run advances
    step, _, _ = run(state, model)

    # Then both calls ran, and every assistant tool-call turn the model sees is answered
    assert step is Step.COMPLETED
    assert executed == [
        ("count_records", {"table_name": "users"}),
        ("count_records", {"table_name": "orders"}),
    ]
    last = model.requests[-1]
    assert [m["role"] for m in last[1:]] == ["user", "assistant", "tool", "assistant", "tool"]
    assert last[-1]["content"] == "orders has 120 records"
