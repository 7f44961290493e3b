"""The seed's human-in-the-loop flow through the Lambda handlers, as its curl commands drive it."""

from __future__ import annotations

import json

import pytest

from tests.support.api import Response


def _paused_call(response: Response) -> tuple[str, str]:
    run = response.json()
    assert run["status"] == "PAUSED", response
    return run["run_id"], run["tools"][0]["tool_call_id"]


def test_seed_start_pauses_with_delete_records_awaiting_confirmation(api):
    # Given the seed's first curl command
    # When it starts a run
    response = api.start(user_id="test_user", session_id="test_session")

    # Then the run is PAUSED with delete_records(users, 50) waiting for a human
    assert response.status == 200
    run = response.json()
    assert run["status"] == "PAUSED"
    assert run["content"] == "I have tools to execute, but I need confirmation."
    assert (run["agent_id"], run["agent_name"], run["session_id"], run["user_id"]) == (
        "data_manager",
        "Data Manager",
        "test_session",
        "test_user",
    )
    [call] = run["tools"]
    assert call["tool_name"] == "delete_records"
    assert call["tool_args"] == {"table_name": "users", "count": 50}
    assert call["requires_confirmation"] is True and call["confirmed"] is None and call["result"] is None
    assert set(call) >= {"tool_call_id", "tool_call_error", "external_execution_required", "approval_id"}
    [requirement] = run["requirements"]
    assert requirement["tool_execution"]["tool_call_id"] == call["tool_call_id"]
    assert run["input"] == {"input_content": "Delete 50 old records from the users table"}
    assert run["metrics"]["total_tokens"] > 0


def test_seed_minimal_continue_completes_with_the_tool_result(api):
    # Given a paused run
    run_id, call_id = _paused_call(api.start(user_id="test_user", session_id="test_session"))

    # When the seed's second curl command confirms it
    response = api.continue_(
        run_id, [{"tool_call_id": call_id, "confirmed": True}], session_id="test_session", stream="false"
    )

    # Then the same run completes and the tool ran with the stored arguments
    assert response.status == 200
    run = response.json()
    assert run["run_id"] == run_id and run["status"] == "COMPLETED"
    [call] = run["tools"]
    assert call["result"] == "Deleted 50 records from users"
    assert call["confirmed"] is True and call["requires_confirmation"] is False
    assert "Deleted 50 records from users" in run["content"]
    # And reading it back gives the same
    again = api.get(run_id, "test_session").json()
    assert again["status"] == "COMPLETED" and again["tools"][0]["result"] == "Deleted 50 records from users"


def test_full_echo_of_the_paused_tool_object_works_like_the_minimal_payload(api):
    # Given a paused run and the tool object exactly as the client received it
    paused = api.start(user_id="test_user", session_id="s-echo").json()
    echoed = dict(paused["tools"][0], confirmed=True)

    # When an AgentOS client sends the whole object back
    run = api.continue_(paused["run_id"], [echoed], session_id="s-echo").json()

    # Then it completes as with the minimal payload
    assert run["status"] == "COMPLETED"
    assert run["tools"][0]["result"] == "Deleted 50 records from users"


@pytest.mark.parametrize("form", ["urlencoded", "json"])
def test_urlencoded_and_json_bodies_drive_the_same_flow(api, form):
    paused = api.start(user_id="u1", session_id=f"s-{form}", form=form)
    run_id, call_id = _paused_call(paused)
    done = api.continue_(
        run_id, [{"tool_call_id": call_id, "confirmed": True}], session_id=f"s-{form}", form=form
    )
    assert done.json()["status"] == "COMPLETED"


def test_rejection_with_a_note_tells_the_model_and_never_runs_the_tool(api, model):
    run_id, call_id = _paused_call(api.start(session_id="s-rej"))

    response = api.continue_(
        run_id,
        [{"tool_call_id": call_id, "confirmed": False, "confirmation_note": "users is production"}],
        session_id="s-rej",
    )

    run = response.json()
    assert run["status"] == "COMPLETED"
    [call] = run["tools"]
    assert call["result"] is None
    assert (call["confirmed"], call["tool_call_error"], call["requires_confirmation"]) == (False, True, False)
    assert call["confirmation_note"] == "users is production"
    tool_messages = [m for m in model.requests[-1]["messages"] if m["role"] == "tool"]
    assert tool_messages == [{"role": "tool", "tool_call_id": call_id, "content": "users is production"}]
    assert "users is production" in run["content"]


def test_rejection_without_a_note_uses_the_agentos_texts(api, model):
    run_id, call_id = _paused_call(api.start(session_id="s-rej2"))

    run = api.continue_(run_id, [{"tool_call_id": call_id, "confirmed": False}], session_id="s-rej2").json()

    assert run["tools"][0]["confirmation_note"] == "Tool call was rejected"
    tool_message = next(m for m in model.requests[-1]["messages"] if m["role"] == "tool")
    assert tool_message["content"] == "Function call was rejected by the user"


def test_two_calls_in_one_turn_are_decided_one_at_a_time(api, model):
    # Given one message asking for two confirmation-required actions
    paused = api.start(
        "Delete 50 old records from the users table and send a notification to bob@example.com "
        "saying the cleanup is done",
        session_id="s-two",
    ).json()
    assert paused["status"] == "PAUSED"
    names = [t["tool_name"] for t in paused["tools"]]
    assert names == ["delete_records", "send_notification"]
    first, second = (t["tool_call_id"] for t in paused["tools"])
    requests_before = len(model.requests)

    # When only the first is confirmed
    partial = api.continue_(
        paused["run_id"], [{"tool_call_id": first, "confirmed": True}], session_id="s-two"
    ).json()

    # Then it ran, the second still waits, and the model was not called
    assert partial["status"] == "PAUSED"
    assert [r["tool_execution"]["tool_call_id"] for r in partial["requirements"]] == [second]
    assert partial["tools"][0]["result"] == "Deleted 50 records from users"
    assert len(model.requests) == requests_before

    # When the second is confirmed too
    done = api.continue_(
        paused["run_id"], [{"tool_call_id": second, "confirmed": True}], session_id="s-two"
    ).json()

    # Then the run completes and the model got one tool message per call, in order
    assert done["status"] == "COMPLETED"
    assert done["tools"][1]["result"].startswith("Sent notification to bob@example.com")
    tool_ids = [m["tool_call_id"] for m in model.requests[-1]["messages"] if m["role"] == "tool"]
    assert tool_ids == [first, second]


def test_stream_true_answers_server_sent_events(api):
    response = api.start(session_id="s-stream", stream="true")

    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in response.text.strip().split("\n\n"):
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        data = json.loads(data_line[len("data: ") :])
        assert data["event"] == name_line[len("event: ") :]
        assert {"created_at", "agent_id", "agent_name", "run_id", "session_id"} <= set(data)
        events.append(data)
    assert next(e["event"] for e in events) == "RunStarted"
    assert events[-1]["event"] == "RunPaused"
    assert events[-1]["tools"][0]["tool_name"] == "delete_records"
    assert events[-1]["requirements"]


def test_a_later_run_in_the_session_sees_the_earlier_ones(api, model):
    api.start("Remember that my favourite table is invoices", session_id="s-hist", user_id="u")

    answer = api.start("What did I say before?", session_id="s-hist", user_id="u").json()

    assert answer["status"] == "COMPLETED"
    assert "favourite table is invoices" in answer["content"]
    sent = [m["content"] for m in model.requests[-1]["messages"] if m["role"] == "user"]
    assert sent[0] == "Remember that my favourite table is invoices"


def test_background_answers_501_until_the_queue_exists(api, dump):
    before = dump()
    response = api.start(session_id="s-bg", background="true")
    assert response.status == 501
    assert "background" in response.json()["detail"]
    assert dump() == before


def test_the_sample_events_drive_the_seed_flow(api, runtime_env):
    from signoff_dev.handlers import invoke
    from tests.support.api import Response, load_event

    # Given the sample events shipped in events/
    start = Response(invoke("StartRunFunction", load_event("start_run.json")))
    run_id, call_id = _paused_call(start)

    # When the continue sample is filled in with the ids, as `make invoke` does
    text = json.dumps(load_event("continue_run.json"))
    event = json.loads(text.replace("__RUN_ID__", run_id))
    import base64

    body = base64.b64decode(event["body"]).decode().replace("__TOOL_CALL_ID__", call_id)
    event["body"] = base64.b64encode(body.encode()).decode()
    done = Response(invoke("ContinueRunFunction", event))

    # Then the run completes
    assert done.json()["status"] == "COMPLETED"
    assert done.json()["tools"][0]["result"] == "Deleted 50 records from users"


@pytest.mark.parametrize(("confirmed", "trips"), [(False, 3), (True, 4)], ids=["reject", "confirm"])
def test_database_round_trips_per_continue(api, confirmed, trips):
    # Given a paused run, and the container's one store
    from signoff.runtime import get_store

    run_id, call_id = _paused_call(api.start(session_id="s-trips"))
    store = get_store()
    store.round_trips = 0

    # When the call is decided
    done = api.continue_(run_id, [{"tool_call_id": call_id, "confirmed": confirmed}], session_id="s-trips")

    # Then: load, claim, final save; a tool that ran adds the save of its result before the model
    assert done.json()["status"] == "COMPLETED"
    assert store.round_trips == trips
