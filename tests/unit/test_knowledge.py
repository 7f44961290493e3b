"""Knowledge search without I/O: chunking, the agent's tool and what it shows the model and approvers."""

from __future__ import annotations

import itertools

import pytest

from signoff import Agent
from signoff.authz import Principal
from signoff.errors import InvalidInput, NotAllowed
from signoff.knowledge import (
    CHUNK_CHARS,
    TOOL_NAME,
    Chunk,
    authorize_writer,
    embedding_text,
    search_tool,
    split_document,
    tool_output,
)
from signoff.store.base import KnowledgeHit

HANDBOOK = """# Handbook

Intro paragraph about the company.

## Refunds

Refunds are issued within 14 days.

### Exceptions

Gift cards are never refunded.

## Shipping

```python
# not a heading: inside a code fence
ship(order, express=True)
```

We ship to the EU.
"""


def test_markdown_is_split_at_headings_and_keeps_the_heading_path():
    # When a markdown document with nested headings and a code fence is split
    chunks = split_document(HANDBOOK)

    # Then each section is its own chunk, under its full heading path, numbered in order
    assert [(c.index, c.headings) for c in chunks] == [
        (0, ("Handbook",)),
        (1, ("Handbook", "Refunds")),
        (2, ("Handbook", "Refunds", "Exceptions")),
        (3, ("Handbook", "Shipping")),
    ]
    assert chunks[2].text == "Gift cards are never refunded."
    # And a '#' line inside a fenced block stays code, the block kept whole with what follows
    assert chunks[3].text.startswith("```python\n# not a heading")
    assert chunks[3].text.endswith("We ship to the EU.")


def test_long_sections_become_overlapping_chunks_of_about_the_chunk_size():
    # Given one section of 40 numbered sentences (about 2,000 characters)
    sentences = [f"Sentence number {n} says something about refunds and shipping." for n in range(40)]
    text = "# Policy\n\n" + " ".join(sentences)

    # When it is split
    chunks = split_document(text)

    # Then it comes out in several chunks, none much over the size, all under the heading
    assert len(chunks) >= 3
    assert all(len(c.text) <= CHUNK_CHARS + 2 for c in chunks)
    assert all(c.headings == ("Policy",) for c in chunks)
    # And each chunk starts with the end of the previous one (the overlap)
    for before, after in itertools.pairwise(chunks):
        first_words = " ".join(after.text.split()[:3])
        assert first_words in before.text
    # And nothing is lost: every sentence is in some chunk
    assert all(any(s in c.text for c in chunks) for s in sentences)


def test_a_word_longer_than_a_chunk_is_cut_and_plain_text_ignores_hashes():
    chunks = split_document("x" * 2000, markdown=False)
    assert len(chunks) == 3 and "".join(c.text.replace(" ", "") for c in chunks).count("x") >= 2000

    [chunk] = split_document("# not a heading in plain text\nsecond line", markdown=False)
    assert chunk.headings == ()
    assert chunk.text == "# not a heading in plain text\nsecond line"


def test_blank_documents_have_no_chunks_and_heading_only_ones_index_the_headings():
    assert split_document("  \n\n ") == []
    [chunk] = split_document("# Just a title")
    assert chunk.text == "# Just a title"


def test_the_embedded_text_carries_the_title_and_heading_path_once():
    chunk = Chunk(0, "Gift cards are never refunded.", ("Handbook", "Refunds"))
    assert embedding_text("Handbook", chunk) == "Handbook > Refunds\nGift cards are never refunded."
    assert embedding_text(None, Chunk(0, "plain", ())) == "plain"


def hit(document_id: str, index: int, score: float, content: str) -> KnowledgeHit:
    return KnowledgeHit("handbook", document_id, index, "Handbook", content, {"headings": ["Refunds"]}, score)


def test_an_agent_with_knowledge_gets_a_read_only_search_tool():
    # Given an agent configured with a knowledge base
    agent = Agent(id="a", name="A", knowledge="handbook")

    # Then it has the search tool, which needs no human and is safe to re-run
    search = agent.tool(TOOL_NAME)
    assert search is not None
    assert search.requirement is None and search.idempotent
    schema = search.openai_schema()["function"]
    assert schema["parameters"]["required"] == ["query"]
    assert set(schema["parameters"]["properties"]) == {"query", "limit", "filters"}

    # And binding a search keeps the schema (and so the agent's version) but makes it work
    calls = []

    def fake_search(kb, query, limit, filters):
        calls.append((kb, query, limit, filters))
        return [hit("refunds", 2, 0.83456, "Refunds are issued within 14 days. " * 10)]

    bound = agent.with_knowledge_search(fake_search)
    assert bound.version == agent.version
    assert bound.tool(TOOL_NAME).schema_hash == search.schema_hash
    output = bound.tool(TOOL_NAME).execute({"query": "refund window", "limit": 99})
    assert calls == [("handbook", "refund window", 20, {})]  # the limit is capped for the model
    assert "Handbook > Refunds (document refunds, chunk 2)" in output.content
    [reference] = output.references
    assert reference["kb"] == "handbook" and reference["document_id"] == "refunds"
    assert reference["chunk_index"] == 2 and reference["title"] == "Handbook"
    assert reference["score"] == 0.8346
    assert len(reference["excerpt"]) <= 200 and reference["excerpt"].endswith("…")


def test_an_unbound_search_tool_fails_as_a_tool_error_not_a_crash():
    with pytest.raises(RuntimeError, match="not configured"):
        search_tool("handbook").execute({"query": "x"})
    with pytest.raises(InvalidInput):
        search_tool("no spaces allowed")


def test_no_hits_say_so():
    output = tool_output("handbook", [])
    assert "No passages" in output.content and output.references == ()


def test_writers_policy():
    authorize_writer(None, "")  # no policy: anyone the API lets through
    authorize_writer(Principal("ann", ("editors",)), "editors, admins")
    authorize_writer(Principal("bob"), ["bob"])
    with pytest.raises(NotAllowed):
        authorize_writer(Principal("eve", ("staff",)), "editors")
    with pytest.raises(NotAllowed):
        authorize_writer(None, "editors")  # a policy needs an authenticated caller
