"""What this deployment serves, for ``/config`` and ``/agents``: its agents, with their tools."""

from __future__ import annotations

from signoff.agent import Agent
from signoff.service.common import Dependencies


def list_agents(deps: Dependencies) -> list[Agent]:
    """Every agent of the deployment, in catalog order."""
    return list(deps.catalog)


def get_agent(deps: Dependencies, agent_id: str) -> Agent:
    """One agent.

    Raises:
        AgentNotFound: no agent has that id.
    """
    return deps.catalog.get(agent_id)
