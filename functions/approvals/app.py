"""Decisions from outside: signed webhooks, Slack buttons and approval links (/approvals/...)."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths

from signoff import approval_page, http, service
from signoff.errors import SignoffError
from signoff.notify import update_slack_message
from signoff.observability import logger, metrics, record_decision, tracer
from signoff.runtime import dependencies, slack_signing_secret, webhook_secret

app = APIGatewayHttpResolver()
http.install_error_handlers(app, logger)


def _raw_body() -> bytes:
    return http.body_bytes(app.current_event.raw_event, dependencies().settings.max_body_bytes)


def _header(name: str) -> str:
    return app.current_event.headers.get(name) or ""  # Powertools headers are case-insensitive


def _meta() -> dict:
    return http.request_meta(app.current_event.raw_event)


@app.post("/approvals/webhook")
def webhook() -> Response:
    outcome = service.receive_webhook(
        dependencies(), _raw_body(), _header("signoff-signature"), secret=webhook_secret(), meta=_meta()
    )
    record_decision(outcome.call, "webhook", deferred=outcome.deferred)
    return http.decision_response(outcome)


@app.post("/approvals/slack")
def slack() -> Response:
    outcome, response_url = service.receive_slack(
        dependencies(),
        _raw_body(),
        _header("x-slack-request-timestamp"),
        _header("x-slack-signature"),
        signing_secret=slack_signing_secret(),
        meta=_meta(),
    )
    record_decision(outcome.call, "slack", deferred=outcome.deferred)
    message = http.slack_decision_message(outcome)
    if response_url:
        update_slack_message(response_url, message)
    return http.json_response(message)


@app.get("/approvals/<token>")
def show_link(token: str) -> Response:
    try:
        view = service.approval_by_token(dependencies(), token)
    except SignoffError as exc:
        return http.html_response(
            approval_page.problem_page(*approval_page.PROBLEMS["not_found"]), http.status_for(exc)
        )
    if not view.usable:
        return http.html_response(
            approval_page.problem_page(*approval_page.PROBLEMS[view.reason or "not_found"]), 410
        )
    return http.html_response(
        approval_page.confirm_page(
            agent_name=view.state.agent_name,
            tool_name=view.call.tool_name,
            tool_args=view.call.tool_args,
            requested_by=view.state.user_id,
            expires_at=view.expires_at,
            decision=view.decision,
            action=app.current_event.path,
        )
    )


@app.post("/approvals/<token>")
def use_link(token: str) -> Response:
    fields = http.parse_fields(app.current_event.raw_event, dependencies().settings.max_body_bytes)
    note = fields.get("note") or None
    try:
        decider = service.Decider(None, "approval-link", "link", vouched=True, meta=_meta())
        outcome = service.decide_by_token(
            dependencies(), token, decider=decider, note=note if isinstance(note, str) else None
        )
    except SignoffError as exc:
        reason = {409: "already_used", 410: "expired"}.get(http.status_for(exc), "not_found")
        return http.html_response(
            approval_page.problem_page(*approval_page.PROBLEMS[reason]), http.status_for(exc)
        )
    record_decision(outcome.call, "link", deferred=outcome.deferred)
    page = approval_page.outcome_page(
        decision=outcome.verdict,
        tool_name=outcome.call.tool_name,
        resumed=outcome.resumed,
        deferred=outcome.deferred,
    )
    return http.html_response(page, 202 if outcome.deferred else 200)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    return app.resolve(event, context)
