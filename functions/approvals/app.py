"""Decisions from outside: each HTTP channel's route (signed webhooks, Slack), approval links,
AgentOS's approvals API (/approvals, /approvals/count, /approvals/{id}[/status|/resolve]) and the
approver's inbox page (/inbox, /inbox/{asset})."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths

from signoff import channels, http, inbox, service, wire
from signoff.channels import link
from signoff.config import get_settings
from signoff.errors import NotFound
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


def _caller() -> service.Principal | None:
    return http.caller(app.current_event.raw_event, get_settings())


@app.get("/approvals")
def list_approvals() -> Response:
    filters, page, limit = http.approval_query(app.current_event.query_string_parameters or {})
    rows, total = service.list_approvals(dependencies(), _caller(), filters, page=page, limit=limit)
    return http.json_response(http.approvals_page(rows, total, page, limit))


@app.get("/approvals/count")
def count_approvals() -> Response:
    filters = http.approval_count_query(app.current_event.query_string_parameters or {})
    count, latest = service.count_pending(dependencies(), _caller(), filters)
    # ``latest_at`` (Signoff's): with the count, it changes whenever the list does
    return http.json_response({"count": count, "latest_at": latest})


@app.get("/approvals/<approval_id>/status")
def approval_status(approval_id: str) -> Response:
    row = service.get_approval(dependencies(), _caller(), approval_id)
    return http.json_response(wire.approval_status_object(row))


@app.get("/approvals/<approval_id>/context")
def approval_context(approval_id: str) -> Response:
    row = service.approval_context(dependencies(), _caller(), approval_id)
    return http.json_response(wire.approval_context_object(row))


@app.get("/approvals/<approval_id>")
def get_approval(approval_id: str) -> Response:
    return http.json_response(
        wire.approval_object(service.get_approval(dependencies(), _caller(), approval_id))
    )


@app.post("/approvals/<approval_id>/resolve")
def resolve_approval(approval_id: str) -> Response:
    deps = dependencies()
    event = app.current_event.raw_event
    approve, data = http.resolve_input(event, deps.settings.max_body_bytes)
    row, outcome = service.resolve_approval(
        deps, _caller(), approval_id, approve=approve, resolution_data=data, meta=http.request_meta(event)
    )
    record_decision(outcome.call, "approvals", deferred=outcome.deferred)
    body = wire.approval_object(row)
    if outcome.deferred:
        body["detail"] = wire.DEFERRED_DETAIL
    return http.json_response(body, 202 if outcome.deferred else 200)


@app.delete("/approvals/<approval_id>")
def delete_approval(approval_id: str) -> Response:
    service.delete_approval(dependencies(), _caller(), approval_id)
    return Response(status_code=204, body="")


@app.get("/approve/<token>")
def show_link(token: str) -> Response:
    page, status = link.show(dependencies(), token, app.current_event.path)
    return http.html_response(page, status)


@app.post("/approve/<token>")
def use_link(token: str) -> Response:
    fields = http.parse_fields(app.current_event.raw_event, dependencies().settings.max_body_bytes)
    note = fields.get("note") or None
    meta = http.request_meta(app.current_event.raw_event)
    page, status, outcome = link.use(dependencies(), token, note if isinstance(note, str) else None, meta)
    if outcome is not None:
        record_decision(outcome.call, link.NAME, deferred=outcome.deferred, agent_id=outcome.state.agent_id)
    return http.html_response(page, status)


@app.get("/inbox")
def inbox_shell() -> Response:
    page, headers = inbox.shell(get_settings())
    return Response(status_code=200, body=page, headers=headers)


@app.get("/inbox/<asset>")
def inbox_asset(asset: str) -> Response:
    found = inbox.asset(asset)
    if found is None:
        raise NotFound("Not found")
    content, content_type, headers = found
    return Response(status_code=200, content_type=content_type, body=content.decode(), headers=headers)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    return app.resolve(event, context)
