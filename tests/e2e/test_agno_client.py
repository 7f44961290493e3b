"""Agno's own AgentOS client (agno==3.1.10) against the local dev server: discovery, a run that pauses
and is confirmed through the client's continue, and the session routes (read, runs, rename, delete).

The server is the one ``make dev`` runs, started in-process on a free port: it routes by
``template.yaml`` and calls the same Lambda handlers with API Gateway events.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import httpx
import pytest
from agno.agent.remote import RemoteAgent
from agno.client import AgentOSClient
from agno.run.base import RunStatus

from tests.support.devserver import local_server

ROOT = Path(__file__).resolve().parents[2]
MESSAGE = "Delete 50 old records from the users table"


@pytest.fixture
def base_url(db, model, monkeypatch):
    monkeypatch.setenv("SIGNOFF_AGENTS_MODULE", "tests.support.agents")
    with local_server(db, model.base_url) as dev:
        yield dev.base_url


def test_remote_agent_and_discovery(base_url):
    # Given Agno's RemoteAgent for the seed's agent
    agent = RemoteAgent(base_url=base_url, agent_id="data_manager")
    client = AgentOSClient(base_url)

    # Then its name and description come from GET /agents/{agent_id}
    assert agent.name == "Data Manager"
    assert agent.id == "data_manager"

    # And GET /config parses as Agno's ConfigResponse
    config = client.get_config()
    assert config.os_id == "signoff"
    assert [a.id for a in config.agents][:2] == ["data_manager", "ops"]
    assert config.agents[0].model is not None and config.agents[0].model.id == "gpt-4o-mini"

    # And the agent's tools, with their kinds, parse as Agno's AgentResponse
    ops = client.get_agent("ops")
    tools = {t["name"]: t for t in ops.tools["tools"]}
    assert tools["delete_records"]["requires_confirmation"] is True
    assert tools["book_room"]["requires_user_input"] is True
    assert tools["book_room"]["user_input_fields"] == ["room"]
    assert tools["charge_card"]["external_execution"] is True
    assert ops.model is not None and (ops.model.model, ops.model.provider) == ("gpt-4o-mini", "OpenAI")

    # And GET /agents parses as Agno's summaries
    summaries = asyncio.run(client.list_agents())
    assert summaries[0].name == "Data Manager"

    # And /health answers as AgentOS's does
    with urllib.request.urlopen(f"{base_url}/health", timeout=30) as response:
        assert json.loads(response.read())["status"] == "ok"


def test_a_paused_run_is_confirmed_through_the_client_and_its_session_managed(base_url):
    agent = RemoteAgent(base_url=base_url, agent_id="data_manager")
    client = AgentOSClient(base_url)

    async def scenario() -> None:
        # When a run pauses for a confirmation
        paused = await agent.arun(MESSAGE, session_id="s-agno", user_id="ana", stream=False)
        assert paused.status == RunStatus.paused
        [requirement] = paused.requirements
        assert requirement.needs_confirmation
        assert requirement.tool_execution.tool_name == "delete_records"

        # And the user confirms it through the client's continue
        requirement.confirm()
        done = await agent.acontinue_run(
            run_id=paused.run_id,
            requirements=paused.requirements,
            session_id="s-agno",
            user_id="ana",
            stream=False,
        )

        # Then the same run completes with the tool's result
        assert done.run_id == paused.run_id and done.status == RunStatus.completed
        assert done.tools[0].result == "Deleted 50 records from users"

        # And the session reads as Agno's AgentSessionDetailSchema
        session = await client.get_session("s-agno", user_id="ana")
        assert (session.session_id, session.agent_id, session.user_id) == ("s-agno", "data_manager", "ana")
        assert session.session_name == MESSAGE
        assert session.chat_history[0]["content"] == MESSAGE

        # And its runs as Agno's RunSchema
        runs = await client.get_session_runs("s-agno", user_id="ana")
        assert [(r.run_id, r.status, r.run_input) for r in runs] == [(paused.run_id, "COMPLETED", MESSAGE)]
        one = await client.get_session_run("s-agno", paused.run_id, user_id="ana")
        assert one.content == done.content

        # When it is renamed, the session and the session list say so
        renamed = await client.rename_session("s-agno", "Users cleanup", user_id="ana")
        assert renamed.session_name == "Users cleanup"
        listed = await client.get_sessions(user_id="ana")
        assert [s.session_name for s in listed.data] == ["Users cleanup"]
        assert listed.meta.total_count == 1

        # When it is deleted, it is gone
        await client.delete_session("s-agno", user_id="ana")
        with pytest.raises(httpx.HTTPStatusError) as missing:
            await client.get_session("s-agno", user_id="ana")
        assert missing.value.response.status_code == 404
        assert (await client.get_sessions(user_id="ana")).data == []

    asyncio.run(scenario())


def test_a_deleted_sessions_paused_call_cannot_be_continued_through_the_client(base_url):
    agent = RemoteAgent(base_url=base_url, agent_id="data_manager")
    client = AgentOSClient(base_url)

    async def scenario() -> None:
        paused = await agent.arun(MESSAGE, session_id="s-gone", user_id="ana", stream=False)
        assert paused.status == RunStatus.paused

        await client.delete_session("s-gone", user_id="ana")

        paused.requirements[0].confirm()
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await agent.acontinue_run(
                run_id=paused.run_id, requirements=paused.requirements, session_id="s-gone", stream=False
            )
        assert refused.value.response.status_code == 404
        with pytest.raises(httpx.HTTPStatusError) as missing:
            await client.get_session_run("s-gone", paused.run_id)
        assert missing.value.response.status_code == 404

    asyncio.run(scenario())


@pytest.fixture
def jwt_server(db, model, monkeypatch):
    monkeypatch.setenv("SIGNOFF_AGENTS_MODULE", "tests.support.agents")
    with local_server(db, model.base_url, auth="jwt", jwt_secret="test-jwt-secret") as dev:
        yield dev


def test_with_authentication_discovery_needs_a_token_and_sessions_are_their_owners(jwt_server):
    from signoff_dev import jwt

    base_url = jwt_server.base_url
    client = AgentOSClient(base_url)

    def bearer(user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {jwt.mint(user, secret=jwt_server.jwt_secret)}"}

    # /health is public; discovery answers API Gateway's 401 without a token and works with one
    with urllib.request.urlopen(f"{base_url}/health", timeout=30) as response:
        assert response.status == 200
    with pytest.raises(httpx.HTTPStatusError) as unauthorized:
        client.get_config()
    assert unauthorized.value.response.status_code == 401
    assert client.get_config(headers=bearer("ana")).agents[0].id == "data_manager"
    assert client.get_agent("data_manager", headers=bearer("ana")).name == "Data Manager"
    # ... so RemoteAgent's name, fetched without a token, fails as it does against AgentOS with auth
    with pytest.raises(httpx.HTTPStatusError):
        _ = RemoteAgent(base_url=base_url, agent_id="data_manager").name

    async def scenario() -> None:
        # Given ana's paused run
        agent = RemoteAgent(base_url=base_url, agent_id="data_manager")
        token = bearer("ana")["Authorization"].removeprefix("Bearer ")
        paused = await agent.arun(MESSAGE, session_id="s-ana", auth_token=token, stream=False)
        assert paused.status == RunStatus.paused and paused.user_id == "ana"

        # Then bob cannot read, rename or delete her session, even naming her
        for attempt in (
            client.get_session("s-ana", headers=bearer("bob")),
            client.get_session("s-ana", user_id="ana", headers=bearer("bob")),
            client.get_session_run("s-ana", paused.run_id, headers=bearer("bob")),
            client.rename_session("s-ana", "bob's", headers=bearer("bob")),
            client.delete_session("s-ana", user_id="ana", headers=bearer("bob")),
        ):
            with pytest.raises(httpx.HTTPStatusError) as refused:
                await attempt
            assert refused.value.response.status_code == 404

        # And ana can, and her paused call is gone with it
        assert (await client.get_session("s-ana", headers=bearer("ana"))).session_name == MESSAGE
        await client.delete_session("s-ana", headers=bearer("ana"))
        paused.requirements[0].confirm()
        with pytest.raises(httpx.HTTPStatusError) as gone:
            await agent.acontinue_run(
                run_id=paused.run_id, requirements=paused.requirements, session_id="s-ana", auth_token=token
            )
        assert gone.value.response.status_code == 404

    asyncio.run(scenario())
