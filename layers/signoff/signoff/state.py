"""The persisted state of a run: versioned pydantic documents stored as JSONB."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

RunStatus = Literal["PENDING", "RUNNING", "PAUSED", "COMPLETED", "ERROR", "CANCELLED"]
ToolCallState = Literal[
    "proposed",
    "awaiting_decision",
    "approved",
    "rejected",
    "expired",
    "executing",
    "succeeded",
    "failed",
    "outcome_unknown",
]
FINAL_RUN_STATUSES: frozenset[str] = frozenset({"COMPLETED", "CANCELLED"})
RESOLVED_TOOL_STATES: frozenset[str] = frozenset({"rejected", "expired", "succeeded", "failed"})

REJECTED_MESSAGE = "Function call was rejected by the user"
REJECTED_NOTE = "Tool call was rejected"
PAUSE_CONTENT = {
    "confirmation": "I have tools to execute, but I need confirmation.",
    "user_input": "I have tools to execute, but I need user input.",
    "external_execution": "I have tools to execute, but it needs external execution.",
}

# The keys of a tool object on the wire, in CONTRACT.md's order; each is always present.
PUBLIC_TOOL_KEYS = (
    "tool_call_id",
    "tool_name",
    "tool_args",
    "tool_call_error",
    "result",
    "metrics",
    "child_run_id",
    "stop_after_tool_call",
    "created_at",
    "requires_confirmation",
    "confirmed",
    "confirmation_note",
    "requires_user_input",
    "user_input_schema",
    "user_feedback_schema",
    "answered",
    "external_execution_required",
    "external_execution_silent",
    "approval_type",
    "approval_id",
)


def now_epoch() -> int:
    return int(time.time())


def args_digest(tool_name: str, tool_args: dict[str, Any]) -> str:
    """The digest a decision is bound to: the tool's name and its exact arguments."""
    canonical = json.dumps([tool_name, tool_args], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ToolCall(BaseModel):
    """One tool call of a run: the wire object of CONTRACT.md plus Signoff's own bookkeeping."""

    model_config = ConfigDict(extra="ignore")

    tool_call_id: str
    tool_name: str
    tool_args: dict[str, Any] = Field(default_factory=dict)
    tool_call_error: bool | None = None
    result: str | None = None
    metrics: dict[str, Any] | None = None
    child_run_id: str | None = None
    stop_after_tool_call: bool | None = None
    created_at: int = Field(default_factory=now_epoch)
    requires_confirmation: bool | None = None
    confirmed: bool | None = None
    confirmation_note: str | None = None
    requires_user_input: bool | None = None
    user_input_schema: list[dict[str, Any]] | None = None
    user_feedback_schema: list[dict[str, Any]] | None = None
    answered: bool | None = None
    external_execution_required: bool | None = None
    external_execution_silent: bool | None = None
    approval_type: str | None = None
    approval_id: str | None = None

    # Bookkeeping, never on the wire.
    state: ToolCallState = "proposed"
    requirement: Literal["confirmation", "user_input", "external_execution"] | None = None
    args_digest: str = ""
    schema_hash: str | None = None
    decided_by: str | None = None
    decided_at: int | None = None
    decision_channel: str | None = None
    decision_digest: str | None = None
    # Epoch seconds after which an undecided call expires (fail closed).
    expires_at: int | None = None
    # What the model is told about this call, once it is resolved.
    model_message: str | None = None

    def public(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in PUBLIC_TOOL_KEYS}

    @property
    def pending(self) -> bool:
        return self.state == "awaiting_decision"


class RunMetrics(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    duration: float = 0.0
    model_requests: int = 0

    def add_usage(self, input_tokens: int, output_tokens: int) -> None:
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.total_tokens = self.input_tokens + self.output_tokens
        self.model_requests += 1


class RunState(BaseModel):
    """Everything needed to resume a run in a fresh invocation.

    ``messages`` holds this run's Chat Completions messages (user, assistant, tool) in order;
    the system message and the session's history are rebuilt at each model call.
    """

    model_config = ConfigDict(extra="ignore")

    schema_version: int = SCHEMA_VERSION
    run_id: str
    agent_id: str
    agent_name: str
    agent_version: str
    session_id: str
    user_id: str | None = None
    status: RunStatus = "PENDING"
    version: int = 1
    created_at: int = Field(default_factory=now_epoch)
    updated_at: int = Field(default_factory=now_epoch)
    input_content: str
    messages: list[dict[str, Any]] = Field(default_factory=list)
    tools: list[ToolCall] = Field(default_factory=list)
    content: str | None = None
    model: str
    model_provider: str = "OpenAI"
    # Base URL of the API as the client reached it, for approval links sent later by workers.
    public_url: str | None = None
    metrics: RunMetrics = Field(default_factory=RunMetrics)
    error: str | None = None
    # What tools consulted (e.g. knowledge chunks), so an approver sees what the agent read.
    references: list[dict[str, Any]] = Field(default_factory=list)

    def tool(self, tool_call_id: str) -> ToolCall | None:
        return next((t for t in self.tools if t.tool_call_id == tool_call_id), None)

    @property
    def pending_tools(self) -> list[ToolCall]:
        return [t for t in self.tools if t.pending]

    def open_turn(self) -> list[ToolCall]:
        """The tool calls of the last assistant turn that have no tool message yet."""
        answered = {m.get("tool_call_id") for m in self.messages if m.get("role") == "tool"}
        for message in reversed(self.messages):
            if message.get("role") == "assistant":
                ids = [c["id"] for c in message.get("tool_calls") or []]
                return [t for t in self.tools if t.tool_call_id in ids and t.tool_call_id not in answered]
        return []
