"""The approver's inbox: the page shell (sign-in configuration only, no data) and its static files.

The shell is public: everything it shows comes from the API afterwards, fetched by ``static/inbox.js``
with the signed-in person's token. Only the standard library is imported (a Lambda cold start pays for
this module).
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_STATIC = Path(__file__).resolve().parent / "static"
# The only files served, by name: a request's path never reaches the file system.
_ASSETS = {
    "inbox.js": "text/javascript; charset=utf-8",
    "inbox.css": "text/css; charset=utf-8",
}
_ASSET_HEADERS = {
    "Cache-Control": "public, max-age=300",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_HOST = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


def origin_of(url: str) -> str | None:
    """The ``scheme://host[:port]`` of an absolute http(s) URL, or None (relative, other scheme, or a
    host a Content-Security-Policy source could not carry safely)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not _HOST.match(parts.netloc or ""):
        return None
    return f"{parts.scheme}://{parts.netloc.lower()}"


def content_security_policy(settings: Any) -> str:
    """The shell's policy: own scripts and styles only, the API and the token endpoint as the only
    places to fetch from, and Trusted Types with no policy, so no code can assign an HTML string."""
    connect = ["'self'"]
    token_origin = origin_of(settings.inbox_token_url) if settings.inbox_token_url else None
    if token_origin:
        connect.append(token_origin)
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {' '.join(connect)}",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        ]
    )


def sign_in_config(settings: Any) -> dict[str, str]:
    """What the page needs to sign someone in; nothing else from the settings reaches the browser."""
    if settings.auth_mode != "jwt":
        return {"auth": "none"}
    return {
        "auth": "jwt",
        "authorizeUrl": settings.inbox_authorize_url,
        "tokenUrl": settings.inbox_token_url,
        "clientId": settings.inbox_client_id,
        "scopes": settings.inbox_scopes,
        "logoutUrl": settings.inbox_logout_url,
    }


def _json_for_html(value: Any) -> str:
    # Inside <script type="application/json"> only "</script" or "<!--" could end the block early.
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@cache
def _version(name: str) -> str:
    return hashlib.sha256((_STATIC / name).read_bytes()).hexdigest()[:12]


def shell(settings: Any) -> tuple[str, dict[str, str]]:
    """The inbox page and its response headers.

    The page holds the sign-in configuration (as inert JSON) and nothing else; its script loads the
    approvals with the signed-in person's token. Every URL in it is relative, so the inbox works under
    an API stage or a base path.

    Args:
        settings: the runtime settings (``auth_mode`` and the ``inbox_*`` fields are read).

    Returns:
        ``(html, headers)``.
    """
    config = _json_for_html(sign_in_config(settings))
    css, js = _version("inbox.css"), _version("inbox.js")
    page = (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="robots" content="noindex"><meta name="referrer" content="no-referrer">'
        "<title>Inbox · Signoff</title>"
        '<link rel="icon" href="data:,">'
        f'<link rel="stylesheet" href="inbox/inbox.css?v={escape(css)}">'
        f'<script type="module" src="inbox/inbox.js?v={escape(js)}"></script>'
        f'<script type="application/json" id="inbox-config">{config}</script>'
        "</head><body>"
        '<a class="skip" href="#main">Skip to the approvals</a>'
        '<header class="bar"><p class="brand">Signoff</p><div id="account" class="account"></div></header>'
        '<main id="main" tabindex="-1"><h1>Inbox</h1>'
        '<p id="boot">Loading the inbox… It needs JavaScript.</p></main>'
        '<div id="announce" class="visually-hidden" aria-live="polite" aria-atomic="true"></div>'
        "</body></html>\n"
    )
    headers = {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    return page, headers


@cache
def _read(name: str) -> bytes:
    return (_STATIC / name).read_bytes()


def asset(name: str) -> tuple[bytes, str, dict[str, str]] | None:
    """One of the inbox's static files by name, or None when the name is not one of them.

    Args:
        name: the file name from the request (compared with a fixed list; never used as a path).

    Returns:
        ``(content, content_type, headers)``, or None.
    """
    content_type = _ASSETS.get(name)
    if content_type is None:
        return None
    return _read(name), content_type, dict(_ASSET_HEADERS)
