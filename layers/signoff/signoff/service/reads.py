"""Reads: a run, its audit trail, runs of an agent or a session, sessions of a user."""

from __future__ import annotations

from typing import Any

from signoff.authz import Principal
from signoff.errors import NotFound
from signoff.service.common import Dependencies, load_owned
from signoff.state import RunState
from signoff.store.base import SessionPage


def get_run(
    deps: Dependencies, agent_id: str, run_id: str, *, session_id: str | None, principal: Principal | None
) -> RunState:
    agent = deps.catalog.get(agent_id)
    return load_owned(deps, agent, run_id, session_id, None, principal).state


def run_events(
    deps: Dependencies, agent_id: str, run_id: str, *, session_id: str | None, principal: Principal | None
) -> list[dict[str, Any]]:
    """The run's audit trail, for those who may read the run."""
    agent = deps.catalog.get(agent_id)
    load_owned(deps, agent, run_id, session_id, None, principal)
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


def session_runs(
    deps: Dependencies, session_id: str, *, user_id: str | None, principal: Principal | None
) -> list[RunState]:
    owner = principal.user_id if principal else user_id
    runs = deps.store.list_runs(agent_id=None, session_id=session_id, user_id=owner, status=None)
    if not runs:
        raise NotFound(f"No session found with id {session_id}")
    return runs
