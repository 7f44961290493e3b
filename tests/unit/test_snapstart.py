"""SnapStart hooks (priming, restore) and the tracer that stays out of the way when tracing is off."""

from __future__ import annotations

import random
import sys

import pytest

from signoff import observability, runtime, snapstart
from tests.conftest import _reset_runtime


@pytest.fixture
def fresh_hooks(monkeypatch: pytest.MonkeyPatch):
    """No hooks registered yet, and runtime caches that start and end empty."""
    monkeypatch.setattr(snapstart, "_before", [])
    monkeypatch.setattr(snapstart, "_after", [])
    monkeypatch.setattr(snapstart, "_installed", False)
    monkeypatch.setenv("SIGNOFF_AGENTS_MODULE", "catalog")
    _reset_runtime()
    yield
    _reset_runtime()


def test_outside_a_snapstart_init_nothing_is_primed_or_registered(fresh_hooks, monkeypatch):
    monkeypatch.delenv("AWS_LAMBDA_INITIALIZATION_TYPE", raising=False)

    snapstart.install(calls_model=True)

    assert snapstart._before == [] and snapstart._after == []
    assert runtime.dependencies.cache_info().currsize == 0


class _Connection:
    closed = False

    def close(self) -> None:
        self.closed = True


def test_a_snapstart_init_primes_then_each_restore_reseeds_and_drops_the_connection(
    fresh_hooks, monkeypatch, caplog
):
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")

    # Given a SnapStart init
    snapstart.install(calls_model=True)

    # Then the model path is loaded (a completion went through the client, in memory) and the
    # dependencies are built, without a connection
    assert "priming failed" not in caplog.text
    assert {"openai", "httpx2", "signoff.models.openai_chat"} <= set(sys.modules)
    assert runtime.dependencies.cache_info().currsize == 1
    assert runtime.get_store()._conn is None
    snapstart.run_before_snapshot()

    # When two environments are restored from the same snapshot
    snapshot = random.getstate()
    draws = []
    for _ in range(2):
        random.setstate(snapshot)
        stale = _Connection()
        runtime.get_store()._conn = stale  # as if a connection had survived into the snapshot
        snapstart.run_after_restore()
        draws.append(random.random())
        # Then the stale connection is gone (the store opens a fresh one on first use)
        assert stale.closed and runtime.get_store()._conn is None

    # And they do not share the random sequence
    assert draws[0] != draws[1]


def test_install_runs_once_per_process(fresh_hooks, monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    snapstart.install(calls_model=False)
    snapstart.install(calls_model=False)
    assert len(snapstart._before) == 1 and len(snapstart._after) == 2


def test_tracing_follows_powertools_rule(monkeypatch):
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    monkeypatch.delenv("AWS_SAM_LOCAL", raising=False)
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED", raising=False)
    assert observability.tracing_enabled()
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    assert not observability.tracing_enabled()
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED")
    monkeypatch.delenv("LAMBDA_TASK_ROOT")
    assert not observability.tracing_enabled()  # outside Lambda


def test_the_off_tracer_passes_handlers_through():
    tracer = observability.OffTracer()

    def handler(event, context):
        return {"ok": event}

    assert tracer.capture_lambda_handler(handler) is handler
    assert tracer.capture_lambda_handler(capture_response=False)(handler) is handler
    assert tracer.capture_method(handler) is handler
    tracer.put_annotation("k", "v")
    tracer.put_metadata("k", {"v": 1})
    assert handler(1, None) == {"ok": 1}


def test_a_bedrock_deployment_primes_botocore_without_building_a_client(fresh_hooks, monkeypatch, caplog):
    # Given a SnapStart init of a deployment whose agents run on Bedrock
    from signoff.models import bedrock_converse

    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    monkeypatch.setenv("SIGNOFF_AGENTS_MODULE", "tests.support.agents")
    monkeypatch.setattr(bedrock_converse, "_session", None)
    _reset_runtime()

    # When it primes
    snapstart.install(calls_model=True)

    # Then botocore's Bedrock model is loaded into the shared session, and no client (no
    # credentials, no TLS context) exists before the snapshot
    assert "priming failed" not in caplog.text
    loader = bedrock_converse.boto3_session()._session.get_component("data_loader")
    assert any("bedrock-runtime" in str(key) for key in loader._cache)
    assert runtime._model.cache_info().currsize == 0
