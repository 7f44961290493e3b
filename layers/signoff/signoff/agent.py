"""Agents: a model, instructions and tools, declared once and looked up by id."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from signoff.errors import AgentNotFound
from signoff.tools import Tool


@dataclass(frozen=True)
class Agent:
    """An agent that Signoff can run.

    Attributes:
        id: the id in the URL (``/agents/{id}/runs``).
        name: a human-readable name, returned as ``agent_name``.
        model: the model: a provider prefix and the provider's model id (``openai:gpt-4o-mini``), or
            a bare id, which is OpenAI's (``gpt-4o-mini``, ``ft:gpt-4o-mini:org::id``). Only a
            registered prefix is one (``signoff.models.registry``); an empty model is refused here.
        instructions: lines of the system message.
        tools: the tools the model may call.
        markdown: ask the model to format its answers as markdown.
        description: an optional first line of the system message.
        history_runs: earlier completed runs of the session the model sees; ``None`` uses the
            deployment's ``SIGNOFF_HISTORY_RUNS``.
        max_turns: model turns one run may take; ``None`` uses ``SIGNOFF_MAX_TURNS``.
        approval_ttl_seconds: how long a paused tool call waits for a decision before it expires.
        knowledge: a knowledge base the agent may search: adds the ``search_knowledge_base``
            tool (read-only, no confirmation); what it returns is listed in the run's
            ``references``, so an approver sees what the agent read.
    """

    id: str
    name: str
    model: str = "gpt-4o-mini"
    instructions: Sequence[str] | str = ()
    tools: Sequence[Tool] = ()
    markdown: bool = False
    description: str | None = None
    history_runs: int | None = None
    max_turns: int | None = None
    approval_ttl_seconds: int = 24 * 3600
    knowledge: str | None = None
    _tools_by_name: dict[str, Tool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from signoff.models.registry import parse_model

        try:
            parse_model(self.model)
        except (TypeError, ValueError) as error:
            raise ValueError(f"agent {self.id}: {error}") from None
        if self.knowledge:
            from signoff.knowledge import TOOL_NAME, search_tool

            if all(t.name != TOOL_NAME for t in self.tools):
                object.__setattr__(self, "tools", (*self.tools, search_tool(self.knowledge)))
        by_name = {t.name: t for t in self.tools}
        if len(by_name) != len(self.tools):
            raise ValueError(f"agent {self.id}: two tools share a name")
        object.__setattr__(self, "_tools_by_name", by_name)

    def tool(self, name: str) -> Tool | None:
        """The agent's tool of that name, or ``None``."""
        return self._tools_by_name.get(name)

    def with_knowledge_search(self, search: Callable[..., Any] | None) -> Agent:
        """This agent with its knowledge tool bound to ``search(kb, query, limit, filters)``.

        The service binds it for each run (the store and embedder are the invocation's); the
        tool's schema, and so the agent's version, stay the same.
        """
        if not self.knowledge or search is None:
            return self
        from signoff.knowledge import search_tool

        bound = search_tool(self.knowledge, search)
        return dataclasses.replace(
            self, tools=tuple(bound if t.name == bound.name else t for t in self.tools)
        )

    @property
    def system_message(self) -> str:
        """The system message: description, instructions as a list, the markdown request."""
        lines = [self.description] if self.description else []
        instructions = [self.instructions] if isinstance(self.instructions, str) else list(self.instructions)
        lines.extend(f"- {line}" for line in instructions)
        if self.markdown:
            lines.append("Use markdown to format your answers.")
        return "\n".join(lines)

    @property
    def tool_schemas(self) -> list[dict]:
        """The tools as the Chat Completions API takes them."""
        return [t.openai_schema() for t in self.tools]

    @property
    def version(self) -> str:
        """A digest of what the model and the approvers see: instructions and tool schemas."""
        payload = json.dumps([self.model, self.system_message, [t.schema_hash for t in self.tools]])
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


class AgentCatalog:
    """The agents of one deployment, by id."""

    def __init__(self, agents: Iterable[Agent]) -> None:
        self._agents = {a.id: a for a in agents}

    @classmethod
    def from_module(cls, module_name: str) -> AgentCatalog:
        """Load the ``AGENTS`` list of a module (the agents layer's ``catalog`` by default)."""
        return cls(importlib.import_module(module_name).AGENTS)

    def get(self, agent_id: str) -> Agent:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise AgentNotFound() from None

    def find(self, agent_id: str) -> Agent | None:
        """The agent, or None when this deployment has no such agent (any more)."""
        return self._agents.get(agent_id)

    def __iter__(self):
        return iter(self._agents.values())
