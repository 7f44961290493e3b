"""CloudFormation custom resources run at deploy: the SQL migrations (``Custom::SignoffMigrations``,
applied on Create/Update; Delete keeps all data) and the inbox's sign-in
(``Custom::SignoffInboxSignIn``, see ``signin.py``)."""

from __future__ import annotations

import json
import re
import threading
import traceback
import urllib.request
from collections.abc import Callable
from typing import Any

import signin
from aws_lambda_powertools import Logger

logger = Logger()

PHYSICAL_RESOURCE_ID = "signoff-migrations"  # stable: an Update never looks like a replacement
TIMEOUT_MARGIN_S = 10  # answer FAILED this long before Lambda kills the invocation

Sender = Callable[[str, dict[str, Any]], None]
Migrator = Callable[[], list[str]]

_CREDENTIALS = (
    (re.compile(r"(://[^:/@\s]*:)[^@\s]*@"), r"\1***@"),  # postgresql://user:secret@host
    (re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE), r"\1***"),  # libpq key=value
)


def send_response(url: str, body: dict[str, Any]) -> None:
    """PUT the response to CloudFormation's pre-signed S3 URL."""
    if not url.startswith("https://"):
        raise ValueError("ResponseURL is not an https URL")
    data = json.dumps(body).encode()
    # An empty Content-Type: the URL is signed without one, and urllib would add its own.
    headers = {"Content-Type": ""}
    request = urllib.request.Request(url, data=data, method="PUT", headers=headers)  # noqa: S310 - https only
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - https only
        response.read()


def apply_pending_migrations() -> list[str]:
    # Imported here so that a broken layer is reported to CloudFormation as FAILED, not as an
    # init error that leaves the stack waiting.
    from signoff.runtime import database_url
    from signoff.store.migrations import apply_migrations

    return apply_migrations(database_url())


def short_reason(exc: BaseException) -> str:
    """The exception class and the first line of its message, without credentials, capped."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    for pattern, replacement in _CREDENTIALS:
        message = pattern.sub(replacement, message)
    return f"{type(exc).__name__}: {message}"[:300]


class _Responder:
    """Sends exactly one response per request, whichever of the handler and the timer is first."""

    def __init__(self, event: dict[str, Any], send: Sender) -> None:
        self._event = event
        self._send = send
        self._lock = threading.Lock()
        self.body: dict[str, Any] | None = None

    def respond(self, status: str, reason: str, applied: list[str]) -> dict[str, Any]:
        """Send this response unless one was sent already; return the one that was sent."""
        with self._lock:
            if self.body is not None:
                return self.body
            self.body = {
                "Status": status,
                "Reason": reason,
                "PhysicalResourceId": PHYSICAL_RESOURCE_ID,
                "StackId": self._event.get("StackId"),
                "RequestId": self._event.get("RequestId"),
                "LogicalResourceId": self._event.get("LogicalResourceId"),
                "Data": {"applied": applied},
            }
            url = self._event.get("ResponseURL")
            if url:  # absent when invoked directly (`aws lambda invoke`), not by CloudFormation
                try:
                    self._send(url, self.body)
                except Exception as exc:  # nothing else can reach CloudFormation; at least log it
                    logger.error("could not send the response", extra={"error": short_reason(exc)})
            return self.body


def handle(
    event: dict[str, Any],
    remaining_ms: Callable[[], int] | None = None,
    send: Sender = send_response,
    migrate: Migrator = apply_pending_migrations,
) -> dict[str, Any]:
    """Handle one custom-resource request and return the response body sent to CloudFormation.

    Create and Update (and a direct invocation without ``RequestType``) apply the pending
    migrations; Delete does nothing, so deleting the stack never drops data. Every outcome,
    including an exception or an imminent Lambda timeout, is reported to CloudFormation.
    """
    responder = _Responder(event, send)
    request_type = event.get("RequestType", "Create")
    if event.get("ResourceType") == signin.RESOURCE_TYPE:
        try:
            return responder.respond("SUCCESS", signin.apply(event), [])
        except Exception as exc:
            logger.error("inbox sign-in setup failed", extra={"error": short_reason(exc)})
            return responder.respond("FAILED", short_reason(exc), [])
    timer = None
    if remaining_ms is not None:
        seconds = max(remaining_ms() / 1000 - TIMEOUT_MARGIN_S, 1)
        timer = threading.Timer(
            seconds, responder.respond, ("FAILED", "Timeout: migrations did not finish in time", [])
        )
        timer.daemon = True
        timer.start()
    try:
        if request_type in ("Create", "Update"):
            applied = migrate()
            reason = f"{len(applied)} migration(s) applied"
        else:
            applied, reason = [], "nothing to do: the database is kept"
        logger.info(reason, extra={"request_type": request_type, "applied": applied})
        body = responder.respond("SUCCESS", reason, applied)
    except Exception as exc:
        reason = short_reason(exc)
        # The traceback's frames only: a driver's message can echo the connection string.
        logger.error(
            "migrations failed", extra={"error": reason, "frames": traceback.format_tb(exc.__traceback__)}
        )
        body = responder.respond("FAILED", reason, [])
    finally:
        if timer is not None:
            timer.cancel()
    return body


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, remaining_ms=context.get_remaining_time_in_millis)
