"""The dev server boots on real PostgreSQL and turns HTTP requests into v2 events for the handlers."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest

from signoff_dev.devserver import DevServer

TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 30
    Environment:
      Variables:
        ECHO_LEVEL: !Ref Level
Parameters:
  Level: {Type: String, Default: loud}
Resources:
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo/
      Handler: app.lambda_handler
      Events:
        Post:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: POST, Path: "/things/{thing_id}"}
        Literal:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: POST, Path: /things/special}
"""

HANDLER = """\
import json, os

def lambda_handler(event, context):
    event["_remaining_ms"] = context.get_remaining_time_in_millis()
    event["_db"] = os.environ["SIGNOFF_DATABASE_URL"]
    event["_level"] = os.environ.get("ECHO_LEVEL")
    return {"statusCode": 201, "headers": {"content-type": "application/json", "x-echo": "yes"},
            "cookies": ["seen=1"], "body": json.dumps(event)}
"""


@pytest.fixture
def echo_server(tmp_path, postgres_url, standin, monkeypatch):
    monkeypatch.delenv("ECHO_LEVEL", raising=False)
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    (tmp_path / "echo").mkdir()
    (tmp_path / "echo" / "app.py").write_text(HANDLER)
    server = DevServer(tmp_path, port=0, database_url=postgres_url, model_base_url=standin.base_url)
    base_url = server.start()
    yield base_url, postgres_url
    server.stop()


def _request(url: str, data: bytes | None = None, headers: dict | None = None):
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_a_multipart_post_reaches_the_handler_as_a_base64_v2_event(echo_server):
    base_url, db_url = echo_server
    boundary = "------------------------0123456789abcdef"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="message"\r\n\r\nhello\r\n--{boundary}--\r\n'
    )

    status, headers, data = _request(
        f"{base_url}/things/t-1?x=1",
        body.encode(),
        {"Content-Type": f"multipart/form-data; boundary={boundary}", "X-Trace": "abc"},
    )

    assert status == 201 and headers["x-echo"] == "yes" and headers["set-cookie"] == "seen=1"
    assert headers["apigw-requestid"]
    event = json.loads(data)
    assert event["version"] == "2.0" and event["routeKey"] == "POST /things/{thing_id}"
    assert event["pathParameters"] == {"thing_id": "t-1"} and event["queryStringParameters"] == {"x": "1"}
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]).decode() == body
    assert event["headers"]["x-trace"] == "abc"
    assert 25_000 < event["_remaining_ms"] <= 29_000
    assert event["_db"] == db_url and event["_level"] == "loud"

    status, _, data = _request(f"{base_url}/things/special", b"{}", {"Content-Type": "application/json"})
    assert status == 201 and json.loads(data)["routeKey"] == "POST /things/special"


def test_unknown_routes_get_api_gateways_404(echo_server):
    base_url, _ = echo_server
    assert _request(f"{base_url}/nowhere", b"")[::2] == (404, b'{"message":"Not Found"}')
    request = urllib.request.Request(f"{base_url}/things/t-1", method="GET")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 404
