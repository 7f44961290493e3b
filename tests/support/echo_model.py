"""A model provider's module for the registry tests: imported only when its first model is built."""

from __future__ import annotations

from typing import Any

from signoff.models.base import ModelResponse


class EchoModel:
    """Answers with its own id and the key it was given."""

    provider = "unset"

    def __init__(self, id: str, key: str) -> None:
        self.id = id
        self.key = key

    def request(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], deadline: Any
    ) -> ModelResponse:
        return ModelResponse(content=f"{self.id} ({self.key})")


def build_echo(model_id: str, settings: Any, secret: Any) -> EchoModel:
    """The factory the registry calls."""
    return EchoModel(model_id, secret("echo_key"))
