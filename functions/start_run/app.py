"""Starts agent runs: POST /agents/{agent_id}/runs."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths

from signoff import http, service, snapstart
from signoff.config import get_settings
from signoff.observability import logger, metrics, record_outcome, tracer
from signoff.runtime import dependencies

snapstart.install(calls_model=True)  # under SnapStart only: prime openai, register the restore hooks
app = APIGatewayHttpResolver()
http.install_error_handlers(app, logger)


@app.post("/agents/<agent_id>/runs")
def start_run(agent_id: str) -> Response:
    deps = dependencies()
    settings = deps.settings
    request = http.start_input(app.current_event.raw_event, settings.max_body_bytes, settings.public_url)
    result = service.start_run(
        deps,
        agent_id,
        request,
        principal=http.caller(app.current_event.raw_event, get_settings()),
        deadline=http.deadline(app.lambda_context, settings.api_timeout_ms, settings.deadline_margin_ms),
    )
    record_outcome(result.state, started=True)
    return http.run_response(result, stream=request.stream)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    return app.resolve(event, context)
