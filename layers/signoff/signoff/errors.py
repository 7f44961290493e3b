"""The exception tree. `signoff.http` maps it to HTTP status codes in one place."""

from __future__ import annotations

from typing import Any


class SignoffError(Exception):
    """Base of every error Signoff raises on purpose."""

    status_code = 500

    def __init__(self, detail: Any = "Internal server error") -> None:
        super().__init__(detail if isinstance(detail, str) else repr(detail))
        self.detail = detail


class BadRequest(SignoffError):
    status_code = 400


class Unauthorized(SignoffError):
    status_code = 401


class Forbidden(SignoffError):
    status_code = 403


class NotFound(SignoffError):
    status_code = 404


class AgentNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Agent not found")


class RunNotFound(NotFound):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"No runs found for run ID {run_id}")


class Conflict(SignoffError):
    status_code = 409


class Gone(SignoffError):
    status_code = 410


class PayloadTooLarge(SignoffError):
    status_code = 413


class ValidationFailed(SignoffError):
    """422 with FastAPI-shaped details: ``[{"loc": [...], "msg": ..., "type": ...}]``."""

    status_code = 422

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)


class NotImplementedYet(SignoffError):
    status_code = 501


class StoreUnavailable(SignoffError):
    """The database could not be reached or failed mid-transaction."""

    status_code = 503

    def __init__(self, detail: str = "Database unavailable, try again") -> None:
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

    status_code = 500
