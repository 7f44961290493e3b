"""Lambda SnapStart: what runs before the snapshot and after each restore.

With SnapStart, Lambda initialises a published version once (imports the handler module), runs the
before-snapshot hooks, and snapshots the memory; every new execution environment of that version
then resumes from the snapshot and runs the after-restore hooks instead of initialising. So:

- **priming** (at init, only under SnapStart): import what the first request would import anyway
  (``openai`` and its resources, boto3 where an AWS call will come), build the secret-free parts
  of the dependencies, and send one chat completion through the openai client to an in-memory
  transport when an agent uses OpenAI; when one uses Bedrock, load boto3, the ``bedrock-runtime``
  service model and endpoint rules into the shared session and run one Converse request and
  answer through botocore's serializer and parser (the client itself is built after the restore:
  building it resolves credentials and creates a TLS context). A restored environment pays for
  none of it. Nothing that opens a connection,
  reads a secret or creates a TLS context runs before the snapshot: the snapshot would keep a dead
  connection, a secret that may have been rotated since, or OpenSSL random state that every
  restored environment would share.
- **before the snapshot**: close the database connection if one was opened.
- **after each restore**: re-seed ``random`` (every environment restored from one snapshot would
  otherwise draw the same retry jitter) and OpenSSL's generator, and drop any connection object
  from before the snapshot; the store re-opens one on first use, with the database secret read then.

Hooks go to the runtime's ``snapshot_restore_py`` when it is there (Lambda's managed Python
runtimes); elsewhere they are kept here, and ``run_before_snapshot``/``run_after_restore`` play
them (scripts/bench.py and the tests simulate a restore with them).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable

Hook = Callable[[], None]

_before: list[Hook] = []
_after: list[Hook] = []
_installed = False


def active() -> bool:
    """Whether this process is a SnapStart init (Lambda sets this variable during it)."""
    return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start"


def register_before_snapshot(hook: Hook) -> Hook:
    _before.append(hook)
    try:
        from snapshot_restore_py import register_before_snapshot as runtime_register
    except ImportError:  # not in Lambda's managed runtime: played by run_before_snapshot
        return hook
    runtime_register(hook)
    return hook


def register_after_restore(hook: Hook) -> Hook:
    _after.append(hook)
    try:
        from snapshot_restore_py import register_after_restore as runtime_register
    except ImportError:
        return hook
    runtime_register(hook)
    return hook


def run_before_snapshot() -> None:
    """Play the before-snapshot hooks as Lambda does (last registered first)."""
    for hook in reversed(_before):
        hook()


def run_after_restore() -> None:
    """Play the after-restore hooks as Lambda does (first registered first)."""
    for hook in _after:
        hook()


def install(*, calls_model: bool) -> None:
    """Prime and register the hooks, once per process; does nothing unless this is a SnapStart init.

    Args:
        calls_model: the function calls the model (start, continue, resume): prime ``openai`` too.
    """
    global _installed
    if _installed or not active():
        return
    _installed = True
    try:
        prime(calls_model=calls_model)
    except Exception:  # an optimisation: a restored environment then loads what is missing on first use
        logging.getLogger("signoff").warning("SnapStart priming failed", exc_info=True)
    register_before_snapshot(close_connections)
    register_after_restore(reseed)
    register_after_restore(close_connections)


def prime(*, calls_model: bool) -> None:
    """Import and build, before the snapshot, what the first request would otherwise pay for."""
    from signoff import runtime

    settings = runtime.get_settings()
    runtime.dependencies()  # settings, agents catalog, store (unconnected), queue and notifier objects
    import psycopg.conninfo  # noqa: F401 - the store imports psycopg lazily

    if settings.queue_url or settings.event_bus or settings.database_secret_arn:
        import boto3  # noqa: F401 - SQS, EventBridge, and the secrets through Powertools
        import botocore.client  # noqa: F401
    if settings.database_secret_arn or settings.openai_secret_arn or settings.webhook_secret_arn:
        from aws_lambda_powertools.utilities import parameters  # noqa: F401
    if calls_model:
        from signoff.models.registry import parse_model

        catalog = list(runtime.get_catalog())
        providers = {parse_model(agent.model).provider.name for agent in catalog}
        if "openai" in providers or not providers:
            _prime_model()
        if "bedrock" in providers or parse_model(settings.embedding_model).provider.name == "bedrock":
            from signoff.models import bedrock_converse

            bedrock_converse.prime()  # boto3, the service model, one Converse (de)serialized; no client
        for agent in catalog:  # each tool's argument checker, built on first use otherwise
            for tool in agent.tools:
                _ = tool.arguments_model


# A Chat Completions answer with one tool call, as the priming request's reply.
_COMPLETION = {
    "id": "chatcmpl-priming",
    "object": "chat.completion",
    "created": 0,
    "model": "priming",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_0", "type": "function", "function": {"name": "prime", "arguments": "{}"}}
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def _prime_model() -> None:
    """One chat completion through the real client code, answered in memory.

    Loads ``openai`` with the resources and types it imports lazily, and fills the caches of its
    request and response handling. No socket, and no TLS context: creating one draws from
    OpenSSL's random generator, whose state would then be the same in every restored environment
    (the real client, built on first use after a restore, creates its own).
    """
    import httpcore2  # noqa: F401 - the transport of a real client, loaded when the first one is built
    import httpx2  # the HTTP client that openai uses
    import httpx2._transports.default
    import openai

    from signoff.models.openai_chat import chat_completion

    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, json=_COMPLETION))
    http_client = httpx2.Client(transport=transport, trust_env=False)
    client = openai.OpenAI(
        api_key="snapstart-priming",
        base_url="http://priming.invalid/v1",
        max_retries=0,
        http_client=http_client,
    )
    tool = {
        "type": "function",
        "function": {"name": "prime", "parameters": {"type": "object", "properties": {}}},
    }
    body = {"model": "priming", "messages": [{"role": "user", "content": "priming"}], "tools": [tool]}
    try:
        chat_completion(client, body, 5)
    finally:
        client.close()


def close_connections() -> None:
    """Close the store's database connection, if this container opened one."""
    from signoff import runtime

    if runtime.get_store.cache_info().currsize:
        runtime.get_store().close()


def reseed() -> None:
    """New randomness for this environment: ``random`` was seeded once, before the snapshot.

    OpenSSL's generator gets fresh entropy too, in case anything drew from it before the snapshot
    (priming does not). ``os.urandom``, ``secrets`` and ``uuid4`` ask the kernel on every call and
    keep no state in the process.
    """
    random.seed()
    import ssl

    ssl.RAND_add(os.urandom(48), 48.0)
