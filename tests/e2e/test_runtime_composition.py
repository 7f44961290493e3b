"""What tooling outside Lambda hands the runtime (``runtime.provide``), and ``build_dependencies``.

The dev server, ``make invoke`` and the container pool hand their local queue, notifier or model to
the container's dependencies through ``signoff.runtime.provide``; the handlers, including those that
look the queue up themselves (KnowledgeFunction), then use them. ``runtime.reset`` (what the dev
server does when it switches to another function's environment) keeps them.
"""

from __future__ import annotations

from typing import Any

from signoff import runtime, service
from signoff.config import Settings
from signoff.models.base import ModelResponse
from signoff.service import StartInput
from signoff.store.postgres import PostgresRunStore
from tests.support.api import Api


class ListQueue:
    """An in-memory stand-in for SQS: keeps what is sent."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


class CannedModel:
    """A model that always answers the same text (stands in for the provider)."""

    provider = "Canned"

    def __init__(self, model: str, answer: str) -> None:
        self.id = model
        self.answer = answer
        self.requests = 0

    def request(self, messages, tools, deadline) -> ModelResponse:
        self.requests += 1
        return ModelResponse(content=self.answer)


def _kinds(queue: ListQueue) -> list[str]:
    return [message["kind"] for message in queue.messages]


def test_a_provided_queue_gets_background_runs_and_large_uploads_until_it_is_withdrawn(api: Api, monkeypatch):
    # Given no SQS queue configured, and a local queue handed to the runtime
    monkeypatch.setenv("SIGNOFF_KNOWLEDGE_QUEUE_CHUNKS", "1")
    runtime.reset()
    queue = ListQueue()
    runtime.provide(queue=queue)

    # When a background run starts and a large document is uploaded (KnowledgeFunction looks the queue
    # up itself)
    started = api.start(background="true")
    text = "# Guide\n\n" + "\n\n".join(f"## Step {n}\n\nDo step {n}." for n in range(3))
    uploaded = api.call(
        "POST", "/knowledge/{kb}/documents", {"kb": "handbook"}, fields={"text": text}, form="json"
    )

    # Then both are accepted for later, and their messages are in the local queue
    assert (started.status, uploaded.status) == (202, 202), (started, uploaded)
    assert _kinds(queue) == ["resume", "ingest"]

    # When the environment switches (the dev server's overlay between functions)
    runtime.reset()

    # Then the local queue is still the one used
    assert api.start(background="true").status == 202
    assert _kinds(queue) == ["resume", "ingest", "resume"]

    # When what was provided is withdrawn
    runtime.reset(keep_provided=False)

    # Then a background run is refused again: no queue is configured
    refused = api.start(background="true")
    assert refused.status == 501, refused
    assert "SIGNOFF_QUEUE_URL" in refused.text
    assert len(queue.messages) == 3


def test_a_provided_model_factory_answers_the_handlers_runs(api: Api):
    # Given a model factory handed to the runtime
    built: dict[str, CannedModel] = {}

    def models(model: str) -> CannedModel:
        return built.setdefault(model, CannedModel(model, "canned answer"))

    runtime.provide(model_factory=models)

    # When a run starts through StartRunFunction
    run = api.start("hello").json()

    # Then the run is answered by the provided model, built for the agent's model string
    assert (run["status"], run["content"]) == ("COMPLETED", "canned answer")
    assert list(built) == ["gpt-4o-mini"]
    assert built["gpt-4o-mini"].requests == 1


def test_build_dependencies_builds_the_real_parts_for_what_is_not_given(db, runtime_env):
    # Given settings for a database, and only the model handed in
    settings = Settings.from_env()
    model = CannedModel("gpt-4o-mini", "composed")

    # When the dependencies are composed
    deps = runtime.build_dependencies(settings, model_factory=lambda _: model)

    # Then the store is a real one on that database, the agents come from the settings' module,
    # nothing is configured for the queue or the notifier, and a run started with them is stored
    assert isinstance(deps.store, PostgresRunStore)
    assert deps.queue is None and deps.notifier is None
    assert deps.model_for(deps.catalog.get("data_manager")) is model
    result = service.start_run(
        deps,
        "data_manager",
        StartInput(message="hi", user_id="u1"),
        principal=None,
        deadline=_unlimited(),
    )
    assert result.state.status == "COMPLETED"
    reader = PostgresRunStore(db)
    loaded = reader.load(result.state.run_id)
    reader.close()
    deps.store.close()
    assert loaded is not None and loaded.state.content == "composed"

    # And the container's cached dependencies were not touched
    assert runtime.dependencies.cache_info().currsize == 0


def test_build_dependencies_uses_what_it_is_given(runtime_env):
    # Given a store, a queue and a notifier of the caller's
    settings = Settings.from_env()
    store = PostgresRunStore(settings.database_url)
    queue, notifier = ListQueue(), object()

    # When the dependencies are composed with them
    deps = runtime.build_dependencies(settings, store=store, queue=queue, notifier=notifier)

    # Then those are the ones used
    assert (deps.store, deps.queue, deps.notifier) == (store, queue, notifier)
    assert deps.settings is settings


def _unlimited():
    from signoff.models.base import Deadline

    return Deadline.unlimited()
