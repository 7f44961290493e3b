"""Approval tokens: minted at a pause, stored hashed, one per call and decision, single-use."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from signoff.agent import Agent
from signoff.state import RunState


def hash_token(token: str) -> str:
    """Tokens are stored only as this digest; the plain token exists in the link alone."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class IssuedLinks:
    """Approval tokens minted at a pause: rows for the store, plain links for the notification."""

    rows: list[dict[str, Any]]
    links: dict[str, dict[str, str]]
    fresh: list[str]  # the calls that started waiting now


def issue_tokens(state: RunState, agent: Agent, *, now: int, fresh_only: bool = True) -> IssuedLinks:
    """Give every pending confirmation call an approve and a reject link, each single-use.

    A call's expiry is set once, when it first waits; ``fresh_only=False`` mints new links for
    calls that already wait (a notification re-sent from the queue) without moving the expiry.
    """
    rows: list[dict[str, Any]] = []
    links: dict[str, dict[str, str]] = {}
    fresh: list[str] = []
    base = (state.public_url or "").rstrip("/")
    for call in state.pending_tools:
        if call.expires_at is None:
            tool = agent.tool(call.tool_name)
            ttl = (tool.approval_ttl_seconds if tool else None) or agent.approval_ttl_seconds
            call.expires_at = now + ttl
            fresh.append(call.tool_call_id)
        elif fresh_only:
            continue
        tool = agent.tool(call.tool_name)
        if call.requirement != "confirmation" or (
            tool is not None
            and (tool.approvers or not tool.allow_self_approval or tool.approval_type == "required")
        ):
            continue  # a link proves no identity: such tools are decided where identity is known
        links[call.tool_call_id] = {}
        for decision in ("approve", "reject"):
            token = secrets.token_urlsafe(32)
            rows.append(
                {
                    "token_hash": hash_token(token),
                    "tool_call_id": call.tool_call_id,
                    "decision": decision,
                    "expires_at": call.expires_at,
                }
            )
            links[call.tool_call_id][decision] = f"{base}/approve/{token}"
    return IssuedLinks(rows, links, fresh)


from signoff.channels.webhook import sign, verify_signature  # noqa: E402 - the signing scheme's home

__all__ = ["IssuedLinks", "hash_token", "issue_tokens", "sign", "verify_signature"]
