"""`SIGNOFF_AUTH=jwt make dev`: the dev server checks local JWTs as API Gateway's JWT authorizer does.

Routes with the authorizer (every route but /openapi.json and /approvals/* under AuthMode=jwt) refuse a
missing, forged, expired or misaddressed token with API Gateway's own 401 before any handler runs; a
valid token's claims reach the handler stringified as API Gateway puts them, and the principal they
name owns what it starts and sees nobody else's runs.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from signoff_dev import jwt
from signoff_dev.devserver import DevServer
from tests.support.api import multipart
from tests.support.devserver import local_server

ROOT = Path(__file__).resolve().parents[2]
UNAUTHORIZED = {"message": "Unauthorized"}


@pytest.fixture
def server(db, model, monkeypatch):
    monkeypatch.setenv("SIGNOFF_AGENTS_MODULE", "catalog")
    with local_server(db, model.base_url, auth="jwt", jwt_secret="test-jwt-secret") as dev:
        yield dev


def _token(server: DevServer, user: str, **kwargs: Any) -> str:
    return jwt.mint(user, secret=kwargs.pop("secret", server.jwt_secret), **kwargs)


def _call(
    url: str, *, token: str | None = None, fields: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if fields is not None:
        data, headers["Content-Type"] = multipart(fields)
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw, got = response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        status, raw, got = error.code, error.read(), error.headers
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw.decode()
    return status, {k.lower(): v for k, v in got.items()}, body


def _start(server: DevServer, token: str | None, **fields: str) -> tuple[int, dict[str, str], Any]:
    form = {
        "message": "Delete 50 old records from the users table",
        "session_id": f"s-{uuid.uuid4().hex[:8]}",
    }
    return _call(f"{server.base_url}/agents/data_manager/runs", token=token, fields={**form, **fields})


def _runs(db: str) -> int:
    with psycopg.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM runs").fetchone()[0]


def test_requests_without_a_valid_token_get_api_gateways_401_and_reach_no_handler(server, db):
    now = time.time()
    refused = {
        "no token": None,
        "bad signature": _token(server, "alice", secret="not-the-secret"),
        "expired": _token(server, "alice", now=now - 7200, ttl_s=3600),
        "wrong audience": _token(server, "alice", extra={"aud": "someone-else"}),
        "wrong issuer": _token(server, "alice", extra={"iss": "https://evil.example"}),
        "not yet valid": _token(server, "alice", extra={"nbf": int(now) + 600}),
        "garbage": "not.a.jwt",
    }
    reasons = {}
    for case, token in refused.items():
        status, headers, body = _start(server, token, user_id="alice")
        assert (status, body) == (401, UNAUTHORIZED), case
        assert headers["content-type"] == "application/json" and headers["apigw-requestid"], case
        reasons[case] = headers["www-authenticate"]
        # The read routes are guarded too
        status, _, body = _call(f"{server.base_url}/sessions?user_id=alice", token=token)
        assert (status, body) == (401, UNAUTHORIZED), case
    assert reasons["no token"] == "Bearer"
    assert reasons["wrong audience"] == (
        'Bearer scope="" error="invalid_token" error_description="the token does not have a valid audience"'
    )
    assert 'error_description="the token has expired"' in reasons["expired"]
    assert 'error_description="signature is invalid"' in reasons["bad signature"]
    assert all('error="invalid_token"' in value for case, value in reasons.items() if case != "no token")
    assert _runs(db) == 0


def test_the_principal_owns_its_run_whatever_user_id_the_form_names(server):
    alice = _token(server, "alice", groups=["ops"])

    status, _, run = _start(server, alice, user_id="mallory")

    assert status == 200 and run["status"] == "PAUSED", run
    assert run["user_id"] == "alice"
    url = f"{server.base_url}/agents/data_manager/runs/{run['run_id']}?session_id={run['session_id']}"
    status, _, stored = _call(url, token=alice)
    assert status == 200 and stored["user_id"] == "alice"
    # The bare token (no "Bearer") is accepted too, as API Gateway does
    request = urllib.request.Request(url, headers={"Authorization": alice})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def test_another_principal_can_neither_read_nor_continue_nor_cancel_the_run(server):
    alice, bob = _token(server, "alice"), _token(server, "bob")
    _, _, run = _start(server, alice)
    assert run["status"] == "PAUSED", run
    base = f"{server.base_url}/agents/data_manager/runs/{run['run_id']}"
    call_id = run["tools"][0]["tool_call_id"]
    decision = json.dumps([{"tool_call_id": call_id, "confirmed": True}])

    read = _call(f"{base}?session_id={run['session_id']}", token=bob)
    continued = _call(
        f"{base}/continue", token=bob, fields={"session_id": run["session_id"], "tools": decision}
    )
    cancelled = _call(f"{base}/cancel", token=bob, fields={"session_id": run["session_id"]})
    listed = _call(f"{server.base_url}/agents/data_manager/runs?session_id={run['session_id']}", token=bob)

    assert [answer[0] for answer in (read, continued, cancelled)] == [404, 404, 404]
    assert listed[0] == 200 and listed[2] == []
    status, _, stored = _call(f"{base}?session_id={run['session_id']}", token=alice)
    assert status == 200 and stored["status"] == "PAUSED"
    # Alice herself decides
    status, _, done = _call(
        f"{base}/continue", token=alice, fields={"session_id": run["session_id"], "tools": decision}
    )
    assert status == 200 and done["status"] == "COMPLETED"


def test_open_routes_need_no_token(server):
    status, _, document = _call(f"{server.base_url}/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.")
    # An approval link authenticates by its token: the page answers (this one is unknown), no 401
    status, headers, page = _call(f"{server.base_url}/approve/{'x' * 43}")
    assert status == 404 and "Link not valid" in page and "www-authenticate" not in headers


ECHO_TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Parameters:
  AuthMode: {Type: String, Default: jwt, AllowedValues: [jwt, none]}
Conditions:
  UseJwtAuth: !Equals [!Ref AuthMode, jwt]
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      Auth: !If
        - UseJwtAuth
        - DefaultAuthorizer: Jwt
          Authorizers:
            Jwt:
              IdentitySource: $request.header.Authorization
              JwtConfiguration: {issuer: https://issuer.example, audience: [app]}
        - !Ref AWS::NoValue
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo/
      Handler: app.lambda_handler
      Events:
        Private: {Type: HttpApi, Properties: {ApiId: !Ref Api, Method: GET, Path: /private}}
        Scoped:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: GET, Path: /scoped, Auth: {AuthorizationScopes: [runs/write]}}
        Public:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Method: GET
            Path: /public
            Auth: !If [UseJwtAuth, {Authorizer: NONE}, !Ref AWS::NoValue]
"""

ECHO_HANDLER = """\
import json

def lambda_handler(event, context):
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(event)}
"""


@pytest.fixture
def echo(tmp_path, postgres_url, standin):
    (tmp_path / "template.yaml").write_text(ECHO_TEMPLATE)
    (tmp_path / "echo").mkdir()
    (tmp_path / "echo" / "app.py").write_text(ECHO_HANDLER)
    with local_server(postgres_url, standin.base_url, root=tmp_path, auth="jwt") as dev:
        yield dev


def test_claims_reach_the_handler_as_api_gateway_puts_them(echo):
    issued = int(time.time())
    token = jwt.mint("alice", groups=["ops", "admins"], now=issued, ttl_s=600, secret=echo.jwt_secret)

    status, _, event = _call(f"{echo.base_url}/private", token=token)

    assert status == 200
    assert event["requestContext"]["authorizer"] == {
        "jwt": {
            "claims": {
                "sub": "alice",
                "iss": jwt.ISSUER,
                "aud": jwt.AUDIENCE,
                "iat": str(issued),
                "nbf": str(issued),
                "exp": str(issued + 600),
                "username": "alice",
                "token_use": "access",
                "cognito:groups": "[ops admins]",
            },
            "scopes": None,
        }
    }
    assert event["headers"]["authorization"] == f"Bearer {token}"
    # Plain http locally, so links built from the request work in a browser
    assert event["headers"]["x-forwarded-proto"] == "http"
    assert event["headers"]["x-forwarded-port"] == echo.base_url.rsplit(":", 1)[1]


def test_routes_with_authorization_scopes_need_one_of_them(echo):
    without = jwt.mint("alice", secret=echo.jwt_secret)
    with_scope = jwt.mint("alice", scopes=["runs/read", "runs/write"], secret=echo.jwt_secret)

    status, headers, body = _call(f"{echo.base_url}/scoped", token=without)
    assert (status, body) == (403, {"message": "Forbidden"})
    assert 'error="insufficient_scope"' in headers["www-authenticate"]

    status, _, event = _call(f"{echo.base_url}/scoped", token=with_scope)
    assert status == 200
    assert event["requestContext"]["authorizer"]["jwt"]["scopes"] == ["runs/read", "runs/write"]
    assert event["requestContext"]["authorizer"]["jwt"]["claims"]["scope"] == "runs/read runs/write"


def test_a_route_marked_authorizer_none_is_open_and_carries_no_claims(echo):
    status, _, event = _call(f"{echo.base_url}/public")
    assert status == 200 and "authorizer" not in event["requestContext"]
    # A token sent to an open route is not looked at (nor refused)
    status, _, event = _call(f"{echo.base_url}/public", token="garbage")
    assert status == 200 and "authorizer" not in event["requestContext"]
