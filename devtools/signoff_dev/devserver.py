"""`make dev`: the HTTP API on loopback, each request turned into the API Gateway v2 event AWS would send.

Around the routes, the dev server plays the parts of AWS that a paused run needs without an account:
a local resume queue (``signoff_dev.queue``) that hands background runs, decided pauses and deadline
hand-offs to ResumeWorkerFunction; the upkeep schedule (ExpireApprovalsFunction every
``--upkeep-seconds``); a pause notifier that prints approval links (``signoff_dev.notifier``); and,
with ``SIGNOFF_AUTH=jwt``, API Gateway's JWT authorizer (``signoff_dev.jwt``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ipaddress
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from signoff import runtime
from signoff_dev import jwt
from signoff_dev.apigw import ACCOUNT_ID, REGION, FakeLambdaContext, http_api_event, new_request_id
from signoff_dev.bedrock_standin import BedrockStandin
from signoff_dev.containers import ContainerCrashed, ContainerPool, ContainerTimedOut, PoolClosed
from signoff_dev.env import EnvGate, Overlay, function_overlays
from signoff_dev.handlers import invoke
from signoff_dev.notifier import CHANNEL_VARIABLES, LocalNotifier
from signoff_dev.oauth import AUTHORIZE_PATH, CLIENT_ID, TOKEN_PATH, DevAuthorizationServer, inbox_urls
from signoff_dev.queue import LocalQueue
from signoff_dev.standin import StandinModel
from signoff_dev.template import TEMPLATE_NAME, Function, Template, find_repo_root, load_template

logger = logging.getLogger("signoff_dev.devserver")

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
API_TIMEOUT_MS = 29_000
CONTAINERS_ENV = "SIGNOFF_DEV_CONTAINERS"
AUTH_ENV = "SIGNOFF_AUTH"
UPKEEP_ENV = "SIGNOFF_DEV_UPKEEP_SECONDS"
DEFAULT_UPKEEP_S = 60.0
STANDIN_API_KEY = "standin"
# Credentials the Bedrock stand-in verifies signatures with (only when no AWS credentials are set).
STANDIN_AWS_KEY = ("AKIASTANDIN000000000", "standin-secret-access-key")
# Any of these means AWS credentials are at hand: Bedrock agents then call real Bedrock.
AWS_CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK")
# Local secrets of the signed approval channels (README: "Run it locally"); never used in AWS.
DEV_WEBHOOK_SECRET = "dev-webhook-secret"
DEV_SLACK_SIGNING_SECRET = "dev-slack-signing-secret"
AUTH_MODES = ("none", "jwt")
_BANNER = """
************************************************************************
***  STAND-IN MODEL - this is NOT a real language model.
***  Answers come from signoff_dev.standin, a deterministic fake of
***  the OpenAI API for demos and tests, listening on {url}
***  For a real model set OPENAI_API_KEY (or OPENAI_BASE_URL) and restart.
************************************************************************
"""


def dev_data_dir(repo_root: Path) -> Path:
    """The dev database's folder, ``.dev/pgdata`` of the checkout (git-ignored; ``make dev-reset`` wipes it).

    Args:
        repo_root: the checkout.

    Returns:
        The data folder path.
    """
    return Path(repo_root) / ".dev" / "pgdata"


class LocalBackends:
    """The database and the model that local runs use, and the environment that points handlers at them.

    Without ``database_url`` an embedded PostgreSQL is started on ``.dev/pgdata`` of the checkout and
    migrated. Without ``model_base_url``, the real OpenAI API (or ``OPENAI_BASE_URL``) is used when
    ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set, else the stand-in model is started (configured from
    ``STANDIN_LATENCY_MS`` / ``STANDIN_FAULTS``) and announced loudly. Agents on Bedrock
    (``model="bedrock:..."``) call real Bedrock when AWS credentials are set (``AWS_PROFILE``,
    ``AWS_ACCESS_KEY_ID`` or ``AWS_BEARER_TOKEN_BEDROCK``) or ``SIGNOFF_BEDROCK_ENDPOINT_URL`` names
    an endpoint; otherwise the Bedrock stand-in (``signoff_dev.bedrock_standin``) is started, with
    local credentials it verifies every SigV4 signature with. The signed approval channels get
    local secrets when none is set (``SIGNOFF_WEBHOOK_SECRET=dev-webhook-secret``,
    ``SIGNOFF_SLACK_SIGNING_SECRET=dev-slack-signing-secret``). ``stop()`` restores the environment.

    The template's variables are not put into this process's environment: each function's differ, so
    they are applied per invocation (``overlays``, see ``signoff_dev.env``).

    Attributes:
        database_url: the libpq URL in use, once started.
        model_base_url: the OpenAI-compatible base URL in use (None for OpenAI itself).
        standin: the stand-in this object started, if any (tests may ``inject`` faults into it).
        bedrock_standin: the Bedrock stand-in this object started, if any.
        overlays: logical id → the environment each of its invocations gets, once started.
        explicit: the variables set before the template's (the developer's and the ones set here).
    """

    def __init__(
        self,
        repo_root: Path,
        *,
        database_url: str | None = None,
        model_base_url: str | None = None,
        template: Template | None = None,
        announce: bool = True,
    ) -> None:
        self.repo_root = Path(repo_root)
        self.database_url = database_url
        self.model_base_url = model_base_url
        self.standin: StandinModel | None = None
        self.bedrock_standin: BedrockStandin | None = None
        self._template = template
        self._announce = announce
        self._postgres: Any = None
        self._saved_env: dict[str, str | None] = {}
        self.overlays: dict[str, Overlay] = {}
        self.explicit: frozenset[str] = frozenset()

    def _setenv(self, name: str, value: str, *, override: bool = True) -> None:
        if not override and name in os.environ:
            return
        self._saved_env.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def start(self) -> None:
        """Start what is needed; set ``SIGNOFF_DATABASE_URL``, ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``."""
        if self.database_url is None:
            from signoff_dev.postgres import start_postgres

            self._postgres, self.database_url = start_postgres(dev_data_dir(self.repo_root))
        self._setenv("SIGNOFF_DATABASE_URL", self.database_url)
        if self.model_base_url is None and not (
            os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")
        ):
            self.standin = StandinModel.from_env()
            self.model_base_url = self.standin.start()
            if self._announce:
                print(_BANNER.format(url=self.model_base_url), file=sys.stderr, flush=True)
        if self.model_base_url is not None:
            self._setenv("OPENAI_BASE_URL", self.model_base_url)
            self._setenv("OPENAI_API_KEY", STANDIN_API_KEY, override=self.standin is not None)
        if not os.environ.get("SIGNOFF_BEDROCK_ENDPOINT_URL") and not any(
            os.environ.get(name) for name in AWS_CREDENTIAL_VARIABLES
        ):
            self.bedrock_standin = BedrockStandin.from_env()
            self.bedrock_standin.credentials = STANDIN_AWS_KEY
            self._setenv("SIGNOFF_BEDROCK_ENDPOINT_URL", self.bedrock_standin.start())
            self._setenv("AWS_ACCESS_KEY_ID", STANDIN_AWS_KEY[0])
            self._setenv("AWS_SECRET_ACCESS_KEY", STANDIN_AWS_KEY[1])
        # What Lambda always provides; local secrets for the signed approval channels.
        self._setenv("AWS_REGION", "us-east-1", override=False)
        self._setenv("AWS_DEFAULT_REGION", "us-east-1", override=False)
        self._setenv("POWERTOOLS_TRACE_DISABLED", "true", override=False)
        if not os.environ.get("SIGNOFF_WEBHOOK_SECRET_ARN"):
            self._setenv("SIGNOFF_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET, override=False)
        if not os.environ.get("SIGNOFF_SLACK_SIGNING_SECRET_ARN"):
            self._setenv("SIGNOFF_SLACK_SIGNING_SECRET", DEV_SLACK_SIGNING_SECRET, override=False)
        self.explicit = frozenset(os.environ)
        if self._template is not None:
            self.overlays = function_overlays(self._template, self.explicit)
        runtime.reset(keep_store=False)

    @property
    def managed(self) -> list[str]:
        """The variables the overlays set and unset."""
        return sorted({name for overlay in self.overlays.values() for name in overlay})

    def stop(self) -> None:
        """Stop what ``start`` started (the database keeps its data) and restore the environment."""
        if self.standin is not None:
            self.standin.stop()
            self.standin = None
        if self.bedrock_standin is not None:
            self.bedrock_standin.stop()
            self.bedrock_standin = None
        if self._postgres is not None:
            from signoff_dev.postgres import stop_postgres

            stop_postgres(self._postgres)
            self._postgres = None
        for name in self.managed:
            if name not in self._saved_env:
                os.environ.pop(name, None)  # applied by an overlay; absent before start
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        runtime.reset(keep_store=False)


class BodyRefused(Exception):
    """A request body the server will not read or take, and the status that says why.

    Args:
        status: 400 (malformed length or chunk), 413 (over the limit), 501 (unsupported coding).
        message: the ``message`` of the JSON answer.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_DIGITS = re.compile(r"[0-9]{1,20}")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_MAX_CHUNK_LINE = 4096
_MAX_TRAILERS = 64
# Query parameters and path parameters whose values are credentials: never written to the log.
_SECRET_NAME = re.compile(r"token|secret|signature|password|key|code|sig", re.IGNORECASE)


def loggable_path(path: str, query: str = "", params: dict[str, str] | None = None) -> str:
    """The request path for the access log, with credentials left out.

    Approval links carry their token in the path (``/approve/{token}``): a path parameter or a query
    parameter whose name says it is a credential (token, secret, signature, key, ...) is logged as
    ``<name>``.

    Args:
        path: the raw path.
        query: the raw query string.
        params: the matched route's path parameters.

    Returns:
        What the log may show.
    """
    segments = path.split("/")
    hidden = {value for name, value in (params or {}).items() if value and _SECRET_NAME.search(name)}
    names = {value: name for name, value in (params or {}).items()}
    logged = "/".join(f"<{names[s]}>" if s in hidden else s for s in segments)
    if not query:
        return logged
    pairs = []
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        pairs.append(f"{name}=<{name}>" if equals and value and _SECRET_NAME.search(name) else pair)
    return f"{logged}?{'&'.join(pairs)}"


def lambda_result_to_http(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Turn a handler's return value into an HTTP response, as an HTTP API (payload format 2.0) does.

    A dict with ``statusCode`` is used as is (``headers``, ``cookies`` as ``Set-Cookie``, ``body``
    base64-decoded when ``isBase64Encoded``); any other value becomes a 200 JSON response of that value.

    Args:
        result: what the handler returned.

    Returns:
        ``(status, headers, body)``.
    """
    if not (isinstance(result, dict) and "statusCode" in result):
        return 200, [("content-type", "application/json")], json.dumps(result).encode()
    headers = [(str(name), str(value)) for name, value in (result.get("headers") or {}).items()]
    headers += [("set-cookie", str(cookie)) for cookie in result.get("cookies") or []]
    body = result.get("body")
    if body is None:
        data = b""
    elif result.get("isBase64Encoded"):
        data = base64.b64decode(body)
    else:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return int(result["statusCode"]), headers, data


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 120

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)

    def _write(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Send the whole response (status line, headers and body) in one write.

        Written in pieces, a kept-alive client's delayed ACK and Nagle's algorithm hold the body back
        until the client's ACK timer fires (about 40 ms on Linux) on every request.
        """
        self.log_request(status)
        phrase = self.responses.get(status, ("",))[0]
        lines = [
            f"{self.protocol_version} {status} {phrase}",
            f"Server: {self.version_string()}",
            f"Date: {self.date_time_string()}",
        ]
        names = {name.lower() for name, _ in headers}
        for name, value in headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                lines.append(f"{name}: {value}")
        if "content-type" not in names and body:
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "strict")
        self.wfile.write(head if self.command == "HEAD" else head + body)

    def _read_body(self, limit: int) -> bytes:
        """The request body, at most ``limit`` bytes, framed by ``Content-Length`` or chunked.

        Raises:
            BodyRefused: a malformed or ambiguous length (400, the body is not read), a transfer
                coding other than chunked (501), or a body over ``limit`` however it is declared (413).
        """
        encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if encodings:
            if lengths:  # two framings: which one a proxy used is anyone's guess (request smuggling)
                raise BodyRefused(400, "Content-Length and Transfer-Encoding must not both be sent")
            codings = [c.strip().lower() for value in encodings for c in value.split(",") if c.strip()]
            if codings != ["chunked"]:
                raise BodyRefused(501, "only the chunked transfer coding is supported")
            return self._read_chunked(limit)
        declared = {v.strip() for value in lengths for v in value.split(",")}
        if not declared:
            return b""
        if len(declared) != 1 or not _DIGITS.fullmatch(next(iter(declared))):
            raise BodyRefused(400, "Content-Length must be one non-negative integer")
        length = int(next(iter(declared)))
        if length > limit:
            if length <= 8 * limit:
                remaining = length
                while remaining > 0:  # drain, so that the client reads the 413 instead of a reset
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            raise BodyRefused(413, "Request Entity Too Large")
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise BodyRefused(400, "the body ended before its Content-Length")
        return body

    def _read_chunked(self, limit: int) -> bytes:
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(_MAX_CHUNK_LINE + 1)
            size_text = line.split(b";", 1)[0].strip()
            if len(line) > _MAX_CHUNK_LINE or not line.endswith(b"\n") or not _HEX.fullmatch(size_text):
                raise BodyRefused(400, "malformed chunk size")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > limit:
                raise BodyRefused(413, "Request Entity Too Large")
            data = self.rfile.read(size)
            if len(data) != size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise BodyRefused(400, "malformed chunk")
            chunks.append(data)
        for _ in range(_MAX_TRAILERS):
            if self.rfile.readline(_MAX_CHUNK_LINE + 1) in (b"\r\n", b"\n", b""):
                return b"".join(chunks)
        raise BodyRefused(400, "too many trailer fields")

    def _handle(self) -> None:
        app = self.server.app
        started = time.perf_counter()
        raw_path, _, query = self.path.partition("?")
        logged_path = loggable_path(raw_path, query)
        status = 500
        try:
            try:
                body = self._read_body(app.max_body_bytes)
            except BodyRefused as refused:
                self.close_connection = True  # where the next request starts is unknown
                status = refused.status
                message = json.dumps({"message": refused.message}).encode()
                self._write(status, [("content-type", "application/json")], message)
                return
            if app.oauth is not None:
                reply = app.oauth.handle(self.command, raw_path, query, body, dict(self.headers.items()))
                if reply is not None:
                    status, headers, data = reply
                    self._write(status, headers, data)
                    return
            found = app.template.match(self.command, raw_path)
            if found is None:
                status = 404
                self._write(404, [("content-type", "application/json")], b'{"message":"Not Found"}')
                return
            route, params = found
            logged_path = loggable_path(raw_path, query, params)
            claims: dict[str, Any] | None = None
            scopes: list[str] | None = None
            if app.auth == "jwt" and route.authorizer is not None:
                verdict = jwt.verify(
                    self.headers.get("Authorization"), secret=app.jwt_secret, required_scopes=route.scopes
                )
                if not verdict.ok:
                    status, headers, data = verdict.response()
                    self._write(status, [*headers, ("apigw-requestid", new_request_id())], data)
                    return
                claims, scopes = verdict.claims, verdict.scopes
            event = http_api_event(
                self.command,
                raw_path,
                query=query,
                headers=self._forwarded_headers(),
                body=body,
                route_key=route.route_key,
                path_parameters=params,
                source_ip=self.client_address[0],
                authorizer_claims=claims,
                authorizer_scopes=scopes,
            )
            try:
                result = app.invoke_function(route.function_id, event, app.timeout_ms)
            except (ContainerCrashed, ContainerTimedOut, PoolClosed) as error:
                status = self._container_failure(route.function_id, error)
                return
            except Exception:
                logger.error("%s raised:\n%s", route.function_id, traceback.format_exc())
                status = 500
                self._write(
                    500, [("content-type", "application/json")], b'{"message":"Internal Server Error"}'
                )
                return
            status, headers, data = lambda_result_to_http(result)
            headers.append(("apigw-requestid", event["requestContext"]["requestId"]))
            self._write(status, headers, data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            logger.info("%s %s %d %.0fms", self.command, logged_path, status, elapsed_ms)

    def _forwarded_headers(self) -> list[tuple[str, str]]:
        """The request's headers with the ``x-forwarded-*`` ones API Gateway sets, as true locally:
        plain http on this port (so that approval links built from the request work in a browser)."""
        headers = []
        forwarded_for = None
        for name, value in self.headers.items():
            key = name.lower()
            if key in ("x-forwarded-proto", "x-forwarded-port"):
                continue
            if key == "x-forwarded-for":
                forwarded_for = f"{forwarded_for}, {value}" if forwarded_for else value
                continue
            headers.append((name, value))
        client = self.client_address[0]
        headers.append(("x-forwarded-for", f"{forwarded_for}, {client}" if forwarded_for else client))
        headers.append(("x-forwarded-port", str(self.server.server_address[1])))
        headers.append(("x-forwarded-proto", "http"))
        return headers

    def _container_failure(self, function_id: str, error: Exception) -> int:
        """Write API Gateway's answer to a failed container and return its status."""
        if isinstance(error, ContainerCrashed):
            # A Lambda that dies answers 502 through API Gateway; the container is replaced.
            logger.error("%s crashed in its container (replaced by a fresh one): %s", function_id, error)
            status, body = 502, b'{"message":"Internal Server Error"}'
        elif isinstance(error, ContainerTimedOut):
            logger.error("%s timed out (its container was replaced): %s", function_id, error)
            status, body = 503, b'{"message":"Service Unavailable"}'
        else:
            self.close_connection = True
            status, body = 503, b'{"message":"Service Unavailable"}'
        self._write(status, [("content-type", "application/json")], body)
        return status

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # a burst of simultaneous requests must queue, not be refused
    app: DevServer

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept a connection, with Nagle's algorithm off (responses are small and go out at once)."""
        conn, address = super().get_request()
        with contextlib.suppress(OSError):  # not TCP (never here; the option is an optimisation)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, address


class DevServer:
    """The local HTTP API: routes from ``template.yaml``, handlers called in-process with v2 events.

    Attributes:
        repo_root: the checkout (the folder holding the template).
        template: the loaded template, once started.
        backends: the database/model set-up, once started (``backends.standin`` is the stand-in, if any).
        base_url: ``http://host:port`` once started.
        timeout_ms: the Lambda context's deadline per request (API Gateway's 29 s by default).
        max_body_bytes: larger request bodies get 413.
        auth: ``"none"`` (no token needed; loopback only) or ``"jwt"`` (API Gateway's JWT authorizer on
            the routes the template gives one, with local HS256 tokens: see ``signoff_dev.jwt``).
        jwt_secret: the secret local tokens are signed with.
        queue: the local resume queue, once started (None when the template has no SQS consumer).
        notifier: the local pause notifier, once started (None when a real channel is configured).
        upkeep_seconds: how often the scheduled functions run (0: never).
    """

    def __init__(
        self,
        repo_root: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        database_url: str | None = None,
        model_base_url: str | None = None,
        template_path: Path | None = None,
        timeout_ms: int = API_TIMEOUT_MS,
        max_body_bytes: int = MAX_BODY_BYTES,
        auth: str = "none",
        jwt_secret: str | None = None,
        serialize: bool = True,
        containers: int = 1,
        upkeep_seconds: float = DEFAULT_UPKEEP_S,
        queue_retry_s: float = 5.0,
        announce: bool = True,
    ) -> None:
        """Configure the server; nothing starts before ``start()``.

        Args:
            repo_root: the checkout; found from the current folder when None.
            host: the address to bind (keep it loopback; another address needs ``auth="jwt"``).
            port: the port; 0 picks a free one.
            database_url: an existing, migrated database; None starts pgserver on ``.dev/pgdata``.
            model_base_url: an OpenAI-compatible base URL; None picks OpenAI or the stand-in (see
                ``LocalBackends``).
            template_path: the template; defaults to ``repo_root/template.yaml``.
            timeout_ms: the deadline each API invocation's context reports.
            max_body_bytes: the request body limit (413 beyond).
            auth: ``"none"`` or ``"jwt"`` (see the class attributes).
            jwt_secret: the local token secret; ``SIGNOFF_DEV_JWT_SECRET`` or ``signoff-dev-secret``.
            serialize: one invocation at a time, as one Lambda container handles one request at a
                time (the handlers share one process, hence one cached connection). Applies to
                ``containers=1``; the local queue's and the upkeep's invocations take their turn too.
            containers: how many warm "Lambda containers" serve requests. 1 calls the handlers in this
                process. N > 1 starts N worker processes (see ``signoff_dev.containers``), each
                handling one event at a time, so that concurrent requests really run concurrently, as
                on Lambda; a request waits for a free container. A handler that dies in its container
                answers 502 and the container is replaced by a fresh process.
            upkeep_seconds: run the template's scheduled functions (ExpireApprovalsFunction) this often;
                0 never.
            queue_retry_s: the local queue's visibility timeout: a failed resume message comes back
                after it.
            announce: print the stand-in banner and the approval links of each pause.
        """
        if auth not in AUTH_MODES:
            raise ValueError(f"auth must be one of {AUTH_MODES}, not {auth!r}")
        if containers < 1:
            raise ValueError("containers must be at least 1")
        self.repo_root = Path(repo_root) if repo_root is not None else find_repo_root()
        self.host = host
        self.port = port
        self.template_path = Path(template_path) if template_path else self.repo_root / TEMPLATE_NAME
        self.timeout_ms = timeout_ms
        self.max_body_bytes = max_body_bytes
        self.auth = auth
        self.jwt_secret = jwt_secret or jwt.dev_secret()
        self.containers = containers
        self.upkeep_seconds = upkeep_seconds
        self.queue_retry_s = queue_retry_s
        self.pool: ContainerPool | None = None
        self.invoke_lock: Any = threading.Lock() if serialize else _NoLock()
        self.template: Template = None  # type: ignore[assignment]
        self.backends: LocalBackends | None = None
        self.base_url: str | None = None
        self.queue: LocalQueue | None = None
        self.notifier: LocalNotifier | None = None
        self._database_url = database_url
        self._model_base_url = model_base_url
        self._announce = announce
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._env_gate = EnvGate()
        self._provided = False  # this process's runtime has the local queue and notifier
        self._stopping = threading.Event()
        self._upkeep_thread: threading.Thread | None = None
        self.oauth: DevAuthorizationServer | None = None
        self._saved_inbox_env: dict[str, str | None] = {}

    # -- lifecycle
    def start(self) -> str:
        """Start the database/model set-up, the local queue and upkeep, and serve in a daemon thread.

        Returns:
            The base URL, e.g. ``http://127.0.0.1:7777``.
        """
        if self.auth == "none" and not _is_loopback(self.host):
            raise ValueError(
                f"{self.host} is not a loopback address: without SIGNOFF_AUTH=jwt anyone could call it"
            )
        self._previous_auth_mode = os.environ.get("SIGNOFF_AUTH_MODE")
        os.environ["SIGNOFF_AUTH_MODE"] = self.auth  # handlers check claims exactly when we verify them
        self.template = load_template(self.template_path)
        for layer in reversed(self.template.layer_dirs):
            if str(layer) not in sys.path:
                sys.path.insert(0, str(layer))  # as Lambda puts layers on the path (/opt/python)
        # Bound before the backends start: the inbox's sign-in settings name this server's port, and
        # they must be in the environment the handlers (and container processes) start from.
        server = _Server((self.host, self.port), _Handler)
        self.base_url = f"http://{self.host}:{server.server_address[1]}"
        try:
            self._start_sign_in()
            self._start_backends_and_services()
        except BaseException:
            server.server_close()
            self._restore_inbox_env()
            self.base_url = None
            raise
        server.app = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="signoff-devserver", daemon=True)
        self._thread.start()
        if self.queue is not None:
            self.queue.start()
        if self.upkeep_seconds and self.template.scheduled():
            self._upkeep_thread = threading.Thread(
                target=self._upkeep_loop, name="signoff-upkeep", daemon=True
            )
            self._upkeep_thread.start()
        return self.base_url

    def _start_sign_in(self) -> None:
        """With JWTs, the dev sign-in for the inbox, and the inbox's settings pointing at it.

        The inbox resolves these URLs against its own page, so that the sign-in works whichever name
        the browser uses for this server (``localhost`` or ``127.0.0.1``). Inbox settings set in the
        environment (a real Cognito, say) are kept.
        """
        if self.auth != "jwt":
            return
        base_url = self.base_url or ""
        self.oauth = DevAuthorizationServer(lambda host: inbox_urls(base_url, host), secret=self.jwt_secret)
        for name, value in (
            ("SIGNOFF_INBOX_AUTHORIZE_URL", AUTHORIZE_PATH.lstrip("/")),
            ("SIGNOFF_INBOX_TOKEN_URL", TOKEN_PATH.lstrip("/")),
            ("SIGNOFF_INBOX_CLIENT_ID", CLIENT_ID),
        ):
            if os.environ.get(name):
                continue
            self._saved_inbox_env[name] = os.environ.get(name)
            os.environ[name] = value

    def _restore_inbox_env(self) -> None:
        for name, value in self._saved_inbox_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_inbox_env.clear()
        self.oauth = None

    def _start_backends_and_services(self) -> None:
        self.backends = LocalBackends(
            self.repo_root,
            database_url=self._database_url,
            model_base_url=self._model_base_url,
            template=self.template,
            announce=self._announce,
        )
        self.backends.start()
        self._stopping.clear()
        try:
            worker = self.resume_worker
            if worker is not None:
                self.queue = LocalQueue(
                    self._deliver,
                    batch_size=worker.batch_size,
                    concurrency=1 if self.containers == 1 else max(1, self.containers // 2),
                    visibility_timeout_s=self.queue_retry_s,
                )
            if not any(os.environ.get(name) for name in CHANNEL_VARIABLES):
                self.notifier = LocalNotifier(announce=self._announce)
            if self.containers > 1:
                # Started after the backends: each container inherits the environment they set.
                layers = [str(layer) for layer in self.template.layer_dirs]
                self.pool = ContainerPool(
                    self.containers,
                    template_path=self.template_path,
                    sys_path=[*layers, str(self.repo_root)],
                    overlays=self.backends.overlays,
                    services={"queue": self.queue is not None, "notifier": self.notifier is not None},
                    on_event=self._on_container_event,
                )
                self.pool.start()
            else:
                runtime.provide(queue=self.queue, notifier=self.notifier)
                self._provided = True
        except BaseException:
            self._stop_services()
            self.backends.stop()
            raise

    def stop(self) -> None:
        """Stop serving and stop what was started (pgserver, stand-in); the dev database keeps its data.

        Messages still in the local queue are dropped; the upkeep of the next start re-queues the runs
        they were for.
        """
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._stop_services()
        if self.backends is not None:
            self.backends.stop()
            self.backends = None
        self.base_url = None
        self._restore_inbox_env()
        previous = getattr(self, "_previous_auth_mode", None)
        if previous is None:
            os.environ.pop("SIGNOFF_AUTH_MODE", None)
        else:
            os.environ["SIGNOFF_AUTH_MODE"] = previous

    def _stop_services(self) -> None:
        self._stopping.set()
        if self._upkeep_thread is not None:
            self._upkeep_thread.join(timeout=5)
            self._upkeep_thread = None
        if self.queue is not None:
            self.queue.stop()
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.stop()
        if self._provided:
            runtime.reset(keep_provided=False)
            self._provided = False
        if self.backends is not None:
            self._env_gate.restore(self.backends.managed)

    def __enter__(self) -> DevServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- invocations
    @property
    def resume_worker(self) -> Function | None:
        """The function the local queue delivers to (the template's SQS consumer), if any."""
        consumers = self.template.consumers() if self.template is not None else []
        return consumers[0] if consumers else None

    def invoke_function(self, logical_id: str, event: dict[str, Any], timeout_ms: int | None = None) -> Any:
        """Invoke one function as this server does for requests: in a container, or in this process
        under its own environment (one at a time with ``serialize``).

        Args:
            logical_id: the function's logical id.
            event: the event.
            timeout_ms: the context's deadline; the function's ``Timeout`` (or 29 s) when None.

        Returns:
            What the handler returned.

        Raises:
            ContainerCrashed, ContainerTimedOut, PoolClosed: the container failed (``containers > 1``).
            Exception: whatever the handler raised (``containers == 1``).
        """
        function = self.template.functions[logical_id]
        if timeout_ms is None:
            timeout_ms = (function.timeout_s or 29) * 1000
        if self.pool is not None:
            return self.pool.invoke(logical_id, event, timeout_ms)
        assert self.backends is not None, "the server is not started"
        context = FakeLambdaContext(logical_id, timeout_ms=timeout_ms, memory_mb=function.memory_mb or 256)
        with self.invoke_lock, self._env_gate.use(self.backends.overlays.get(logical_id, {})):
            return invoke(logical_id, event, context, template=self.template)

    def _deliver(self, event: dict[str, Any]) -> Any:
        worker = self.resume_worker
        assert worker is not None
        runs = ", ".join(json.loads(record["body"]).get("run_id", "?") for record in event["Records"])
        logger.info(
            "local queue -> %s: %d message(s) (run %s)", worker.logical_id, len(event["Records"]), runs
        )
        try:
            return self.invoke_function(worker.logical_id, event)
        except Exception:
            logger.error("%s raised:\n%s", worker.logical_id, traceback.format_exc())
            raise

    def _on_container_event(self, kind: str, payload: Any) -> None:
        if kind == "queue" and self.queue is not None:
            self.queue.send(payload)
        elif kind == "paused" and self.notifier is not None:
            self.notifier.record(payload)

    def run_upkeep(self) -> dict[str, Any]:
        """Invoke each scheduled function once with EventBridge's Scheduled Event, as its rule would.

        Returns:
            logical id → what it returned (or the error).
        """
        results: dict[str, Any] = {}
        for function in self.template.scheduled():
            event = scheduled_event(function.logical_id)
            try:
                results[function.logical_id] = result = self.invoke_function(function.logical_id, event)
            except Exception as error:
                logger.error("%s (upkeep) failed: %s", function.logical_id, error)
                results[function.logical_id] = error
                continue
            if isinstance(result, dict) and any(result.values()):
                logger.info("upkeep %s: %s", function.logical_id, json.dumps(result, default=str))
        return results

    def _upkeep_loop(self) -> None:
        while not self._stopping.wait(self.upkeep_seconds):
            self.run_upkeep()


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def scheduled_event(function_id: str, now: float | None = None) -> dict[str, Any]:
    """The EventBridge Scheduled Event a function's ``Schedule`` rule sends.

    Args:
        function_id: the function's logical id (names the rule).
        now: the event time (epoch seconds); now when None.

    Returns:
        The event.
    """
    when = time.gmtime(time.time() if now is None else now)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", when),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/signoff-local-{function_id}Upkeep"],
        "detail": {},
    }


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Run the dev server until Ctrl-C.

    Args:
        argv: command-line arguments (``--host``, ``--port``, ``--auth``, ``--containers``,
            ``--upkeep-seconds``).

    Returns:
        The exit code.
    """
    parser = argparse.ArgumentParser(
        prog="python -m signoff_dev.devserver", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 7777))
    parser.add_argument(
        "--auth",
        choices=AUTH_MODES,
        default=(os.environ.get(AUTH_ENV) or "none").lower(),
        help=f"jwt: require local JWTs (make token) where the template has an authorizer, as API Gateway "
        f"does; none (default, or ${AUTH_ENV}): no token, loopback only",
    )
    parser.add_argument(
        "--containers",
        type=int,
        default=int(os.environ.get(CONTAINERS_ENV) or 1),
        metavar="N",
        help=f"warm Lambda containers (worker processes) serving requests concurrently; 1 (default, or "
        f"${CONTAINERS_ENV}) runs the handlers in this process, one request at a time",
    )
    parser.add_argument(
        "--upkeep-seconds",
        type=float,
        default=float(os.environ.get(UPKEEP_ENV) or DEFAULT_UPKEEP_S),
        metavar="S",
        help=f"run the scheduled upkeep (ExpireApprovalsFunction) every S seconds; 0 never "
        f"(default {DEFAULT_UPKEEP_S:.0f}, or ${UPKEEP_ENV})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("pgserver", "httpx", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.containers < 1:
        parser.error("--containers must be at least 1")
    if args.upkeep_seconds < 0:
        parser.error("--upkeep-seconds must not be negative")
    if args.auth == "none" and not _is_loopback(args.host):
        parser.error(
            f"--host {args.host} is not loopback: serving beyond this machine needs SIGNOFF_AUTH=jwt"
        )
    server = DevServer(
        find_repo_root(),
        host=args.host,
        port=args.port,
        auth=args.auth,
        containers=args.containers,
        upkeep_seconds=args.upkeep_seconds,
    )
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, or `kill`: stop cleanly (pgserver too)
        signal.signal(signum, lambda *_: stopping.set())
    try:
        url = server.start()
        print(_summary(server, url), flush=True)
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping...", file=sys.stderr, flush=True)
        server.stop()
    return 0


def describe_secret(
    name: str, dev_default: str, environ: dict[str, str] | None = None, *, value: str | None = None
) -> str:
    """How the start-up summary shows a secret: its value only when it is the built-in dev default.

    A secret the developer chose (or one from Secrets Manager) is only said to be set: terminals are
    shared, scrolled back and pasted into issues.

    Args:
        name: the variable, e.g. ``SIGNOFF_WEBHOOK_SECRET``.
        dev_default: the value the dev server uses when none is set (safe to show: it is public).
        environ: the environment (``os.environ``).
        value: the value in use, when it does not come from ``environ[name]``.

    Returns:
        e.g. ``SIGNOFF_WEBHOOK_SECRET=dev-webhook-secret (the dev default)`` or
        ``SIGNOFF_WEBHOOK_SECRET is set (value not shown)``.
    """
    env = os.environ if environ is None else environ
    current = value if value is not None else env.get(name, "")
    if current == dev_default:
        return f"{name}={dev_default} (the dev default)"
    if current:
        return f"{name} is set (value not shown)"
    if env.get(f"{name}_ARN"):
        return f"{name} comes from {name}_ARN (value not shown)"
    return f"{name} is not set"


def _summary(server: DevServer, url: str) -> str:
    lines = [f"\nSignoff dev server on {url}  (database: {dev_data_dir(server.repo_root)})"]
    if server.containers > 1:
        lines.append(f"  {server.containers} warm containers (worker processes), one request each")
    jwt_mode = server.auth == "jwt"
    for route in server.template.routes:
        mark = " [JWT]" if jwt_mode and route.authorizer else ""
        lines.append(f"  {route.route_key:<48} -> {route.function_id}{mark}")
    if jwt_mode:
        lines.append(
            'Auth: JWT. Routes marked [JWT] need  -H "Authorization: Bearer $(make -s token SUB=alice)"'
            f"  (HS256, iss {jwt.ISSUER}, aud {jwt.AUDIENCE}; "
            f"{describe_secret(jwt.SECRET_ENV, jwt.DEFAULT_SECRET, value=server.jwt_secret)})"
        )
    else:
        lines.append("Auth: none (SIGNOFF_AUTH=jwt make dev to require tokens as API Gateway would)")
    if server.template.match("GET", "/inbox") is not None:
        if jwt_mode and os.environ.get("SIGNOFF_INBOX_AUTHORIZE_URL") == AUTHORIZE_PATH.lstrip("/"):
            lines.append(
                f"Inbox: {url}/inbox  (dev sign-in at {AUTHORIZE_PATH}: any user id, groups as you type them)"
            )
        elif jwt_mode:
            lines.append(f"Inbox: {url}/inbox  (signs in at {os.environ.get('SIGNOFF_INBOX_AUTHORIZE_URL')})")
        else:
            lines.append(f"Inbox: {url}/inbox  (no sign-in: the API has no authentication)")
    worker = server.resume_worker
    if worker is not None:
        lines.append(f"Resume queue: local, delivered to {worker.logical_id} (background runs, approvals)")
    scheduled = ", ".join(f.logical_id for f in server.template.scheduled())
    if scheduled:
        every = f"every {server.upkeep_seconds:g} s" if server.upkeep_seconds else "off (--upkeep-seconds 0)"
        lines.append(f"Upkeep: {scheduled} {every}")
    backends = server.backends
    if backends is not None and backends.bedrock_standin is not None:
        lines.append(
            f"Bedrock agents: the STAND-IN at {backends.bedrock_standin.endpoint_url} (not a real model; "
            "set AWS_PROFILE or AWS credentials for real Bedrock)"
        )
    else:
        lines.append(
            "Bedrock agents: " + (os.environ.get("SIGNOFF_BEDROCK_ENDPOINT_URL") or "Amazon Bedrock, real")
        )
    if server.notifier is not None:
        lines.append("Pauses: approval links are printed here (no EventBridge, webhook or Slack)")
    else:
        lines.append(
            "Pauses: announced on the channels set in the environment ("
            + ", ".join(name for name in CHANNEL_VARIABLES if os.environ.get(name))
            + ")"
        )
    webhook = describe_secret("SIGNOFF_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET)
    lines.append(f"Signed webhooks (POST /approvals/webhook): {webhook}")
    slack = describe_secret("SIGNOFF_SLACK_SIGNING_SECRET", DEV_SLACK_SIGNING_SECRET)
    lines.append(f"Slack buttons (POST /approvals/slack): {slack}")
    lines.append("Ctrl-C to stop.\n")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
