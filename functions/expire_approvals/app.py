"""Scheduled upkeep: expire undecided pauses (fail closed), mark dead runs, re-queue stranded ones."""

from aws_lambda_powertools.metrics import MetricUnit

from signoff import service
from signoff.observability import logger, metrics, tracer
from signoff.runtime import dependencies


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    deps = dependencies()
    expired = service.expire_pauses(deps)
    dead = service.sweep_stale_runs(deps)
    kept = service.apply_kept_decisions(deps)
    requeued = service.requeue_stranded(deps)
    metrics.add_metric(name="PausesExpired", unit=MetricUnit.Count, value=len(expired))
    metrics.add_metric(name="RunsLeaseExpired", unit=MetricUnit.Count, value=len(dead))
    logger.info("upkeep done", extra={"expired": expired, "dead": dead, "kept": kept, "requeued": requeued})
    return {"expired": expired, "dead": dead, "kept_decisions_applied": kept, "requeued": requeued}
