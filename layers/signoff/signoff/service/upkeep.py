"""Scheduled upkeep: expire undecided pauses, mark dead runs, re-queue stranded ones, apply kept
decisions that nobody applied, and re-send failed pause notifications."""

from __future__ import annotations

from signoff.approvals import issue_tokens
from signoff.errors import LeaseLost
from signoff.queue import resume_message
from signoff.service.common import Dependencies, apply_deferred, enqueue
from signoff.state import RunStatus, now_epoch
from signoff.store.base import RunEvent


def renotify(deps: Dependencies, run_id: str) -> bool:
    """Send a paused run's notifications again, with fresh links (the first send failed)."""
    loaded = deps.store.load(run_id)
    if loaded is None or loaded.state.status != RunStatus.PAUSED or not loaded.state.pending_tools:
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
        if loaded is None or loaded.state.status != RunStatus.PAUSED:
            continue
        state = loaded.state
        now = now_epoch()
        calls = [c for c in state.pending_tools if c.expired_at(now)]
        for call in calls:
            call.expire(now)
        audit = [RunEvent("expired", None, "expiry", {"tool_call_id": c.tool_call_id}) for c in calls]
        try:
            deps.store.save(state, lease_seconds=0, events=audit)
        except LeaseLost:
            continue
        expired.append(run_id)
        if not state.pending_tools:
            enqueue(deps, state)
    return expired


def apply_kept_decisions(deps: Dependencies, *, limit: int = 100) -> list[str]:
    """Apply decisions kept while a run was busy that its invocation did not get to (it died, or a
    decision slipped in as it finished): the safety net behind ``apply_deferred``."""
    applied = []
    for run_id in deps.store.runs_with_deferred_decisions(limit=limit):
        loaded = deps.store.load(run_id)
        if loaded is None or loaded.busy or not loaded.deferred:
            continue
        if apply_deferred(deps, loaded.state, loaded.deferred):
            applied.append(run_id)
    return applied


def requeue_stranded(deps: Dependencies, *, older_than_s: int = 60, limit: int = 100) -> list[str]:
    """Queue again the runs a lost queue message would strand: PENDING, or PAUSED and fully decided."""
    if deps.queue is None:
        return []
    stranded = deps.store.stranded_runs(older_than_s=older_than_s, limit=limit)
    for run_id, agent_id in stranded:
        deps.queue.send(resume_message(run_id, agent_id))
    return [run_id for run_id, _ in stranded]


def sweep_stale_runs(deps: Dependencies, *, limit: int = 100) -> list[str]:
    """Mark runs whose invocation died (RUNNING past their lease) as ERROR, with the reason.

    They stay resumable: a continue picks them up from the last saved step. A run handed to the
    resume worker is PENDING, never RUNNING, so it is never swept.
    """
    swept = []
    for loaded in deps.store.stale_runs(limit=limit):
        state = loaded.state
        interrupted = [t.tool_name for t in state.tools if t.state == "executing"]
        state.fail(
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
