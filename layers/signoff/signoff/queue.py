"""The resume queue: work that continues a run in another invocation."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any, Literal, Protocol

MessageKind = Literal["resume", "notify"]


def resume_message(run_id: str, agent_id: str, kind: MessageKind = "resume") -> dict[str, Any]:
    """``resume``: run a run that waits for nobody; ``notify``: re-send a pause's notifications."""
    return {"kind": kind, "run_id": run_id, "agent_id": agent_id}


def ingest_message(kb: str, document_id: str, upload_id: str) -> dict[str, Any]:
    """``ingest``: embed and store a large upload; its text waits in the database, not here."""
    return {"kind": "ingest", "kb": kb, "document_id": document_id, "upload_id": upload_id}


class ResumeQueue(Protocol):
    def send(self, message: dict[str, Any]) -> None: ...


class SqsResumeQueue:
    """The SQS queue that the resume worker consumes.

    Args:
        queue_url: the queue's URL.
    """

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    @cached_property
    def _client(self) -> Any:
        import boto3  # deferred: only invocations that enqueue pay for it

        return boto3.client("sqs")

    def send(self, message: dict[str, Any]) -> None:
        self._client.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(message))
