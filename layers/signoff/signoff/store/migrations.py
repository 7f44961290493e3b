"""Applies the SQL files in ``migrations/`` in order, once each, under an advisory lock."""

from __future__ import annotations

from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_LOCK_KEY = 0x5167_0FF  # any constant shared by every migrating process


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


def apply_migrations(conninfo: str, *, embedding_dimensions: int | None = None) -> list[str]:
    """Apply pending migrations; return the names applied now. Safe to run concurrently.

    Args:
        conninfo: the database URL.
        embedding_dimensions: the size of the knowledge embeddings column, used only when the
            migration creating it runs; ``None``: ``SIGNOFF_EMBEDDING_DIMENSIONS``.
    """
    if embedding_dimensions is None:
        from signoff.config import get_settings

        embedding_dimensions = get_settings().embedding_dimensions
    applied_now: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "SELECT set_config('signoff.embedding_dimensions', %s, false)", (str(embedding_dimensions),)
        )
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for path in migration_files():
                if path.stem in done:
                    continue
                with conn.transaction():
                    conn.execute(path.read_text())  # trusted file shipped with the code
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,))
                applied_now.append(path.stem)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
