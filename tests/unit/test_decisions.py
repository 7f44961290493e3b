"""The decision rules and the tool call's state machine, without a database: one rule set for all."""

from __future__ import annotations

import pytest

from signoff import Agent, tool
from signoff.decisions import Decider, Decision, DecisionRefused, Verdict, apply, check, decisions_from_form
from signoff.errors import (
    AlreadyDecided,
    Conflict,
    DigestStale,
    Expired,
    InvalidInput,
    NotFound,
    ToolChanged,
)
from signoff.identity import Principal
from signoff.state import (
    CALL_TRANSITIONS,
    CallState,
    IllegalTransition,
    Requirement,
    RunState,
    RunStatus,
    Stamp,
    ToolCall,
    args_digest,
)

NOW = 1_800_000_000


@tool(requires_confirmation=True)
def archive(name: str) -> str:
    """Archive a thing.

    Args:
        name: The thing
    """
    return f"archived {name}"


@tool(requires_confirmation=True, approvers=["finance"], allow_self_approval=False)
def wire(amount: int) -> str:
    """Wire money.

    Args:
        amount: Cents
    """
    return f"wired {amount}"


@tool(requires_user_input=True, user_input_fields=["room"])
def book(title: str, room: str) -> str:
    """Book a room.

    Args:
        title: Title
        room: Room
    """
    return f"{title} in {room}"


@tool(external_execution=True)
def charge(amount: int) -> str:
    """Charge a card.

    Args:
        amount: Cents
    """
    raise AssertionError


AGENT = Agent(id="a", name="A", instructions=["x"], tools=[archive, wire, book, charge])


def _call(
    name: str, args: dict, requirement: Requirement, *, call_id: str | None = None, **extra
) -> ToolCall:
    call = ToolCall(tool_call_id=call_id or f"call_{name}", tool_name=name, tool_args=args, **extra)
    call.args_digest = args_digest(name, args)
    call.schema_hash = AGENT.tool(name).schema_hash
    call.await_decision(requirement)
    return call


def _state(*calls: ToolCall, owner: str | None = "alice", status: RunStatus = RunStatus.PAUSED) -> RunState:
    return RunState(
        run_id="r1",
        agent_id="a",
        agent_name="A",
        agent_version="v",
        session_id="s",
        user_id=owner,
        status=status,
        input_content="hi",
        model="m",
        tools=list(calls),
    )


API_ALICE = Decider(Principal("alice"), "alice", "api")
WEBHOOK = Decider(Principal("ops-bot"), "ops-bot", "webhook", vouched=True)


# ------------------------------------------------------------------------------- the call's machine


def test_every_state_has_a_row_in_the_transition_table():
    assert set(CALL_TRANSITIONS) == set(CallState)


def test_a_decided_call_cannot_be_decided_again():
    call = _call("archive", {"name": "x"}, Requirement.CONFIRMATION)
    call.approve(Stamp("alice", "api", NOW))
    with pytest.raises(IllegalTransition):
        call.reject(Stamp("bob", "api", NOW))
    with pytest.raises(IllegalTransition):
        call.expire(NOW)


def test_rejection_is_written_one_way_with_agentos_defaults():
    call = _call("archive", {"name": "x"}, Requirement.CONFIRMATION)
    call.reject(Stamp("alice", "api", NOW))
    assert (call.state, call.confirmed, call.tool_call_error, call.requires_confirmation) == (
        CallState.REJECTED,
        False,
        True,
        False,
    )
    assert call.confirmation_note == "Tool call was rejected"
    assert call.model_message == "Function call was rejected by the user"


def test_an_undeclared_field_cannot_reach_a_stored_document():
    call = _call("archive", {"name": "x"}, Requirement.CONFIRMATION)
    with pytest.raises(AttributeError):
        call.misspelt_state = "approved"  # type: ignore[attr-defined]
    assert set(call.document()) == {f for f in call.__slots__}


def test_an_executing_call_whose_invocation_died_asks_a_human_again():
    call = _call("archive", {"name": "x"}, Requirement.CONFIRMATION)
    call.approve(Stamp("alice", "api", NOW))
    call.start_executing()
    call.mark_outcome_unknown()
    assert call.pending and call.requires_confirmation and "may or may not" in call.confirmation_note


def test_a_run_status_moves_only_along_its_table():
    state = _state(status=RunStatus.COMPLETED)
    with pytest.raises(IllegalTransition):
        state.claim()


# ------------------------------------------------------------------------------------ the rule set


def test_approve_and_reject_through_the_same_rules():
    call = _call("archive", {"name": "x"}, Requirement.CONFIRMATION)
    state = _state(call)
    [plan] = check(state, AGENT, [Decision(call.tool_call_id, True)], API_ALICE, now=NOW)
    assert plan.verdict is Verdict.APPROVE
    audit = apply([plan], API_ALICE, now=NOW)
    assert call.state == CallState.APPROVED and call.decided_by == "alice" and call.decision_channel == "api"
    assert audit[0].detail["decision"] == "approved"


def test_an_expired_call_is_refused_on_every_channel_whether_or_not_the_sweep_ran():
    call = _call("archive", {"name": "x"}, Requirement.CONFIRMATION, expires_at=NOW - 1)
    state = _state(call)
    for decider in (API_ALICE, WEBHOOK):
        with pytest.raises(Expired):
            check(state, AGENT, [Decision(call.tool_call_id, True)], decider, now=NOW)
    assert call.pending


def test_a_stale_digest_is_refused():
    call = _call("archive", {"name": "x"}, Requirement.CONFIRMATION)
    with pytest.raises(DigestStale):
        check(
            _state(call), AGENT, [Decision(call.tool_call_id, True, shown_digest="0" * 64)], WEBHOOK, now=NOW
        )


def test_a_decided_call_is_400_on_the_continue_and_409_elsewhere():
    call = _call("archive", {"name": "x"}, Requirement.CONFIRMATION)
    call.approve(Stamp("alice", "api", NOW))
    state = _state(call)
    with pytest.raises(InvalidInput):
        check(state, AGENT, [Decision(call.tool_call_id, True)], API_ALICE, now=NOW)
    with pytest.raises(AlreadyDecided):
        check(state, AGENT, [Decision(call.tool_call_id, True)], WEBHOOK, now=NOW)
    with pytest.raises(NotFound):
        check(state, AGENT, [Decision("nope", True)], WEBHOOK, now=NOW)


def test_a_finished_run_refuses_every_decision():
    call = _call("archive", {"name": "x"}, Requirement.CONFIRMATION)
    with pytest.raises(Conflict, match="already cancelled"):
        check(
            _state(call, status=RunStatus.CANCELLED),
            AGENT,
            [Decision(call.tool_call_id, True)],
            WEBHOOK,
            now=NOW,
        )


def test_a_tool_changed_since_the_pause_is_refused():
    call = _call("archive", {"name": "x"}, Requirement.CONFIRMATION)
    call.schema_hash = "an older schema"
    with pytest.raises(ToolChanged):
        check(_state(call), AGENT, [Decision(call.tool_call_id, True)], API_ALICE, now=NOW)


@pytest.mark.parametrize(
    ("decider", "approve", "allowed"),
    [
        (Decider(Principal("dave", ("finance",)), "dave", "api"), True, True),
        (Decider(Principal("eve", ("finance team",)), "eve", "api"), True, False),
        (Decider(Principal("eve", None), "eve", "api"), True, False),  # groups unreadable
        (Decider(Principal("alice", ("finance",)), "alice", "api"), True, False),  # her own call
        (Decider(Principal("alice", ("finance",)), "alice", "api"), False, True),  # may reject it
        (Decider(None, None, "api"), True, False),  # unauthenticated
    ],
)
def test_approver_groups_match_exactly_and_the_requester_never_approves(decider, approve, allowed):
    call = _call("wire", {"amount": 5}, Requirement.CONFIRMATION)
    decision = [Decision(call.tool_call_id, approve)]
    if allowed:
        check(_state(call), AGENT, decision, decider, now=NOW)
    else:
        with pytest.raises(DecisionRefused):
            check(_state(call), AGENT, decision, decider, now=NOW)


def test_an_approver_of_one_tool_cannot_decide_another_tool_of_the_same_run():
    guarded = _call("wire", {"amount": 5}, Requirement.CONFIRMATION)
    unguarded = _call("archive", {"name": "x"}, Requirement.CONFIRMATION)
    dave = Decider(Principal("dave", ("finance",)), "dave", "api")
    state = _state(guarded, unguarded)
    check(state, AGENT, [Decision(guarded.tool_call_id, True)], dave, now=NOW)
    with pytest.raises(DecisionRefused, match="only the run's owner"):
        check(state, AGENT, [Decision(unguarded.tool_call_id, True)], dave, now=NOW)
    # a signed system channel acts for the owner on a tool that names no approvers
    check(state, AGENT, [Decision(unguarded.tool_call_id, True)], WEBHOOK, now=NOW)


def test_user_input_fills_the_humans_fields_and_moves_the_digest():
    call = _call(
        "book",
        {"title": "standup"},
        Requirement.USER_INPUT,
        user_input_schema=[{"name": "room", "field_type": "str", "description": "Room", "value": None}],
    )
    [plan] = check(
        _state(call), AGENT, [Decision(call.tool_call_id, values={"room": "Blue"})], API_ALICE, now=NOW
    )
    apply([plan], API_ALICE, now=NOW)
    assert call.tool_args == {"title": "standup", "room": "Blue"}
    assert call.args_digest == args_digest("book", call.tool_args) and call.answered


def test_an_external_result_needs_a_result():
    call = _call("charge", {"amount": 5}, Requirement.EXTERNAL_EXECUTION)
    with pytest.raises(InvalidInput, match="result is required"):
        check(_state(call), AGENT, [Decision(call.tool_call_id)], API_ALICE, now=NOW)
    [plan] = check(_state(call), AGENT, [Decision(call.tool_call_id, result="ok")], API_ALICE, now=NOW)
    apply([plan], API_ALICE, now=NOW)
    assert (call.state, call.result) == (CallState.SUCCEEDED, "ok")


def test_the_continue_form_is_typed_at_the_edge():
    [decision] = decisions_from_form(
        [{"tool_call_id": "c1", "confirmed": "yes", "confirmation_note": "ok", "tool_args": '{"a": 1}'}]
    )
    assert decision == Decision("c1", True, "ok", echoed_args={"a": 1})
    with pytest.raises(InvalidInput):
        decisions_from_form([{"tool_call_id": "c1"}, {"tool_call_id": "c1"}])
    with pytest.raises(InvalidInput):
        decisions_from_form([{"tool_call_id": "c1", "confirmed": "maybe"}])


def test_an_approver_may_approve_with_changed_arguments_and_both_digests_are_kept():
    call = _call("archive", {"name": "x"}, Requirement.CONFIRMATION)
    proposed = call.args_digest
    call.approve_with_changes(Stamp("dave", "api", NOW), {"name": "y"}, "renamed")
    assert call.state == CallState.APPROVED and call.tool_args == {"name": "y"}
    assert call.proposed_digest == proposed
    assert call.args_digest == call.decision_digest == args_digest("archive", {"name": "y"})


def test_answers_to_the_agents_questions_are_the_calls_result():
    call = _call("archive", {"name": "x"}, Requirement.USER_INPUT)
    answers = [{"question": "Which?", "selected_options": ["A"]}]
    call.answer_questions(Stamp("alice", "api", NOW), answers, "User feedback received: [...]")
    assert call.state == CallState.SUCCEEDED and call.user_feedback_schema == answers
    assert call.result == call.model_message == "User feedback received: [...]"


def test_a_document_of_schema_v1_without_the_new_field_still_loads():
    call = _call("archive", {"name": "x"}, Requirement.CONFIRMATION)
    document = call.document()
    del document["proposed_digest"]
    assert ToolCall.from_document(document).proposed_digest is None


def test_a_call_the_sweep_already_expired_is_still_refused_as_expired():
    call = _call("archive", {"name": "x"}, Requirement.CONFIRMATION, expires_at=NOW - 10)
    call.expire(NOW - 5)
    for decider in (API_ALICE, WEBHOOK):
        with pytest.raises(Expired):
            check(_state(call), AGENT, [Decision(call.tool_call_id, True)], decider, now=NOW)
