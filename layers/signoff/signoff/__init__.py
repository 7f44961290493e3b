"""Signoff: LLM agents that pause for a human's sign-off, serverless on AWS Lambda."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from signoff.agent import Agent
    from signoff.questions import ask_user
    from signoff.tools import Tool, UserInputField, approval, tool

__all__ = ["Agent", "Tool", "UserInputField", "approval", "ask_user", "tool"]

# Loaded on first use: every handler imports some ``signoff.*`` module, which runs this file, and
# none should pay for the agent and tool machinery it does not need.
_HOMES = {
    "Agent": "signoff.agent",
    "Tool": "signoff.tools",
    "UserInputField": "signoff.tools",
    "tool": "signoff.tools",
    "approval": "signoff.tools",
    "ask_user": "signoff.questions",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'signoff' has no attribute {name!r}")
