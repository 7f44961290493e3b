"""`make dev` serves Bedrock agents against the Bedrock stand-in when no AWS credentials are set."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from signoff_dev.devserver import DevServer

ROOT = Path(__file__).resolve().parents[2]


def test_without_aws_credentials_a_bedrock_agent_runs_against_the_stand_in(db, standin, monkeypatch):
    # Given no AWS credentials and no Bedrock endpoint, and agents of which some run on Bedrock
    for name in ("SIGNOFF_BEDROCK_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SIGNOFF_AGENTS_MODULE", "tests.support.agents")
    from signoff.models import bedrock_converse

    monkeypatch.setattr(bedrock_converse, "_session", None)  # credentials are read by a fresh session
    server = DevServer(
        ROOT, database_url=db, model_base_url=standin.base_url, upkeep_seconds=0, announce=False
    )
    url = server.start()
    try:
        # When the seed's request goes to the Bedrock agent
        request = urllib.request.Request(
            f"{url}/agents/data_manager_bedrock/runs",
            data=json.dumps(
                {"message": "Delete 50 old records from the users table", "stream": False}
            ).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            run = json.loads(response.read())

        # Then the Bedrock stand-in answered it (every signature checked) and the run paused
        assert run["status"] == "PAUSED" and run["model_provider"] == "AwsBedrock"
        assert server.backends.bedrock_standin is not None
        assert [model for model, _ in server.backends.bedrock_standin.requests] == [
            "us.anthropic.claude-3-5-haiku-20241022-v1:0"
        ]
    finally:
        server.stop()
