"""The database secret as each deployment path stores it, read the way a container reads it."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws
from psycopg.conninfo import conninfo_to_dict

from signoff.config import Settings
from signoff.runtime import database_url


@pytest.fixture
def secrets():
    with mock_aws():
        yield boto3.client("secretsmanager")


def _settings(arn: str, **values) -> Settings:
    return Settings(database_secret_arn=arn, secrets_max_age_s=300, **values)


def test_rds_managed_master_secret_takes_host_port_and_name_from_the_settings(secrets):
    # Given RDS's own managed secret: only username and password (the stack's Aurora, or an existing one)
    arn = secrets.create_secret(
        Name="rds!cluster-1", SecretString=json.dumps({"username": "signoff", "password": "p@ss"})
    )["ARN"]

    # When a container builds its URL with the stack's DatabaseHost/Port/Name
    url = database_url(
        _settings(arn, database_host="db.cluster.example", database_port=5433, database_name="signoff")
    )

    # Then it connects there, over TLS (no KeyError: 'host')
    assert conninfo_to_dict(url) == {
        "host": "db.cluster.example",
        "port": "5433",
        "user": "signoff",
        "password": "p@ss",
        "dbname": "signoff",
        "sslmode": "require",
    }


def test_a_managed_secret_without_a_host_setting_says_which_parameter_is_missing(secrets):
    arn = secrets.create_secret(Name="rds!x", SecretString=json.dumps({"username": "u", "password": "p"}))[
        "ARN"
    ]
    with pytest.raises(RuntimeError, match="DatabaseHost"):
        database_url(_settings(arn))


def test_the_secret_full_json_and_url_forms_still_work(secrets):
    full = secrets.create_secret(
        Name="full",
        SecretString=json.dumps(
            {
                "host": "h",
                "port": 5432,
                "username": "u",
                "password": "p",
                "dbname": "d",
                "sslmode": "verify-full",
            }
        ),
    )["ARN"]
    plain = secrets.create_secret(Name="plain", SecretString="postgresql://u:p@h/d")["ARN"]
    wrapped = secrets.create_secret(Name="wrapped", SecretString=json.dumps({"url": "postgresql://u:p@h/d"}))[
        "ARN"
    ]
    assert conninfo_to_dict(database_url(_settings(full, database_host="ignored")))["host"] == "h"
    assert conninfo_to_dict(database_url(_settings(full)))["sslmode"] == "verify-full"
    assert database_url(_settings(plain)) == database_url(_settings(wrapped)) == "postgresql://u:p@h/d"


def test_a_fresh_read_sees_a_rotated_password_that_the_cache_does_not(secrets):
    # Given a secret read once (cached for five minutes), then rotated
    arn = secrets.create_secret(
        Name="rds!rotating", SecretString=json.dumps({"username": "u", "password": "old"})
    )["ARN"]
    settings = _settings(arn, database_host="h")
    assert conninfo_to_dict(database_url(settings))["password"] == "old"
    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps({"username": "u", "password": "new"}))

    # Then the cached read still has the old password, and the fresh one (after a refusal) the new
    assert conninfo_to_dict(database_url(settings))["password"] == "old"
    assert conninfo_to_dict(database_url(settings, fresh=True))["password"] == "new"


def test_iam_authentication_signs_a_token_for_the_proxy_user_over_tls():
    with mock_aws():
        settings = Settings(
            database_auth="iam",
            database_host="proxy.example",
            database_user="signoff",
            database_name="signoff",
        )
        info = conninfo_to_dict(database_url(settings))
    assert (info["host"], info["user"], info["dbname"], info["sslmode"]) == (
        "proxy.example",
        "signoff",
        "signoff",
        "require",
    )
    assert "X-Amz-Signature" in info["password"]
