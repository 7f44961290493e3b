"""Settings: the one place that reads the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any


class SettingsError(ValueError):
    """An environment variable holds a value the settings cannot take."""


def _setting(
    env: str,
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
    choices: tuple[str, ...] = (),
    non_empty: bool = False,
) -> Any:
    rules = {"env": env, "low": low, "high": high, "above": above, "choices": choices, "non_empty": non_empty}
    return field(default=default, metadata=rules)


# A frozen dataclass checked by hand rather than a pydantic model: every function reads the settings
# on its cold start, and pydantic's import alone is about a fifth of what a read may spend there.
@dataclass(frozen=True)
class Settings:
    """Runtime settings, read once per container from UPPER_CASE environment variables.

    Attributes:
        database_url: libpq URL of the PostgreSQL database (local dev and tests).
        database_secret_arn: Secrets Manager secret holding the URL (AWS); used when
            ``database_url`` is empty. The secret is a plain URL string or JSON with a ``url`` key
            (or the RDS-style ``host``/``port``/``username``/``password``/``dbname`` keys; RDS's
            managed master secret holds only ``username`` and ``password``, the rest comes from
            the ``database_host``/``database_port``/``database_name`` settings).
        database_host: the database host when the secret does not name one (RDS's managed
            secret), and the RDS Proxy endpoint under IAM authentication.
        database_port: the database port when the secret does not name one.
        database_name: the database name when the secret does not name one (``postgres`` when
            neither does).
        database_user: the database user under IAM authentication.
        database_auth: ``secret`` (user and password from the secret) or ``iam`` (a short-lived
            IAM token for ``database_user`` at ``database_host``, TLS required: RDS Proxy).
        database_connect_timeout_s: how long a connect may wait; above Aurora's ~15 s resume from
            0 ACU where the database auto-pauses.
        database_max_idle_s: a connection idle longer than this is closed and opened afresh before
            its next use (0: kept however long), so that a database that closes idle sessions
            (``idle_session_timeout``, for Aurora's auto-pause) never fails a statement.
        upkeep_marker: SSM parameter where the upkeep keeps when it next needs the database; empty:
            every scheduled upkeep looks at the database.
        upkeep_watch: the functions (comma-separated names) whose invocations mean new work for
            the upkeep; used with ``upkeep_marker``.
        openai_api_key: OpenAI API key (local dev); in AWS use ``openai_secret_arn``.
        openai_secret_arn: Secrets Manager secret holding the OpenAI key.
        openai_base_url: any OpenAI-compatible endpoint, e.g. the local stand-in.
        bedrock_region: the Region of Amazon Bedrock calls; empty: the function's own
            (``AWS_REGION``). A cross-Region inference profile is called in its source Region.
        bedrock_endpoint_url: another ``bedrock-runtime`` endpoint (a local Converse stand-in);
            empty: Bedrock's own (through the VPC endpoint's private DNS where there is one).
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
        embedding_model: the embeddings model of knowledge search: an OpenAI model id, or
            ``bedrock:amazon.titan-embed-text-v2:0`` for Amazon Titan on Bedrock.
        embedding_dimensions: the embeddings' size; the ``knowledge_chunks`` column is created at
            this size by the migration, so changing it later needs a re-index (see the README).
            Titan Text Embeddings V2 makes 256, 512 or 1024.
        embedding_batch_size: texts per embeddings request (OpenAI).
        embedding_concurrency: Bedrock embeddings requests in flight at once (Titan embeds one
            text per request).
        knowledge_max_bytes: largest document upload (413 beyond).
        knowledge_queue_chunks: documents with more chunks than this are ingested by the resume
            worker (202) when the queue exists; smaller ones within the request.
        knowledge_writers: user ids or groups (comma-separated) allowed to add and delete
            documents; empty: any caller the API lets through. Non-empty requires authentication.
        approval_admins: user ids or groups (comma-separated) that see every approval record and
            resolve ``@approval(required)`` calls of tools naming no approvers; empty: nobody.
        inbox_authorize_url: the OAuth 2.0 authorization endpoint the inbox signs people in at
            (authorization code with PKCE; the Cognito hosted UI's ``/oauth2/authorize`` when the
            stack creates the user pool); empty: the inbox offers no sign-in.
        inbox_token_url: the token endpoint the inbox exchanges the code at (the browser calls it).
        inbox_client_id: the public OAuth client the inbox signs in as (no secret).
        inbox_scopes: the scopes the inbox asks for (space-separated).
        inbox_logout_url: where signing out sends the browser (Cognito's ``/logout``); empty: the
            inbox only forgets its token.
    """

    database_url: str = _setting("SIGNOFF_DATABASE_URL", "")
    database_secret_arn: str = _setting("SIGNOFF_DATABASE_SECRET_ARN", "")
    database_host: str = _setting("SIGNOFF_DATABASE_HOST", "")
    database_port: int = _setting("SIGNOFF_DATABASE_PORT", 5432, low=1, high=65535)
    database_name: str = _setting("SIGNOFF_DATABASE_NAME", "")
    database_user: str = _setting("SIGNOFF_DATABASE_USER", "")
    database_auth: str = _setting("SIGNOFF_DATABASE_AUTH", "secret", choices=("secret", "iam"))
    database_connect_timeout_s: int = _setting("SIGNOFF_DATABASE_CONNECT_TIMEOUT_S", 5, low=1, high=60)
    database_max_idle_s: int = _setting("SIGNOFF_DATABASE_MAX_IDLE_S", 0, low=0)
    upkeep_marker: str = _setting("SIGNOFF_UPKEEP_MARKER", "")
    upkeep_watch: str = _setting("SIGNOFF_UPKEEP_WATCH", "")
    openai_api_key: str = _setting("OPENAI_API_KEY", "")
    openai_secret_arn: str = _setting("SIGNOFF_OPENAI_SECRET_ARN", "")
    openai_base_url: str = _setting("OPENAI_BASE_URL", "")
    bedrock_region: str = _setting("SIGNOFF_BEDROCK_REGION", "")
    bedrock_endpoint_url: str = _setting("SIGNOFF_BEDROCK_ENDPOINT_URL", "")
    agents_module: str = _setting("SIGNOFF_AGENTS_MODULE", "catalog")
    history_runs: int = _setting("SIGNOFF_HISTORY_RUNS", 3, low=0, high=100)
    max_turns: int = _setting("SIGNOFF_MAX_TURNS", 10, low=1, high=100)
    lease_seconds: int = _setting("SIGNOFF_LEASE_SECONDS", 120, low=1)
    deadline_margin_ms: int = _setting("SIGNOFF_DEADLINE_MARGIN_MS", 5000, low=0)
    api_timeout_ms: int = _setting("SIGNOFF_API_TIMEOUT_MS", 29000, low=1000)
    model_timeout_s: float = _setting("SIGNOFF_MODEL_TIMEOUT_S", 20.0, above=0)
    model_max_retries: int = _setting("SIGNOFF_MODEL_MAX_RETRIES", 3, low=0, high=10)
    max_body_bytes: int = _setting("SIGNOFF_MAX_BODY_BYTES", 256 * 1024, low=1024)
    secrets_max_age_s: int = _setting("SIGNOFF_SECRETS_MAX_AGE_S", 300, low=0)
    jwt_groups_claim: str = _setting("SIGNOFF_JWT_GROUPS_CLAIM", "cognito:groups")
    auth_mode: str = _setting("SIGNOFF_AUTH_MODE", "none", choices=("none", "jwt"))
    public_url: str = _setting("SIGNOFF_PUBLIC_URL", "")
    queue_url: str = _setting("SIGNOFF_QUEUE_URL", "")
    event_bus: str = _setting("SIGNOFF_EVENT_BUS", "")
    notify_url: str = _setting("SIGNOFF_NOTIFY_URL", "")
    webhook_secret: str = _setting("SIGNOFF_WEBHOOK_SECRET", "")
    webhook_secret_arn: str = _setting("SIGNOFF_WEBHOOK_SECRET_ARN", "")
    slack_signing_secret: str = _setting("SIGNOFF_SLACK_SIGNING_SECRET", "")
    slack_signing_secret_arn: str = _setting("SIGNOFF_SLACK_SIGNING_SECRET_ARN", "")
    slack_webhook_url: str = _setting("SIGNOFF_SLACK_WEBHOOK_URL", "")
    embedding_model: str = _setting("SIGNOFF_EMBEDDING_MODEL", "text-embedding-3-small", non_empty=True)
    # pgvector indexes (HNSW) take at most 2000 dimensions of `vector`.
    embedding_dimensions: int = _setting("SIGNOFF_EMBEDDING_DIMENSIONS", 1536, low=1, high=2000)
    embedding_batch_size: int = _setting("SIGNOFF_EMBEDDING_BATCH_SIZE", 256, low=1, high=2048)
    embedding_concurrency: int = _setting("SIGNOFF_EMBEDDING_CONCURRENCY", 8, low=1, high=32)
    knowledge_max_bytes: int = _setting("SIGNOFF_KNOWLEDGE_MAX_BYTES", 4 * 1024 * 1024, low=1024)
    knowledge_queue_chunks: int = _setting("SIGNOFF_KNOWLEDGE_QUEUE_CHUNKS", 200, low=1)
    knowledge_writers: str = _setting("SIGNOFF_KNOWLEDGE_WRITERS", "")
    approval_admins: str = _setting("SIGNOFF_APPROVAL_ADMINS", "")
    inbox_authorize_url: str = _setting("SIGNOFF_INBOX_AUTHORIZE_URL", "")
    inbox_token_url: str = _setting("SIGNOFF_INBOX_TOKEN_URL", "")
    inbox_client_id: str = _setting("SIGNOFF_INBOX_CLIENT_ID", "")
    inbox_scopes: str = _setting("SIGNOFF_INBOX_SCOPES", "openid")
    inbox_logout_url: str = _setting("SIGNOFF_INBOX_LOGOUT_URL", "")

    @property
    def admins(self) -> tuple[str, ...]:
        """``approval_admins`` as names: the groups or user ids that see every approval and resolve
        ``@approval(required)`` calls of tools that name no approvers."""
        return tuple(name.strip() for name in self.approval_admins.split(",") if name.strip())

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            kind = type(spec.default)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, spec.name, value := float(value))
            if not isinstance(value, kind) or isinstance(value, bool):
                raise SettingsError(f"{spec.metadata['env']}: expected {kind.__name__}, got {value!r}")
            problem = _breaks_rule(value, spec.metadata)
            if problem:
                raise SettingsError(f"{spec.metadata['env']}={value!r}: {problem}")

    @classmethod
    def env_names(cls) -> set[str]:
        """The environment variables the settings read."""
        return {spec.metadata["env"] for spec in fields(cls)}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """The settings from ``environ`` (default: the process environment); unset names keep defaults.

        Raises:
            SettingsError: a value is not a number where one is expected, or breaks a bound.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            raw = env.get(spec.metadata["env"])
            if raw is None:
                continue
            kind = type(spec.default)
            if kind is str:
                values[spec.name] = raw
                continue
            try:
                values[spec.name] = kind(raw.strip())
            except ValueError:
                raise SettingsError(f"{spec.metadata['env']}={raw!r}: expected {kind.__name__}") from None
        return cls(**values)


def _breaks_rule(value: Any, rules: dict[str, Any]) -> str | None:
    if rules["low"] is not None and value < rules["low"]:
        return f"must be at least {rules['low']}"
    if rules["high"] is not None and value > rules["high"]:
        return f"must be at most {rules['high']}"
    if rules["above"] is not None and value <= rules["above"]:
        return f"must be greater than {rules['above']}"
    if rules["choices"] and value not in rules["choices"]:
        return f"must be one of {', '.join(rules['choices'])}"
    if rules["non_empty"] and not value:
        return "must not be empty"
    return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this container, read on first use."""
    return Settings.from_env()
