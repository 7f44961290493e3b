"""Powertools Logger, Tracer and Metrics shared by every handler, and the run metrics."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from signoff.state import RunState, ToolCall

logger = Logger(service="signoff")
tracer = Tracer(service="signoff")
metrics = Metrics(namespace="Signoff", service="signoff")

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


def record_decisions(state: RunState, decided_ids: set[str]) -> None:
    for call in state.tools:
        if call.tool_call_id in decided_ids and call.decided_at is not None:
            name = "ToolCallsRejected" if call.state == "rejected" else "ToolCallsConfirmed"
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def record_decision(call: ToolCall, channel: str) -> None:
    logger.append_keys(tool_call_id=call.tool_call_id)
    name = "ToolCallsRejected" if call.state == "rejected" else "ToolCallsConfirmed"
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    logger.info(
        "decision recorded", extra={"channel": channel, "decision": call.state, "tool": call.tool_name}
    )
