"""The objects Signoff sends: a run and its tools as CONTRACT.md shapes them, a pause as every
channel announces it, and a decision as an outside sender learns of it. HTTP responses, pause
notifications and the OpenAPI document all take them from here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from signoff.state import PUBLIC_TOOL_KEYS, RunState, ToolCall

# The keys of a run object, in order (the OpenAPI document lists them from here).
RUN_KEYS = (
    "run_id",
    "agent_id",
    "agent_name",
    "session_id",
    "user_id",
    "content",
    "content_type",
    "model",
    "model_provider",
    "created_at",
    "updated_at",
    "status",
    "metrics",
    "messages",
    "tools",
    "requirements",
    "input",
    "references",
)
TOOL_KEYS = PUBLIC_TOOL_KEYS

DEFERRED_DETAIL = (
    "The run is executing right now; this decision is kept and applied, checked again, as soon as "
    "the run is free."
)


def iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch else None


def tool_object(call: ToolCall) -> dict[str, Any]:
    """A tool call as AgentOS shapes it: every key of CONTRACT.md, ``null`` when unset."""
    return call.public()


def requirement_object(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.tool_call_id,
        "created_at": iso(call.created_at),
        "tool_execution": tool_object(call),
    }


def run_object(state: RunState) -> dict[str, Any]:
    """A run as CONTRACT.md shapes it."""
    run = {
        "run_id": state.run_id,
        "agent_id": state.agent_id,
        "agent_name": state.agent_name,
        "session_id": state.session_id,
        "user_id": state.user_id,
        "content": state.content,
        "content_type": "str",
        "model": state.model,
        "model_provider": state.model_provider,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "status": state.status,
        "metrics": {
            "input_tokens": state.metrics.input_tokens,
            "output_tokens": state.metrics.output_tokens,
            "total_tokens": state.metrics.total_tokens,
            "duration": state.metrics.duration,
        },
        "messages": state.messages,
        "tools": [tool_object(t) for t in state.tools],
        "requirements": [requirement_object(t) for t in state.pending_tools],
        "input": {"input_content": state.input_content},
        "references": state.references,
    }
    return run


def paused_detail(state: RunState, links: dict[str, dict[str, str]]) -> dict[str, Any]:
    """What every channel says about a pause: the run and each pending call with its links."""
    return {
        "run_id": state.run_id,
        "agent_id": state.agent_id,
        "agent_name": state.agent_name,
        "session_id": state.session_id,
        "user_id": state.user_id,
        "content": state.content,
        "tool_calls": [
            {
                "tool_call_id": call.tool_call_id,
                "tool_name": call.tool_name,
                "tool_args": call.tool_args,
                "args_digest": call.args_digest,
                "requirement": call.requirement,
                "approval_type": call.approval_type,
                "approvers": call.approvers,
                "user_input_schema": call.user_input_schema,
                "user_feedback_schema": call.user_feedback_schema,
                "expires_at": iso(call.expires_at),
                "approve_url": links.get(call.tool_call_id, {}).get("approve"),
                "reject_url": links.get(call.tool_call_id, {}).get("reject"),
            }
            for call in state.pending_tools
        ],
    }


def decision_object(outcome: Any) -> dict[str, Any]:
    """What an outside sender learns: the decision recorded (or kept), and whether the run resumes."""
    call = outcome.call
    body = {
        "run_id": outcome.state.run_id,
        "tool_call_id": call.tool_call_id,
        "tool_name": call.tool_name,
        "decision": "approved" if outcome.verdict == "approve" else "rejected",
        "decided_by": None if outcome.deferred else call.decided_by,
        "run_status": outcome.state.status,
        "pending": [t.tool_call_id for t in outcome.state.pending_tools],
        "resumed": outcome.resumed,
        "deferred": outcome.deferred,
    }
    if outcome.deferred:
        body["detail"] = DEFERRED_DETAIL
    return body


def approval_object(row: dict[str, Any]) -> dict[str, Any]:
    """An approval record as AgentOS's ``ApprovalResponse`` shapes it (plus ``tool_call_id`` and
    ``args_digest``, which a resolution may quote)."""
    return {
        "id": row["id"],
        "run_id": row["run_id"],
        "session_id": row["session_id"],
        "status": row["status"],
        "source_type": "agent",
        "approval_type": row["approval_type"],
        "pause_type": row["pause_type"],
        "tool_name": row["tool_name"],
        "tool_args": row["tool_args"],
        "expires_at": row["expires_at"],
        "agent_id": row["agent_id"],
        "team_id": None,
        "workflow_id": None,
        "user_id": row["user_id"],
        "schedule_id": None,
        "schedule_run_id": None,
        "source_name": row["source_name"],
        "requirements": row["requirements"],
        "context": {"tool_names": [row["tool_name"]], "source_name": row["source_name"]},
        "resolution_data": row["resolution_data"],
        "resolved_by": row["resolved_by"],
        "resolved_at": row["resolved_at"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "run_status": row["run_status"],
        "tool_call_id": row["tool_call_id"],
        "args_digest": row["args_digest"],
    }


def approval_status_object(row: dict[str, Any]) -> dict[str, Any]:
    """``GET /approvals/{id}/status``: what a poller needs."""
    return {
        "approval_id": row["id"],
        "status": row["status"],
        "run_id": row["run_id"],
        "resolved_at": row["resolved_at"],
        "resolved_by": row["resolved_by"],
    }
