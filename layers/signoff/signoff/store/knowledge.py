"""PostgreSQL knowledge store: chunks with pgvector embeddings, searched through an HNSW index.

Vectors travel in pgvector's binary format (4 bytes a dimension, no float formatting in Python).
That needs the ``vector`` type's OID on the connection: the first knowledge statement of each
connection runs one probe that returns the OID, the pgvector version and the column's size, and
registers pgvector's binary dumper with it. ``register_vector`` would spend four round trips
(vector, bit, halfvec, sparsevec) on every new connection; invocations that never touch knowledge
pay nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
from pgvector import Vector
from pgvector.psycopg.vector import register_vector_info
from psycopg.types import TypeInfo
from psycopg.types.json import Jsonb

from signoff.errors import KnowledgeIndexMismatch, StoreUnavailable
from signoff.store.base import DocumentPage, KnowledgeChunk, KnowledgeDocument, KnowledgeHit, KnowledgeUpload
from signoff.store.postgres import PostgresRunStore

_PROBE = """
SELECT t.oid, t.typarray, e.extversion,
       (SELECT a.atttypmod FROM pg_attribute a
        WHERE a.attrelid = to_regclass('knowledge_chunks') AND a.attname = 'embedding') AS dimensions
FROM pg_extension e JOIN pg_type t ON t.typname = 'vector' AND t.typnamespace = e.extnamespace
WHERE e.extname = 'vector'
"""

_DOCUMENT = """
SELECT kb, document_id, title, metadata, content_digest, chunk_count, embedding_model,
       extract(epoch FROM created_at)::bigint AS created_at,
       extract(epoch FROM updated_at)::bigint AS updated_at,
       CASE WHEN EXISTS (SELECT 1 FROM knowledge_uploads u
                         WHERE u.kb = d.kb AND u.document_id = d.document_id)
            THEN 'updating' ELSE 'ready' END AS status
FROM knowledge_documents d WHERE kb = %(kb)s AND document_id = %(document_id)s
"""

_CLAIM_UPLOAD = """
DELETE FROM knowledge_uploads
WHERE kb = %(kb)s AND document_id = %(document_id)s AND upload_id = %(upload_id)s
RETURNING upload_id
"""

_UPSERT_DOCUMENT = """
INSERT INTO knowledge_documents AS d
    (kb, document_id, title, metadata, content_digest, chunk_count, embedding_model)
VALUES (%(kb)s, %(document_id)s, %(title)s, %(metadata)s, %(digest)s, %(chunk_count)s, %(model)s)
ON CONFLICT (kb, document_id) DO UPDATE SET
    title = EXCLUDED.title, metadata = EXCLUDED.metadata, content_digest = EXCLUDED.content_digest,
    chunk_count = EXCLUDED.chunk_count, embedding_model = EXCLUDED.embedding_model, updated_at = now()
RETURNING kb, document_id, title, metadata, content_digest, chunk_count, embedding_model,
          extract(epoch FROM created_at)::bigint AS created_at,
          extract(epoch FROM updated_at)::bigint AS updated_at
"""

_DELETE_CHUNKS = "DELETE FROM knowledge_chunks WHERE kb = %(kb)s AND document_id = %(document_id)s"

_DROP_UPLOAD = "DELETE FROM knowledge_uploads WHERE kb = %(kb)s AND document_id = %(document_id)s"

_INSERT_CHUNK = """
INSERT INTO knowledge_chunks (kb, document_id, chunk_index, content, metadata, embedding)
VALUES (%s, %s, %s, %s, %s, %b)
"""

_DELETE_DOCUMENT = """
WITH upload AS (
    DELETE FROM knowledge_uploads WHERE kb = %(kb)s AND document_id = %(document_id)s RETURNING 1
), document AS (
    DELETE FROM knowledge_documents WHERE kb = %(kb)s AND document_id = %(document_id)s RETURNING 1
)
SELECT (SELECT count(*) FROM upload) + (SELECT count(*) FROM document) AS deleted
"""

_LIST = """
SELECT %(kb)s AS kb, document_id,
       coalesce(d.title, u.title) AS title, coalesce(d.metadata, u.metadata) AS metadata,
       d.content_digest, coalesce(d.chunk_count, 0) AS chunk_count, d.embedding_model,
       CASE WHEN d.document_id IS NULL THEN 'pending'
            WHEN u.document_id IS NULL THEN 'ready' ELSE 'updating' END AS status,
       extract(epoch FROM coalesce(d.created_at, u.created_at))::bigint AS created_at,
       extract(epoch FROM coalesce(d.updated_at, u.created_at))::bigint AS updated_at,
       count(*) OVER () AS total
FROM (SELECT * FROM knowledge_documents WHERE kb = %(kb)s) d
FULL JOIN (SELECT * FROM knowledge_uploads WHERE kb = %(kb)s) u USING (document_id)
ORDER BY document_id
LIMIT %(limit)s OFFSET %(offset)s
"""

# Approximate first (the HNSW index); when the index scan came back short - a filter or a small
# knowledge base among large ones left too few of its candidates - the exact branch ranks every
# matching chunk instead. Postgres runs that branch only when the count says so (a one-time
# filter), so the usual search is one index scan; MATERIALIZED keeps the exact branch off the index.
_SEARCH = """
WITH approx AS (
    SELECT c.document_id, c.chunk_index, c.content, c.metadata, c.embedding <=> %(q)b AS distance
    FROM knowledge_chunks c
    WHERE c.kb = %(kb)s AND c.metadata @> %(filters)s
    ORDER BY c.embedding <=> %(q)b
    LIMIT %(limit)s
), matching AS MATERIALIZED (
    SELECT c.document_id, c.chunk_index, c.content, c.metadata, c.embedding
    FROM knowledge_chunks c
    WHERE c.kb = %(kb)s AND c.metadata @> %(filters)s
      AND (SELECT count(*) FROM approx) < %(limit)s
), hits AS (
    SELECT * FROM approx WHERE (SELECT count(*) FROM approx) >= %(limit)s
    UNION ALL
    (SELECT document_id, chunk_index, content, metadata, embedding <=> %(q)b FROM matching
     ORDER BY 5 LIMIT %(limit)s)
)
SELECT h.document_id, h.chunk_index, h.content, h.metadata, d.title, 1 - h.distance AS score
FROM hits h JOIN knowledge_documents d ON d.kb = %(kb)s AND d.document_id = h.document_id
ORDER BY h.distance, h.document_id, h.chunk_index
"""

_PUT_UPLOAD = """
INSERT INTO knowledge_uploads (kb, document_id, upload_id, title, metadata, format, content)
VALUES (%(kb)s, %(document_id)s, %(upload_id)s, %(title)s, %(metadata)s, %(format)s, %(text)s)
ON CONFLICT (kb, document_id) DO UPDATE SET
    upload_id = EXCLUDED.upload_id, title = EXCLUDED.title, metadata = EXCLUDED.metadata,
    format = EXCLUDED.format, content = EXCLUDED.content, created_at = now()
"""

_PENDING_UPLOAD = """
SELECT kb, document_id, upload_id, title, metadata, format, content AS text
FROM knowledge_uploads WHERE kb = %(kb)s AND document_id = %(document_id)s
"""


_BUILD_INDEX = """
CREATE INDEX IF NOT EXISTS knowledge_chunks_embedding_idx ON knowledge_chunks
    USING hnsw (embedding vector_cosine_ops)
"""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


class _Superseded(Exception):
    """The upload being ingested is no longer pending: roll back and report it."""


class PostgresKnowledgeStore:
    """A :class:`~signoff.store.base.KnowledgeStore` on PostgreSQL + pgvector.

    Shares the run store's connection (one per warm container) and its reconnect rule.

    Args:
        runs: the run store whose connection this one uses.
    """

    def __init__(self, runs: PostgresRunStore) -> None:
        self._runs = runs
        self._dimensions: int | None = None

    def _prepare(self, conn: psycopg.Connection) -> None:
        """Register the binary vector dumper on this connection (one probe per connection)."""
        if self._dimensions is not None and conn.adapters.types.get("vector") is not None:
            return
        row = conn.execute(_PROBE).fetchone()
        if row is None:
            raise StoreUnavailable("the vector extension is missing: apply the migrations")
        if row["dimensions"] is None or row["dimensions"] <= 0:
            raise StoreUnavailable("the knowledge tables are missing: apply the migrations")
        register_vector_info(conn, TypeInfo("vector", row["oid"], row["typarray"]))
        self._dimensions = int(row["dimensions"])

    def _run(self, work: Any, *, retry_safe: bool = True) -> Any:
        def prepared(conn: psycopg.Connection) -> Any:
            self._prepare(conn)
            return work(conn)

        return self._runs._execute(prepared, retry_safe=retry_safe)

    def _vector(self, embedding: Sequence[float]) -> Vector:
        if len(embedding) != self._dimensions:
            raise KnowledgeIndexMismatch(
                f"embeddings have {len(embedding)} dimensions but the knowledge index holds "
                f"{self._dimensions}: set SIGNOFF_EMBEDDING_DIMENSIONS={self._dimensions} or re-index "
                "(README, Knowledge search)"
            )
        return Vector(embedding if isinstance(embedding, list) else list(embedding))

    def dimensions(self) -> int:
        if self._dimensions is None:
            self._run(lambda conn: None)
        assert self._dimensions is not None
        return self._dimensions

    def document(self, kb: str, document_id: str) -> KnowledgeDocument | None:
        params = {"kb": kb, "document_id": document_id}
        row = self._run(lambda conn: conn.execute(_DOCUMENT, params).fetchone())
        return KnowledgeDocument(**row) if row else None

    def replace_document(
        self, document: KnowledgeDocument, chunks: list[KnowledgeChunk], *, upload_id: str | None = None
    ) -> KnowledgeDocument | None:
        keys = {"kb": document.kb, "document_id": document.document_id}
        params = {
            **keys,
            "title": document.title,
            "metadata": Jsonb(document.metadata, dumps=_dumps),
            "digest": document.content_digest,
            "chunk_count": len(chunks),
            "model": document.embedding_model,
        }

        def write(conn: psycopg.Connection) -> KnowledgeDocument | None:
            rows = [
                (
                    document.kb,
                    document.document_id,
                    chunk.chunk_index,
                    chunk.content,
                    Jsonb(chunk.metadata, dumps=_dumps),
                    self._vector(chunk.embedding),
                )
                for chunk in chunks
            ]
            try:
                with conn.transaction():
                    if upload_id is not None:
                        claimed = conn.execute(_CLAIM_UPLOAD, {**keys, "upload_id": upload_id}).fetchone()
                        if claimed is None:
                            raise _Superseded
                    # One transaction, sent as one pipeline: readers see the old chunks or the new.
                    with conn.cursor() as upsert, conn.cursor() as cursor:
                        with conn.pipeline():
                            upsert.execute(_UPSERT_DOCUMENT, params)
                            cursor.execute(_DELETE_CHUNKS, keys)
                            if upload_id is None:
                                cursor.execute(_DROP_UPLOAD, keys)
                            cursor.executemany(_INSERT_CHUNK, rows)
                        stored = upsert.fetchone()
            except _Superseded:
                return None
            return KnowledgeDocument(**stored, status="ready")

        return self._run(write)

    def delete_document(self, kb: str, document_id: str) -> bool:
        params = {"kb": kb, "document_id": document_id}
        row = self._run(lambda conn: conn.execute(_DELETE_DOCUMENT, params).fetchone())
        return bool(row and row["deleted"])

    def list_documents(self, kb: str, *, page: int, limit: int) -> DocumentPage:
        params = {"kb": kb, "limit": limit, "offset": (page - 1) * limit}
        rows = self._run(lambda conn: conn.execute(_LIST, params).fetchall())
        total = int(rows[0]["total"]) if rows else 0
        documents = [KnowledgeDocument(**{k: v for k, v in row.items() if k != "total"}) for row in rows]
        return DocumentPage(documents, total)

    def search(
        self, kb: str, embedding: Sequence[float], *, limit: int, filters: dict[str, Any]
    ) -> list[KnowledgeHit]:
        def read(conn: psycopg.Connection) -> list[dict[str, Any]]:
            params = {
                "kb": kb,
                "q": self._vector(embedding),
                "limit": limit,
                "filters": Jsonb(filters, dumps=_dumps),
            }
            return conn.execute(_SEARCH, params).fetchall()

        return [
            KnowledgeHit(
                kb=kb,
                document_id=row["document_id"],
                chunk_index=row["chunk_index"],
                title=row["title"],
                content=row["content"],
                metadata=row["metadata"],
                score=float(row["score"]),
            )
            for row in self._run(read)
        ]

    def put_upload(self, upload: KnowledgeUpload) -> None:
        params = {**upload.__dict__, "metadata": Jsonb(upload.metadata, dumps=_dumps)}
        self._run(lambda conn: conn.execute(_PUT_UPLOAD, params))

    def pending_upload(self, kb: str, document_id: str) -> KnowledgeUpload | None:
        params = {"kb": kb, "document_id": document_id}
        row = self._run(lambda conn: conn.execute(_PENDING_UPLOAD, params).fetchone())
        return KnowledgeUpload(**row) if row else None

    def drop_vector_index(self) -> None:
        """Drop the HNSW index before a bulk load: inserting into it chunk by chunk is what is slow.

        Searches stay correct meanwhile (exact, by a scan).
        """
        self._run(lambda conn: conn.execute("DROP INDEX IF EXISTS knowledge_chunks_embedding_idx"))

    def build_vector_index(self, *, memory: str = "1GB") -> None:
        """Build the HNSW index (after a bulk load); ``memory`` should hold the whole graph.

        Also refreshes the table's statistics: until autovacuum does, the planner would guess the
        new rows' count and might rank a large knowledge base by a full scan instead of the index.
        """

        def build(conn: psycopg.Connection) -> None:
            with conn.transaction():
                conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (memory,))
                conn.execute(_BUILD_INDEX)
                conn.execute("ANALYZE knowledge_chunks, knowledge_documents")

        self._run(build)
