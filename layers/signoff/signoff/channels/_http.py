"""Sending to a channel's endpoint (shared by the channels that announce over HTTPS)."""

from __future__ import annotations

import json
from typing import Any

_TIMEOUT_S = 3.0


def post_json(url: str, payload: dict[str, Any] | bytes, headers: dict[str, str] | None = None) -> None:
    """POST JSON to a configured https endpoint (a notification, a Slack message update)."""
    import urllib.request  # http.client and its friends: only when a notification is actually sent

    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(  # noqa: S310 - configured https endpoints
        url, data=body, method="POST", headers={"Content-Type": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:  # noqa: S310
        response.read()
