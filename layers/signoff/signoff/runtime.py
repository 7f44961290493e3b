"""Composition root for Lambda handlers: the cached, per-container dependencies.

Handlers call these getters; services receive what they return as arguments. Everything is built
lazily on first use, so a handler that never calls the model never imports ``openai``.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from typing import TYPE_CHECKING

from signoff.config import Settings, get_settings

if TYPE_CHECKING:
    from signoff.agent import AgentCatalog
    from signoff.models.openai_chat import OpenAIEmbeddings
    from signoff.notify import Notifier
    from signoff.queue import ResumeQueue
    from signoff.service import Dependencies
    from signoff.store.base import KnowledgeHit
    from signoff.store.knowledge import PostgresKnowledgeStore
    from signoff.store.postgres import PostgresRunStore


def _secret(arn: str, settings: Settings) -> str:
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(arn, max_age=settings.secrets_max_age_s)
    return value if isinstance(value, str) else value.decode()


def database_url(settings: Settings | None = None) -> str:
    """The database URL: ``SIGNOFF_DATABASE_URL``, else the Secrets Manager secret.

    The secret may be a plain URL, JSON with a ``url`` key, or the JSON that RDS writes
    (``host``, ``port``, ``username``, ``password``, ``dbname``).
    """
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    if not settings.database_secret_arn:
        raise RuntimeError("set SIGNOFF_DATABASE_URL or SIGNOFF_DATABASE_SECRET_ARN")
    raw = _secret(settings.database_secret_arn, settings).strip()
    if not raw.startswith("{"):
        return raw
    data = json.loads(raw)
    if "url" in data:
        return str(data["url"])
    from psycopg.conninfo import make_conninfo

    return make_conninfo(
        host=data["host"],
        port=data.get("port", 5432),
        user=data["username"],
        password=data["password"],
        dbname=data.get("dbname", "postgres"),
        sslmode=data.get("sslmode", "require"),
    )


def openai_api_key(settings: Settings | None = None) -> str:
    """The OpenAI key: ``OPENAI_API_KEY``, else the Secrets Manager secret, else empty."""
    settings = settings or get_settings()
    if settings.openai_api_key:
        return settings.openai_api_key
    if settings.openai_secret_arn:
        return _secret(settings.openai_secret_arn, settings).strip()
    return ""


def webhook_secret(settings: Settings | None = None) -> str:
    """The HMAC secret of signed webhooks, from the environment or Secrets Manager."""
    settings = settings or get_settings()
    if settings.webhook_secret:
        return settings.webhook_secret
    if settings.webhook_secret_arn:
        return _secret(settings.webhook_secret_arn, settings).strip()
    return ""


def slack_signing_secret(settings: Settings | None = None) -> str:
    """Slack's signing secret, from the environment or Secrets Manager."""
    settings = settings or get_settings()
    if settings.slack_signing_secret:
        return settings.slack_signing_secret
    if settings.slack_signing_secret_arn:
        return _secret(settings.slack_signing_secret_arn, settings).strip()
    return ""


@lru_cache(maxsize=1)
def get_queue() -> ResumeQueue | None:
    """The resume queue, or ``None`` when ``SIGNOFF_QUEUE_URL`` is unset."""
    from signoff.queue import SqsResumeQueue

    url = get_settings().queue_url
    return SqsResumeQueue(url) if url else None


@lru_cache(maxsize=1)
def get_notifier() -> Notifier | None:
    """The pause notifier over every configured channel, or ``None`` when none is configured."""
    from signoff import channels
    from signoff.notify import Notifier

    announcers = channels.announcers(get_settings(), channel_secret)
    return Notifier(announcers) if announcers else None


def channel_secret(name: str) -> str:
    """A channel's secret by name (``webhook``, ``slack``): the environment, else Secrets Manager."""
    getters = {"webhook": webhook_secret, "slack": slack_signing_secret}
    getter = getters.get(name)
    return getter() if getter else ""


@lru_cache(maxsize=1)
def get_store() -> PostgresRunStore:
    """One store (one connection, opened lazily) per warm container."""
    from signoff.store.postgres import PostgresRunStore

    return PostgresRunStore(database_url)


@lru_cache(maxsize=1)
def get_knowledge_store() -> PostgresKnowledgeStore:
    """The knowledge store, on the run store's connection."""
    from signoff.store.knowledge import PostgresKnowledgeStore

    return PostgresKnowledgeStore(get_store())


@lru_cache(maxsize=1)
def get_embedder() -> OpenAIEmbeddings:
    """The embeddings model of knowledge search (``SIGNOFF_EMBEDDING_*``)."""
    from signoff.models.openai_chat import OpenAIEmbeddings

    settings = get_settings()
    return OpenAIEmbeddings(
        settings.embedding_model,
        api_key=openai_api_key(settings),
        base_url=settings.openai_base_url or None,
        dimensions=settings.embedding_dimensions,
        batch_size=settings.embedding_batch_size,
        timeout_s=settings.model_timeout_s,
        max_retries=settings.model_max_retries,
    )


KNOWLEDGE_SEARCH_TIMEOUT_MS = 10_000


def search_knowledge(kb: str, query: str, limit: int, filters: dict) -> list[KnowledgeHit]:
    """The search behind agents' ``search_knowledge_base`` tool, with this container's store and model.

    Its embeddings request (retries included) gets at most ten seconds of the run's time.
    """
    import time

    from signoff import knowledge
    from signoff.models.base import Deadline

    started = time.monotonic()
    deadline = Deadline(lambda: KNOWLEDGE_SEARCH_TIMEOUT_MS - int((time.monotonic() - started) * 1000), 0)
    return knowledge.search(
        get_knowledge_store(), get_embedder(), kb, query, limit=limit, filters=filters, deadline=deadline
    )


@lru_cache(maxsize=1)
def get_catalog() -> AgentCatalog:
    """This deployment's agents, from the module named by ``SIGNOFF_AGENTS_MODULE``."""
    from signoff.agent import AgentCatalog

    return AgentCatalog.from_module(get_settings().agents_module)


@lru_cache(maxsize=8)
def _model(model_id: str):
    from signoff.models.openai_chat import OpenAIChat

    settings = get_settings()
    return OpenAIChat(
        model_id,
        api_key=openai_api_key(settings),
        base_url=settings.openai_base_url or None,
        timeout_s=settings.model_timeout_s,
        max_retries=settings.model_max_retries,
    )


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
    """Everything the services need, built once per warm container."""
    from signoff.service import Dependencies

    warn_about_short_leases(get_settings())
    return Dependencies(
        store=get_store(),
        catalog=get_catalog(),
        model_for=lambda agent: _model(agent.model),
        settings=get_settings(),
        queue=get_queue(),
        notifier=get_notifier(),
        knowledge_search=search_knowledge,
        tell_decider=_tell_decider,
    )


def _tell_decider(reply_to: str, message: dict) -> bool:
    from signoff.channels.slack import tell

    return tell(reply_to, message)
