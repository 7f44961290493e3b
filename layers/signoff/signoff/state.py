"""The persisted state of a run: versioned documents stored as JSONB.

Plain dataclasses, loaded and dumped by hand: every function loads a run on its cold start, and
pydantic's import and model building cost more there than everything else these classes do. A loaded
document is checked field by field (types, allowed values, required keys); unknown keys are ignored,
so a newer writer's extra fields do not break an older reader.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Literal, get_args

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
RUN_STATUSES: frozenset[str] = frozenset(get_args(RunStatus))
TOOL_CALL_STATES: frozenset[str] = frozenset(get_args(ToolCallState))
REQUIREMENTS: frozenset[str] = frozenset({"confirmation", "user_input", "external_execution"})
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


class StateDocumentInvalid(ValueError):
    """A stored run document does not have the shape this code reads."""


# What each stored field may hold: Python types, with None allowed where the type lists it, or a set
# of allowed strings. Integers are accepted where floats are (JSON does not tell them apart).
_Kind = tuple[type, ...] | frozenset[str]


def _check(owner: str, name: str, value: Any, kind: _Kind) -> Any:
    if isinstance(kind, frozenset):
        if value in kind:
            return value
    elif float in kind and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    elif isinstance(value, kind) and not (isinstance(value, bool) and bool not in kind):
        return value
    raise StateDocumentInvalid(f"{owner}.{name}: unexpected value {value!r}")


def _load_fields(cls: type, data: Any, kinds: dict[str, _Kind], nested: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise StateDocumentInvalid(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    values: dict[str, Any] = {}
    missing: list[str] = []
    for spec in fields(cls):
        if spec.name not in data:
            if spec.default is MISSING and spec.default_factory is MISSING:
                missing.append(spec.name)
            continue
        value = data[spec.name]
        if spec.name in nested:
            values[spec.name] = nested[spec.name](value)
        else:
            values[spec.name] = _check(cls.__name__, spec.name, value, kinds[spec.name])
    if missing:
        raise StateDocumentInvalid(f"{cls.__name__}: missing {', '.join(missing)}")
    return values


_STR = (str,)
_OPT_STR = (str, type(None))
_OPT_BOOL = (bool, type(None))
_OPT_INT = (int, type(None))
_DICT = (dict,)
_OPT_DICT = (dict, type(None))
_LIST = (list,)
_OPT_LIST = (list, type(None))


@dataclass(kw_only=True)
class ToolCall:
    """One tool call of a run: the wire object of CONTRACT.md plus Signoff's own bookkeeping."""

    tool_call_id: str
    tool_name: str
    tool_args: dict[str, Any] = field(default_factory=dict)
    tool_call_error: bool | None = None
    result: str | None = None
    metrics: dict[str, Any] | None = None
    child_run_id: str | None = None
    stop_after_tool_call: bool | None = None
    created_at: int = field(default_factory=now_epoch)
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

    @classmethod
    def from_document(cls, data: Any) -> ToolCall:
        return cls(**_load_fields(cls, data, _TOOL_CALL_KINDS, {}))

    def document(self) -> dict[str, Any]:
        """The JSON object stored for this call (shares the argument and schema objects)."""
        return dict(self.__dict__)

    def public(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in PUBLIC_TOOL_KEYS}

    @property
    def pending(self) -> bool:
        return self.state == "awaiting_decision"


_TOOL_CALL_KINDS: dict[str, _Kind] = {
    "tool_call_id": _STR,
    "tool_name": _STR,
    "tool_args": _DICT,
    "tool_call_error": _OPT_BOOL,
    "result": _OPT_STR,
    "metrics": _OPT_DICT,
    "child_run_id": _OPT_STR,
    "stop_after_tool_call": _OPT_BOOL,
    "created_at": (int,),
    "requires_confirmation": _OPT_BOOL,
    "confirmed": _OPT_BOOL,
    "confirmation_note": _OPT_STR,
    "requires_user_input": _OPT_BOOL,
    "user_input_schema": _OPT_LIST,
    "user_feedback_schema": _OPT_LIST,
    "answered": _OPT_BOOL,
    "external_execution_required": _OPT_BOOL,
    "external_execution_silent": _OPT_BOOL,
    "approval_type": _OPT_STR,
    "approval_id": _OPT_STR,
    "state": TOOL_CALL_STATES,
    "requirement": REQUIREMENTS | {None},
    "args_digest": _STR,
    "schema_hash": _OPT_STR,
    "decided_by": _OPT_STR,
    "decided_at": _OPT_INT,
    "decision_channel": _OPT_STR,
    "decision_digest": _OPT_STR,
    "expires_at": _OPT_INT,
    "model_message": _OPT_STR,
}


@dataclass(kw_only=True)
class RunMetrics:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    duration: float = 0.0
    model_requests: int = 0

    @classmethod
    def from_document(cls, data: Any) -> RunMetrics:
        return cls(**_load_fields(cls, data, _METRICS_KINDS, {}))

    def document(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def add_usage(self, input_tokens: int, output_tokens: int) -> None:
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.total_tokens = self.input_tokens + self.output_tokens
        self.model_requests += 1


_METRICS_KINDS: dict[str, _Kind] = {
    "input_tokens": (int,),
    "output_tokens": (int,),
    "total_tokens": (int,),
    "duration": (float,),
    "model_requests": (int,),
}


def _tool_calls(value: Any) -> list[ToolCall]:
    if not isinstance(value, list):
        raise StateDocumentInvalid("RunState.tools: expected a list")
    return [ToolCall.from_document(item) for item in value]


@dataclass(kw_only=True)
class RunState:
    """Everything needed to resume a run in a fresh invocation.

    ``messages`` holds this run's Chat Completions messages (user, assistant, tool) in order;
    the system message and the session's history are rebuilt at each model call.
    """

    schema_version: int = SCHEMA_VERSION
    run_id: str
    agent_id: str
    agent_name: str
    agent_version: str
    session_id: str
    user_id: str | None = None
    status: RunStatus = "PENDING"
    version: int = 1
    created_at: int = field(default_factory=now_epoch)
    updated_at: int = field(default_factory=now_epoch)
    input_content: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[ToolCall] = field(default_factory=list)
    content: str | None = None
    model: str
    model_provider: str = "OpenAI"
    # Base URL of the API as the client reached it, for approval links sent later by workers.
    public_url: str | None = None
    metrics: RunMetrics = field(default_factory=RunMetrics)
    error: str | None = None
    # What tools consulted (e.g. knowledge chunks), so an approver sees what the agent read.
    references: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_document(cls, data: Any) -> RunState:
        """A run from its stored JSON document.

        Raises:
            StateDocumentInvalid: a required key is missing or a value has the wrong type.
        """
        nested = {"tools": _tool_calls, "metrics": RunMetrics.from_document}
        return cls(**_load_fields(cls, data, _RUN_STATE_KINDS, nested))

    def document(self) -> dict[str, Any]:
        """The JSON object stored for this run (shares the message objects; not a deep copy)."""
        out = dict(self.__dict__)
        out["tools"] = [call.document() for call in self.tools]
        out["metrics"] = self.metrics.document()
        return out

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


_RUN_STATE_KINDS: dict[str, _Kind] = {
    "schema_version": (int,),
    "run_id": _STR,
    "agent_id": _STR,
    "agent_name": _STR,
    "agent_version": _STR,
    "session_id": _STR,
    "user_id": _OPT_STR,
    "status": RUN_STATUSES,
    "version": (int,),
    "created_at": (int,),
    "updated_at": (int,),
    "input_content": _STR,
    "messages": _LIST,
    "content": _OPT_STR,
    "model": _STR,
    "model_provider": _STR,
    "public_url": _OPT_STR,
    "error": _OPT_STR,
    "references": _LIST,
}
