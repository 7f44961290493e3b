"""Decisions from outside: each HTTP channel's route (signed webhooks, Slack) and approval links."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths

from signoff import channels, http, service
from signoff.channels import link
from signoff.observability import logger, metrics, record_decision, tracer
from signoff.runtime import channel_secret, dependencies

app = APIGatewayHttpResolver()
http.install_error_handlers(app, logger)


def _incoming() -> channels.Incoming:
    event = app.current_event.raw_event
    body = http.body_bytes(event, dependencies().settings.max_body_bytes)
    headers = {key.lower(): value or "" for key, value in (event.get("headers") or {}).items()}
    return channels.Incoming(headers, body, http.request_meta(event))


def _route(channel):
    def receive() -> Response:
        deps = dependencies()
        received = channel.receive(_incoming(), deps.settings, channel_secret)
        outcome = service.decide_received(deps, received)
        record_decision(
            outcome.call, channel.NAME, deferred=outcome.deferred, agent_id=outcome.state.agent_id
        )
        reply = channel.reply(outcome, received)
        if reply.followup is not None:
            reply.followup()
        return http.json_response(reply.body, reply.status)

    receive.__name__ = f"receive_{channel.NAME}"
    return receive


for _channel in channels.incoming():
    app.post(_channel.ROUTE)(_route(_channel))


@app.get("/approvals/<token>")
def show_link(token: str) -> Response:
    page, status = link.show(dependencies(), token, app.current_event.path)
    return http.html_response(page, status)


@app.post("/approvals/<token>")
def use_link(token: str) -> Response:
    fields = http.parse_fields(app.current_event.raw_event, dependencies().settings.max_body_bytes)
    note = fields.get("note") or None
    meta = http.request_meta(app.current_event.raw_event)
    page, status, outcome = link.use(dependencies(), token, note if isinstance(note, str) else None, meta)
    if outcome is not None:
        record_decision(outcome.call, link.NAME, deferred=outcome.deferred, agent_id=outcome.state.agent_id)
    return http.html_response(page, status)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    return app.resolve(event, context)
