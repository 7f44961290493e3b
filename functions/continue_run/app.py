"""Continues and cancels paused runs: POST /agents/{agent_id}/runs/{run_id}/continue and /cancel."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths

from signoff import http, service, snapstart
from signoff.config import get_settings
from signoff.observability import logger, metrics, record_decisions, record_outcome, tracer
from signoff.runtime import dependencies

snapstart.install(calls_model=True)  # under SnapStart only: prime openai, register the restore hooks
app = APIGatewayHttpResolver()
http.install_error_handlers(app, logger)


@app.post("/agents/<agent_id>/runs/<run_id>/continue")
def continue_run(agent_id: str, run_id: str) -> Response:
    deps = dependencies()
    settings = deps.settings
    logger.append_keys(agent_id=agent_id, run_id=run_id)
    request = http.continue_input(app.current_event.raw_event, settings.max_body_bytes, settings.public_url)
    result = service.continue_run(
        deps,
        agent_id,
        run_id,
        request,
        principal=http.caller(app.current_event.raw_event, get_settings()),
        deadline=http.deadline(app.lambda_context, settings.api_timeout_ms, settings.deadline_margin_ms),
    )
    record_decisions(result.state, {d.tool_call_id for d in request.tools or []})
    record_outcome(result.state)
    return http.run_response(result, stream=request.stream)


@app.post("/agents/<agent_id>/runs/<run_id>/cancel")
def cancel_run(agent_id: str, run_id: str) -> Response:
    deps = dependencies()
    event = app.current_event.raw_event
    fields = http.parse_fields(event, deps.settings.max_body_bytes)
    query = app.current_event.query_string_parameters or {}
    result = service.cancel_run(
        deps,
        agent_id,
        run_id,
        session_id=fields.get("session_id") or query.get("session_id"),
        user_id=fields.get("user_id") or query.get("user_id"),
        principal=http.caller(app.current_event.raw_event, get_settings()),
        meta=http.request_meta(event),
    )
    record_outcome(result.state)
    return http.run_response(result, stream=False)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    return app.resolve(event, context)
