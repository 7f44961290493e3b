"""Powertools Logger, Tracer and Metrics shared by every handler, and the run metrics."""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
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
    """Put the run's ids on every log line of this invocation, and on its trace (searchable in X-Ray:
    ``annotation.run_id = "…"``, ``annotation.agent_id = "…"``)."""
    logger.append_keys(run_id=state.run_id, session_id=state.session_id, agent_id=state.agent_id)
    tracer.put_annotation(key="run_id", value=state.run_id)
    tracer.put_annotation(key="agent_id", value=state.agent_id)


def agent_metric(name: str, unit: str, value: float, agent_id: str, **dimensions: str) -> None:
    """One metric with the agent (and any further dimensions) as its dimension, emitted now.

    Args:
        name: the metric's name (namespace ``Signoff``).
        unit: a ``MetricUnit``.
        value: the value.
        agent_id: the agent; the ``agent`` dimension.
        **dimensions: more dimensions, e.g. ``model``.
    """
    with single_metric(name=name, unit=unit, value=value, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="agent", value=agent_id or "unknown")
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension or "unknown")


class ObservedModel:
    """A chat model whose requests are measured: latency and tokens, per agent and model.

    Args:
        model: the model (anything with ``request(messages, tools, deadline)``).
        agent_id: the agent it answers for.
    """

    def __init__(self, model: Any, agent_id: str) -> None:
        self._model = model
        self._agent_id = agent_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped model's ``request``, timed; its token counts recorded."""
        started = time.perf_counter()
        response = self._model.request(*args, **kwargs)
        model = str(getattr(self._model, "id", "") or "")
        elapsed_ms = (time.perf_counter() - started) * 1000
        agent_metric("ModelLatency", MetricUnit.Milliseconds, elapsed_ms, self._agent_id, model=model)
        for name, tokens in (
            ("ModelInputTokens", response.input_tokens),
            ("ModelOutputTokens", response.output_tokens),
        ):
            agent_metric(name, MetricUnit.Count, tokens or 0, self._agent_id, model=model)
        return response


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
            record_decision(call, channel, agent_id=state.agent_id)


def record_decision(call: ToolCall, channel: str, *, deferred: bool = False, agent_id: str = "") -> None:
    """Count one decision (confirmed or rejected, or kept for a busy run) and log it with its call.

    With ``agent_id``, also the time from the pause to the decision (``PauseToDecision``, seconds,
    per agent and channel).
    """
    name = "ToolCallsRejected" if call.state == "rejected" else "ToolCallsConfirmed"
    if deferred:
        name = "DecisionsKept"
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    if agent_id and call.decided_at is not None:
        waited = max(0, call.decided_at - call.created_at)
        agent_metric("PauseToDecision", MetricUnit.Seconds, waited, agent_id, channel=channel)
    logger.info(
        "decision recorded",
        extra={
            "channel": channel,
            "decision": call.state,
            "tool": call.tool_name,
            "tool_call_id": call.tool_call_id,
        },
    )
