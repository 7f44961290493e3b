"""The resume queue as a decision channel: a ``{"kind": "decision", ...}`` message carries the webhook
body's fields. Being allowed to send to the queue (IAM) is its signature; the worker takes it."""

from __future__ import annotations

from typing import Any

from signoff.channels import Received

NAME = "queue"


def receive_message(message: dict[str, Any]) -> Received:
    """The decision a queue message carries.

    Raises:
        InvalidFields: a message without the fields a decision needs (dropped, not retried).
    """
    from signoff.channels.webhook import parse

    return parse({k: v for k, v in message.items() if k != "kind"}, channel=NAME, meta={"source": "queue"})
