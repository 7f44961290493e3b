"""Knowledge search: documents split into chunks, embedded, stored, and looked up by agents.

Use cases (each takes the store and the embedder as arguments): :func:`ingest`,
:func:`ingest_upload` (the resume worker's half of a large upload), :func:`delete`,
:func:`list_documents` and :func:`search`; :func:`search_tool` is what ``Agent(knowledge=...)``
gives the model.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import uuid
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from signoff.errors import InvalidInput, NotAllowed, NotFound
from signoff.identity import Principal
from signoff.models.base import Deadline, Embedder
from signoff.queue import ResumeQueue, ingest_message
from signoff.store.base import (
    DocumentPage,
    KnowledgeChunk,
    KnowledgeDocument,
    KnowledgeHit,
    KnowledgeStore,
    KnowledgeUpload,
)
from signoff.tools import Tool, ToolOutput, tool

CHUNK_CHARS = 800
OVERLAP_CHARS = 100
TOOL_NAME = "search_knowledge_base"
DEFAULT_LIMIT = 5
MAX_TOOL_LIMIT = 20
MAX_SEARCH_LIMIT = 50
MAX_QUERY_CHARS = 4000
EXCERPT_CHARS = 200
# Bumped when the chunking changes, so that re-posting an unchanged document re-embeds it.
_CHUNKING_VERSION = 1

Format = Literal["markdown", "text"]
SearchFunction = Callable[[str, str, int, dict[str, Any]], list[KnowledgeHit]]

_KB = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DOCUMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: its text and the headings it sits under, outermost first."""

    index: int
    text: str
    headings: tuple[str, ...] = ()


@dataclass
class DocumentInput:
    """A document as posted.

    Attributes:
        text: the document's text.
        document_id: its id in the knowledge base; posting the same id again replaces it.
            ``None``: a new random id.
        title: shown with search results; defaults to the heading that tops the document.
        metadata: JSON object stored with every chunk; search filters match against it.
        format: ``markdown`` (split at headings, fenced code kept whole) or ``text``.
    """

    text: str
    document_id: str | None = None
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    format: Format = "markdown"


@dataclass
class IngestResult:
    """What a post did: ``created``, ``replaced``, ``unchanged`` (same text: nothing re-embedded)
    or ``queued`` (the resume worker ingests it)."""

    document: KnowledgeDocument
    outcome: Literal["created", "replaced", "unchanged", "queued"]


# ---------------------------------------------------------------------------- chunking


def split_document(
    text: str, *, markdown: bool = True, max_chars: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS
) -> list[Chunk]:
    """Split a document into chunks of about ``max_chars`` characters.

    Markdown is cut at headings first (each chunk keeps its heading path), then at paragraphs;
    a fenced code block is one paragraph. Paragraphs longer than a chunk are cut at sentences,
    then words. Consecutive chunks of one section share ``overlap`` characters, so that a sentence
    cut in two is still found whole in one of them.

    Args:
        text: the document.
        markdown: whether to read headings and code fences.
        max_chars: the chunk size to aim for.
        overlap: characters repeated from the end of a chunk at the start of the next.

    Returns:
        The chunks, numbered from 0; none for a blank document.
    """
    overlap = max(0, min(overlap, max_chars // 4))
    chunks: list[Chunk] = []
    for headings, blocks in _sections(text, markdown):
        for piece in _pack(blocks, max_chars, overlap):
            chunks.append(Chunk(len(chunks), piece, headings))
    if not chunks and text.strip():  # headings only: index the headings themselves
        for piece in _pack([text.strip()], max_chars, overlap):
            chunks.append(Chunk(len(chunks), piece))
    return chunks


def _sections(text: str, markdown: bool) -> list[tuple[tuple[str, ...], list[str]]]:
    """(heading path, paragraphs) in document order."""
    sections: list[tuple[tuple[str, ...], list[str]]] = []
    path: list[tuple[int, str]] = []
    blocks: list[str] = []
    lines: list[str] = []
    fence: re.Pattern[str] | None = None

    def end_block() -> None:
        if any(line.strip() for line in lines):
            blocks.append("\n".join(lines).strip("\n"))
        lines.clear()

    def end_section() -> None:
        end_block()
        if blocks:
            sections.append((tuple(title for _, title in path), list(blocks)))
        blocks.clear()

    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if fence is not None:
            lines.append(line)
            if fence.match(line):
                fence = None
                end_block()
            continue
        if markdown:
            opening = _FENCE.match(line)
            if opening:
                end_block()
                marker = opening.group(1)
                fence = re.compile(rf"^ {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$")
                lines.append(line)
                continue
            heading = _HEADING.match(line)
            if heading:
                end_section()
                level = len(heading.group(1))
                path = [(lvl, title) for lvl, title in path if lvl < level]
                if heading.group(2).strip():
                    path.append((level, heading.group(2).strip()))
                continue
        if not line.strip():
            end_block()
        else:
            lines.append(line.rstrip())
    end_section()
    return sections


def _pack(blocks: list[str], max_chars: int, overlap: int) -> list[str]:
    """Pack paragraphs into chunks; each new chunk starts with the previous one's tail."""
    limit = max(1, max_chars - overlap - 1)
    pieces = [piece for block in blocks for piece in _cut(block, limit)]
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 2 + len(piece) > max_chars:
            chunks.append(current)
            tail = _tail(current, overlap)
            current = f"{tail} {piece}" if tail else piece
        else:
            current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def _cut(block: str, limit: int) -> list[str]:
    """A paragraph in pieces of at most ``limit`` characters: at sentences, then words, then anywhere."""
    if len(block) <= limit:
        return [block]
    units: list[str] = []
    for sentence in _SENTENCE_END.split(block):
        if len(sentence) <= limit:
            units.append(sentence)
            continue
        for word in sentence.split():
            units.extend(word[i : i + limit] for i in range(0, len(word), limit))
    pieces: list[str] = []
    current = ""
    for unit in units:
        if current and len(current) + 1 + len(unit) > limit:
            pieces.append(current)
            current = unit
        else:
            current = f"{current} {unit}" if current else unit
    if current:
        pieces.append(current)
    return pieces


def _tail(text: str, overlap: int) -> str:
    """The last ``overlap`` characters of a chunk, starting at a word."""
    if overlap <= 0 or len(text) <= overlap:
        return ""
    tail = text[-overlap:]
    space = re.search(r"\s", tail)
    return tail[space.end() :].strip() if space else ""


def embedding_text(title: str | None, chunk: Chunk) -> str:
    """What is embedded for a chunk: its title and heading path on a line, then its text."""
    context = _context(title, chunk.headings)
    return f"{context}\n{chunk.text}" if context else chunk.text


def _context(title: str | None, headings: Sequence[str]) -> str:
    names: list[str] = []
    for name in (title, *headings):
        if name and (not names or names[-1] != name):
            names.append(name)
    return " > ".join(names)


# ---------------------------------------------------------------------------- use cases


def check_kb(kb: str) -> str:
    if not _KB.match(kb or ""):
        raise InvalidInput(
            "a knowledge base name is 1-64 letters, digits, '_', '.' or '-', starting alphanumeric"
        )
    return kb


def check_document_id(document_id: str) -> str:
    if not _DOCUMENT_ID.match(document_id or ""):
        raise InvalidInput(
            "document_id is 1-200 letters, digits, '_', '.', ':', '@' or '-', starting alphanumeric"
        )
    return document_id


def authorize_writer(principal: Principal | None, writers: str | Sequence[str]) -> None:
    """Refuse (403) a change to a knowledge base by anyone outside ``writers`` (when set).

    Args:
        principal: the caller.
        writers: user ids or groups, as a sequence or comma-separated (``SIGNOFF_KNOWLEDGE_WRITERS``).
    """
    names = tuple(n.strip() for n in (writers.split(",") if isinstance(writers, str) else writers))
    names = tuple(n for n in names if n)
    if not names:
        return
    if principal is None:
        raise NotAllowed("only authenticated knowledge writers may change knowledge bases")
    if not principal.matches(names):
        raise NotAllowed(f"{principal.user_id} may not change knowledge bases")


def ingest(
    store: KnowledgeStore,
    embedder: Embedder,
    kb: str,
    document: DocumentInput,
    *,
    principal: Principal | None = None,
    writers: str | Sequence[str] = (),
    queue: ResumeQueue | None = None,
    queue_above: int = 200,
    deadline: Deadline | None = None,
) -> IngestResult:
    """Add a document to a knowledge base, or replace the one with the same id.

    A document of more than ``queue_above`` chunks is stored as a pending upload and handed to
    the resume worker when there is a queue (outcome ``queued``); otherwise it is chunked,
    embedded and stored now, in one transaction. Re-posting the same text and metadata changes
    nothing and embeds nothing.
    """
    check_kb(kb)
    authorize_writer(principal, writers)
    document_id = check_document_id(document.document_id or uuid.uuid4().hex)
    chunks = split_document(document.text, markdown=document.format == "markdown")
    if not chunks:
        raise InvalidInput("the document has no text")
    title = document.title or _title_of(chunks)
    if queue is not None and len(chunks) > queue_above:
        upload = KnowledgeUpload(
            kb, document_id, uuid.uuid4().hex, title, document.metadata, document.format, document.text
        )
        store.put_upload(upload)
        queue.send(ingest_message(kb, document_id, upload.upload_id))
        pending = KnowledgeDocument(
            kb, document_id, title, document.metadata, chunk_count=len(chunks), status="pending"
        )
        return IngestResult(pending, "queued")
    existing = store.document(kb, document_id)
    target = KnowledgeDocument(
        kb,
        document_id,
        title,
        document.metadata,
        content_digest=_digest(embedder, document.format, title, document.text),
        chunk_count=len(chunks),
        embedding_model=embedder.model,
    )
    if (
        existing is not None
        and existing.status == "ready"
        and existing.content_digest == target.content_digest
        and existing.metadata == target.metadata
    ):
        return IngestResult(existing, "unchanged")
    stored = store.replace_document(target, _embed(embedder, target, chunks, deadline))
    return IngestResult(stored or target, "replaced" if existing is not None else "created")


def ingest_upload(
    store: KnowledgeStore, embedder: Embedder, kb: str, document_id: str, *, deadline: Deadline | None = None
) -> IngestResult | None:
    """The resume worker's half of a large upload: ingest what is pending for the document.

    Safe under redelivery: ``None`` when nothing is pending any more (ingested by an earlier
    delivery, superseded by a newer post, or deleted).
    """
    upload = store.pending_upload(kb, document_id)
    if upload is None:
        return None
    chunks = split_document(upload.text, markdown=upload.format == "markdown")
    target = KnowledgeDocument(
        kb,
        document_id,
        upload.title,
        upload.metadata,
        content_digest=_digest(embedder, upload.format, upload.title, upload.text),
        chunk_count=len(chunks),
        embedding_model=embedder.model,
    )
    stored = store.replace_document(
        target, _embed(embedder, target, chunks, deadline), upload_id=upload.upload_id
    )
    return IngestResult(stored, "replaced") if stored is not None else None


def delete(
    store: KnowledgeStore,
    kb: str,
    document_id: str,
    *,
    principal: Principal | None = None,
    writers: str | Sequence[str] = (),
) -> None:
    """Remove a document, its chunks and any pending upload of it (404 when there is none)."""
    check_kb(kb)
    authorize_writer(principal, writers)
    if not store.delete_document(kb, check_document_id(document_id)):
        raise NotFound(f"No document {document_id} in knowledge base {kb}")


def list_documents(store: KnowledgeStore, kb: str, *, page: int = 1, limit: int = 20) -> DocumentPage:
    """The documents of a knowledge base by id, pending uploads included."""
    return store.list_documents(check_kb(kb), page=page, limit=limit)


def search(
    store: KnowledgeStore,
    embedder: Embedder,
    kb: str,
    query: str,
    *,
    limit: int = DEFAULT_LIMIT,
    filters: dict[str, Any] | None = None,
    deadline: Deadline | None = None,
) -> list[KnowledgeHit]:
    """The chunks of ``kb`` nearest to ``query`` (cosine), best first.

    Args:
        store: the knowledge store.
        embedder: embeds the query (with the model the chunks were embedded with).
        kb: the knowledge base.
        query: what to look for.
        limit: how many chunks, 1 to 50.
        filters: JSON containment on the chunks' metadata: ``{"team": "billing"}`` keeps chunks
            of documents whose metadata has ``team: billing``; ``{"tags": ["eu"]}`` those whose
            ``tags`` list holds ``"eu"``.
        deadline: the invocation's remaining time, for the embeddings request.
    """
    check_kb(kb)
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("query must be a non-empty string")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"query is longer than {MAX_QUERY_CHARS} characters")
    if not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise InvalidInput(f"limit must be from 1 to {MAX_SEARCH_LIMIT}")
    if filters is not None and not isinstance(filters, dict):
        raise InvalidInput("filters must be a JSON object")
    [vector] = embedder.embed([query.strip()], deadline)
    return store.search(kb, vector, limit=limit, filters=filters or {})


def _title_of(chunks: list[Chunk]) -> str | None:
    """The heading every chunk sits under (``# Title`` atop a document), if there is one."""
    tops = {c.headings[0] if c.headings else None for c in chunks}
    return tops.pop() if len(tops) == 1 else None


def _digest(embedder: Embedder, fmt: str, title: str | None, text: str) -> str:
    identity = [
        _CHUNKING_VERSION,
        CHUNK_CHARS,
        OVERLAP_CHARS,
        embedder.model,
        embedder.dimensions,
        fmt,
        title,
    ]
    return hashlib.sha256(json.dumps([*identity, text]).encode()).hexdigest()


def _embed(
    embedder: Embedder, document: KnowledgeDocument, chunks: list[Chunk], deadline: Deadline | None
) -> list[KnowledgeChunk]:
    """Embed batch by batch, keeping each vector as 4-byte floats: a 4 MiB document is ~5,000
    chunks, whose 1536-dimension vectors as Python lists alone would not fit a 256 MB Lambda."""
    texts = [embedding_text(document.title, c) for c in chunks]
    step = max(1, getattr(embedder, "batch_size", 256))
    vectors: list[array[float]] = []
    for start in range(0, len(texts), step):
        vectors.extend(array("f", v) for v in embedder.embed(texts[start : start + step], deadline))
    return [
        KnowledgeChunk(c.index, c.text, {**document.metadata, "headings": list(c.headings)}, vector)
        for c, vector in zip(chunks, vectors, strict=True)
    ]


# ---------------------------------------------------------------------------- the agent's tool


def _search_knowledge_base(
    query: str, limit: int = DEFAULT_LIMIT, filters: dict[str, Any] | None = None
) -> ToolOutput:
    """Search the knowledge base for passages relevant to a question; cite what you use.

    Args:
        query: What to look for, in a few words or a question
        limit: How many passages to return (1-20)
        filters: Only passages of documents whose metadata contains these key/value pairs
    """
    raise RuntimeError("knowledge search is not configured for this agent")


@functools.cache
def _unbound_tool() -> Tool:
    return tool(_search_knowledge_base, name=TOOL_NAME, idempotent=True)


def search_tool(kb: str, search: SearchFunction | None = None) -> Tool:
    """The ``search_knowledge_base`` tool of an agent with ``knowledge=kb``.

    Read-only, so it needs no confirmation and is safe to re-run after a crash. What it returns
    goes to the model; the chunks it found are listed in the run's ``references``.

    Args:
        kb: the knowledge base it searches.
        search: ``search(kb, query, limit, filters)``; ``None`` builds the tool's schema only
            (the service binds the real search for each run).
    """
    check_kb(kb)
    if search is None:
        return _unbound_tool()
    return dataclasses.replace(_unbound_tool(), function=functools.partial(_run_search, kb, search))


def _run_search(
    kb: str,
    search: SearchFunction,
    query: str,
    limit: int = DEFAULT_LIMIT,
    filters: dict[str, Any] | None = None,
) -> ToolOutput:
    hits = search(kb, query, max(1, min(limit, MAX_TOOL_LIMIT)), filters or {})
    return tool_output(kb, hits)


def tool_output(kb: str, hits: list[KnowledgeHit]) -> ToolOutput:
    """The passages as the model reads them, and as references for the approvers."""
    if not hits:
        return ToolOutput(f"No passages in knowledge base {kb!r} matched the query.")
    lines = [f"{len(hits)} passages from knowledge base {kb!r}, best first:"]
    for number, hit in enumerate(hits, 1):
        where = _context(hit.title, hit.metadata.get("headings") or ()) or hit.document_id
        lines.append(f"\n[{number}] {where} (document {hit.document_id}, chunk {hit.chunk_index})")
        lines.append(hit.content)
    references = tuple(
        {
            "kb": kb,
            "document_id": hit.document_id,
            "chunk_index": hit.chunk_index,
            "title": hit.title,
            "score": round(hit.score, 4),
            "excerpt": _excerpt(hit.content),
        }
        for hit in hits
    )
    return ToolOutput("\n".join(lines), references)


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1].rstrip() + "…"
