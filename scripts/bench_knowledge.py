"""`make bench-knowledge`: ingestion throughput and search latency of knowledge search at 10k and 100k chunks.

A benchmark, not a test. An embedded PostgreSQL 16 + pgvector (pgserver) in a temporary folder; the
stand-in's deterministic embedding called in-process (no HTTP), so the figures are Signoff's and the
database's, not OpenAI's (whose embeddings requests add ~0.1-0.5 s per batch of 256 on top).
Synthetic markdown documents of 100 sections, one ~700-character chunk each, go through the real
path: ``signoff.knowledge.ingest`` (chunking, embedding, one pipelined transaction per document).

For each size, cumulatively in one knowledge base:

1. **bulk**: documents are ingested with the HNSW index dropped, up to the size minus the sample;
2. **index build**: ``CREATE INDEX ... USING hnsw`` over everything so far;
3. **ingest with HNSW**: ``--sample`` more chunks are ingested with the index maintained (the
   steady state of a deployed knowledge base): chunks/s;
4. **search**: ``--queries`` searches (``signoff.knowledge.search``: embed the query, one SQL
   statement through the index), each for the first words of a random stored chunk: p50 and p95.

Building the index after a bulk load is how a large knowledge base is loaded in practice: inserting
100k vectors into HNSW one by one takes far longer than building it once. The default size of the
vectors is 256 (``text-embedding-3-small`` with ``dimensions=256``) so that both sizes fit in about
five minutes on two cores; ``--dimensions 1536`` measures the default deployment (HNSW work grows
with the dimensions: expect several times longer). Raw figures go to bench-results/knowledge.json.

Usage: ``make bench-knowledge`` or ``.venv/bin/python scripts/bench_knowledge.py [--sizes 10000,100000]
[--dimensions 256] [--sample 1000] [--queries 200]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "layers" / "signoff"))
sys.path.insert(0, str(ROOT / "devtools"))

from signoff import knowledge  # noqa: E402
from signoff.store.knowledge import PostgresKnowledgeStore  # noqa: E402
from signoff.store.migrations import apply_migrations  # noqa: E402
from signoff.store.postgres import PostgresRunStore  # noqa: E402
from signoff_dev.postgres import start_postgres, stop_postgres  # noqa: E402
from signoff_dev.standin import embed  # noqa: E402

KB = "bench"
SECTIONS_PER_DOCUMENT = 100
TOPICS = (
    "refund",
    "invoice",
    "payment",
    "billing",
    "customer",
    "order",
    "delivery",
    "shipping",
    "warehouse",
    "parcel",
    "customs",
    "password",
    "incident",
    "security",
    "access",
    "token",
    "audit",
    "payroll",
    "salary",
    "contract",
    "holiday",
    "office",
    "laptop",
    "server",
    "database",
    "backup",
    "latency",
    "region",
    "deploy",
    "rollback",
    "alert",
    "on-call",
    "vendor",
    "budget",
    "forecast",
)


class InProcessEmbedder:
    """The stand-in's embedding without HTTP: what OpenAIEmbeddings returns, minus the network."""

    model = "text-embedding-3-small"

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions

    def embed(self, texts, deadline=None) -> list[list[float]]:
        return [embed(text, self.dimensions) for text in texts]


class Corpus:
    """Deterministic synthetic documents: topic words mixed into a vocabulary of made-up words."""

    def __init__(self, seed: int = 20260101) -> None:
        self.rng = random.Random(seed)
        letters = "abcdefghijklmnopqrstuvwxyz"
        self.words = [
            "".join(self.rng.choice(letters) for _ in range(self.rng.randint(3, 10))) for _ in range(6000)
        ]
        self.count = 0

    def paragraph(self) -> str:
        words: list[str] = []
        size = 0
        while size < 680:
            word = self.rng.choice(TOPICS) if self.rng.random() < 0.15 else self.rng.choice(self.words)
            words.append(word)
            size += len(word) + 1
        sentences = [" ".join(words[i : i + 14]).capitalize() + "." for i in range(0, len(words), 14)]
        return " ".join(sentences)

    def document(self) -> knowledge.DocumentInput:
        self.count += 1
        topic = self.rng.choice(TOPICS)
        sections = [
            f"## {topic.title()} section {n}\n\n{self.paragraph()}" for n in range(SECTIONS_PER_DOCUMENT)
        ]
        text = f"# Synthetic document {self.count} about {topic}\n\n" + "\n\n".join(sections)
        return knowledge.DocumentInput(text, f"doc-{self.count:06d}", metadata={"topic": topic})


def ingest(store, embedder, corpus: Corpus, chunks: int) -> tuple[int, float, list[str]]:
    """Ingest documents until ``chunks`` more chunks are stored; (chunks, seconds, some chunk texts)."""
    done, samples = 0, []
    started = time.perf_counter()
    while done < chunks:
        document = corpus.document()
        result = knowledge.ingest(store, embedder, KB, document)
        done += result.document.chunk_count
        samples.append(document.text.split("\n\n")[2])  # the first section's paragraph
    return done, time.perf_counter() - started, samples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(args: argparse.Namespace) -> dict:
    sizes = sorted(int(size) for size in args.sizes.split(","))
    folder = Path(tempfile.mkdtemp(prefix="signoff-bench-knowledge-"))
    server, url = start_postgres(folder / "pgdata", migrate=False)
    runs = PostgresRunStore(url)
    try:
        apply_migrations(url, embedding_dimensions=args.dimensions)
        store = PostgresKnowledgeStore(runs)
        embedder = InProcessEmbedder(args.dimensions)
        corpus = Corpus()
        rng = random.Random(7)
        stored, texts, results = 0, [], []
        for size in sizes:
            print(f"  {size:,} chunks: bulk load ...", flush=True)
            store.drop_vector_index()
            bulk_chunks, bulk_s, samples = ingest(
                store, embedder, corpus, max(0, size - args.sample - stored)
            )
            texts += samples
            print(f"  {size:,} chunks: index build ...", flush=True)
            started = time.perf_counter()
            store.build_vector_index()
            build_s = time.perf_counter() - started
            print(f"  {size:,} chunks: ingest with the index, then {args.queries} searches ...", flush=True)
            live_chunks, live_s, samples = ingest(store, embedder, corpus, args.sample)
            texts += samples
            stored += bulk_chunks + live_chunks
            latencies = []
            for _ in range(args.queries):
                query = " ".join(rng.choice(texts).split()[:12])
                started = time.perf_counter()
                hits = knowledge.search(store, embedder, KB, query, limit=5)
                latencies.append((time.perf_counter() - started) * 1000)
                assert len(hits) == 5
            results.append(
                {
                    "chunks": stored,
                    "bulk_chunks_per_s": bulk_chunks / bulk_s if bulk_s else None,
                    "index_build_s": build_s,
                    "hnsw_ingest_chunks_per_s": live_chunks / live_s,
                    "search_p50_ms": statistics.median(latencies),
                    "search_p95_ms": percentile(latencies, 0.95),
                }
            )
        return {
            "dimensions": args.dimensions,
            "sample": args.sample,
            "queries": args.queries,
            "cpus": os.cpu_count(),
            "results": results,
        }
    finally:
        runs.close()
        stop_postgres(server)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="knowledge base sizes in chunks")
    parser.add_argument(
        "--dimensions", type=int, default=256, help="embedding size (256; 1536 is the default deployment's)"
    )
    parser.add_argument(
        "--sample", type=int, default=1000, help="chunks ingested with the index in place, per size"
    )
    parser.add_argument("--queries", type=int, default=200, help="searches per size")
    args = parser.parse_args()
    print(f"Knowledge search bench: {args.dimensions} dimensions, sizes {args.sizes} (~5 min on 2 cores)")
    started = time.perf_counter()
    report = run(args)
    report["total_s"] = round(time.perf_counter() - started, 1)
    print()
    print(
        f"pgvector HNSW (m=16, ef_construction=64, ef_search=40), cosine, {report['dimensions']} dimensions, "
        f"{report['cpus']} CPUs; stand-in embeddings in-process"
    )
    header = (
        "chunks",
        "bulk ingest, no index",
        "index build",
        "ingest with HNSW",
        "search p50",
        "search p95",
    )
    rows = [
        (
            f"{r['chunks']:,}",
            f"{r['bulk_chunks_per_s']:,.0f} chunks/s" if r["bulk_chunks_per_s"] else "-",
            f"{r['index_build_s']:.1f} s",
            f"{r['hnsw_ingest_chunks_per_s']:,.0f} chunks/s",
            f"{r['search_p50_ms']:.1f} ms",
            f"{r['search_p95_ms']:.1f} ms",
        )
        for r in report["results"]
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for line in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    print(f"\ntotal {report['total_s']} s")
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "knowledge.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
