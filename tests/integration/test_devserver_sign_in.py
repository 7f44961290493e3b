"""`SIGNOFF_AUTH=jwt make dev`: the inbox's dev sign-in, an OAuth 2.0 authorization-code server with PKCE.

The form keeps the request's parameters; a code comes back only to the dev server's own /inbox, works
once, for a minute, and only with the verifier whose S256 digest was the challenge; the tokens it buys
are accepted by the API as the person and groups typed in. Without JWTs there is no sign-in at all.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import urllib.error
import urllib.request
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from signoff_dev import jwt
from signoff_dev.devserver import DevServer
from signoff_dev.oauth import CLIENT_ID, DevAuthorizationServer
from tests.support.devserver import local_server

ROOT = Path(__file__).resolve().parents[2]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _http(url: str, fields: dict[str, str] | None = None, headers: dict[str, str] | None = None):
    data = urlencode(fields).encode() if fields is not None else None
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with _OPENER.open(request, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@pytest.fixture
def server(db, model, monkeypatch):
    monkeypatch.setenv("SIGNOFF_AGENTS_MODULE", "catalog")
    for name in ("SIGNOFF_INBOX_AUTHORIZE_URL", "SIGNOFF_INBOX_TOKEN_URL", "SIGNOFF_INBOX_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    with local_server(db, model.base_url, auth="jwt", jwt_secret="test-jwt-secret") as dev:
        yield dev


def _authorize(
    server: DevServer, challenge: str, *, user: str = "alice", groups: str = "finance, ops"
) -> str:
    """The form's POST, as the browser sends it; returns the code from the redirect."""
    status, headers, _ = _http(
        f"{server.base_url}/dev/oauth2/authorize",
        {
            "client_id": CLIENT_ID,
            "redirect_uri": f"{server.base_url}/inbox",
            "state": "st-123",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "scope": "openid",
            "user_id": user,
            "groups": groups,
        },
    )
    assert status == 302, status
    location = urlsplit(headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{server.base_url}/inbox"
    query = parse_qs(location.query)
    assert query["state"] == ["st-123"]
    return query["code"][0]


def _exchange(server: DevServer, code: str, verifier: str, **override: str):
    fields = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": f"{server.base_url}/inbox",
        **override,
    }
    status, headers, body = _http(f"{server.base_url}/dev/oauth2/token", fields)
    return status, headers, json.loads(body)


def test_the_form_keeps_the_request_and_the_code_buys_tokens_the_api_accepts(server):
    verifier, challenge = _pkce()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": f"{server.base_url}/inbox",
            "state": 'st-"><b>',
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "scope": "openid",
        }
    )

    # The form shows, keeping the request's parameters (escaped) in hidden fields
    status, headers, page = _http(f"{server.base_url}/dev/oauth2/authorize?{query}")
    assert status == 200 and headers["cache-control"] == "no-store"
    hidden = {
        name: unescape(value)
        for name, value in re.findall(r'<input type=hidden name="(\w+)" value="([^"]*)">', page.decode())
    }
    assert hidden["code_challenge"] == challenge and hidden["state"] == 'st-"><b>'
    assert "<b>" not in page.decode()

    # The code comes back to /inbox, and buys tokens for the person and groups typed in
    code = _authorize(server, challenge)
    status, headers, tokens = _exchange(server, code, verifier)
    assert status == 200, tokens
    assert headers["cache-control"] == "no-store"
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    verdict = jwt.verify(tokens["access_token"], secret=server.jwt_secret)
    assert verdict.ok
    assert verdict.claims["sub"] == "alice"
    assert verdict.claims["cognito:groups"] == ["finance", "ops"]
    assert jwt.verify(tokens["id_token"], secret=server.jwt_secret).claims["token_use"] == "id"

    # And the API takes the access token
    request = urllib.request.Request(
        f"{server.base_url}/approvals/count", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200 and json.loads(response.read())["count"] == 0


def test_the_handlers_are_pointed_at_the_dev_sign_in(server):
    status, _, page = _http(f"{server.base_url}/inbox")

    assert status == 200
    [block] = re.findall(rb'<script type="application/json" id="inbox-config">(.*?)</script>', page)
    config = json.loads(block)
    assert config["auth"] == "jwt"
    assert config["authorizeUrl"] == "dev/oauth2/authorize"
    assert config["tokenUrl"] == "dev/oauth2/token"
    assert config["clientId"] == CLIENT_ID


def test_a_wrong_verifier_is_refused_and_spends_the_code(server):
    verifier, challenge = _pkce()
    code = _authorize(server, challenge)

    status, _, body = _exchange(server, code, _pkce()[0])
    assert (status, body) == (400, {"error": "invalid_grant"})

    # Then not even the right verifier can use that code any more
    assert _exchange(server, code, verifier)[:3:2] == (400, {"error": "invalid_grant"})


def test_a_code_works_once(server):
    verifier, challenge = _pkce()
    code = _authorize(server, challenge)

    assert _exchange(server, code, verifier)[0] == 200
    status, _, body = _exchange(server, code, verifier)

    assert (status, body) == (400, {"error": "invalid_grant"})


def test_the_exchange_must_name_the_redirect_uri_and_client_of_the_code(server):
    verifier, challenge = _pkce()
    for override in ({"redirect_uri": f"{server.base_url}/inbox/"}, {"client_id": "someone-else"}):
        code = _authorize(server, challenge)

        status, _, body = _exchange(server, code, verifier, **override)

        assert (status, body) == (400, {"error": "invalid_grant"}), override


@pytest.mark.parametrize(
    "redirect_uri",
    ["http://evil.example/inbox", "{base}/inbox/../approvals", "{base}/approvals", "javascript:alert(1)"],
)
def test_the_code_goes_to_no_other_page_than_the_inbox(server, redirect_uri):
    _, challenge = _pkce()
    fields = {
        "client_id": CLIENT_ID,
        "redirect_uri": redirect_uri.format(base=server.base_url),
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "user_id": "alice",
    }

    for query, form in ((urlencode(fields), None), ("", fields)):
        status, headers, page = _http(f"{server.base_url}/dev/oauth2/authorize?{query}", form)

        assert status == 400 and "location" not in headers
        assert b"redirect_uri must be" in page


def test_a_plain_challenge_is_refused(server):
    fields = {
        "client_id": CLIENT_ID,
        "redirect_uri": f"{server.base_url}/inbox",
        "code_challenge": "x" * 43,
        "code_challenge_method": "plain",
    }

    status, _, page = _http(f"{server.base_url}/dev/oauth2/authorize?{urlencode(fields)}")

    assert status == 400 and b"S256" in page


def test_a_code_lasts_a_minute():
    now = [1000.0]
    authority = DevAuthorizationServer(lambda host: {"http://h:1/inbox"}, secret="s", clock=lambda: now[0])
    verifier, challenge = _pkce()
    form = {
        "client_id": CLIENT_ID,
        "redirect_uri": "http://h:1/inbox",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "user_id": "alice",
    }
    status, headers, _ = authority.authorize(form, "h:1")
    code = parse_qs(urlsplit(dict(headers)["location"]).query)["code"][0]

    now[0] += 61
    status, _, body = authority.token(
        {
            "grant_type": "authorization_code",
            "client_id": CLIENT_ID,
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": "http://h:1/inbox",
        },
        None,
        "h:1",
    )

    assert (status, json.loads(body)) == (400, {"error": "invalid_grant"})


def test_without_jwts_there_is_no_sign_in(db, model, monkeypatch):
    monkeypatch.setenv("SIGNOFF_AGENTS_MODULE", "catalog")
    with local_server(db, model.base_url) as dev:
        status, _, _ = _http(f"{dev.base_url}/dev/oauth2/authorize")
        page_status, _, page = _http(f"{dev.base_url}/inbox")

    assert status == 404
    assert page_status == 200 and b'{"auth":"none"}' in page
