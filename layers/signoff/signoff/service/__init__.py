"""Use cases, by concern: each loads, calls the domain (state methods, ``signoff.decisions``), saves
and announces. Handlers call these; nothing here speaks HTTP or SQL.

- ``runs``: start, continue, cancel (the owner, through the API) and resume (the worker).
- ``deciding``: decisions from outside the continue (webhook, Slack, link, queue), kept while busy.
- ``upkeep``: expiry, dead runs, stranded runs, kept decisions nobody applied, notification retries.
- ``reads``: runs, audit trails and sessions.
- ``approvals``: AgentOS's approvals API over the paused calls that wait on a person.
- ``sessions``: one session, a run of it, rename and delete (final for its paused calls).
- ``discovery``: the deployment's agents, for ``/config`` and ``/agents``.
- ``common``: dependencies, results, and running a claimed run to its next stop.
"""

from signoff.authz import Principal
from signoff.decisions import Decider, Decision
from signoff.service.approvals import (
    approval_context,
    count_pending,
    delete_approval,
    get_approval,
    list_approvals,
    resolve_approval,
)
from signoff.service.common import ContinueInput, Dependencies, RunResult, StartInput
from signoff.service.deciding import (
    ApprovalView,
    DecisionOutcome,
    approval_by_token,
    decide,
    decide_by_token,
    decide_received,
    record_refusal,
)
from signoff.service.discovery import get_agent, list_agents
from signoff.service.reads import get_run, list_runs, list_sessions, run_events, session_runs
from signoff.service.runs import cancel_run, continue_run, resume_run, start_run
from signoff.service.sessions import (
    SessionView,
    delete_session,
    get_session,
    rename_session,
    session_run,
)
from signoff.service.upkeep import (
    apply_kept_decisions,
    expire_pauses,
    renotify,
    requeue_stranded,
    sweep_stale_runs,
)

__all__ = [
    "ApprovalView",
    "ContinueInput",
    "Decider",
    "Decision",
    "DecisionOutcome",
    "Dependencies",
    "Principal",
    "RunResult",
    "SessionView",
    "StartInput",
    "apply_kept_decisions",
    "approval_by_token",
    "approval_context",
    "cancel_run",
    "continue_run",
    "count_pending",
    "decide",
    "decide_by_token",
    "decide_received",
    "delete_approval",
    "delete_session",
    "expire_pauses",
    "get_agent",
    "get_approval",
    "get_run",
    "get_session",
    "list_agents",
    "list_approvals",
    "list_runs",
    "list_sessions",
    "record_refusal",
    "rename_session",
    "renotify",
    "requeue_stranded",
    "resolve_approval",
    "resume_run",
    "run_events",
    "session_run",
    "session_runs",
    "start_run",
    "sweep_stale_runs",
]
