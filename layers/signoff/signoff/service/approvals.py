"""The approvals API (AgentOS's ``/approvals``): every paused call that waits on a person is a record.

Seeing and deciding are separate: a record is seen by its run's owner, by the approvers its tool
names and by the admins (``SIGNOFF_APPROVAL_ADMINS``); anyone else gets 404. Resolving decides the
call through the same path as every other channel (``deciding.decide``: bound to the stored
arguments, exactly once, audited, kept while the run executes) and then resumes the run through the
queue — AgentOS's resolve only records; Signoff's also continues the run.
"""

from __future__ import annotations

import time
from typing import Any

from signoff import decisions
from signoff.authz import sees_approval
from signoff.errors import AlreadyDecided, Conflict, NotFound
from signoff.identity import Principal
from signoff.service.common import Dependencies
from signoff.service.deciding import DecisionOutcome, decide
from signoff.store.base import ApprovalViewer

CHANNEL = "approvals"


def _viewer(deps: Dependencies, principal: Principal | None) -> ApprovalViewer:
    if principal is None:
        return ApprovalViewer(everyone=True)
    admins = deps.settings.admins
    admin = bool(admins) and principal.matches(admins)
    return ApprovalViewer(admin, principal.user_id, (principal.user_id, *(principal.groups or ())), admin)


def _with_rights(deps: Dependencies, principal: Principal | None, row: dict[str, Any]) -> dict[str, Any]:
    """The record with its agent's name and what the caller may do with it now: ``decidable``
    (approve, answer or reject it) and ``editable`` (approve it with changed arguments)."""
    from signoff.authz import decision_refusal, edit_refusal

    decidable = editable = False
    tool = None
    agent = deps.catalog.find(row["agent_id"])
    # The agent's name as this deployment has it (read from the catalog, not from each run's
    # document: a page of records stays a read of indexed columns).
    row["source_name"] = agent.name if agent is not None else row["agent_id"]
    if row["status"] == "pending" and row["pause_type"] != "external_execution" and agent is not None:
        tool = agent.tool(row["tool_name"])
    if tool is not None and not (row["expires_at"] and row["expires_at"] <= time.time()):
        owner = row["user_id"]
        # The right to decide at all: rejecting, the weaker of the two (approving may be barred).
        decidable = (
            decision_refusal(
                tool,
                principal,
                owner,
                approval_type=row["approval_type"],
                approve=False,
                admins=deps.settings.admins,
            )
            is None
        )
        editable = (
            decidable
            and row["pause_type"] == "confirmation"
            and not (row["asks"] or {}).get("user_feedback_schema")
            and edit_refusal(tool, principal, owner) is None
        )
    row["decidable"], row["editable"] = decidable, editable
    return row


def list_approvals(
    deps: Dependencies, principal: Principal | None, filters: dict[str, Any], *, page: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of the records the caller may see (filters: status, approval_type, pause_type,
    agent_id, user_id, run_id, tool_name; ``decidable``: only the pending ones the caller may decide
    now), newest first, with the total."""
    rows, total = deps.store.approvals(
        viewer=_viewer(deps, principal), filters=filters, limit=limit, offset=(page - 1) * limit
    )
    return [_with_rights(deps, principal, row) for row in rows], total


def count_pending(
    deps: Dependencies, principal: Principal | None, filters: dict[str, Any]
) -> tuple[int, float | None]:
    """How many pending records the caller sees (with the list's filters; ``decidable`` included),
    and when the newest of them paused."""
    return deps.store.pending_approval_count(viewer=_viewer(deps, principal), filters=filters)


def get_approval(deps: Dependencies, principal: Principal | None, approval_id: str) -> dict[str, Any]:
    """One record the caller may see; 404 for a record they may not (as for one that does not exist)."""
    row = deps.store.approval(approval_id)
    if row is None or not sees_approval(principal, row["user_id"], row["approvers"], deps.settings.admins):
        raise NotFound("Approval not found")
    return _with_rights(deps, principal, row)


def approval_context(deps: Dependencies, principal: Principal | None, approval_id: str) -> dict[str, Any]:
    """What led to the record's call, for whoever may see the record: the user's request, the
    conversation of this run (user, assistant and tool messages), the earlier runs of its session,
    and the references its tools read (knowledge passages)."""
    row = deps.store.approval_context(approval_id)
    if row is None or not sees_approval(principal, row["user_id"], row["approvers"], deps.settings.admins):
        raise NotFound("Approval not found")
    return row


def resolve_approval(
    deps: Dependencies,
    principal: Principal | None,
    approval_id: str,
    *,
    approve: bool,
    resolution_data: dict[str, Any] | None,
    meta: dict[str, Any],
) -> tuple[dict[str, Any], DecisionOutcome]:
    """Decide the record's call as ``principal`` (``resolved_by`` is always the verified identity).

    ``resolution_data`` may carry ``note`` (what the model is told on a rejection), ``args_digest``
    (the decision holds only for those arguments), ``user_input`` (``{field: value}``) for a
    user-input call, ``answers`` (``{question: [labels]}``) for the agent's questions,
    ``tool_args`` (the complete arguments to run with instead: an ``editable`` tool, an approver who
    is not the requester, with ``args_digest``), and anything else, stored with the record.

    Raises:
        NotFound: no such record the caller may see. AlreadyDecided: no longer pending (409).
        Anything ``deciding.decide`` refuses with, for the same reasons as every channel.
    """
    row = get_approval(deps, principal, approval_id)
    if row["status"] != "pending":
        raise AlreadyDecided(f"Approval is already '{row['status']}' and cannot be resolved")
    data = dict(resolution_data or {})
    note = data.get("note")
    digest = data.get("args_digest")
    values = data.get("user_input")
    answers = data.get("answers")
    decision = decisions.Decision(
        row["tool_call_id"],
        approve,
        note if isinstance(note, str) else None,
        values=values if isinstance(values, dict) else None,
        answers=answers if isinstance(answers, dict) else None,
        shown_digest=digest if isinstance(digest, str) else None,
        resolution_data=data or None,
        edited_args=data.get("tool_args"),
    )
    actor = principal.user_id if principal else None
    decider = decisions.Decider(principal, actor, CHANNEL, meta=meta)
    outcome = decide(deps, decision, decider, run_id=row["run_id"])
    return _with_rights(deps, principal, deps.store.approval(approval_id) or row), outcome


def delete_approval(deps: Dependencies, principal: Principal | None, approval_id: str) -> None:
    """Take a resolved record out of the list (the run's audit trail keeps the decision).

    Raises:
        NotFound: no such record the caller may see. Conflict: it is still pending (records are
        audit: resolve it or let it expire first).
    """
    row = get_approval(deps, principal, approval_id)
    if row["status"] == "pending":
        raise Conflict("Approval is pending: resolve it or let it expire before deleting it")
    if not deps.store.hide_approval(approval_id):
        raise NotFound("Approval not found")
