"""Decisions on paused tool calls: typed values, and the one set of rules every channel goes through.

Every channel (the API's continue form, a signed webhook, a Slack button, an approval link, a queue
message) turns its input into :class:`Decision` values and names a :class:`Decider`; :func:`check`
then applies the same rules in the same order whatever the channel, and :func:`apply` moves the calls
through their state methods. Pure: no SQL, no HTTP; the use cases load, call these and save.

The refusal table (README, "Who may do what"):

============================  =========================================  ======
reason                        error                                      status
============================  =========================================  ======
run finished                  Conflict "run is already completed"        409
run busy (executing)          RunBusy (API continue) / kept for later    409 / 202
unknown or undecidable call   InvalidInput (continue) / NotFound /       400 / 404 /
                              AlreadyDecided                             409
call expired                  Expired                                    410
argument digest stale         DigestStale                                409
tool changed since the pause  ToolChanged                                409
decider not allowed           NotAllowed (written to the audit log)      403
replayed delivery             Replayed                                   409
============================  =========================================  ======
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from signoff.errors import (
    AlreadyDecided,
    Conflict,
    DigestStale,
    Expired,
    InvalidFields,
    InvalidInput,
    NotAllowed,
    NotFound,
    ToolChanged,
)
from signoff.identity import Principal
from signoff.inputs import parse_bool
from signoff.state import FINAL_RUN_STATUSES, CallState, Requirement, RunState, Stamp, ToolCall, args_digest
from signoff.store.base import RunEvent

if TYPE_CHECKING:
    from signoff.agent import Agent
    from signoff.tools import Tool


class Verdict(StrEnum):
    """What a decision does to its call, once read against the call's requirement."""

    APPROVE = "approve"
    REJECT = "reject"
    ANSWER = "answer"  # the human's user-input values
    QUESTIONS = "questions"  # the human's selections for the agent's questions
    RESULT = "result"  # an externally executed call's result
    EDIT = "edit"  # approved with arguments an approver changed


@dataclass(frozen=True)
class Decision:
    """One decision on one paused call, as a channel received it (validated for shape only).

    Attributes:
        tool_call_id: the stored call it is for.
        confirmed: ``True`` approves, ``False`` rejects, ``None``: not said (rejects a confirmation;
            answers a user-input call).
        note: the decider's note (on a rejection, what the model is told).
        values: the human's user-input values by field name.
        result: an external execution's result, as text.
        shown_digest: the argument digest the decider was shown, when the channel carries one.
        echoed_name / echoed_args: what an echoed tool object repeats (must match the stored call).
        edited_args: the arguments an approver changed the call to (only through the approvals
            API, bound to ``shown_digest``, for an ``editable`` tool).
    """

    tool_call_id: str
    confirmed: bool | None = None
    note: str | None = None
    values: dict[str, Any] | None = None
    result: str | None = None
    shown_digest: str | None = None
    echoed_name: str | None = None
    echoed_args: dict[str, Any] | None = None
    resolution_data: dict[str, Any] | None = None
    answers: dict[str, list[str]] | None = None
    # The complete arguments an approver wants the call to run with instead (approve with changes).
    edited_args: dict[str, Any] | None = None


@dataclass(frozen=True)
class Decider:
    """Who decides, through which channel.

    Attributes:
        principal: the verified person (``None``: an unauthenticated API route).
        actor: the name the audit log records.
        channel: ``api``, ``webhook``, ``slack``, ``link`` or ``queue``.
        vouched: a signed system channel that acts for the run's owner on tools naming no approvers.
        delivery_id: the channel's delivery id (a replay of it is refused).
        meta: where the request came from, for the audit log.
        reply_to: where to tell the decider about a decision applied later (Slack's response_url).
    """

    principal: Principal | None
    actor: str | None
    channel: str
    vouched: bool = False
    delivery_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    reply_to: str | None = None

    def document(self) -> dict[str, Any]:
        principal = self.principal
        return {
            "user_id": principal.user_id if principal else None,
            "groups": list(principal.groups) if principal and principal.groups is not None else None,
            "authenticated": principal is not None,
            "actor": self.actor,
            "channel": self.channel,
            "vouched": self.vouched,
            "delivery_id": self.delivery_id,
            "meta": self.meta,
            "reply_to": self.reply_to,
        }

    @classmethod
    def from_document(cls, data: dict[str, Any]) -> Decider:
        principal = None
        if data.get("authenticated"):
            groups = data.get("groups")
            principal = Principal(str(data.get("user_id")), None if groups is None else tuple(groups))
        return cls(
            principal,
            data.get("actor"),
            str(data.get("channel")),
            bool(data.get("vouched")),
            data.get("delivery_id"),
            dict(data.get("meta") or {}),
            data.get("reply_to"),
        )


@dataclass(frozen=True)
class Plan:
    """A checked decision: the call and exactly what will happen to it."""

    call: ToolCall
    verdict: Verdict
    note: str | None = None
    args: dict[str, Any] | None = None
    schema: list[dict[str, Any]] | None = None
    result: str | None = None
    # The values the human sent for a user-input call (the rest of ``args`` is the model's).
    supplied: dict[str, Any] | None = None
    # What an approver sent with a resolution through the approvals API.
    resolution_data: dict[str, Any] | None = None
    # The agent's questions with the human's selections.
    feedback: list[dict[str, Any]] | None = None

    @property
    def lets_it_run(self) -> bool:
        return self.verdict is not Verdict.REJECT


class DecisionRefused(NotAllowed):
    """A decider without the right to one of the decisions; ``call`` is the first such call."""

    def __init__(self, reason: str, call: ToolCall) -> None:
        super().__init__(reason)
        self.call = call


def decisions_from_form(items: list[dict[str, Any]]) -> list[Decision]:
    """The API continue's ``tools`` (minimal payload or full echo) as typed decisions.

    Raises:
        InvalidInput: a missing or repeated ``tool_call_id``, a value of the wrong type.
    """
    decisions: list[Decision] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        call_id = item.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidInput(f"tools[{index}] needs a tool_call_id")
        if call_id in seen:
            raise InvalidInput(f"tool_call_id {call_id} appears twice in tools")
        seen.add(call_id)
        note = item.get("confirmation_note")
        if note is not None and not isinstance(note, str):
            raise InvalidInput("confirmation_note must be a string")
        try:
            confirmed = parse_bool(item.get("confirmed"))
        except ValueError:
            raise InvalidInput("confirmed must be a boolean") from None
        values = None
        schema = item.get("user_input_schema")
        if schema is not None:
            if not isinstance(schema, list) or not all(isinstance(f, dict) for f in schema):
                raise InvalidInput(f"user_input_schema of {call_id} must be a list of fields")
            values = _field_values(call_id, schema)
        answers = _feedback_answers(call_id, item.get("user_feedback_schema"))
        result = item.get("result")
        if result is not None and not isinstance(result, str):
            result = json.dumps(result)
        echoed_name = item.get("tool_name")
        if echoed_name is not None and not isinstance(echoed_name, str):
            raise InvalidInput(f"tool_name of {call_id} cannot be changed by a decision")
        echoed_args = item.get("tool_args")
        if isinstance(echoed_args, str):
            try:
                echoed_args = json.loads(echoed_args)
            except json.JSONDecodeError:
                raise InvalidInput(f"tool_args of {call_id} is not valid JSON") from None
        if echoed_args is not None and not isinstance(echoed_args, dict):
            raise InvalidInput(
                f"tool_args of {call_id} differ from the paused call; a decision applies to "
                "the stored call and cannot change it"
            )
        decisions.append(
            Decision(
                call_id,
                confirmed,
                note,
                values,
                result,
                echoed_name=echoed_name,
                echoed_args=echoed_args,
                answers=answers,
            )
        )
    return decisions


def _feedback_answers(call_id: str, schema: Any) -> dict[str, list[str]] | None:
    """The selections of an echoed ``user_feedback_schema``: each question's ``selected_options``, or
    the labels of its options marked ``selected``; questions without either are left out."""
    if schema is None:
        return None
    if not isinstance(schema, list) or not all(isinstance(q, dict) for q in schema):
        raise InvalidInput(f"user_feedback_schema of {call_id} must be a list of questions")
    answers: dict[str, list[str]] = {}
    for question in schema:
        text = question.get("question")
        chosen = question.get("selected_options")
        if chosen is None and isinstance(question.get("options"), list):
            marked = [
                o.get("label")
                for o in question["options"]
                if isinstance(o, dict) and o.get("selected") is True
            ]
            chosen = marked or None
        if not isinstance(text, str) or chosen is None:
            continue
        if not isinstance(chosen, list) or not all(isinstance(label, str) for label in chosen):
            raise InvalidInput(f"selected_options of {call_id} must be a list of option labels")
        answers[text] = chosen
    return answers or None


def _field_values(call_id: str, schema: list[dict[str, Any]]) -> dict[str, Any]:
    """The values a ``user_input_schema`` carries by name; an entry without ``value`` sets nothing."""
    values: dict[str, Any] = {}
    for spec in schema:
        name = spec.get("name")
        if not isinstance(name, str):
            raise InvalidInput(f"each field in user_input_schema of {call_id} needs a name")
        if name in values:
            raise InvalidInput(f"field {name} appears twice in user_input_schema of {call_id}")
        if "value" in spec:
            values[name] = spec["value"]
    return values


def check(
    state: RunState,
    agent: Agent,
    decisions: list[Decision],
    decider: Decider,
    *,
    now: int,
    admins: tuple[str, ...] = (),
) -> list[Plan]:
    """Every rule a decision must pass, for every channel; the plans, or the first refusal.

    Nothing is changed: a refused request leaves the run as it was.

    Raises:
        Conflict: the run is finished. InvalidInput / NotFound / AlreadyDecided: a call that is not
        awaiting a decision. Expired: a call's approval window passed. DigestStale: the decider saw
        other arguments. ToolChanged: the tool changed since the pause. DecisionRefused: the
        decider may not make one of the decisions (an ``@approval(required)`` call: anyone but its
        tool's approvers, or the ``admins`` when it names none; never the requester).
    """
    if state.status in FINAL_RUN_STATUSES:
        raise Conflict(f"run is already {state.status.lower()}")
    plans = [_plan(state, agent, decision, decider, now) for decision in decisions]
    for plan in plans:
        tool = agent.tool(plan.call.tool_name)
        reason = tool and _refusal(tool, decider, state, plan, admins)
        if reason:
            raise DecisionRefused(reason, plan.call)
    return plans


def _refusal(
    tool: Tool, decider: Decider, state: RunState, plan: Plan, admins: tuple[str, ...]
) -> str | None:
    from signoff.authz import decision_refusal, edit_refusal

    if plan.verdict is Verdict.EDIT:
        reason = edit_refusal(tool, decider.principal, state.user_id)
        if reason:
            return reason
    return decision_refusal(
        tool,
        decider.principal,
        state.user_id,
        approval_type=plan.call.approval_type,
        approve=plan.lets_it_run,
        admins=admins,
        vouched=decider.vouched,
    )


def _plan(state: RunState, agent: Agent, decision: Decision, decider: Decider, now: int) -> Plan:
    call = state.tool(decision.tool_call_id)
    if call is not None and call.state == CallState.EXPIRED:
        # Expired is expired on every path, whether the sweep has marked it yet or not.
        raise Expired(f"the approval for tool call {call.tool_call_id} has expired")
    if call is None or not call.pending:
        if decider.channel == "api":
            raise InvalidInput(f"tool_call_id {decision.tool_call_id} is not a paused tool call of this run")
        if call is None:
            raise NotFound(f"No tool call {decision.tool_call_id} in run {state.run_id}")
        raise AlreadyDecided("tool call was already decided")
    _check_echo(call, decision)
    tool = agent.tool(call.tool_name)
    if tool is None or (call.schema_hash and tool.schema_hash != call.schema_hash):
        raise ToolChanged(
            f"tool {call.tool_name} changed since the run paused; the decision was not applied "
            "(start a new run to use the new version)"
        )
    if call.expired_at(now):
        raise Expired(f"the approval for tool call {call.tool_call_id} has expired")
    if decision.shown_digest is not None and decision.shown_digest != call.args_digest:
        raise DigestStale(
            f"tool call {call.tool_call_id} has other arguments than the ones this decision was made on"
        )
    plan = _edit(call, tool, decision) if decision.edited_args is not None else _verdict(call, tool, decision)
    return replace(plan, resolution_data=decision.resolution_data) if decision.resolution_data else plan


def _check_echo(call: ToolCall, decision: Decision) -> None:
    """An echoed tool object may repeat the stored name and arguments but never change them."""
    if decision.echoed_name is not None and decision.echoed_name != call.tool_name:
        raise InvalidInput(f"tool_name of {call.tool_call_id} cannot be changed by a decision")
    if (
        decision.echoed_args is not None
        and args_digest(call.tool_name, decision.echoed_args) != call.args_digest
    ):
        raise InvalidInput(
            f"tool_args of {call.tool_call_id} differ from the paused call; a decision applies to "
            "the stored call and cannot change it"
        )


def _verdict(call: ToolCall, tool: Tool, decision: Decision) -> Plan:
    if call.user_feedback_schema is not None and call.state == CallState.AWAITING_DECISION:
        if decision.confirmed is False:
            return Plan(call, Verdict.REJECT, note=decision.note)
        return _questions(call, decision)
    if call.requirement == Requirement.EXTERNAL_EXECUTION:
        if decision.result is None:
            raise InvalidInput(f"result is required for external execution tool call {call.tool_call_id}")
        return Plan(call, Verdict.RESULT, result=decision.result)
    if call.requirement == Requirement.USER_INPUT and decision.confirmed is not False:
        return _answer(call, tool, decision)
    if call.requirement == Requirement.CONFIRMATION and decision.confirmed:
        return Plan(call, Verdict.APPROVE, note=decision.note)
    return Plan(call, Verdict.REJECT, note=decision.note)


def _edit(call: ToolCall, tool: Tool, decision: Decision) -> Plan:
    """An approval with changed arguments: the complete new arguments, checked against the tool's
    signature; the same arguments as stored are a plain approval.

    Raises:
        InvalidInput: no digest to bind the edit to, a rejection, a call that does not ask for a
            confirmation. InvalidFields: arguments that do not fit the signature.
    """
    from signoff.tools import ToolArgumentsInvalid

    call_id = call.tool_call_id
    if decision.shown_digest is None:
        raise InvalidInput(
            f"args_digest is required with tool_args for tool call {call_id}: an edit is bound to the "
            "arguments it was made on"
        )
    if decision.confirmed is not True:
        raise InvalidInput(f"tool_args of {call_id} can only come with an approval")
    if call.requirement != Requirement.CONFIRMATION or call.user_feedback_schema is not None:
        raise InvalidInput(
            f"only a call awaiting a confirmation can be approved with changes; tool call {call_id} "
            f"asks for {call.requirement}"
        )
    try:
        args = tool.checked_arguments(decision.edited_args or {})
    except ToolArgumentsInvalid as exc:
        raise InvalidFields(
            [{**err, "loc": ["body", "resolution_data", "tool_args", *err["loc"]]} for err in exc.errors]
        ) from None
    if args_digest(call.tool_name, args) == call.args_digest:
        return Plan(call, Verdict.APPROVE, note=decision.note)
    return Plan(call, Verdict.EDIT, note=decision.note, args=args)


def _questions(call: ToolCall, decision: Decision) -> Plan:
    from signoff.questions import answered

    if not decision.answers:
        raise InvalidInput(
            f"user_feedback_schema with selected_options is required for tool call {call.tool_call_id}"
        )
    try:
        filled = answered(call.user_feedback_schema or [], decision.answers)
    except ValueError as exc:
        raise InvalidInput(f"user_feedback_schema of {call.tool_call_id}: {exc}") from None
    return Plan(call, Verdict.QUESTIONS, feedback=filled)


def _answer(call: ToolCall, tool: Tool, decision: Decision) -> Plan:
    """The human's values completing a user-input call's arguments.

    Only the fields the tool gives the human can be set; the model's arguments stay as stored (an
    echo may repeat them, never change them). A field that is the human's alone never takes a value
    the model suggested for it: only one the human sends.

    Raises:
        InvalidInput: no values, an unknown field, a changed model argument, a missing required value.
        InvalidFields: a value that does not fit the tool's signature.
    """
    from signoff.tools import ToolArgumentsInvalid

    call_id = call.tool_call_id
    if decision.values is None:
        raise InvalidInput(f"user_input_schema with values is required for tool call {call_id}")
    schema = [dict(f) for f in call.user_input_schema or []]
    unknown = sorted(set(decision.values) - {spec["name"] for spec in schema})
    if unknown:
        raise InvalidInput(f"user_input_schema of {call_id} has no field {', '.join(unknown)}")
    human = {f.name for f in tool.user_input_fields}
    args = dict(call.tool_args)
    supplied: dict[str, Any] = {}
    for name, value in decision.values.items():
        if name not in human:
            if _canonical(value) != _canonical(call.tool_args.get(name)):
                raise InvalidInput(
                    f"{name} of tool call {call_id} is the model's argument; a decision cannot change it "
                    f"(the human sets {', '.join(sorted(human))})"
                )
        elif value is not None:
            args[name] = supplied[name] = value
    for name in human:
        if name not in supplied and (name in tool.hidden_from_model or args.get(name) is None):
            args.pop(name, None)  # the function's default, if it has one
    missing = sorted(tool.required_arguments - set(args))
    if missing:
        raise InvalidInput(f"user_input_schema of {call_id} needs a value for {', '.join(missing)}")
    try:
        args = tool.checked_arguments(args)
    except ToolArgumentsInvalid as exc:
        raise InvalidFields(
            [
                {**err, "loc": ["body", "tools", call_id, "user_input_schema", *err["loc"]]}
                for err in exc.errors
            ]
        ) from None
    for spec in schema:
        spec["value"] = args.get(spec["name"])
    return Plan(call, Verdict.ANSWER, args=args, schema=schema, supplied=supplied)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def apply(plans: list[Plan], decider: Decider, *, now: int) -> list[RunEvent]:
    """Move each call through its state method; return the audit events of the decisions."""
    stamp = Stamp(decider.actor, decider.channel, now)
    audit = []
    for plan in plans:
        call = plan.call
        detail: dict[str, Any] = {}
        if plan.verdict is Verdict.APPROVE:
            call.approve(stamp, plan.note)
        elif plan.verdict is Verdict.EDIT:
            # Both sides of the arguments: what the model proposed, and who changed them to what.
            detail = {"proposed_args": dict(call.tool_args), "edited_by": decider.actor}
            call.approve_with_changes(stamp, plan.args or {}, plan.note)
            detail["proposed_args_digest"] = call.proposed_digest
        elif plan.verdict is Verdict.REJECT:
            call.reject(stamp, plan.note)
        elif plan.verdict is Verdict.ANSWER:
            # Both sides of the arguments: what the model proposed, and what the human added.
            detail = {"proposed_args": dict(call.tool_args), "user_input": plan.supplied or {}}
            call.answer(stamp, plan.args or {}, plan.schema or [])
            detail["proposed_args_digest"] = call.proposed_digest
        elif plan.verdict is Verdict.QUESTIONS:
            from signoff.questions import model_message

            call.answer_questions(stamp, plan.feedback or [], model_message(plan.feedback or []))
        else:
            call.supply_result(stamp, plan.result or "")
        if plan.resolution_data is not None:
            call.resolution_data = plan.resolution_data
        audit.append(
            RunEvent(
                "decision",
                decider.actor,
                decider.channel,
                {
                    "tool_call_id": call.tool_call_id,
                    "tool_name": call.tool_name,
                    "decision": "approved" if call.state in ("approved", "succeeded") else str(call.state),
                    "note": call.confirmation_note,
                    "args_digest": call.args_digest,
                    **detail,
                    **decider.meta,
                },
            )
        )
    return audit


def refusal_event(exc: DecisionRefused, decider: Decider) -> RunEvent:
    """The audit line of a refused decision (the run itself is left as it was)."""
    call = exc.call
    return RunEvent(
        "decision_refused",
        decider.actor,
        decider.channel,
        {
            "tool_call_id": call.tool_call_id,
            "tool_name": call.tool_name,
            "reason": str(exc.detail),
            "args_digest": call.args_digest,
            **decider.meta,
        },
    )
