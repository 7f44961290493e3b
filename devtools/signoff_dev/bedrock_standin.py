"""A deterministic Amazon Bedrock Runtime stand-in (Converse, Titan embeddings): not a real model.

boto3 reaches it with ``endpoint_url``, so SigV4 signing, botocore's rest-json serialization and
its error mapping all run as against Bedrock. The answers follow the OpenAI stand-in's rules
(``signoff_dev.standin.respond``): each Converse request is read as the equivalent Chat
Completions request, answered, and the answer written back in Converse's shape. It refuses what
Bedrock refuses and a test would want to notice: roles that do not alternate, a conversation that
starts with the assistant, tool results that do not answer the previous turn's tool uses (all of
them, in one message), tool blocks without a ``toolConfig``, blank text, ``toolResult.status`` on
a model that does not take it, an unsigned request or one signed with other credentials.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from signoff_dev.standin import StandinError, embed, respond

logger = logging.getLogger(__name__)

FAULT_KINDS = ("429", "500", "503", "timeout", "malformed_tool_call")
BANNER = (
    "STAND-IN BEDROCK: answers come from signoff_dev.bedrock_standin, a deterministic rule-based fake "
    "of Amazon Bedrock's Converse API - NOT a real model."
)
_ROUTE = re.compile(r"^/model/(?P<model>[^/]+)/(?P<operation>converse|invoke)$")
_CREDENTIAL = re.compile(
    r"Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request"
)
_STATUS_MODELS = ("anthropic.", "amazon.nova")


class BedrockError(Exception):
    """A refusal, answered as Bedrock answers it: the status, ``x-amzn-ErrorType`` and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _validation(message: str) -> BedrockError:
    return BedrockError(400, "ValidationException", message)


def to_chat_request(model_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """A Converse request body as the Chat Completions request it stands for.

    Raises:
        BedrockError: what Bedrock refuses (see the module docstring).
    """
    turns = body.get("messages")
    if not isinstance(turns, list) or not turns:
        raise _validation("The messages field must contain at least one message.")
    tools = ((body.get("toolConfig") or {}).get("tools")) or []
    takes_status = any(marker in model_id for marker in _STATUS_MODELS)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": block.get("text", "")} for block in body.get("system") or []
    ]
    open_uses: list[str] = []
    for index, turn in enumerate(turns):
        role = turn.get("role")
        blocks = turn.get("content") or []
        if index == 0 and role != "user":
            raise _validation(
                "A conversation must start with a user message. Try again with a conversation that "
                "starts with a user message."
            )
        if index and turns[index - 1].get("role") == role:
            raise _validation(
                "A conversation must alternate between user and assistant roles. Make sure the "
                "conversation alternates between user and assistant roles and try again."
            )
        if not blocks:
            raise _validation(
                f"The content field in the Message object at messages.{index} is empty. Add a "
                "ContentBlock object to the content field and try again."
            )
        texts, uses, results = [], [], []
        for block in blocks:
            if "text" in block:
                if not str(block["text"]).strip():
                    raise _validation(
                        f"The text field in the ContentBlock object at messages.{index}.content is blank. "
                        "Add text to the text field, and try again."
                    )
                texts.append(block["text"])
            elif "toolUse" in block or "toolResult" in block:
                if not tools:
                    raise _validation(
                        "The toolConfig field must be defined when using toolUse and toolResult "
                        "content blocks."
                    )
                if "toolUse" in block:
                    uses.append(block["toolUse"])
                else:
                    results.append(block["toolResult"])
        if role == "assistant":
            if open_uses:
                raise _validation("Expected toolResult blocks at the start of the next user message.")
            message: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) or None}
            if uses:
                message["tool_calls"] = [
                    {"id": u["toolUseId"], "type": "function",
                     "function": {"name": u["name"], "arguments": json.dumps(u.get("input") or {})}}
                    for u in uses
                ]  # fmt: skip
            open_uses = [u["toolUseId"] for u in uses]
            messages.append(message)
            continue
        answered = [r.get("toolUseId") for r in results]
        if sorted(answered) != sorted(open_uses):
            raise _validation(
                "The number of toolResult blocks at messages."
                f"{index}.content exceeds or does not match the number of toolUse blocks of previous turn."
            )
        open_uses = []
        for result in results:
            if "status" in result and not takes_status:
                raise _validation(
                    "This model doesn't support the toolResult.status field. Remove toolResult.status "
                    "and try again."
                )
            content = "\n".join(
                part["text"] if "text" in part else json.dumps(part.get("json"))
                for part in result.get("content") or []
            )
            messages.append({"role": "tool", "tool_call_id": result["toolUseId"], "content": content})
        if texts:
            messages.append({"role": "user", "content": "\n".join(texts)})
    if turns[-1].get("role") != "user":
        raise _validation("The last message must be a user message.")
    chat_tools = [
        {"type": "function", "function": {"name": t["toolSpec"]["name"],
                                          "parameters": t["toolSpec"]["inputSchema"].get("json")}}
        for t in tools if "toolSpec" in t
    ]  # fmt: skip
    return {"model": model_id, "messages": messages, "tools": chat_tools}


def converse_answer(model_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Answer a Converse request body deterministically (the OpenAI stand-in's rules).

    Raises:
        BedrockError: for requests Bedrock would refuse.
    """
    try:
        completion = respond(to_chat_request(model_id, body))
    except StandinError as error:
        raise _validation(error.message) from None
    message = completion["choices"][0]["message"]
    blocks: list[dict[str, Any]] = []
    if message.get("content"):
        blocks.append({"text": message["content"]})
    for call in message.get("tool_calls") or []:
        blocks.append(
            {
                "toolUse": {
                    "toolUseId": "tooluse_" + secrets.token_urlsafe(16),
                    "name": call["function"]["name"],
                    "input": json.loads(call["function"]["arguments"]),
                }
            }
        )
    usage = completion["usage"]
    return {
        "output": {"message": {"role": "assistant", "content": blocks}},
        "stopReason": "tool_use" if message.get("tool_calls") else "end_turn",
        "usage": {
            "inputTokens": usage["prompt_tokens"],
            "outputTokens": usage["completion_tokens"],
            "totalTokens": usage["total_tokens"],
        },
        "metrics": {"latencyMs": 1},
    }


def titan_embedding(model_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Answer a Titan Text Embeddings request (one text) with the stand-in's trigram vectors.

    Raises:
        BedrockError: no text, or a size Titan V2 does not make.
    """
    if "titan-embed-text" not in model_id:
        raise _validation(f"The stand-in embeds with Titan Text Embeddings only, not {model_id}.")
    text = body.get("inputText")
    if not isinstance(text, str) or not text:
        raise _validation("Malformed input request: #: required key [inputText] not found")
    dimensions = int(body.get("dimensions") or (1024 if "v2" in model_id else 1536))
    if "v2" in model_id and dimensions not in (256, 512, 1024):
        raise _validation("Malformed input request: #/dimensions: must be one of 256, 512, 1024")
    vector = embed(text, dimensions)
    return {
        "embedding": vector,
        "embeddingsByType": {"float": vector},
        "inputTextTokenCount": max(1, len(text) // 4),
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 60
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("bedrock stand-in: " + format, *args)

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", secrets.token_hex(16))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def _error(self, error: BedrockError) -> None:
        self._send(error.status, {"message": error.message}, {"x-amzn-ErrorType": f"{error.code}:"})

    def _authorized(self) -> bool:
        """A SigV4 signature for the ``bedrock`` service by the expected key (verified in full when
        the stand-in knows the secret)."""
        auth = self.headers.get("Authorization", "")
        match = _CREDENTIAL.search(auth)
        if not auth.startswith("AWS4-HMAC-SHA256 ") or match is None or not self.headers.get("X-Amz-Date"):
            self._error(BedrockError(403, "AccessDeniedException", "Missing Authentication Token"))
            return False
        if match["service"] != "bedrock":
            self._error(
                BedrockError(
                    403,
                    "AccessDeniedException",
                    f"Credential should be scoped to correct service: 'bedrock', not {match['service']!r}",
                )
            )
            return False
        return True

    def _verified(self, body: bytes) -> bool:
        model = self.server.model
        if model.credentials is None:
            return True
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        auth = self.headers["Authorization"]
        match = _CREDENTIAL.search(auth)
        assert match is not None
        key, secret = model.credentials
        signed = re.search(r"SignedHeaders=([^,]+)", auth)
        names = signed.group(1).split(";") if signed else []
        host = self.headers.get("Host", "")
        request = AWSRequest(
            method=self.command,
            url=f"http://{host}{self.path}",
            data=body,
            headers={name: self.headers.get(name, "") for name in names},
        )
        request.context["timestamp"] = self.headers["X-Amz-Date"]
        signer = SigV4Auth(Credentials(key, secret), "bedrock", match["region"])
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        given = re.search(r"Signature=([0-9a-f]+)", auth)
        if match["key"] != key or given is None or not secrets.compare_digest(given.group(1), expected):
            code = "UnrecognizedClientException" if match["key"] != key else "InvalidSignatureException"
            self._error(BedrockError(403, code, "The request signature we calculated does not match."))
            return False
        return True

    def do_POST(self) -> None:
        model = self.server.model
        path = unquote(urlsplit(self.path).path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not self._authorized() or not self._verified(raw):
            return
        route = _ROUTE.match(path)
        if route is None:
            self._error(BedrockError(404, "UnknownOperationException", f"No operation at {path}"))
            return
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            self._error(_validation("Could not parse the request body as JSON."))
            return
        model_id, operation = route["model"], route["operation"]
        model._record(operation, model_id, body)
        fault = model._next_fault()
        if model.latency_s and model._stopping.wait(model.latency_s):
            self.close_connection = True
            return
        errors = {
            "429": BedrockError(429, "ThrottlingException", "Too many requests (stand-in fault)."),
            "500": BedrockError(500, "InternalServerException", "An internal error (stand-in fault)."),
            "503": BedrockError(503, "ServiceUnavailableException", "Unavailable (stand-in fault)."),
        }
        if fault in errors:
            self._error(errors[fault])
            return
        if fault == "timeout" and model._stopping.wait(model.timeout_sleep_s):
            self.close_connection = True
            return
        try:
            if operation == "invoke":
                self._send(200, titan_embedding(model_id, body))
                return
            answer = converse_answer(model_id, body)
        except BedrockError as error:
            self._error(error)
            return
        if fault == "malformed_tool_call":
            answer["stopReason"] = "malformed_tool_use"
        self._send(200, answer)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    model: BedrockStandin


class BedrockStandin:
    """The Bedrock stand-in as a local HTTP server that boto3's ``bedrock-runtime`` client talks to.

    Attributes:
        requests: ``(model id, body)`` of each Converse request received, in order (faulted ones too).
        embedding_requests: ``(model id, body)`` of each InvokeModel (embeddings) request.
        latency_s: seconds to wait before answering each request.
        timeout_sleep_s: how long a ``timeout`` fault holds the request.
        credentials: ``(access key, secret key)`` whose SigV4 signatures are verified in full;
            ``None`` checks only that a request is signed for the ``bedrock`` service.
        endpoint_url: ``http://127.0.0.1:PORT`` once started, for ``SIGNOFF_BEDROCK_ENDPOINT_URL``.
    """

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        timeout_sleep_s: float = 30.0,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.embedding_requests: list[tuple[str, dict[str, Any]]] = []
        self.latency_s = latency_s
        self.timeout_sleep_s = timeout_sleep_s
        self.credentials = credentials
        self.endpoint_url: str | None = None
        self._faults: deque[list[Any]] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> BedrockStandin:
        """A stand-in configured as the OpenAI one: ``STANDIN_LATENCY_MS``, ``STANDIN_FAULTS``
        (kinds ``429``, ``500``, ``503``, ``timeout``, ``malformed_tool_call``), ``STANDIN_TIMEOUT_S``."""
        env = os.environ if environ is None else environ
        model = cls(
            latency_s=float(env.get("STANDIN_LATENCY_MS") or 0) / 1000,
            timeout_sleep_s=float(env.get("STANDIN_TIMEOUT_S") or 30),
        )
        for item in (part.strip() for part in env.get("STANDIN_FAULTS", "").split(",")):
            if item:
                kind, _, times = item.partition(":")
                model.inject(kind, int(times) if times else 1)
        return model

    def inject(self, kind: str, times: int = 1) -> None:
        """Make the next ``times`` requests fail in the given way (faults queue up in order).

        Args:
            kind: ``429`` (ThrottlingException), ``500`` (InternalServerException), ``503``
                (ServiceUnavailableException), ``timeout`` (holds the request for ``timeout_sleep_s``)
                or ``malformed_tool_call`` (stop reason ``malformed_tool_use``).
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

    def _record(self, operation: str, model_id: str, body: Any) -> None:
        with self._lock:
            (self.requests if operation == "converse" else self.embedding_requests).append((model_id, body))

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a daemon thread; returns the endpoint URL for ``SIGNOFF_BEDROCK_ENDPOINT_URL``."""
        if self._server is not None:
            assert self.endpoint_url is not None
            return self.endpoint_url
        self._stopping.clear()
        server = _Server((host, port), _Handler)
        server.model = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="bedrock-standin", daemon=True)
        self._thread.start()
        self.endpoint_url = f"http://{host}:{server.server_address[1]}"
        logger.warning("%s Listening on %s", BANNER, self.endpoint_url)
        return self.endpoint_url

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
        self.endpoint_url = None

    def __enter__(self) -> BedrockStandin:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
