"""``make dev``'s server as the tests start it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from signoff_dev.devserver import DevServer

ROOT = Path(__file__).resolve().parents[2]


def local_server(database_url: str, model_url: str, *, root: Path = ROOT, **options: Any) -> DevServer:
    """The dev server on a free port, with no upkeep timer and no banner; ``with`` starts and stops it.

    Args:
        database_url: the test's database.
        model_url: the model stand-in's base URL.
        root: the checkout whose template.yaml it serves.
        options: any other ``DevServer`` argument (``auth``, ``jwt_secret``, ``containers``, ...).
    """
    return DevServer(
        root,
        port=0,
        database_url=database_url,
        model_base_url=model_url,
        upkeep_seconds=0,
        announce=False,
        **options,
    )
