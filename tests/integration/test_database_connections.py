"""The store's connection as a deployed container meets it: Aurora closing idle sessions (so that it can
pause), refused credentials after a secret rotation, and the upkeep's question "is there work?"."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from signoff.errors import StoreUnavailable
from signoff.store.postgres import PostgresRunStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _backend(store: PostgresRunStore) -> int:
    return store._execute(lambda conn: conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"])


def _kill(db: str, pid: int) -> None:
    """What the server's idle_session_timeout does to an idle session."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_decision_after_the_server_closed_the_idle_connection_is_not_refused(db):
    # Given a warm container's store whose connection sat idle past the server's idle_session_timeout
    clock = Clock()
    store = PostgresRunStore(db, max_idle_s=45, clock=clock)
    _kill(db, _backend(store))
    clock.now += 61

    # When a decision arrives for a busy run (a write that is not retried on a dead connection)
    kept = store.defer("no-such-run", [{"id": "d1"}])

    # Then it is answered (not a 503): the store opened a fresh connection before writing
    assert kept is False


def test_without_the_idle_limit_the_same_write_meets_the_dead_connection(db):
    # Given the same situation on a store that keeps connections however long they idled
    store = PostgresRunStore(db)
    _kill(db, _backend(store))

    # Then the write fails (503 to the caller): why the cheap profile sets SIGNOFF_DATABASE_MAX_IDLE_S
    with pytest.raises(StoreUnavailable):
        store.defer("no-such-run", [{"id": "d1"}])


def test_a_busy_container_keeps_its_one_connection(db):
    clock = Clock()
    store = PostgresRunStore(db, max_idle_s=45, clock=clock)
    first = _backend(store)
    clock.now += 30
    assert _backend(store) == first


def test_refused_credentials_are_read_again_once_before_answering_503(db):
    # Given a cached secret that names a user the database no longer accepts (rotated), and the
    # secret as Secrets Manager holds it now
    stale = make_conninfo(db, user="signoff_before_rotation")
    reads = []

    def fresh() -> str:
        reads.append("fresh")
        return db

    store = PostgresRunStore(lambda: stale, refresh=fresh)

    # When the container connects
    pid = _backend(store)

    # Then the request succeeds on the fresh secret, read exactly once
    assert pid > 0 and reads == ["fresh"]


def test_still_refused_after_the_fresh_read_is_a_503(db):
    stale = make_conninfo(db, user="signoff_before_rotation")
    store = PostgresRunStore(lambda: stale, refresh=lambda: stale)
    with pytest.raises(StoreUnavailable):
        _backend(store)


def test_an_unreachable_database_is_not_mistaken_for_a_rotation(db):
    reads = []
    unreachable = make_conninfo(db, host="/nonexistent-socket-dir")
    store = PostgresRunStore(unreachable, refresh=lambda: reads.append("fresh") or db, connect_timeout_s=1)
    with pytest.raises(StoreUnavailable):
        _backend(store)
    assert reads == []
    assert conninfo_to_dict(unreachable)["host"] == "/nonexistent-socket-dir"


def test_nothing_pending_means_the_upkeep_never_needs_the_database(db):
    assert PostgresRunStore(db).next_upkeep_due(stranded_after_s=60) is None
