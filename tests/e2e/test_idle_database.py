"""The cheap profile's upkeep lets Aurora pause: it connects only when work is due or something ran.

The scheduled upkeep asks an SSM parameter (when is work next due?) and CloudWatch (did a start,
continue, decision or resume run since?) before it opens a connection; after a pass it closes it.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import psycopg
import pytest
from moto import mock_aws

from signoff import runtime
from signoff_dev.apigw import FakeLambdaContext
from signoff_dev.handlers import invoke

MARKER = "/signoff-test/upkeep-next-due"


@pytest.fixture
def cheap(api, monkeypatch):
    with mock_aws():
        boto3.client("ssm").put_parameter(Name=MARKER, Value="{}", Type="String")
        monkeypatch.setenv("SIGNOFF_UPKEEP_MARKER", MARKER)
        monkeypatch.setenv("SIGNOFF_UPKEEP_WATCH", "signoff-test-StartRunFunction")
        runtime.reset(keep_store=False)
        yield api


def _upkeep() -> dict:
    event = json.loads(Path("events/expire_schedule.json").read_text())
    return invoke("ExpireApprovalsFunction", event, FakeLambdaContext("ExpireApprovalsFunction"))


def _marker() -> dict:
    return json.loads(boto3.client("ssm").get_parameter(Name=MARKER)["Parameter"]["Value"])


def _invoked_now(function_name: str) -> None:
    """What Lambda records in CloudWatch when the function runs."""
    boto3.client("cloudwatch").put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "Invocations",
                "Dimensions": [{"Name": "FunctionName", "Value": function_name}],
                "Value": 1,
                "Unit": "Count",
            }
        ],
    )


def test_after_a_pass_the_upkeep_holds_no_connection_and_records_the_next_expiry(cheap, db):
    # Given a run paused on a call that expires at a known time
    assert cheap.start().json()["status"] == "PAUSED"
    with psycopg.connect(db) as conn:
        [(expires,)] = conn.execute("SELECT extract(epoch FROM expires_at)::float FROM tool_calls").fetchall()

    # When the first upkeep runs (no pass recorded yet: it looks)
    result = _upkeep()

    # Then it did its pass, left no connection open, and the next time it needs the database is
    # that expiry (not five minutes from now)
    assert "skipped" not in result
    assert not runtime.get_store().connected
    assert _marker()["next_due"] == pytest.approx(expires, abs=1)


def test_with_nothing_due_and_nothing_run_the_upkeep_never_connects(cheap):
    # Given a pass over an empty database, and no watched function invoked since
    _upkeep()
    trips = runtime.get_store().round_trips

    # When the schedule fires again, and again
    results = [_upkeep(), _upkeep()]

    # Then neither touched the database: Aurora sees no connection and can pause
    assert results == [{"skipped": True}, {"skipped": True}]
    assert runtime.get_store().round_trips == trips
    assert not runtime.get_store().connected


def test_any_start_continue_decision_or_resume_since_the_last_pass_wakes_the_upkeep(cheap):
    # Given a pass that found nothing to do
    _upkeep()
    assert _upkeep() == {"skipped": True}

    # When a watched function (here StartRun) runs, as CloudWatch's Lambda metrics then show
    _invoked_now("signoff-test-StartRunFunction")

    # Then the next upkeep looks at the database again
    assert "skipped" not in _upkeep()


def test_a_marker_past_due_wakes_the_upkeep_even_without_activity(cheap):
    boto3.client("ssm").put_parameter(
        Name=MARKER, Value=json.dumps({"next_due": 1.0, "checked_at": 0.0}), Type="String", Overwrite=True
    )
    assert "skipped" not in _upkeep()
