"""Resumes runs from the SQS queue: background runs, decided pauses, hand-offs, notification retries."""

import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from signoff import knowledge, service, snapstart
from signoff.channels import queue as queue_channel
from signoff.config import get_settings
from signoff.errors import NotAllowed, SignoffError, StoreUnavailable
from signoff.models.base import Deadline
from signoff.observability import logger, metrics, record_decision, record_outcome, tracer
from signoff.runtime import dependencies, get_embedder, get_knowledge_store

snapstart.install(calls_model=True)  # under SnapStart only: prime openai, register the restore hooks
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
_context: object = None


def handle_message(record: SQSRecord) -> None:
    message = json.loads(record.body)
    if message.get("kind") == "ingest":
        ingest_document(message)
        return
    if message.get("kind") == "decision":
        decide_from_queue(message)
        return
    run_id = message["run_id"]
    logger.append_keys(run_id=run_id, message_kind=message.get("kind"))
    deps = dependencies()
    if message.get("kind") == "notify":
        service.renotify(deps, run_id)
        return
    result = service.resume_run(deps, run_id, deadline=_deadline())
    if result is None:
        logger.info("nothing to resume: the run is not waiting for the queue")
        return
    record_outcome(result.state)


def decide_from_queue(message: dict) -> None:
    """A decision sent on the queue: applied, kept for a busy run, or refused for good (written to the
    run's audit log; a redelivery would be refused again, so it is not retried)."""
    deps = dependencies()
    try:
        received = queue_channel.receive_message(message)
    except SignoffError as exc:
        logger.warning("queue decision dropped: not a decision", extra={"reason": str(exc.detail)[:300]})
        return
    try:
        outcome = service.decide_received(deps, received)
    except StoreUnavailable:
        raise  # a partial batch failure: SQS redelivers it
    except NotAllowed as exc:
        logger.warning("queue decision refused", extra={"reason": str(exc.detail)[:300]})
        return  # recorded by the decision itself
    except SignoffError as exc:
        logger.warning("queue decision refused", extra={"reason": str(exc.detail)[:300]})
        service.record_refusal(deps, received, str(exc.detail))
        return
    record_decision(outcome.call, "queue", deferred=outcome.deferred)


def ingest_document(message: dict) -> None:
    """A large knowledge upload: its text waits in the database; a redelivery finds nothing to do."""
    logger.append_keys(kb=message["kb"], document_id=message["document_id"], message_kind="ingest")
    result = knowledge.ingest_upload(
        get_knowledge_store(), get_embedder(), message["kb"], message["document_id"], deadline=_deadline()
    )
    logger.info("document ingested" if result else "nothing to ingest: the upload is no longer pending")


def _deadline() -> Deadline:
    settings = get_settings()
    cap = None if hasattr(_context, "get_remaining_time_in_millis") else settings.api_timeout_ms
    return Deadline.for_invocation(_context, settings.deadline_margin_ms, cap_ms=cap)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    global _context
    _context = context
    return process_partial_response(
        event=event, record_handler=handle_message, processor=processor, context=context
    )
