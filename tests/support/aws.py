"""moto-backed AWS for the async paths: the resume queue, EventBridge, and what they carried."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

import boto3

from signoff_dev.apigw import FakeLambdaContext
from signoff_dev.handlers import load_handler

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


class AwsWorld:
    """The resume queue and a capture queue behind an EventBridge rule for ``source: signoff``."""

    def __init__(self) -> None:
        self.sqs = boto3.client("sqs", region_name=REGION)
        events = boto3.client("events", region_name=REGION)
        self.queue_url = self.sqs.create_queue(QueueName="signoff-resume")["QueueUrl"]
        self.queue_arn = self._arn(self.queue_url)
        self.capture_url = self.sqs.create_queue(QueueName="captured-events")["QueueUrl"]
        events.put_rule(Name="signoff-all", EventPattern=json.dumps({"source": ["signoff"]}))
        events.put_targets(
            Rule="signoff-all", Targets=[{"Id": "capture", "Arn": self._arn(self.capture_url)}]
        )

    def _arn(self, url: str) -> str:
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return attributes["Attributes"]["QueueArn"]

    def _drain(self, url: str) -> list[dict[str, Any]]:
        messages = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
            if not batch.get("Messages"):
                return messages
            for message in batch["Messages"]:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            messages.extend(batch["Messages"])

    def resume_messages(self) -> list[dict[str, Any]]:
        """Take everything waiting on the resume queue."""
        return self._drain(self.queue_url)

    def events(self) -> list[dict[str, Any]]:
        """Take every event EventBridge delivered so far."""
        return [json.loads(m["Body"]) for m in self._drain(self.capture_url)]

    def sqs_event(self, messages: list[dict[str, Any]], receive_count: int = 1) -> dict[str, Any]:
        """The Lambda event for these queue messages, as the SQS trigger sends it."""
        now = str(int(time.time() * 1000))
        return {
            "Records": [
                {
                    "messageId": m.get("MessageId", str(uuid.uuid4())),
                    "receiptHandle": m.get("ReceiptHandle", "handle"),
                    "body": m["Body"],
                    "attributes": {
                        "ApproximateReceiveCount": str(receive_count),
                        "SentTimestamp": now,
                        "SenderId": "AIDAEXAMPLE",
                        "ApproximateFirstReceiveTimestamp": now,
                    },
                    "messageAttributes": {},
                    "md5OfBody": hashlib.md5(m["Body"].encode()).hexdigest(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": REGION,
                }
                for m in messages
            ]
        }

    def run_worker(
        self, messages: list[dict[str, Any]] | None = None, receive_count: int = 1
    ) -> dict[str, Any]:
        """Deliver messages (by default: all waiting) to the resume worker, as the trigger would."""
        messages = self.resume_messages() if messages is None else messages
        handler = load_handler(ROOT / "functions" / "resume_worker", "app.lambda_handler")
        return handler(
            self.sqs_event(messages, receive_count), FakeLambdaContext("ResumeWorkerFunction", 120_000)
        )

    def run_upkeep(self) -> dict[str, Any]:
        handler = load_handler(ROOT / "functions" / "expire_approvals", "app.lambda_handler")
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": "2026-11-29T00:00:00Z",
            "region": REGION,
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/expire"],
            "detail": {},
        }
        return handler(event, FakeLambdaContext("ExpireApprovalsFunction", 60_000))
