"""Use cases: start, continue, cancel and read runs. Load → run → save, nothing else."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from signoff.agent import Agent, AgentCatalog
from signoff.approvals import (
    ExternalDecision,
    hash_token,
    issue_tokens,
    parse_slack_payload,
    parse_webhook_body,
    verify_signature,
    verify_slack,
)
from signoff.authz import Principal, may_access, refusal
from signoff.config import Settings
from signoff.errors import (
    Conflict,
    Expired,
    InvalidInput,
    LeaseLost,
    NotAllowed,
    NotConfigured,
    NotFound,
    RunNotFound,
    SignoffError,
)
from signoff.models.base import Deadline, Model
from signoff.queue import ResumeQueue, resume_message
from signoff.runner import RunContext, Step, advance
from signoff.state import REJECTED_MESSAGE, REJECTED_NOTE, RunState, ToolCall, args_digest, now_epoch
from signoff.store.base import LoadedRun, RunEvent, RunStore, SessionPage
from signoff.tools import ToolArgumentsInvalid

log = logging.getLogger("signoff")

EXPIRED_NOTE = "Approval expired"
EXPIRED_MESSAGE = "Nobody decided on this tool call before its approval expired; the tool did not run."
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
    queue: ResumeQueue | None = None
    notifier: Any = None  # signoff.notify.Notifier; built only where pauses are announced
    # search(kb, query, limit, filters) for agents with knowledge (signoff.knowledge.search, bound)
    knowledge_search: Callable[..., Any] | None = None


@dataclass
class StartInput:
    message: str
    session_id: str | None = None
    user_id: str | None = None
    stream: bool = False
    background: bool = False
    public_url: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ContinueInput:
    session_id: str
    tools: list[dict[str, Any]] | None = None
    user_id: str | None = None
    stream: bool = False
    background: bool = False
    public_url: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


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
    _check_background(deps, request.background)
    state = RunState(
        run_id=str(uuid.uuid4()),
        agent_id=agent.id,
        agent_name=agent.name,
        agent_version=agent.version,
        session_id=request.session_id or str(uuid.uuid4()),
        user_id=principal.user_id if principal else request.user_id,
        status="PENDING" if request.background else "RUNNING",
        input_content=request.message,
        messages=[{"role": "user", "content": request.message}],
        model=agent.model,
        public_url=request.public_url,
    )
    history = deps.store.create_run(
        state,
        lease_seconds=deps.settings.lease_seconds,
        history_runs=_history_runs(agent, deps.settings),
        meta=request.meta,
    )
    if request.background:
        _enqueue(deps, state)
        return RunResult(state, [])
    events = _Events(state)
    events("RunStarted", model=agent.model, model_provider=state.model_provider)
    started = RunEvent("started", state.user_id, "api", request.meta)
    try:
        _run(deps, agent, state, history, deadline, events, started)
    except LeaseLost:
        return _taken_over(deps, state, "RunStarted")
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
    _check_background(deps, request.background)
    loaded = _load_owned(
        deps,
        agent,
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
            raise InvalidInput("tools is required to continue a paused run")
        audit = _apply_decisions(
            deps,
            agent,
            state,
            request.tools,
            decider=principal,
            actor=actor,
            channel=channel,
            meta=request.meta,
        )
    else:  # ERROR, or RUNNING whose invocation died: resume from the last saved step
        if request.tools:
            # Decisions for a run that no longer waits for them: a late duplicate of the
            # continue that already moved it on.
            raise Conflict("run is already continued")
        audit = _recover_interrupted(agent, state)
    if request.public_url:
        state.public_url = request.public_url
    if request.background:
        audit.append(RunEvent("queued", actor, channel, {"from_status": state.status, **request.meta}))
        state.status = "PENDING"
        try:
            deps.store.save(state, lease_seconds=deps.settings.lease_seconds, events=audit)
        except LeaseLost:
            raise Conflict(_conflict_detail(deps, run_id)) from None
        _enqueue(deps, state)
        return RunResult(state, [])
    try:
        return _claim_and_run(
            deps, agent, loaded, deadline, audit, actor=actor, channel=channel, meta=request.meta
        )
    except LeaseLost:
        raise Conflict(_conflict_detail(deps, run_id)) from None


def resume_run(deps: Dependencies, run_id: str, *, deadline: Deadline) -> RunResult | None:
    """Run a run that waits for nobody (the resume worker's job); ``None`` when there is nothing to do.

    Safe under redelivery: a run that is not PENDING, not fully decided, or held by a live
    invocation is left alone.
    """
    loaded = deps.store.load(run_id, history_runs=deps.settings.history_runs)
    if loaded is None:
        return None
    state = loaded.state
    waiting_for_nobody = (
        state.status == "PENDING"
        or (state.status == "RUNNING" and not loaded.lease_live)
        or (state.status == "PAUSED" and not state.pending_tools)
    )
    if not waiting_for_nobody:
        return None
    agent = deps.catalog.get(state.agent_id)
    audit = _recover_interrupted(agent, state) if state.status == "RUNNING" else []
    try:
        return _claim_and_run(deps, agent, loaded, deadline, audit, actor=None, channel="queue")
    except LeaseLost:
        return None  # another invocation claimed it first


def _claim_and_run(
    deps: Dependencies,
    agent: Agent,
    loaded: LoadedRun,
    deadline: Deadline,
    audit: list[RunEvent],
    *,
    actor: str | None,
    channel: str,
    meta: dict[str, Any] | None = None,
) -> RunResult:
    """Claim the run (a save conditional on the version read) and only then run anything.

    Raises:
        LeaseLost: the claim lost: another request continued the run first (the caller's 409).
    """
    state = loaded.state
    audit.append(RunEvent("continued", actor, channel, {"from_status": state.status, **(meta or {})}))
    for call in state.open_turn():
        if call.state == "approved":
            call.state = "executing"  # saved by the claim itself: no extra round trip
    state.status = "RUNNING"
    state.error = None
    deps.store.save(state, lease_seconds=deps.settings.lease_seconds, events=audit)
    events = _Events(state)
    events("RunContinued")
    try:
        _run(deps, agent, state, loaded.history, deadline, events, None)
    except LeaseLost:
        return _taken_over(deps, state, "RunContinued")
    return RunResult(state, events.items)


def _taken_over(deps: Dependencies, state: RunState, first_event: str) -> RunResult:
    """The answer of an invocation whose run was taken over after its own claim or start succeeded.

    What the request asked for is stored (the user's message; the decisions, and the tools they
    claimed ran or are marked executing), so it is no duplicate and gets no 409. A later save lost
    because another writer moved the run on meanwhile, e.g. the sweep marked it ERROR because this
    invocation outlived its lease. Answer with what the run is now (ERROR says "continue to resume").
    """
    log.warning("run %s was taken over while this invocation was running it", state.run_id)
    current = deps.store.load(state.run_id)
    if current is None:
        raise LeaseLost(state.run_id)
    events = _Events(current.state)
    events(first_event)
    if current.state.status == "ERROR":
        events("RunError", content=current.state.error)
    return RunResult(current.state, events.items)


@dataclass
class DecisionOutcome:
    """A decision recorded from outside the API: the run, and whether it was queued to resume."""

    state: RunState
    call: ToolCall
    resumed: bool


def decide(
    deps: Dependencies,
    *,
    run_id: str,
    tool_call_id: str,
    approve: bool,
    note: str | None,
    approver: str | None,
    channel: str,
    agent_id: str | None = None,
    delivery_id: str | None = None,
    decider: Principal | None = None,
    meta: dict[str, Any] | None = None,
    loaded: LoadedRun | None = None,
) -> DecisionOutcome:
    """Record one decision (webhook, Slack, approval link); queue the resume once all are decided.

    ``delivery_id`` is looked up with the run (a replayed delivery is refused) and recorded in the
    same write as the decision, so a failed delivery can be retried. ``loaded``: the run, when the
    caller has just loaded it (an approval token's lookup brings it along).
    """
    if loaded is None:
        loaded = deps.store.load(run_id, delivery_id=delivery_id)
    if loaded is None or (agent_id and loaded.state.agent_id != agent_id):
        raise RunNotFound(run_id)
    if loaded.delivery_seen:
        raise Conflict("this delivery was already received")
    state = loaded.state
    call = state.tool(tool_call_id)
    if call is None:
        raise NotFound(f"No tool call {tool_call_id} in run {run_id}")
    _check_decidable(state, call)
    if call.requirement != "confirmation":
        raise InvalidInput(f"tool call {tool_call_id} needs {call.requirement}; answer it with a continue")
    agent = deps.catalog.get(state.agent_id)
    plan = _decision_plan(agent, call, {"confirmed": approve, "confirmation_note": note})
    _authorize(
        deps, agent, state, [(call, plan)], decider=decider, actor=approver, channel=channel, meta=meta
    )
    audit = _record(state, [(call, plan)], actor=approver, channel=channel, meta=meta)
    try:
        deps.store.save(state, lease_seconds=deps.settings.lease_seconds, events=audit, delivery=delivery_id)
    except LeaseLost:
        raise Conflict("tool call was already decided") from None
    resumed = not state.pending_tools
    if resumed:
        _enqueue(deps, state)
    return DecisionOutcome(state, call, resumed)


@dataclass
class ApprovalView:
    """What an approval link shows: the call, the decision the link makes, and whether it still can."""

    state: RunState
    call: ToolCall
    decision: str
    expires_at: int
    usable: bool
    reason: str | None
    loaded: LoadedRun


def approval_by_token(deps: Dependencies, token: str, *, delivery_id: str | None = None) -> ApprovalView:
    """Look an approval link up, with its run, in one query. Unknown tokens are 404; used or
    expired ones say so. ``delivery_id``: also tell whether that webhook delivery was seen."""
    found = deps.store.load_by_token(hash_token(token), delivery_id=delivery_id)
    if found is None:
        raise NotFound("This approval link is not valid")
    row, loaded = found
    call = loaded.state.tool(row["tool_call_id"])
    if call is None:
        raise NotFound("This approval link is not valid")
    reason = None
    if row["used_at"] is not None or not call.pending:
        reason = "already_used"
    elif row["expires_at"] <= time.time():
        reason = "expired"
    return ApprovalView(
        loaded.state, call, row["decision"], int(row["expires_at"]), reason is None, reason, loaded
    )


def decide_by_token(
    deps: Dependencies, token: str, *, note: str | None = None, meta: dict[str, Any] | None = None
) -> DecisionOutcome:
    """Apply the one decision an approval link carries. Single-use: a second use is 409."""
    view = approval_by_token(deps, token)
    if view.reason == "already_used":
        raise Conflict("This approval link was already used")
    if view.reason == "expired":
        raise Expired("This approval link has expired")
    return decide(
        deps,
        run_id=view.state.run_id,
        tool_call_id=view.call.tool_call_id,
        approve=view.decision == "approve",
        note=note,
        approver="approval-link",
        channel="link",
        meta=meta,
        loaded=view.loaded,
    )


def receive_webhook(
    deps: Dependencies, body: bytes, signature: str, *, secret: str, meta: dict[str, Any] | None = None
) -> DecisionOutcome:
    """A signed decision from another system: verify, refuse replays, then decide."""
    if not secret:
        raise NotConfigured("webhook approvals are not configured (no webhook secret)")
    verify_signature(secret, signature, body)
    decision = parse_webhook_body(body)
    return _decide_external(deps, decision, channel="webhook", meta=meta)


def receive_slack(
    deps: Dependencies,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    signing_secret: str,
    meta: dict[str, Any] | None = None,
) -> tuple[DecisionOutcome, str | None]:
    """A Slack button press: verify Slack's signature, then decide. Returns the response_url too."""
    if not signing_secret:
        raise NotConfigured("Slack approvals are not configured (no signing secret)")
    verify_slack(signing_secret, timestamp, signature, body)
    decision, response_url = parse_slack_payload(body)
    return _decide_external(deps, decision, channel="slack", meta=meta), response_url


def _decide_external(
    deps: Dependencies, decision: ExternalDecision, *, channel: str, meta: dict[str, Any] | None
) -> DecisionOutcome:
    """A decision from a signed channel: the channel vouches for the approver it names."""
    run_id, tool_call_id, loaded = decision.run_id, decision.tool_call_id, None
    if decision.token:
        view = approval_by_token(deps, decision.token, delivery_id=decision.delivery_id)
        if view.loaded.delivery_seen:  # before "already used": a replay is told it is one
            raise Conflict("this delivery was already received")
        if view.reason == "already_used":
            raise Conflict("This approval token was already used")
        if view.reason == "expired":
            raise Expired("This approval token has expired")
        if view.decision != ("approve" if decision.approve else "reject"):
            raise InvalidInput(f"this token can only {view.decision}")
        run_id, tool_call_id, loaded = view.state.run_id, view.call.tool_call_id, view.loaded
    return decide(
        deps,
        run_id=run_id or "",
        tool_call_id=tool_call_id or "",
        approve=decision.approve,
        note=decision.note,
        approver=decision.approver,
        channel=channel,
        delivery_id=decision.delivery_id,
        decider=Principal(decision.approver, decision.approver_groups),
        meta=meta,
        loaded=loaded,
    )


def renotify(deps: Dependencies, run_id: str) -> bool:
    """Send a paused run's notifications again, with fresh links (the first send failed)."""
    loaded = deps.store.load(run_id)
    if loaded is None or loaded.state.status != "PAUSED" or not loaded.state.pending_tools:
        return False
    state = loaded.state
    agent = deps.catalog.get(state.agent_id)
    issued = issue_tokens(state, agent, now=now_epoch(), fresh_only=False)
    deps.store.save(
        state, lease_seconds=0, tokens=issued.rows, events=[RunEvent("renotified", None, "queue")]
    )
    if deps.notifier is not None:
        deps.notifier.run_paused(state, issued.links)
    return True


def expire_pauses(deps: Dependencies, *, limit: int = 100) -> list[str]:
    """Fail closed on every pause past its expiry: the tool does not run, the model is told."""
    expired = []
    for run_id in deps.store.runs_with_expired_calls(limit=limit):
        loaded = deps.store.load(run_id)
        if loaded is None or loaded.state.status != "PAUSED":
            continue
        state = loaded.state
        now = now_epoch()
        calls = [c for c in state.pending_tools if c.expires_at is not None and c.expires_at <= now]
        for call in calls:
            call.state = "expired"
            call.confirmed = False
            call.tool_call_error = True
            call.requires_confirmation = False if call.requires_confirmation else None
            call.confirmation_note = EXPIRED_NOTE
            call.model_message = EXPIRED_MESSAGE
            call.decided_at, call.decision_channel = now, "expiry"
        audit = [RunEvent("expired", None, "expiry", {"tool_call_id": c.tool_call_id}) for c in calls]
        try:
            deps.store.save(state, lease_seconds=0, events=audit)
        except LeaseLost:
            continue
        expired.append(run_id)
        if not state.pending_tools:
            _enqueue(deps, state)
    return expired


def requeue_stranded(deps: Dependencies, *, older_than_s: int = 60, limit: int = 100) -> list[str]:
    """Queue again the runs a lost queue message would strand: PENDING, or PAUSED and fully decided."""
    if deps.queue is None:
        return []
    stranded = deps.store.stranded_runs(older_than_s=older_than_s, limit=limit)
    for run_id, agent_id in stranded:
        deps.queue.send(resume_message(run_id, agent_id))
    return [run_id for run_id, _ in stranded]


def _check_background(deps: Dependencies, background: bool) -> None:
    if background and deps.queue is None:
        raise NotConfigured("background=true needs the resume queue (SIGNOFF_QUEUE_URL is not set)")


def _enqueue(deps: Dependencies, state: RunState) -> None:
    """Hand the run to the resume worker. A lost message is re-sent by the sweep."""
    if deps.queue is None:
        return
    try:
        deps.queue.send(resume_message(state.run_id, state.agent_id))
    except Exception:
        log.exception("could not enqueue run %s; the sweep will re-send it", state.run_id)


def _check_decidable(state: RunState, call: ToolCall) -> None:
    if state.status in ("CANCELLED", "COMPLETED"):
        raise Conflict(f"run is already {state.status.lower()}")
    if not call.pending:
        raise Conflict("tool call was already decided")
    if call.expires_at is not None and call.expires_at <= now_epoch():
        raise Expired("the approval for this tool call has expired")


def cancel_run(
    deps: Dependencies,
    agent_id: str,
    run_id: str,
    *,
    session_id: str | None,
    user_id: str | None,
    principal: Principal | None,
    meta: dict[str, Any] | None = None,
) -> RunResult:
    """Cancel a paused, pending or failed run: no paused tool ever runs afterwards.

    Only the run's owner may cancel; an approver may decide calls but not end the run.
    """
    agent = deps.catalog.get(agent_id)
    loaded = _load_owned(deps, agent, run_id, session_id, user_id, principal)
    state = loaded.state
    if principal is not None and state.user_id != principal.user_id:
        raise NotAllowed("only the run's owner can cancel it")
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
            state,
            lease_seconds=deps.settings.lease_seconds,
            events=[RunEvent("cancelled", actor, "api", dict(meta or {}))],
        )
    except LeaseLost:
        raise Conflict(_conflict_detail(deps, run_id)) from None
    events("RunCancelled", reason="cancelled by request")
    return RunResult(state, events.items)


def get_run(
    deps: Dependencies, agent_id: str, run_id: str, *, session_id: str | None, principal: Principal | None
) -> RunState:
    agent = deps.catalog.get(agent_id)
    return _load_owned(deps, agent, run_id, session_id, None, principal).state


def run_events(
    deps: Dependencies, agent_id: str, run_id: str, *, session_id: str | None, principal: Principal | None
) -> list[dict[str, Any]]:
    """The run's audit trail, for those who may read the run."""
    agent = deps.catalog.get(agent_id)
    _load_owned(deps, agent, run_id, session_id, None, principal)
    return deps.store.run_events(run_id)


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
    agent: Agent,
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
    if (
        state.agent_id != agent.id
        or (session_id and state.session_id != session_id)
        or not may_access(principal, user_id, agent, state)
    ):
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
    deps: Dependencies,
    agent: Agent,
    state: RunState,
    decisions: list[dict[str, Any]],
    *,
    decider: Principal | None,
    actor: str | None,
    channel: str,
    meta: dict[str, Any],
) -> list[RunEvent]:
    """Merge each decision onto the STORED paused call it names. Validates all before changing any."""
    pending = {t.tool_call_id: t for t in state.pending_tools}
    seen: set[str] = set()
    plans: list[tuple[ToolCall, dict[str, Any]]] = []
    for index, decision in enumerate(decisions):
        call_id = decision.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidInput(f"tools[{index}] needs a tool_call_id")
        if call_id in seen:
            raise InvalidInput(f"tool_call_id {call_id} appears twice in tools")
        seen.add(call_id)
        call = pending.get(call_id)
        if call is None:
            raise InvalidInput(f"tool_call_id {call_id} is not a paused tool call of this run")
        _check_echo(call, decision)
        plans.append((call, _decision_plan(agent, call, decision)))
    _authorize(deps, agent, state, plans, decider=decider, actor=actor, channel=channel, meta=meta)
    return _record(state, plans, actor=actor, channel=channel, meta=meta)


def _authorize(
    deps: Dependencies,
    agent: Agent,
    state: RunState,
    plans: list[tuple[ToolCall, dict[str, Any]]],
    *,
    decider: Principal | None,
    actor: str | None,
    channel: str,
    meta: dict[str, Any] | None,
) -> None:
    """Refuse (403) the whole request if any decision in it is not the decider's to make.

    The refusal is written to the audit log; the run itself is left as it was.
    """
    for call, plan in plans:
        tool = agent.tool(call.tool_name)
        reason = refusal(tool, decider, state.user_id, plan["state"] == "approved") if tool else None
        if reason:
            detail = {
                "tool_call_id": call.tool_call_id,
                "tool_name": call.tool_name,
                "reason": reason,
                "args_digest": call.args_digest,
                **(meta or {}),
            }
            deps.store.append_events(state.run_id, [RunEvent("decision_refused", actor, channel, detail)])
            raise NotAllowed(reason)


def _record(
    state: RunState,
    plans: list[tuple[ToolCall, dict[str, Any]]],
    *,
    actor: str | None,
    channel: str,
    meta: dict[str, Any] | None = None,
) -> list[RunEvent]:
    """Apply validated decision plans to their calls; return the audit events."""
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
                    "decision": "approved" if call.state in ("approved", "succeeded") else call.state,
                    "note": call.confirmation_note,
                    "args_digest": call.args_digest,
                    **(meta or {}),
                },
            )
        )
    return audit


def _check_echo(call: ToolCall, decision: dict[str, Any]) -> None:
    """An echoed tool object may repeat the stored name and arguments but never change them."""
    if "tool_name" in decision and decision["tool_name"] not in (None, call.tool_name):
        raise InvalidInput(f"tool_name of {call.tool_call_id} cannot be changed by a decision")
    echoed = decision.get("tool_args")
    if echoed is not None:
        if isinstance(echoed, str):
            try:
                echoed = json.loads(echoed)
            except json.JSONDecodeError:
                raise InvalidInput(f"tool_args of {call.tool_call_id} is not valid JSON") from None
        if not isinstance(echoed, dict) or args_digest(call.tool_name, echoed) != call.args_digest:
            raise InvalidInput(
                f"tool_args of {call.tool_call_id} differ from the paused call; a decision applies to "
                "the stored call and cannot change it"
            )


def _flag(value: Any, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOLS:
        return _BOOLS[value.strip().lower()]
    raise InvalidInput(f"{name} must be a boolean")


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
    """The fields a decision sets on a stored call, or InvalidInput/Conflict before anything changes."""
    tool = agent.tool(call.tool_name)
    if tool is None or (call.schema_hash and tool.schema_hash != call.schema_hash):
        raise Conflict(
            f"tool {call.tool_name} changed since the run paused; the decision was not applied "
            "(start a new run to use the new version)"
        )
    note = decision.get("confirmation_note")
    if note is not None and not isinstance(note, str):
        raise InvalidInput("confirmation_note must be a string")
    if call.requirement == "external_execution":
        if "result" not in decision or decision["result"] is None:
            raise InvalidInput(f"result is required for external execution tool call {call.tool_call_id}")
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
            "state": "approved",
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
        raise InvalidInput(f"user_input_schema with values is required for tool call {call.tool_call_id}")
    values = {f.get("name"): f.get("value") for f in supplied}
    schema = [dict(f) for f in call.user_input_schema or []]
    args = dict(call.tool_args)
    for field_spec in schema:
        name = field_spec["name"]
        value = values.get(name, field_spec.get("value"))
        if value is None:
            raise InvalidInput(f"user_input_schema of {call.tool_call_id} needs a value for {name}")
        field_spec["value"] = value
        args[name] = value
    try:
        args = tool.validate_arguments(args)
    except ToolArgumentsInvalid as exc:
        raise InvalidInput(str(exc)) from None
    return {
        "state": "approved",
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
        call.expires_at = None  # a fresh approval window, and fresh links
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
        deps.store.save(current, lease_seconds=lease)

    context = RunContext(
        agent=agent.with_knowledge_search(deps.knowledge_search),
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
    issued = issue_tokens(state, agent, now=state.updated_at) if step is Step.PAUSED else None
    deps.store.save(
        state,
        lease_seconds=0 if step is Step.HANDED_OFF else deps.settings.lease_seconds,
        events=audit,
        tokens=issued.rows if issued else [],
    )
    # Only now, with the pause committed, tell anyone about it.
    if issued is not None and issued.fresh:
        _announce(deps, state, issued.links)
    if step is Step.HANDED_OFF:
        _enqueue(deps, state)


def _announce(deps: Dependencies, state: RunState, links: dict[str, dict[str, str]]) -> None:
    """Notify about a pause. A failure never touches the saved pause; the queue retries it."""
    if deps.notifier is None:
        return
    try:
        deps.notifier.run_paused(state, links)
    except Exception:
        log.warning("pause notification failed for run %s; retrying via the queue", state.run_id)
        if deps.queue is not None:
            try:
                deps.queue.send(resume_message(state.run_id, state.agent_id, kind="notify"))
            except Exception:
                log.exception("could not enqueue the notification retry for run %s", state.run_id)
