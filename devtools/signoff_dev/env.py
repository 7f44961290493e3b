"""Each function's environment in local runs: the template's literal variables, applied per invocation.

On Lambda every function has its own environment. Locally the handlers share a process (or a few
"container" processes), so each invocation gets its function's variables just before it runs, and the
runtime's cached settings are rebuilt when they change (``signoff.runtime.reset``; the database
connection is kept).

Some variables are never taken from the template locally, because their template values point at a
real AWS account, and a developer with credentials must not publish to it from ``make dev``:
``SIGNOFF_EVENT_BUS``, ``SIGNOFF_QUEUE_URL``, ``SIGNOFF_NOTIFY_URL``, ``SIGNOFF_SLACK_WEBHOOK_URL`` and
every ``*_ARN``. Values that need a deployed stack (``!Ref`` of a resource, ``!GetAtt``, ``!Sub``) are
left out by the template reader. A variable set in the developer's environment wins over the template
(as ``sam local --env-vars`` does) and is the same for every function.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Collection, Iterator, Mapping, MutableMapping

from signoff import runtime
from signoff_dev.template import Template

# Never from the template locally: see the module docstring.
DENIED = frozenset(
    {
        "SIGNOFF_EVENT_BUS",
        "SIGNOFF_QUEUE_URL",
        "SIGNOFF_NOTIFY_URL",
        "SIGNOFF_SLACK_WEBHOOK_URL",
        # The dev server's own --auth decides, not the template's AuthMode default.
        "SIGNOFF_AUTH_MODE",
    }
)

Overlay = dict[str, str | None]  # name → value; None: unset


def allowed_from_template(name: str) -> bool:
    """Whether a template variable may be applied locally (see ``DENIED``; no ``*_ARN``).

    Args:
        name: the variable's name.

    Returns:
        True when the template's value may be used.
    """
    return name not in DENIED and not name.upper().endswith("_ARN")


def function_overlays(template: Template, explicit: Collection[str]) -> dict[str, Overlay]:
    """What each function's invocations set and unset, over the names the template manages locally.

    Args:
        template: the loaded template.
        explicit: the names set in the developer's environment (never touched).

    Returns:
        logical id → overlay. Every overlay has the same names: the template variables that are
        allowed locally and not set explicitly; a function that does not declare one unsets it.
    """
    managed = sorted(
        {
            name
            for function in template.functions.values()
            for name in function.environment
            if allowed_from_template(name) and name not in explicit
        }
    )
    return {
        logical_id: {name: function.environment.get(name) for name in managed}
        for logical_id, function in template.functions.items()
    }


def apply_overlay(overlay: Mapping[str, str | None], environ: MutableMapping[str, str] | None = None) -> bool:
    """Set and unset the overlay's variables; rebuild the runtime's settings when anything changed.

    Args:
        overlay: name → value (None: unset).
        environ: the environment to change (``os.environ``).

    Returns:
        Whether the environment changed.
    """
    env = os.environ if environ is None else environ
    changed = False
    for name, value in overlay.items():
        if value is None:
            if name in env:
                del env[name]
                changed = True
        elif env.get(name) != value:
            env[name] = value
            changed = True
    if changed:
        runtime.reset(keep_store=True)
    return changed


class EnvGate:
    """Lets in-process invocations run under their function's environment.

    Invocations that need the same environment run together; one that needs another waits until they
    are done, then the environment is switched (with one invocation at a time, as ``make dev`` runs by
    default, that is simply a switch before each invocation whose function differs).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._current: tuple[tuple[str, str], ...] | None = None
        self._active = 0

    @contextlib.contextmanager
    def use(self, overlay: Mapping[str, str | None]) -> Iterator[None]:
        """Hold the environment ``overlay`` describes for the duration of the block.

        Args:
            overlay: the function's overlay (see ``function_overlays``).
        """
        key = tuple(sorted((name, "\0" if value is None else value) for name, value in overlay.items()))
        with self._cond:
            while self._active and self._current != key:
                self._cond.wait()
            if self._current != key:
                apply_overlay(overlay)
                self._current = key
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def restore(self, names: Collection[str]) -> None:
        """Unset the managed names (they were not in the environment before) and forget the state.

        Args:
            names: the managed variable names.
        """
        with self._cond:
            apply_overlay(dict.fromkeys(names))
            self._current = None
