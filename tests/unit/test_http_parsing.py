"""signoff.http: request bodies, field rules and the caller, from real API Gateway HTTP API events."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import pytest

from signoff import http
from signoff.decisions import Decision
from signoff.errors import InvalidFields, InvalidInput, TooLarge
from signoff_dev.apigw import http_api_event
from tests.support.api import bearer_token

MAX = 64 * 1024
BOUNDARY = "------------------------d74496d66958873e"


def curl_form(fields: dict[str, str], *, files: dict[str, tuple[str, str]] | None = None) -> bytes:
    """A body shaped exactly like ``curl -F name=value [-F file=@path]`` sends."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    for name, (filename, content) in (files or {}).items():
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: text/plain\r\n\r\n{content}\r\n"
        )
    return ("".join(parts) + f"--{BOUNDARY}--\r\n").encode()


def multipart_event(body: bytes, path: str = "/agents/data_manager/runs") -> dict:
    return http_api_event(
        "POST", path, headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"}, body=body
    )


def json_event(payload: object) -> dict:
    return http_api_event(
        "POST",
        "/agents/data_manager/runs",
        headers={"content-type": "application/json"},
        body=json.dumps(payload),
    )


def form_event(fields: dict[str, str]) -> dict:
    return http_api_event(
        "POST",
        "/agents/data_manager/runs",
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=urlencode(fields),
    )


# --- parse_fields ---------------------------------------------------------------------------------


def test_multipart_from_curl_arrives_base64_encoded_and_parses():
    # Given the seed's curl -F request as API Gateway delivers it
    event = multipart_event(
        curl_form({"message": "Delete 50 old records from the users table", "stream": "false"})
    )
    assert event["isBase64Encoded"] is True

    # When the fields are parsed
    fields = http.parse_fields(event, MAX)

    # Then both fields come out exactly
    assert fields == {"message": "Delete 50 old records from the users table", "stream": "false"}


def test_multipart_value_keeps_newlines_crlf_and_dashes():
    # Given a value with LF, CRLF, a line starting with "--" and a trailing "--"
    value = "line one\nline two\r\n--not a boundary\r\n-- signature --"
    event = multipart_event(curl_form({"message": value, "session_id": "s-1"}))

    # When parsed
    fields = http.parse_fields(event, MAX)

    # Then the value is byte-for-byte the same and the next field is intact
    assert fields["message"] == value
    assert fields["session_id"] == "s-1"


def test_multipart_value_with_trailing_crlf_keeps_it():
    # Given a value that itself ends with CRLF
    event = multipart_event(curl_form({"message": "hello\r\n"}))

    # Then only the part delimiter's CRLF is removed
    assert http.parse_fields(event, MAX) == {"message": "hello\r\n"}


def test_multipart_empty_value_is_an_empty_string():
    event = multipart_event(curl_form({"message": "hi", "session_id": ""}))
    assert http.parse_fields(event, MAX) == {"message": "hi", "session_id": ""}


def test_multipart_file_part_is_ignored():
    # Given a form with a field and an uploaded file
    event = multipart_event(curl_form({"message": "hi"}, files={"attachment": ("notes.txt", "secret file")}))

    # Then only the field is read
    assert http.parse_fields(event, MAX) == {"message": "hi"}


def test_multipart_not_base64_encoded_parses_too():
    # Given a hand-built event whose multipart body came as plain text
    event = {
        "headers": {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        "body": curl_form({"message": "plain"}).decode(),
        "isBase64Encoded": False,
    }

    # Then it parses the same (header names are case-insensitive)
    assert http.parse_fields(event, MAX) == {"message": "plain"}


def test_multipart_with_quoted_boundary_and_utf8_value():
    # Given a quoted boundary parameter and a non-ASCII value
    body = curl_form({"message": "Lösche 5 Einträge ✓"})
    event = http_api_event(
        "POST", "/x", headers={"content-type": f'multipart/form-data; boundary="{BOUNDARY}"'}, body=body
    )

    # Then it parses and decodes as UTF-8
    assert http.parse_fields(event, MAX) == {"message": "Lösche 5 Einträge ✓"}


def test_multipart_without_boundary_is_a_bad_request():
    event = http_api_event("POST", "/x", headers={"content-type": "multipart/form-data"}, body=b"--x\r\n")
    with pytest.raises(InvalidInput):
        http.parse_fields(event, MAX)


def test_urlencoded_base64_as_api_gateway_sends_it():
    # Given a urlencoded body, delivered base64-encoded
    event = form_event({"message": "a b & c = d", "session_id": "s1"})
    assert event["isBase64Encoded"] is True

    # Then the fields are decoded
    assert http.parse_fields(event, MAX) == {"message": "a b & c = d", "session_id": "s1"}


def test_urlencoded_plain_text_event():
    # Given a hand-built, not base64-encoded urlencoded body with an empty value
    event = {
        "headers": {"content-type": "application/x-www-form-urlencoded"},
        "body": "message=hello+world%21&user_id=",
        "isBase64Encoded": False,
    }

    # Then blank values are kept
    assert http.parse_fields(event, MAX) == {"message": "hello world!", "user_id": ""}


def test_json_object_body():
    # Given a JSON object body with a real boolean
    event = json_event({"message": "hi", "stream": True})
    assert event["isBase64Encoded"] is False

    # Then it is taken as the fields
    assert http.parse_fields(event, MAX) == {"message": "hi", "stream": True}


def test_json_array_body_is_a_422():
    # Given a JSON array body
    event = json_event([{"message": "hi"}])

    # Then it is refused as a validation failure on the body
    with pytest.raises(InvalidFields) as caught:
        http.parse_fields(event, MAX)
    assert http.status_for(caught.value) == 422
    assert caught.value.detail[0]["loc"] == ["body"]


def test_broken_json_body_is_a_422():
    event = http_api_event("POST", "/x", headers={"content-type": "application/json"}, body='{"message": ')
    with pytest.raises(InvalidFields):
        http.parse_fields(event, MAX)


def test_empty_body_has_no_fields():
    assert http.parse_fields(http_api_event("POST", "/x"), MAX) == {}


@pytest.mark.parametrize("encoded", [True, False])
def test_body_larger_than_the_limit_is_413(encoded: bool):
    # Given a body one byte over the limit, as text or base64
    raw = b"message=" + b"x" * (1024 - len("message=") + 1)
    event = {
        "headers": {"content-type": "application/x-www-form-urlencoded"},
        "body": base64.b64encode(raw).decode() if encoded else raw.decode(),
        "isBase64Encoded": encoded,
    }

    # When parsed / Then 413
    with pytest.raises(TooLarge) as caught:
        http.parse_fields(event, 1024)
    assert http.status_for(caught.value) == 413


def test_body_exactly_at_the_limit_is_accepted():
    raw = "message=" + "x" * (1024 - len("message="))
    event = {"headers": {"content-type": "application/x-www-form-urlencoded"}, "body": raw}
    assert http.parse_fields(event, 1024)["message"] == "x" * (1024 - len("message="))


# --- start_input ----------------------------------------------------------------------------------


def test_start_input_reads_all_fields():
    event = multipart_event(
        curl_form({"message": "hi", "session_id": "s1", "user_id": "u1", "stream": "true", "background": "0"})
    )
    request = http.start_input(event, MAX)
    assert (request.message, request.session_id, request.user_id) == ("hi", "s1", "u1")
    assert (request.stream, request.background) == (True, False)


def test_start_input_defaults_stream_and_background_to_false():
    request = http.start_input(multipart_event(curl_form({"message": "hi"})), MAX)
    assert request.stream is False
    assert request.background is False
    assert request.session_id is None


def test_start_input_without_message_is_a_422_with_fastapi_detail():
    # Given a body without message
    event = multipart_event(curl_form({"session_id": "s1"}))

    # When parsed
    with pytest.raises(InvalidFields) as caught:
        http.start_input(event, MAX)

    # Then the detail is FastAPI's shape for a missing field
    assert http.status_for(caught.value) == 422
    assert len(caught.value.detail) == 1
    error = caught.value.detail[0]
    assert error["loc"] == ["body", "message"]
    assert error["type"] == "missing"
    assert isinstance(error["msg"], str) and error["msg"]


@pytest.mark.parametrize("message", ["", "   ", "\r\n"])
def test_start_input_with_empty_message_is_a_422(message: str):
    event = multipart_event(curl_form({"message": message}))
    with pytest.raises(InvalidFields) as caught:
        http.start_input(event, MAX)
    assert http.status_for(caught.value) == 422
    assert caught.value.detail[0]["loc"] == ["body", "message"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("True", True),
        ("1", True),
        ("yes", True),
        ("YES", True),
        ("on", True),
        ("On", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("No", False),
        ("off", False),
        ("OFF", False),
    ],
)
def test_start_input_booleans_accept_the_contract_spellings(raw: str, expected: bool):
    # Given stream and background spelled as a form client might
    event = multipart_event(curl_form({"message": "hi", "stream": raw, "background": raw}))

    # Then both parse to the same boolean
    request = http.start_input(event, MAX)
    assert request.stream is expected
    assert request.background is expected


def test_start_input_booleans_from_json_and_urlencoded():
    assert http.start_input(json_event({"message": "hi", "stream": True}), MAX).stream is True
    assert http.start_input(json_event({"message": "hi", "stream": False}), MAX).stream is False
    assert http.start_input(form_event({"message": "hi", "stream": "Yes"}), MAX).stream is True


@pytest.mark.parametrize("field", ["stream", "background"])
def test_start_input_rejects_a_boolean_it_cannot_read(field: str):
    # Given a boolean field that says "maybe"
    event = multipart_event(curl_form({"message": "hi", field: "maybe"}))

    # Then 422 naming the field
    with pytest.raises(InvalidFields) as caught:
        http.start_input(event, MAX)
    assert http.status_for(caught.value) == 422
    assert [e["loc"] for e in caught.value.detail] == [["body", field]]


def test_start_input_reports_every_bad_field_at_once():
    event = multipart_event(curl_form({"stream": "maybe"}))
    with pytest.raises(InvalidFields) as caught:
        http.start_input(event, MAX)
    assert {tuple(e["loc"]) for e in caught.value.detail} == {("body", "message"), ("body", "stream")}


def test_start_input_json_message_of_wrong_type_is_a_422():
    with pytest.raises(InvalidFields) as caught:
        http.start_input(json_event({"message": ["not", "text"]}), MAX)
    assert caught.value.detail[0]["loc"] == ["body", "message"]


# --- continue_input -------------------------------------------------------------------------------

CONTINUE = "/agents/data_manager/runs/r1/continue"


def continue_event(fields: dict[str, str]) -> dict:
    return multipart_event(curl_form(fields), CONTINUE)


def test_continue_input_reads_the_seed_payload():
    # Given the seed's continue request
    tools = [{"tool_call_id": "call_1", "confirmed": True}]
    event = continue_event({"tools": json.dumps(tools), "session_id": "s1", "stream": "false"})

    # When parsed
    request = http.continue_input(event, MAX)

    # Then the tools array comes through as typed decisions, with the session
    assert request.tools == [Decision("call_1", confirmed=True)]
    assert request.session_id == "s1"
    assert request.stream is False


def test_continue_input_accepts_tools_as_a_json_array_in_a_json_body():
    event = json_event({"tools": [{"tool_call_id": "c"}], "session_id": "s1"})
    assert http.continue_input(event, MAX).tools == [Decision("c")]


def test_continue_input_without_tools_leaves_them_unset():
    assert http.continue_input(continue_event({"session_id": "s1"}), MAX).tools is None


@pytest.mark.parametrize("session_id", [None, ""])
def test_continue_input_without_session_id_is_a_400(session_id: str | None):
    # Given a continue without session_id (absent or empty)
    fields = {"tools": json.dumps([{"tool_call_id": "c", "confirmed": True}])}
    if session_id is not None:
        fields["session_id"] = session_id

    # Then 400 with the contract's message
    with pytest.raises(InvalidInput) as caught:
        http.continue_input(continue_event(fields), MAX)
    assert http.status_for(caught.value) == 400
    assert caught.value.detail == "session_id is required for this action"


def test_continue_input_with_tools_that_are_not_json_is_a_400():
    event = continue_event({"tools": "[{tool_call_id: c}", "session_id": "s1"})
    with pytest.raises(InvalidInput) as caught:
        http.continue_input(event, MAX)
    assert caught.value.detail == "Invalid JSON in tools field"


@pytest.mark.parametrize(
    "tools", ['{"tool_call_id": "c"}', "[1, 2]", '["c"]', '[{"tool_call_id": "c"}, null]', '"c"']
)
def test_continue_input_with_tools_not_an_array_of_objects_is_a_400(tools: str):
    event = continue_event({"tools": tools, "session_id": "s1"})
    with pytest.raises(InvalidInput) as caught:
        http.continue_input(event, MAX)
    assert http.status_for(caught.value) == 400
    assert "tools" in caught.value.detail


def test_continue_input_bad_boolean_is_a_422():
    event = continue_event({"session_id": "s1", "stream": "maybe"})
    with pytest.raises(InvalidFields):
        http.continue_input(event, MAX)


# --- principal ------------------------------------------------------------------------------------


def test_principal_groups_come_exactly_from_the_forwarded_bearer_token():
    # Given claims as API Gateway hands them over (arrays become "[a b]") with the verified token
    claims = {"sub": "user-1", "cognito:groups": ["admins", "ops"]}
    headers = {"authorization": f"Bearer {bearer_token(claims)}"}
    event = http_api_event("GET", "/x", headers=headers, authorizer_claims=claims)
    assert event["requestContext"]["authorizer"]["jwt"]["claims"]["cognito:groups"] == "[admins ops]"

    # When the caller is read
    caller = http.principal(event)

    # Then subject and groups are the token's own list
    assert caller is not None
    assert caller.user_id == "user-1"
    assert caller.groups == ("admins", "ops")


@pytest.mark.parametrize("group", ["not finance", "finance team", "finance,audit", "[finance]"])
def test_a_group_name_holding_spaces_commas_or_brackets_is_one_group(group):
    # Given a token whose one group merely contains the word "finance"
    claims = {"sub": "eve", "cognito:groups": [group]}
    headers = {"authorization": f"Bearer {bearer_token(claims)}"}
    event = http_api_event("GET", "/x", headers=headers, authorizer_claims=claims)

    # When the caller is read, then the group is that exact name, never "finance"
    caller = http.principal(event)
    assert caller is not None and caller.groups == (group,)
    assert not caller.matches(("finance",))


def test_flattened_groups_without_the_token_grant_nothing():
    # Given API Gateway's flattened "[not finance]" and no bearer token to read the list from
    event = http_api_event("GET", "/x", authorizer_claims={"sub": "eve", "cognito:groups": ["not", "x"]})

    # When the caller is read, then the groups are unknown and match nothing
    caller = http.principal(event)
    assert caller is not None and caller.groups is None
    assert not caller.matches(("not",))


def test_a_bearer_token_of_another_subject_is_not_read_for_groups():
    # Given verified claims for eve but an Authorization header naming someone else's groups
    forged = bearer_token({"sub": "mallory", "cognito:groups": ["finance"]})
    event = http_api_event(
        "GET",
        "/x",
        headers={"authorization": f"Bearer {forged}"},
        authorizer_claims={"sub": "eve", "cognito:groups": ["a", "b"]},
    )

    # When the caller is read, then nothing of the other token is taken
    caller = http.principal(event)
    assert caller is not None and caller.groups is None


def test_principal_with_groups_as_a_real_list():
    event = {
        "requestContext": {
            "authorizer": {
                "jwt": {"claims": {"sub": "user-2", "cognito:groups": ["approvers"]}, "scopes": None}
            }
        }
    }
    caller = http.principal(event)
    assert caller is not None
    assert (caller.user_id, caller.groups) == ("user-2", ("approvers",))


def test_principal_with_a_single_group_string_and_a_custom_claim():
    event = http_api_event("GET", "/x", authorizer_claims={"sub": "u", "groups": "[approvers]"})
    caller = http.principal(event, groups_claim="groups")
    assert caller is not None
    assert caller.groups == ("approvers",)


def test_principal_without_groups_has_none():
    caller = http.principal(http_api_event("GET", "/x", authorizer_claims={"sub": "u"}))
    assert caller is not None
    assert caller.groups == ()


def test_no_authorizer_means_no_principal():
    assert http.principal(http_api_event("GET", "/x")) is None
    assert http.principal({"requestContext": {"authorizer": {"jwt": {"claims": {}}}}}) is None
