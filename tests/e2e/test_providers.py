"""The seed's flow, rejections, several calls in a turn, user input and model faults, against both
providers: OpenAI through the openai client and Amazon Bedrock through boto3's ``bedrock-runtime``
client, each against its local stand-in (SigV4, serialization and botocore's errors all run)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.agents import EXECUTIONS

DELETE = "Delete 50 old records from the users table"
TWO_CALLS = "Delete 50 old records from the users table and notify bob@example.com saying it is done"


@dataclass
class Provider:
    name: str
    recorded: str
    data_manager: str
    ops: str
    standin: Any

    def requests(self) -> list[dict[str, Any]]:
        """The request bodies the provider's stand-in received."""
        return [r if isinstance(r, dict) else r[1] for r in self.standin.requests]


@pytest.fixture(params=["openai", "bedrock"])
def provider(request, api, model, bedrock) -> Provider:
    if request.param == "openai":
        return Provider("openai", "OpenAI", "data_manager", "ops", model)
    return Provider("bedrock", "AwsBedrock", "data_manager_bedrock", "ops_bedrock", bedrock)


def _start(api, agent: str, message: str = DELETE, session: str = "s-prov") -> dict:
    response = api.start(message, agent_id=agent, session_id=session)
    assert response.status == 200, response
    return response.json()


def _continue(api, agent: str, run_id: str, tools: Any = None, session: str = "s-prov") -> dict:
    response = api.continue_(run_id, tools, agent_id=agent, session_id=session)
    assert response.status == 200, response
    return response.json()


def test_the_seed_flow_pauses_then_completes_with_the_tool_result(api, provider):
    # Given the seed's request to an agent on this provider
    paused = _start(api, provider.data_manager)

    # Then it pauses on delete_records(users, 50), and the run records the provider and the usage
    assert paused["status"] == "PAUSED"
    [call] = paused["tools"]
    assert (call["tool_name"], call["tool_args"]) == ("delete_records", {"table_name": "users", "count": 50})
    assert paused["model_provider"] == provider.recorded
    assert ":" not in paused["model"].split(".")[0]  # the bare id, no provider prefix
    assert paused["metrics"]["input_tokens"] > 0 and paused["metrics"]["output_tokens"] > 0

    # When the human confirms
    done = _continue(
        api,
        provider.data_manager,
        paused["run_id"],
        [{"tool_call_id": call["tool_call_id"], "confirmed": True}],
    )

    # Then the tool ran once and the model answered with its result
    assert done["status"] == "COMPLETED"
    assert done["tools"][0]["result"] == "Deleted 50 records from users"
    assert "Deleted 50 records from users" in done["content"]
    # And the stored messages keep the provider-neutral shape
    roles = [m["role"] for m in done["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert done["messages"][1]["tool_calls"][0]["function"]["name"] == "delete_records"


def test_a_rejection_with_a_note_reaches_the_model_and_the_tool_never_runs(api, provider):
    paused = _start(api, provider.data_manager, session="s-rej")
    call_id = paused["tools"][0]["tool_call_id"]
    EXECUTIONS.clear()

    # When the human rejects with a note
    done = _continue(
        api,
        provider.data_manager,
        paused["run_id"],
        [{"tool_call_id": call_id, "confirmed": False, "confirmation_note": "users is production"}],
        session="s-rej",
    )

    # Then the model was told the note as the tool's result, and answered with it
    assert done["status"] == "COMPLETED"
    assert done["tools"][0]["result"] is None and done["tools"][0]["confirmed"] is False
    assert "delete_records: users is production" in done["content"]
    assert EXECUTIONS == []


def test_several_calls_in_one_turn_are_decided_one_by_one(api, provider):
    # Given one turn that proposes two calls
    paused = _start(api, provider.data_manager, TWO_CALLS, session="s-two")
    assert [t["tool_name"] for t in paused["tools"]] == ["delete_records", "send_notification"]
    delete, notify = (t["tool_call_id"] for t in paused["tools"])

    # When the human confirms one and rejects the other
    done = _continue(
        api,
        provider.data_manager,
        paused["run_id"],
        [{"tool_call_id": delete, "confirmed": True}, {"tool_call_id": notify, "confirmed": False}],
        session="s-two",
    )

    # Then both results went back to the model in one turn
    assert done["status"] == "COMPLETED"
    assert done["content"].splitlines() == [
        "delete_records: Deleted 50 records from users",
        "send_notification: Function call was rejected by the user",
    ]


def test_bedrock_sends_both_results_of_a_turn_in_one_message_with_their_status(api, bedrock):
    paused = _start(api, "data_manager_bedrock", TWO_CALLS, session="s-two-b")
    delete, notify = (t["tool_call_id"] for t in paused["tools"])
    _continue(
        api,
        "data_manager_bedrock",
        paused["run_id"],
        [{"tool_call_id": delete, "confirmed": True}, {"tool_call_id": notify, "confirmed": False}],
        session="s-two-b",
    )

    model_id, body = bedrock.requests[-1]
    assert model_id == "us.anthropic.claude-3-5-haiku-20241022-v1:0"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    results = [block["toolResult"] for block in body["messages"][-1]["content"]]
    assert [(r["toolUseId"], r["status"]) for r in results] == [(delete, "success"), (notify, "error")]
    assert "You help users manage data operations" in body["system"][0]["text"]


def test_a_model_that_refuses_tool_result_status_is_not_sent_one(api, bedrock):
    # Given a Llama agent (Converse refuses toolResult.status for it) and a rejected call
    paused = _start(api, "data_manager_llama", session="s-llama")
    done = _continue(
        api,
        "data_manager_llama",
        paused["run_id"],
        [{"tool_call_id": paused["tools"][0]["tool_call_id"], "confirmed": False}],
        session="s-llama",
    )

    # Then the run completes: the result went without a status
    assert done["status"] == "COMPLETED", done
    _, body = bedrock.requests[-1]
    assert "status" not in body["messages"][-1]["content"][0]["toolResult"]


def test_user_input_is_asked_for_and_used(api, provider):
    # Given a tool whose room the human chooses
    paused = _start(api, provider.ops, 'call book_room {"title": "Standup"}', session="s-ui")
    [call] = paused["tools"]
    assert call["requires_user_input"] is True and call["tool_args"] == {"title": "Standup"}

    # When the human answers
    done = _continue(
        api,
        provider.ops,
        paused["run_id"],
        [{"tool_call_id": call["tool_call_id"], "user_input_schema": [{"name": "room", "value": "Blue"}]}],
        session="s-ui",
    )

    # Then the tool ran with the human's room and the model saw the result
    assert done["status"] == "COMPLETED"
    assert done["content"] == "book_room: Booked Blue for Standup"


@pytest.mark.parametrize("fault", ["429", "500", "malformed_tool_call"])
def test_a_passing_fault_is_retried_and_the_user_never_notices(api, provider, fault):
    # Given a model that fails once
    provider.standin.inject(fault, 1)

    # When a run starts
    run = _start(api, provider.data_manager, session=f"s-{fault}")

    # Then it paused as if nothing had happened, after one more request
    assert run["status"] == "PAUSED"
    assert run["tools"][0]["tool_args"] == {"table_name": "users", "count": 50}
    assert len(provider.requests()) == 2


def test_a_request_that_times_out_is_retried(api, provider):
    provider.standin.inject("timeout", 1)

    run = _start(api, provider.data_manager, session="s-timeout")

    assert run["status"] == "PAUSED"
    assert len(provider.requests()) == 2


def test_an_exhausted_retry_leaves_the_run_error_and_a_continue_resumes_it(api, provider):
    # Given a model that keeps failing
    provider.standin.inject("500", 10)

    # When a run starts
    failed = _start(api, provider.data_manager, session="s-down")

    # Then the run is saved ERROR with the reason
    assert failed["status"] == "ERROR"
    reason = "InternalServerException" if provider.name == "bedrock" else "HTTP 500"
    assert reason in failed["content"]
    assert api.get(failed["run_id"], "s-down", agent_id=provider.data_manager).json()["status"] == "ERROR"

    # When the model is back and the client continues the run
    provider.standin.clear()
    resumed = _continue(api, provider.data_manager, failed["run_id"], session="s-down")

    # Then it resumes from the stored user message
    assert resumed["status"] == "PAUSED"
    assert sum(1 for m in resumed["messages"] if m["role"] == "user") == 1


def test_a_request_bedrock_refuses_fails_at_once_with_bedrocks_reason(api, bedrock, monkeypatch):
    # Given credentials Bedrock does not know (the stand-in checks every signature)
    from signoff.models import bedrock_converse

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-key")
    monkeypatch.setattr(bedrock_converse, "_session", None)

    # When a run starts
    failed = _start(api, "data_manager_bedrock", session="s-denied")

    # Then it ends ERROR after one request: a signature error is not worth retrying
    assert failed["status"] == "ERROR"
    assert "InvalidSignatureException" in failed["content"]
    assert len(bedrock.requests) == 0  # refused before the stand-in read it as a Converse request


def test_a_rejection_with_a_note_is_an_error_result_for_bedrock_and_the_run_records_the_stop(api, bedrock):
    # Given a paused call rejected with a human's note (a text that does not look like an error)
    paused = _start(
        api, "data_manager_bedrock", "Delete 5 old records from the users table", session="s-note-b"
    )
    call_id = paused["tools"][0]["tool_call_id"]
    done = _continue(
        api,
        "data_manager_bedrock",
        paused["run_id"],
        [{"tool_call_id": call_id, "confirmed": False, "confirmation_note": "not today"}],
        session="s-note-b",
    )

    # Then Claude is told the note as the tool's result, marked as an error (the call did not run)
    _model_id, body = bedrock.requests[-1]
    [result] = [block["toolResult"] for block in body["messages"][-1]["content"]]
    assert (result["content"][0]["text"], result["status"]) == ("not today", "error")
    # ... and the run records why the model stopped and how long the provider took
    assert done["metrics"]["stop_reason"] == "end_turn"
    assert done["metrics"]["model_latency_ms"] >= 0
