"""Who may see a run and who may decide on each of its tool calls.

Seeing and deciding are separate rights. A person sees a run they own, or one with a call of a tool
that names them as an approver. A person decides a call if the tool names them (an exact user or
group match), or, when the tool names no approvers, if they own the run. Without authentication
(``principal`` is ``None``) the run's ``user_id`` as the client gave it is the only guard, as in
AgentOS; a signed system channel (webhook, Slack, link, queue) acts for the owner on tools that
name no approvers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from signoff.identity import Principal

if TYPE_CHECKING:
    from signoff.agent import Agent
    from signoff.state import RunState
    from signoff.tools import Tool

__all__ = [
    "Principal",
    "decision_refusal",
    "edit_refusal",
    "is_approver",
    "may_access",
    "refusal",
    "required_approval_refusal",
    "sees_approval",
]

REQUIRES_ADMIN_APPROVAL = "This run requires admin approval before it can be continued"


def is_approver(principal: Principal | None, agent: Agent, state: RunState) -> bool:
    """An approver of one of the run's tools may read it without owning it."""
    if principal is None:
        return False
    for call in state.tools:
        tool = agent.tool(call.tool_name)
        if tool is not None and tool.approvers and principal.matches(tool.approvers):
            return True
    return False


def may_access(principal: Principal | None, user_id: str | None, agent: Agent, state: RunState) -> bool:
    """Owner or approver. Without authentication, the ``user_id`` the client gave must match."""
    if principal is not None:
        return state.user_id == principal.user_id or is_approver(principal, agent, state)
    return user_id is None or state.user_id == user_id


def refusal(
    tool: Tool, decider: Principal | None, owner: str | None, approve: bool, *, vouched: bool = False
) -> str | None:
    """Why ``decider`` may not make this decision on a call of ``tool``; ``None`` if they may.

    Args:
        tool: the call's tool.
        decider: the verified person deciding (``None``: no authentication on this route).
        owner: the run's owner.
        approve: whether the decision lets the call run (approve, answer, supply a result).
        vouched: the decision comes through a signed system channel that acts for the owner.
    """
    if tool.approvers:
        if decider is None:
            return f"{tool.name} can only be decided by an authenticated approver"
        if not decider.matches(tool.approvers):
            if decider.groups is None:
                return (
                    f"{decider.user_id} is not an approver of {tool.name} "
                    "(their groups could not be read exactly)"
                )
            return f"{decider.user_id} is not an approver of {tool.name}"
    elif decider is not None and not vouched and decider.user_id != owner:
        return (
            f"{decider.user_id} may not decide {tool.name}: it names no approvers, "
            "so only the run's owner decides it"
        )
    if approve and not tool.allow_self_approval and decider is not None and decider.user_id == owner:
        return f"the requester may not approve their own call of {tool.name}"
    return None


def decision_refusal(
    tool: Tool,
    decider: Principal | None,
    owner: str | None,
    *,
    approval_type: str | None,
    approve: bool,
    admins: tuple[str, ...],
    vouched: bool = False,
) -> str | None:
    """Why ``decider`` may not decide a paused call of ``tool``; ``None`` if they may: an
    ``@approval(required)`` call by :func:`required_approval_refusal`'s rules, any other by
    :func:`refusal`'s (``approve``: the decision lets the call run)."""
    if approval_type == "required":
        return required_approval_refusal(tool, decider, owner, admins)
    return refusal(tool, decider, owner, approve, vouched=vouched)


def edit_refusal(tool: Tool, decider: Principal | None, owner: str | None) -> str | None:
    """Why ``decider`` may not approve a call of ``tool`` with changed arguments; ``None`` if they
    may, as far as editing goes (their right to decide the call at all is checked as usual).

    Only an ``editable`` tool's calls, and only by an authenticated person who is not the requester:
    a requester who could rewrite their own call would need no approval at all.
    """
    if not tool.editable:
        return f"{tool.name} does not allow approvers to change its arguments"
    if decider is None:
        return f"changing the arguments of {tool.name} needs an authenticated approver"
    if decider.user_id == owner:
        return f"the requester may not change the arguments of their own call of {tool.name}"
    return None


def required_approval_refusal(
    tool: Tool, decider: Principal | None, owner: str | None, admins: tuple[str, ...]
) -> str | None:
    """Why ``decider`` may not resolve an ``@approval(required)`` call of ``tool``; ``None`` if they may.

    Its tool's approvers resolve it — or, when the tool names none, the ``admins`` — and never the
    requester: their continue is refused with AgentOS's words until an approver has resolved it.
    """
    if decider is None or decider.user_id == owner:
        return REQUIRES_ADMIN_APPROVAL
    names = tool.approvers or admins
    if not names:
        return f"{tool.name} needs an approval admin (SIGNOFF_APPROVAL_ADMINS) and none is configured"
    if not decider.matches(names):
        return f"{decider.user_id} may not resolve the approval of {tool.name}"
    return None


def sees_approval(
    principal: Principal | None, owner: str | None, approvers: list[str] | None, admins: tuple[str, ...]
) -> bool:
    """Who sees an approval record: its run's owner, the approvers its tool names, the admins.
    Without authentication every record is visible (the ``user_id`` filter narrows it, as in AgentOS)."""
    if principal is None:
        return True
    return (
        principal.user_id == owner
        or principal.matches(tuple(approvers or ()))
        or (bool(admins) and principal.matches(admins))
    )
