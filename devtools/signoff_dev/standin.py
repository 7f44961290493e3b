"""A deterministic OpenAI-compatible stand-in model server for local dev and tests: not a real model."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import os
import re
import secrets
import struct
import threading
import time
from collections import Counter, deque
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

FAULT_KINDS = ("429", "500", "timeout", "malformed_tool_call")
DEFAULT_DIMENSIONS = 1536
MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "text-embedding-3-small", "text-embedding-3-large")
BANNER = (
    "STAND-IN MODEL: answers come from signoff_dev.standin, a deterministic rule-based fake of the "
    "OpenAI API - NOT a real model. Set OPENAI_API_KEY (or OPENAI_BASE_URL) to use a real one."
)

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_CALL = re.compile(r"\bcall\s+([A-Za-z0-9_-]{1,64})\s*(?=\{)", re.IGNORECASE)
_THEN = re.compile(r"\bthen\b", re.IGNORECASE)
_DELETE = re.compile(
    r"\bdelete\s+(\d+)\b.*?\b(?:from|in)\s+(?:the\s+)?(?:table\s+[\"'`]?([A-Za-z_][\w.]*)[\"'`]?"
    r"|[\"'`]?([A-Za-z_][\w.]*)[\"'`]?\s+table\b)",
    re.IGNORECASE | re.DOTALL,
)
_NOTIFY = re.compile(r"\bnotif(?:y|ication)\b", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_RECIPIENT = re.compile(
    r"\b(?:notification\s+to|notify)\s+(?:the\s+|user\s+)?@?([\w.+-]+@[\w-]+(?:\.[\w-]+)+|[\w.-]+)",
    re.IGNORECASE,
)
_MESSAGE = re.compile(r"(?:\bsaying\b|\bthat\b|\babout\b|:)\s*(.+)", re.IGNORECASE | re.DOTALL)
_AND_DELETE = re.compile(r"\s*(?:,|;|\band\b|\bthen\b)?\s*\bdelete\s+\d+.*$", re.IGNORECASE | re.DOTALL)
_HISTORY = re.compile(r"\bwhat\s+(?:did|have)\s+i\s+(?:ask|asked|say|said)\b", re.IGNORECASE)


class StandinError(Exception):
    """A request the stand-in refuses, answered as an OpenAI-shaped error.

    Attributes:
        status: the HTTP status.
        message: the error message.
        type: the OpenAI error type, e.g. ``invalid_request_error``.
        code: the OpenAI error code, or None.
        param: the offending parameter, or None.
    """

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        """The OpenAI error body, ``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and "text" in part
        )
    return str(content)


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _call_id() -> str:
    return "call_" + secrets.token_hex(12)


def _validate_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    if not body.get("model"):
        raise StandinError(400, "you must provide a model parameter", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise StandinError(400, "'messages' must be a non-empty array", param="messages")
    pending: set[str] = set()
    open_turn: int | None = None
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("system", "developer", "user", "assistant", "tool"):
            raise StandinError(
                400, f"Invalid value for 'messages[{index}].role'", param=f"messages.[{index}]"
            )
        if role == "tool":
            call_id = message.get("tool_call_id")
            if open_turn is None or call_id not in pending:
                raise StandinError(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                    "message with 'tool_calls'.",
                    param=f"messages.[{index}].role",
                )
            pending.discard(call_id)
            continue
        if pending:
            raise StandinError(
                400,
                "An assistant message with 'tool_calls' must be followed by tool messages responding to "
                "each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                + ", ".join(sorted(pending)),
                param=f"messages.[{index}].role",
            )
        open_turn = None
        if role == "assistant" and message.get("tool_calls"):
            open_turn = index
            pending = {call.get("id") for call in message["tool_calls"]}
    if pending:
        raise StandinError(
            400,
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            "'tool_call_id'. The following tool_call_ids did not have response messages: "
            + ", ".join(sorted(pending)),
            param="messages",
        )
    return messages


def _tool_names(body: dict[str, Any]) -> list[str]:
    names = []
    for index, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if tool.get("type") != "function" or not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise StandinError(
                400,
                f"Invalid 'tools[{index}].function.name': string does not match pattern "
                "'^[a-zA-Z0-9_-]+$' (or the tool is not a function).",
                param=f"tools[{index}].function.name",
            )
        names.append(name)
    if body.get("tool_choice") == "none":
        return []
    return names


def _generic_steps(text: str) -> list[list[tuple[str, dict[str, Any]]]]:
    """Parse ``call <tool> {json}`` occurrences into steps; ``then`` between two calls starts a new step."""
    decoder = json.JSONDecoder()
    steps: list[list[tuple[str, dict[str, Any]]]] = []
    position = 0
    for match in _CALL.finditer(text):
        if match.start() < position:
            continue
        try:
            args, end = decoder.raw_decode(text, match.end())
        except json.JSONDecodeError:
            continue
        if not isinstance(args, dict):
            continue
        if not steps or _THEN.search(text[position : match.start()]):
            steps.append([])
        steps[-1].append((match.group(1), args))
        position = end
    return steps


def _clean(value: str) -> str:
    return value.strip().strip("\"'`").rstrip(".!?,;").strip().strip("\"'`")


def _notification(text: str) -> dict[str, Any] | None:
    notify = _NOTIFY.search(text)
    if notify is None:
        return None
    clause = text[notify.start() :]
    email = _EMAIL.search(clause)
    recipient_match = _RECIPIENT.search(text)
    if email:
        recipient = email.group(0)
    elif recipient_match:
        recipient = _clean(recipient_match.group(1))
    else:
        return None
    after = clause[clause.find(recipient) + len(recipient) :] if recipient in clause else clause
    found = _MESSAGE.search(after)
    message = _AND_DELETE.sub("", found.group(1)) if found else ""
    message = _clean(message) or text.strip()
    return {"recipient": recipient, "message": message}


def _decide_for_user(
    text: str, messages: list[dict[str, Any]], tools: list[str]
) -> tuple[str | None, list[tuple[str, dict[str, Any]]]]:
    steps = _generic_steps(text)
    if steps:
        calls = [(name, args) for name, args in steps[0] if name in tools]
        if calls:
            return None, calls
        missing = ", ".join(sorted({name for name, _ in steps[0]}))
        return f"I cannot call {missing}: no such tool is available to me.", []
    if _HISTORY.search(text):
        earlier = [_text(m.get("content")) for m in messages[:-1] if m.get("role") == "user"]
        if not earlier:
            return "You have not asked me anything before this message.", []
        lines = "\n".join(f"{number}. {item}" for number, item in enumerate(earlier, 1))
        return f"Earlier you asked:\n{lines}", []
    calls: list[tuple[str, dict[str, Any]]] = []
    delete = _DELETE.search(text)
    if delete and "delete_records" in tools:
        table = delete.group(2) or delete.group(3)
        calls.append(("delete_records", {"table_name": table, "count": int(delete.group(1))}))
    notification = _notification(text)
    if notification and "send_notification" in tools:
        calls.append(("send_notification", notification))
    if calls:
        return None, calls
    return f'Stand-in model here (not a real model). You said: "{text.strip()}"', []


def _decide_after_tools(
    messages: list[dict[str, Any]], tools: list[str]
) -> tuple[str | None, list[tuple[str, dict[str, Any]]]]:
    turn = max(i for i, m in enumerate(messages) if m.get("role") == "assistant" and m.get("tool_calls"))
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    if last_user >= 0:
        steps = _generic_steps(_text(messages[last_user].get("content")))
        done = sum(1 for m in messages[last_user:] if m.get("role") == "assistant" and m.get("tool_calls"))
        if done < len(steps):
            calls = [(name, args) for name, args in steps[done] if name in tools]
            if calls:
                return None, calls
    results = {m.get("tool_call_id"): _text(m.get("content")) for m in messages[turn + 1 :]}
    lines = []
    for call in messages[turn]["tool_calls"]:
        name = (call.get("function") or {}).get("name", "tool")
        lines.append(f"{name}: {results.get(call.get('id'), '')}")
    return "\n".join(lines), []


def respond(body: dict[str, Any]) -> dict[str, Any]:
    """Answer a chat completions request body deterministically (tool call ids are random).

    Rules, on the last message: a user message asking to delete N records from a table proposes
    ``delete_records``; asking to notify someone proposes ``send_notification`` (both in one turn,
    delete first); ``call <tool> {json}`` proposes exactly those calls (``;``/``and`` join calls in
    one turn, ``then`` starts the next turn after the tool results); "what did I ask before" lists the
    earlier user messages; anything else gets a short text quoting the message. After tool results
    the answer is one line ``"<tool_name>: <tool message content>"`` per call of the last assistant turn.
    Only tools listed in the request's ``tools`` are ever proposed.

    Args:
        body: the JSON body of ``POST /v1/chat/completions``.

    Returns:
        A ``chat.completion`` object as OpenAI returns it.

    Raises:
        StandinError: for requests OpenAI would reject (streaming, no model, bad tools, a tool-call turn
            not followed by a tool message for each id, a tool message without a preceding call).
    """
    if body.get("stream"):
        raise StandinError(
            400, "The stand-in model does not support streaming; send stream=false.", param="stream"
        )
    messages = _validate_messages(body)
    tools = _tool_names(body)
    last = messages[-1]
    if last.get("role") == "tool":
        content, calls = _decide_after_tools(messages, tools)
    else:
        content, calls = _decide_for_user(_text(last.get("content")), messages, tools)
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if calls:
        message["tool_calls"] = [
            {
                "id": _call_id(),
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)},
            }
            for name, args in calls
        ]
    prompt_text = json.dumps(messages, ensure_ascii=False) + json.dumps(body.get("tools") or [])
    completion_text = (content or "") + "".join(
        call["function"]["arguments"] for call in message.get("tool_calls", [])
    )
    prompt_tokens, completion_tokens = _tokens(prompt_text), _tokens(completion_text)
    return {
        "id": "chatcmpl-" + secrets.token_hex(12),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model")),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_standin",
    }


def embed(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """A deterministic embedding: hashed character trigrams, normalised (similar texts, similar vectors).

    Args:
        text: the text to embed.
        dimensions: the vector's length.

    Returns:
        An L2-normalised vector of ``dimensions`` floats.
    """
    padded = f"  {' '.join(text.lower().split())}  "
    # Counts per slot are whole numbers, so summing them in any order gives the same floats.
    slots: dict[int, int] = {}
    for trigram, times in Counter(padded[i : i + 3] for i in range(len(padded) - 2)).items():
        value = _trigram_hash(trigram)
        slot = value % dimensions
        slots[slot] = slots.get(slot, 0) + (times if value >> 63 else -times)
    norm = math.sqrt(sum(x * x for x in slots.values())) or 1.0
    vector = [0.0] * dimensions
    for slot, count in slots.items():
        vector[slot] = count / norm
    return vector


@lru_cache(maxsize=1 << 16)
def _trigram_hash(trigram: str) -> int:
    return int.from_bytes(hashlib.blake2b(trigram.encode(), digest_size=8).digest(), "little")


def embeddings_response(body: dict[str, Any]) -> dict[str, Any]:
    """Answer an embeddings request body (``encoding_format`` float or base64, as the client asks).

    Args:
        body: the JSON body of ``POST /v1/embeddings``.

    Returns:
        An OpenAI ``list`` of ``embedding`` objects with usage.

    Raises:
        StandinError: for a missing model, empty input or token-array input.
    """
    if not body.get("model"):
        raise StandinError(400, "you must provide a model parameter", param="model")
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs or not all(isinstance(x, str) and x for x in inputs):
        raise StandinError(
            400, "'$.input' is invalid: send a non-empty string or array of strings", param="input"
        )
    dimensions = int(body.get("dimensions") or DEFAULT_DIMENSIONS)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(inputs):
        vector = embed(text, dimensions)
        value: Any = (
            base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if as_base64 else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": value})
    tokens = sum(_tokens(text) for text in inputs)
    return {
        "object": "list",
        "data": data,
        "model": str(body["model"]),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def parse_faults(spec: str) -> list[tuple[str, int]]:
    """Parse a fault list like ``"429:2,500:1,timeout"`` (a kind alone means once).

    Args:
        spec: comma-separated ``kind[:times]`` entries; kinds are ``429``, ``500``, ``timeout``,
            ``malformed_tool_call``.

    Returns:
        (kind, times) pairs in order.

    Raises:
        ValueError: for an unknown kind or a bad count.
    """
    faults = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        kind, _, times = item.partition(":")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown stand-in fault {kind!r}; use one of {', '.join(FAULT_KINDS)}")
        faults.append((kind, int(times) if times else 1))
    return faults


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections end, so that no thread lingers forever
    # Small responses on a kept-alive connection would otherwise wait ~40 ms for Nagle + delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("stand-in: " + format, *args)

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", "req_" + secrets.token_hex(12))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True  # the client gave up (a timeout fault): nothing to do

    def _error(self, error: StandinError, headers: dict[str, str] | None = None) -> None:
        self._send(error.status, error.body(), headers)

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer ") and auth[7:].strip():
            return True
        self._error(
            StandinError(401, "You didn't provide an API key.", code="invalid_api_key"),
        )
        return False

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if not self._authorized():
            return
        if path == "/v1/models":
            data = [
                {"id": name, "object": "model", "created": 0, "owned_by": "signoff-standin"}
                for name in MODELS
            ]
            self._send(200, {"object": "list", "data": data})
        elif path.startswith("/v1/models/"):
            name = path.rsplit("/", 1)[1]
            self._send(200, {"id": name, "object": "model", "created": 0, "owned_by": "signoff-standin"})
        else:
            self._error(StandinError(404, f"Invalid URL (GET {path})", code="unknown_url"))

    def do_POST(self) -> None:
        model = self.server.model
        path = self.path.split("?", 1)[0].rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not self._authorized():
            return
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            self._error(StandinError(400, "We could not parse the JSON body of your request."))
            return
        if not isinstance(body, dict):
            self._error(StandinError(400, "The request body must be a JSON object."))
            return
        if path == "/v1/chat/completions":
            model._record(body)
            self._chat(model, body)
        elif path == "/v1/embeddings":
            model._record_embedding(body)
            self._wait(model, model.latency_s)
            try:
                self._send(200, embeddings_response(body))
            except StandinError as error:
                self._error(error)
        else:
            self._error(StandinError(404, f"Invalid URL (POST {path})", code="unknown_url"))

    def _wait(self, model: StandinModel, seconds: float) -> bool:
        return not (seconds > 0 and model._stopping.wait(seconds))

    def _chat(self, model: StandinModel, body: dict[str, Any]) -> None:
        fault = model._next_fault()
        if not self._wait(model, model.latency_s):
            self.close_connection = True
            return
        if fault == "429":
            error = StandinError(
                429, "Rate limit reached (stand-in fault).", "requests", "rate_limit_exceeded"
            )
            headers = {"Retry-After": "0"}
            if model.retry_after_ms is not None:  # the client ignores Retry-After 0 and backs off ~0.5 s
                headers["retry-after-ms"] = str(model.retry_after_ms)
            self._error(error, headers)
            return
        if fault == "500":
            self._error(StandinError(500, "The server had an error (stand-in fault).", "server_error", None))
            return
        if fault == "timeout" and not self._wait(model, model.timeout_sleep_s):
            self.close_connection = True
            return
        try:
            answer = respond(body)
        except StandinError as error:
            self._error(error)
            return
        if fault == "malformed_tool_call":
            message = answer["choices"][0]["message"]
            calls = message.get("tool_calls") or [
                {
                    "id": _call_id(),
                    "type": "function",
                    "function": {"name": (_tool_names(body) or ["unknown_tool"])[0], "arguments": "{}"},
                }
            ]
            calls[0]["function"]["arguments"] = calls[0]["function"]["arguments"][:-1] + ', "oops": '
            message["tool_calls"] = calls
            message["content"] = None
            answer["choices"][0]["finish_reason"] = "tool_calls"
        self._send(200, answer)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    model: StandinModel


class StandinModel:
    """The stand-in model as a local HTTP server that the real ``openai`` client talks to.

    Attributes:
        requests: the JSON bodies received at ``/v1/chat/completions``, in order (faulted ones too).
        embedding_requests: the JSON bodies received at ``/v1/embeddings``.
        latency_s: seconds to wait before answering each request.
        timeout_sleep_s: how long a ``timeout`` fault holds the request (longer than the client's timeout).
        retry_after_ms: when set, 429 faults also send ``retry-after-ms`` (the openai client honours it,
            so retry tests need not wait for its default back-off).
        base_url: the ``.../v1`` URL once started, else None.
    """

    def __init__(self, *, latency_s: float = 0.0, timeout_sleep_s: float = 30.0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.embedding_requests: list[dict[str, Any]] = []
        self.latency_s = latency_s
        self.timeout_sleep_s = timeout_sleep_s
        self.retry_after_ms: int | None = None
        self.base_url: str | None = None
        self._faults: deque[list[Any]] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> StandinModel:
        """A stand-in configured from ``STANDIN_LATENCY_MS``, ``STANDIN_FAULTS`` and ``STANDIN_TIMEOUT_S``.

        Args:
            environ: the environment to read; defaults to ``os.environ``.

        Returns:
            A stand-in, not yet started.
        """
        env = os.environ if environ is None else environ
        model = cls(
            latency_s=float(env.get("STANDIN_LATENCY_MS") or 0) / 1000,
            timeout_sleep_s=float(env.get("STANDIN_TIMEOUT_S") or 30),
        )
        for kind, times in parse_faults(env.get("STANDIN_FAULTS", "")):
            model.inject(kind, times)
        return model

    def inject(self, kind: str, times: int = 1) -> None:
        """Make the next ``times`` chat completion requests fail in the given way (faults queue up in order).

        Args:
            kind: ``429`` (with ``Retry-After: 0``), ``500``, ``timeout`` (holds the request for
                ``timeout_sleep_s``) or ``malformed_tool_call`` (a tool call whose arguments are not JSON).
            times: how many requests in a row.

        Raises:
            ValueError: for an unknown kind.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown stand-in fault {kind!r}; use one of {', '.join(FAULT_KINDS)}")
        if times > 0:
            with self._lock:
                self._faults.append([kind, times])

    def clear(self) -> None:
        """Forget recorded requests and pending faults."""
        with self._lock:
            self.requests.clear()
            self.embedding_requests.clear()
            self._faults.clear()

    def _next_fault(self) -> str | None:
        with self._lock:
            if not self._faults:
                return None
            entry = self._faults[0]
            entry[1] -= 1
            if entry[1] <= 0:
                self._faults.popleft()
            return entry[0]

    def _record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(body)

    def _record_embedding(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.embedding_requests.append(body)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a daemon thread.

        Args:
            host: the address to bind (loopback by default).
            port: the port; 0 picks a free one.

        Returns:
            The base URL for ``OPENAI_BASE_URL``, e.g. ``http://127.0.0.1:PORT/v1``.
        """
        if self._server is not None:
            assert self.base_url is not None
            return self.base_url
        self._stopping.clear()
        server = _Server((host, port), _Handler)
        server.model = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="standin-model", daemon=True)
        self._thread.start()
        self.base_url = f"http://{host}:{server.server_address[1]}/v1"
        logger.warning("%s Listening on %s", BANNER, self.base_url)
        return self.base_url

    def stop(self) -> None:
        """Stop serving; requests held by latency or a timeout fault are released at once."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.base_url = None

    def __enter__(self) -> StandinModel:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
