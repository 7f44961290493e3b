"""Amazon Bedrock: chat through the Converse API and Titan text embeddings, with boto3 (lazily).

The run keeps its messages in the provider-neutral (Chat Completions) shape; this module turns
them into Converse's shape for each request and Converse's answer back, so a session can change
provider between runs. Mapping:

- ``system`` messages → the request's ``system`` blocks;
- ``user`` → a user message with a text block;
- ``assistant`` → a text block (when it has text) and one ``toolUse`` block per tool call, its
  JSON arguments as the ``input`` document;
- consecutive ``tool`` messages → ONE user message of ``toolResult`` blocks (Converse wants every
  result of a turn in the message that follows it). A result that tells the model the tool did not
  run or failed (``Error: ...``, a rejection, an expiry, a cancellation) carries
  ``status: error`` for the models that accept the field (Anthropic Claude, Amazon Nova); the
  text — a human's note included — is the same the OpenAI provider sends.

Consecutive messages of one role are merged, as Converse requires the roles to alternate.

botocore's own retries are off and its timeouts come from the settings: the only retry is the
deadline-aware one here, with the same rules as the OpenAI provider.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from signoff.models.base import (
    Deadline,
    ModelFailure,
    ModelResponse,
    ToolCallRequest,
    Verdict,
    retry_within_deadline,
    unstorable_answer,
)
from signoff.state import CANCELLED_MESSAGE, EXPIRED_MESSAGE, REJECTED_MESSAGE

if TYPE_CHECKING:
    from signoff.config import Settings

T = TypeVar("T")

PROVIDER = "AwsBedrock"
# Error codes worth another try: throttling, the service or the model briefly unavailable,
# the model timing out or failing on its side (424).
_RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "ModelErrorException",
    }
)
# Stop reasons that mean the model's output cannot be used as it is: retried like malformed JSON.
_MALFORMED_STOPS = frozenset({"malformed_model_output", "malformed_tool_use"})
# Models whose toolResult blocks take a ``status`` (others refuse the request if it is there).
_STATUS_MODEL_MARKERS = ("anthropic.", "amazon.nova")
_FAILED_RESULTS = frozenset({REJECTED_MESSAGE, EXPIRED_MESSAGE, CANCELLED_MESSAGE})
TITAN_V2_DIMENSIONS = (256, 512, 1024)
EMPTY_TEXT = "(empty)"


class _Malformed(Exception):
    """The model's answer is unusable as it stands (retried)."""


def accepts_tool_result_status(model_id: str) -> bool:
    """Whether a model takes ``toolResult.status`` (Anthropic Claude and Amazon Nova do).

    Args:
        model_id: a model or inference profile id, e.g. ``us.anthropic.claude-3-5-haiku-20241022-v1:0``.
    """
    return any(marker in model_id for marker in _STATUS_MODEL_MARKERS)


class _BedrockEndpoint:
    """The boto3 clients (one per request timeout) and the retry loop both Bedrock models share."""

    def __init__(
        self,
        *,
        region: str | None,
        endpoint_url: str | None,
        timeout_s: float,
        max_retries: int,
        sleep: Any,
        pool_size: int = 10,
    ) -> None:
        self._region = region or None
        self._endpoint_url = endpoint_url or None
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._sleep = sleep
        self._pool_size = pool_size
        self._clients: dict[int, Any] = {}
        self._lock = threading.Lock()

    def _client(self, timeout_s: int) -> Any:
        """A ``bedrock-runtime`` client whose read timeout is ``timeout_s``; kept per timeout.

        botocore fixes a client's timeouts when it is built, so a request that must end sooner
        than the setting (near the deadline) gets a client of its own; whole seconds keep them few.
        """
        client = self._clients.get(timeout_s)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(timeout_s)
            if client is None:
                from botocore.config import Config

                config = Config(
                    connect_timeout=min(5, timeout_s),
                    read_timeout=timeout_s,
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    max_pool_connections=self._pool_size,
                )
                client = boto3_session().client(
                    "bedrock-runtime",
                    region_name=self._region,
                    endpoint_url=self._endpoint_url,
                    config=config,
                )
                self._clients[timeout_s] = client
        return client

    def _with_retries(self, send: Callable[[Any], T], deadline: Deadline, *, what: str) -> T:
        """Call ``send(client)`` until it succeeds, retrying what is worth retrying.

        Throttling, 5xx, the model's timeouts and errors, read/connect timeouts, connection errors
        and malformed answers are retried with exponential backoff and jitter, while the deadline
        allows; anything else (validation, access denied, unknown model) fails at once.

        Raises:
            ModelFailure: not retryable, out of retries, or out of time; the reason says which.
        """
        from botocore import exceptions as boto

        def classify(exc: BaseException, timeout: float) -> Verdict:
            if isinstance(exc, boto.ClientError):
                error = exc.response.get("Error", {})
                code = str(error.get("Code") or "")
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
                retryable = code in _RETRYABLE_CODES or status == 429 or status >= 500
                message = str(error.get("Message") or "")[:300]
                return retryable, f"{what} request failed: {code or 'HTTP ' + str(status)}: {message}", 0.0
            if isinstance(exc, boto.ReadTimeoutError | boto.ConnectTimeoutError):
                return True, f"{what} request timed out after {_whole_seconds(timeout)}s", 0.0
            if isinstance(
                exc, boto.EndpointConnectionError | boto.ConnectionClosedError | boto.HTTPClientError
            ):
                return True, f"could not reach Amazon Bedrock: {type(exc).__name__}", 0.0
            if isinstance(exc, boto.NoCredentialsError):
                return False, "no AWS credentials for Amazon Bedrock", 0.0
            if isinstance(exc, _Malformed):
                return True, f"model sent a malformed answer: {exc}", 0.0
            return None

        return retry_within_deadline(
            lambda timeout: send(self._client(_whole_seconds(timeout))),
            classify,
            deadline,
            timeout_s=self._timeout_s,
            max_retries=self._max_retries,
            sleep=self._sleep,
        )


def _whole_seconds(timeout: float) -> int:
    """botocore's read timeout, in whole seconds (a client is kept per value)."""
    return int(timeout + 0.999)


class BedrockConverse(_BedrockEndpoint):
    """A Bedrock chat model through the Converse API, with tool calling, timeouts and retries.

    Args:
        id: a model or inference profile id, e.g. ``us.anthropic.claude-3-5-haiku-20241022-v1:0``.
        region: the Bedrock Region; ``None``: the function's (``AWS_REGION``).
        endpoint_url: another endpoint (a local stand-in); ``None``: Bedrock's.
        timeout_s: the read timeout of one request (shortened to fit the deadline).
        max_retries: retries of throttled, failed, timed-out and malformed requests.
        max_tokens: ``inferenceConfig.maxTokens``; ``None``: the model's default.
    """

    provider = PROVIDER

    def __init__(
        self,
        id: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        timeout_s: float = 20.0,
        max_retries: int = 3,
        max_tokens: int | None = None,
        sleep: Any = time.sleep,
    ) -> None:
        super().__init__(
            region=region,
            endpoint_url=endpoint_url,
            timeout_s=timeout_s,
            max_retries=max_retries,
            sleep=sleep,
        )
        self.id = id
        self.max_tokens = max_tokens

    def request(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], deadline: Deadline
    ) -> ModelResponse:
        body = converse_request(self.id, messages, tools, max_tokens=self.max_tokens)

        def send(client: Any) -> ModelResponse:
            return parse_converse(client.converse(**body))

        return self._with_retries(send, deadline, what="model")


def converse_request(
    model_id: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    *,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``client.converse`` for provider-neutral messages and tool schemas.

    Args:
        model_id: the model or inference profile id.
        messages: Chat Completions-shaped messages (system, user, assistant with ``tool_calls``, tool).
        tools: Chat Completions tool schemas (``{"type": "function", "function": {...}}``).
        max_tokens: the answer's token limit, if any.

    Returns:
        ``modelId``, ``messages``, and ``system``, ``toolConfig``, ``inferenceConfig`` when needed.
    """
    with_tools = bool(tools)
    status = accepts_tool_result_status(model_id)
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for message in messages:
        role = message.get("role")
        text = _text(message.get("content"))
        if role in ("system", "developer"):
            if text.strip():
                system.append({"text": text})
        elif role == "user":
            add("user", [{"text": text if text.strip() else EMPTY_TEXT}])
        elif role == "assistant":
            blocks: list[dict[str, Any]] = [{"text": text}] if text.strip() else []
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                blocks.append(_tool_use(call.get("id") or "", function, with_tools))
            add("assistant", blocks or [{"text": EMPTY_TEXT}])
        elif role == "tool":
            failed = message["is_error"] is True if "is_error" in message else _failed(text)
            add("user", [_tool_result(message.get("tool_call_id") or "", text, with_tools, status, failed)])
    if turns and turns[0]["role"] != "user":  # Converse starts with the user
        turns.insert(0, {"role": "user", "content": [{"text": EMPTY_TEXT}]})
    body: dict[str, Any] = {"modelId": model_id, "messages": turns}
    if system:
        body["system"] = system
    if with_tools:
        body["toolConfig"] = {"tools": [_tool_spec(schema) for schema in tools]}
    if max_tokens:
        body["inferenceConfig"] = {"maxTokens": max_tokens}
    return body


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p)
    return str(content)


def _tool_use(call_id: str, function: dict[str, Any], with_tools: bool) -> dict[str, Any]:
    name = str(function.get("name") or "")
    arguments = function.get("arguments") or "{}"
    try:
        parsed = json.loads(arguments)
    except (TypeError, ValueError):
        parsed = None
    if not with_tools:  # Converse refuses tool blocks without a toolConfig: tell it as text
        return {"text": f"(called the tool {name} with {arguments})"}
    return {
        "toolUse": {"toolUseId": call_id, "name": name, "input": parsed if isinstance(parsed, dict) else {}}
    }


def _tool_result(call_id: str, text: str, with_tools: bool, status: bool, failed: bool) -> dict[str, Any]:
    if not with_tools:
        return {"text": f"(tool result) {text}" if text.strip() else "(tool result)"}
    result: dict[str, Any] = {
        "toolUseId": call_id,
        "content": [{"text": text if text.strip() else EMPTY_TEXT}],
    }
    if status:
        result["status"] = "error" if failed else "success"
    return {"toolResult": result}


def _failed(text: str) -> bool:
    """Whether a tool message stored before the run marked errors (``is_error``) says the tool
    failed or did not run (as the run loop words it)."""
    return text.startswith("Error") or text in _FAILED_RESULTS


def _tool_spec(schema: dict[str, Any]) -> dict[str, Any]:
    function = schema.get("function") or {}
    spec: dict[str, Any] = {
        "name": function.get("name"),
        "inputSchema": {"json": function.get("parameters") or {"type": "object", "properties": {}}},
    }
    if function.get("description"):
        spec["description"] = function["description"]
    return {"toolSpec": spec}


def parse_converse(answer: dict[str, Any]) -> ModelResponse:
    """A Converse answer as a ``ModelResponse`` (text, tool calls with JSON arguments, usage).

    Raises:
        ModelFailure: the answer has no message, or the model's context window was exceeded.
        _Malformed: a malformed tool use or output, or text that cannot be stored (retried).
    """
    stop_reason = str(answer.get("stopReason") or "")
    if stop_reason in _MALFORMED_STOPS:
        raise _Malformed(f"stop reason {stop_reason}")
    if stop_reason == "model_context_window_exceeded":
        raise ModelFailure("the conversation no longer fits the model's context window")
    try:
        blocks = answer["output"]["message"]["content"]
    except (KeyError, TypeError):
        raise ModelFailure("the model's answer has no message") from None
    texts: list[str] = []
    calls: list[ToolCallRequest] = []
    for block in blocks or []:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        use = block.get("toolUse")
        if isinstance(use, dict):
            name = str(use.get("name") or "")
            arguments = use.get("input")
            if not isinstance(arguments, dict):
                raise _Malformed(f"{name}: the tool input is not an object")
            calls.append(
                ToolCallRequest(
                    id=str(use.get("toolUseId") or ""),
                    name=name,
                    arguments=json.dumps(arguments, ensure_ascii=False),
                )
            )
    usage = answer.get("usage") or {}
    response = ModelResponse(
        content="".join(texts) or None,
        tool_calls=calls,
        input_tokens=int(usage.get("inputTokens") or 0),
        output_tokens=int(usage.get("outputTokens") or 0),
        stop_reason=stop_reason or None,
        latency_ms=int((answer.get("metrics") or {}).get("latencyMs") or 0) or None,
    )
    unstorable = unstorable_answer(response)
    if unstorable:
        raise _Malformed(unstorable)
    return response


class TitanEmbeddings(_BedrockEndpoint):
    """Amazon Titan Text Embeddings on Bedrock: one text per request, requests run concurrently.

    Args:
        model: the model id, ``amazon.titan-embed-text-v2:0`` (256, 512 or 1024 dimensions).
        dimensions: the vectors' length; sent to V2, checked against every answer.
        region: the Bedrock Region; ``None``: the function's.
        endpoint_url: another endpoint (a local stand-in); ``None``: Bedrock's.
        concurrency: requests in flight at once.
        timeout_s: the read timeout of one request (shortened to fit the deadline).
        max_retries: retries of throttled, failed and timed-out requests.

    Raises:
        ValueError: V2 with a size it does not produce.
    """

    provider = PROVIDER
    batch_size = 64  # texts handed to one ``embed`` call by ingestion: a bounded set of vectors in flight

    def __init__(
        self,
        model: str = "amazon.titan-embed-text-v2:0",
        *,
        dimensions: int = 1024,
        region: str | None = None,
        endpoint_url: str | None = None,
        concurrency: int = 8,
        timeout_s: float = 20.0,
        max_retries: int = 3,
        sleep: Any = time.sleep,
    ) -> None:
        if "titan-embed-text-v2" in model and dimensions not in TITAN_V2_DIMENSIONS:
            raise ValueError(
                f"{model} makes vectors of 256, 512 or 1024 dimensions, not {dimensions}: "
                "set SIGNOFF_EMBEDDING_DIMENSIONS to one of them"
            )
        super().__init__(
            region=region,
            endpoint_url=endpoint_url,
            timeout_s=timeout_s,
            max_retries=max_retries,
            sleep=sleep,
            pool_size=max(10, concurrency),
        )
        self.model = model
        self.dimensions = dimensions
        self.concurrency = max(1, concurrency)

    def embed(self, texts: Sequence[str], deadline: Deadline | None = None) -> list[list[float]]:
        """One vector per text, in order; the requests run ``concurrency`` at a time.

        Raises:
            ModelFailure: a request failed after its retries, or a vector has the wrong size.
        """
        deadline = deadline or Deadline.unlimited()
        if len(texts) <= 1:
            return [self._one(text, deadline) for text in texts]
        with ThreadPoolExecutor(min(self.concurrency, len(texts)), thread_name_prefix="embed") as pool:
            return list(pool.map(lambda text: self._one(text, deadline), texts))

    def _one(self, text: str, deadline: Deadline) -> list[float]:
        body: dict[str, Any] = {"inputText": text}
        if "titan-embed-text-v2" in self.model:
            body.update(dimensions=self.dimensions, normalize=True)
        payload = json.dumps(body)

        def send(client: Any) -> list[float]:
            answer = client.invoke_model(
                modelId=self.model, body=payload, contentType="application/json", accept="application/json"
            )
            try:
                vector = json.loads(answer["body"].read())["embedding"]
            except (KeyError, TypeError, ValueError):
                raise ModelFailure("the embeddings model's answer has no embedding") from None
            if len(vector) != self.dimensions:
                raise ModelFailure(
                    f"the embeddings model returned {len(vector)} dimensions, not {self.dimensions}: set "
                    "SIGNOFF_EMBEDDING_DIMENSIONS to the model's size"
                )
            return [float(x) for x in vector]

        return self._with_retries(send, deadline, what="embeddings")


_session_lock = threading.Lock()
_session: Any = None


def boto3_session() -> Any:
    """The process's boto3 session for Bedrock: its loader caches the service model, so every
    client after the first (and after SnapStart priming) is built without reading it again."""
    global _session
    with _session_lock:
        if _session is None:
            import boto3

            _session = boto3.session.Session()
        return _session


def prime() -> None:
    """Load what a first Converse call needs, without a client: boto3, the service model and
    endpoint rules in the session's loader, and botocore's rest-json serializer and parser run on
    one request and one answer. No credentials are resolved and no TLS context is created (a
    SnapStart snapshot must hold neither); the client is built on the first real request."""
    from botocore import parsers, serialize

    session = boto3_session()
    core = session._session  # botocore's session, whose loader caches across clients
    model = core.get_service_model("bedrock-runtime")
    loader = core.get_component("data_loader")
    for name in ("partitions", "sdk-default-configuration", "_retry"):
        loader.load_data(name)
    loader.load_service_model("bedrock-runtime", "endpoint-rule-set-1")
    operation = model.operation_model("Converse")
    tool = {"type": "function", "function": {"name": "prime", "parameters": {"type": "object"}}}
    messages = [{"role": "user", "content": "priming"}]
    serialize.create_serializer("rest-json").serialize_to_request(
        converse_request("anthropic.priming", messages, [tool]), operation
    )
    answer = {
        "output": {"message": {"role": "assistant", "content": [{"toolUse": {
            "toolUseId": "t", "name": "prime", "input": {}}}]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
        "metrics": {"latencyMs": 1},
    }  # fmt: skip
    parsed = parsers.create_parser("rest-json").parse(
        {"status_code": 200, "headers": {}, "body": json.dumps(answer).encode()},
        operation.output_shape,
    )
    parse_converse(parsed)


def build_chat(model_id: str, settings: Settings, secret: Callable[[str], str]) -> BedrockConverse:
    """The ``bedrock`` provider's factory (``signoff.models.registry``): a Converse model.

    Args:
        model_id: a model or inference profile id, without the provider prefix.
        settings: ``SIGNOFF_BEDROCK_REGION``, ``SIGNOFF_BEDROCK_ENDPOINT_URL``, the timeout and retries.
        secret: unused: Bedrock authenticates with the function's IAM role.

    Returns:
        The model.
    """
    return BedrockConverse(
        model_id,
        region=settings.bedrock_region or None,
        endpoint_url=settings.bedrock_endpoint_url or None,
        timeout_s=settings.model_timeout_s,
        max_retries=settings.model_max_retries,
    )


def build_embeddings(model_id: str, settings: Settings) -> TitanEmbeddings:
    """Titan embeddings for knowledge search (``SIGNOFF_EMBEDDING_MODEL=bedrock:<model id>``).

    Args:
        model_id: the embeddings model id, without the provider prefix.
        settings: the embedding size and concurrency, Region, endpoint, timeout and retries.

    Returns:
        The embedder.
    """
    return TitanEmbeddings(
        model_id,
        dimensions=settings.embedding_dimensions,
        region=settings.bedrock_region or None,
        endpoint_url=settings.bedrock_endpoint_url or None,
        concurrency=settings.embedding_concurrency,
        timeout_s=settings.model_timeout_s,
        max_retries=settings.model_max_retries,
    )
