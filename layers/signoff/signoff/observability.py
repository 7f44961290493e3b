"""Powertools Logger, Tracer and Metrics shared by every handler, and the run metrics."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

from signoff.state import RunState, ToolCall


def tracing_enabled() -> bool:
    """Powertools' own rule: off when ``POWERTOOLS_TRACE_DISABLED`` is true, and outside Lambda
    (no ``LAMBDA_TASK_ROOT``, or SAM local, or Chalice local)."""
    if resolve_truthy_env_var_choice(env=os.getenv(constants.TRACER_DISABLED_ENV, "false")):
        return False
    in_lambda = bool(os.getenv(constants.LAMBDA_TASK_ROOT_ENV))
    return in_lambda and not (os.getenv(constants.SAM_LOCAL_ENV) or os.getenv(constants.CHALICE_LOCAL_ENV))


class OffTracer:
    """What the handlers use of Powertools' ``Tracer`` where tracing is off, as pass-throughs.

    A disabled ``Tracer`` still imports the X-Ray SDK (and botocore with it), a few hundred
    milliseconds of cold start, only to switch it off; this one imports nothing.
    """

    disabled = True

    def capture_lambda_handler(
        self,
        lambda_handler: Callable | None = None,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
    ) -> Any:
        return lambda_handler if lambda_handler is not None else (lambda function: function)

    def capture_method(
        self,
        method: Callable | None = None,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
    ) -> Any:
        return method if method is not None else (lambda function: function)

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        pass


logger = Logger(service="signoff")
# botocore logs whole response bodies at DEBUG, GetSecretValue's included: whatever the level of
# the function's own logs, the SDK's never go below INFO.
logging.getLogger("botocore").setLevel(max(logging.INFO, logging.getLogger("botocore").level))
# In Lambda (Tracing: Active) the real Tracer, built at init so that SnapStart snapshots it.
tracer: Tracer | OffTracer = Tracer(service="signoff") if tracing_enabled() else OffTracer()
metrics = Metrics(namespace="Signoff", service="signoff")
# Reads and upkeep often record no metric; that is normal, not worth a warning per invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

_STATUS_METRIC = {
    "PAUSED": "RunsPaused",
    "COMPLETED": "RunsCompleted",
    "ERROR": "RunsErrored",
    "CANCELLED": "RunsCancelled",
    "RUNNING": "RunsHandedOff",
}


def bind_run(state: RunState) -> None:
    """Put the run's ids on every log line of this invocation."""
    logger.append_keys(run_id=state.run_id, session_id=state.session_id, agent_id=state.agent_id)


def record_outcome(state: RunState, *, started: bool = False) -> None:
    """Count what this invocation did to the run."""
    bind_run(state)
    if started:
        metrics.add_metric(name="RunsStarted", unit=MetricUnit.Count, value=1)
    name = _STATUS_METRIC.get(state.status)
    if name:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    logger.info("run %s", state.status.lower(), extra={"status": state.status})


def record_decisions(state: RunState, decided_ids: set[str], channel: str = "api") -> None:
    """Count and log the decisions an API continue made (the ids it named that got decided)."""
    for call in state.tools:
        if call.tool_call_id in decided_ids and call.decided_at is not None:
            record_decision(call, channel)


def record_decision(call: ToolCall, channel: str, *, deferred: bool = False) -> None:
    """Count one decision (confirmed or rejected, or kept for a busy run) and log it with its call."""
    name = "ToolCallsRejected" if call.state == "rejected" else "ToolCallsConfirmed"
    if deferred:
        name = "DecisionsKept"
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    logger.info(
        "decision recorded",
        extra={
            "channel": channel,
            "decision": call.state,
            "tool": call.tool_name,
            "tool_call_id": call.tool_call_id,
        },
    )
