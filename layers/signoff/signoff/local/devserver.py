"""`make dev`: the HTTP API on loopback, each request turned into the API Gateway v2 event AWS would send."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from signoff.local.apigw import FakeLambdaContext, http_api_event
from signoff.local.containers import ContainerCrashed, ContainerPool, ContainerTimedOut, PoolClosed
from signoff.local.handlers import invoke
from signoff.local.standin import StandinModel
from signoff.local.template import TEMPLATE_NAME, Template, find_repo_root, load_template

logger = logging.getLogger("signoff.local.devserver")

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
API_TIMEOUT_MS = 29_000
CONTAINERS_ENV = "SIGNOFF_DEV_CONTAINERS"
STANDIN_API_KEY = "standin"
_BANNER = """
************************************************************************
***  STAND-IN MODEL - this is NOT a real language model.
***  Answers come from signoff.local.standin, a deterministic fake of
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


def _reset_runtime_caches() -> None:
    # Settings, the store and the catalog are cached per container; a changed environment is a new one.
    for name, module in list(sys.modules.items()):
        if not name.startswith("signoff.") or name.startswith("signoff.local") or module is None:
            continue
        for value in list(vars(module).values()):
            if callable(getattr(value, "cache_clear", None)) and getattr(value, "__module__", None) == name:
                value.cache_clear()


class LocalBackends:
    """The database and the model that local runs use, and the environment that points handlers at them.

    Without ``database_url`` an embedded PostgreSQL is started on ``.dev/pgdata`` of the checkout and
    migrated. Without ``model_base_url``, the real OpenAI API (or ``OPENAI_BASE_URL``) is used when
    ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set, else the stand-in model is started (configured from
    ``STANDIN_LATENCY_MS`` / ``STANDIN_FAULTS``) and announced loudly. ``stop()`` restores the environment.

    Attributes:
        database_url: the libpq URL in use, once started.
        model_base_url: the OpenAI-compatible base URL in use (None for OpenAI itself).
        standin: the stand-in this object started, if any (tests may ``inject`` faults into it).
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
        self._template = template
        self._announce = announce
        self._postgres: Any = None
        self._saved_env: dict[str, str | None] = {}

    def _setenv(self, name: str, value: str, *, override: bool = True) -> None:
        if not override and name in os.environ:
            return
        self._saved_env.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def start(self) -> None:
        """Start what is needed; set ``SIGNOFF_DATABASE_URL``, ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``."""
        if self.database_url is None:
            from signoff.local.postgres import start_postgres

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
        # What Lambda always provides, and the template's literal settings (Globals included).
        self._setenv("AWS_REGION", "us-east-1", override=False)
        self._setenv("AWS_DEFAULT_REGION", "us-east-1", override=False)
        self._setenv("POWERTOOLS_TRACE_DISABLED", "true", override=False)
        if self._template is not None:
            for function in self._template.functions.values():
                for name, value in function.environment.items():
                    self._setenv(name, value, override=False)
        _reset_runtime_caches()

    def stop(self) -> None:
        """Stop what ``start`` started (the database keeps its data) and restore the environment."""
        if self.standin is not None:
            self.standin.stop()
            self.standin = None
        if self._postgres is not None:
            from signoff.local.postgres import stop_postgres

            stop_postgres(self._postgres)
            self._postgres = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        _reset_runtime_caches()


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


def _unverified_jwt_claims(authorization: str | None) -> dict[str, Any] | None:
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    parts = authorization[7:].strip().split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    return claims if isinstance(claims, dict) else None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 120

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)

    def _write(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        names = {name.lower() for name, _ in headers}
        for name, value in headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        if "content-type" not in names and body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self, limit: int) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > limit:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            if length <= 8 * limit:
                remaining = length
                while remaining > 0:  # drain, so that the client reads the 413 instead of a reset
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            return None
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        app = self.server.app
        started = time.perf_counter()
        raw_path, _, query = self.path.partition("?")
        status = 500
        try:
            body = self._read_body(app.max_body_bytes)
            if body is None:
                self.close_connection = True
                status = 413
                self._write(
                    413, [("content-type", "application/json")], b'{"message":"Request Entity Too Large"}'
                )
                return
            found = app.template.match(self.command, raw_path)
            if found is None:
                status = 404
                self._write(404, [("content-type", "application/json")], b'{"message":"Not Found"}')
                return
            route, params = found
            claims = (
                _unverified_jwt_claims(self.headers.get("Authorization"))
                if app.trust_unverified_jwt
                else None
            )
            event = http_api_event(
                self.command,
                raw_path,
                query=query,
                headers=list(self.headers.items()),
                body=body,
                route_key=route.route_key,
                path_parameters=params,
                source_ip=self.client_address[0],
                authorizer_claims=claims,
            )
            if app.pool is not None:
                result, failed = self._invoke_in_container(app.pool, route.function_id, event, app.timeout_ms)
                if failed is not None:
                    status = failed
                    return
            else:
                function = app.template.functions[route.function_id]
                context = FakeLambdaContext(
                    route.function_id, timeout_ms=app.timeout_ms, memory_mb=function.memory_mb or 256
                )
                try:
                    with app.invoke_lock:
                        result = invoke(route.function_id, event, context, template=app.template)
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
            logger.info("%s %s %d %.0fms", self.command, self.path, status, elapsed_ms)

    def _invoke_in_container(
        self, pool: ContainerPool, function_id: str, event: dict[str, Any], timeout_ms: int
    ) -> tuple[Any, int | None]:
        """Run the event in a free container: ``(result, None)``, or on failure write API Gateway's
        answer and return ``(None, status)``."""
        try:
            return pool.invoke(function_id, event, timeout_ms), None
        except ContainerCrashed as error:
            # A Lambda that dies answers 502 through API Gateway; the container is replaced.
            logger.error("%s crashed in its container (replaced by a fresh one): %s", function_id, error)
            status, body = 502, b'{"message":"Internal Server Error"}'
        except ContainerTimedOut as error:
            logger.error("%s timed out (its container was replaced): %s", function_id, error)
            status, body = 503, b'{"message":"Service Unavailable"}'
        except PoolClosed:
            self.close_connection = True
            status, body = 503, b'{"message":"Service Unavailable"}'
        self._write(status, [("content-type", "application/json")], body)
        return None, status

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # a burst of simultaneous requests must queue, not be refused
    app: DevServer


class DevServer:
    """The local HTTP API: routes from ``template.yaml``, handlers called in-process with v2 events.

    Attributes:
        repo_root: the checkout (the folder holding the template).
        template: the loaded template, once started.
        backends: the database/model set-up, once started (``backends.standin`` is the stand-in, if any).
        base_url: ``http://host:port`` once started.
        timeout_ms: the Lambda context's deadline per request (API Gateway's 29 s by default).
        max_body_bytes: larger request bodies get 413.
        trust_unverified_jwt: put the claims of a ``Bearer`` JWT into ``requestContext.authorizer.jwt``
            WITHOUT verifying it (a local stand-in for API Gateway's JWT authorizer; dev only).
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
        trust_unverified_jwt: bool = False,
        serialize: bool = True,
        containers: int = 1,
        announce: bool = True,
    ) -> None:
        """Configure the server; nothing starts before ``start()``.

        Args:
            repo_root: the checkout; found from the current folder when None.
            host: the address to bind (keep it loopback).
            port: the port; 0 picks a free one.
            database_url: an existing, migrated database; None starts pgserver on ``.dev/pgdata``.
            model_base_url: an OpenAI-compatible base URL; None picks OpenAI or the stand-in (see
                ``LocalBackends``).
            template_path: the template; defaults to ``repo_root/template.yaml``.
            timeout_ms: the deadline each invocation's context reports.
            max_body_bytes: the request body limit (413 beyond).
            trust_unverified_jwt: see the class attributes.
            serialize: one invocation at a time, as one Lambda container handles one request at a
                time (the handlers share one process, hence one cached connection). Applies to
                ``containers=1``.
            containers: how many warm "Lambda containers" serve requests. 1 calls the handlers in this
                process. N > 1 starts N worker processes (see ``signoff.local.containers``), each
                handling one event at a time, so that concurrent requests really run concurrently, as
                on Lambda; a request waits for a free container. A handler that dies in its container
                answers 502 and the container is replaced by a fresh process.
            announce: print the stand-in banner when the stand-in is started.
        """
        self.repo_root = Path(repo_root) if repo_root is not None else find_repo_root()
        self.host = host
        self.port = port
        self.template_path = Path(template_path) if template_path else self.repo_root / TEMPLATE_NAME
        self.timeout_ms = timeout_ms
        self.max_body_bytes = max_body_bytes
        self.trust_unverified_jwt = trust_unverified_jwt
        if containers < 1:
            raise ValueError("containers must be at least 1")
        self.containers = containers
        self.pool: ContainerPool | None = None
        self.invoke_lock: Any = threading.Lock() if serialize else _NoLock()
        self.template: Template = None  # type: ignore[assignment]
        self.backends: LocalBackends | None = None
        self.base_url: str | None = None
        self._database_url = database_url
        self._model_base_url = model_base_url
        self._announce = announce
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Start the database/model set-up and serve in a daemon thread.

        Returns:
            The base URL, e.g. ``http://127.0.0.1:7777``.
        """
        self.template = load_template(self.template_path)
        for layer in reversed(self.template.layer_dirs):
            if str(layer) not in sys.path:
                sys.path.insert(0, str(layer))  # as Lambda puts layers on the path (/opt/python)
        self.backends = LocalBackends(
            self.repo_root,
            database_url=self._database_url,
            model_base_url=self._model_base_url,
            template=self.template,
            announce=self._announce,
        )
        self.backends.start()
        try:
            if self.containers > 1:
                # Started after the backends: each container inherits the environment they set.
                layers = [str(layer) for layer in self.template.layer_dirs]
                self.pool = ContainerPool(
                    self.containers,
                    template_path=self.template_path,
                    sys_path=[*layers, str(self.repo_root)],
                )
                self.pool.start()
            server = _Server((self.host, self.port), _Handler)
        except BaseException:
            self._stop_pool()
            self.backends.stop()
            raise
        server.app = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="signoff-devserver", daemon=True)
        self._thread.start()
        self.base_url = f"http://{self.host}:{server.server_address[1]}"
        return self.base_url

    def stop(self) -> None:
        """Stop serving and stop what was started (pgserver, stand-in); the dev database keeps its data."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._stop_pool()
        if self.backends is not None:
            self.backends.stop()
            self.backends = None
        self.base_url = None

    def _stop_pool(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.stop()

    def __enter__(self) -> DevServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    """Run the dev server until Ctrl-C.

    Args:
        argv: command-line arguments (``--host``, ``--port``, ``--trust-jwt``, ``--containers``).

    Returns:
        The exit code.
    """
    parser = argparse.ArgumentParser(prog="python -m signoff.local.devserver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 7777))
    parser.add_argument(
        "--trust-jwt",
        action="store_true",
        help="pass the claims of an UNVERIFIED bearer JWT to handlers, as the JWT authorizer would",
    )
    parser.add_argument(
        "--containers",
        type=int,
        default=int(os.environ.get(CONTAINERS_ENV) or 1),
        metavar="N",
        help=f"warm Lambda containers (worker processes) serving requests concurrently; 1 (default, or "
        f"${CONTAINERS_ENV}) runs the handlers in this process, one request at a time",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("pgserver", "httpx", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.containers < 1:
        parser.error("--containers must be at least 1")
    server = DevServer(
        find_repo_root(),
        host=args.host,
        port=args.port,
        trust_unverified_jwt=args.trust_jwt,
        containers=args.containers,
    )
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, or `kill`: stop cleanly (pgserver too)
        signal.signal(signum, lambda *_: stopping.set())
    try:
        url = server.start()
        print(f"\nSignoff dev server on {url}  (database: {dev_data_dir(server.repo_root)})", flush=True)
        if server.containers > 1:
            print(f"  {server.containers} warm containers (worker processes), one request each", flush=True)
        for route in server.template.routes:
            print(f"  {route.route_key:<48} -> {route.function_id}", flush=True)
        print("Ctrl-C to stop.\n", flush=True)
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping...", file=sys.stderr, flush=True)
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
