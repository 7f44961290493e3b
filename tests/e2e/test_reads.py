"""Reading runs and sessions, cancelling, and the OpenAPI document."""

from __future__ import annotations


def _cancel(api, run_id, session_id):
    return api.call(
        "POST",
        "/agents/{agent_id}/runs/{run_id}/cancel",
        {"agent_id": "data_manager", "run_id": run_id},
        fields={"session_id": session_id},
    )


def test_list_runs_filters_by_session_and_status(api):
    paused = api.start(session_id="s-list", user_id="u").json()
    done = api.start("hello there", session_id="s-list", user_id="u").json()
    api.start(session_id="s-other", user_id="u")

    all_runs = api.call(
        "GET", "/agents/{agent_id}/runs", {"agent_id": "data_manager"}, query={"session_id": "s-list"}
    ).json()
    only_paused = api.call(
        "GET",
        "/agents/{agent_id}/runs",
        {"agent_id": "data_manager"},
        query={"session_id": "s-list", "status": "PAUSED"},
    ).json()

    assert [r["run_id"] for r in all_runs] == [paused["run_id"], done["run_id"]]
    assert [r["run_id"] for r in only_paused] == [paused["run_id"]]
    bad = api.call("GET", "/agents/{agent_id}/runs", {"agent_id": "data_manager"}, query={"status": "NOPE"})
    assert bad.status == 422


def test_sessions_are_listed_with_agentos_paging(api):
    for n in range(3):
        api.start(f"hello {n}", session_id=f"s-page-{n}", user_id="pager")
    api.start("hello", session_id="s-not-mine", user_id="someone")

    page = api.call("GET", "/sessions", query={"user_id": "pager", "limit": "2", "page": "1"}).json()

    assert page["meta"] == {"page": 1, "limit": 2, "total_pages": 2, "total_count": 3}
    assert len(page["data"]) == 2
    assert {s["user_id"] for s in page["data"]} == {"pager"}
    runs = api.call("GET", "/sessions/{session_id}/runs", {"session_id": "s-page-0"}).json()
    assert [r["input"]["input_content"] for r in runs] == ["hello 0"]
    assert api.call("GET", "/sessions/{session_id}/runs", {"session_id": "nope"}).status == 404


def test_cancel_stops_a_paused_run_for_good(api):
    paused = api.start(session_id="s-cancel").json()

    cancelled = _cancel(api, paused["run_id"], "s-cancel")

    assert cancelled.status == 200
    run = cancelled.json()
    assert run["status"] == "CANCELLED" and run["requirements"] == []
    assert _cancel(api, paused["run_id"], "s-cancel").status == 409
    assert api.get(paused["run_id"]).json()["status"] == "CANCELLED"


def test_openapi_document_lists_the_routes(api):
    from signoff_dev.apigw import http_api_event
    from signoff_dev.handlers import invoke

    event = http_api_event("GET", "/openapi.json", route_key="GET /openapi.json")
    response = invoke("ReadRunsFunction", event)
    assert response["statusCode"] == 200
    import json

    document = json.loads(response["body"])
    assert document["openapi"].startswith("3.")
    assert "/agents/{agent_id}/runs/{run_id}/continue" in document["paths"]


def test_openapi_document_covers_every_route_of_the_template(api):
    from signoff.openapi import document
    from signoff_dev.template import load_template
    from tests.support.api import ROOT

    # Given the routes API Gateway will serve
    template = load_template(ROOT / "template.yaml")
    routes = {(r.method.lower(), r.path) for f in template.functions.values() for r in f.routes}

    # Then the published document describes each of them (it cannot drift from the template)
    described = {(method, path) for path, item in document()["paths"].items() for method in item}
    assert routes - {("get", "/openapi.json")} <= described
