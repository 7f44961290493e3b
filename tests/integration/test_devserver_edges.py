"""Dev server edges an outside tester found: request framing, secrets in the start-up summary and the
log, and responses that went out in pieces (a 40 ms stall per request on kept-alive connections)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from signoff_dev import devserver
from signoff_dev.apigw import event_body_bytes
from signoff_dev.devserver import DevServer

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 1024

TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo/
      Handler: app.lambda_handler
      Events:
        Post:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: POST, Path: "/things/{thing_id}"}
        Link:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: GET, Path: "/approvals/{token}"}
"""

HANDLER = """\
import json

def lambda_handler(event, context):
    return {"statusCode": 201, "headers": {"content-type": "application/json"}, "body": json.dumps(event)}
"""


def _checkout(folder: Path) -> Path:
    (folder / "template.yaml").write_text(TEMPLATE)
    (folder / "echo").mkdir()
    (folder / "echo" / "app.py").write_text(HANDLER)
    return folder


@pytest.fixture
def server(tmp_path, postgres_url, standin):
    dev = DevServer(
        _checkout(tmp_path),
        port=0,
        database_url=postgres_url,
        model_base_url=standin.base_url,
        max_body_bytes=LIMIT,
        announce=False,
        upkeep_seconds=0,
    )
    dev.start()
    yield dev
    dev.stop()


def _exchange(dev: DevServer, request: bytes) -> tuple[int, dict, bool]:
    """Send raw bytes, read one response; also whether the server closed the connection after it."""
    with socket.create_connection((dev.host, dev._server.server_address[1]), timeout=30) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = json.loads(response.read() or b"{}")
        closed = sock.recv(1) == b""
        return response.status, body, closed


def _post(headers: str, body: bytes = b"") -> bytes:
    return f"POST /things/t-1 HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n".encode() + body


@pytest.mark.parametrize("length", ["-1", "abc", "+5", "5, 6", "1e3", "0x10"])
def test_a_malformed_content_length_gets_400_without_the_body_being_read(server, capsys, length):
    # When a request declares a length that is not one non-negative integer, and sends no body
    status, body, closed = _exchange(server, _post(f"Content-Length: {length}\r\n"))

    # Then it is answered 400 at once (no wait for a body), the handler never sees it, the connection
    # is closed, and no traceback is printed
    assert status == 400
    assert "Content-Length" in body["message"]
    assert closed
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        # declared over the limit, body sent: read and dropped, so the client sees the 413
        (f"Content-Length: {2 * LIMIT}\r\n", b"x" * (2 * LIMIT)),
        # declared far over the limit, no body sent: answered at once
        (f"Content-Length: {200 * 1024 * 1024}\r\n", b""),
        # chunked, each chunk under the limit, together over it
        (
            "Transfer-Encoding: chunked\r\n",
            b"258\r\n" + b"x" * 600 + b"\r\n258\r\n" + b"x" * 600 + b"\r\n0\r\n\r\n",
        ),
        # one chunk declared far over the limit
        ("Transfer-Encoding: chunked\r\n", b"FFFFFFFF\r\n"),
    ],
)
def test_the_body_cap_holds_however_the_length_is_declared(server, headers, body):
    status, answer, _ = _exchange(server, _post(headers, body))
    assert (status, answer["message"]) == (413, "Request Entity Too Large")


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ("Transfer-Encoding: chunked\r\n", b"-5\r\nhello\r\n0\r\n\r\n", 400),
        ("Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n", 400),
        ("Transfer-Encoding: chunked\r\n", b"5\r\nhello!!\r\n0\r\n\r\n", 400),
        ("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"5\r\nhello\r\n0\r\n\r\n", 400),
        ("Transfer-Encoding: gzip, chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n", 501),
    ],
)
def test_malformed_or_ambiguous_chunked_bodies_are_refused(server, headers, body, status):
    answer_status, answer, closed = _exchange(server, _post(headers, body))
    assert answer_status == status
    assert "message" in answer and closed


def test_a_chunked_body_under_the_limit_reaches_the_handler(server):
    chunked = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    status, event, _ = _exchange(
        server,
        _post("Transfer-Encoding: chunked\r\nContent-Type: text/plain\r\nConnection: close\r\n", chunked),
    )
    assert status == 201
    assert event_body_bytes(event) == b"hello world"


def test_the_access_log_does_not_show_approval_tokens(server, caplog):
    # When an approval link is opened
    with caplog.at_level("INFO", logger="signoff_dev.devserver"):
        status, _, _ = _exchange(
            server,
            b"GET /approvals/tok-4f9a-secret?sig=abc123&x=1 HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n",
        )

    # Then the log line names the route, not the token
    assert status == 201
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "GET /approvals/<token>?sig=<sig>&x=1 201" in logged
    assert "tok-4f9a-secret" not in logged and "abc123" not in logged


def test_accepted_connections_have_nagle_off():
    # Given the dev server's listening socket
    listener = devserver._Server(("127.0.0.1", 0), devserver._Handler)
    try:
        with socket.create_connection(listener.server_address, timeout=10):
            # When it accepts a connection
            accepted, _ = listener.get_request()

            # Then the accepted socket sends small writes at once (TCP_NODELAY)
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        listener.server_close()


class _CountingSocket(socket.socket):
    """A socket that keeps every buffer passed to send/sendall (the server's writes)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.writes: list[bytes] = []

    def sendall(self, data, *args) -> None:
        self.writes.append(bytes(data))
        super().sendall(data, *args)

    def send(self, data, *args) -> int:
        self.writes.append(bytes(data))
        return super().send(data, *args)


def test_each_response_on_a_kept_alive_connection_is_one_write(server):
    # Given a client connection carrying two kept-alive requests
    client, server_end = socket.socketpair()
    counting = _CountingSocket(fileno=server_end.detach())
    request = _post("Content-Type: application/json\r\nContent-Length: 2\r\n", b"{}")
    client.sendall(request + request)
    client.shutdown(socket.SHUT_WR)

    # When the dev server's request handler serves the connection
    served = threading.Thread(target=devserver._Handler, args=(counting, ("127.0.0.1", 1), server._server))
    served.start()
    served.join(60)
    counting.close()  # the server, not the handler, closes a finished connection
    client.settimeout(30)
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    client.close()

    # Then each response went out whole, status line to body, in a single write
    assert len(counting.writes) == 2
    for write in counting.writes:
        head, _, body = write.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 201 Created\r\n")
        assert b"Content-Length: %d" % len(body) in head
        assert json.loads(body)["routeKey"] == "POST /things/{thing_id}"
    assert received == b"".join(counting.writes)


def test_the_start_up_summary_shows_only_the_dev_default_secrets(tmp_path):
    # Given a developer's own webhook and JWT secrets (the Slack one left to the dev default)
    mine = {"SIGNOFF_WEBHOOK_SECRET": "whsec-mine-5b1e0c", "SIGNOFF_DEV_JWT_SECRET": "jwt-mine-77d2a9"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNOFF_", "OPENAI_", "STANDIN_"))}
    env.update(mine)
    env["PYTHONPATH"] = os.pathsep.join(
        str(ROOT / p) for p in ("devtools", "layers/signoff", "layers/agents")
    )

    # When `make dev` starts (with JWT auth) and an approval link is opened
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "signoff_dev.devserver",
            "--port",
            "0",
            "--auth",
            "jwt",
            "--upkeep-seconds",
            "0",
        ],
        cwd=_checkout(tmp_path),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C to stop."):
                break
        url = next(line for line in lines if "Signoff dev server on" in line).split()[4]
        with socket.create_connection(url.removeprefix("http://").split(":"), timeout=30) as sock:
            sock.sendall(b"GET /approvals/tok-9c1d HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n")
            while sock.recv(65536):
                pass
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    output = "".join(lines) + rest

    # Then the developer's secrets are said to be set, never shown; the dev default is shown
    assert "SIGNOFF_WEBHOOK_SECRET is set (value not shown)" in output
    assert "SIGNOFF_DEV_JWT_SECRET is set (value not shown)" in output
    assert "SIGNOFF_SLACK_SIGNING_SECRET=dev-slack-signing-secret (the dev default)" in output
    for value in (*mine.values(), "tok-9c1d"):
        assert value not in output
    assert "STAND-IN MODEL" in output
