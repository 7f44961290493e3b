"""The approval link's pages: plain server-rendered HTML, no JavaScript, everything escaped."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;
color:#1d1d1f;line-height:1.5}
h1{font-size:1.4rem}pre{background:#f4f4f6;padding:1rem;border-radius:6px;overflow-x:auto;white-space:pre-wrap}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}dt{color:#6e6e73}
button{font-size:1rem;padding:.6rem 1.4rem;border-radius:6px;border:0;cursor:pointer;color:#fff}
.approve{background:#1a7f37}.reject{background:#cf222e}textarea{width:100%;min-height:4rem}
.note{color:#6e6e73;font-size:.9rem}h2{font-size:1.05rem;margin-top:1.5rem}
blockquote{margin:0;padding:.5rem 1rem;border-left:3px solid #d0d0d7;white-space:pre-wrap}
ol{padding-left:1.4rem}li{margin:.4rem 0}li span{color:#3a3a3c}
"""


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _page(title: str, body: str, status_class: str = "") -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f'<body class="{status_class}"><main>{body}</main></body></html>'
    )


def confirm_page(
    *,
    agent_name: str,
    tool_name: str,
    tool_args: dict,
    requested_by: str | None,
    expires_at: float,
    decision: str,
    action: str,
    request: str | None = None,
    references: list[dict] | None = None,
) -> str:
    """The GET page: what will run, for whom, until when, what the user asked and what the agent
    read; only its form's POST decides."""
    verb = "Approve" if decision == "approve" else "Reject"
    args = json.dumps(tool_args, indent=2, ensure_ascii=False, sort_keys=True)
    body = (
        f"<h1>{escape(verb)} this action?</h1>"
        f"<p><strong>{escape(agent_name)}</strong> wants to run <code>{escape(tool_name)}</code> with:</p>"
        f'<pre id="tool-args">{escape(args)}</pre>'
        "<dl>"
        f"<dt>Requested by</dt><dd id=requested-by>{escape(requested_by or 'unknown')}</dd>"
        f"<dt>Link expires</dt><dd id=expires>{escape(_iso(expires_at))}</dd>"
        "</dl>"
        + _request_section(request)
        + _references_section(references or [])
        + f'<form method="post" action="{escape(action)}">'
        "<p><label for=note>Note (optional)</label><br>"
        "<textarea id=note name=note maxlength=2000></textarea></p>"
        f'<button type=submit id=decide class="{escape(decision)}">{escape(verb)}</button>'
        "</form>"
        '<p class="note">Nothing happens until you press the button. This link works once.</p>'
    )
    return _page(f"{verb} {tool_name}", body)


def _request_section(request: str | None) -> str:
    if not request:
        return ""
    return f'<h2>What the user asked</h2><blockquote id="request">{escape(request)}</blockquote>'


def _references_section(references: list[dict]) -> str:
    """What the agent read before asking (knowledge passages), each with where it comes from."""
    if not references:
        return ""
    items = []
    for ref in references[:20]:
        where = " · ".join(
            str(ref[key]) for key in ("kb", "document_id", "title") if ref.get(key) not in (None, "")
        )
        excerpt = ref.get("excerpt") or ref.get("content") or ""
        items.append(
            f"<li><strong>{escape(where or 'passage')}</strong>"
            + (f"<br><span>{escape(str(excerpt)[:600])}</span>" if excerpt else "")
            + "</li>"
        )
    return f'<h2>What the agent read</h2><ol id="references">{"".join(items)}</ol>'


def outcome_page(*, decision: str, tool_name: str, resumed: bool, deferred: bool = False) -> str:
    """After the POST: what was decided and what happens next."""
    done = "approved" if decision == "approve" else "rejected"
    if deferred:
        after = (
            "The run is executing another action right now. Your decision is kept and applied as "
            "soon as the run is free, after checking again that the action still waits for it."
        )
    elif resumed:
        after = "The run continues now."
    else:
        after = "The run continues once its other pending actions are decided."
    body = f"<h1 id=outcome>You {escape(done)} <code>{escape(tool_name)}</code>.</h1><p>{escape(after)}</p>"
    return _page(f"{done.capitalize()}", body, done)


def problem_page(title: str, message: str) -> str:
    """A link that cannot decide any more (used, expired, unknown)."""
    return _page(title, f"<h1 id=problem>{escape(title)}</h1><p>{escape(message)}</p>", "problem")


PROBLEMS = {
    "already_used": ("Already used", "This approval link was already used; a decision was made."),
    "expired": ("Link expired", "This approval link has expired; the action was not run."),
    "not_found": ("Link not valid", "This approval link is not valid."),
}
