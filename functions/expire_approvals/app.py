"""Scheduled upkeep: expire undecided pauses (fail closed), mark dead runs, re-queue stranded ones."""

import time

from aws_lambda_powertools.metrics import MetricUnit

from signoff import service
from signoff.observability import logger, metrics, tracer
from signoff.runtime import dependencies, get_upkeep_gate

STRANDED_AFTER_S = 60  # service.requeue_stranded's default age


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    gate = get_upkeep_gate()  # cheap profile: ask SSM and CloudWatch first, so the database may pause
    started = time.time()
    if gate is not None and not gate.due(started):
        logger.info("upkeep skipped: nothing due and no activity since the last pass")
        return {"skipped": True}
    deps = dependencies()
    expired = service.expire_pauses(deps)
    dead = service.sweep_stale_runs(deps)
    kept = service.apply_kept_decisions(deps)
    requeued = service.requeue_stranded(deps, older_than_s=STRANDED_AFTER_S)
    metrics.add_metric(name="PausesExpired", unit=MetricUnit.Count, value=len(expired))
    metrics.add_metric(name="RunsLeaseExpired", unit=MetricUnit.Count, value=len(dead))
    result = {"expired": expired, "dead": dead, "kept_decisions_applied": kept, "requeued": requeued}
    if gate is not None:
        marker = gate.passed(started, deps.store.next_upkeep_due(stranded_after_s=STRANDED_AFTER_S))
        deps.store.close()  # no connection left open between passes: the database can pause
        result["next_due"] = marker.next_due
    logger.info("upkeep done", extra=result)
    return result
