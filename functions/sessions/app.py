"""Changes sessions: DELETE /sessions/{session_id} and POST /sessions/{session_id}/rename."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths

from signoff import http, service, wire
from signoff.config import get_settings
from signoff.observability import logger, metrics, tracer
from signoff.runtime import dependencies

app = APIGatewayHttpResolver()
http.install_error_handlers(app, logger)


def _query() -> dict[str, str]:
    return app.current_event.query_string_parameters or {}


@app.delete("/sessions/<session_id>")
def delete_session(session_id: str) -> Response:
    logger.append_keys(session_id=session_id)
    event = app.current_event.raw_event
    service.delete_session(
        dependencies(),
        session_id,
        user_id=_query().get("user_id"),
        principal=http.caller(event, get_settings()),
        meta=http.request_meta(event),
    )
    return http.no_content()


@app.post("/sessions/<session_id>/rename")
def rename_session(session_id: str) -> Response:
    deps = dependencies()
    event = app.current_event.raw_event
    principal = http.caller(event, get_settings())
    http.check_session_type(_query(), session_id)
    view = service.rename_session(
        deps,
        session_id,
        http.session_name_input(event, deps.settings.max_body_bytes),
        user_id=_query().get("user_id"),
        principal=principal,
    )
    return http.json_response(wire.session_object(view))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    return app.resolve(event, context)
