"""Use cases: start, continue, cancel and read runs. Load → run → save, nothing else."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from signoff.agent import Agent, AgentCatalog
from signoff.config import Settings
from signoff.errors import (
    BadRequest,
    Conflict,
    LeaseLost,
    NotFound,
    NotImplementedYet,
    RunNotFound,
    SignoffError,
)
from signoff.models.base import Deadline, Model
from signoff.runner import RunContext, Step, advance
from signoff.state import REJECTED_MESSAGE, REJECTED_NOTE, RunState, ToolCall, args_digest, now_epoch
from signoff.store.base import LoadedRun, RunEvent, RunStore, SessionPage
from signoff.tools import ToolArgumentsInvalid

INTERRUPTED_NOTE = (
    "The invocation running this tool stopped before its result was saved; it may or may not have "
    "taken effect. Confirm to run it again, or reject."
)


@dataclass
class Dependencies:
    """What the use cases need from the outside world; the handlers build it once per container."""

    store: RunStore
    catalog: AgentCatalog
    model_for: Callable[[Agent], Model]
    settings: Settings


@dataclass
class StartInput:
    message: str
    session_id: str | None = None
    user_id: str | None = None
    stream: bool = False
    background: bool = False


@dataclass
class ContinueInput:
    session_id: str
    tools: list[dict[str, Any]] | None = None
    user_id: str | None = None
    stream: bool = False
    background: bool = False


@dataclass
class Principal:
    """The caller as authenticated by API Gateway; ``None`` when the route has no authorizer."""

    user_id: str
    groups: tuple[str, ...] = ()


@dataclass
class RunResult:
    state: RunState
    events: list[dict[str, Any]] = field(default_factory=list)


class _Events:
    """Collects the stream events of one invocation (sent as SSE when ``stream=true``)."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.items: list[dict[str, Any]] = []

    def __call__(self, name: str, **fields: Any) -> None:
        self.items.append(
            {
                "event": name,
                "created_at": now_epoch(),
                "agent_id": self.state.agent_id,
                "agent_name": self.state.agent_name,
                "run_id": self.state.run_id,
                "session_id": self.state.session_id,
                **fields,
            }
        )


def start_run(
    deps: Dependencies,
    agent_id: str,
    request: StartInput,
    *,
    principal: Principal | None,
    deadline: Deadline,
) -> RunResult:
    """Start a run: store the user's message, then run until it completes or pauses."""
    agent = deps.catalog.get(agent_id)
    if request.background:
        raise NotImplementedYet("background=true needs the resume queue, which this deployment lacks")
    state = RunState(
        run_id=str(uuid.uuid4()),
        agent_id=agent.id,
        agent_name=agent.name,
        agent_version=agent.version,
        session_id=request.session_id or str(uuid.uuid4()),
        user_id=principal.user_id if principal else request.user_id,
        status="RUNNING",
        input_content=request.message,
        messages=[{"role": "user", "content": request.message}],
        model=agent.model,
    )
    history = deps.store.create_run(
        state, lease_seconds=deps.settings.lease_seconds, history_runs=_history_runs(agent, deps.settings)
    )
    events = _Events(state)
    events("RunStarted", model=agent.model, model_provider=state.model_provider)
    _run(deps, agent, state, history, deadline, events, RunEvent("started", state.user_id, "api"))
    return RunResult(state, events.items)


def continue_run(
    deps: Dependencies,
    agent_id: str,
    run_id: str,
    request: ContinueInput,
    *,
    principal: Principal | None,
    deadline: Deadline,
    channel: str = "api",
) -> RunResult:
    """Apply the decisions in ``request.tools`` to a paused run, then run it on."""
    agent = deps.catalog.get(agent_id)
    if request.background:
        raise NotImplementedYet("background=true needs the resume queue, which this deployment lacks")
    loaded = _load_owned(
        deps,
        agent_id,
        run_id,
        request.session_id,
        request.user_id,
        principal,
        history_runs=_history_runs(agent, deps.settings),
    )
    state = loaded.state
    _check_continuable(loaded)
    actor = principal.user_id if principal else (request.user_id or state.user_id)
    audit: list[RunEvent] = []
    if state.status == "PAUSED":
        if request.tools is None:
            raise BadRequest("tools is required to continue a paused run")
        audit = _apply_decisions(agent, state, request.tools, actor=actor, channel=channel)
    else:  # ERROR, or RUNNING whose invocation died: resume from the last saved step
        audit = _recover_interrupted(agent, state)
    audit.append(RunEvent("continued", actor, channel, {"from_status": state.status}))
    state.status = "RUNNING"
    state.error = None
    try:
        deps.store.save(state, lease_seconds=deps.settings.lease_seconds, events=audit)
    except LeaseLost:
        raise Conflict(_conflict_detail(deps, run_id)) from None
    events = _Events(state)
    events("RunContinued")
    _run(deps, agent, state, loaded.history, deadline, events, None)
    return RunResult(state, events.items)


def cancel_run(
    deps: Dependencies,
    agent_id: str,
    run_id: str,
    *,
    session_id: str | None,
    user_id: str | None,
    principal: Principal | None,
) -> RunResult:
    """Cancel a paused, pending or failed run: no paused tool ever runs afterwards."""
    deps.catalog.get(agent_id)
    loaded = _load_owned(deps, agent_id, run_id, session_id, user_id, principal)
    state = loaded.state
    if state.status == "CANCELLED":
        raise Conflict("run is already cancelled")
    if state.status == "COMPLETED":
        raise Conflict("run is already completed")
    if state.status == "RUNNING" and loaded.lease_live:
        raise Conflict("run is already running")
    actor = principal.user_id if principal else (user_id or state.user_id)
    for call in state.tools:
        if call.state in ("awaiting_decision", "approved", "proposed"):
            call.state = "rejected"
            call.confirmation_note = "Run was cancelled"
            call.model_message = "The run was cancelled; this tool did not run."
    state.status = "CANCELLED"
    state.content = state.content or "Run cancelled"
    events = _Events(state)
    try:
        deps.store.save(
            state, lease_seconds=deps.settings.lease_seconds, events=[RunEvent("cancelled", actor, "api")]
        )
    except LeaseLost:
        raise Conflict(_conflict_detail(deps, run_id)) from None
    events("RunCancelled", reason="cancelled by request")
    return RunResult(state, events.items)


def get_run(
    deps: Dependencies, agent_id: str, run_id: str, *, session_id: str | None, principal: Principal | None
) -> RunState:
    deps.catalog.get(agent_id)
    return _load_owned(deps, agent_id, run_id, session_id, None, principal).state


def list_runs(
    deps: Dependencies,
    agent_id: str,
    *,
    session_id: str | None,
    user_id: str | None,
    status: str | None,
    principal: Principal | None,
) -> list[RunState]:
    deps.catalog.get(agent_id)
    owner = principal.user_id if principal else user_id
    return deps.store.list_runs(agent_id=agent_id, session_id=session_id, user_id=owner, status=status)


def list_sessions(
    deps: Dependencies,
    *,
    user_id: str | None,
    agent_id: str | None,
    page: int,
    limit: int,
    principal: Principal | None,
) -> SessionPage:
    owner = principal.user_id if principal else user_id
    return deps.store.list_sessions(user_id=owner, agent_id=agent_id, page=page, limit=limit)


def sweep_stale_runs(deps: Dependencies, *, limit: int = 100) -> list[str]:
    """Mark runs whose invocation died (RUNNING past their lease) as ERROR, with the reason.

    They stay resumable: a continue picks them up from the last saved step.
    """
    swept = []
    for loaded in deps.store.stale_runs(limit=limit):
        state = loaded.state
        interrupted = [t.tool_name for t in state.tools if t.state == "executing"]
        state.status = "ERROR"
        state.error = state.content = (
            "The invocation running this run stopped before finishing"
            + (f" while {', '.join(interrupted)} was running" if interrupted else "")
            + "; continue the run to resume it."
        )
        try:
            deps.store.save(state, lease_seconds=0, events=[RunEvent("lease_expired", None, "sweep")])
        except LeaseLost:
            continue  # resumed meanwhile
        swept.append(state.run_id)
    return swept


def session_runs(
    deps: Dependencies, session_id: str, *, user_id: str | None, principal: Principal | None
) -> list[RunState]:
    owner = principal.user_id if principal else user_id
    runs = deps.store.list_runs(agent_id=None, session_id=session_id, user_id=owner, status=None)
    if not runs:
        raise NotFound(f"No session found with id {session_id}")
    return runs


def _history_runs(agent: Agent, settings: Settings) -> int:
    return settings.history_runs if agent.history_runs is None else agent.history_runs


def _load_owned(
    deps: Dependencies,
    agent_id: str,
    run_id: str,
    session_id: str | None,
    user_id: str | None,
    principal: Principal | None,
    *,
    history_runs: int = 0,
) -> LoadedRun:
    """Load a run that this caller may see; anything else is indistinguishable from no run."""
    loaded = deps.store.load(run_id, history_runs=history_runs)
    if loaded is None:
        raise RunNotFound(run_id)
    state = loaded.state
    owner_ok = (principal is None or state.user_id == principal.user_id) and (
        user_id is None or state.user_id == user_id
    )
    if state.agent_id != agent_id or (session_id and state.session_id != session_id) or not owner_ok:
        raise RunNotFound(run_id)
    return loaded


def _check_continuable(loaded: LoadedRun) -> None:
    status = loaded.state.status
    if status == "COMPLETED":
        raise Conflict("run is already continued")
    if status == "CANCELLED":
        raise Conflict("run is already cancelled")
    if status == "PENDING" or (status == "RUNNING" and loaded.lease_live):
        raise Conflict("run is already running")


def _conflict_detail(deps: Dependencies, run_id: str) -> str:
    """Why a claim lost: read the run again and say what it became."""
    loaded = deps.store.load(run_id)
    status = loaded.state.status if loaded else "UNKNOWN"
    return {
        "COMPLETED": "run is already continued",
        "CANCELLED": "run is already cancelled",
        "PAUSED": "run is already continued",
        "ERROR": "run is already continued",
    }.get(status, "run is already running")


def _apply_decisions(
    agent: Agent, state: RunState, decisions: list[dict[str, Any]], *, actor: str | None, channel: str
) -> list[RunEvent]:
    """Merge each decision onto the STORED paused call it names. Validates all before changing any."""
    pending = {t.tool_call_id: t for t in state.pending_tools}
    seen: set[str] = set()
    plans: list[tuple[ToolCall, dict[str, Any]]] = []
    for index, decision in enumerate(decisions):
        call_id = decision.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise BadRequest(f"tools[{index}] needs a tool_call_id")
        if call_id in seen:
            raise BadRequest(f"tool_call_id {call_id} appears twice in tools")
        seen.add(call_id)
        call = pending.get(call_id)
        if call is None:
            raise BadRequest(f"tool_call_id {call_id} is not a paused tool call of this run")
        _check_echo(call, decision)
        plans.append((call, _decision_plan(agent, call, decision)))
    now = now_epoch()
    audit = []
    for call, plan in plans:
        call.__dict__.update(plan)
        call.decided_by, call.decided_at, call.decision_channel = actor, now, channel
        call.decision_digest = call.args_digest
        audit.append(
            RunEvent(
                "decision",
                actor,
                channel,
                {
                    "tool_call_id": call.tool_call_id,
                    "tool_name": call.tool_name,
                    "decision": "approved" if call.state in ("executing", "succeeded") else call.state,
                    "note": call.confirmation_note,
                    "args_digest": call.args_digest,
                },
            )
        )
    return audit


def _check_echo(call: ToolCall, decision: dict[str, Any]) -> None:
    """An echoed tool object may repeat the stored name and arguments but never change them."""
    if "tool_name" in decision and decision["tool_name"] not in (None, call.tool_name):
        raise BadRequest(f"tool_name of {call.tool_call_id} cannot be changed by a decision")
    echoed = decision.get("tool_args")
    if echoed is not None:
        if isinstance(echoed, str):
            try:
                echoed = json.loads(echoed)
            except json.JSONDecodeError:
                raise BadRequest(f"tool_args of {call.tool_call_id} is not valid JSON") from None
        if not isinstance(echoed, dict) or args_digest(call.tool_name, echoed) != call.args_digest:
            raise BadRequest(
                f"tool_args of {call.tool_call_id} differ from the paused call; a decision applies to "
                "the stored call and cannot change it"
            )


def _flag(value: Any, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOLS:
        return _BOOLS[value.strip().lower()]
    raise BadRequest(f"{name} must be a boolean")


_BOOLS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


def _decision_plan(agent: Agent, call: ToolCall, decision: dict[str, Any]) -> dict[str, Any]:
    """The fields a decision sets on a stored call, or BadRequest/Conflict before anything changes."""
    tool = agent.tool(call.tool_name)
    if tool is None or (call.schema_hash and tool.schema_hash != call.schema_hash):
        raise Conflict(
            f"tool {call.tool_name} changed since the run paused; the decision was not applied "
            "(start a new run to use the new version)"
        )
    note = decision.get("confirmation_note")
    if note is not None and not isinstance(note, str):
        raise BadRequest("confirmation_note must be a string")
    if call.requirement == "external_execution":
        if "result" not in decision or decision["result"] is None:
            raise BadRequest(f"result is required for external execution tool call {call.tool_call_id}")
        result = decision["result"]
        text = result if isinstance(result, str) else json.dumps(result)
        return {
            "state": "succeeded",
            "result": text,
            "model_message": text,
            "tool_call_error": False,
            "external_execution_required": False,
        }
    confirmed = _flag(decision.get("confirmed"), "confirmed")
    if call.requirement == "user_input" and confirmed is not False:
        return _user_input_plan(tool, call, decision)
    if call.requirement == "confirmation" and confirmed:
        return {
            "state": "executing",
            "confirmed": True,
            "requires_confirmation": False,
            "confirmation_note": note,
        }
    return {
        "state": "rejected",
        "confirmed": False,
        "tool_call_error": True,
        "requires_confirmation": False,
        "confirmation_note": note or REJECTED_NOTE,
        "model_message": note or REJECTED_MESSAGE,
    }


def _user_input_plan(tool: Any, call: ToolCall, decision: dict[str, Any]) -> dict[str, Any]:
    supplied = decision.get("user_input_schema")
    if not isinstance(supplied, list) or not all(isinstance(f, dict) for f in supplied):
        raise BadRequest(f"user_input_schema with values is required for tool call {call.tool_call_id}")
    values = {f.get("name"): f.get("value") for f in supplied}
    schema = [dict(f) for f in call.user_input_schema or []]
    args = dict(call.tool_args)
    for field_spec in schema:
        name = field_spec["name"]
        value = values.get(name, field_spec.get("value"))
        if value is None:
            raise BadRequest(f"user_input_schema of {call.tool_call_id} needs a value for {name}")
        field_spec["value"] = value
        args[name] = value
    try:
        args = tool.validate_arguments(args)
    except ToolArgumentsInvalid as exc:
        raise BadRequest(str(exc)) from None
    return {
        "state": "executing",
        "tool_args": args,
        "args_digest": args_digest(call.tool_name, args),
        "user_input_schema": schema,
        "answered": True,
        "requires_user_input": False,
        "confirmed": True if call.requires_confirmation else None,
        "requires_confirmation": False if call.requires_confirmation else None,
    }


def _recover_interrupted(agent: Agent, state: RunState) -> list[RunEvent]:
    """Resume a run whose invocation died or failed. Never re-run a side effect blindly.

    A call still marked ``executing`` may or may not have taken effect: it runs again only when
    its tool is idempotent; otherwise the run pauses and a human decides again.
    """
    audit = []
    for call in state.tools:
        if call.state != "executing":
            continue
        tool = agent.tool(call.tool_name)
        if tool is not None and tool.idempotent:
            audit.append(RunEvent("tool_retried", None, "recovery", {"tool_call_id": call.tool_call_id}))
            continue
        call.state = "awaiting_decision"
        call.requirement = "confirmation"
        call.requires_confirmation, call.confirmed = True, None
        call.confirmation_note = INTERRUPTED_NOTE
        audit.append(RunEvent("outcome_unknown", None, "recovery", {"tool_call_id": call.tool_call_id}))
    return audit


def _run(
    deps: Dependencies,
    agent: Agent,
    state: RunState,
    history: list[dict[str, Any]],
    deadline: Deadline,
    events: _Events,
    first_event: RunEvent | None,
) -> None:
    settings = deps.settings
    lease = settings.lease_seconds
    started = time.perf_counter()

    def checkpoint(current: RunState) -> None:
        deps.store.save(current, lease_seconds=lease, approval_ttl_seconds=agent.approval_ttl_seconds)

    context = RunContext(
        agent=agent,
        model=deps.model_for(agent),
        history=history,
        deadline=deadline,
        max_turns=agent.max_turns or settings.max_turns,
        checkpoint=checkpoint,
        emit=events,
    )
    try:
        step = advance(state, context)
    except SignoffError:
        raise
    except Exception as exc:
        # A bug or an outage mid-run: keep what we have, marked ERROR, so it can be inspected
        # and retried; the caller still gets a 500.
        state.status, state.error = "ERROR", f"internal error: {type(exc).__name__}"
        state.content = state.error
        _final_save(deps, agent, state, started, first_event, Step.FAILED)
        raise
    _final_save(deps, agent, state, started, first_event, step)


def _final_save(
    deps: Dependencies,
    agent: Agent,
    state: RunState,
    started: float,
    first_event: RunEvent | None,
    step: Step,
) -> None:
    state.metrics.duration = round(state.metrics.duration + time.perf_counter() - started, 6)
    state.updated_at = now_epoch()
    audit = [first_event] if first_event else []
    audit.append(RunEvent(step.value, None, None, {"status": state.status}))
    deps.store.save(
        state,
        lease_seconds=0 if step is Step.HANDED_OFF else deps.settings.lease_seconds,
        events=audit,
        approval_ttl_seconds=agent.approval_ttl_seconds,
    )
