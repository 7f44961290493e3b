"""The run loop: model turn → tool calls → pause, complete or go round again. No SQL, no HTTP."""

from __future__ import annotations

import enum
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from signoff.agent import Agent
from signoff.models.base import Deadline, Model, ModelFailure, ModelResponse, unstorable_answer
from signoff.state import PAUSE_CONTENT, CallState, Requirement, RunState, ToolCall, args_digest
from signoff.tools import Tool, ToolArgumentsInvalid

Checkpoint = Callable[[RunState], None]
Emit = Callable[..., None]


class Step(enum.Enum):
    """How an invocation's share of a run ended."""

    COMPLETED = "completed"
    PAUSED = "paused"
    HANDED_OFF = "handed_off"  # out of time: saved RUNNING, to be resumed by another invocation
    FAILED = "failed"


@dataclass
class RunContext:
    """What one pass of the loop needs besides the state.

    Attributes:
        agent: the agent definition (tools, instructions).
        model: the model client.
        history: earlier runs' messages of the session, oldest first.
        deadline: the invocation's remaining time.
        max_turns: model turns allowed in the run.
        checkpoint: saves the state; called before a tool executes and before each model call
            that follows tool results, so a crash loses no result and is visible.
        emit: receives stream events (``emit("ToolCallStarted", tool=...)``).
    """

    agent: Agent
    model: Model
    history: list[dict[str, Any]]
    deadline: Deadline
    max_turns: int
    checkpoint: Checkpoint
    emit: Emit


def advance(state: RunState, ctx: RunContext) -> Step:
    """Run until the run completes, pauses for a human, fails, or runs out of time."""
    while True:
        open_calls = state.open_turn()
        if open_calls:
            changed = _execute_ready(state, open_calls, ctx)
            pending = [c for c in open_calls if c.pending]
            if pending:
                return _pause(state, pending, ctx)
            _answer_turn(state, open_calls)
            stop = [c for c in open_calls if c.stop_after_tool_call]
            if stop:
                state.content = "\n".join(c.result or "" for c in stop)
                return _complete(state, ctx)
            if changed:
                # Results exist only in memory until saved. Calls decided without running (rejected,
                # expired, answered by the client) were saved by the claim; their tool messages
                # follow from that state, so they need no save of their own.
                ctx.checkpoint(state)
        if _turns_taken(state) >= ctx.max_turns:
            return _fail(state, f"the run reached its limit of {ctx.max_turns} model turns", ctx)
        if not ctx.deadline.allows():
            return Step.HANDED_OFF
        try:
            response = _call_model(state, ctx)
        except ModelFailure as exc:
            if not ctx.deadline.allows():
                # The model ran out of our time, not out of answers: hand off, don't fail.
                return Step.HANDED_OFF
            return _fail(state, str(exc.detail), ctx)
        unstorable = unstorable_answer(response)
        if unstorable:
            # Model output, not the client's fault; a provider retries such answers, this is the end.
            return _fail(state, f"the model's answer could not be stored: {unstorable}", ctx)
        _record_turn(state, response, ctx)
        if not response.tool_calls:
            state.content = response.content or ""
            if state.content:
                ctx.emit("RunContent", content=state.content, content_type="str")
            return _complete(state, ctx)


def _turns_taken(state: RunState) -> int:
    return sum(1 for m in state.messages if m.get("role") == "assistant")


def _call_model(state: RunState, ctx: RunContext) -> ModelResponse:
    messages: list[dict[str, Any]] = []
    if ctx.agent.system_message:
        messages.append({"role": "system", "content": ctx.agent.system_message})
    messages.extend(ctx.history)
    messages.extend(state.messages)
    ctx.emit("ModelRequestStarted", model=ctx.model.id, model_provider=ctx.model.provider)
    started = time.perf_counter()
    response = ctx.model.request(messages, ctx.agent.tool_schemas, ctx.deadline)
    state.metrics.add_usage(response.input_tokens, response.output_tokens)
    state.metrics.stop_reason = response.stop_reason
    if response.latency_ms is not None:
        state.metrics.model_latency_ms = round(state.metrics.model_latency_ms + response.latency_ms, 3)
    ctx.emit(
        "ModelRequestCompleted",
        model=ctx.model.id,
        model_provider=ctx.model.provider,
        input_tokens=response.input_tokens,
        output_tokens=response.output_tokens,
        time_to_first_token=round(time.perf_counter() - started, 4),
        stop_reason=response.stop_reason,
        provider_latency_ms=response.latency_ms,
    )
    return response


def _record_turn(state: RunState, response: ModelResponse, ctx: RunContext) -> None:
    message: dict[str, Any] = {"role": "assistant", "content": response.content}
    taken = {t.tool_call_id for t in state.tools}
    calls = []
    for request in response.tool_calls:
        # Some OpenAI-compatible servers reuse ids across turns; ours must be unique per run.
        call_id, n = request.id or "call", 1
        while call_id in taken:
            n += 1
            call_id = f"{request.id}_{n}"
        taken.add(call_id)
        calls.append((call_id, request))
    if calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": r.name, "arguments": r.arguments}}
            for call_id, r in calls
        ]
    state.messages.append(message)
    for call_id, request in calls:
        state.tools.append(_new_call(ctx.agent, call_id, request.name, json.loads(request.arguments)))


def _new_call(agent: Agent, call_id: str, name: str, raw_args: dict[str, Any]) -> ToolCall:
    tool = agent.tool(name)
    call = ToolCall(tool_call_id=call_id, tool_name=name, tool_args=raw_args)
    call.args_digest = args_digest(name, raw_args)
    if tool is None:
        call.refuse(f"Error: there is no tool named {name!r}")
        return call
    call.schema_hash = tool.schema_hash
    call.stop_after_tool_call = tool.stop_after_tool_call or None
    try:
        # Only what the model sent is checked: an argument the human may set can be missing.
        tool.validate_proposal(raw_args)
    except ToolArgumentsInvalid as exc:
        # Goes back to the model as a tool error; a human is never asked to approve a call
        # that could not run anyway.
        call.refuse(f"Error: {exc}")
        return call
    questions = None
    if tool.asks_questions:
        from signoff.questions import feedback_schema

        try:
            questions = feedback_schema(raw_args)
        except ToolArgumentsInvalid as exc:
            call.refuse(f"Error: {exc}")
            return call
    if tool.requirement is None:
        call.ready()
        return call
    call.await_decision(Requirement(tool.requirement))
    call.approval_type = tool.approval_type
    call.approvers = list(tool.approvers) or None
    if tool.requirement != "external_execution" or tool.approval_type:
        # A call that waits on a person is an approval record (the approvals API's id).
        call.approval_id = str(uuid.uuid4())
    if tool.requirement == "confirmation":
        call.requires_confirmation = True
    elif tool.asks_questions:
        call.requires_user_input = True
        call.user_feedback_schema = questions
    elif tool.requirement == "user_input":
        call.requires_user_input = True
        call.requires_confirmation = tool.requires_confirmation or None
        # Every argument, the model's values filled in (as Agno, also a value it sent for a field
        # that is the human's alone: shown as a suggestion, used only if the human sends it back).
        call.user_input_schema = [
            {
                "name": f.name,
                "field_type": f.field_type,
                "description": f.description,
                "value": raw_args.get(f.name),
            }
            for f in tool.user_input_schema
        ]
    else:
        call.external_execution_required = True
    return call


def _execute_ready(state: RunState, calls: list[ToolCall], ctx: RunContext) -> bool:
    """Run the calls that are approved or claimed for execution; whether any call changed."""
    fresh = [c for c in calls if c.state == CallState.APPROVED]
    changed = False
    if fresh:
        # Record that these are about to run before they do: a crash mid-tool then shows as
        # `executing` and is never silently re-run.
        for call in fresh:
            call.start_executing()
        ctx.checkpoint(state)
    for call in calls:
        if call.state == CallState.EXECUTING:
            tool = ctx.agent.tool(call.tool_name)
            changed = True
            if tool is None:  # removed from the agent since the pause
                call.fail(f"Error: the tool {call.tool_name!r} no longer exists")
                continue
            if call.decision_digest and call.decision_digest != args_digest(call.tool_name, call.tool_args):
                # Fail closed: what would run is not what the human decided on.
                call.fail("Error: the arguments changed after the decision")
                continue
            _execute(state, call, tool, ctx)
    return changed


def _execute(state: RunState, call: ToolCall, tool: Tool, ctx: RunContext) -> None:
    ctx.emit("ToolCallStarted", tool=call.public())
    started = time.perf_counter()
    try:
        output = tool.execute(call.tool_args)
        call.succeed(output.content)
        state.references.extend({**ref, "tool_call_id": call.tool_call_id} for ref in output.references)
    except ToolArgumentsInvalid as exc:
        call.fail(f"Error: {exc}")
    except Exception as exc:  # a tool's own failure is the model's to handle, not a crash
        call.fail(f"Error: {type(exc).__name__}: {exc}")
    call.metrics = {"duration": round(time.perf_counter() - started, 6)}
    ctx.emit("ToolCallError" if call.tool_call_error else "ToolCallCompleted", tool=call.public())


def _answer_turn(state: RunState, calls: list[ToolCall]) -> None:
    for call in calls:
        content = call.model_message if call.model_message is not None else (call.result or "")
        message = {"role": "tool", "tool_call_id": call.tool_call_id, "content": content}
        if call.tool_call_error:
            # Provider-neutral: a provider that can say a result is an error (Bedrock's
            # toolResult.status) says so; the others leave the key out of what they send.
            message["is_error"] = True
        state.messages.append(message)


def _pause(state: RunState, pending: list[ToolCall], ctx: RunContext) -> Step:
    last = next((m for m in reversed(state.messages) if m.get("role") == "assistant"), {})
    state.pause(last.get("content") or PAUSE_CONTENT[pending[0].requirement or "confirmation"])
    ctx.emit("RunPaused", content=state.content)
    return Step.PAUSED


def _complete(state: RunState, ctx: RunContext) -> Step:
    state.complete()
    ctx.emit("RunCompleted", content=state.content, content_type="str")
    return Step.COMPLETED


def _fail(state: RunState, reason: str, ctx: RunContext) -> Step:
    state.fail(reason)
    ctx.emit("RunError", content=reason)
    return Step.FAILED
