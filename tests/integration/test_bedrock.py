"""Amazon Bedrock through boto3's real client against the local stand-in: the message mapping a
session that changes provider relies on, the registry's prefixes, and Titan embeddings."""

from __future__ import annotations

import pytest

from signoff import runtime
from signoff.config import Settings
from signoff.models.base import Deadline, ModelFailure
from signoff.models.bedrock_converse import BedrockConverse, TitanEmbeddings, converse_request
from signoff.models.registry import parse_model
from signoff_dev.standin import embed

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "delete_records",
            "description": "Delete records",
            "parameters": {"type": "object", "properties": {"count": {"type": "integer"}}},
        },
    }
]
# A session's messages as an OpenAI run stored them: the next run may go to Bedrock.
OPENAI_HISTORY = [
    {"role": "system", "content": "You help"},
    {"role": "user", "content": "Delete 5 records from the users table"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "delete_records", "arguments": '{"count": 5}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "Deleted 5 records"},
    {"role": "assistant", "content": "delete_records: Deleted 5 records"},
    {"role": "user", "content": "what did I ask before?"},
]


def test_an_openai_session_continues_on_bedrock(bedrock):
    # Given a session whose earlier run was answered by OpenAI
    model = BedrockConverse("anthropic.claude-3-haiku-20240307-v1:0", endpoint_url=bedrock.endpoint_url)

    # When its next message goes to a Bedrock agent
    answer = model.request(OPENAI_HISTORY, TOOLS, Deadline.unlimited())

    # Then Bedrock accepted the history (roles alternate, results answer their calls) and answered
    assert answer.content == "Earlier you asked:\n1. Delete 5 records from the users table"
    assert answer.stop_reason == "end_turn" and answer.input_tokens > 0
    _, body = bedrock.requests[-1]
    assert body["messages"][1]["content"] == [
        {"toolUse": {"toolUseId": "call_1", "name": "delete_records", "input": {"count": 5}}}
    ]


def test_without_tools_earlier_tool_turns_are_sent_as_text():
    # Converse refuses toolUse blocks without a toolConfig: an agent that lost its tools still runs
    body = converse_request("meta.llama3-70b-instruct-v1:0", OPENAI_HISTORY, [])
    assert "toolConfig" not in body
    blocks = [block for message in body["messages"] for block in message["content"]]
    assert all(set(block) == {"text"} and block["text"].strip() for block in blocks)


def test_the_bedrock_prefix_and_agnos_alias_reach_bedrock_with_the_bare_id(bedrock, monkeypatch):
    monkeypatch.setenv("SIGNOFF_BEDROCK_ENDPOINT_URL", bedrock.endpoint_url)
    models = runtime.default_model_factory(Settings.from_env())

    for name in ("bedrock:amazon.nova-micro-v1:0", "aws-bedrock:eu.amazon.nova-micro-v1:0"):
        model = models(name)
        assert model.provider == "AwsBedrock"
        assert model.request([{"role": "user", "content": "hello"}], [], Deadline.unlimited()).content

    assert [model_id for model_id, _ in bedrock.requests] == [
        "amazon.nova-micro-v1:0",
        "eu.amazon.nova-micro-v1:0",
    ]
    assert parse_model("bedrock:anthropic.claude-3-5-sonnet-20240620-v1:0").id == (
        "anthropic.claude-3-5-sonnet-20240620-v1:0"
    )


def test_titan_embeddings_come_back_in_order_at_the_chosen_size(bedrock):
    # Given Titan V2 at 256 dimensions, four requests at a time
    embedder = TitanEmbeddings(dimensions=256, concurrency=4, endpoint_url=bedrock.endpoint_url)
    texts = [f"passage number {i}" for i in range(10)]

    # When ten texts are embedded
    vectors = embedder.embed(texts, Deadline.within(30_000))

    # Then there is one vector per text, in order, each from its own request
    assert vectors == [pytest.approx(embed(text, 256)) for text in texts]
    assert sorted(body["inputText"] for _, body in bedrock.embedding_requests) == sorted(texts)
    assert {(body["dimensions"], body["normalize"]) for _, body in bedrock.embedding_requests} == {
        (256, True)
    }


def test_titan_embeddings_retry_a_throttled_request(bedrock):
    bedrock.inject("429", 1)
    embedder = TitanEmbeddings(dimensions=512, endpoint_url=bedrock.endpoint_url, sleep=lambda _: None)
    assert len(embedder.embed(["one"])[0]) == 512
    assert len(bedrock.embedding_requests) == 2


def test_a_size_titan_v2_cannot_make_is_refused_before_any_request(bedrock):
    with pytest.raises(ValueError, match="256, 512 or 1024"):
        TitanEmbeddings(dimensions=1536, endpoint_url=bedrock.endpoint_url)


def test_the_embeddings_setting_picks_bedrock(bedrock, monkeypatch):
    monkeypatch.setenv("SIGNOFF_EMBEDDING_MODEL", "bedrock:amazon.titan-embed-text-v2:0")
    monkeypatch.setenv("SIGNOFF_EMBEDDING_DIMENSIONS", "1024")
    monkeypatch.setenv("SIGNOFF_BEDROCK_ENDPOINT_URL", bedrock.endpoint_url)
    embedder = runtime._new_embedder(Settings.from_env())
    assert (embedder.model, embedder.dimensions) == ("amazon.titan-embed-text-v2:0", 1024)
    assert len(embedder.embed(["hello"])[0]) == 1024


def test_an_unknown_model_fails_at_once(bedrock):
    model = BedrockConverse("cohere.command-r-v1:0", endpoint_url=bedrock.endpoint_url)
    bedrock_refusal = converse_request("cohere.command-r-v1:0", [{"role": "assistant", "content": "hi"}], [])
    assert bedrock_refusal["messages"][0]["role"] == "user"  # Converse starts with the user
    with pytest.raises(ModelFailure, match="ValidationException"):
        model.request(
            [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "r"}],
            TOOLS,
            Deadline.unlimited(),
        )
    assert len(bedrock.requests) == 1
