"""The objects Signoff sends: a run and its tools as CONTRACT.md shapes them, a pause as every
channel announces it, a decision as an outside sender learns of it, and the discovery and session
objects of AgentOS (``/config``, ``/agents``, ``/sessions/{session_id}``) as Agno's client parses
them. HTTP responses, pause notifications and the OpenAPI document all take them from here."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from signoff.state import PUBLIC_TOOL_KEYS, RunState, ToolCall

if TYPE_CHECKING:
    from signoff.agent import Agent
    from signoff.service.sessions import SessionView
    from signoff.tools import Tool

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
            "model_latency_ms": state.metrics.model_latency_ms,
            "stop_reason": state.metrics.stop_reason,
        },
        "messages": state.messages,
        "tools": [tool_object(t) for t in state.tools],
        "requirements": [requirement_object(t) for t in state.pending_tools],
        "input": {"input_content": state.input_content},
        "references": state.references,
    }
    return run


# How much of the request and of the references a pause notification carries (the inbox and the
# context route have all of it).
REQUEST_CHARS = 2000
REFERENCES_SHOWN = 10
EXCERPT_CHARS = 300


def _reference_summary(ref: dict[str, Any]) -> dict[str, Any]:
    """A reference as notifications carry it: where it comes from and the start of the passage."""
    keys = ("kb", "document_id", "chunk_index", "title", "score", "tool_call_id")
    summary = {key: ref[key] for key in keys if ref.get(key) is not None}
    excerpt = ref.get("excerpt") or ref.get("content")
    if isinstance(excerpt, str):
        summary["excerpt"] = excerpt[:EXCERPT_CHARS]
    return summary


def paused_detail(state: RunState, links: dict[str, dict[str, str]]) -> dict[str, Any]:
    """What every channel says about a pause: the run and each pending call with its links."""
    return {
        "run_id": state.run_id,
        "agent_id": state.agent_id,
        "agent_name": state.agent_name,
        "session_id": state.session_id,
        "user_id": state.user_id,
        "content": state.content,
        # What the approver needs beside the call: what the user asked, and what the agent read.
        "request": state.input_content[:REQUEST_CHARS],
        "references": [_reference_summary(ref) for ref in state.references[:REFERENCES_SHOWN]],
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
        # Signoff's, for an approver's inbox: the start of the user's request, what the human is
        # asked, and what the caller may do with the record now.
        "request": row.get("request"),
        "user_input_schema": (row.get("asks") or {}).get("user_input_schema"),
        "user_feedback_schema": (row.get("asks") or {}).get("user_feedback_schema"),
        "decidable": row.get("decidable", False),
        "editable": row.get("editable", False),
    }


def approval_context_object(row: dict[str, Any]) -> dict[str, Any]:
    """``GET /approvals/{id}/context``: what led to the call, loaded when an approver opens it.

    ``messages`` are this run's conversation (user, assistant with the calls it proposed, tool
    results); ``history`` the session's earlier runs (request and answer); ``references`` what the
    run's tools read (knowledge passages).
    """
    messages = []
    for message in row["messages"] or []:
        item: dict[str, Any] = {"role": message.get("role"), "content": message.get("content")}
        if message.get("tool_calls"):
            item["tool_calls"] = [_proposed_call(call) for call in message["tool_calls"]]
        if message.get("role") == "tool":
            item["tool_call_id"] = message.get("tool_call_id")
        messages.append(item)
    return {
        "approval_id": row["id"],
        "run_id": row["run_id"],
        "request": row["request"],
        "history": row["history"],
        "messages": messages,
        "references": row["references"],
    }


def _proposed_call(call: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions tool call as the inbox shows it (the arguments parsed when they are JSON)."""
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):
            arguments = json.loads(arguments)
    return {"tool_call_id": call.get("id"), "tool_name": function.get("name"), "tool_args": arguments}


def approval_status_object(row: dict[str, Any]) -> dict[str, Any]:
    """``GET /approvals/{id}/status``: what a poller needs."""
    return {
        "approval_id": row["id"],
        "status": row["status"],
        "run_id": row["run_id"],
        "resolved_at": row["resolved_at"],
        "resolved_by": row["resolved_by"],
    }


# ---------------------------------------------------------------------------- discovery and sessions
# AgentOS names the deployment and the database its components use; Signoff has one of each.
OS_ID = "signoff"
DATABASE_ID = "signoff"


def _present(body: dict[str, Any]) -> dict[str, Any]:
    """Without the ``null`` keys, as AgentOS answers (``response_model_exclude_none``)."""
    return {key: value for key, value in body.items() if value is not None}


def health_object(started_at: float) -> dict[str, Any]:
    """``GET /health``: AgentOS's ``HealthResponse`` (``instantiated_at``: this container's start)."""
    return {"status": "ok", "instantiated_at": iso(started_at)}


def model_object(agent: Agent) -> dict[str, Any]:
    """The agent's model, readable as both of Agno's model shapes: ``{id, provider}`` (summaries)
    and ``{model, provider}`` (``AgentResponse``)."""
    from signoff.models.registry import parse_model

    ref = parse_model(agent.model)
    return {"id": ref.id, "model": ref.id, "provider": ref.provider.recorded_name}


def agent_summary(agent: Agent) -> dict[str, Any]:
    """An agent as ``/config`` lists it (Agno's ``AgentSummaryResponse``)."""
    return _present(
        {
            "id": agent.id,
            "name": agent.name,
            "description": agent.description,
            "db_id": DATABASE_ID,
            "model": model_object(agent),
        }
    )


def agent_tool_object(tool: Tool, agent: Agent) -> dict[str, Any]:
    """A tool as ``GET /agents/{agent_id}`` lists it: Agno's ``Function.to_dict`` keys (``name``,
    ``description``, ``parameters`` as the model sees them, ``requires_confirmation``,
    ``external_execution``) with what a human must supply and who may decide, always present."""
    body: dict[str, Any] = {
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters,
        "requires_confirmation": tool.requires_confirmation,
        "requires_user_input": tool.requires_user_input,
        "external_execution": tool.external_execution,
        "approvers": list(tool.approvers),
        "allow_self_approval": tool.allow_self_approval,
        "approval_type": tool.approval_type,
        "editable": tool.editable,
    }
    if tool.asks_questions:
        body["asks_questions"] = True
    if tool.requires_user_input:
        body["user_input_fields"] = [field.name for field in tool.user_input_fields]
    if tool.requirement is not None:
        body["approval_ttl_seconds"] = tool.approval_ttl_seconds or agent.approval_ttl_seconds
    return body


def agent_object(agent: Agent, history_runs: int) -> dict[str, Any]:
    """An agent as ``GET /agents`` and ``GET /agents/{agent_id}`` answer (Agno's ``AgentResponse``),
    with its tools and their kinds under ``tools.tools``."""
    instructions = [agent.instructions] if isinstance(agent.instructions, str) else list(agent.instructions)
    return _present(
        {
            "id": agent.id,
            "name": agent.name,
            "db_id": DATABASE_ID,
            "description": agent.description,
            "model": model_object(agent),
            "tools": {"tools": [agent_tool_object(tool, agent) for tool in agent.tools]}
            if agent.tools
            else None,
            "sessions": {"add_history_to_context": history_runs > 0, "num_history_runs": history_runs},
            "system_message": _present(
                {
                    "description": agent.description,
                    "instructions": instructions or None,
                    "markdown": agent.markdown or None,
                }
            )
            or None,
        }
    )


def config_object(agents: list[Agent]) -> dict[str, Any]:
    """``GET /config`` (Agno's ``ConfigResponse``): the agents, no teams, workflows or interfaces."""
    models = {(m["id"], m["provider"]): m for m in (model_object(agent) for agent in agents)}
    return {
        "os_id": OS_ID,
        "name": "Signoff",
        "description": "Agent runs that pause for a human's sign-off",
        "available_models": [{"id": model_id, "provider": provider} for model_id, provider in models],
        "os_database": DATABASE_ID,
        "databases": [DATABASE_ID],
        "session": {
            "dbs": [
                {"db_id": DATABASE_ID, "domain_config": {"display_name": "Sessions"}, "tables": ["sessions"]}
            ]
        },
        "agents": [agent_summary(agent) for agent in agents],
        "teams": [],
        "workflows": [],
        "interfaces": [],
    }


def session_run_object(state: RunState) -> dict[str, Any]:
    """A run as the session routes answer it: the run object plus the keys of Agno's ``RunSchema``
    (``run_input``, ``run_response_format``), so both of Agno's run parsers read it."""
    return {**run_object(state), "run_input": state.input_content, "run_response_format": "text"}


def session_object(view: SessionView) -> dict[str, Any]:
    """A session as ``GET /sessions/{session_id}`` and rename answer (Agno's
    ``AgentSessionDetailSchema``): its name, its agent, token totals and the chat history."""
    record, runs, agent = view.record, view.runs, view.agent
    tokens = {
        key: sum(getattr(run.metrics, key) or 0 for run in runs)
        for key in ("input_tokens", "output_tokens", "total_tokens")
    }
    agent_data = (
        {"agent_id": agent.id, "name": agent.name, "model": model_object(agent)}
        if agent is not None
        else None
    )
    return _present(
        {
            "user_id": record.user_id,
            "agent_session_id": record.session_id,
            "session_id": record.session_id,
            "session_name": record.session_name or (runs[0].input_content if runs else None) or "",
            "agent_id": record.agent_id,
            "total_tokens": tokens["total_tokens"],
            "agent_data": agent_data,
            "metrics": tokens,
            "chat_history": [
                message
                for run in runs
                for message in run.messages
                if message.get("role") in ("user", "assistant")
            ],
            "created_at": iso(record.created_at),
            "updated_at": iso(record.updated_at),
        }
    )
