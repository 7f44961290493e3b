"""Sessions as AgentOS clients use them: one session with its runs, one run of it, rename, delete.

A session belongs to the user who started it. With authentication only its owner reads, renames or
deletes it; anyone else gets the same 404 as for a session that does not exist (an approver reads
the runs they decide through ``/agents/{agent_id}/runs/{run_id}``). Without authentication a
``user_id`` the client names must be the owner, as AgentOS scopes by it.

Deleting a session is final for everything in it: its runs go, and with them every way one of
their paused calls could still run (the calls, their approval links, decisions kept while a run was
busy); a webhook, link, queue message or continue that arrives later finds nothing to decide. A
session with a run that is executing right now is not deleted (409, try again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from signoff.agent import Agent
from signoff.authz import Principal
from signoff.errors import AgentNotFound, NotFound, RunBusy
from signoff.service.common import Dependencies
from signoff.state import RunState
from signoff.store.base import RunEvent, SessionDeletion, SessionRecord


@dataclass
class SessionView:
    """A session with its runs, oldest first, and its agent (``None`` if no longer deployed)."""

    record: SessionRecord
    runs: list[RunState]
    agent: Agent | None


def _not_found(session_id: str) -> NotFound:
    return NotFound(f"Session with id '{session_id}' not found")


def _owned(
    deps: Dependencies, session_id: str, user_id: str | None, principal: Principal | None
) -> SessionRecord:
    record = deps.store.session(session_id)
    owner = principal.user_id if principal else user_id
    if record is None or (owner is not None and record.user_id != owner):
        raise _not_found(session_id)
    return record


def _view(deps: Dependencies, record: SessionRecord) -> SessionView:
    runs = deps.store.list_runs(agent_id=None, session_id=record.session_id, user_id=None, status=None)
    try:
        agent: Agent | None = deps.catalog.get(record.agent_id)
    except AgentNotFound:
        agent = None
    return SessionView(record, runs, agent)


def get_session(
    deps: Dependencies, session_id: str, *, user_id: str | None, principal: Principal | None
) -> SessionView:
    """The caller's session with its runs.

    Raises:
        NotFound: no such session, or not the caller's.
    """
    return _view(deps, _owned(deps, session_id, user_id, principal))


def session_run(
    deps: Dependencies, session_id: str, run_id: str, *, user_id: str | None, principal: Principal | None
) -> RunState:
    """One run of the caller's session.

    Raises:
        NotFound: no such run in that session, or the session is not the caller's.
    """
    loaded = deps.store.load(run_id)
    owner = principal.user_id if principal else user_id
    if (
        loaded is None
        or loaded.state.session_id != session_id
        or (owner is not None and loaded.state.user_id != owner)
    ):
        raise NotFound(f"Run with ID {run_id} not found in session {session_id}")
    return loaded.state


def rename_session(
    deps: Dependencies,
    session_id: str,
    session_name: str,
    *,
    user_id: str | None,
    principal: Principal | None,
) -> SessionView:
    """Give the caller's session a name (lists show it instead of the first message).

    Raises:
        NotFound: no such session, or not the caller's.
    """
    _owned(deps, session_id, user_id, principal)
    record = deps.store.rename_session(session_id, session_name)
    if record is None:  # deleted meanwhile
        raise _not_found(session_id)
    return _view(deps, record)


def delete_session(
    deps: Dependencies,
    session_id: str,
    *,
    user_id: str | None,
    principal: Principal | None,
    meta: dict[str, Any] | None = None,
) -> None:
    """Delete the caller's session and its runs, so that none of its paused calls can ever run.

    Each deleted run keeps one ``session_deleted`` audit row: who deleted it, when, from where, its
    status and the calls that were waiting (tool names only); its other audit rows go with it.

    Raises:
        NotFound: no such session, or not the caller's.
        RunBusy: one of its runs is executing (or queued for the worker); nothing was deleted.
    """
    record = _owned(deps, session_id, user_id, principal)
    actor = principal.user_id if principal else (user_id or record.user_id)
    tombstone = RunEvent("session_deleted", actor, "api", dict(meta or {}))
    outcome = deps.store.delete_session(session_id, owner=record.user_id, tombstone=tombstone)
    if outcome is SessionDeletion.BUSY:
        raise RunBusy("a run of this session is running; delete the session when it has stopped")
    if outcome is SessionDeletion.MISSING:
        raise _not_found(session_id)
