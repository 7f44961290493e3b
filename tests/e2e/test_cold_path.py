"""What a cold start loads: functions that never call the model import neither openai nor pydantic.

Each case answers a real event in a fresh Python process, as a new Lambda execution environment
would, and then looks at what that process imported. ``openai`` costs about 0.6 s of import and
pydantic about 0.1 s; a read or an approval must not pay for either.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

CHILD = """
import json, sys
sys.path[0:0] = [sys.argv[1]]
import app
from signoff_dev.apigw import FakeLambdaContext
event = json.load(open(sys.argv[2]))
response = app.lambda_handler(event, FakeLambdaContext(sys.argv[1].rsplit("/", 1)[-1]))
heavy = sorted(name for name in ("openai", "pydantic", "httpx", "boto3") if name in sys.modules)
print(json.dumps({"status": response.get("statusCode"), "heavy": heavy}))
"""


@pytest.mark.parametrize(
    ("function", "event", "status"),
    [
        ("read_runs", "get_run.json", 404),
        ("read_runs", "list_sessions.json", 200),
        ("approvals", "approval_link_get.json", 404),
        ("approvals", "approval_webhook.json", 401),
        ("expire_approvals", "expire_schedule.json", None),
        ("knowledge", "knowledge_list.json", 200),
    ],
)
def test_a_function_that_never_calls_the_model_imports_neither_openai_nor_pydantic(
    db, function, event, status
):
    # Given a fresh process with the function's environment (the catalog of test agents included)
    env = {
        **os.environ,
        "SIGNOFF_DATABASE_URL": db,
        "SIGNOFF_AGENTS_MODULE": "tests.support.agents",
        "SIGNOFF_WEBHOOK_SECRET": "cold-path-secret",
        "SIGNOFF_AUTH_MODE": "none",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "PYTHONPATH": os.pathsep.join(
            [
                str(ROOT / "layers" / "signoff"),
                str(ROOT / "layers" / "agents"),
                str(ROOT / "devtools"),  # the child's FakeLambdaContext
                str(ROOT),
            ]
        ),
    }

    # When it answers its first event
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT / "functions" / function), str(ROOT / "events" / event)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Then it answered as expected without loading the model's client or pydantic
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == status
    assert result["heavy"] == []
