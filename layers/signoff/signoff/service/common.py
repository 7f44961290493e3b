"""What every use case shares: the dependencies, results, stream events, and running a claimed run.

Owns: loading a run a caller may see, claiming it, running it to its next stop and saving that stop
(with the pause's links and announcement, or the hand-off to the queue), and applying decisions
that were kept while the run was busy.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from signoff import decisions
from signoff.agent import Agent, AgentCatalog
from signoff.approvals import issue_tokens
from signoff.authz import Principal, may_access
from signoff.config import Settings
from signoff.errors import Conflict, LeaseLost, NotConfigured, RunBusy, RunNotFound, SignoffError
from signoff.models.base import Deadline, Model
from signoff.queue import ResumeQueue, resume_message
from signoff.runner import RunContext, Step, advance
from signoff.state import CallState, RunState, RunStatus, now_epoch
from signoff.store.base import LoadedRun, RunEvent, RunStore

log = logging.getLogger("signoff")


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
    # tell(reply_to, message): tells a decider about a decision applied later (Slack's response_url)
    tell_decider: Callable[[str, dict[str, Any]], Any] | None = None


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
    tools: list[decisions.Decision] | None = None
    user_id: str | None = None
    stream: bool = False
    background: bool = False
    public_url: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    state: RunState
    events: list[dict[str, Any]] = field(default_factory=list)
    # Saved for the resume worker to finish (out of time): the wire still says 202 RUNNING.
    handed_off: bool = False


class Events:
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


def new_run_id() -> str:
    return str(uuid.uuid4())


def history_runs(agent: Agent, settings: Settings) -> int:
    return settings.history_runs if agent.history_runs is None else agent.history_runs


def load_owned(
    deps: Dependencies,
    agent: Agent,
    run_id: str,
    session_id: str | None,
    user_id: str | None,
    principal: Principal | None,
    *,
    history: int = 0,
) -> LoadedRun:
    """Load a run that this caller may see; anything else is indistinguishable from no run."""
    loaded = deps.store.load(run_id, history_runs=history)
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


def check_continuable(loaded: LoadedRun) -> None:
    status = loaded.state.status
    if status == RunStatus.COMPLETED:
        raise Conflict("run is already continued")
    if status == RunStatus.CANCELLED:
        raise Conflict("run is already cancelled")
    if loaded.busy:
        raise RunBusy()


def conflict_detail(deps: Dependencies, run_id: str) -> SignoffError:
    """Why a claim lost: read the run again and say what it became."""
    loaded = deps.store.load(run_id)
    if loaded is None or loaded.busy:
        return RunBusy()
    if loaded.state.status == RunStatus.CANCELLED:
        return Conflict("run is already cancelled")
    return Conflict("run is already continued")


def check_background(deps: Dependencies, background: bool) -> None:
    if background and deps.queue is None:
        raise NotConfigured("background=true needs the resume queue (SIGNOFF_QUEUE_URL is not set)")


def enqueue(deps: Dependencies, state: RunState) -> None:
    """Hand the run to the resume worker. A lost message is re-sent by the sweep."""
    if deps.queue is None:
        return
    try:
        deps.queue.send(resume_message(state.run_id, state.agent_id))
    except Exception:
        log.exception("could not enqueue run %s; the sweep will re-send it", state.run_id)


def recover_interrupted(agent: Agent, state: RunState) -> list[RunEvent]:
    """Resume a run whose invocation died or failed. Never re-run a side effect blindly.

    A call still marked ``executing`` may or may not have taken effect: it runs again only when
    its tool is idempotent; otherwise the run pauses and a human decides again.
    """
    audit = []
    for call in state.tools:
        if call.state != CallState.EXECUTING:
            continue
        tool = agent.tool(call.tool_name)
        if tool is not None and tool.idempotent:
            audit.append(RunEvent("tool_retried", None, "recovery", {"tool_call_id": call.tool_call_id}))
            continue
        call.mark_outcome_unknown()
        audit.append(RunEvent("outcome_unknown", None, "recovery", {"tool_call_id": call.tool_call_id}))
    return audit


def claim_and_run(
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
    state.claim()  # approved calls become `executing` in the claim itself: no extra round trip
    deps.store.save(state, lease_seconds=deps.settings.lease_seconds, events=audit)
    events = Events(state)
    events("RunContinued")
    try:
        step = run(deps, agent, state, loaded.history, deadline, events, None)
    except LeaseLost:
        return taken_over(deps, state, "RunContinued")
    return RunResult(state, events.items, handed_off=step is Step.HANDED_OFF)


def taken_over(deps: Dependencies, state: RunState, first_event: str) -> RunResult:
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
    events = Events(current.state)
    events(first_event)
    if current.state.status == RunStatus.ERROR:
        events("RunError", content=current.state.error)
    return RunResult(current.state, events.items)


def run(
    deps: Dependencies,
    agent: Agent,
    state: RunState,
    history: list[dict[str, Any]],
    deadline: Deadline,
    events: Events,
    first_event: RunEvent | None,
) -> Step:
    """Run a claimed run to its next stop and save it there."""
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
        state.fail(f"internal error: {type(exc).__name__}")
        final_save(deps, agent, state, started, first_event, Step.FAILED)
        raise
    final_save(deps, agent, state, started, first_event, step)
    return step


def final_save(
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
    handed_to_queue = step is Step.HANDED_OFF and deps.queue is not None
    if handed_to_queue:
        # Waits for its worker: PENDING is never swept as dead, and every other path answers busy.
        state.queue()
    waiting = deps.store.save(
        state,
        lease_seconds=0 if step is Step.HANDED_OFF else deps.settings.lease_seconds,
        events=audit,
        tokens=issued.rows if issued else [],
    )
    # Only now, with the pause committed, tell anyone about it.
    if issued is not None and issued.fresh:
        announce(deps, state, issued.links)
    if handed_to_queue:
        enqueue(deps, state)
    elif waiting:
        apply_deferred(deps, state, waiting, agent=agent)


def announce(deps: Dependencies, state: RunState, links: dict[str, dict[str, str]]) -> None:
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


def apply_deferred(
    deps: Dependencies, state: RunState, waiting: list[dict[str, Any]], *, agent: Agent | None = None
) -> bool:
    """Apply the decisions kept while the run was busy, now that it is free; each is checked again
    (still awaiting a decision, not expired, same argument digest, decider still allowed).

    A decision that no longer holds is dropped with an audit event, and its decider is told. When
    the run then waits for nobody it is queued to resume. Returns whether the run was saved.
    """
    if not waiting or state.status in (RunStatus.RUNNING, RunStatus.PENDING):
        return False
    agent = agent or deps.catalog.get(state.agent_id)
    now = now_epoch()
    audit: list[RunEvent] = []
    replies: list[tuple[str, dict[str, Any]]] = []
    for item in waiting:
        decider = decisions.Decider.from_document(item.get("decider") or {})
        decision = decisions.Decision(
            str(item.get("tool_call_id")),
            item.get("confirmed"),
            item.get("note"),
            values=item.get("values"),
            answers=item.get("answers"),
            result=item.get("result"),
            shown_digest=item.get("args_digest"),
            resolution_data=item.get("resolution_data"),
            edited_args=item.get("edited_args"),
        )
        try:
            plans = decisions.check(state, agent, [decision], decider, now=now, admins=deps.settings.admins)
        except SignoffError as exc:
            detail = {"tool_call_id": decision.tool_call_id, "reason": str(exc.detail), **decider.meta}
            audit.append(RunEvent("deferred_decision_dropped", decider.actor, decider.channel, detail))
            if decider.reply_to:
                replies.append((decider.reply_to, _dropped_message(decision.tool_call_id, str(exc.detail))))
            continue
        audit.extend(decisions.apply(plans, decider, now=now))
        if decider.reply_to:
            replies.append((decider.reply_to, _applied_message(plans[0])))
    consumed = [str(item.get("id")) for item in waiting]
    try:
        deps.store.save(state, lease_seconds=0, events=audit, consumed=consumed)
    except LeaseLost:
        return False  # someone moved the run on; it still holds them and applies them when free
    for reply_to, message in replies:
        if deps.tell_decider is not None:
            try:
                deps.tell_decider(reply_to, message)
            except Exception:
                log.warning("could not tell a decider about their kept decision on run %s", state.run_id)
    if state.status == RunStatus.PAUSED and not state.pending_tools:
        enqueue(deps, state)
    return True


def _applied_message(plan: decisions.Plan) -> dict[str, Any]:
    call = plan.call
    verb = "approved" if plan.lets_it_run else "rejected"
    text = f"`{call.tool_name}` {verb} by {call.decided_by} (applied once the run was free)"
    return {"replace_original": True, "text": text, "blocks": [_section(text)]}


def _dropped_message(tool_call_id: str, reason: str) -> dict[str, Any]:
    text = f":warning: Your decision on `{tool_call_id}` was not applied: {reason}"
    return {"replace_original": True, "text": text, "blocks": [_section(text)]}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}
