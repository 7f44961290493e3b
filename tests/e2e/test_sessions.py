"""The rest of the AgentOS surface around a paused run, through the handlers: /health, /config,
/agents[/{agent_id}], one session, one run of it, rename, and delete, which is final for every
paused call of the session on every path (continue, link, webhook, queue)."""

from __future__ import annotations

from datetime import datetime

import psycopg
import pytest

from tests.e2e.test_approvals import _decision, _token, _webhook
from tests.support.agents import AGENTS, EXECUTIONS, WHILE_RUNNING

ALICE = {"sub": "alice"}
BOB = {"sub": "bob"}
SESSION = "/sessions/{session_id}"
SESSION_RUN = "/sessions/{session_id}/runs/{run_id}"
RENAME = "/sessions/{session_id}/rename"


def _session(api, session_id: str, *, claims=None, **query):
    return api.call("GET", SESSION, {"session_id": session_id}, query=query or None, claims=claims)


def _delete(api, session_id: str, *, claims=None, **query):
    return api.call("DELETE", SESSION, {"session_id": session_id}, query=query or None, claims=claims)


def _rename(api, session_id: str, name, *, claims=None, form="json", **query):
    return api.call(
        "POST",
        RENAME,
        {"session_id": session_id},
        fields={"session_name": name},
        form=form,
        query=query or None,
        claims=claims,
    )


def _rows(db: str, run_id: str) -> dict[str, list]:
    with psycopg.connect(db) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} WHERE run_id = %s", (run_id,)).fetchall()
            for table in ("runs", "tool_calls", "approval_tokens")
        }


def _audit(db: str, run_id: str) -> list[tuple]:
    with psycopg.connect(db) as conn:
        return conn.execute(
            "SELECT kind, actor, channel, detail FROM run_events WHERE run_id = %s ORDER BY event_id",
            (run_id,),
        ).fetchall()


# ---------------------------------------------------------------------------- discovery


def test_health_answers_ok_with_the_time_the_container_started(api):
    response = api.call("GET", "/health")

    assert response.status == 200
    body = response.json()
    assert body["status"] == "ok"
    assert datetime.fromisoformat(body["instantiated_at"]) <= datetime.now().astimezone()


def test_config_describes_the_deployment_and_its_agents(api):
    config = api.call("GET", "/config").json()

    assert config["os_id"] == "signoff" and config["databases"] == ["signoff"]
    assert [a["id"] for a in config["agents"]] == [agent.id for agent in AGENTS]
    data_manager = config["agents"][0]
    assert data_manager["name"] == "Data Manager"
    assert data_manager["model"] == {"id": "gpt-4o-mini", "model": "gpt-4o-mini", "provider": "OpenAI"}
    # each model the agents use, once, with the provider that serves it
    models = config["available_models"]
    assert models[0] == {"id": "gpt-4o-mini", "provider": "OpenAI"}
    assert len(models) == len({(m["id"], m["provider"]) for m in models})
    assert {"id": "us.anthropic.claude-3-5-haiku-20241022-v1:0", "provider": "AwsBedrock"} in models
    assert (config["teams"], config["workflows"], config["interfaces"]) == ([], [], [])


def test_an_agent_lists_its_tools_with_what_a_human_must_supply_and_who_decides(api):
    # Given the ops agent (every kind of tool) and the guarded one (tools with approvers)
    ops = api.call("GET", "/agents/{agent_id}", {"agent_id": "ops"}).json()
    guarded = api.call("GET", "/agents/{agent_id}", {"agent_id": "guarded"}).json()

    # Then each tool says what it needs before it can run
    tools = {t["name"]: t for t in ops["tools"]["tools"]}
    kinds = {
        name: (t["requires_confirmation"], t["requires_user_input"], t["external_execution"])
        for name, t in tools.items()
    }
    assert kinds["lookup_user"] == (False, False, False)
    assert kinds["delete_records"] == (True, False, False)
    assert kinds["book_room"] == (False, True, False)
    assert kinds["charge_card"] == (False, False, True)
    # ... a user-input tool names the human's fields, which the model's parameters leave out
    assert tools["book_room"]["user_input_fields"] == ["room"]
    assert set(tools["book_room"]["parameters"]["properties"]) == {"title"}
    assert tools["purge_cache"]["approval_ttl_seconds"] == 2
    assert "approval_ttl_seconds" not in tools["lookup_user"]
    # ... and who may decide it
    wire_money = next(t for t in guarded["tools"]["tools"] if t["name"] == "wire_money")
    assert (wire_money["approvers"], wire_money["allow_self_approval"]) == (["finance"], False)
    assert tools["delete_records"]["approvers"] == []
    assert ops["name"] == "Ops" and ops["system_message"]["instructions"] == ["You run operations"]


def test_the_agent_list_and_an_unknown_agent(api):
    agents = api.call("GET", "/agents").json()

    assert [a["id"] for a in agents] == [agent.id for agent in AGENTS]
    missing = api.call("GET", "/agents/{agent_id}", {"agent_id": "nobody"})
    assert (missing.status, missing.json()) == (404, {"detail": "Agent not found"})


# ---------------------------------------------------------------------------- reading and renaming


def test_a_session_is_read_with_its_history_renamed_and_listed_by_its_new_name(api):
    # Given a session with a paused run and a completed one
    paused = api.start(session_id="s-read", user_id="u").json()
    done = api.start("hello there", session_id="s-read", user_id="u").json()

    # When it is read
    session = _session(api, "s-read").json()

    # Then it is named by its first message, and holds the conversation of both runs
    assert session["session_id"] == session["agent_session_id"] == "s-read"
    assert (session["agent_id"], session["user_id"]) == ("data_manager", "u")
    assert session["session_name"] == "Delete 50 old records from the users table"
    assert session["agent_data"]["name"] == "Data Manager"
    history = [(m["role"], m.get("content")) for m in session["chat_history"]]
    assert history[0] == ("user", "Delete 50 old records from the users table")
    assert ("user", "hello there") in history
    assert session["total_tokens"] == paused["metrics"]["total_tokens"] + done["metrics"]["total_tokens"]
    assert datetime.fromisoformat(session["created_at"]) <= datetime.fromisoformat(session["updated_at"])

    # When it is renamed (AgentOS's client sends JSON)
    renamed = _rename(api, "s-read", "  Cleanup  ")

    # Then the session and the session list carry the new name
    assert renamed.status == 200 and renamed.json()["session_name"] == "Cleanup"
    assert _session(api, "s-read").json()["session_name"] == "Cleanup"
    listed = api.call("GET", "/sessions", query={"user_id": "u"}).json()["data"]
    assert [s["session_name"] for s in listed] == ["Cleanup"]


def test_one_run_of_a_session(api):
    run = api.start(session_id="s-one", user_id="u").json()
    other = api.start("hello", session_id="s-two", user_id="u").json()

    found = api.call("GET", SESSION_RUN, {"session_id": "s-one", "run_id": run["run_id"]})

    assert found.status == 200
    body = found.json()
    assert (body["run_id"], body["status"], body["run_input"]) == (
        run["run_id"],
        "PAUSED",
        "Delete 50 old records from the users table",
    )
    assert body["requirements"][0]["tool_execution"]["tool_name"] == "delete_records"
    # A run of another session is not found in this one
    elsewhere = api.call("GET", SESSION_RUN, {"session_id": "s-one", "run_id": other["run_id"]})
    assert elsewhere.status == 404
    assert elsewhere.json() == {"detail": f"Run with ID {other['run_id']} not found in session s-one"}


@pytest.mark.parametrize(("name", "kind"), [("", "string_too_short"), ("x" * 501, "string_too_long")])
def test_a_blank_or_overlong_name_is_refused(api, name, kind):
    api.start("hello", session_id="s-name", user_id="u")

    response = _rename(api, "s-name", name)

    assert response.status == 422 and response.json()["detail"][0]["type"] == kind
    assert _session(api, "s-name").json()["session_name"] == "hello"
    missing = api.call("POST", RENAME, {"session_id": "s-name"}, fields={}, form="json")
    assert missing.status == 422 and missing.json()["detail"][0]["type"] == "missing"


def test_the_session_type_filter(api):
    api.start("hello", session_id="s-type", user_id="u")

    assert _session(api, "s-type", type="agent").status == 200
    team = _session(api, "s-type", type="team")
    assert (team.status, team.json()) == (404, {"detail": "Team Session with id 's-type' not found"})
    assert _session(api, "s-type", type="nonsense").status == 422


def test_another_users_session_is_not_found_on_any_route_and_nothing_changes(api, dump):
    # Given alice's paused run, started with her verified claims
    run = api.call(
        "POST",
        "/agents/{agent_id}/runs",
        {"agent_id": "data_manager"},
        fields={"message": "Delete 50 old records from the users table", "session_id": "s-alice"},
        claims=ALICE,
    ).json()
    before = dump()

    # When bob reads, renames or deletes it (even naming alice as the user)
    answers = [
        _session(api, "s-alice", claims=BOB),
        _session(api, "s-alice", claims=BOB, user_id="alice"),
        api.call("GET", SESSION_RUN, {"session_id": "s-alice", "run_id": run["run_id"]}, claims=BOB),
        _rename(api, "s-alice", "mine now", claims=BOB),
        _delete(api, "s-alice", claims=BOB),
        _delete(api, "s-alice", claims=BOB, user_id="alice"),
        # ... or a client without authentication names another owner
        _session(api, "s-alice", user_id="bob"),
        _delete(api, "s-alice", user_id="bob"),
    ]

    # Then each answer is the 404 of a session that does not exist, and nothing changed
    assert [a.status for a in answers] == [404] * len(answers)
    assert answers[0].json() == {"detail": "Session with id 's-alice' not found"}
    assert dump() == before
    # And alice still sees, renames and finally deletes it
    assert _session(api, "s-alice", claims=ALICE).json()["user_id"] == "alice"
    assert _rename(api, "s-alice", "Alice's", claims=ALICE).json()["session_name"] == "Alice's"
    assert _delete(api, "s-alice", claims=ALICE).status == 204


# ---------------------------------------------------------------------------- deleting


@pytest.fixture
def paused(api, aws):
    """A paused delete_records run with its approval links (the RunPaused event)."""
    run = api.start(user_id="owner", session_id="s-del").json()
    assert run["status"] == "PAUSED"
    [event] = aws.events()
    return run, event["detail"]["tool_calls"][0]


def test_deleting_a_session_leaves_nothing_that_could_run_its_paused_call(api, aws, db, paused):
    run, links = paused
    call_id = run["tools"][0]["tool_call_id"]

    # When the owner deletes the session
    response = _delete(api, "s-del", user_id="owner")

    # Then it is gone with its run, the call, its links and its audit trail...
    assert (response.status, response.text) == (204, "")
    assert _session(api, "s-del").status == 404
    assert api.get(run["run_id"]).status == 404
    assert api.call("GET", "/sessions/{session_id}/runs", {"session_id": "s-del"}).status == 404
    assert _rows(db, run["run_id"]) == {"runs": [], "tool_calls": [], "approval_tokens": []}
    # ... but for one tombstone: who deleted it, from where, and what waited (no arguments)
    [(kind, actor, channel, detail)] = _audit(db, run["run_id"])
    assert (kind, actor, channel) == ("session_deleted", "owner", "api")
    assert detail["status"] == "PAUSED" and detail["session_id"] == "s-del"
    assert detail["waiting_calls"] == [{"tool_call_id": call_id, "tool_name": "delete_records"}]
    assert "tool_args" not in str(detail) and "users" not in str(detail)

    # And no path can decide the call any more: continue, approval links, signed webhook
    answers = {
        "continue": api.continue_(
            run["run_id"], [{"tool_call_id": call_id, "confirmed": True}], session_id="s-del"
        ),
        "link page": api.call("GET", "/approve/{token}", {"token": _token(links["approve_url"])}),
        "link": api.call(
            "POST",
            "/approve/{token}",
            {"token": _token(links["approve_url"])},
            fields={},
            form="urlencoded",
        ),
        "webhook": _webhook(api, _decision(run)),
        "webhook by token": _webhook(
            api,
            {
                "event_id": "evt-t",
                "token": _token(links["approve_url"]),
                "decision": "approve",
                "approver": "x",
            },
        ),
    }
    assert {name: answer.status for name, answer in answers.items()} == dict.fromkeys(answers, 404)
    assert aws.resume_messages() == []
    assert EXECUTIONS == []
    # And deleting it again finds nothing
    assert _delete(api, "s-del").status == 404


def test_a_call_approved_but_not_yet_run_never_runs_once_its_session_is_deleted(api, aws, paused):
    run, _ = paused
    # Given a webhook approval: the call is approved and the run waits for the resume worker
    approved = _webhook(api, _decision(run))
    assert approved.status == 200 and approved.json()["resumed"] is True

    # When the session is deleted before the worker gets to it
    assert _delete(api, "s-del").status == 204

    # Then the worker's message finds nothing to run, and the tool never runs
    assert aws.run_worker() == {"batchItemFailures": []}
    assert EXECUTIONS == []
    assert api.get(run["run_id"]).status == 404


def test_a_session_with_a_run_executing_is_not_deleted(api, dump):
    # Given a paused transfer, confirmed, and a delete arriving while the transfer executes
    run = api.start('call transfer {"amount": 7}', agent_id="ops", session_id="s-busy", user_id="u").json()
    seen: list = []

    def delete_meanwhile():
        before = dump()
        seen.append((_delete(api, "s-busy"), before == dump()))

    WHILE_RUNNING["transfer"] = delete_meanwhile
    done = api.continue_(
        run["run_id"],
        [{"tool_call_id": run["tools"][0]["tool_call_id"], "confirmed": True}],
        session_id="s-busy",
        agent_id="ops",
    )

    # Then the delete was refused with a retry hint and changed nothing; the run finished
    [(refused, unchanged)] = seen
    assert refused.status == 409 and refused.headers["retry-after"] == "5"
    assert "running" in refused.json()["detail"]
    assert unchanged
    assert done.status == 200 and done.json()["status"] == "COMPLETED"
    assert EXECUTIONS == [("transfer", {"amount": 7})]
    # And once the run has stopped, the session can be deleted
    assert _delete(api, "s-busy").status == 204


def test_a_session_with_a_run_waiting_for_the_worker_is_not_deleted(api, aws, dump):
    # Given a background run: PENDING until the resume worker runs it
    pending = api.start("hello", session_id="s-queued", user_id="u", background="true")
    assert pending.status == 202
    before = dump()

    refused = _delete(api, "s-queued")

    assert refused.status == 409 and refused.headers["retry-after"] == "5"
    assert dump() == before
    aws.run_worker()
    assert _delete(api, "s-queued").status == 204
