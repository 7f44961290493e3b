"""Tells the world a run paused: every configured channel's announcer (``signoff.channels``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from signoff.state import RunState
from signoff.wire import paused_detail

__all__ = ["NotificationFailed", "Notifier", "paused_detail"]


class NotificationFailed(Exception):
    """At least one channel failed; the pause itself is saved and unaffected."""


class Notifier:
    """Publishes ``RunPaused`` after the pause is committed, to every configured channel.

    Args:
        announcers: (channel name, announce(detail)) pairs, from ``signoff.channels.announcers``.
    """

    def __init__(self, announcers: list[tuple[str, Callable[[dict[str, Any]], None]]]) -> None:
        self.announcers = announcers

    def run_paused(self, state: RunState, links: dict[str, dict[str, str]]) -> None:
        """Send to every channel; raise ``NotificationFailed`` naming those that failed."""
        detail = paused_detail(state, links)
        failures = []
        for name, announce in self.announcers:
            try:
                announce(detail)
            except Exception:  # any channel failure: reported below, retried via the queue
                failures.append(name)
        if failures:
            raise NotificationFailed(", ".join(failures))
