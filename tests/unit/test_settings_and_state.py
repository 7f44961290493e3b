"""Settings from the environment and run documents from the database: bad values are refused clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from signoff.config import Settings, SettingsError
from signoff.state import RunState, StateDocumentInvalid

SNAPSHOT = Path(__file__).resolve().parents[1] / "snapshots" / "run_state_v1.json"


def test_settings_convert_numbers_and_keep_defaults_for_unset_names():
    # Given an environment that sets a few values as text
    env = {"SIGNOFF_MAX_TURNS": " 7 ", "SIGNOFF_MODEL_TIMEOUT_S": "2.5", "SIGNOFF_AUTH_MODE": "jwt"}

    # When the settings are read
    settings = Settings.from_env(env)

    # Then the values are typed and everything else keeps its default
    assert (settings.max_turns, settings.model_timeout_s, settings.auth_mode) == (7, 2.5, "jwt")
    assert settings.lease_seconds == 120 and settings.agents_module == "catalog"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SIGNOFF_MAX_TURNS", "ten", "expected int"),
        ("SIGNOFF_MAX_TURNS", "0", "at least 1"),
        ("SIGNOFF_HISTORY_RUNS", "101", "at most 100"),
        ("SIGNOFF_MODEL_TIMEOUT_S", "0", "greater than 0"),
        ("SIGNOFF_AUTH_MODE", "basic", "one of none, jwt"),
        ("SIGNOFF_EMBEDDING_MODEL", "", "must not be empty"),
    ],
)
def test_a_bad_setting_names_the_variable_and_the_rule(name, value, message):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert name in str(caught.value) and message in str(caught.value)


def test_settings_are_frozen():
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.max_turns = 3  # type: ignore[misc]


def test_a_stored_document_round_trips_and_ignores_unknown_keys():
    # Given a run saved by the first schema version, with a key a newer writer added
    document = json.loads(SNAPSHOT.read_text())
    document["added_by_a_newer_version"] = {"x": 1}
    document["tools"][0]["also_new"] = True

    # When it is loaded and dumped again
    state = RunState.from_document(document)
    dumped = state.document()

    # Then nothing it knows is lost, and the unknown keys are dropped
    original = json.loads(SNAPSHOT.read_text())
    dumped = json.loads(json.dumps(dumped))
    nested = ("tools", "metrics")
    assert {key: dumped[key] for key in original if key not in nested} == {
        key: value for key, value in original.items() if key not in nested
    }
    # (fields added since keep their defaults: the stored ones are all there, unchanged)
    assert {key: dumped["metrics"][key] for key in original["metrics"]} == original["metrics"]
    for call, stored in zip(dumped["tools"], original["tools"], strict=True):
        assert {key: call[key] for key in stored} == stored
    assert "added_by_a_newer_version" not in dumped and "also_new" not in dumped["tools"][0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("run_id"), "missing run_id"),
        (lambda d: d.update(status="DONE"), "RunState.status"),
        (lambda d: d.update(messages={"role": "user"}), "RunState.messages"),
        (lambda d: d["tools"][0].update(state="maybe"), "ToolCall.state"),
        (lambda d: d["tools"][0].update(confirmed="yes"), "ToolCall.confirmed"),
        (lambda d: d["metrics"].update(input_tokens=True), "RunMetrics.input_tokens"),
        (lambda d: d.update(tools="none"), "RunState.tools"),
    ],
)
def test_a_corrupt_document_is_refused_with_the_field_named(change, message):
    document = json.loads(SNAPSHOT.read_text())
    change(document)
    with pytest.raises(StateDocumentInvalid, match=message):
        RunState.from_document(document)


@pytest.mark.parametrize(
    ("lease_s", "api_timeout_ms", "function_timeout_ms", "warned"),
    [
        (120, 29000, 120000, False),  # the template's worker: it hands off 5 s before its 120 s timeout
        (120, 29000, 130000, True),
        (2, 29000, None, True),  # the soak's lease, on purpose
        (120, 29000, None, False),
    ],
)
def test_a_lease_shorter_than_an_invocation_is_warned_about(
    caplog, lease_s, api_timeout_ms, function_timeout_ms, warned
):
    from signoff.runtime import warn_about_short_leases

    settings = Settings(lease_seconds=lease_s, api_timeout_ms=api_timeout_ms)
    assert warn_about_short_leases(settings, function_timeout_ms) is warned
    assert ("SIGNOFF_LEASE_SECONDS" in caplog.text) is warned
