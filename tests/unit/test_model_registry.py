"""Model strings: which provider serves them and which id it is sent; building through the registry."""

from __future__ import annotations

import sys

import pytest

from signoff import Agent
from signoff.config import Settings
from signoff.models.openai_chat import OpenAIChat
from signoff.models.registry import REGISTRY, ModelRegistry, Provider, parse_model

OPENAI = Provider("openai", "OpenAI", "signoff.models.openai_chat", "build_chat")
ECHO = Provider("echo", "Echo", "tests.support.echo_model", "build_echo", aliases=("echo-v2",))


@pytest.mark.parametrize(
    ("model", "provider", "model_id"),
    [
        ("gpt-4o-mini", "openai", "gpt-4o-mini"),
        ("openai:gpt-4o-mini", "openai", "gpt-4o-mini"),
        # Fine-tuned OpenAI ids contain colons; "ft" is not a provider
        ("ft:gpt-4o-mini:org::id", "openai", "ft:gpt-4o-mini:org::id"),
        ("openai:ft:gpt-4o-mini:org::id", "openai", "ft:gpt-4o-mini:org::id"),
        # A Bedrock id ends in ":0"; without a registered prefix it is a bare (OpenAI) id, unchanged
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", "openai", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
        # Bedrock, by its prefix or Agno's alias; the id keeps its own colon
        (
            "bedrock:anthropic.claude-3-5-sonnet-20240620-v1:0",
            "bedrock",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        (
            "aws-bedrock:us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "bedrock",
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        ("mystery:model", "openai", "mystery:model"),
    ],
)
def test_the_model_string_splits_at_the_first_colon_only_after_a_registered_provider(
    model, provider, model_id
):
    ref = parse_model(model)
    assert (ref.provider.name, ref.id) == (provider, model_id)


@pytest.mark.parametrize(
    ("model", "provider", "model_id"),
    [
        ("echo:a:b", "echo", "a:b"),
        ("echo-v2:a:b", "echo", "a:b"),
        ("openai:echo:x", "openai", "echo:x"),
        ("a:echo:x", "openai", "a:echo:x"),
    ],
)
def test_aliases_name_the_same_provider(model, provider, model_id):
    registry = ModelRegistry([OPENAI, ECHO])
    ref = registry.parse(model)
    assert (ref.provider.name, ref.id) == (provider, model_id)


@pytest.mark.parametrize("model", ["", "   ", "openai:", "openai: "])
def test_an_empty_model_or_a_provider_without_an_id_is_refused(model):
    with pytest.raises(ValueError, match="model"):
        parse_model(model)


def test_a_prefix_can_be_registered_once():
    registry = ModelRegistry([OPENAI, ECHO])
    with pytest.raises(ValueError, match="already"):
        registry.register(Provider("echo2", "Echo2", "m", "f", aliases=("echo",)))
    with pytest.raises(ValueError, match="':'"):
        registry.register(Provider("a:b", "AB", "m", "f"))
    assert registry.prefixes() == ["echo", "echo-v2", "openai"]


def test_registering_imports_nothing_and_building_imports_the_providers_module():
    # Given a provider registered by module path and factory name
    sys.modules.pop("tests.support.echo_model", None)
    registry = ModelRegistry([OPENAI, ECHO])
    assert "tests.support.echo_model" not in sys.modules

    # When one of its models is built
    model = registry.build("echo-v2:small:1", Settings(), {"echo_key": "k-1"}.__getitem__)

    # Then the module is imported, the model is sent the bare id, and it carries the recorded name
    assert "tests.support.echo_model" in sys.modules
    assert (model.id, model.provider, model.key) == ("small:1", "Echo", "k-1")


def test_the_openai_provider_builds_a_chat_model_with_the_bare_id_and_the_settings():
    # Given settings with an OpenAI-compatible endpoint, and a key from the secret getter
    settings = Settings(openai_base_url="http://127.0.0.1:9/v1", model_timeout_s=7, model_max_retries=1)
    asked: list[str] = []

    def secret(name: str) -> str:
        asked.append(name)
        return "sk-from-secret"

    # When a prefixed model string is built
    model = REGISTRY.build("openai:ft:gpt-4o-mini:org::id", settings, secret)

    # Then it is an OpenAI chat model for the bare id, recorded as Agno names the provider
    assert isinstance(model, OpenAIChat)
    assert (model.id, model.provider) == ("ft:gpt-4o-mini:org::id", "OpenAI")
    assert asked == ["openai_api_key"]
    assert (model._api_key, model._base_url, model._timeout_s, model._max_retries) == (
        "sk-from-secret",
        "http://127.0.0.1:9/v1",
        7,
        1,
    )


@pytest.mark.parametrize("model", ["gpt-4o-mini", "openai:gpt-4o", "ft:gpt-4o-mini:org::id", "mystery:model"])
def test_an_agent_accepts_any_non_empty_model(model):
    assert Agent(id="a", name="A", model=model).model == model


@pytest.mark.parametrize("model", ["", "openai:"])
def test_an_agent_with_an_empty_model_is_refused_when_it_is_defined(model):
    with pytest.raises(ValueError, match=r"agent a: .*model"):
        Agent(id="a", name="A", model=model)
