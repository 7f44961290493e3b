"""The narrow interface between the run loop and a language model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from signoff.errors import SignoffError


@dataclass(frozen=True)
class ToolCallRequest:
    """A tool call as the model proposed it; ``arguments`` is the raw JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ModelResponse:
    """One answer of the model.

    Attributes:
        content: its text, if any.
        tool_calls: the tool calls it proposes.
        input_tokens: tokens of the request, as the provider counted them.
        output_tokens: tokens of the answer.
        stop_reason: why the model stopped, in the provider's words (``end_turn``, ``tool_use``,
            ``stop``, ...), when it says.
        latency_ms: the provider's own processing time of the request, when it reports one.
    """

    content: str | None
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str | None = None
    latency_ms: int | None = None


def unstorable_answer(response: ModelResponse) -> str | None:
    """Why a model's answer cannot be stored (NUL or a lone surrogate, in its text or a call's id,
    name or arguments), or ``None``. Every provider checks its answers with it (OpenAI's JSON text
    and Bedrock's ``toolUse`` input alike, the latter as the JSON text it is stored as); such an
    answer is treated as malformed: retried, then the run fails."""
    import json

    from signoff.inputs import unstorable_path

    if unstorable_path(response.content) is not None:
        return "its text holds characters that cannot be stored (NUL or a lone surrogate)"
    for call in response.tool_calls:
        try:
            parsed = json.loads(call.arguments)
        except (TypeError, ValueError):
            parsed = None
        if unstorable_path([call.id, call.name, call.arguments, parsed]) is not None:
            return f"the arguments of {call.name[:100]!r} hold characters that cannot be stored"
    return None


class ModelFailure(SignoffError):
    """The model could not produce an answer after the retries the deadline allowed."""


_BACKOFF_BASE_S = 0.5
_BACKOFF_CAP_S = 8.0

# What a provider says of a failed attempt: (worth retrying, the reason, the server's wait hint in
# seconds or 0); ``None``: not a failure of the model request, raised as it is.
Verdict = tuple[bool, str, float] | None


def retry_within_deadline[T](
    send: Callable[[float], T],
    classify: Callable[[BaseException, float], Verdict],
    deadline: Deadline,
    *,
    timeout_s: float,
    max_retries: int,
    sleep: Callable[[float], None],
) -> T:
    """Call ``send(timeout_s)`` until it succeeds: every provider's one retry loop.

    Each attempt's timeout is ``timeout_s``, shortened to what the deadline leaves (at least 1 s).
    A failure ``classify`` calls retryable is retried with exponential backoff and jitter (or the
    server's own wait hint), while retries remain and the deadline allows the wait.

    Raises:
        ModelFailure: not retryable, out of retries, or out of time; the reason says which.
    """
    import random

    attempt = 0
    while True:
        timeout = min(timeout_s, max(1.0, (deadline.remaining_ms() - deadline.margin_ms) / 1000))
        try:
            return send(timeout)
        except Exception as exc:
            verdict = classify(exc, timeout)
            if verdict is None:
                raise
            retryable, reason, wait_hint = verdict
        delay = min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt) * random.uniform(0.5, 1.0)
        if wait_hint:
            delay = min(_BACKOFF_CAP_S, wait_hint)
        if not retryable or attempt >= max_retries or not deadline.allows(int(delay * 1000) + 1000):
            raise ModelFailure(reason)
        attempt += 1
        sleep(delay)


class Deadline:
    """The time an invocation has left, from the Lambda context and the API Gateway cap."""

    def __init__(self, remaining_ms: Callable[[], int], margin_ms: int) -> None:
        self._remaining_ms = remaining_ms
        self.margin_ms = margin_ms

    @classmethod
    def unlimited(cls) -> Deadline:
        return cls(lambda: 10**9, 0)

    @classmethod
    def within(cls, budget_ms: int, margin_ms: int = 0) -> Deadline:
        """``budget_ms`` from now."""
        import time

        started = time.monotonic()
        return cls(lambda: budget_ms - int((time.monotonic() - started) * 1000), margin_ms)

    @classmethod
    def for_invocation(cls, context: Any, margin_ms: int, *, cap_ms: int | None = None) -> Deadline:
        """A Lambda invocation's time left (its context), capped by ``cap_ms`` from now (API Gateway's
        integration timeout); without a context, the cap alone."""
        import time

        started = time.monotonic()
        lambda_left = getattr(context, "get_remaining_time_in_millis", None)

        def remaining() -> int:
            left = [lambda_left()] if lambda_left is not None else []
            if cap_ms is not None:
                left.append(cap_ms - int((time.monotonic() - started) * 1000))
            return min(left) if left else 10**9

        return cls(remaining, margin_ms)

    def remaining_ms(self) -> int:
        return self._remaining_ms()

    def allows(self, needed_ms: int = 0) -> bool:
        """Whether there is time for ``needed_ms`` more work and still the safety margin."""
        return self._remaining_ms() - needed_ms > self.margin_ms


class Model(Protocol):
    """A chat model with tool calling. Only the provider modules of ``models/`` (``openai_chat``,
    ``bedrock_converse``) talk to a provider, each importing its SDK lazily."""

    id: str
    provider: str

    def request(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], deadline: Deadline
    ) -> ModelResponse: ...


class Embedder(Protocol):
    """Turns texts into vectors for knowledge search: ``OpenAIEmbeddings`` or Bedrock's ``TitanEmbeddings``.

    Attributes:
        model: the embeddings model id, e.g. ``text-embedding-3-small``.
        dimensions: the length of every vector it returns.
    """

    model: str
    dimensions: int

    def embed(self, texts: Sequence[str], deadline: Deadline | None = None) -> list[list[float]]:
        """One vector per text, in order."""
        ...
