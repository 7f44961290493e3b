"""The inbox's sign-in, set up at deploy by the ``Custom::SignoffInboxSignIn`` resource: the inbox's
Cognito app client gets the code flow, its scopes and the inbox URL as its only redirect, and keeps
every other setting; CloudFormation hears back SUCCESS or FAILED with the reason."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from signoff_dev.handlers import load_handler

ROOT = Path(__file__).resolve().parents[2]
INBOX = "https://abc123.execute-api.us-east-1.amazonaws.com/inbox"


@pytest.fixture
def cognito(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("cognito-idp")
        pool = client.create_user_pool(PoolName="signoff-users")["UserPool"]["Id"]
        inbox = client.create_user_pool_client(
            UserPoolId=pool,
            ClientName="signoff-inbox",
            GenerateSecret=False,
            ExplicitAuthFlows=["ALLOW_REFRESH_TOKEN_AUTH"],
            AccessTokenValidity=60,
            TokenValidityUnits={"AccessToken": "minutes"},
        )["UserPoolClient"]["ClientId"]
        yield client, pool, inbox


def _request(pool: str, client_id: str, request_type: str = "Create", **properties) -> dict:
    return {
        "RequestType": request_type,
        "ResourceType": "Custom::SignoffInboxSignIn",
        "StackId": "stack",
        "RequestId": "req-1",
        "LogicalResourceId": "InboxSignIn",
        "ResourceProperties": {
            "UserPoolId": pool,
            "ClientId": client_id,
            "CallbackURLs": [INBOX],
            "LogoutURLs": [INBOX],
            "Scopes": ["openid", "email", "profile"],
            **properties,
        },
    }


def _handle():
    app = load_handler(ROOT / "functions" / "migrate", "app.lambda_handler").__module__
    import sys

    return sys.modules[app].handle


def test_the_inbox_client_gets_the_code_flow_and_its_redirect_and_keeps_the_rest(cognito):
    client, pool, inbox = cognito
    sent = []

    reply = _handle()(
        _request(pool, inbox) | {"ResponseURL": "https://cfn.example/r"}, send=lambda u, b: sent.append(b)
    )

    assert reply["Status"] == "SUCCESS", reply
    assert sent == [reply] and INBOX in reply["Reason"]
    settings = client.describe_user_pool_client(UserPoolId=pool, ClientId=inbox)["UserPoolClient"]
    assert settings["AllowedOAuthFlows"] == ["code"]
    assert settings["AllowedOAuthFlowsUserPoolClient"] is True
    assert settings["AllowedOAuthScopes"] == ["openid", "email", "profile"]
    assert settings["CallbackURLs"] == [INBOX] and settings["LogoutURLs"] == [INBOX]
    assert settings["SupportedIdentityProviders"] == ["COGNITO"]
    # what the template set on the client is kept
    assert settings["ClientName"] == "signoff-inbox"
    assert settings["ExplicitAuthFlows"] == ["ALLOW_REFRESH_TOKEN_AUTH"]
    assert settings["AccessTokenValidity"] == 60


def test_a_bad_request_fails_the_deploy_with_a_reason_and_delete_changes_nothing(cognito):
    client, pool, inbox = cognito

    plain_http = _handle()(_request(pool, inbox, CallbackURLs=["http://insecure/inbox"]))
    unknown = _handle()(_request(pool, "no-such-client"))
    deleted = _handle()(_request(pool, inbox, "Delete"))

    assert plain_http["Status"] == "FAILED" and "https" in plain_http["Reason"]
    assert unknown["Status"] == "FAILED" and unknown["Reason"]
    assert deleted["Status"] == "SUCCESS"
    settings = client.describe_user_pool_client(UserPoolId=pool, ClientId=inbox)["UserPoolClient"]
    assert not settings.get("CallbackURLs") and not settings.get("AllowedOAuthFlows")
