"""EventBridge: a ``RunPaused`` event (source ``signoff``) on ``SIGNOFF_EVENT_BUS`` for each pause."""

from __future__ import annotations

import json
from typing import Any

from signoff.channels import Announcer, Secret

NAME = "eventbridge"


class EventRejected(Exception):
    """EventBridge did not take the event."""


def announcer(settings: Any, secret: Secret) -> Announcer | None:
    if not settings.event_bus:
        return None
    client: list[Any] = []

    def announce(detail: dict[str, Any]) -> None:
        if not client:
            import boto3

            client.append(boto3.client("events"))
        result = client[0].put_events(
            Entries=[
                {
                    "Source": "signoff",
                    "DetailType": "RunPaused",
                    "Detail": json.dumps(detail),
                    "EventBusName": settings.event_bus,
                }
            ]
        )
        if result.get("FailedEntryCount"):
            raise EventRejected(str(result.get("Entries"))[:300])

    return announce
