"""Approval links: single-use links (one per call and decision) in pause notifications. Opening one
shows the call and a button (GET never decides: link previews must not approve); the button's POST
decides. A link proves no identity, so tools that name approvers or bar self-approval get none."""

from __future__ import annotations

from typing import Any

from signoff import approval_page
from signoff.decisions import Decider
from signoff.errors import SignoffError

NAME = "link"
ACTOR = "approval-link"


def show(deps: Any, token: str, action: str) -> tuple[str, int]:
    """The page a link opens: the call and the button, or why it can no longer decide."""
    from signoff.http import status_for
    from signoff.service import approval_by_token

    try:
        view = approval_by_token(deps, token)
    except SignoffError as exc:
        return approval_page.problem_page(*approval_page.PROBLEMS["not_found"]), status_for(exc)
    if not view.usable:
        return approval_page.problem_page(*approval_page.PROBLEMS[view.reason or "not_found"]), 410
    page = approval_page.confirm_page(
        agent_name=view.state.agent_name,
        tool_name=view.call.tool_name,
        tool_args=view.call.tool_args,
        requested_by=view.state.user_id,
        request=view.state.input_content,
        references=view.state.references,
        expires_at=view.expires_at,
        decision=view.decision,
        action=action,
    )
    return page, 200


def use(deps: Any, token: str, note: str | None, meta: dict[str, Any]) -> tuple[str, int, Any]:
    """Decide through a link's button: the page, its status, and the outcome (``None`` if refused)."""
    from signoff.http import status_for
    from signoff.service import decide_by_token

    decider = Decider(None, ACTOR, NAME, vouched=True, meta=meta)
    try:
        outcome = decide_by_token(deps, token, decider=decider, note=note)
    except SignoffError as exc:
        status = status_for(exc)
        reason = {409: "already_used", 410: "expired"}.get(status, "not_found")
        return approval_page.problem_page(*approval_page.PROBLEMS[reason]), status, None
    page = approval_page.outcome_page(
        decision=outcome.verdict,
        tool_name=outcome.call.tool_name,
        resumed=outcome.resumed,
        deferred=outcome.deferred,
    )
    return page, 202 if outcome.deferred else 200, outcome
