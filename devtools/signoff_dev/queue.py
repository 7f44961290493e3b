"""A local resume queue: what SQS and Lambda's event source mapping do for the resume worker, in-process.

``LocalQueue`` takes the messages the runtime sends (``send(message)``, the ``ResumeQueue`` protocol)
and delivers them from a background thread to a ``deliver(event)`` callable: the dev server's, which
invokes ResumeWorkerFunction's handler with the SQS event Lambda would build (``Records`` with
``messageId``, ``receiptHandle``, ``body``, ``attributes``, ``md5OfBody``, ``eventSourceARN``...), in
batches of up to the function's ``BatchSize``. As with ``ReportBatchItemFailures``, the messages the
handler lists in ``batchItemFailures`` (all of them when the invocation fails) come back after a
visibility timeout with ``ApproximateReceiveCount`` incremented, and after ``max_receives`` receives go
to the dead letters (logged).

The runtime never imports this package: the dev server hands its queue and notifier to the runtime with
``signoff.runtime.provide(queue=..., notifier=...)``, and each container process provides relays
(``RelayQueue``, ``RelayNotifier``) that hand messages to the dev server over its pipe.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import itertools
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from signoff_dev.apigw import ACCOUNT_ID, REGION

logger = logging.getLogger("signoff_dev.queue")

QUEUE_NAME = "signoff-local-ResumeQueue"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{QUEUE_NAME}"
SENDER_ID = "AROAXMPL0SIGNOFF0LOCAL:signoff-local"


def sqs_record(
    body: str,
    *,
    message_id: str,
    receipt_handle: str,
    sent_ms: int,
    first_receive_ms: int,
    receive_count: int = 1,
    sender_id: str = SENDER_ID,
    queue_arn: str = QUEUE_ARN,
    trace_header: str | None = None,
) -> dict[str, Any]:
    """One record of an SQS event, as Lambda's event source mapping delivers it.

    Args:
        body: the message body (the JSON the sender sent).
        message_id: SQS's id of the message (the same on every receive).
        receipt_handle: this receive's handle.
        sent_ms: when the message was sent (epoch ms).
        first_receive_ms: when it was first received (epoch ms).
        receive_count: how many times it has been received, this time included.
        sender_id: the sender's principal id.
        queue_arn: the queue's ARN.
        trace_header: the X-Ray ``AWSTraceHeader`` attribute, if any.

    Returns:
        The record.
    """
    attributes = {"ApproximateReceiveCount": str(receive_count)}
    if trace_header:
        attributes["AWSTraceHeader"] = trace_header
    attributes.update(
        {
            "SentTimestamp": str(sent_ms),
            "SenderId": sender_id,
            "ApproximateFirstReceiveTimestamp": str(first_receive_ms),
        }
    )
    return {
        "messageId": message_id,
        "receiptHandle": receipt_handle,
        "body": body,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),  # SQS's checksum, not security
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


@dataclass
class _Message:
    message_id: str
    body: str
    sent_ms: int
    receive_count: int = 0
    first_receive_ms: int | None = None


class LocalQueue:
    """SQS + the event source mapping, locally: a background thread delivers what ``send`` receives.

    Args:
        deliver: called with each SQS event (``{"Records": [...]}``); returns the handler's result
            (``{"batchItemFailures": [...]}``) or raises when the invocation failed.
        batch_size: the most records per event (the function's ``BatchSize``).
        concurrency: how many deliveries may run at once (pollers).
        visibility_timeout_s: how long a failed message stays invisible before it is delivered again.
        max_receives: receives before a message goes to the dead letters (the redrive policy).
        queue_arn: the ARN records name.

    Attributes:
        sent: messages sent.
        delivered: messages whose processing succeeded.
        retried: failed receives that were put back.
        dead_letters: the bodies (decoded) of the messages that failed ``max_receives`` times.
    """

    def __init__(
        self,
        deliver: Callable[[dict[str, Any]], Any],
        *,
        batch_size: int = 10,
        concurrency: int = 1,
        visibility_timeout_s: float = 5.0,
        max_receives: int = 5,
        queue_arn: str = QUEUE_ARN,
    ) -> None:
        self.deliver = deliver
        self.batch_size = max(1, batch_size)
        self.concurrency = max(1, concurrency)
        self.visibility_timeout_s = visibility_timeout_s
        self.max_receives = max_receives
        self.queue_arn = queue_arn
        self.sent = 0
        self.delivered = 0
        self.retried = 0
        self.dead_letters: list[Any] = []
        self._heap: list[tuple[float, int, _Message]] = []
        self._order = itertools.count()
        self._in_flight = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []

    # -- the ResumeQueue protocol
    def send(self, message: dict[str, Any]) -> None:
        """Queue a message (what ``SqsResumeQueue.send`` does with SQS).

        Args:
            message: a JSON-serializable dict.
        """
        body = json.dumps(message)
        item = _Message(str(uuid.uuid4()), body, int(time.time() * 1000))
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic(), next(self._order), item))
            self.sent += 1
            self._cond.notify()
        logger.debug("queued %s", body)

    # -- lifecycle
    def start(self) -> None:
        """Start the delivery threads."""
        with self._cond:
            self._stopping = False
        for index in range(self.concurrency):
            thread = threading.Thread(target=self._poll, name=f"signoff-local-queue-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop delivering; undelivered messages are dropped (the upkeep re-queues stranded runs).

        Args:
            timeout_s: how long to wait for deliveries in progress.
        """
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    def pending(self) -> int:
        """Messages waiting or being delivered."""
        with self._cond:
            return len(self._heap) + self._in_flight

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Wait until every sent message was processed or dead-lettered.

        Args:
            timeout_s: the longest wait.

        Returns:
            True when idle, False on timeout.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._heap or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
            return True

    # -- delivery
    def _next_batch(self) -> list[_Message] | None:
        with self._cond:
            while True:
                if self._stopping:
                    return None
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    batch = []
                    while self._heap and self._heap[0][0] <= now and len(batch) < self.batch_size:
                        batch.append(heapq.heappop(self._heap)[2])
                    self._in_flight += len(batch)
                    return batch
                wait = (self._heap[0][0] - now) if self._heap else None
                self._cond.wait(wait)

    def _event(self, batch: list[_Message]) -> dict[str, Any]:
        now_ms = int(time.time() * 1000)
        records = []
        for item in batch:
            item.receive_count += 1
            if item.first_receive_ms is None:
                item.first_receive_ms = now_ms
            handle = base64.b64encode(item.message_id.encode() + os.urandom(48)).decode()
            records.append(
                sqs_record(
                    item.body,
                    message_id=item.message_id,
                    receipt_handle=handle,
                    sent_ms=item.sent_ms,
                    first_receive_ms=item.first_receive_ms,
                    receive_count=item.receive_count,
                    queue_arn=self.queue_arn,
                )
            )
        return {"Records": records}

    def _poll(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            event = self._event(batch)
            try:
                result = self.deliver(event)
                failures = result.get("batchItemFailures") if isinstance(result, dict) else None
                failed = {str(f.get("itemIdentifier")) for f in failures or [] if isinstance(f, dict)}
            except Exception as error:  # the invocation failed: the whole batch comes back
                logger.error(
                    "resume worker invocation failed (%d message(s) will be retried): %s", len(batch), error
                )
                failed = {item.message_id for item in batch}
            self._settle(batch, failed)

    def _settle(self, batch: list[_Message], failed: set[str]) -> None:
        with self._cond:
            for item in batch:
                if item.message_id not in failed:
                    self.delivered += 1
                elif item.receive_count >= self.max_receives:
                    self.dead_letters.append(json.loads(item.body))
                    logger.error(
                        "resume message failed %d times, moved to the dead letters: %s",
                        item.receive_count,
                        item.body,
                    )
                else:
                    self.retried += 1
                    logger.warning(
                        "resume message failed (receive %d), retried in %.0fs: %s",
                        item.receive_count,
                        self.visibility_timeout_s,
                        item.body,
                    )
                    ready = time.monotonic() + self.visibility_timeout_s
                    heapq.heappush(self._heap, (ready, next(self._order), item))
            self._in_flight -= len(batch)
            self._cond.notify_all()


class RelayQueue:
    """A container process's resume queue: each message goes to the dev server, whose ``LocalQueue``
    delivers it.

    Args:
        emit: sends ``(kind, payload)`` to the dev server (over the container's pipe).
    """

    def __init__(self, emit: Callable[[str, Any], None]) -> None:
        self._emit = emit

    def send(self, message: dict[str, Any]) -> None:
        self._emit("queue", json.loads(json.dumps(message)))


class RelayNotifier:
    """A container process's notifier: each pause goes to the dev server's ``LocalNotifier``.

    Args:
        emit: sends ``(kind, payload)`` to the dev server.
    """

    def __init__(self, emit: Callable[[str, Any], None]) -> None:
        self._emit = emit

    def run_paused(self, state: Any, links: dict[str, dict[str, str]]) -> None:
        from signoff.notify import paused_detail

        self._emit("paused", json.loads(json.dumps(paused_detail(state, links), default=str)))
