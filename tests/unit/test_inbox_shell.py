"""The inbox's page shell and static files: configuration only, escaped; a strict policy; a fixed list
of files."""

from __future__ import annotations

import json
import re

import pytest

from signoff import inbox
from signoff.config import Settings

COGNITO = "https://signoff-demo.auth.eu-west-1.amazoncognito.com"


def _config(page: str) -> dict:
    [block] = re.findall(r'<script type="application/json" id="inbox-config">(.*?)</script>', page, re.S)
    return json.loads(block)


def test_the_shell_in_jwt_mode_carries_only_the_sign_in_configuration():
    # Given a stack with Cognito's hosted UI
    settings = Settings(
        auth_mode="jwt",
        database_url="postgresql://secret-user:secret-password@db/signoff",
        inbox_authorize_url=f"{COGNITO}/oauth2/authorize",
        inbox_token_url=f"{COGNITO}/oauth2/token",
        inbox_client_id="client123",
        inbox_logout_url=f"{COGNITO}/logout",
    )

    # When the shell is rendered
    page, _ = inbox.shell(settings)

    # Then it names where to sign in, and nothing else from the settings
    assert _config(page) == {
        "auth": "jwt",
        "authorizeUrl": f"{COGNITO}/oauth2/authorize",
        "tokenUrl": f"{COGNITO}/oauth2/token",
        "clientId": "client123",
        "scopes": "openid",
        "logoutUrl": f"{COGNITO}/logout",
    }
    assert "secret" not in page
    # And every URL in it is relative, so that it works under a stage or base path
    assert re.findall(r'(?:src|href)="([^"]+)"', page) == [
        "data:,",
        f"inbox/inbox.css?v={re.search(r'inbox.css\?v=([0-9a-f]+)', page)[1]}",
        f"inbox/inbox.js?v={re.search(r'inbox.js\?v=([0-9a-f]+)', page)[1]}",
        "#main",
    ]
    # And the only script is the module file: the JSON block is inert data
    assert re.findall(r"<script(?![^>]*(?:src=|application/json))", page) == []


def test_the_shell_headers_forbid_inline_code_framing_caching_and_referrers():
    settings = Settings(auth_mode="jwt", inbox_token_url=f"{COGNITO}/oauth2/token")

    _, headers = inbox.shell(settings)

    policy = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    assert policy == {
        "default-src": "'none'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "connect-src": f"'self' {COGNITO}",
        "form-action": "'self'",
        "base-uri": "'none'",
        "frame-ancestors": "'none'",
        "require-trusted-types-for": "'script'",
        "trusted-types": "'none'",
    }
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Content-Type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize(
    "token_url",
    ["", "dev/oauth2/token", "javascript:alert(1)", "https://evil.example; script-src *", "https://a b/"],
)
def test_a_token_url_that_is_not_a_plain_origin_adds_nothing_to_the_policy(token_url):
    _, headers = inbox.shell(Settings(auth_mode="jwt", inbox_token_url=token_url))

    assert "connect-src 'self';" in headers["Content-Security-Policy"]


def test_configuration_values_cannot_break_out_of_the_json_block():
    # Given settings holding markup (a misconfiguration, or worse)
    hostile = "</script><script>alert(1)</script><!--"
    settings = Settings(auth_mode="jwt", inbox_client_id=hostile, inbox_scopes='openid "><img src=x>')

    page, _ = inbox.shell(settings)

    # Then the values arrive intact as data, and no tag was added to the page
    config = _config(page)
    assert config["clientId"] == hostile
    assert config["scopes"] == 'openid "><img src=x>'
    assert page.count("<script") == 2 and "<img" not in page


def test_without_authentication_the_shell_offers_no_sign_in():
    page, headers = inbox.shell(Settings(auth_mode="none", inbox_authorize_url=f"{COGNITO}/oauth2/authorize"))

    assert _config(page) == {"auth": "none"}
    assert "connect-src 'self';" in headers["Content-Security-Policy"]


def test_assets_are_served_from_a_fixed_list_of_names():
    script = inbox.asset("inbox.js")
    style = inbox.asset("inbox.css")

    assert script is not None and style is not None
    assert script[1] == "text/javascript; charset=utf-8"
    assert style[1] == "text/css; charset=utf-8"
    assert script[2]["X-Content-Type-Options"] == "nosniff"
    assert script[2]["Cache-Control"] == "public, max-age=300"
    for name in ("../config.py", "..%2F__init__.py", "__init__.py", "static/inbox.js", "inbox.JS", "", "."):
        assert inbox.asset(name) is None, name


def test_the_script_never_parses_html_strings():
    # Trusted Types would refuse them at run time; this keeps them out of the source too.
    source = inbox.asset("inbox.js")[0].decode()

    for sink in ("innerHTML =", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in source, sink
