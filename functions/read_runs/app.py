"""Reads: runs, sessions, the agents (/config, /agents[/{agent_id}]), /health and /openapi.json."""

import time

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths

from signoff import http, service, wire
from signoff.config import get_settings
from signoff.observability import logger, metrics, tracer
from signoff.runtime import dependencies

STARTED_AT = time.time()  # this container's start: /health's instantiated_at
app = APIGatewayHttpResolver()
http.install_error_handlers(app, logger)


def _query() -> dict[str, str]:
    return app.current_event.query_string_parameters or {}


@app.get("/agents/<agent_id>/runs/<run_id>")
def get_run(agent_id: str, run_id: str) -> Response:
    state = service.get_run(
        dependencies(),
        agent_id,
        run_id,
        session_id=_query().get("session_id"),
        principal=http.caller(app.current_event.raw_event, get_settings()),
    )
    return http.json_response(http.run_object(state))


@app.get("/agents/<agent_id>/runs/<run_id>/events")
def run_events(agent_id: str, run_id: str) -> Response:
    events = service.run_events(
        dependencies(),
        agent_id,
        run_id,
        session_id=_query().get("session_id"),
        principal=http.caller(app.current_event.raw_event, get_settings()),
    )
    return http.json_response({"run_id": run_id, "events": events})


@app.get("/agents/<agent_id>/runs")
def list_runs(agent_id: str) -> Response:
    query = _query()
    runs = service.list_runs(
        dependencies(),
        agent_id,
        session_id=query.get("session_id"),
        user_id=query.get("user_id"),
        status=http.run_status(query.get("status")),
        principal=http.caller(app.current_event.raw_event, get_settings()),
    )
    return http.json_response([http.run_object(state) for state in runs])


@app.get("/sessions")
def list_sessions() -> Response:
    query = _query()
    page, limit = http.paging(query)
    result = service.list_sessions(
        dependencies(),
        user_id=query.get("user_id"),
        agent_id=query.get("component_id") or query.get("agent_id"),
        page=page,
        limit=limit,
        principal=http.caller(app.current_event.raw_event, get_settings()),
    )
    return http.json_response(http.session_page(result, page, limit))


@app.get("/sessions/<session_id>")
def get_session(session_id: str) -> Response:
    query = _query()
    http.check_session_type(query, session_id)
    view = service.get_session(
        dependencies(),
        session_id,
        user_id=query.get("user_id"),
        principal=http.caller(app.current_event.raw_event, get_settings()),
    )
    return http.json_response(wire.session_object(view))


@app.get("/sessions/<session_id>/runs")
def session_runs(session_id: str) -> Response:
    runs = service.session_runs(
        dependencies(),
        session_id,
        user_id=_query().get("user_id"),
        principal=http.caller(app.current_event.raw_event, get_settings()),
    )
    return http.json_response([wire.session_run_object(state) for state in runs])


@app.get("/sessions/<session_id>/runs/<run_id>")
def session_run(session_id: str, run_id: str) -> Response:
    query = _query()
    http.check_session_type(query, session_id)
    state = service.session_run(
        dependencies(),
        session_id,
        run_id,
        user_id=query.get("user_id"),
        principal=http.caller(app.current_event.raw_event, get_settings()),
    )
    return http.json_response(wire.session_run_object(state))


@app.get("/config")
def config() -> Response:
    http.caller(app.current_event.raw_event, get_settings())
    return http.json_response(wire.config_object(service.list_agents(dependencies())))


@app.get("/agents")
def list_agents() -> Response:
    http.caller(app.current_event.raw_event, get_settings())
    deps = dependencies()
    history = deps.settings.history_runs
    return http.json_response([wire.agent_object(agent, history) for agent in service.list_agents(deps)])


@app.get("/agents/<agent_id>")
def get_agent(agent_id: str) -> Response:
    http.caller(app.current_event.raw_event, get_settings())
    deps = dependencies()
    agent = service.get_agent(deps, agent_id)
    return http.json_response(wire.agent_object(agent, deps.settings.history_runs))


@app.get("/health")
def health() -> Response:
    return http.json_response(wire.health_object(STARTED_AT))


@app.get("/openapi.json")
def openapi() -> Response:
    return http.json_response(http.openapi_document())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    return app.resolve(event, context)
