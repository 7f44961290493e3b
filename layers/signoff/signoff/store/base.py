"""The storage interface the services depend on."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from signoff.state import RunState


@dataclass
class LoadedRun:
    """A run as stored, with what the service needs to decide what may happen to it."""

    state: RunState
    lease_live: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    # Whether the webhook delivery id passed to the load was already recorded (a replay).
    delivery_seen: bool = False
    # Decisions kept while the run was busy, waiting to be applied when it is free.
    deferred: list[dict[str, Any]] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        """An invocation is executing the run (a live lease), or the worker is about to (queued)."""
        return self.state.status == "PENDING" or (self.state.status == "RUNNING" and self.lease_live)


@dataclass
class RunEvent:
    """One line of the audit log."""

    kind: str
    actor: str | None = None
    channel: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApprovalViewer:
    """Whose approval records a query returns: ``everyone``'s, or those of runs ``user_id`` owns and
    of tools naming one of ``names`` (the user id and groups).

    ``admin``: the viewer is an approval admin (resolves ``required`` calls of tools naming no
    approvers). ``user_id`` is None without authentication (anyone decides what names no approvers).
    """

    everyone: bool
    user_id: str | None = None
    names: tuple[str, ...] = ()
    admin: bool = False


@dataclass
class SessionPage:
    sessions: list[dict[str, Any]]
    total: int


@dataclass
class SessionRecord:
    """A session as stored: who owns it, its agent, and its name (``None``: named by its first run)."""

    session_id: str
    agent_id: str
    user_id: str | None
    session_name: str | None
    created_at: int
    updated_at: int


class SessionDeletion(enum.Enum):
    """What deleting a session came to."""

    DELETED = "deleted"
    MISSING = "missing"  # no such session (or not the owner the caller named)
    BUSY = "busy"  # one of its runs is executing: nothing was deleted


class RunStore(Protocol):
    """Where runs live between invocations. ``PostgresRunStore`` is the real one."""

    def create_run(
        self, state: RunState, *, lease_seconds: int, history_runs: int, meta: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Insert the session (if new) and the run; return the session's history messages."""
        ...

    def load(
        self, run_id: str, *, history_runs: int = 0, delivery_id: str | None = None
    ) -> LoadedRun | None: ...

    def save(
        self,
        state: RunState,
        *,
        lease_seconds: int,
        events: list[RunEvent] = (),  # type: ignore[assignment]
        tokens: list[dict[str, Any]] = (),  # type: ignore[assignment]
        delivery: str | None = None,
        consumed: list[str] = (),  # type: ignore[assignment]
    ) -> list[dict[str, Any]]:
        """Write the state if its version is still the stored one; bump the version.

        Returns the deferred decisions still waiting on the run (``consumed`` ones removed).

        Raises:
            LeaseLost: another writer changed the run since it was loaded.
        """
        ...

    def defer(self, run_id: str, items: list[dict[str, Any]], *, delivery: str | None = None) -> bool:
        """Keep decisions on a busy run without touching its state; ``False`` if it is not busy."""
        ...

    def runs_with_deferred_decisions(self, *, limit: int) -> list[str]: ...

    def list_runs(
        self, *, agent_id: str | None, session_id: str | None, user_id: str | None, status: str | None
    ) -> list[RunState]: ...

    def list_sessions(
        self, *, user_id: str | None, agent_id: str | None, page: int, limit: int
    ) -> SessionPage: ...

    def session(self, session_id: str) -> SessionRecord | None:
        """The session, whoever owns it; ``None`` if there is none."""
        ...

    def rename_session(self, session_id: str, session_name: str) -> SessionRecord | None:
        """Store the session's name; the renamed session, or ``None`` if there is none."""
        ...

    def delete_session(self, session_id: str, *, owner: str | None, tombstone: RunEvent) -> SessionDeletion:
        """Delete the session of ``owner`` with its runs, their tool calls, approval links, kept
        decisions and audit rows, in one transaction, unless one of its runs is executing.

        Each deleted run keeps one audit row, ``tombstone`` (its detail completed with the run's
        session, status and the calls that were still waiting for a decision).
        """
        ...

    def stale_runs(self, *, limit: int) -> list[LoadedRun]: ...

    def load_by_token(
        self, token_hash: str, *, delivery_id: str | None = None
    ) -> tuple[dict[str, Any], LoadedRun] | None:
        """An approval token (run and call ids, decision, expiry, used_at) with its run, in one query."""
        ...

    def runs_with_expired_calls(self, *, limit: int) -> list[str]: ...

    def stranded_runs(self, *, older_than_s: int, limit: int) -> list[tuple[str, str]]: ...

    def append_events(self, run_id: str, events: list[RunEvent]) -> None: ...

    def approvals(
        self, *, viewer: ApprovalViewer, filters: dict[str, Any], limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]: ...

    def pending_approval_count(
        self, *, viewer: ApprovalViewer, filters: dict[str, Any]
    ) -> tuple[int, float | None]: ...

    def approval_context(self, approval_id: str) -> dict[str, Any] | None: ...

    def approval(self, approval_id: str) -> dict[str, Any] | None: ...

    def hide_approval(self, approval_id: str) -> bool: ...

    def run_events(self, run_id: str) -> list[dict[str, Any]]: ...


@dataclass
class KnowledgeDocument:
    """A document of a knowledge base.

    ``status`` is ``ready`` (searchable), ``pending`` (an upload the resume worker has not ingested
    yet) or ``updating`` (searchable, with a newer upload pending).
    """

    kb: str
    document_id: str
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    content_digest: str | None = None
    chunk_count: int = 0
    embedding_model: str | None = None
    status: str = "ready"
    created_at: int | None = None
    updated_at: int | None = None


@dataclass
class KnowledgeChunk:
    """One embedded piece of a document; ``metadata`` holds the document's plus ``headings``."""

    chunk_index: int
    content: str
    metadata: dict[str, Any]
    embedding: Sequence[float]


@dataclass
class KnowledgeHit:
    """A chunk found by a search, with its cosine similarity to the query (1 = same direction)."""

    kb: str
    document_id: str
    chunk_index: int
    title: str | None
    content: str
    metadata: dict[str, Any]
    score: float


@dataclass
class KnowledgeUpload:
    """A document waiting for the resume worker; its text stays in the database, not in the queue."""

    kb: str
    document_id: str
    upload_id: str
    title: str | None
    metadata: dict[str, Any]
    format: str
    text: str


@dataclass
class DocumentPage:
    documents: list[KnowledgeDocument]
    total: int


class KnowledgeStore(Protocol):
    """Where knowledge chunks and their embeddings live. ``PostgresKnowledgeStore`` is the real one."""

    def dimensions(self) -> int:
        """The size of the stored embeddings (fixed when the table was created)."""
        ...

    def document(self, kb: str, document_id: str) -> KnowledgeDocument | None: ...

    def replace_document(
        self, document: KnowledgeDocument, chunks: list[KnowledgeChunk], *, upload_id: str | None = None
    ) -> KnowledgeDocument | None:
        """Swap the document and all its chunks in one transaction; return the stored document.

        Without ``upload_id`` any pending upload of the document is dropped (this content is newer).
        With it, the write happens only if that upload is still pending (not superseded or deleted
        meanwhile, nor ingested by another delivery of the same message); ``None`` when it is not.
        """
        ...

    def delete_document(self, kb: str, document_id: str) -> bool:
        """Remove the document, its chunks and any pending upload; ``False`` if there was none."""
        ...

    def list_documents(self, kb: str, *, page: int, limit: int) -> DocumentPage: ...

    def search(
        self, kb: str, embedding: Sequence[float], *, limit: int, filters: dict[str, Any]
    ) -> list[KnowledgeHit]:
        """The ``limit`` chunks nearest to ``embedding`` whose metadata contains ``filters``."""
        ...

    def put_upload(self, upload: KnowledgeUpload) -> None:
        """Store a pending upload, replacing an older pending one of the same document."""
        ...

    def pending_upload(self, kb: str, document_id: str) -> KnowledgeUpload | None: ...
