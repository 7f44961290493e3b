"""The local API Gateway HTTP API v2 events have the shape AWS sends, and the sample events match it."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from signoff_dev.apigw import FakeLambdaContext, event_body_bytes, http_api_event
from signoff_dev.invoke import fill_placeholders
from signoff_dev.template import load_template

ROOT = Path(__file__).resolve().parents[2]
BOUNDARY = "------------------------abcdef0123456789"
MULTIPART = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="message"\r\n\r\nhi\r\n--{BOUNDARY}--\r\n'
).encode()


def test_a_multipart_post_is_base64_with_route_key_path_params_and_lower_case_headers():
    event = http_api_event(
        "post",
        "/agents/data_manager/runs",
        headers=[
            ("Content-Type", f"multipart/form-data; boundary={BOUNDARY}"),
            ("User-Agent", "curl/8.5.0"),
            ("X-Custom", "a"),
            ("x-custom", "b"),
            ("Cookie", "a=1; b=2"),
        ],
        body=MULTIPART,
        route_key="POST /agents/{agent_id}/runs",
        path_parameters={"agent_id": "data_manager"},
    )

    assert event["version"] == "2.0" and event["routeKey"] == "POST /agents/{agent_id}/runs"
    assert event["rawPath"] == "/agents/data_manager/runs" and event["rawQueryString"] == ""
    assert event["pathParameters"] == {"agent_id": "data_manager"}
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == MULTIPART
    assert event_body_bytes(event) == MULTIPART
    headers = event["headers"]
    assert all(name == name.lower() for name in headers)
    assert headers["x-custom"] == "a,b" and headers["content-length"] == str(len(MULTIPART))
    assert "cookie" not in headers and event["cookies"] == ["a=1", "b=2"]
    assert "queryStringParameters" not in event
    context = event["requestContext"]
    assert context["http"] == {
        "method": "POST",
        "path": "/agents/data_manager/runs",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "curl/8.5.0",
    }
    assert context["stage"] == "$default" and context["routeKey"] == event["routeKey"]
    assert {"accountId", "apiId", "domainName", "domainPrefix", "requestId", "time", "timeEpoch"} <= set(
        context
    )
    assert "authorizer" not in context


@pytest.mark.parametrize(
    ("content_type", "as_text"),
    [
        ("application/json", True),
        ("text/plain; charset=utf-8", True),
        ("application/x-www-form-urlencoded", False),
        ("application/octet-stream", False),
        (None, False),
    ],
)
def test_json_and_text_bodies_are_text_everything_else_base64(content_type, as_text):
    headers = {"content-type": content_type} if content_type else {}
    event = http_api_event("POST", "/x", headers=headers, body=b'{"message": "hi"}')
    assert event["isBase64Encoded"] is (not as_text)
    assert event_body_bytes(event) == b'{"message": "hi"}'


def test_query_strings_claims_and_a_missing_body():
    event = http_api_event(
        "GET",
        "/sessions",
        query="user_id=test_user&tag=a&tag=b%20c",
        authorizer_claims={"sub": "u-1", "cognito:groups": ["admins", "ops"], "exp": 1},
    )

    assert event["queryStringParameters"] == {"user_id": "test_user", "tag": "a,b c"}
    assert event["rawQueryString"] == "user_id=test_user&tag=a&tag=b%20c"
    assert "body" not in event and event["isBase64Encoded"] is False
    assert event["requestContext"]["authorizer"] == {
        "jwt": {"claims": {"sub": "u-1", "cognito:groups": "[admins ops]", "exp": "1"}, "scopes": None}
    }


def test_the_lambda_context_counts_down():
    context = FakeLambdaContext("StartRunFunction", timeout_ms=1000)
    first = context.get_remaining_time_in_millis()
    time.sleep(0.02)
    assert 0 < context.get_remaining_time_in_millis() < first <= 1000
    assert context.invoked_function_arn.endswith(":function:StartRunFunction")
    assert context.memory_limit_in_mb == 256 and context.aws_request_id


def test_the_sample_events_are_consistent_with_the_template():
    template = load_template(ROOT / "template.yaml")
    http_events = sorted(
        p for p in (ROOT / "events").glob("*.json") if "routeKey" in json.loads(p.read_text())
    )
    assert len(http_events) >= 11
    for path in http_events:
        event, _ = fill_placeholders(
            json.loads(path.read_text()), {"RUN_ID": "r-1", "TOOL_CALL_ID": "call_1"}
        )
        found = template.match(event["requestContext"]["http"]["method"], event["rawPath"])
        assert found is not None, path.name
        route, params = found
        assert route.route_key == event["routeKey"], path.name
        assert params == event.get("pathParameters", {}), path.name

    start = json.loads((ROOT / "events" / "start_run.json").read_text())
    body = event_body_bytes(start).decode()
    assert (
        start["isBase64Encoded"]
        and 'name="message"\r\n\r\nDelete 50 old records from the users table' in body
    )
    assert start["headers"]["content-type"].startswith("multipart/form-data; boundary=")


def test_placeholders_are_filled_inside_a_base64_body():
    event = json.loads((ROOT / "events" / "continue_run.json").read_text())

    filled, missing = fill_placeholders(event, {"RUN_ID": "run-9", "TOOL_CALL_ID": "call_abc"})

    assert not missing and filled["pathParameters"]["run_id"] == "run-9" and "run-9" in filled["rawPath"]
    body = event_body_bytes(filled)
    assert b'"tool_call_id": "call_abc"' in body and filled["headers"]["content-length"] == str(len(body))
    _, missing = fill_placeholders(event, {})
    assert missing == {"RUN_ID", "TOOL_CALL_ID"}
