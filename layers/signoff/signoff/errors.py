"""The exception tree. It knows nothing of HTTP: `signoff.http` maps it to statuses in one table."""

from __future__ import annotations

from typing import Any


class SignoffError(Exception):
    """Base of every error Signoff raises on purpose."""

    def __init__(self, detail: Any = "Internal server error") -> None:
        super().__init__(detail if isinstance(detail, str) else repr(detail))
        self.detail = detail


class InvalidInput(SignoffError):
    """The request is malformed or asks for something this run cannot take."""


class InvalidFields(SignoffError):
    """Fields failed validation; ``detail`` is FastAPI-shaped: ``[{"loc", "msg", "type"}]``."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)


class TooLarge(SignoffError):
    """A body or document over its size limit."""


class NotAuthenticated(SignoffError):
    """No valid credentials: signature, token or verified claims."""


class NotAllowed(SignoffError):
    """The caller is known but may not do this."""


class NotFound(SignoffError):
    """Nothing the caller may see answers to that name."""


class AgentNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Agent not found")


class RunNotFound(NotFound):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"No runs found for run ID {run_id}")


class Conflict(SignoffError):
    """The run or the call is no longer in the state the request was made for."""


class RunBusy(Conflict):
    """An invocation is working on the run right now (a live lease, or queued for the worker)."""

    retry_after_s = 5

    def __init__(self, detail: str = "run is already running") -> None:
        super().__init__(detail)


class AlreadyDecided(Conflict):
    """The tool call was decided (or resolved) before this decision arrived."""


class Replayed(Conflict):
    """A delivery (webhook event, Slack action) that was already received."""


class DigestStale(Conflict):
    """The decision was made on arguments that are not the call's arguments any more."""


class ToolChanged(Conflict):
    """The deployed tool differs from the one the human was shown."""


class Expired(SignoffError):
    """The approval window of a call (or a link) has passed: nothing can approve it any more."""


class NotConfigured(SignoffError):
    """A feature this deployment has not set up (no secret, no queue)."""


class StoreUnavailable(SignoffError):
    """The database could not be reached or failed mid-transaction."""

    def __init__(self, detail: str = "Database unavailable, try again") -> None:
        super().__init__(detail)


class UnstorableValue(InvalidInput):
    """A value PostgreSQL refuses (NUL characters, lone surrogates) reached a write."""

    def __init__(self, detail: str = "a value in the request cannot be stored") -> None:
        super().__init__(detail)


class LeaseLost(Conflict):
    """Another invocation took the run over while this one held it."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} was taken over by another invocation")


class KnowledgeIndexMismatch(SignoffError):
    """The embeddings and the ``knowledge_chunks`` column differ in size: the index needs a rebuild.

    An operator's mistake (``SIGNOFF_EMBEDDING_DIMENSIONS`` changed after the migration), so the
    message says what to do; it carries no data.
    """
