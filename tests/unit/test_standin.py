"""The stand-in model's rules (a pure function of the request) and its wire format with the real client."""

from __future__ import annotations

import json
import math

import pytest

from signoff_dev.standin import (
    StandinError,
    StandinModel,
    embed,
    embeddings_response,
    parse_faults,
    respond,
)

SEED = "Delete 50 old records from the users table"


def _tool(name: str) -> dict:
    return {
        "type": "function",
        "function": {"name": name, "parameters": {"type": "object", "properties": {}}},
    }


TOOLS = [_tool("delete_records"), _tool("send_notification"), _tool("lookup_user")]


def _ask(*messages: dict, tools: list | None = None) -> dict:
    body = {"model": "gpt-4o-mini", "messages": list(messages)}
    if tools is not None:
        body["tools"] = tools
    return respond(body)


def _user(text: str) -> dict:
    return {"role": "user", "content": text}


def _calls(answer: dict) -> list[tuple[str, dict]]:
    message = answer["choices"][0]["message"]
    return [
        (c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message.get("tool_calls", [])
    ]


def _content(answer: dict) -> str:
    return answer["choices"][0]["message"]["content"]


def _turn(answer: dict) -> dict:
    message = answer["choices"][0]["message"]
    return {"role": "assistant", "content": message["content"], "tool_calls": message["tool_calls"]}


def test_the_seed_message_proposes_delete_records_users_50():
    answer = _ask(
        {"role": "system", "content": "You help users manage data operations"}, _user(SEED), tools=TOOLS
    )

    assert _calls(answer) == [("delete_records", {"table_name": "users", "count": 50})]
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_") and len(call["id"]) == 5 + 24
    assert answer["object"] == "chat.completion" and answer["model"] == "gpt-4o-mini"
    usage = answer["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_delete_and_notify_in_one_message_are_two_calls_in_one_turn_delete_first():
    answer = _ask(_user(f"{SEED} and notify admin@example.com that the cleanup is done"), tools=TOOLS)

    assert _calls(answer) == [
        ("delete_records", {"table_name": "users", "count": 50}),
        ("send_notification", {"recipient": "admin@example.com", "message": "the cleanup is done"}),
    ]


@pytest.mark.parametrize(
    ("text", "recipient", "message"),
    [
        ("Send a notification to bob saying the backup finished", "bob", "the backup finished"),
        ("notify alice: deploy at 5pm", "alice", "deploy at 5pm"),
    ],
)
def test_notification_requests_propose_send_notification(text, recipient, message):
    assert _calls(_ask(_user(text), tools=TOOLS)) == [
        ("send_notification", {"recipient": recipient, "message": message})
    ]


def test_only_tools_in_the_request_are_proposed():
    answer = _ask(_user(SEED), tools=[_tool("send_notification")])
    assert _calls(answer) == [] and answer["choices"][0]["finish_reason"] == "stop"

    assert _calls(_ask(_user(SEED))) == []
    assert "cannot call nope" in _content(_ask(_user("call nope {}"), tools=TOOLS))


def test_the_generic_form_proposes_the_named_calls_in_one_turn():
    text = 'call lookup_user {"name": "bob"} and call delete_records {"table_name": "a; b", "count": 1}'

    assert _calls(_ask(_user(text), tools=TOOLS)) == [
        ("lookup_user", {"name": "bob"}),
        ("delete_records", {"table_name": "a; b", "count": 1}),
    ]


def test_then_chains_turns_after_the_tool_results():
    user = _user('call lookup_user {"name": "bob"} then call delete_records {"table_name": "t", "count": 2}')
    first = _ask(user, tools=TOOLS)
    assert _calls(first) == [("lookup_user", {"name": "bob"})]
    result = {"role": "tool", "tool_call_id": _turn(first)["tool_calls"][0]["id"], "content": "bob is 42"}

    second = _ask(user, _turn(first), result, tools=TOOLS)

    assert _calls(second) == [("delete_records", {"table_name": "t", "count": 2})]


def test_tool_results_are_summarised_one_line_each_with_a_rejection_note_verbatim():
    user = _user(f"{SEED} and notify ops@example.com that it is done")
    first = _ask(user, tools=TOOLS)
    delete_id, notify_id = (call["id"] for call in _turn(first)["tool_calls"])
    results = [
        {"role": "tool", "tool_call_id": notify_id, "content": "Not now: the users table is under audit"},
        {"role": "tool", "tool_call_id": delete_id, "content": "Deleted 50 records from users"},
    ]

    final = _ask(user, _turn(first), *results, tools=TOOLS)

    assert final["choices"][0]["finish_reason"] == "stop"
    assert _content(final).splitlines() == [
        "delete_records: Deleted 50 records from users",
        "send_notification: Not now: the users table is under audit",
    ]


def test_history_questions_list_the_earlier_user_messages():
    answer = _ask(
        _user("first question"),
        {"role": "assistant", "content": "an answer"},
        _user([{"type": "text", "text": "second one"}]),
        {"role": "assistant", "content": "another"},
        _user("What did I ask before?"),
    )

    assert _content(answer) == "Earlier you asked:\n1. first question\n2. second one"


def test_anything_else_gets_a_text_quoting_the_message():
    answer = _ask(_user("hello there"), tools=TOOLS)
    assert '"hello there"' in _content(answer) and answer["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": "m", "messages": [_user("x")], "stream": True}, "streaming"),
        ({"messages": [_user("x")]}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"role": "tool", "tool_call_id": "c", "content": "x"}]}, "role 'tool'"),
        (
            {
                "model": "m",
                "messages": [
                    _user("x"),
                    {"role": "assistant", "tool_calls": [{"id": "call_1", "function": {"name": "f"}}]},
                    _user("y"),
                ],
            },
            "call_1",
        ),
        ({"model": "m", "messages": [_user("x")], "tools": [_tool("bad name")]}, "tools[0]"),
    ],
)
def test_requests_openai_rejects_are_rejected_the_same_way(body, fragment):
    with pytest.raises(StandinError) as caught:
        respond(body)
    assert caught.value.status == 400 and fragment in caught.value.message
    assert caught.value.body()["error"]["type"] == "invalid_request_error"


def test_embeddings_are_unit_vectors_similar_for_similar_texts():
    a, b, c = embed("delete old records"), embed("delete old record"), embed("weather in paris today")
    dot = lambda x, y: sum(p * q for p, q in zip(x, y, strict=True))  # noqa: E731
    assert len(a) == 1536 and math.isclose(dot(a, a), 1.0, rel_tol=1e-9)
    assert dot(a, b) > 0.8 > 0.3 > dot(a, c)
    assert embed("delete old records") == a
    answer = embeddings_response({"model": "text-embedding-3-small", "input": ["x y", "z"], "dimensions": 8})
    assert [len(item["embedding"]) for item in answer["data"]] == [8, 8]


def test_fault_specs_parse_and_unknown_kinds_fail():
    assert parse_faults("429:2, 500:1,timeout") == [("429", 2), ("500", 1), ("timeout", 1)]
    with pytest.raises(ValueError):
        parse_faults("418")


def test_the_real_openai_client_parses_the_stand_in_and_sees_an_injected_429():
    import openai

    model = StandinModel()
    base_url = model.start()
    try:
        client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=5)
        tools = [_tool("delete_records")]

        completion = client.chat.completions.create(
            model="gpt-4o-mini", messages=[_user(SEED)], tools=tools, stream=False
        )

        [call] = completion.choices[0].message.tool_calls
        assert call.function.name == "delete_records"
        assert json.loads(call.function.arguments) == {"table_name": "users", "count": 50}
        assert completion.usage.total_tokens > 0
        assert model.requests[-1]["messages"] == [_user(SEED)]
        vector = client.embeddings.create(model="text-embedding-3-small", input="hello").data[0].embedding
        assert len(vector) == 1536 and math.isclose(sum(x * x for x in vector), 1.0, rel_tol=1e-5)

        model.inject("429")
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o-mini", messages=[_user(SEED)], tools=tools)
        assert (
            client.chat.completions.create(model="gpt-4o-mini", messages=[_user("hi")])
            .choices[0]
            .message.content
        )
    finally:
        model.stop()
