"""The local pause notifier: prints each RunPaused with its approval links, instead of EventBridge,
a webhook or Slack (which ``make dev`` never calls unless ``SIGNOFF_EVENT_BUS``, ``SIGNOFF_NOTIFY_URL``
or ``SIGNOFF_SLACK_WEBHOOK_URL`` is set explicitly)."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any, TextIO

logger = logging.getLogger("signoff_dev.notifier")

CHANNEL_VARIABLES = ("SIGNOFF_EVENT_BUS", "SIGNOFF_NOTIFY_URL", "SIGNOFF_SLACK_WEBHOOK_URL")


def format_pause(detail: dict[str, Any]) -> str:
    """The block printed for a pause: the run, each pending call, its approve and reject links.

    Args:
        detail: ``signoff.notify.paused_detail``'s dict.

    Returns:
        The text.
    """
    bar = "=" * 72
    who = f" for {detail['user_id']}" if detail.get("user_id") else ""
    lines = [
        bar,
        f"RUN PAUSED  {detail.get('agent_name') or detail.get('agent_id')}{who}",
        f"  run {detail.get('run_id')}  session {detail.get('session_id')}",
    ]
    for call in detail.get("tool_calls") or []:
        args = json.dumps(call.get("tool_args") or {}, ensure_ascii=False)
        lines.append(f"  {call.get('tool_name')}({args})  [{call.get('requirement')}]")
        if call.get("approve_url") or call.get("reject_url"):
            lines.append(f"    approve: {call.get('approve_url')}")
            lines.append(f"    reject:  {call.get('reject_url')}")
        else:
            lines.append(f"    no link: decide it with POST .../runs/{detail.get('run_id')}/continue")
        if call.get("expires_at"):
            lines.append(f"    expires: {call['expires_at']}")
    lines.append("  (open a link in a browser: the page shows the call; its button decides)")
    lines.append(bar)
    return "\n".join(lines)


class LocalNotifier:
    """Records and prints every pause (``run_paused(state, links)``, the ``Notifier`` interface).

    Args:
        announce: print each pause prominently to ``stream``; otherwise only log it.
        stream: where to print (stderr).

    Attributes:
        paused: every pause detail received, oldest first (tests read the links here).
    """

    def __init__(self, *, announce: bool = True, stream: TextIO | None = None) -> None:
        self.announce = announce
        self.stream = stream
        self.paused: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def run_paused(self, state: Any, links: dict[str, dict[str, str]]) -> None:
        from signoff.notify import paused_detail

        self.record(json.loads(json.dumps(paused_detail(state, links), default=str)))

    def record(self, detail: dict[str, Any]) -> None:
        """Keep and show one pause (what a container's relay sends too).

        Args:
            detail: the pause detail.
        """
        with self._cond:
            self.paused.append(detail)
            self._cond.notify_all()
        text = format_pause(detail)
        if self.announce:
            print("\n" + text + "\n", file=self.stream or sys.stderr, flush=True)
        else:
            logger.info("%s", text)

    def links(self, run_id: str) -> dict[str, dict[str, str]]:
        """The latest approval links of a run's pending calls.

        Args:
            run_id: the run.

        Returns:
            tool_call_id → ``{"approve": url, "reject": url}`` (calls without links are left out).
        """
        with self._cond:
            details = [d for d in self.paused if d.get("run_id") == run_id]
        found: dict[str, dict[str, str]] = {}
        for detail in details:
            for call in detail.get("tool_calls") or []:
                if call.get("approve_url"):
                    found[call["tool_call_id"]] = {
                        "approve": call["approve_url"],
                        "reject": call["reject_url"],
                    }
        return found

    def wait_for(self, run_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
        """Wait for a pause of ``run_id`` and return its latest detail.

        Args:
            run_id: the run.
            timeout_s: the longest wait.

        Returns:
            The detail.

        Raises:
            TimeoutError: no pause of that run was announced in time.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = [d for d in self.paused if d.get("run_id") == run_id]
                if found:
                    return found[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no pause of run {run_id} was announced")
                self._cond.wait(left)
