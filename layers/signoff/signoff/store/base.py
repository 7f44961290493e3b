"""The storage interface the services depend on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from signoff.state import RunState


@dataclass
class LoadedRun:
    """A run as stored, with what the service needs to decide what may happen to it."""

    state: RunState
    lease_live: bool
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RunEvent:
    """One line of the audit log."""

    kind: str
    actor: str | None = None
    channel: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class SessionPage:
    sessions: list[dict[str, Any]]
    total: int


class RunStore(Protocol):
    """Where runs live between invocations. ``PostgresRunStore`` is the real one."""

    def create_run(self, state: RunState, *, lease_seconds: int, history_runs: int) -> list[dict[str, Any]]:
        """Insert the session (if new) and the run; return the session's history messages."""
        ...

    def load(self, run_id: str, *, history_runs: int = 0) -> LoadedRun | None: ...

    def save(
        self,
        state: RunState,
        *,
        lease_seconds: int,
        events: list[RunEvent] = (),  # type: ignore[assignment]
        tokens: list[dict[str, Any]] = (),  # type: ignore[assignment]
        delivery: str | None = None,
    ) -> None:
        """Write the state if its version is still the stored one; bump the version.

        Raises:
            LeaseLost: another writer changed the run since it was loaded.
        """
        ...

    def list_runs(
        self, *, agent_id: str | None, session_id: str | None, user_id: str | None, status: str | None
    ) -> list[RunState]: ...

    def list_sessions(
        self, *, user_id: str | None, agent_id: str | None, page: int, limit: int
    ) -> SessionPage: ...

    def stale_runs(self, *, limit: int) -> list[LoadedRun]: ...

    def approval_token(self, token_hash: str) -> dict[str, Any] | None: ...

    def delivery_seen(self, delivery_id: str) -> bool: ...

    def runs_with_expired_calls(self, *, limit: int) -> list[str]: ...

    def stranded_runs(self, *, older_than_s: int, limit: int) -> list[tuple[str, str]]: ...

    def append_events(self, run_id: str, events: list[RunEvent]) -> None: ...

    def run_events(self, run_id: str) -> list[dict[str, Any]]: ...
