"""Resumes runs from the SQS queue: background runs, decided pauses, hand-offs, notification retries."""

import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from signoff import service
from signoff.models.base import Deadline
from signoff.observability import logger, metrics, record_outcome, tracer
from signoff.runtime import dependencies

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
_context: object = None


def handle_message(record: SQSRecord) -> None:
    message = json.loads(record.body)
    run_id = message["run_id"]
    logger.append_keys(run_id=run_id, message_kind=message.get("kind"))
    deps = dependencies()
    if message.get("kind") == "notify":
        service.renotify(deps, run_id)
        return
    settings = deps.settings
    remaining = getattr(_context, "get_remaining_time_in_millis", None)
    deadline = Deadline(remaining or (lambda: settings.api_timeout_ms), settings.deadline_margin_ms)
    result = service.resume_run(deps, run_id, deadline=deadline)
    if result is None:
        logger.info("nothing to resume: the run is not waiting for the queue")
        return
    record_outcome(result.state)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    global _context
    _context = context
    return process_partial_response(
        event=event, record_handler=handle_message, processor=processor, context=context
    )
