"""OpenAI Chat Completions: the only module that imports ``openai`` (lazily)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
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

if TYPE_CHECKING:
    from signoff.config import Settings

T = TypeVar("T")


class MalformedToolCall(Exception):
    """The model sent tool-call arguments that are not a JSON object."""


class _OpenAIEndpoint:
    """The client and the retry loop both OpenAI endpoints share."""

    def __init__(
        self, *, api_key: str, base_url: str | None, timeout_s: float, max_retries: int, sleep: Any
    ) -> None:
        self._api_key = api_key
        self._base_url = base_url or None
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._sleep = sleep
        self._client: Any = None

    def _openai(self) -> Any:
        if self._client is None:
            import openai  # deferred: about 0.8 s, paid only by invocations that call the model

            self._client = openai.OpenAI(
                api_key=self._api_key or "missing-key",
                base_url=self._base_url,
                max_retries=0,
                timeout=self._timeout_s,
            )
        return self._client

    def _with_retries(
        self, send: Callable[[Any, float], T], deadline: Deadline, *, what: str, target: str
    ) -> T:
        """Call ``send(client, timeout)`` until it succeeds, retrying what is worth retrying.

        429, 5xx, timeouts, connection errors and malformed tool calls are retried with exponential
        backoff and jitter (or the server's ``Retry-After``), as long as the deadline allows.

        Raises:
            ModelFailure: not retryable, out of retries, or out of time; the reason says which.
        """
        import openai

        client = self._openai()

        def classify(exc: BaseException, timeout: float) -> Verdict:
            if isinstance(exc, openai.APIStatusError):
                reason = f"{what} request failed: HTTP {exc.status_code}: {_error_message(exc)}"
                return exc.status_code == 429 or exc.status_code >= 500, reason, _retry_after_s(exc)
            if isinstance(exc, openai.APITimeoutError):
                return True, f"{what} request timed out after {timeout:.0f}s", 0.0
            if isinstance(exc, openai.APIConnectionError):
                return True, f"could not reach {target}: {type(exc).__name__}", 0.0
            if isinstance(exc, MalformedToolCall):
                return True, f"model sent malformed tool call arguments: {exc}", 0.0
            return None

        return retry_within_deadline(
            lambda timeout: send(client, timeout),
            classify,
            deadline,
            timeout_s=self._timeout_s,
            max_retries=self._max_retries,
            sleep=self._sleep,
        )


class OpenAIChat(_OpenAIEndpoint):
    """A Chat Completions model with tool calling, timeouts and retries within the deadline.

    Args:
        id: the model id, e.g. ``gpt-4o-mini``.
        api_key: the API key (a placeholder is fine for a local OpenAI-compatible server).
        base_url: an OpenAI-compatible endpoint; ``None`` for OpenAI itself.
        timeout_s: the timeout of one request (shortened to fit the deadline).
        max_retries: retries on 429, 5xx, timeouts, connection errors and malformed tool calls.
    """

    provider = "OpenAI"

    def __init__(
        self,
        id: str,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout_s: float = 20.0,
        max_retries: int = 3,
        sleep: Any = time.sleep,
    ) -> None:
        super().__init__(
            api_key=api_key, base_url=base_url, timeout_s=timeout_s, max_retries=max_retries, sleep=sleep
        )
        self.id = id

    def request(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], deadline: Deadline
    ) -> ModelResponse:
        def send(client: Any, timeout: float) -> ModelResponse:
            body: dict[str, Any] = {"model": self.id, "messages": [_chat_message(m) for m in messages]}
            if tools:
                body["tools"] = tools
            return _parse(chat_completion(client, body, timeout))

        return self._with_retries(send, deadline, what="model", target="the model")


def _chat_message(message: dict[str, Any]) -> dict[str, Any]:
    """A stored message as Chat Completions takes it (without the run's own ``is_error`` mark)."""
    if "is_error" not in message:
        return message
    return {key: value for key, value in message.items() if key != "is_error"}


def build_chat(model_id: str, settings: Settings, secret: Callable[[str], str]) -> OpenAIChat:
    """The ``openai`` provider's factory (``signoff.models.registry``): a Chat Completions model.

    Args:
        model_id: the model id sent to the API, without a provider prefix (``gpt-4o-mini``).
        settings: ``OPENAI_BASE_URL`` (any OpenAI-compatible server), the timeout and the retries.
        secret: returns a secret setting by name; the key is ``secret("openai_api_key")``.

    Returns:
        The model.
    """
    return OpenAIChat(
        model_id,
        api_key=secret("openai_api_key"),
        base_url=settings.openai_base_url or None,
        timeout_s=settings.model_timeout_s,
        max_retries=settings.model_max_retries,
    )


def _retry_after_s(exc: Any) -> float:
    """The server's own wait hint (``retry-after-ms`` or ``retry-after`` seconds), if any."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            value = float(headers.get(name, ""))
        except (TypeError, ValueError):
            continue
        if value >= 0:
            return value * scale
    return 0.0


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
    return str(getattr(exc, "message", "") or type(exc).__name__)[:300]


def chat_completion(client: Any, body: dict[str, Any], timeout: float) -> Any:
    """POST ``/chat/completions`` through the client; the answer's JSON.

    The client's generic ``post`` keeps what matters of it (base URL, authentication, headers,
    timeouts, errors raised as ``APIStatusError`` and friends) and skips two per-call costs that buy
    nothing here: re-walking the already JSON-shaped messages against the SDK's TypedDicts, and
    building pydantic objects of the answer that would be read once. That is about 1.9 ms of
    the 4.4 ms a warm call spends in the SDK on this machine (``make bench``).
    """
    import httpx2  # the HTTP client that openai is built on

    response = client.post(
        "/chat/completions", body=body, cast_to=httpx2.Response, options={"timeout": timeout}
    )
    try:
        return response.json()
    except ValueError:
        raise ModelFailure(
            f"the model answered HTTP {response.status_code} with a body that is not JSON"
        ) from None


def _parse(completion: Any) -> ModelResponse:
    try:
        choice = completion["choices"][0]
        message = choice["message"]
        raw_calls = message.get("tool_calls") or []
        content = message.get("content")
        usage = completion.get("usage") or {}
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ModelFailure("the model's answer has no message") from None
    calls: list[ToolCallRequest] = []
    for call in raw_calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        name = str(function.get("name") or "")
        arguments = function.get("arguments") or "{}"
        try:
            parsed = json.loads(arguments)
        except (TypeError, json.JSONDecodeError):
            raise MalformedToolCall(f"{name}: {str(arguments)[:100]!r}") from None
        if not isinstance(parsed, dict):
            raise MalformedToolCall(f"{name}: arguments are not an object")
        calls.append(ToolCallRequest(id=str(call.get("id") or ""), name=name, arguments=arguments))
    response = ModelResponse(
        content=content if isinstance(content, str) else None,
        tool_calls=calls,
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        stop_reason=choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None,
    )
    unstorable = unstorable_answer(response)
    if unstorable:
        raise MalformedToolCall(unstorable)
    return response


class OpenAIEmbeddings(_OpenAIEndpoint):
    """OpenAI embeddings, batched, with the timeouts and retries of :class:`OpenAIChat`.

    Args:
        model: the embeddings model, e.g. ``text-embedding-3-small``.
        api_key: the API key (a placeholder is fine for a local OpenAI-compatible server).
        base_url: an OpenAI-compatible endpoint; ``None`` for OpenAI itself.
        dimensions: the vectors' length; sent as ``dimensions`` to the ``text-embedding-3`` models
            (which shorten their vectors on request) and checked against every answer.
        batch_size: texts per request (OpenAI takes up to 2048).
        timeout_s: the timeout of one request (shortened to fit the deadline).
        max_retries: retries on 429, 5xx, timeouts and connection errors.
    """

    provider = "OpenAI"

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        api_key: str,
        base_url: str | None = None,
        dimensions: int = 1536,
        batch_size: int = 256,
        timeout_s: float = 20.0,
        max_retries: int = 3,
        sleep: Any = time.sleep,
    ) -> None:
        super().__init__(
            api_key=api_key, base_url=base_url, timeout_s=timeout_s, max_retries=max_retries, sleep=sleep
        )
        self.model = model
        self.dimensions = dimensions
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str], deadline: Deadline | None = None) -> list[list[float]]:
        """Embed ``texts`` in batches of ``batch_size``; one vector per text, in order.

        Raises:
            ModelFailure: a batch failed after its retries, or the vectors have the wrong size.
        """
        deadline = deadline or Deadline.unlimited()
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(self._batch(list(texts[start : start + self.batch_size]), deadline))
        return vectors

    def _batch(self, texts: list[str], deadline: Deadline) -> list[list[float]]:
        def send(client: Any, timeout: float) -> list[list[float]]:
            kwargs: dict[str, Any] = {"model": self.model, "input": texts, "timeout": timeout}
            if self.model.startswith("text-embedding-3"):
                kwargs["dimensions"] = self.dimensions
            return self._vectors(client.embeddings.create(**kwargs), len(texts))

        return self._with_retries(send, deadline, what="embeddings", target="the embeddings model")

    def _vectors(self, response: Any, count: int) -> list[list[float]]:
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != count:
            raise ModelFailure(f"the embeddings model returned {len(data)} vectors for {count} texts")
        vectors = [list(item.embedding) for item in data]
        wrong = next((len(v) for v in vectors if len(v) != self.dimensions), None)
        if wrong is not None:
            raise ModelFailure(
                f"the embeddings model returned {wrong} dimensions, not {self.dimensions}: set "
                "SIGNOFF_EMBEDDING_DIMENSIONS to the model's size"
            )
        return vectors
