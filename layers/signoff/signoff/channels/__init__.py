"""Decision channels as plug-ins: one module per channel, found in this package by name.

A channel module defines what it does of these (only ``NAME`` is required):

- ``NAME``: the channel's name, as the audit log and the metrics record it.
- ``ROUTE``: the POST path its decisions arrive on. The approvals function registers it; the
  route is also declared in ``template.yaml`` (the tests tie the two together).
- ``announcer(settings, secret)``: a function that tells the world a run paused, taking
  ``signoff.wire.paused_detail``'s dict; ``None`` when the channel is not configured.
- ``receive(request, settings, secret)``: verify an incoming :class:`Incoming` (its signature) and
  parse it into a :class:`Received`: a typed decision and the decider the channel vouches for.
- ``reply(outcome, received)``: the :class:`Reply` its sender gets, with any follow-up (Slack's
  message update).

``secret(name)`` returns a named secret (``webhook``, ``slack``), from the environment or Secrets
Manager, read only when a channel needs it. The rules a decision must pass are not here: they live
in ``signoff.decisions`` and every channel goes through them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import Any

from signoff.decisions import Decider, Decision

Secret = Callable[[str], str]
Announcer = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Incoming:
    """A request to a channel's route: lower-cased headers, the raw body, where it came from."""

    headers: Mapping[str, str]
    body: bytes
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    """A verified decision: for the call ``run_id``/``decision.tool_call_id``, or through ``token``."""

    decision: Decision
    decider: Decider
    run_id: str | None = None
    token: str | None = None
    # More decisions of the same request (a Slack message's Submit answers all its input calls).
    more: tuple[Decision, ...] = ()


@dataclass
class Reply:
    """What the sender gets: a status and a JSON body; ``followup`` runs after the answer is built."""

    status: int
    body: dict[str, Any]
    followup: Callable[[], Any] | None = None


@cache
def names() -> tuple[str, ...]:
    """Every channel module of this package."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


def load(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{name}")


def incoming() -> list[ModuleType]:
    """The channels that take decisions over HTTP (they have a ``ROUTE``)."""
    return [module for module in map(load, names()) if getattr(module, "ROUTE", None)]


def announcers(settings: Any, secret: Secret) -> list[tuple[str, Announcer]]:
    """The configured channels' announcers, by channel name."""
    found = []
    for name in names():
        module = load(name)
        make = getattr(module, "announcer", None)
        announce = make(settings, secret) if make else None
        if announce is not None:
            found.append((module.NAME, announce))
    return found
