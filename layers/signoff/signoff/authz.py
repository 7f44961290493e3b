"""Who may see a run and who may decide on its tool calls."""

from __future__ import annotations

from dataclasses import dataclass

from signoff.agent import Agent
from signoff.state import RunState
from signoff.tools import Tool


@dataclass(frozen=True)
class Principal:
    """The caller, as authenticated by API Gateway's JWT authorizer (or a signed channel).

    Attributes:
        user_id: the ``sub`` claim (or the approver a signed webhook names).
        groups: the caller's groups, from the configured claim.
    """

    user_id: str
    groups: tuple[str, ...] = ()

    def matches(self, names: tuple[str, ...]) -> bool:
        """Whether this principal is one of ``names`` (user ids or group names)."""
        return self.user_id in names or any(group in names for group in self.groups)


def is_approver(principal: Principal | None, agent: Agent, state: RunState) -> bool:
    """An approver of one of the run's tools may read and decide on it without owning it."""
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


def refusal(tool: Tool, decider: Principal | None, requester: str | None, approve: bool) -> str | None:
    """Why ``decider`` may not make this decision on a call of ``tool``; ``None`` if they may.

    A tool with ``approvers`` is decided only by an authenticated member of them; with
    ``allow_self_approval=False`` the run's owner may reject but never approve their own call.
    A tool without approvers is decided by whoever may continue the run.
    """
    if tool.approvers:
        if decider is None:
            return f"{tool.name} can only be decided by an authenticated approver"
        if not decider.matches(tool.approvers):
            return f"{decider.user_id} is not an approver of {tool.name}"
    if approve and not tool.allow_self_approval and decider is not None and decider.user_id == requester:
        return f"the requester may not approve their own call of {tool.name}"
    return None
