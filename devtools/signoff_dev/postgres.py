"""Embedded PostgreSQL 16 + pgvector (pgserver) for the dev server, local invokes and tests."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def _forget_dead_handles(data_dir: Path) -> None:
    # pgserver stops the server only when the last process using it exits; a dev server killed
    # without cleanup leaves its pid in this list and would keep postgres running forever after.
    handles = data_dir / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = []
    for pid in pids:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            continue
        except (PermissionError, ValueError, TypeError):
            pass
        alive.append(pid)
    if alive != pids:
        handles.write_text(json.dumps(alive))


def start_postgres(data_dir: Path, *, migrate: bool = True) -> tuple[Any, str]:
    """Start (or attach to) an embedded PostgreSQL whose data lives in ``data_dir``, then migrate it.

    The data folder persists: calling this again later finds the same database. As root, pgserver runs
    postgres as a ``pgserver`` system user, so ``data_dir`` must be somewhere that user can reach (not
    pytest's ``tmp_path``; use ``tempfile.mkdtemp()``). The server listens on a Unix socket only.

    Args:
        data_dir: the data folder; created when missing (its parent is created too).
        migrate: apply ``signoff.store.migrations`` after start.

    Returns:
        ``(server, url)``: the pgserver handle (pass it to ``stop_postgres``) and its libpq URL.
    """
    with warnings.catch_warnings():  # platformdirs complains when XDG_RUNTIME_DIR is unset (containers)
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver

    data_dir = Path(data_dir).resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(data_dir)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    url = server.get_uri()
    if migrate:
        from signoff.store.migrations import apply_migrations

        applied = apply_migrations(url)
        if applied:
            logger.info("applied migrations: %s", ", ".join(applied))
    return server, url


def stop_postgres(server: Any) -> None:
    """Stop an embedded PostgreSQL started by ``start_postgres`` (its data stays on disk).

    Args:
        server: the handle ``start_postgres`` returned.
    """
    try:
        server.cleanup()
    except Exception:  # a second stop, or postgres already gone: nothing left to do
        logger.debug("stopping postgres failed", exc_info=True)
