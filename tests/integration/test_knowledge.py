"""Knowledge search on real PostgreSQL + pgvector: ingestion, replace, delete, filters, large uploads,
the HNSW index, and a retrieval check. Embeddings come from the stand-in through the real openai client."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from pgvector import Vector
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from signoff import knowledge
from signoff.errors import KnowledgeIndexMismatch, NotFound, SignoffError
from signoff.knowledge import DocumentInput
from signoff.models.openai_chat import OpenAIEmbeddings
from signoff.store.base import KnowledgeChunk, KnowledgeDocument
from signoff.store.knowledge import _SEARCH, PostgresKnowledgeStore
from signoff.store.migrations import apply_migrations
from signoff.store.postgres import PostgresRunStore
from signoff_dev.standin import embed

KB = "handbook"

HELP_CENTER = {
    "refunds": "# Refund policy\n\n## Refund window\n\nCustomers can ask for a refund within 30 days of "
    "delivery. The money goes back to the original payment method.\n\n## Gift cards\n\nGift cards and "
    "store credit are never refunded or exchanged for cash.",
    "shipping": "# Shipping\n\n## Delivery times\n\nStandard delivery takes three to five business days; "
    "express delivery arrives the next business day.\n\n## International orders\n\nWe ship to the "
    "European Union, the United Kingdom and Canada. Customs duties are paid by the recipient.",
    "security": "# Security\n\n## Passwords\n\nPasswords are rotated every 90 days and must be at least 14 "
    "characters long.\n\n## Incidents\n\nReport a security incident to the on-call engineer through the "
    "pager within 15 minutes.",
    "payroll": "# Payroll\n\nSalaries are paid on the last working day of each month by bank transfer.",
}


class StandinEmbedder:
    """The stand-in's embedding called in-process, for bulk data that needs no HTTP."""

    model = "text-embedding-3-small"

    def __init__(self, dimensions: int = 1536) -> None:
        self.dimensions = dimensions

    def embed(self, texts, deadline=None) -> list[list[float]]:
        return [embed(text, self.dimensions) for text in texts]


class ListQueue:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


@pytest.fixture
def runs(db: str) -> Iterator[PostgresRunStore]:
    store = PostgresRunStore(db)
    yield store
    store.close()


@pytest.fixture
def store(runs: PostgresRunStore) -> PostgresKnowledgeStore:
    return PostgresKnowledgeStore(runs)


@pytest.fixture
def embedder(model) -> OpenAIEmbeddings:
    return OpenAIEmbeddings(api_key="test-key", base_url=model.base_url, batch_size=4, max_retries=0)


def rows(db: str, query: str, *params: Any) -> list[tuple]:
    with psycopg.connect(db) as conn:
        return conn.execute(query, params).fetchall()


def sections(count: int, topic: str = "refunds") -> str:
    return "# Policy\n\n" + "\n\n".join(
        f"## Part {n}\n\nThis part {n} explains {topic} rule number {n} in detail." for n in range(count)
    )


def test_a_document_is_chunked_embedded_in_batches_and_stored_with_its_headings(db, store, embedder, model):
    # When a markdown document of six sections is posted with metadata
    result = knowledge.ingest(
        store, embedder, KB, DocumentInput(sections(6), "policy", metadata={"team": "support"})
    )

    # Then it is stored as one document of six chunks, titled by its top heading
    assert result.outcome == "created"
    assert (result.document.chunk_count, result.document.title) == (6, "Policy")
    assert result.document.created_at is not None
    stored = rows(
        db,
        "SELECT chunk_index, content, metadata, vector_dims(embedding) FROM knowledge_chunks"
        " WHERE kb = %s AND document_id = %s ORDER BY chunk_index",
        KB,
        "policy",
    )
    assert [r[0] for r in stored] == list(range(6))
    assert stored[2][1] == "This part 2 explains refunds rule number 2 in detail."
    # And each chunk carries the document's metadata and its heading path, at 1536 dimensions
    assert stored[2][2] == {"team": "support", "headings": ["Policy", "Part 2"]}
    assert {r[3] for r in stored} == {1536}
    # And the embeddings were asked for in batches of four, with the model and dimensions set
    assert [len(r["input"]) for r in model.embedding_requests] == [4, 2]
    assert {(r["model"], r["dimensions"]) for r in model.embedding_requests} == {
        ("text-embedding-3-small", 1536)
    }
    assert model.embedding_requests[0]["input"][2].startswith("Policy > Part 2\n")


def test_the_chunks_sit_in_an_hnsw_cosine_index_and_metadata_in_a_gin_index(db):
    indexes = dict(
        rows(db, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'knowledge_chunks'")
    )
    assert "USING hnsw (embedding vector_cosine_ops)" in indexes["knowledge_chunks_embedding_idx"]
    assert "USING gin (metadata jsonb_path_ops)" in indexes["knowledge_chunks_metadata_idx"]


def test_reposting_a_document_replaces_all_its_chunks(db, store, embedder, model):
    # Given a document of six chunks
    first = knowledge.ingest(store, embedder, KB, DocumentInput(sections(6, "refunds"), "policy"))

    # When the same id is posted with other text of two chunks
    second = knowledge.ingest(store, embedder, KB, DocumentInput(sections(2, "shipping"), "policy"))

    # Then only the new chunks remain, and the document keeps its creation time
    assert second.outcome == "replaced"
    assert second.document.chunk_count == 2
    assert second.document.created_at == first.document.created_at
    contents = [r[0] for r in rows(db, "SELECT content FROM knowledge_chunks ORDER BY chunk_index")]
    assert contents == [f"This part {n} explains shipping rule number {n} in detail." for n in range(2)]
    hits = knowledge.search(store, embedder, KB, "refunds rule number 5", limit=10)
    assert all("refunds" not in h.content for h in hits)

    # And posting it again unchanged embeds nothing and changes nothing
    model.clear()
    again = knowledge.ingest(store, embedder, KB, DocumentInput(sections(2, "shipping"), "policy"))
    assert again.outcome == "unchanged"
    assert model.embedding_requests == []
    # But new metadata on the same text is a replace (filters must see it)
    tagged = knowledge.ingest(
        store, embedder, KB, DocumentInput(sections(2, "shipping"), "policy", metadata={"v": 2})
    )
    assert tagged.outcome == "replaced"
    assert knowledge.search(store, embedder, KB, "shipping", filters={"v": 2})


def test_a_replace_that_fails_half_way_leaves_the_old_version_whole(db, store):
    # Given a stored document of two chunks
    old = [KnowledgeChunk(i, f"old {i}", {}, embed(f"old {i}", 1536)) for i in range(2)]
    store.replace_document(KnowledgeDocument(KB, "doc", "Old", {}, "d1", 2, "m"), old)

    # When a replace fails on its second new chunk (text with a NUL byte, which Postgres refuses)
    new = [KnowledgeChunk(i, text, {}, embed("new", 1536)) for i, text in enumerate(["new 0", "bad\x00"])]
    with pytest.raises(SignoffError):  # a 4xx: the database refuses the value
        store.replace_document(KnowledgeDocument(KB, "doc", "New", {}, "d2", 2, "m"), new)

    # Then the old document and both old chunks are still there, and nothing of the new one
    assert rows(db, "SELECT title, content_digest FROM knowledge_documents") == [("Old", "d1")]
    assert [r[0] for r in rows(db, "SELECT content FROM knowledge_chunks ORDER BY 1")] == ["old 0", "old 1"]


def test_delete_removes_the_document_its_chunks_and_any_pending_upload(db, store, embedder):
    knowledge.ingest(store, embedder, KB, DocumentInput(sections(3), "policy"))
    knowledge.ingest(store, embedder, KB, DocumentInput(sections(1), "other"))

    knowledge.delete(store, KB, "policy")

    assert rows(db, "SELECT document_id, count(*) FROM knowledge_chunks GROUP BY 1") == [("other", 1)]
    assert [d.document_id for d in knowledge.list_documents(store, KB).documents] == ["other"]
    with pytest.raises(NotFound):
        knowledge.delete(store, KB, "policy")


def test_metadata_filters_keep_only_matching_documents(store, embedder):
    # Given two documents about invoices with different metadata
    billing = "# Invoices\n\nInvoices are sent on the first day of the month with VAT shown."
    shipping = "# Invoices for shipping\n\nShipping invoices are sent with each parcel."
    meta = {"team": "billing", "tags": ["eu", "vat"], "year": 2026}
    knowledge.ingest(store, embedder, KB, DocumentInput(billing, "billing", metadata=meta))
    knowledge.ingest(
        store,
        embedder,
        KB,
        DocumentInput(shipping, "shipping", metadata={"team": "shipping", "tags": ["eu"]}),
    )

    def found(filters: dict[str, Any]) -> list[str]:
        return [h.document_id for h in knowledge.search(store, embedder, KB, "invoices", filters=filters)]

    # Then each filter keeps only the documents whose metadata contains it
    assert sorted(found({})) == ["billing", "shipping"]
    assert found({"team": "billing"}) == ["billing"]
    assert found({"tags": ["vat"]}) == ["billing"]
    assert sorted(found({"tags": ["eu"]})) == ["billing", "shipping"]
    assert found({"year": 2026, "team": "billing"}) == ["billing"]
    assert found({"team": "legal"}) == []
    # And other knowledge bases are never searched
    assert knowledge.search(store, embedder, "elsewhere", "invoices") == []


def test_the_right_chunk_comes_first(store, embedder):
    # Given a small help center of four documents, nine sections
    for document_id, text in HELP_CENTER.items():
        knowledge.ingest(store, embedder, KB, DocumentInput(text, document_id))

    # When each question is searched, then the section that answers it is the first hit
    expected = {
        "how many days do customers have to ask for a refund": ("refunds", "Refund window"),
        "are gift cards refunded": ("refunds", "Gift cards"),
        "how long does express delivery take": ("shipping", "Delivery times"),
        "who pays customs duties on international orders": ("shipping", "International orders"),
        "how often are passwords rotated": ("security", "Passwords"),
        "how do I report a security incident": ("security", "Incidents"),
        "when are salaries paid": ("payroll", "Payroll"),
    }
    for query, (document_id, heading) in expected.items():
        hits = knowledge.search(store, embedder, KB, query, limit=3)
        assert (hits[0].document_id, hits[0].metadata["headings"][-1]) == (document_id, heading), query
        assert hits[0].score > hits[1].score
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_a_small_knowledge_base_next_to_a_large_one_gets_all_its_hits_through_the_index(postgres_url, db):
    # Given a connection on which the planner must use the HNSW index to order by distance
    forced = make_conninfo(postgres_url, options="-c enable_seqscan=off -c enable_sort=off")
    runs = PostgresRunStore(forced)
    store = PostgresKnowledgeStore(runs)
    embedder = StandinEmbedder()
    rng = random.Random(7)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6)) for _ in range(500)]
    # And a large knowledge base of 600 chunks next to a small one of three
    for d in range(6):
        text = "\n\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(100))
        knowledge.ingest(store, embedder, "large", DocumentInput(text, f"doc{d}", format="text"))
    for n in range(3):
        knowledge.ingest(store, embedder, "small", DocumentInput(f"small note {n} about payroll", f"n{n}"))
    try:
        # When the small one is searched, for five hits, with words of the large one's
        query = " ".join(words[:12])
        hits = knowledge.search(store, embedder, "small", query, limit=5)

        # Then all three of its chunks come back: the index scan's candidates were the large
        # one's, so the exact branch ranked the small one's
        assert sorted(h.document_id for h in hits) == ["n0", "n1", "n2"]
        # (the index alone would have come back short)
        index_only = (
            "SELECT count(*) AS n FROM (SELECT 1 FROM knowledge_chunks WHERE kb = 'small'"
            " ORDER BY embedding <=> %s LIMIT 5) AS nearest"
        )
        vector = Vector(embed(query, 1536))
        assert runs._execute(lambda c: c.execute(index_only, (vector,)).fetchone())["n"] < 3
        plan = runs._execute(
            lambda c: c.execute(
                "EXPLAIN " + _SEARCH, {"kb": "small", "q": vector, "limit": 5, "filters": Jsonb({})}
            )
        ).fetchall()
        assert "knowledge_chunks_embedding_idx" in str(plan)
        # And a large one's search is served by the index alone
        assert len(knowledge.search(store, embedder, "large", words[0], limit=5)) == 5
    finally:
        runs.close()


def test_a_large_upload_waits_in_the_database_for_the_worker(db, store, embedder, model):
    queue = ListQueue()

    # When a document over the queue threshold is posted
    result = knowledge.ingest(
        store, embedder, KB, DocumentInput(sections(5), "big", title="Big"), queue=queue, queue_above=3
    )

    # Then it is queued without embedding anything; the message names it, the text stays in the DB
    assert result.outcome == "queued"
    assert model.embedding_requests == []
    [message] = queue.sent
    assert message == {"kind": "ingest", "kb": KB, "document_id": "big", "upload_id": message["upload_id"]}
    assert [(d.document_id, d.status) for d in knowledge.list_documents(store, KB).documents] == [
        ("big", "pending")
    ]

    # When the worker takes it (twice: SQS delivers at least once)
    done = knowledge.ingest_upload(store, embedder, KB, "big")
    again = knowledge.ingest_upload(store, embedder, KB, "big")

    # Then it is ingested once and is searchable
    assert done is not None and done.document.chunk_count == 5 and done.document.title == "Big"
    assert again is None
    assert [(d.document_id, d.status) for d in knowledge.list_documents(store, KB).documents] == [
        ("big", "ready")
    ]
    assert rows(db, "SELECT count(*) FROM knowledge_uploads") == [(0,)]


def test_a_newer_post_supersedes_a_pending_upload(db, store, embedder):
    queue = ListQueue()
    knowledge.ingest(
        store, embedder, KB, DocumentInput(sections(5, "old"), "doc"), queue=queue, queue_above=3
    )
    assert knowledge.list_documents(store, KB).documents[0].status == "pending"

    # When a small version of the same document is posted before the worker ran
    knowledge.ingest(
        store, embedder, KB, DocumentInput(sections(1, "new"), "doc"), queue=queue, queue_above=3
    )

    # Then the worker finds nothing to do and the newer text stays
    assert knowledge.ingest_upload(store, embedder, KB, "doc") is None
    assert [r[0] for r in rows(db, "SELECT content FROM knowledge_chunks")] == [
        "This part 0 explains new rule number 0 in detail."
    ]


def test_embeddings_of_the_wrong_size_are_refused_with_the_fix(db, store, model):
    small = OpenAIEmbeddings(api_key="test-key", base_url=model.base_url, dimensions=64)
    with pytest.raises(KnowledgeIndexMismatch, match="SIGNOFF_EMBEDDING_DIMENSIONS=1536"):
        knowledge.ingest(store, small, KB, DocumentInput("# A\n\ntext", "a"))
    assert rows(db, "SELECT count(*) FROM knowledge_documents") == [(0,)]


def test_the_migration_creates_the_column_at_the_configured_size(postgres_url, model):
    # Given an empty database migrated with 256-dimension embeddings
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS signoff_kb_dims")
        conn.execute("CREATE DATABASE signoff_kb_dims")
    url = make_conninfo(postgres_url, dbname="signoff_kb_dims")
    apply_migrations(url, embedding_dimensions=256)
    runs = PostgresRunStore(url)
    try:
        # Then the column holds 256 dimensions, and a 256-dimension model ingests and searches
        store = PostgresKnowledgeStore(runs)
        assert store.dimensions() == 256
        embedder = OpenAIEmbeddings(api_key="test-key", base_url=model.base_url, dimensions=256)
        knowledge.ingest(store, embedder, KB, DocumentInput(HELP_CENTER["payroll"], "payroll"))
        [hit] = knowledge.search(store, embedder, KB, "when are salaries paid")
        assert hit.document_id == "payroll" and hit.score > 0.2
        assert model.embedding_requests[-1]["dimensions"] == 256
    finally:
        runs.close()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("DROP DATABASE signoff_kb_dims")
