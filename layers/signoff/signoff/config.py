"""Settings: the one place that reads the environment."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    """Runtime settings, read once per container from UPPER_CASE environment variables.

    Attributes:
        database_url: libpq URL of the PostgreSQL database (local dev and tests).
        database_secret_arn: Secrets Manager secret holding the URL (AWS); used when
            ``database_url`` is empty. The secret is a plain URL string or JSON with a ``url`` key
            (or the RDS-style ``host``/``port``/``username``/``password``/``dbname`` keys).
        openai_api_key: OpenAI API key (local dev); in AWS use ``openai_secret_arn``.
        openai_secret_arn: Secrets Manager secret holding the OpenAI key.
        openai_base_url: any OpenAI-compatible endpoint, e.g. the local stand-in.
        agents_module: the module whose ``AGENTS`` list holds this deployment's agents.
        history_runs: how many earlier completed runs of a session the model sees.
        max_turns: model turns one run may take before it ends in ERROR.
        lease_seconds: how long a RUNNING run is held by one invocation before it counts as dead.
        deadline_margin_ms: time kept in reserve before the invocation's deadline; below it the
            run is saved and handed off instead of starting another model call.
        api_timeout_ms: API Gateway's integration timeout, the cap for HTTP invocations.
        model_timeout_s: timeout of one model request.
        model_max_retries: retries of a model request on 429, 5xx and timeouts.
        max_body_bytes: largest request body accepted (413 beyond).
        secrets_max_age_s: how long secrets fetched from Secrets Manager are cached.
        jwt_groups_claim: the JWT claim that lists the caller's groups.
        auth_mode: the stack's ``AuthMode``; ``jwt`` makes handlers refuse requests without
            verified claims (defence in depth behind API Gateway's authorizer).
        public_url: the API's public base URL for approval links; by default the URL the client
            used (custom domains want it set).
        queue_url: the SQS resume queue; empty disables background runs and async resumes.
        event_bus: EventBridge bus that receives ``RunPaused`` events; empty: none.
        notify_url: a URL that receives a signed JSON ``RunPaused`` notification; empty: none.
        webhook_secret: HMAC secret of ``/approvals/webhook`` and of outgoing notifications
            (local); in AWS ``webhook_secret_arn`` names the Secrets Manager secret.
        slack_signing_secret: Slack's signing secret (local); in AWS ``slack_signing_secret_arn``.
        slack_webhook_url: Slack incoming-webhook URL for pause messages with buttons.
        embedding_model: the OpenAI embeddings model of knowledge search.
        embedding_dimensions: the embeddings' size; the ``knowledge_chunks`` column is created at
            this size by the migration, so changing it later needs a re-index (see the README).
        embedding_batch_size: texts per embeddings request.
        knowledge_max_bytes: largest document upload (413 beyond).
        knowledge_queue_chunks: documents with more chunks than this are ingested by the resume
            worker (202) when the queue exists; smaller ones within the request.
        knowledge_writers: user ids or groups (comma-separated) allowed to add and delete
            documents; empty: any caller the API lets through. Non-empty requires authentication.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    database_url: str = Field("", alias="SIGNOFF_DATABASE_URL")
    database_secret_arn: str = Field("", alias="SIGNOFF_DATABASE_SECRET_ARN")
    openai_api_key: str = Field("", alias="OPENAI_API_KEY")
    openai_secret_arn: str = Field("", alias="SIGNOFF_OPENAI_SECRET_ARN")
    openai_base_url: str = Field("", alias="OPENAI_BASE_URL")
    agents_module: str = Field("catalog", alias="SIGNOFF_AGENTS_MODULE")
    history_runs: int = Field(3, ge=0, le=100, alias="SIGNOFF_HISTORY_RUNS")
    max_turns: int = Field(10, ge=1, le=100, alias="SIGNOFF_MAX_TURNS")
    lease_seconds: int = Field(120, ge=1, alias="SIGNOFF_LEASE_SECONDS")
    deadline_margin_ms: int = Field(5000, ge=0, alias="SIGNOFF_DEADLINE_MARGIN_MS")
    api_timeout_ms: int = Field(29000, ge=1000, alias="SIGNOFF_API_TIMEOUT_MS")
    model_timeout_s: float = Field(20.0, gt=0, alias="SIGNOFF_MODEL_TIMEOUT_S")
    model_max_retries: int = Field(3, ge=0, le=10, alias="SIGNOFF_MODEL_MAX_RETRIES")
    max_body_bytes: int = Field(256 * 1024, ge=1024, alias="SIGNOFF_MAX_BODY_BYTES")
    secrets_max_age_s: int = Field(300, ge=0, alias="SIGNOFF_SECRETS_MAX_AGE_S")
    jwt_groups_claim: str = Field("cognito:groups", alias="SIGNOFF_JWT_GROUPS_CLAIM")
    auth_mode: Literal["none", "jwt"] = Field("none", alias="SIGNOFF_AUTH_MODE")
    public_url: str = Field("", alias="SIGNOFF_PUBLIC_URL")
    queue_url: str = Field("", alias="SIGNOFF_QUEUE_URL")
    event_bus: str = Field("", alias="SIGNOFF_EVENT_BUS")
    notify_url: str = Field("", alias="SIGNOFF_NOTIFY_URL")
    webhook_secret: str = Field("", alias="SIGNOFF_WEBHOOK_SECRET")
    webhook_secret_arn: str = Field("", alias="SIGNOFF_WEBHOOK_SECRET_ARN")
    slack_signing_secret: str = Field("", alias="SIGNOFF_SLACK_SIGNING_SECRET")
    slack_signing_secret_arn: str = Field("", alias="SIGNOFF_SLACK_SIGNING_SECRET_ARN")
    slack_webhook_url: str = Field("", alias="SIGNOFF_SLACK_WEBHOOK_URL")
    embedding_model: str = Field("text-embedding-3-small", min_length=1, alias="SIGNOFF_EMBEDDING_MODEL")
    # pgvector indexes (HNSW) take at most 2000 dimensions of `vector`.
    embedding_dimensions: int = Field(1536, ge=1, le=2000, alias="SIGNOFF_EMBEDDING_DIMENSIONS")
    embedding_batch_size: int = Field(256, ge=1, le=2048, alias="SIGNOFF_EMBEDDING_BATCH_SIZE")
    knowledge_max_bytes: int = Field(4 * 1024 * 1024, ge=1024, alias="SIGNOFF_KNOWLEDGE_MAX_BYTES")
    knowledge_queue_chunks: int = Field(200, ge=1, alias="SIGNOFF_KNOWLEDGE_QUEUE_CHUNKS")
    knowledge_writers: str = Field("", alias="SIGNOFF_KNOWLEDGE_WRITERS")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        names = {field.alias for field in cls.model_fields.values() if field.alias}
        return cls.model_validate({name: env[name] for name in names if name in env})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this container, read on first use."""
    return Settings.from_env()
