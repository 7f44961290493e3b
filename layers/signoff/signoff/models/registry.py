"""Model providers, chosen per agent by the prefix of its model string (``openai:gpt-4o-mini``).

An agent's ``model`` is ``<provider>:<model id>`` or a bare model id, which is OpenAI's. The string
is split at its FIRST colon, and only when what comes before it is a registered provider or alias:
model ids contain colons themselves (``ft:gpt-4o-mini:org::id``, Bedrock's
``anthropic.claude-3-5-sonnet-20240620-v1:0``), so an unknown prefix is part of a bare OpenAI id, not
an error. The id sent to the provider never carries the prefix.

Each provider names its factory lazily, as a module path and a function name, so that registering
one imports nothing: the module is imported when the first model of that provider is built. A
factory is called as ``factory(model_id, settings, secret)``, where ``secret(name)`` returns a secret
setting (``openai_api_key``, ...) from the environment or Secrets Manager, and returns a ``Model``.

Adding a provider is its module plus one line in ``_BUILT_IN``, as Amazon Bedrock's Converse API
was::

    Provider("bedrock", "AwsBedrock", "signoff.models.bedrock_converse", "build_chat", ("aws-bedrock",))
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from signoff.config import Settings
    from signoff.models.base import Model

SecretGetter = Callable[[str], str]
"""``secret(name)``: the secret setting ``name`` (e.g. ``openai_api_key``), or ``""`` when unset."""

DEFAULT_PROVIDER = "openai"


@dataclass(frozen=True)
class Provider:
    """A model provider: how to build its chat models, and the name a run records for it.

    Attributes:
        name: the prefix of model strings, e.g. ``openai`` in ``openai:gpt-4o-mini``.
        recorded_name: the provider name a run records (``model_provider``), as Agno writes it,
            e.g. ``OpenAI``.
        module: the module that holds the factory; imported when the first model is built.
        factory: the factory's name in ``module``: ``factory(model_id, settings, secret) -> Model``.
        aliases: other prefixes that mean this provider (e.g. Agno's ``aws-bedrock``).
    """

    name: str
    recorded_name: str
    module: str
    factory: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelRef:
    """An agent's model string, parsed.

    Attributes:
        provider: the provider that serves it.
        id: the model id the provider is sent (no prefix).
    """

    provider: Provider
    id: str


class ModelRegistry:
    """Providers by prefix; parses model strings and builds their chat models.

    Args:
        providers: the providers to register; one of them must be named ``DEFAULT_PROVIDER`` (bare
            model ids are its).
    """

    def __init__(self, providers: Iterable[Provider] = ()) -> None:
        self._by_prefix: dict[str, Provider] = {}
        for provider in providers:
            self.register(provider)

    def register(self, provider: Provider) -> None:
        """Add a provider under its name and aliases.

        Args:
            provider: the provider.

        Raises:
            ValueError: a prefix is already taken, or contains a colon.
        """
        for prefix in (provider.name, *provider.aliases):
            if not prefix or ":" in prefix:
                raise ValueError(f"a provider prefix must be non-empty and without ':', not {prefix!r}")
            taken = self._by_prefix.get(prefix)
            if taken is not None:
                raise ValueError(f"the model provider prefix {prefix!r} is already {taken.name!r}")
        for prefix in (provider.name, *provider.aliases):
            self._by_prefix[prefix] = provider

    def prefixes(self) -> list[str]:
        """The registered prefixes (names and aliases), sorted."""
        return sorted(self._by_prefix)

    def parse(self, model: str) -> ModelRef:
        """Split a model string into its provider and the id that provider is sent.

        The split is at the first colon, and only when the part before it is a registered provider
        or alias; anything else is a bare id of ``DEFAULT_PROVIDER`` (OpenAI), colons included.

        Args:
            model: e.g. ``openai:gpt-4o-mini``, ``gpt-4o-mini`` or ``ft:gpt-4o-mini:org::id``.

        Returns:
            The provider and the model id.

        Raises:
            ValueError: the string is empty, or names a provider but no model id (``openai:``).
        """
        if not isinstance(model, str):
            raise TypeError(f"a model string must be a str, not {type(model).__name__}")
        if not model.strip():
            raise ValueError("the model must not be empty: give a model id, e.g. 'openai:gpt-4o-mini'")
        prefix, colon, rest = model.partition(":")
        provider = self._by_prefix.get(prefix) if colon else None
        if provider is None:
            return ModelRef(self._by_prefix[DEFAULT_PROVIDER], model)
        if not rest.strip():
            raise ValueError(f"the model {model!r} names the provider {prefix!r} but no model id")
        return ModelRef(provider, rest)

    def build(self, model: str, settings: Settings, secret: SecretGetter) -> Model:
        """Build the chat model of a model string (imports its provider's module on first use).

        Args:
            model: the agent's model string.
            settings: the settings the provider reads (endpoint, timeouts, retries).
            secret: returns a secret setting by name (the provider's key).

        Returns:
            The model; its ``id`` is the bare model id, its ``provider`` the provider's recorded name.
        """
        ref = self.parse(model)
        factory = getattr(importlib.import_module(ref.provider.module), ref.provider.factory)
        built = factory(ref.id, settings, secret)
        built.provider = ref.provider.recorded_name
        return built


# The providers that exist. A bare model id is OpenAI's (or any OpenAI-compatible server's,
# with OPENAI_BASE_URL).
_BUILT_IN = (
    Provider("openai", "OpenAI", "signoff.models.openai_chat", "build_chat"),
    Provider("bedrock", "AwsBedrock", "signoff.models.bedrock_converse", "build_chat", ("aws-bedrock",)),
)

REGISTRY = ModelRegistry(_BUILT_IN)
"""The registry the runtime builds models with and agents are checked against."""


def parse_model(model: str) -> ModelRef:
    """``REGISTRY.parse``: the provider and the bare id of a model string (see ``ModelRegistry.parse``)."""
    return REGISTRY.parse(model)
