"""Dev sign-in: a tiny OAuth 2.0 authorization server for the inbox under ``SIGNOFF_AUTH=jwt make dev``.

It plays the part of Cognito's hosted UI locally: ``GET /dev/oauth2/authorize`` shows a form (user id
and groups, no password: this is a dev server), ``POST /dev/oauth2/authorize`` issues a one-time code
bound to the PKCE challenge and the redirect URI and sends the browser back with it, and
``POST /dev/oauth2/token`` exchanges the code for local JWTs (``signoff_dev.jwt.mint``) once the
verifier matches the challenge (S256 only). The only redirect URI accepted is the dev server's own
``/inbox``, and the only client the inbox's (``signoff-dev-inbox``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from html import escape
from urllib.parse import parse_qsl, urlencode, urlsplit

from signoff_dev import jwt

CLIENT_ID = "signoff-dev-inbox"
AUTHORIZE_PATH = "/dev/oauth2/authorize"
TOKEN_PATH = "/dev/oauth2/token"
CODE_TTL_S = 60
TOKEN_TTL_S = 3600
_VERIFIER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PAGE_HEADERS = [
    ("content-type", "text/html; charset=utf-8"),
    ("cache-control", "no-store"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    ),
]
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;line-height:1.5}"
    "label{display:block;font-weight:600;margin-top:1rem}input{font:inherit;width:100%;padding:.5rem}"
    "button{font:inherit;margin-top:1.2rem;padding:.6rem 1.4rem}.note{color:#666;font-size:.9rem}"
)

Reply = tuple[int, list[tuple[str, str]], bytes]


@dataclass(frozen=True)
class _Grant:
    user_id: str
    groups: tuple[str, ...]
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    expires_at: float


def _page(title: str, body: str, status: int = 200) -> Reply:
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body><main>{body}</main></body></html>"
    )
    return status, list(_PAGE_HEADERS), html.encode()


def _problem(message: str, status: int = 400) -> Reply:
    return _page("Sign-in refused", f"<h1>Sign-in refused</h1><p id=problem>{escape(message)}</p>", status)


def _json(status: int, payload: Mapping[str, object], origin: str | None) -> Reply:
    headers = [("content-type", "application/json"), ("cache-control", "no-store"), ("pragma", "no-cache")]
    if origin:
        # The inbox's page calls the token endpoint from the browser (Cognito's answers carry CORS too).
        headers += [("access-control-allow-origin", origin), ("vary", "Origin")]
    return status, headers, json.dumps(payload).encode()


def challenge_of(verifier: str) -> str:
    """``BASE64URL(SHA256(verifier))``, the S256 code challenge (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class DevAuthorizationServer:
    """Codes in memory, one use each, for ``CODE_TTL_S`` seconds.

    Args:
        redirect_uris: a callable giving the redirect URIs accepted for a request's ``Host`` header
            (the dev server's own ``/inbox`` URLs).
        secret: the local JWT secret the tokens are signed with.
        clock: the time source (tests).
    """

    def __init__(
        self,
        redirect_uris: Callable[[str | None], Collection[str]],
        *,
        secret: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redirect_uris = redirect_uris
        self._secret = secret
        self._clock = clock
        self._codes: dict[str, _Grant] = {}
        self._lock = threading.Lock()

    def handle(
        self, method: str, path: str, query: str, body: bytes, headers: Mapping[str, str]
    ) -> Reply | None:
        """Answer a request to one of the dev sign-in paths; None for any other path.

        Args:
            method: the HTTP method.
            path: the request path (no query).
            query: the raw query string.
            body: the request body.
            headers: the request headers (``Host``, ``Origin`` and ``Content-Type`` are read).

        Returns:
            ``(status, headers, body)``, or None when the path is not the sign-in's.
        """
        lower = {name.lower(): value for name, value in headers.items()}
        if path == AUTHORIZE_PATH and method in ("GET", "HEAD"):
            return self.authorize_form(dict(parse_qsl(query)), lower.get("host"))
        if path == AUTHORIZE_PATH and method == "POST":
            return self.authorize(_form(body), lower.get("host"))
        if path == TOKEN_PATH and method == "POST":
            return self.token(_form(body), lower.get("origin"), lower.get("host"))
        if path in (AUTHORIZE_PATH, TOKEN_PATH):
            return 405, [("allow", "GET, POST" if path == AUTHORIZE_PATH else "POST")], b""
        return None

    def _check_request(self, params: Mapping[str, str], host: str | None) -> str | None:
        if params.get("client_id") != CLIENT_ID:
            return f"Unknown client_id (this server knows only {CLIENT_ID})."
        if params.get("redirect_uri") not in self._redirect_uris(host):
            return "redirect_uri must be this dev server's own /inbox page."
        if params.get("response_type", "code") != "code":
            return "Only response_type=code is supported."
        if params.get("code_challenge_method") != "S256" or len(params.get("code_challenge") or "") != 43:
            return "A PKCE code_challenge with code_challenge_method=S256 is required."
        return None

    def authorize_form(self, params: Mapping[str, str], host: str | None) -> Reply:
        """``GET``: the sign-in form, the request's parameters kept in hidden fields."""
        problem = self._check_request(params, host)
        if problem:
            return _problem(problem)
        hidden = "".join(
            f'<input type=hidden name="{name}" value="{escape(params.get(name, ""))}">'
            for name in (
                "client_id",
                "redirect_uri",
                "state",
                "code_challenge",
                "code_challenge_method",
                "scope",
            )
        )
        body = (
            "<h1>Dev sign-in</h1>"
            "<p class=note>Local only: <code>SIGNOFF_AUTH=jwt make dev</code> signs anyone in as "
            "whoever they type. A deployed stack signs in at Cognito.</p>"
            f"<form method=post action=authorize>{hidden}"
            "<label for=user_id>User id</label><input id=user_id name=user_id required autocomplete=username "
            'value="">'
            "<label for=groups>Groups (comma-separated)</label>"
            '<input id=groups name=groups autocomplete=off placeholder="finance, security">'
            "<button type=submit id=sign-in>Sign in</button></form>"
        )
        return _page("Dev sign-in", body)

    def authorize(self, form: Mapping[str, str], host: str | None) -> Reply:
        """``POST``: issue a one-time code and send the browser back to the inbox with it."""
        problem = self._check_request(form, host)
        if problem:
            return _problem(problem)
        user_id = (form.get("user_id") or "").strip()
        if not user_id:
            return _problem("A user id is needed.")
        groups = tuple(group.strip() for group in (form.get("groups") or "").split(",") if group.strip())
        code = secrets.token_urlsafe(32)
        grant = _Grant(
            user_id=user_id,
            groups=groups,
            client_id=form["client_id"],
            redirect_uri=form["redirect_uri"],
            challenge=form["code_challenge"],
            scope=form.get("scope") or "openid",
            expires_at=self._clock() + CODE_TTL_S,
        )
        with self._lock:
            now = self._clock()
            for stale in [key for key, kept in self._codes.items() if kept.expires_at <= now]:
                del self._codes[stale]
            self._codes[code] = grant
        query = {"code": code}
        if form.get("state"):
            query["state"] = form["state"]
        location = f"{grant.redirect_uri}?{urlencode(query)}"
        return 302, [("location", location), ("cache-control", "no-store"), ("content-length", "0")], b""

    def token(self, form: Mapping[str, str], origin: str | None, host: str | None) -> Reply:
        """``POST``: the code for tokens, when the client, redirect URI and PKCE verifier match."""
        allowed_origin = origin if origin and _origin_of_any(origin, self._redirect_uris(host)) else None
        if form.get("grant_type") != "authorization_code":
            return _json(400, {"error": "unsupported_grant_type"}, allowed_origin)
        code, verifier = form.get("code") or "", form.get("code_verifier") or ""
        with self._lock:
            grant = self._codes.pop(code, None)  # one use, whatever the outcome
        if (
            grant is None
            or grant.expires_at <= self._clock()
            or form.get("client_id") != grant.client_id
            or form.get("redirect_uri") != grant.redirect_uri
            or not 43 <= len(verifier) <= 128
            or not set(verifier) <= _VERIFIER_CHARS
            or not hmac.compare_digest(challenge_of(verifier), grant.challenge)
        ):
            return _json(400, {"error": "invalid_grant"}, allowed_origin)
        now = self._clock()
        access = jwt.mint(grant.user_id, groups=grant.groups, ttl_s=TOKEN_TTL_S, secret=self._secret, now=now)
        identity = jwt.mint(
            grant.user_id,
            groups=grant.groups,
            ttl_s=TOKEN_TTL_S,
            secret=self._secret,
            now=now,
            extra={"token_use": "id"},
        )
        payload = {
            "access_token": access,
            "id_token": identity,
            "token_type": "Bearer",
            "expires_in": TOKEN_TTL_S,
            "scope": grant.scope,
        }
        return _json(200, payload, allowed_origin)


def _form(body: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return {}


def _origin_of_any(origin: str, uris: Collection[str]) -> bool:
    for uri in uris:
        parts = urlsplit(uri)
        if origin == f"{parts.scheme}://{parts.netloc}":
            return True
    return False


def inbox_urls(base_url: str, host: str | None) -> set[str]:
    """The redirect URIs the dev server accepts: its own ``/inbox``, as printed and as the browser
    reached it (``Host``), so that ``localhost`` and ``127.0.0.1`` both work."""
    urls = {f"{base_url}/inbox"}
    try:
        same_port = bool(host) and urlsplit(f"http://{host}").port == urlsplit(base_url).port
    except ValueError:  # a Host header that is no host:port
        same_port = False
    if same_port:
        urls.add(f"http://{host}/inbox")
    return urls
