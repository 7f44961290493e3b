"""The OpenAPI 3.1 description of the runs API, served at /openapi.json."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from signoff.state import RunStatus
from signoff.wire import RUN_KEYS, TOOL_KEYS

# What the schema says of some run keys (the keys themselves come from signoff.wire).
_RUN_KEY_SCHEMAS: dict[str, Any] = {
    "run_id": {"type": "string"},
    "agent_id": {"type": "string"},
    "session_id": {"type": "string"},
    "status": {"enum": [str(status) for status in RunStatus]},
    "tools": {"type": "array", "items": {"$ref": "#/components/schemas/Tool"}},
    "requirements": {"type": "array"},
}

_FORM = ("multipart/form-data", "application/x-www-form-urlencoded", "application/json")


def _form(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"required": True, "content": {media: {"schema": schema} for media in _FORM}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): {"$ref": f"#/components/responses/E{code}"} for code in codes}


def _run_ok() -> dict[str, Any]:
    return {
        "description": "The run (or a text/event-stream of run events when stream=true)",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Run"}},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    }


def _param(
    name: str, where: str = "path", required: bool = True, description: str = "", **schema: Any
) -> dict[str, Any]:
    param = {"name": name, "in": where, "required": required, "schema": {"type": "string", **schema}}
    if description:
        param["description"] = description
    return param


def _approvals_paths() -> dict[str, Any]:
    approval_id = _param("approval_id")
    one = {
        "description": "An approval record (AgentOS's ApprovalResponse)",
        "content": {"application/json": {"schema": {}}},
    }
    query = [
        _param("status", "query", False, enum=["pending", "approved", "rejected", "expired", "cancelled"]),
        _param("approval_type", "query", False, enum=["required", "audit"]),
        _param("pause_type", "query", False, enum=["confirmation", "user_input", "external_execution"]),
        _param("agent_id", "query", False),
        _param("user_id", "query", False),
        _param("run_id", "query", False),
        _param("tool_name", "query", False),
        _param(
            "decidable",
            "query",
            False,
            description="true: only the pending records the caller may decide now (the inbox)",
            enum=["true", "false"],
        ),
    ]
    paging = [
        _param("limit", "query", False, description="1-1000, default 100"),
        _param("page", "query", False),
    ]
    resolve = {
        "status": {"enum": ["approved", "rejected"]},
        "resolution_data": {
            "type": "object",
            "description": (
                "note, args_digest (the arguments decided on), user_input {field: value}, answers "
                "{question: [labels]}, tool_args (approve with changes: an editable tool, an approver "
                "who is not the requester, with args_digest; 422 when they do not fit the signature)"
            ),
        },
    }
    return {
        "/approvals": {
            "get": {
                "summary": "Approval records the caller may see, newest first ({data, meta})",
                "parameters": query + paging,
                "responses": {"200": {"description": "A page of records"}, **_errors(401, 422)},
            },
        },
        "/approvals/count": {
            "get": {
                "summary": "{count, latest_at}: pending records the caller may see (the list's filters), "
                "and when the newest paused",
                "parameters": [p for p in query if p["name"] != "status"],
                "responses": {"200": {"description": "{count}"}, **_errors(401, 422)},
            },
        },
        "/approvals/{approval_id}/context": {
            "get": {
                "summary": "What led to the call: request, conversation, session history, references",
                "parameters": [approval_id],
                "responses": {
                    "200": {"description": "{approval_id, run_id, request, history, messages, references}"},
                    **_errors(404),
                },
            },
        },
        "/approvals/{approval_id}": {
            "get": {
                "summary": "One record",
                "parameters": [approval_id],
                "responses": {"200": one, **_errors(404)},
            },
            "delete": {
                "summary": "Remove a resolved record from the list (pending: 409)",
                "parameters": [approval_id],
                "responses": {"204": {"description": "Removed"}, **_errors(404, 409)},
            },
        },
        "/approvals/{approval_id}/status": {
            "get": {
                "summary": "{approval_id, status, run_id, resolved_at, resolved_by}",
                "parameters": [approval_id],
                "responses": {"200": {"description": "The record's status"}, **_errors(404)},
            },
        },
        "/approvals/{approval_id}/resolve": {
            "post": {
                "summary": "Approve or reject the record's call, then resume the run (202: kept, it runs)",
                "parameters": [approval_id],
                "requestBody": _form(resolve, ["status"]),
                "responses": {
                    "200": one,
                    "202": {"description": "Kept: the run is executing; applied when it is free"},
                    **_errors(400, 403, 404, 409, 410, 422),
                },
            },
        },
    }


def _knowledge_paths() -> dict[str, Any]:
    kb = _param("kb", description="knowledge base name")
    document = {
        "text": {"type": "string", "description": "the document (or send a file in a multipart form)"},
        "document_id": {"type": "string", "description": "posting the same id again replaces it"},
        "title": {"type": "string"},
        "metadata": {"type": "object", "description": "stored with every chunk; filters match it"},
        "format": {"enum": ["markdown", "text"]},
    }
    documents = {"description": "A page of documents", "content": {"application/json": {"schema": {}}}}
    return {
        "/knowledge/{kb}/documents": {
            "post": {
                "summary": "Add or replace a document (chunked and embedded; large ones by the queue)",
                "parameters": [kb],
                "requestBody": _form(document, ["text"]),
                "responses": {
                    "200": {"description": "Replaced, or unchanged"},
                    "201": {"description": "Created"},
                    "202": {"description": "Queued: the resume worker ingests it"},
                    **_errors(400, 403, 413, 422),
                },
            },
            "get": {
                "summary": "List documents",
                "parameters": [kb, _param("page", "query", False), _param("limit", "query", False)],
                "responses": {"200": documents, **_errors(422)},
            },
        },
        "/knowledge/{kb}/documents/{document_id}": {
            "delete": {
                "summary": "Delete a document and its chunks",
                "parameters": [kb, _param("document_id")],
                "responses": {"200": {"description": "Deleted"}, **_errors(403, 404)},
            },
        },
        "/knowledge/{kb}/search": {
            "post": {
                "summary": "Search a knowledge base (what the agents' search_knowledge_base tool does)",
                "parameters": [kb],
                "requestBody": _form(
                    {
                        "query": {"type": "string", "minLength": 1},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 5},
                        "filters": {"type": "object", "description": "JSON containment on metadata"},
                    },
                    ["query"],
                ),
                "responses": {"200": {"description": "Chunks, best first"}, **_errors(400, 422)},
            },
        },
    }


def _json_ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema or {}}}}


def _agentos_paths() -> dict[str, Any]:
    """Discovery, health and sessions: the rest of the AgentOS surface its clients call."""
    session = _param("session_id")
    owner_q = _param("user_id", "query", required=False, description="must be the owner when given")
    type_q = _param("type", "query", required=False, description="agent (the only kind Signoff has)")
    session_detail = _json_ok("The session (AgentOS's AgentSessionDetailSchema)")
    return {
        "/health": {
            "get": {
                "summary": "Liveness (public; reads nothing)",
                "responses": {"200": _json_ok("{status, instantiated_at}")},
            },
        },
        "/config": {
            "get": {
                "summary": "The deployment: its agents (AgentOS's ConfigResponse)",
                "responses": {"200": _json_ok("os_id, databases, agents, teams, workflows, interfaces")},
            },
        },
        "/agents": {
            "get": {
                "summary": "The agents, each with its tools and their kinds",
                "responses": {"200": _json_ok("Agents (AgentOS's AgentResponse)", {"type": "array"})},
            },
        },
        "/agents/{agent_id}": {
            "get": {
                "summary": "An agent; tools with confirmation, user input, external execution, approvers",
                "parameters": [_param("agent_id")],
                "responses": {"200": _json_ok("The agent (AgentOS's AgentResponse)"), **_errors(404)},
            },
        },
        "/sessions/{session_id}": {
            "get": {
                "summary": "One session with its chat history",
                "parameters": [session, owner_q, type_q],
                "responses": {"200": session_detail, **_errors(404, 422)},
            },
            "delete": {
                "summary": "Delete a session and its runs: none of its paused calls can run afterwards",
                "parameters": [session, owner_q],
                "responses": {
                    "204": {"description": "Deleted"},
                    **_errors(404, 409),  # 409 with Retry-After: a run is executing, nothing was deleted
                },
            },
        },
        "/sessions/{session_id}/rename": {
            "post": {
                "summary": "Rename a session",
                "parameters": [session, owner_q, type_q],
                "requestBody": _form(
                    {"session_name": {"type": "string", "minLength": 1, "maxLength": 500}}, ["session_name"]
                ),
                "responses": {"200": session_detail, **_errors(404, 413, 422)},
            },
        },
        "/sessions/{session_id}/runs/{run_id}": {
            "get": {
                "summary": "One run of a session",
                "parameters": [session, _param("run_id"), owner_q, type_q],
                "responses": {"200": _run_ok(), **_errors(404, 422)},
            },
        },
    }


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    flag = {"type": "boolean", "default": False}
    agent, run = _param("agent_id"), _param("run_id")
    session_q = _param("session_id", "query", required=False)
    run_list = {
        "description": "Runs",
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Run"}}}
        },
    }
    tool_props = {key: {} for key in TOOL_KEYS}
    detail = {"type": "object", "properties": {"detail": {}}, "required": ["detail"]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Signoff runs API",
            "version": "1.0.0",
            "description": "Agno AgentOS-compatible agent runs with human sign-off, and knowledge search.",
        },
        "paths": {
            "/agents/{agent_id}/runs": {
                "post": {
                    "summary": "Start a run",
                    "parameters": [agent],
                    "requestBody": _form(
                        {
                            "message": {"type": "string", "minLength": 1},
                            "session_id": {"type": "string"},
                            "user_id": {"type": "string"},
                            "stream": flag,
                            "background": flag,
                        },
                        ["message"],
                    ),
                    "responses": {"200": _run_ok(), **_errors(404, 413, 422)},
                },
                "get": {
                    "summary": "List runs",
                    "parameters": [agent, session_q, _param("status", "query", required=False)],
                    "responses": {"200": run_list, **_errors(404, 422)},
                },
            },
            "/agents/{agent_id}/runs/{run_id}": {
                "get": {
                    "summary": "Read a run",
                    "parameters": [agent, run, session_q],
                    "responses": {"200": _run_ok(), **_errors(404)},
                },
            },
            "/agents/{agent_id}/runs/{run_id}/continue": {
                "post": {
                    "summary": "Continue a paused run with tool decisions",
                    "parameters": [agent, run],
                    "requestBody": _form(
                        {
                            "tools": {"type": "string", "description": "JSON array of tool decisions"},
                            "session_id": {"type": "string"},
                            "user_id": {"type": "string"},
                            "stream": flag,
                            "background": flag,
                        },
                        ["session_id"],
                    ),
                    "responses": {"200": _run_ok(), **_errors(400, 404, 409, 413, 422)},
                },
            },
            "/agents/{agent_id}/runs/{run_id}/cancel": {
                "post": {
                    "summary": "Cancel a paused or pending run",
                    "parameters": [agent, run],
                    "responses": {"200": _run_ok(), **_errors(404, 409)},
                },
            },
            "/agents/{agent_id}/runs/{run_id}/events": {
                "get": {
                    "summary": "The run's audit trail",
                    "parameters": [agent, run, session_q],
                    "responses": {"200": {"description": "Audit events, oldest first"}, **_errors(404)},
                },
            },
            "/approvals/webhook": {
                "post": {
                    "summary": "Decide a paused tool call from another system (HMAC-signed)",
                    "parameters": [_param("Signoff-Signature", "header", description="t=<unix>,v1=<hex>")],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "event_id": {"type": "string"},
                                        "decision": {"enum": ["approve", "reject"]},
                                        "approver": {"type": "string"},
                                        "approver_groups": {"type": "array"},
                                        "note": {"type": "string"},
                                        "token": {"type": "string"},
                                        "run_id": {"type": "string"},
                                        "tool_call_id": {"type": "string"},
                                    },
                                    "required": ["event_id", "decision", "approver"],
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {"description": "The decision recorded"},
                        **_errors(400, 401, 403, 404, 409, 410, 422),
                    },
                },
            },
            "/approvals/slack": {
                "post": {
                    "summary": "Slack interactivity (signed by Slack)",
                    "responses": {"200": {"description": "Replacement message"}, **_errors(400, 401, 409)},
                },
            },
            "/approve/{token}": {
                "get": {
                    "summary": "Approval link: a confirm page (never decides)",
                    "parameters": [_param("token")],
                    "responses": {"200": {"description": "HTML page"}, **_errors(404, 410)},
                },
                "post": {
                    "summary": "Approval link: apply its single decision",
                    "parameters": [_param("token")],
                    "responses": {"200": {"description": "HTML page"}, **_errors(404, 409, 410)},
                },
            },
            "/inbox": {
                "get": {
                    "summary": "The approver's inbox: a public page shell (no data; signs in, then "
                    "calls the approvals API)",
                    "responses": {"200": {"description": "HTML page"}},
                },
            },
            "/inbox/{asset}": {
                "get": {
                    "summary": "The inbox's script and style sheet (inbox.js, inbox.css)",
                    "parameters": [_param("asset")],
                    "responses": {"200": {"description": "The file"}, **_errors(404)},
                },
            },
            **_approvals_paths(),
            **_knowledge_paths(),
            **_agentos_paths(),
            "/sessions": {
                "get": {
                    "summary": "List sessions",
                    "parameters": [
                        _param("user_id", "query", required=False),
                        _param("page", "query", required=False),
                        _param("limit", "query", required=False),
                    ],
                    "responses": {"200": {"description": "A page of sessions"}, **_errors(422)},
                },
            },
            "/sessions/{session_id}/runs": {
                "get": {
                    "summary": "Runs of a session",
                    "parameters": [_param("session_id")],
                    "responses": {"200": run_list, **_errors(404)},
                },
            },
        },
        "components": {
            "schemas": {
                "Tool": {"type": "object", "properties": tool_props, "required": list(TOOL_KEYS)},
                "Run": {
                    "type": "object",
                    "properties": {key: _RUN_KEY_SCHEMAS.get(key, {}) for key in RUN_KEYS},
                    "required": list(RUN_KEYS),
                },
            },
            "responses": {
                f"E{code}": {"description": text, "content": {"application/json": {"schema": detail}}}
                for code, text in (
                    (400, "Bad request"),
                    (401, "Bad or missing signature"),
                    (403, "Not allowed"),
                    (404, "Not found"),
                    (410, "Gone"),
                    (409, "Conflict"),
                    (413, "Body too large"),
                    (422, "Validation error"),
                )
            },
        },
    }
