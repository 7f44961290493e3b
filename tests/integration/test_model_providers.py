"""Models built through the provider registry talk to the provider with the bare model id."""

from __future__ import annotations

from signoff import runtime
from signoff.config import Settings
from signoff.models.base import Deadline


def test_a_prefixed_model_string_reaches_the_provider_as_its_bare_id(model, monkeypatch):
    # Given the runtime's models for settings that point at an OpenAI-compatible server
    monkeypatch.setenv("OPENAI_API_KEY", "standin")
    models = runtime.default_model_factory(Settings.from_env())

    # When agents with and without the provider prefix (and a fine-tuned id with colons) call it
    for name in ("openai:gpt-4o-mini", "gpt-4o-mini", "openai:ft:gpt-4o-mini:org::id"):
        answer = models(name).request([{"role": "user", "content": "hello"}], [], Deadline.unlimited())
        assert answer.content

    # Then the server saw the ids without the prefix
    assert [request["model"] for request in model.requests] == [
        "gpt-4o-mini",
        "gpt-4o-mini",
        "ft:gpt-4o-mini:org::id",
    ]

    # And each model string has one model, reused
    assert models("openai:gpt-4o-mini") is models("openai:gpt-4o-mini")
    assert models("openai:gpt-4o-mini") is not models("gpt-4o-mini")
    assert {models(n).provider for n in ("openai:gpt-4o-mini", "gpt-4o-mini")} == {"OpenAI"}
