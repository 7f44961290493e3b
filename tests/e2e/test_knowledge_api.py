"""Knowledge bases through the Lambda handlers, and an agent that reads one before asking to act."""

from __future__ import annotations

import json

import pytest

from tests.support.agents import EXECUTIONS
from tests.support.api import Api, multipart

DOCUMENTS = "/knowledge/{kb}/documents"
DOCUMENT = "/knowledge/{kb}/documents/{document_id}"
SEARCH = "/knowledge/{kb}/search"
REFUNDS = (
    "# Refund policy\n\n## Refund window\n\nCustomers can ask for a refund within 30 days of delivery.\n\n"
    "## Gift cards\n\nGift cards are never refunded or exchanged for cash."
)
SHIPPING = "# Shipping\n\nExpress delivery arrives the next business day."


def post(api: Api, kb: str = "handbook", **fields):
    return api.call("POST", DOCUMENTS, {"kb": kb}, fields=fields, form=fields.pop("form", "json"))


def upload(api: Api, filename: str, content: bytes, kb: str = "handbook", **fields: str):
    """A multipart upload as ``curl -F file=@name -F field=value`` sends it."""
    boundary = "------------------------0123456789abcdef"
    file_part = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + b"\r\n"
    )
    text_parts = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    body = text_parts + file_part + f"--{boundary}--\r\n".encode()
    return api.call(
        "POST", DOCUMENTS, {"kb": kb}, body=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def listing(api: Api, kb: str = "handbook") -> list[dict]:
    response = api.call("GET", DOCUMENTS, {"kb": kb})
    assert response.status == 200, response
    return response.json()["data"]


def test_add_list_replace_and_delete_documents(api, model):
    # When a markdown document is posted as JSON with metadata
    created = post(api, text=REFUNDS, document_id="refunds", metadata={"team": "support"})

    # Then it is created, chunked under its headings and embedded
    assert created.status == 201, created
    body = created.json()
    assert body["outcome"] == "created"
    assert (body["document_id"], body["title"], body["chunk_count"], body["status"]) == (
        "refunds",
        "Refund policy",
        2,
        "ready",
    )
    assert body["metadata"] == {"team": "support"}
    assert body["embedding_model"] == "text-embedding-3-small"
    assert len(model.embedding_requests) == 1

    # And a file upload takes its id and format from the file name
    uploaded = upload(api, "shipping.md", SHIPPING.encode(), metadata=json.dumps({"team": "logistics"}))
    assert uploaded.status == 201, uploaded
    assert uploaded.json()["document_id"] == "shipping.md"
    assert [(d["document_id"], d["status"]) for d in listing(api)] == [
        ("refunds", "ready"),
        ("shipping.md", "ready"),
    ]

    # When the same document is posted again, unchanged, then changed
    assert post(api, text=REFUNDS, document_id="refunds", metadata={"team": "support"}).json()["outcome"] == (
        "unchanged"
    )
    replaced = post(api, text="# Refund policy\n\nNo refunds at all.", document_id="refunds")
    assert replaced.status == 200 and replaced.json()["outcome"] == "replaced"
    assert replaced.json()["chunk_count"] == 1

    # When it is deleted
    deleted = api.call("DELETE", DOCUMENT, {"kb": "handbook", "document_id": "refunds"})
    assert deleted.status == 200 and deleted.json()["deleted"] is True

    # Then only the other document is left, and deleting again is 404
    assert [d["document_id"] for d in listing(api)] == ["shipping.md"]
    again = api.call("DELETE", DOCUMENT, {"kb": "handbook", "document_id": "refunds"})
    assert again.status == 404


def test_a_raw_markdown_body_works_like_curl_data_binary(api):
    response = api.call(
        "POST",
        DOCUMENTS,
        {"kb": "handbook"},
        query={"document_id": "raw", "metadata": '{"source": "cli"}'},
        body=SHIPPING.encode(),
        content_type="text/markdown",
    )
    assert response.status == 201, response
    assert (response.json()["document_id"], response.json()["metadata"]) == ("raw", {"source": "cli"})


def test_search_route_returns_the_best_chunks_first_and_honours_filters(api):
    post(api, text=REFUNDS, document_id="refunds", metadata={"team": "support"})
    post(api, text=SHIPPING, document_id="shipping", metadata={"team": "logistics"})

    found = api.call(
        "POST", SEARCH, {"kb": "handbook"}, fields={"query": "are gift cards refunded"}, form="json"
    )
    assert found.status == 200, found
    results = found.json()["results"]
    assert results[0]["document_id"] == "refunds"
    assert results[0]["content"] == "Gift cards are never refunded or exchanged for cash."
    assert results[0]["metadata"]["headings"] == ["Refund policy", "Gift cards"]
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)

    filtered = api.call(
        "POST",
        SEARCH,
        {"kb": "handbook"},
        fields={"query": "gift cards", "filters": {"team": "logistics"}, "limit": 1},
        form="json",
    )
    assert [r["document_id"] for r in filtered.json()["results"]] == ["shipping"]


def test_an_agent_with_knowledge_lists_what_it_read_for_the_approver(api, model):
    # Given the handbook holds the refund policy
    post(api, text=REFUNDS, document_id="refunds")

    # When the support agent looks the policy up and then asks to refund
    message = (
        'call search_knowledge_base {"query": "refund window days", "limit": 2} '
        'then call issue_refund {"order_id": "o-17", "amount": 1500}'
    )
    paused = api.start(message, agent_id="support", session_id="s-kb").json()

    # Then the run pauses on the refund, the search having run without asking anyone
    assert paused["status"] == "PAUSED", paused
    search_call, refund_call = paused["tools"]
    assert search_call["tool_name"] == "search_knowledge_base"
    assert search_call["requires_confirmation"] is None
    assert "Customers can ask for a refund within 30 days" in search_call["result"]
    assert [r["tool_execution"]["tool_name"] for r in paused["requirements"]] == ["issue_refund"]
    # And the run lists what the agent read, for the human about to decide
    references = paused["references"]
    assert len(references) == 2
    first = references[0]
    assert {k: first[k] for k in ("kb", "document_id", "chunk_index", "title", "tool_call_id")} == {
        "kb": "handbook",
        "document_id": "refunds",
        "chunk_index": 0,
        "title": "Refund policy",
        "tool_call_id": search_call["tool_call_id"],
    }
    assert first["excerpt"] == "Customers can ask for a refund within 30 days of delivery."
    assert 0 < first["score"] <= 1 and first["score"] >= references[1]["score"]
    # And the model got the passages as the search's result
    tool_messages = [m for m in model.requests[-1]["messages"] if m["role"] == "tool"]
    assert "[1] Refund policy > Refund window" in tool_messages[0]["content"]

    # And reading the run later shows the same references
    assert api.get(paused["run_id"], agent_id="support").json()["references"] == references

    # When the human approves, the refund runs once and the references stay on the run
    call_id = refund_call["tool_call_id"]
    done = api.continue_(
        paused["run_id"],
        [{"tool_call_id": call_id, "confirmed": True}],
        agent_id="support",
        session_id="s-kb",
    ).json()
    assert done["status"] == "COMPLETED"
    assert EXECUTIONS == [("issue_refund", {"order_id": "o-17", "amount": 1500})]
    assert done["references"] == references


def test_a_large_upload_is_ingested_by_the_resume_worker(api, aws, monkeypatch):
    # Given documents of more than two chunks go through the queue
    monkeypatch.setenv("SIGNOFF_KNOWLEDGE_QUEUE_CHUNKS", "2")
    from tests.conftest import _reset_runtime

    _reset_runtime()
    text = "# Guide\n\n" + "\n\n".join(f"## Step {n}\n\nDo step {n} carefully." for n in range(5))

    # When it is posted
    accepted = post(api, text=text, document_id="guide")

    # Then it is accepted for later, listed as pending, and the queue message carries no text
    assert accepted.status == 202, accepted
    assert (accepted.json()["outcome"], accepted.json()["status"]) == ("queued", "pending")
    assert [(d["document_id"], d["status"]) for d in listing(api)] == [("guide", "pending")]
    [message] = aws.resume_messages()
    body = json.loads(message["Body"])
    assert body["kind"] == "ingest" and body["document_id"] == "guide" and "Step" not in message["Body"]

    # When the worker gets the message, twice (at-least-once delivery)
    assert aws.run_worker([message]) == {"batchItemFailures": []}
    assert aws.run_worker([message], receive_count=2) == {"batchItemFailures": []}

    # Then the document is ready and searchable
    [document] = listing(api)
    assert (document["status"], document["chunk_count"]) == ("ready", 5)
    found = api.call("POST", SEARCH, {"kb": "handbook"}, fields={"query": "step 3"}, form="json").json()
    assert found["results"][0]["content"] == "Do step 3 carefully."


@pytest.mark.parametrize(
    ("route", "params", "fields", "status", "detail"),
    [
        (DOCUMENTS, {"kb": "bad kb!"}, {"text": "x"}, 400, "knowledge base name"),
        (DOCUMENTS, {"kb": "handbook"}, {"document_id": "a"}, 422, "text"),
        (DOCUMENTS, {"kb": "handbook"}, {"text": "x", "metadata": "[1]"}, 422, "metadata"),
        (DOCUMENTS, {"kb": "handbook"}, {"text": "x", "document_id": "a/b"}, 400, "document_id"),
        (DOCUMENTS, {"kb": "handbook"}, {"text": "x", "format": "pdf"}, 422, "format"),
        (SEARCH, {"kb": "handbook"}, {"query": ""}, 422, "query"),
        (SEARCH, {"kb": "handbook"}, {"query": "x", "limit": 500}, 422, "limit"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(api, dump, route, params, fields, status, detail):
    before = dump()
    response = api.call("POST", route, params, fields=fields, form="json")
    assert response.status == status, response
    assert detail in json.dumps(response.json()["detail"])
    assert dump() == before


def test_binary_files_are_refused(api):
    response = upload(api, "scan.pdf", b"%PDF-1.7\x00\x01binary")
    assert response.status == 400
    assert "only text and markdown" in response.json()["detail"]


def test_writers_policy_guards_changes_but_not_reads(api, monkeypatch):
    monkeypatch.setenv("SIGNOFF_KNOWLEDGE_WRITERS", "editors")
    from tests.conftest import _reset_runtime

    _reset_runtime()
    reader = {"sub": "rita", "cognito:groups": ["readers"]}
    editor = {"sub": "ed", "cognito:groups": ["editors"]}

    refused = api.call(
        "POST", DOCUMENTS, {"kb": "handbook"}, fields={"text": SHIPPING}, form="json", claims=reader
    )
    assert refused.status == 403
    allowed = api.call(
        "POST",
        DOCUMENTS,
        {"kb": "handbook"},
        fields={"text": SHIPPING, "document_id": "s"},
        form="json",
        claims=editor,
    )
    assert allowed.status == 201
    assert api.call("GET", DOCUMENTS, {"kb": "handbook"}, claims=reader).status == 200
    assert api.call("DELETE", DOCUMENT, {"kb": "handbook", "document_id": "s"}, claims=reader).status == 403
    assert api.call("DELETE", DOCUMENT, {"kb": "handbook", "document_id": "s"}, claims=editor).status == 200


def test_multipart_text_field_works_without_a_file(api):
    body, content_type = multipart({"text": SHIPPING, "document_id": "form", "format": "text"})
    response = api.call("POST", DOCUMENTS, {"kb": "handbook"}, body=body, content_type=content_type)
    assert response.status == 201, response
    assert response.json()["title"] is None  # plain text: '#' is not a heading


def test_the_sample_events_drive_the_handler(api):
    from signoff_dev.handlers import invoke
    from tests.support.api import load_event

    def send(name: str) -> tuple[int, dict]:
        response = invoke("KnowledgeFunction", load_event(name))
        return response["statusCode"], json.loads(response["body"])

    status, uploaded = send("knowledge_upload.json")
    assert (status, uploaded["document_id"], uploaded["metadata"]) == (201, "refunds.md", {"team": "support"})
    assert send("knowledge_add_document.json")[0] == 201
    assert [d["document_id"] for d in send("knowledge_list.json")[1]["data"]] == ["refunds.md", "shipping"]
    status, found = send("knowledge_search.json")
    assert found["results"][0]["content"] == "Gift cards are never refunded."
    assert send("knowledge_delete.json") == (
        200,
        {"kb": "handbook", "document_id": "shipping", "deleted": True},
    )
