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
from enum import StrEnum
from typing import Any

SCHEMA_VERSION = 1


class RunStatus(StrEnum):
    """Where a run is in its life; stored and sent upper case, as AgentOS does."""

    PENDING = "PENDING"  # waiting for the resume worker (background, deadline hand-off)
    RUNNING = "RUNNING"  # an invocation holds it under a lease
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"


class CallState(StrEnum):
    """Where one tool call is in its life (DESIGN.md's second state machine)."""

    PROPOSED = "proposed"
    AWAITING_DECISION = "awaiting_decision"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    OUTCOME_UNKNOWN = "outcome_unknown"


class Requirement(StrEnum):
    """What a paused call waits for."""

    CONFIRMATION = "confirmation"
    USER_INPUT = "user_input"
    EXTERNAL_EXECUTION = "external_execution"


# The one table of the run's allowed moves. A save that leaves the status as it is needs no entry.
RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.PAUSED, RunStatus.COMPLETED, RunStatus.ERROR, RunStatus.PENDING, RunStatus.CANCELLED}
    ),
    RunStatus.PAUSED: frozenset({RunStatus.RUNNING, RunStatus.PENDING, RunStatus.CANCELLED}),
    RunStatus.ERROR: frozenset({RunStatus.RUNNING, RunStatus.PENDING, RunStatus.CANCELLED}),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}

# The one table of a tool call's allowed moves.
CALL_TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    CallState.PROPOSED: frozenset(
        {CallState.AWAITING_DECISION, CallState.APPROVED, CallState.FAILED, CallState.REJECTED}
    ),
    CallState.AWAITING_DECISION: frozenset(
        {CallState.APPROVED, CallState.REJECTED, CallState.EXPIRED, CallState.SUCCEEDED}
    ),
    CallState.APPROVED: frozenset({CallState.EXECUTING, CallState.REJECTED}),
    # Past a dead lease an executing call's outcome is unknown: a human decides again.
    CallState.EXECUTING: frozenset(
        {CallState.SUCCEEDED, CallState.FAILED, CallState.OUTCOME_UNKNOWN, CallState.AWAITING_DECISION}
    ),
    CallState.OUTCOME_UNKNOWN: frozenset({CallState.AWAITING_DECISION}),
    CallState.REJECTED: frozenset(),
    CallState.EXPIRED: frozenset(),
    CallState.SUCCEEDED: frozenset(),
    CallState.FAILED: frozenset(),
}

RUN_STATUSES: frozenset[str] = frozenset(RunStatus)
TOOL_CALL_STATES: frozenset[str] = frozenset(CallState)
REQUIREMENTS: frozenset[str] = frozenset(Requirement)
FINAL_RUN_STATUSES: frozenset[str] = frozenset({RunStatus.COMPLETED, RunStatus.CANCELLED})
RESOLVED_TOOL_STATES: frozenset[str] = frozenset(
    {CallState.REJECTED, CallState.EXPIRED, CallState.SUCCEEDED, CallState.FAILED}
)

REJECTED_MESSAGE = "Function call was rejected by the user"
REJECTED_NOTE = "Tool call was rejected"
EXPIRED_NOTE = "Approval expired"
EXPIRED_MESSAGE = "Nobody decided on this tool call before its approval expired; the tool did not run."
CANCELLED_NOTE = "Run was cancelled"
CANCELLED_MESSAGE = "The run was cancelled; this tool did not run."
INTERRUPTED_NOTE = (
    "The invocation running this tool stopped before its result was saved; it may or may not have "
    "taken effect. Confirm to run it again, or reject."
)
# Before the result of a call an approver changed: the model proposed other arguments.
EDITED_MESSAGE = "An approver changed this call's arguments before it ran. It ran with: {args}"
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


class IllegalTransition(RuntimeError):
    """Code asked a run or a call for a move its table does not allow: a bug, never a user's error."""


def now_epoch() -> int:
    return int(time.time())


def args_digest(tool_name: str, tool_args: dict[str, Any]) -> str:
    """The digest a decision is bound to: the tool's name and its exact arguments."""
    canonical = json.dumps([tool_name, tool_args], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class StateDocumentInvalid(ValueError):
    """A stored run document does not have the shape this code reads."""


# What each stored field may hold, from its annotation: Python types (None allowed where the type
# lists it) or a set of allowed strings. Integers are accepted where floats are (JSON does not tell
# them apart). A field whose annotation is not here fails at import: the table follows the dataclass.
_Kind = tuple[type, ...] | frozenset[str]
_NONE = type(None)
_KIND_OF_ANNOTATION: dict[str, _Kind] = {
    "str": (str,),
    "str | None": (str, _NONE),
    "bool | None": (bool, _NONE),
    "int": (int,),
    "int | None": (int, _NONE),
    "float": (float,),
    "dict[str, Any]": (dict,),
    "dict[str, Any] | None": (dict, _NONE),
    "list[dict[str, Any]]": (list,),
    "list[dict[str, Any]] | None": (list, _NONE),
    "list[str] | None": (list, _NONE),
    "RunStatus": RUN_STATUSES,
    "CallState": TOOL_CALL_STATES,
    "Requirement | None": REQUIREMENTS | {None},  # type: ignore[operator]
}
_ENUM_OF_ANNOTATION: dict[str, type[StrEnum]] = {
    "RunStatus": RunStatus,
    "CallState": CallState,
    "Requirement | None": Requirement,
}


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    kind: _Kind | None  # None: a nested document, loaded by its own loader
    enum: type[StrEnum] | None
    required: bool


def _field_specs(cls: type, nested: tuple[str, ...] = ()) -> tuple[_FieldSpec, ...]:
    specs = []
    for spec in fields(cls):
        annotation = str(spec.type)
        if spec.name not in nested and annotation not in _KIND_OF_ANNOTATION:
            raise TypeError(f"{cls.__name__}.{spec.name}: no stored kind for {annotation!r}")
        specs.append(
            _FieldSpec(
                spec.name,
                None if spec.name in nested else _KIND_OF_ANNOTATION[annotation],
                _ENUM_OF_ANNOTATION.get(annotation),
                spec.default is MISSING and spec.default_factory is MISSING,
            )
        )
    return tuple(specs)


def _check(owner: str, name: str, value: Any, kind: _Kind) -> Any:
    if isinstance(kind, frozenset):
        if value in kind:
            return value
    elif float in kind and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    elif isinstance(value, kind) and not (isinstance(value, bool) and bool not in kind):
        return value
    raise StateDocumentInvalid(f"{owner}.{name}: unexpected value {value!r}")


def _load_fields(
    owner: str, specs: tuple[_FieldSpec, ...], data: Any, nested: dict[str, Any] | None = None
) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise StateDocumentInvalid(f"{owner}: expected an object, got {type(data).__name__}")
    values: dict[str, Any] = {}
    missing: list[str] = []
    for spec in specs:
        if spec.name not in data:
            if spec.required:
                missing.append(spec.name)
            continue
        value = data[spec.name]
        if spec.kind is None:
            values[spec.name] = (nested or {})[spec.name](value)
            continue
        value = _check(owner, spec.name, value, spec.kind)
        values[spec.name] = spec.enum(value) if spec.enum is not None and value is not None else value
    if missing:
        raise StateDocumentInvalid(f"{owner}: missing {', '.join(missing)}")
    return values


def _document(obj: Any, specs: tuple[_FieldSpec, ...]) -> dict[str, Any]:
    """The declared fields of ``obj`` and nothing else (slots keep anything else off the object)."""
    return {spec.name: getattr(obj, spec.name) for spec in specs}


@dataclass(frozen=True)
class Stamp:
    """Who decided a call, when and through which channel (written onto the call with the decision)."""

    actor: str | None
    channel: str
    at: int


@dataclass(kw_only=True, slots=True)
class ToolCall:
    """One tool call of a run: the wire object of CONTRACT.md plus Signoff's own bookkeeping.

    Its state moves only through the methods below, each checked against ``CALL_TRANSITIONS``.
    """

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
    state: CallState = CallState.PROPOSED
    requirement: Requirement | None = None
    args_digest: str = ""
    schema_hash: str | None = None
    decided_by: str | None = None
    decided_at: int | None = None
    decision_channel: str | None = None
    decision_digest: str | None = None
    # The digest of the arguments the model proposed, when an approver changed them.
    proposed_digest: str | None = None
    # The approver who changed the arguments (approve with changes); the model is told it ran so.
    edited_by: str | None = None
    # Who may decide it, from the tool when it paused (kept with the approval record).
    approvers: list[str] | None = None
    # What an approver sent with a resolution through the approvals API.
    resolution_data: dict[str, Any] | None = None
    # Epoch seconds after which an undecided call expires (fail closed).
    expires_at: int | None = None
    # What the model is told about this call, once it is resolved.
    model_message: str | None = None

    @classmethod
    def from_document(cls, data: Any) -> ToolCall:
        return cls(**_load_fields("ToolCall", _TOOL_CALL_SPECS, data))

    def document(self) -> dict[str, Any]:
        """The JSON object stored for this call (shares the argument and schema objects)."""
        return _document(self, _TOOL_CALL_SPECS)

    def public(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in PUBLIC_TOOL_KEYS}

    @property
    def pending(self) -> bool:
        return self.state == CallState.AWAITING_DECISION

    def expired_at(self, now: int) -> bool:
        """Whether the call's approval window has passed at ``now`` (whether or not the sweep ran)."""
        return self.expires_at is not None and self.expires_at <= now

    def _move(self, to: CallState) -> None:
        if to not in CALL_TRANSITIONS[self.state]:
            raise IllegalTransition(f"tool call {self.tool_call_id}: {self.state} -> {to}")
        self.state = to

    def _decide(self, to: CallState, stamp: Stamp) -> None:
        """A human's decision: only on a call that awaits one (cancel and expiry are not decisions)."""
        if self.state != CallState.AWAITING_DECISION:
            raise IllegalTransition(f"tool call {self.tool_call_id}: {self.state} is not awaiting a decision")
        self._move(to)
        self._stamp(stamp)

    def _stamp(self, stamp: Stamp) -> None:
        self.decided_by, self.decided_at, self.decision_channel = stamp.actor, stamp.at, stamp.channel
        self.decision_digest = self.args_digest

    # -- proposal -------------------------------------------------------------------------------

    def ready(self) -> None:
        """A call no human needs to see: it may run."""
        self._move(CallState.APPROVED)

    def await_decision(self, requirement: Requirement) -> None:
        """Pause the call for a human: a confirmation, the human's input, or an external result."""
        self._move(CallState.AWAITING_DECISION)
        self.requirement = requirement

    def refuse(self, message: str) -> None:
        """The call cannot run at all (unknown tool, invalid arguments): the model is told why."""
        self._move(CallState.FAILED)
        self.tool_call_error = True
        self.result = self.model_message = message

    # -- decisions ------------------------------------------------------------------------------

    def approve(self, stamp: Stamp, note: str | None = None) -> None:
        self._decide(CallState.APPROVED, stamp)
        self.confirmed, self.requires_confirmation, self.confirmation_note = True, False, note

    def reject(self, stamp: Stamp, note: str | None = None) -> None:
        """Refuse the call; ``note`` is what the model is told (AgentOS's default otherwise)."""
        self._decide(CallState.REJECTED, stamp)
        self.confirmed, self.tool_call_error, self.requires_confirmation = False, True, False
        self.confirmation_note = note or REJECTED_NOTE
        self.model_message = note or REJECTED_MESSAGE

    def answer(self, stamp: Stamp, args: dict[str, Any], schema: list[dict[str, Any]]) -> None:
        """The human's input: the call runs with ``args`` (the digest moves with them, and the one
        the model proposed stays in ``proposed_digest`` for the audit trail)."""
        self._decide(CallState.APPROVED, stamp)
        self.proposed_digest = self.args_digest
        self.tool_args = args
        self.args_digest = self.decision_digest = args_digest(self.tool_name, args)
        self.user_input_schema = schema
        self.answered, self.requires_user_input = True, False
        if self.requires_confirmation:
            self.confirmed, self.requires_confirmation = True, False

    def approve_with_changes(self, stamp: Stamp, args: dict[str, Any], note: str | None = None) -> None:
        """An approver lets the call run with edited arguments; the digest moves with them, and the
        one the model proposed stays in ``proposed_digest`` for the audit trail."""
        self._decide(CallState.APPROVED, stamp)
        self.proposed_digest = self.args_digest
        self.tool_args = args
        self.args_digest = self.decision_digest = args_digest(self.tool_name, args)
        self.confirmed, self.requires_confirmation, self.confirmation_note = True, False, note
        self.edited_by = stamp.actor or "an approver"

    def answer_questions(self, stamp: Stamp, answers: list[dict[str, Any]], told: str) -> None:
        """The human answered the agent's questions (``ask_user``): ``told`` is the model's result."""
        self._decide(CallState.SUCCEEDED, stamp)
        self.user_feedback_schema = answers
        self.result = self.model_message = told
        self.answered, self.tool_call_error, self.requires_user_input = True, False, False

    def supply_result(self, stamp: Stamp, result: str) -> None:
        """The client ran the call itself (external execution) and sent its result."""
        self._decide(CallState.SUCCEEDED, stamp)
        self.result = self.model_message = result
        self.tool_call_error, self.external_execution_required = False, False

    def expire(self, at: int) -> None:
        """Nobody decided in time: fail closed, the model is told the tool did not run."""
        self._move(CallState.EXPIRED)
        self.confirmed, self.tool_call_error = False, True
        self.requires_confirmation = False if self.requires_confirmation else None
        self.confirmation_note, self.model_message = EXPIRED_NOTE, EXPIRED_MESSAGE
        self.decided_at, self.decision_channel = at, "expiry"

    def cancel(self) -> None:
        """The run was cancelled before this call ran."""
        self._move(CallState.REJECTED)
        self.decision_channel = "cancel"
        self.confirmation_note, self.model_message = CANCELLED_NOTE, CANCELLED_MESSAGE

    # -- execution ------------------------------------------------------------------------------

    def start_executing(self) -> None:
        self._move(CallState.EXECUTING)

    def succeed(self, result: str) -> None:
        self._move(CallState.SUCCEEDED)
        self.tool_call_error, self.result, self.model_message = False, result, self._told(result)

    def fail(self, message: str) -> None:
        self._move(CallState.FAILED)
        self.tool_call_error, self.result, self.model_message = True, message, self._told(message)

    def _told(self, outcome: str) -> str:
        """What the model reads of the call's outcome: prefixed, when an approver changed its
        arguments, with the arguments it actually ran with (the model proposed others)."""
        if self.edited_by is None:
            return outcome
        ran_with = json.dumps(self.tool_args, ensure_ascii=False, sort_keys=True, default=str)
        return f"{EDITED_MESSAGE.format(args=ran_with)}\n\n{outcome}"

    def mark_outcome_unknown(self) -> None:
        """Its invocation died while it ran: it may or may not have taken effect; ask a human again."""
        self._move(CallState.OUTCOME_UNKNOWN)
        self._move(CallState.AWAITING_DECISION)
        self.requirement = Requirement.CONFIRMATION
        self.requires_confirmation, self.confirmed = True, None
        self.confirmation_note = INTERRUPTED_NOTE
        self.expires_at = None  # a fresh approval window, and fresh links


_TOOL_CALL_SPECS = _field_specs(ToolCall)


@dataclass(kw_only=True, slots=True)
class RunMetrics:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    duration: float = 0.0
    model_requests: int = 0
    # The provider's time for the run's model requests, and why the last one stopped.
    model_latency_ms: float = 0.0
    stop_reason: str | None = None

    @classmethod
    def from_document(cls, data: Any) -> RunMetrics:
        return cls(**_load_fields("RunMetrics", _METRICS_SPECS, data))

    def document(self) -> dict[str, Any]:
        return _document(self, _METRICS_SPECS)

    def add_usage(self, input_tokens: int, output_tokens: int) -> None:
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.total_tokens = self.input_tokens + self.output_tokens
        self.model_requests += 1


_METRICS_SPECS = _field_specs(RunMetrics)


def _tool_calls(value: Any) -> list[ToolCall]:
    if not isinstance(value, list):
        raise StateDocumentInvalid("RunState.tools: expected a list")
    return [ToolCall.from_document(item) for item in value]


@dataclass(kw_only=True, slots=True)
class RunState:
    """Everything needed to resume a run in a fresh invocation.

    ``messages`` holds this run's Chat Completions messages (user, assistant, tool) in order;
    the system message and the session's history are rebuilt at each model call. The status
    moves only through the methods below, each checked against ``RUN_TRANSITIONS``.
    """

    schema_version: int = SCHEMA_VERSION
    run_id: str
    agent_id: str
    agent_name: str
    agent_version: str
    session_id: str
    user_id: str | None = None
    status: RunStatus = RunStatus.PENDING
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
        return cls(**_load_fields("RunState", _RUN_STATE_SPECS, data, nested))

    def document(self) -> dict[str, Any]:
        """The JSON object stored for this run (shares the message objects; not a deep copy)."""
        out = _document(self, _RUN_STATE_SPECS)
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

    def _move(self, to: RunStatus) -> None:
        if to != self.status and to not in RUN_TRANSITIONS[self.status]:
            raise IllegalTransition(f"run {self.run_id}: {self.status} -> {to}")
        self.status = to

    def claim(self) -> None:
        """An invocation takes the run (saved under a lease); approved calls of the turn will run."""
        self._move(RunStatus.RUNNING)
        self.error = None
        for call in self.open_turn():
            if call.state == CallState.APPROVED:
                call.start_executing()

    def queue(self) -> None:
        """Hand the run to the resume worker (background runs, deadline hand-offs)."""
        self._move(RunStatus.PENDING)

    def pause(self, content: str) -> None:
        self._move(RunStatus.PAUSED)
        self.content = content

    def complete(self, content: str | None = None) -> None:
        self._move(RunStatus.COMPLETED)
        if content is not None:
            self.content = content
        self.error = None

    def fail(self, reason: str) -> None:
        self._move(RunStatus.ERROR)
        self.error = self.content = reason
        self.updated_at = now_epoch()

    def cancel(self) -> None:
        """No paused or approved call of a cancelled run ever runs."""
        self._move(RunStatus.CANCELLED)
        for call in self.tools:
            if call.state in (CallState.AWAITING_DECISION, CallState.APPROVED, CallState.PROPOSED):
                call.cancel()
        self.content = self.content or "Run cancelled"


_RUN_STATE_SPECS = _field_specs(RunState, nested=("tools", "metrics"))
