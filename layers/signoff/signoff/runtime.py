"""Composition root for Lambda handlers: the services' dependencies, built from the settings.

``build_dependencies(settings, store=..., queue=..., ...)`` composes a ``Dependencies`` from what it is
given and builds the real thing for whatever is not given; it keeps nothing. ``dependencies()`` is the
container's: built once per warm container from the cached getters below, which handlers may also
call directly. Everything is built lazily on first use, so a handler that never calls the model never
imports ``openai``.

What runs outside Lambda hands its stand-ins in explicitly: ``provide(queue=..., notifier=...,
model_factory=...)`` makes the container's dependencies (and ``get_queue``/``get_notifier``) use them,
and ``reset()`` forgets what was built from the environment, for a dev server that switches between
functions' environments in one process. The runtime never imports the dev tooling.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING

from signoff.config import Settings, get_settings

if TYPE_CHECKING:
    from signoff.agent import Agent, AgentCatalog
    from signoff.models.base import Embedder, Model
    from signoff.notify import Notifier
    from signoff.queue import ResumeQueue
    from signoff.service import Dependencies
    from signoff.store.base import KnowledgeHit, RunStore
    from signoff.store.knowledge import PostgresKnowledgeStore
    from signoff.store.postgres import PostgresRunStore
    from signoff.upkeep_gate import UpkeepGate

ModelFactory = Callable[[str], "Model"]
"""Builds the chat model of an agent's model string (``"openai:gpt-4o-mini"``, ``"gpt-4o-mini"``).

The real one goes through the provider registry (``signoff.models.registry``), one model per string."""

KnowledgeSearch = Callable[[str, str, int, dict], "list[KnowledgeHit]"]
"""``search(kb, query, limit, filters)``: the search behind agents' ``search_knowledge_base`` tool."""


def _secret(arn: str, settings: Settings, *, fresh: bool = False) -> str:
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(arn, max_age=settings.secrets_max_age_s, force_fetch=fresh)
    return value if isinstance(value, str) else value.decode()


def database_url(settings: Settings | None = None, *, fresh: bool = False) -> str:
    """The database URL: ``SIGNOFF_DATABASE_URL``, else an IAM token URL, else the secret's.

    The secret may be a plain URL, JSON with a ``url`` key, or the JSON that RDS writes: either
    the full ``host``/``port``/``username``/``password``/``dbname`` set, or RDS's managed master
    secret (``username`` and ``password`` only), whose host, port and database name come from
    ``SIGNOFF_DATABASE_HOST``/``_PORT``/``_NAME``. Under ``SIGNOFF_DATABASE_AUTH=iam`` the password
    is a fresh IAM authentication token for ``SIGNOFF_DATABASE_USER`` (RDS Proxy), TLS required.

    Args:
        settings: the settings to read; this container's when None.
        fresh: read the secret from Secrets Manager, not from the cache (after the database
            refused the cached credentials, e.g. once the secret was rotated).

    Returns:
        A libpq connection string.

    Raises:
        RuntimeError: no database is configured, or the secret names no host and no
            ``SIGNOFF_DATABASE_HOST`` is set.
    """
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    from psycopg.conninfo import make_conninfo

    if settings.database_auth == "iam":
        return make_conninfo(
            host=settings.database_host,
            port=settings.database_port,
            user=settings.database_user,
            password=_iam_token(settings.database_host, settings.database_port, settings.database_user),
            dbname=settings.database_name or "postgres",
            sslmode="require",
        )
    if not settings.database_secret_arn:
        raise RuntimeError("set SIGNOFF_DATABASE_URL or SIGNOFF_DATABASE_SECRET_ARN")
    raw = _secret(settings.database_secret_arn, settings, fresh=fresh).strip()
    if not raw.startswith("{"):
        return raw
    data = json.loads(raw)
    if "url" in data:
        return str(data["url"])
    host = data.get("host") or settings.database_host
    if not host:
        raise RuntimeError(
            "the database secret names no host (RDS's managed secret holds only username and password):"
            " set SIGNOFF_DATABASE_HOST (the stack's DatabaseHost parameter)"
        )
    return make_conninfo(
        host=host,
        port=data.get("port") or settings.database_port,
        user=data["username"],
        password=data["password"],
        dbname=data.get("dbname") or settings.database_name or "postgres",
        sslmode=data.get("sslmode", "require"),
    )


def _iam_token(host: str, port: int, user: str) -> str:
    """A 15-minute IAM authentication token (signed locally: no AWS call, no network)."""
    return _rds_client().generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user)


@cache
def _rds_client():  # boto3's client types are generated: none to name here
    import boto3

    return boto3.client("rds")


# Each secret setting → the setting naming its Secrets Manager secret (used when the value is unset).
_SECRET_ARNS = {
    "openai_api_key": "openai_secret_arn",
    "webhook_secret": "webhook_secret_arn",
    "slack_signing_secret": "slack_signing_secret_arn",
}


def configured_secret(name: str, settings: Settings | None = None) -> str:
    """A secret setting: its environment variable, else its Secrets Manager secret, else empty.

    Args:
        name: the setting, one of ``openai_api_key``, ``webhook_secret``, ``slack_signing_secret``.
        settings: the settings to read; this container's when None.

    Returns:
        The secret (stripped when it comes from Secrets Manager), or ``""`` when none is configured.
    """
    settings = settings or get_settings()
    value = getattr(settings, name)
    if value:
        return value
    arn = getattr(settings, _SECRET_ARNS[name])
    return _secret(arn, settings).strip() if arn else ""


def openai_api_key(settings: Settings | None = None) -> str:
    """The OpenAI key: ``OPENAI_API_KEY``, else the ``SIGNOFF_OPENAI_SECRET_ARN`` secret, else empty."""
    return configured_secret("openai_api_key", settings)


def webhook_secret(settings: Settings | None = None) -> str:
    """The HMAC secret of signed webhooks, from the environment or Secrets Manager."""
    return configured_secret("webhook_secret", settings)


def slack_signing_secret(settings: Settings | None = None) -> str:
    """Slack's signing secret, from the environment or Secrets Manager."""
    return configured_secret("slack_signing_secret", settings)


# -- building the real things from settings (no caching here)


def _new_queue(settings: Settings) -> ResumeQueue | None:
    from signoff.queue import SqsResumeQueue

    return SqsResumeQueue(settings.queue_url) if settings.queue_url else None


def _new_notifier(settings: Settings) -> Notifier | None:
    """The pause notifier over every channel the settings configure, or ``None`` when there is none."""
    from signoff import channels
    from signoff.notify import Notifier

    announcers = channels.announcers(settings, lambda name: channel_secret(name, settings))
    return Notifier(announcers) if announcers else None


def channel_secret(name: str, settings: Settings | None = None) -> str:
    """A channel's secret by name (``webhook``, ``slack``): the environment, else Secrets Manager."""
    getters = {"webhook": webhook_secret, "slack": slack_signing_secret}
    getter = getters.get(name)
    return getter(settings) if getter else ""


def _new_store(settings: Settings) -> PostgresRunStore:
    from signoff.store.postgres import PostgresRunStore

    return PostgresRunStore(
        lambda: database_url(settings),
        refresh=lambda: database_url(settings, fresh=True),
        max_idle_s=settings.database_max_idle_s,
        connect_timeout_s=settings.database_connect_timeout_s,
    )


def _new_embedder(settings: Settings) -> Embedder:
    """The embeddings model of ``SIGNOFF_EMBEDDING_MODEL``: Bedrock's with a ``bedrock:`` (or
    ``aws-bedrock:``) prefix, else OpenAI's (any ``openai:`` prefix dropped)."""
    from signoff.models.registry import parse_model

    ref = parse_model(settings.embedding_model)
    if ref.provider.name == "bedrock":
        from signoff.models.bedrock_converse import build_embeddings

        return build_embeddings(ref.id, settings)
    from signoff.models.openai_chat import OpenAIEmbeddings

    return OpenAIEmbeddings(
        ref.id,
        api_key=openai_api_key(settings),
        base_url=settings.openai_base_url or None,
        dimensions=settings.embedding_dimensions,
        batch_size=settings.embedding_batch_size,
        timeout_s=settings.model_timeout_s,
        max_retries=settings.model_max_retries,
    )


def _new_model(model: str, settings: Settings) -> Model:
    from signoff.models.registry import REGISTRY

    return REGISTRY.build(model, settings, lambda name: configured_secret(name, settings))


def default_model_factory(settings: Settings) -> ModelFactory:
    """The real models of ``settings``: one chat model per model string, built on first use.

    The model string's provider prefix picks the provider (``signoff.models.registry``); a bare id
    is OpenAI's.

    Args:
        settings: where the provider's endpoint, key, timeouts and retries come from.

    Returns:
        A ``ModelFactory`` that caches what it builds.
    """

    @lru_cache(maxsize=8)
    def build(model: str) -> Model:
        return _new_model(model, settings)

    return build


KNOWLEDGE_SEARCH_TIMEOUT_MS = 10_000


def _search(
    knowledge_store: PostgresKnowledgeStore,
    embedder: Embedder,
    kb: str,
    query: str,
    limit: int,
    filters: dict,
) -> list[KnowledgeHit]:
    import time

    from signoff import knowledge
    from signoff.models.base import Deadline

    started = time.monotonic()
    deadline = Deadline(lambda: KNOWLEDGE_SEARCH_TIMEOUT_MS - int((time.monotonic() - started) * 1000), 0)
    return knowledge.search(
        knowledge_store, embedder, kb, query, limit=limit, filters=filters, deadline=deadline
    )


def knowledge_search_on(store: RunStore, settings: Settings) -> KnowledgeSearch:
    """The knowledge search on ``store``'s connection with the embeddings model of ``settings``.

    The knowledge store and the embedder are built on the first search. Its embeddings request
    (retries included) gets at most ten seconds of the run's time.

    Args:
        store: a ``PostgresRunStore`` (the knowledge tables live in the same database).
        settings: the embeddings model's settings (``SIGNOFF_EMBEDDING_*``, the OpenAI key).

    Returns:
        ``search(kb, query, limit, filters)``.
    """

    @cache
    def parts() -> tuple[PostgresKnowledgeStore, Embedder]:
        from signoff.store.knowledge import PostgresKnowledgeStore

        return PostgresKnowledgeStore(store), _new_embedder(settings)  # type: ignore[arg-type]

    def search(kb: str, query: str, limit: int, filters: dict) -> list[KnowledgeHit]:
        return _search(*parts(), kb, query, limit, filters)

    return search


def build_dependencies(
    settings: Settings,
    *,
    store: RunStore | None = None,
    catalog: AgentCatalog | None = None,
    queue: ResumeQueue | None = None,
    notifier: Notifier | None = None,
    model_factory: ModelFactory | None = None,
    knowledge_search: KnowledgeSearch | None = None,
) -> Dependencies:
    """Compose what the services need: what is given, and the real thing for whatever is not.

    Nothing is cached or kept: each call builds anew what it is not given (the store opens its
    connection on first use, the models and the embedder are built on first use). A container's
    handlers use ``dependencies()`` instead, which calls this once with the container's cached parts.

    Args:
        settings: the settings the real parts are built from.
        store: the run store; a ``PostgresRunStore`` on the settings' database when None.
        catalog: the agents; the ``AGENTS`` of ``settings.agents_module`` when None.
        queue: the resume queue; SQS at ``settings.queue_url`` (or none, when unset) when None.
        notifier: the pause notifier; the channels the settings configure (or none) when None.
        model_factory: builds an agent's chat model from its model string; the provider registry
            (``default_model_factory``) when None.
        knowledge_search: the knowledge search; on the store's database when None.

    Returns:
        The dependencies.
    """
    from signoff.agent import AgentCatalog
    from signoff.service import Dependencies

    store = store if store is not None else _new_store(settings)
    models = model_factory or default_model_factory(settings)
    # The real models are measured (latency, tokens per agent); a model handed in is used as it is.
    real = model_factory is None or model_factory is _model

    def models_of(agent: Agent) -> Model:
        return models(agent.model)

    return Dependencies(
        store=store,
        catalog=catalog if catalog is not None else AgentCatalog.from_module(settings.agents_module),
        model_for=(lambda agent: _observed(models(agent.model), agent.id)) if real else models_of,
        settings=settings,
        queue=queue if queue is not None else _new_queue(settings),
        notifier=notifier if notifier is not None else _new_notifier(settings),
        knowledge_search=knowledge_search or knowledge_search_on(store, settings),
        tell_decider=_tell_decider,
    )


def _observed(model: Model, agent_id: str) -> Model:
    from signoff.observability import ObservedModel

    return ObservedModel(model, agent_id)  # type: ignore[return-value]


def _tell_decider(reply_to: str, message: dict) -> bool:
    """Tells a Slack decider what became of a decision kept while the run was busy."""
    from signoff.channels.slack import tell

    return tell(reply_to, message)


# -- this container's: built once, kept while the container is warm


@dataclass
class _Provided:
    queue: ResumeQueue | None = None
    notifier: Notifier | None = None
    model_factory: ModelFactory | None = None


_provided = _Provided()


def provide(
    *,
    queue: ResumeQueue | None = None,
    notifier: Notifier | None = None,
    model_factory: ModelFactory | None = None,
) -> None:
    """Hand this container stand-ins for its resume queue, notifier or models (dev tooling, tests).

    From the next call on, ``dependencies()`` is built with them, and ``get_queue()`` /
    ``get_notifier()`` return them, so handlers that look the queue up directly get it too. They stay
    until ``reset(keep_provided=False)``; what is not given keeps its current value.

    Args:
        queue: an object with ``send(message)`` (the ``ResumeQueue`` protocol).
        notifier: an object with ``run_paused(state, links)``.
        model_factory: builds the chat model of an agent's model string.
    """
    if queue is not None:
        _provided.queue = queue
    if notifier is not None:
        _provided.notifier = notifier
    if model_factory is not None:
        _provided.model_factory = model_factory
    dependencies.cache_clear()


def reset(*, keep_store: bool = True, keep_provided: bool = True) -> None:
    """Forget what this container built from its environment, so that the next use reads it afresh.

    The settings, the agents, the models, the queue, the notifier, the embedder and the dependencies
    are rebuilt on their next use. A dev server calls it when it switches an in-process container to
    another function's environment.

    Args:
        keep_store: keep the store and its open connection (the database does not change between
            functions); False closes and forgets it.
        keep_provided: keep what ``provide`` handed in; False forgets it too.
    """
    global _provided
    if not keep_store:
        if get_store.cache_info().currsize:
            with contextlib.suppress(Exception):
                get_store().close()
        get_store.cache_clear()
    if not keep_provided:
        _provided = _Provided()
    for cached in (
        get_settings,
        get_catalog,
        _sqs_queue,
        _configured_notifier,
        get_knowledge_store,
        get_embedder,
        _model,
        get_upkeep_gate,
        dependencies,
    ):
        cached.cache_clear()


def get_queue() -> ResumeQueue | None:
    """The resume queue: the one ``provide`` handed in, else SQS at ``SIGNOFF_QUEUE_URL``, else None."""
    return _provided.queue if _provided.queue is not None else _sqs_queue()


@lru_cache(maxsize=1)
def _sqs_queue() -> ResumeQueue | None:
    return _new_queue(get_settings())


def get_notifier() -> Notifier | None:
    """The pause notifier: the one ``provide`` handed in, else the configured channels, else None."""
    return _provided.notifier if _provided.notifier is not None else _configured_notifier()


@lru_cache(maxsize=1)
def _configured_notifier() -> Notifier | None:
    return _new_notifier(get_settings())


@lru_cache(maxsize=1)
def get_store() -> PostgresRunStore:
    """One store (one connection, opened lazily) per warm container.

    Refused credentials are read again from Secrets Manager once (a rotated secret) before the
    request fails; a connection idle longer than ``SIGNOFF_DATABASE_MAX_IDLE_S`` is replaced.
    """
    return _new_store(get_settings())


@lru_cache(maxsize=1)
def get_upkeep_gate() -> UpkeepGate | None:
    """The upkeep's question "is there work?" asked without the database, when configured.

    ``SIGNOFF_UPKEEP_MARKER`` names the SSM parameter where each upkeep pass leaves when the
    database is next needed; ``SIGNOFF_UPKEEP_WATCH`` the functions whose invocations mean new work.
    None (every upkeep looks at the database) when no marker is set.
    """
    from signoff.upkeep_gate import LambdaInvocations, SsmMarker, UpkeepGate

    settings = get_settings()
    if not settings.upkeep_marker:
        return None
    watched = [name.strip() for name in settings.upkeep_watch.split(",") if name.strip()]
    return UpkeepGate(SsmMarker(settings.upkeep_marker), LambdaInvocations(watched))


@lru_cache(maxsize=1)
def get_knowledge_store() -> PostgresKnowledgeStore:
    """The knowledge store, on the run store's connection."""
    from signoff.store.knowledge import PostgresKnowledgeStore

    return PostgresKnowledgeStore(get_store())


@lru_cache(maxsize=1)
def get_embedder() -> Embedder:
    """The embeddings model of knowledge search (``SIGNOFF_EMBEDDING_*``)."""
    return _new_embedder(get_settings())


def search_knowledge(kb: str, query: str, limit: int, filters: dict) -> list[KnowledgeHit]:
    """The search behind agents' ``search_knowledge_base`` tool, with this container's store and model.

    Its embeddings request (retries included) gets at most ten seconds of the run's time.
    """
    return _search(get_knowledge_store(), get_embedder(), kb, query, limit, filters)


@lru_cache(maxsize=1)
def get_catalog() -> AgentCatalog:
    """This deployment's agents, from the module named by ``SIGNOFF_AGENTS_MODULE``."""
    from signoff.agent import AgentCatalog

    return AgentCatalog.from_module(get_settings().agents_module)


@lru_cache(maxsize=8)
def _model(model: str) -> Model:
    return _new_model(model, get_settings())


log = logging.getLogger(__name__)


def warn_about_short_leases(settings: Settings, function_timeout_ms: int | None = None) -> bool:
    """Log a warning when a run's lease can end while its invocation still works on it.

    A save renews the lease, a model call does not; past the lease the upkeep sweep takes a live
    invocation's run over (marks it ERROR). Safe when the lease outlasts the longest invocation,
    which saves and hands off ``deadline_margin_ms`` before its deadline.
    """
    longest_ms = max(settings.api_timeout_ms, function_timeout_ms or 0) - settings.deadline_margin_ms
    if settings.lease_seconds * 1000 > longest_ms:
        return False
    log.warning(
        "SIGNOFF_LEASE_SECONDS=%s is not longer than an invocation may last (%s ms): the upkeep sweep "
        "may take over runs that are still being worked on; set it above every function's timeout",
        settings.lease_seconds,
        longest_ms,
    )
    return True


@lru_cache(maxsize=1)
def dependencies() -> Dependencies:
    """Everything the services need, built once per warm container (with what ``provide`` handed in)."""
    settings = get_settings()
    warn_about_short_leases(settings)
    return build_dependencies(
        settings,
        store=get_store(),
        catalog=get_catalog(),
        queue=get_queue(),
        notifier=get_notifier(),
        model_factory=_provided.model_factory or _model,
        knowledge_search=search_knowledge,
    )
