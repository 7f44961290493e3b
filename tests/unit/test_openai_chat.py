"""OpenAIChat through the real openai client against the local stand-in: parsing, retries, deadlines."""

from __future__ import annotations

import json
import time

import pytest

from catalog.data_manager import data_manager
from signoff.models.base import Deadline, ModelFailure
from signoff.models.openai_chat import OpenAIChat

DELETE = [{"role": "user", "content": "Delete 50 old records from the users table"}]


def chat(model, *, retries: int = 2, timeout_s: float = 5.0, slept: list[float] | None = None) -> OpenAIChat:
    return OpenAIChat(
        "gpt-4o-mini",
        api_key="test-key",
        base_url=model.base_url,
        timeout_s=timeout_s,
        max_retries=retries,
        sleep=(slept.append if slept is not None else (lambda s: None)),
    )


def test_a_tool_call_is_parsed(model):
    # When the stand-in is asked to delete records with the seed's tools
    response = chat(model).request(DELETE, data_manager.tool_schemas, Deadline.unlimited())

    # Then one delete_records call comes back with JSON arguments and an id
    [call] = response.tool_calls
    assert call.name == "delete_records"
    assert call.id
    assert json.loads(call.arguments) == {"table_name": "users", "count": 50}
    # and the request carried the messages and tools as OpenAI expects them
    [sent] = model.requests
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"] == DELETE
    assert [t["function"]["name"] for t in sent["tools"]] == ["delete_records", "send_notification"]


def test_plain_text_answer_and_usage(model):
    # When the model answers without tools
    response = chat(model).request(
        [{"role": "user", "content": "hello"}], data_manager.tool_schemas, Deadline.unlimited()
    )

    # Then the text comes back with token counts
    assert response.tool_calls == []
    assert "hello" in (response.content or "")
    assert response.input_tokens > 0
    assert response.output_tokens > 0


def test_no_tools_key_is_sent_when_the_agent_has_no_tools(model):
    chat(model).request([{"role": "user", "content": "hi"}], [], Deadline.unlimited())
    assert "tools" not in model.requests[0]


def test_rate_limit_is_retried_then_succeeds(model):
    # Given the server answers 429 once
    model.inject("429", 1)
    slept: list[float] = []

    # When a request is made
    response = chat(model, slept=slept).request(DELETE, data_manager.tool_schemas, Deadline.unlimited())

    # Then it succeeds on the second attempt after one wait
    assert response.tool_calls[0].name == "delete_records"
    assert len(model.requests) == 2
    assert len(slept) == 1


def test_server_errors_beyond_the_retries_fail_with_the_status(model):
    # Given the server answers 500 to every attempt (1 + 2 retries)
    model.inject("500", 3)

    # When a request is made
    with pytest.raises(ModelFailure) as caught:
        chat(model, retries=2).request(DELETE, data_manager.tool_schemas, Deadline.unlimited())

    # Then it gave up after three attempts and says why
    assert "HTTP 500" in str(caught.value)
    assert len(model.requests) == 3


def test_client_error_is_not_retried(model):
    # Given a request the server refuses (a tool message without a preceding tool call)
    messages = [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "x", "content": "r"}]

    # When it is sent
    with pytest.raises(ModelFailure) as caught:
        chat(model).request(messages, [], Deadline.unlimited())

    # Then it fails at once with the status
    assert "HTTP 400" in str(caught.value)
    assert len(model.requests) == 1


def test_malformed_tool_call_arguments_are_retried(model):
    # Given the server sends tool-call arguments that are not JSON, once
    model.inject("malformed_tool_call", 1)

    # When a request is made
    response = chat(model).request(DELETE, data_manager.tool_schemas, Deadline.unlimited())

    # Then the second attempt's well-formed call is returned
    assert len(model.requests) == 2
    [call] = response.tool_calls
    assert call.name == "delete_records"


def test_malformed_tool_call_every_time_fails_clearly(model):
    model.inject("malformed_tool_call", 2)
    with pytest.raises(ModelFailure, match="malformed"):
        chat(model, retries=1).request(DELETE, data_manager.tool_schemas, Deadline.unlimited())


def test_no_retry_when_the_deadline_leaves_no_time_for_one(model):
    # Given the server fails every time, and the invocation has one second left
    model.inject("500", 5)
    slept: list[float] = []
    deadline = Deadline(lambda: 1000, margin_ms=0)

    # When a request is made
    started = time.monotonic()
    with pytest.raises(ModelFailure, match="HTTP 500"):
        chat(model, retries=3, slept=slept).request(DELETE, data_manager.tool_schemas, deadline)

    # Then it fails after the first attempt, without sleeping
    assert len(model.requests) == 1
    assert slept == []
    assert time.monotonic() - started < 1.0


def test_timeouts_are_retried_then_reported(model):
    # Given the server holds every request longer than the client's timeout
    model.inject("timeout", 2)

    # When a request is made with a 1 s timeout and one retry
    started = time.monotonic()
    with pytest.raises(ModelFailure) as caught:
        chat(model, retries=1, timeout_s=1.0).request(DELETE, data_manager.tool_schemas, Deadline.unlimited())
    elapsed = time.monotonic() - started

    # Then both attempts timed out, the failure says so, and it did not wait for the server
    assert "timed out" in str(caught.value)
    assert len(model.requests) == 2
    assert elapsed < 4.0


def test_timeout_then_success(model):
    model.inject("timeout", 1)
    response = chat(model, retries=1, timeout_s=1.0).request(
        DELETE, data_manager.tool_schemas, Deadline.unlimited()
    )
    assert response.tool_calls[0].name == "delete_records"
    assert len(model.requests) == 2


def test_unreachable_server_fails_with_a_clear_reason():
    # Given a base URL where nothing listens
    unreachable = OpenAIChat(
        "gpt-4o-mini", api_key="k", base_url="http://127.0.0.1:9/v1", max_retries=1, sleep=lambda s: None
    )

    # Then the failure says the model could not be reached
    with pytest.raises(ModelFailure, match="could not reach the model"):
        unreachable.request(DELETE, [], Deadline.unlimited())


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>gateway</html>", "not JSON"),
        (b'{"id": "x", "choices": []}', "has no message"),
        (b'{"error": null}', "has no message"),
    ],
)
def test_an_answer_without_a_message_is_a_model_failure_not_a_crash(body, reason):
    # Given an OpenAI-compatible endpoint that answers 200 with something that is not a completion
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Odd(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Odd)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = OpenAIChat(
            "gpt-4o-mini", api_key="k", base_url=f"http://127.0.0.1:{server.server_port}/v1", max_retries=0
        )
        # When the model is asked
        with pytest.raises(ModelFailure) as caught:
            endpoint.request(DELETE, data_manager.tool_schemas, Deadline.unlimited())
    finally:
        server.shutdown()

    # Then the failure says what was wrong, as the run's error would
    assert reason in str(caught.value)
