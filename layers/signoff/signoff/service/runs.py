"""Use cases of a run's owner through the API: start, continue, cancel; and the worker's resume."""

from __future__ import annotations

from signoff import decisions
from signoff.authz import Principal
from signoff.errors import Conflict, InvalidInput, LeaseLost, NotAllowed
from signoff.models.base import Deadline
from signoff.models.registry import parse_model
from signoff.runner import Step
from signoff.service.common import (
    ContinueInput,
    Dependencies,
    Events,
    RunResult,
    StartInput,
    check_background,
    check_continuable,
    claim_and_run,
    conflict_detail,
    enqueue,
    history_runs,
    load_owned,
    new_run_id,
    recover_interrupted,
    run,
    taken_over,
)
from signoff.state import CallState, RunState, RunStatus, now_epoch
from signoff.store.base import RunEvent


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
    check_background(deps, request.background)
    model = parse_model(agent.model)  # the bare id and the provider, without building a client
    state = RunState(
        run_id=new_run_id(),
        agent_id=agent.id,
        agent_name=agent.name,
        agent_version=agent.version,
        session_id=request.session_id or new_run_id(),
        user_id=principal.user_id if principal else request.user_id,
        status=RunStatus.PENDING if request.background else RunStatus.RUNNING,
        input_content=request.message,
        messages=[{"role": "user", "content": request.message}],
        model=model.id,
        model_provider=model.provider.recorded_name,
        public_url=request.public_url,
    )
    history = deps.store.create_run(
        state,
        lease_seconds=deps.settings.lease_seconds,
        history_runs=history_runs(agent, deps.settings),
        meta=request.meta,
    )
    if request.background:
        enqueue(deps, state)
        return RunResult(state, [])
    events = Events(state)
    events("RunStarted", model=state.model, model_provider=state.model_provider)
    started = RunEvent("started", state.user_id, "api", request.meta)
    try:
        step = run(deps, agent, state, history, deadline, events, started)
    except LeaseLost:
        return taken_over(deps, state, "RunStarted")
    return RunResult(state, events.items, handed_off=step is Step.HANDED_OFF)


def continue_run(
    deps: Dependencies,
    agent_id: str,
    run_id: str,
    request: ContinueInput,
    *,
    principal: Principal | None,
    deadline: Deadline,
) -> RunResult:
    """Apply the decisions in ``request.tools`` to a paused run, then run it on."""
    agent = deps.catalog.get(agent_id)
    check_background(deps, request.background)
    loaded = load_owned(
        deps,
        agent,
        run_id,
        request.session_id,
        request.user_id,
        principal,
        history=history_runs(agent, deps.settings),
    )
    state = loaded.state
    if request.tools and _resolved_through_approvals(state, request.tools):
        # The requester's continue after an approver resolved each named call through the approvals
        # API, the same way: the run as it stands (202 while it runs); nothing runs twice.
        return RunResult(state, [])
    check_continuable(loaded)
    actor = principal.user_id if principal else (request.user_id or state.user_id)
    decider = decisions.Decider(principal, actor, "api", meta=request.meta)
    audit: list[RunEvent] = []
    if state.status == RunStatus.PAUSED:
        if request.tools is None:
            raise InvalidInput("tools is required to continue a paused run")
        try:
            plans = decisions.check(
                state, agent, request.tools, decider, now=now_epoch(), admins=deps.settings.admins
            )
        except decisions.DecisionRefused as refused:
            deps.store.append_events(state.run_id, [decisions.refusal_event(refused, decider)])
            raise
        audit = decisions.apply(plans, decider, now=now_epoch())
    else:  # ERROR, or RUNNING whose invocation died: resume from the last saved step
        if request.tools:
            # Decisions for a run that no longer waits for them: a late duplicate of the
            # continue that already moved it on.
            raise Conflict("run is already continued")
        audit = recover_interrupted(agent, state)
    if request.public_url:
        state.public_url = request.public_url
    if request.background:
        audit.append(RunEvent("queued", actor, "api", {"from_status": state.status, **request.meta}))
        state.queue()
        try:
            deps.store.save(state, lease_seconds=deps.settings.lease_seconds, events=audit)
        except LeaseLost:
            raise conflict_detail(deps, run_id) from None
        enqueue(deps, state)
        return RunResult(state, [])
    try:
        return claim_and_run(
            deps, agent, loaded, deadline, audit, actor=actor, channel="api", meta=request.meta
        )
    except LeaseLost:
        raise conflict_detail(deps, run_id) from None


def _resolved_through_approvals(state: RunState, named: list[decisions.Decision]) -> bool:
    for decision in named:
        call = state.tool(decision.tool_call_id)
        if call is None or call.decision_channel != "approvals":
            return False
        approved = call.state not in (CallState.REJECTED, CallState.EXPIRED)
        if bool(decision.confirmed) != approved:
            return False
    return True


def resume_run(deps: Dependencies, run_id: str, *, deadline: Deadline) -> RunResult | None:
    """Run a run that waits for nobody (the resume worker's job); ``None`` when there is nothing to do.

    Safe under redelivery: a run that is not PENDING, not fully decided, or held by a live
    invocation is left alone. Decisions kept while the run was busy are applied first.
    """
    from signoff.service.common import apply_deferred

    loaded = deps.store.load(run_id, history_runs=deps.settings.history_runs)
    if loaded is None:
        return None
    state = loaded.state
    if loaded.deferred and not loaded.busy:
        if apply_deferred(deps, state, loaded.deferred):
            loaded.deferred = []
        else:
            return None
    waiting_for_nobody = (
        state.status == RunStatus.PENDING
        or (state.status == RunStatus.RUNNING and not loaded.lease_live)
        or (state.status == RunStatus.PAUSED and not state.pending_tools)
    )
    if not waiting_for_nobody:
        return None
    agent = deps.catalog.get(state.agent_id)
    audit = recover_interrupted(agent, state) if state.status == RunStatus.RUNNING else []
    try:
        return claim_and_run(deps, agent, loaded, deadline, audit, actor=None, channel="queue")
    except LeaseLost:
        return None  # another invocation claimed it first


def cancel_run(
    deps: Dependencies,
    agent_id: str,
    run_id: str,
    *,
    session_id: str | None,
    user_id: str | None,
    principal: Principal | None,
    meta: dict | None = None,
) -> RunResult:
    """Cancel a paused, pending or failed run: no paused tool ever runs afterwards.

    Only the run's owner may cancel; an approver may decide calls but not end the run.
    """
    agent = deps.catalog.get(agent_id)
    loaded = load_owned(deps, agent, run_id, session_id, user_id, principal)
    state = loaded.state
    if principal is not None and state.user_id != principal.user_id:
        raise NotAllowed("only the run's owner can cancel it")
    if state.status == RunStatus.CANCELLED:
        raise Conflict("run is already cancelled")
    if state.status == RunStatus.COMPLETED:
        raise Conflict("run is already completed")
    if state.status == RunStatus.RUNNING and loaded.lease_live:
        raise Conflict("run is already running")
    actor = principal.user_id if principal else (user_id or state.user_id)
    state.cancel()
    events = Events(state)
    try:
        deps.store.save(
            state,
            lease_seconds=deps.settings.lease_seconds,
            events=[RunEvent("cancelled", actor, "api", dict(meta or {}))],
        )
    except LeaseLost:
        raise conflict_detail(deps, run_id) from None
    events("RunCancelled", reason="cancelled by request")
    return RunResult(state, events.items)
