"""scripts/create_user.py: a user in an approver group of the stack's pool, and a token the API accepts."""

from __future__ import annotations

import base64
import json

import boto3
import pytest
from moto import mock_aws

from scripts.create_user import create_user, new_password


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_the_token_names_the_app_client_and_carries_the_approver_group():
    pytest.importorskip("joserfc", reason="moto's Cognito needs joserfc (not in the shared venv)")
    with mock_aws():
        # Given the stack's pool, app client and approver group
        cognito = boto3.client("cognito-idp")
        # The stack's pool policy (template.yaml): 12+ characters, upper, lower, digits, no symbols.
        policy = {
            "MinimumLength": 12,
            "RequireLowercase": True,
            "RequireUppercase": True,
            "RequireNumbers": True,
            "RequireSymbols": False,
        }
        pool = cognito.create_user_pool(PoolName="signoff-dev-users", Policies={"PasswordPolicy": policy})[
            "UserPool"
        ]["Id"]
        client = cognito.create_user_pool_client(
            UserPoolId=pool, ClientName="signoff-dev-api", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
        )["UserPoolClient"]["ClientId"]
        cognito.create_group(GroupName="approvers", UserPoolId=pool)

        # When the script creates alice in it (twice: running it again resets her password)
        create_user(cognito, pool, client, "alice", "approvers", new_password())
        token = create_user(cognito, pool, client, "alice", "approvers", new_password())

        # Then the token is what the JWT authorizer checks (client_id) and the approver policy reads
        claims = _claims(token)
        assert claims["client_id"] == client
        assert claims["cognito:groups"] == ["approvers"]
        assert claims["token_use"] == "access"


def test_generated_passwords_meet_the_pools_policy():
    for _ in range(50):
        password = new_password()
        assert len(password) >= 12
        assert any(c.islower() for c in password) and any(c.isupper() for c in password)
        assert any(c.isdigit() for c in password)
