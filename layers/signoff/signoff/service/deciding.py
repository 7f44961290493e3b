"""Decisions from outside the API's continue: signed webhooks, Slack buttons, approval links, queue.

Every channel's decisions go through :func:`decide`, which runs the same checks as the API continue
(``signoff.decisions.check``). A decision that arrives while an invocation executes the run never
touches the executing state: it is kept on the run and applied, checked again, once the run is free.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from signoff import decisions
from signoff.approvals import hash_token
from signoff.channels import Received
from signoff.errors import (
    AlreadyDecided,
    Conflict,
    Expired,
    InvalidInput,
    LeaseLost,
    NotFound,
    Replayed,
    RunNotFound,
)
from signoff.service.common import Dependencies, enqueue
from signoff.state import CallState, RunState, ToolCall, now_epoch
from signoff.store.base import LoadedRun, RunEvent

_ATTEMPTS = 4  # a decision races at most a few saves of the run it decides


@dataclass
class DecisionOutcome:
    """A decision from outside the API: applied now (and whether the run resumes), or kept for later.

    Attributes:
        state: the run as the decision left it (as it was, when kept for later).
        call: the decided call.
        resumed: the run was queued to resume (every call decided).
        deferred: the run was executing; the decision is kept and applied once it is free.
        verdict: what the decision does (``approve`` / ``reject``).
    """

    state: RunState
    call: ToolCall
    resumed: bool
    deferred: bool = False
    verdict: str = ""


def decide(
    deps: Dependencies,
    decision: decisions.Decision,
    decider: decisions.Decider,
    *,
    run_id: str,
    agent_id: str | None = None,
    loaded: LoadedRun | None = None,
) -> DecisionOutcome:
    """Record one decision from outside; queue the resume once all of the run's calls are decided.

    The delivery id is looked up with the run (a replay is refused) and recorded in the same write
    as the decision. ``loaded``: the run, when the caller has just loaded it (an approval link's
    lookup brings it along).

    Raises:
        RunNotFound, NotFound, Replayed, AlreadyDecided, Expired, DigestStale, DecisionRefused,
        InvalidInput: as the refusal table says; nothing changes.
    """
    for _ in range(_ATTEMPTS):
        if loaded is None:
            loaded = deps.store.load(run_id, delivery_id=decider.delivery_id)
        if loaded is None or (agent_id and loaded.state.agent_id != agent_id):
            raise RunNotFound(run_id)
        if loaded.delivery_seen:
            raise Replayed("this delivery was already received")
        state = loaded.state
        agent = deps.catalog.get(state.agent_id)
        try:
            plans = decisions.check(
                state, agent, [decision], decider, now=now_epoch(), admins=deps.settings.admins
            )
        except decisions.DecisionRefused as refused:
            deps.store.append_events(state.run_id, [decisions.refusal_event(refused, decider)])
            raise
        plan = plans[0]
        verdict = "approve" if plan.lets_it_run else "reject"
        if loaded.busy:
            if deps.store.defer(state.run_id, [_kept(decision, decider, plan)], delivery=decider.delivery_id):
                return DecisionOutcome(state, plan.call, False, deferred=True, verdict=verdict)
            loaded = None  # the run became free meanwhile: decide on it as it is now
            continue
        audit = decisions.apply(plans, decider, now=now_epoch())
        try:
            waiting = deps.store.save(state, lease_seconds=0, events=audit, delivery=decider.delivery_id)
        except LeaseLost:
            loaded = None  # moved on meanwhile (claimed, decided, expired): check again
            continue
        if waiting:
            from signoff.service.common import apply_deferred

            apply_deferred(deps, state, waiting, agent=agent)
        resumed = not state.pending_tools
        if resumed:
            enqueue(deps, state)
        return DecisionOutcome(state, plan.call, resumed, verdict=verdict)
    raise Conflict("the run kept changing while this decision was made; try again")


def _kept(decision: decisions.Decision, decider: decisions.Decider, plan: decisions.Plan) -> dict:
    """A decision kept on a busy run, bound to the arguments it was checked against."""
    return {
        "id": uuid.uuid4().hex,
        "tool_call_id": decision.tool_call_id,
        "confirmed": plan.lets_it_run,
        "note": decision.note,
        "values": decision.values,
        "answers": decision.answers,
        "result": decision.result,
        "resolution_data": decision.resolution_data,
        "edited_args": decision.edited_args,
        "args_digest": plan.call.args_digest,
        "decider": decider.document(),
        "received_at": now_epoch(),
    }


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
    if call.state == CallState.EXPIRED or (call.pending and row["expires_at"] <= time.time()):
        reason = "expired"  # whether the sweep has marked it yet or not
    elif row["used_at"] is not None or not call.pending:
        reason = "already_used"
    return ApprovalView(
        loaded.state, call, row["decision"], int(row["expires_at"]), reason is None, reason, loaded
    )


def decide_by_token(
    deps: Dependencies,
    token: str,
    *,
    decider: decisions.Decider,
    note: str | None = None,
    approve: bool | None = None,
) -> DecisionOutcome:
    """Apply the one decision an approval token carries. Single-use: a second use is 409.

    ``approve``: the decision the sender asked for (a webhook naming a token); it must be the
    token's own.
    """
    view = approval_by_token(deps, token, delivery_id=decider.delivery_id)
    if view.loaded.delivery_seen:  # before "already used": a replay is told it is one
        raise Replayed("this delivery was already received")
    if view.reason == "already_used":
        raise AlreadyDecided(
            f"This approval {'link' if decider.channel == 'link' else 'token'} was already used"
        )
    if view.reason == "expired":
        raise Expired(f"This approval {'link' if decider.channel == 'link' else 'token'} has expired")
    if approve is not None and view.decision != ("approve" if approve else "reject"):
        raise InvalidInput(f"this token can only {view.decision}")
    decision = decisions.Decision(view.call.tool_call_id, view.decision == "approve", note)
    return decide(deps, decision, decider, run_id=view.state.run_id, loaded=view.loaded)


def decide_received(deps: Dependencies, received: Received) -> DecisionOutcome:
    """Decide what a channel received and verified: by approval token, or by run and call."""
    if received.token:
        return decide_by_token(
            deps,
            received.token,
            decider=received.decider,
            note=received.decision.note,
            approve=received.decision.confirmed,
        )
    outcome = decide(deps, received.decision, received.decider, run_id=received.run_id or "")
    for decision in received.more:
        outcome = decide(deps, decision, received.decider, run_id=received.run_id or "")
    return outcome


def record_refusal(deps: Dependencies, received: Received, reason: str) -> None:
    """Write a refused decision that has no one to answer (a queue message) to the run's audit log,
    so that its sender can see why; a decider without the right is recorded by ``decide`` itself."""
    if not received.run_id:
        return
    if deps.store.load(received.run_id) is None:
        return
    decider = received.decider
    detail = {"tool_call_id": received.decision.tool_call_id, "reason": reason[:500], **decider.meta}
    deps.store.append_events(
        received.run_id, [RunEvent("decision_refused", decider.actor, decider.channel, detail)]
    )
