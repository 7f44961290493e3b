"""A headless Chromium driven over the DevTools protocol, with the standard library only.

``Browser`` starts ``/usr/bin/chromium --headless --remote-debugging-port=0`` with a throw-away
profile, reads the port it picked from ``DevToolsActivePort``, and opens a WebSocket (RFC 6455: the
HTTP upgrade, masked client frames, fragmented and control frames) to a page target. ``Page`` sends
CDP commands and waits for their answers and events: enough to navigate, read the DOM, click like a
user (``Input.dispatchMouseEvent``), type (``Input.insertText``, key events), wait for the page to
reach a state, size the viewport like a phone, and take screenshots. JavaScript dialogs are noted
and dismissed, so a test can tell that none opened.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1024,768",
)
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class CdpError(Exception):
    """A CDP command failed, or the browser went away."""


class WebSocket:
    """A minimal RFC 6455 client over a plain TCP socket (``ws://`` only).

    Args:
        url: ``ws://host:port/path``.
        timeout_s: the socket timeout.
    """

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        parts = urlsplit(url)
        self._sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout_s)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self._sock.sendall(request.encode())
        self._buffer = b""
        head = self._read_until(b"\r\n\r\n").decode("latin-1")
        status = head.split("\r\n", 1)[0]
        if " 101 " not in f"{status} ":
            raise CdpError(f"WebSocket upgrade refused: {status}")
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        if f"sec-websocket-accept: {accept}".lower() not in head.lower():
            raise CdpError("WebSocket upgrade: bad Sec-WebSocket-Accept")

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise CdpError("connection closed during the handshake")
            self._buffer += chunk
        head, _, self._buffer = self._buffer.partition(marker)
        return head

    def _read_exact(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = self._sock.recv(max(65536, size - len(self._buffer)))
            if not chunk:
                raise CdpError("the browser closed the connection")
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        size = len(payload)
        if size < 126:
            header += bytes([0x80 | size])
        elif size < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", size)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", size)
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        self._sock.sendall(header + mask + masked)

    def send(self, text: str) -> None:
        """Send one text message."""
        self._send_frame(0x1, text.encode())

    def receive(self) -> str:
        """Receive one text message (reassembling fragments; answering pings)."""
        message = b""
        while True:
            first, second = self._read_exact(2)
            fin, opcode = first & 0x80, first & 0x0F
            size = second & 0x7F
            if size == 126:
                size = struct.unpack("!H", self._read_exact(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", self._read_exact(8))[0]
            mask = self._read_exact(4) if second & 0x80 else b""
            payload = self._read_exact(size)
            if mask:
                payload = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
            if opcode == 0x9:  # ping
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:  # pong
                continue
            if opcode == 0x8:
                raise CdpError("the browser closed the WebSocket")
            message += payload
            if fin:
                return message.decode("utf-8")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send_frame(0x8, struct.pack("!H", 1000))
        with contextlib.suppress(OSError):
            self._sock.close()


class Page:
    """One page target, driven over CDP.

    Args:
        ws_url: the target's ``webSocketDebuggerUrl``.
    """

    def __init__(self, ws_url: str) -> None:
        self._ws = WebSocket(ws_url)
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.dialogs: list[dict[str, Any]] = []  # every alert/confirm/prompt that opened (dismissed)
        self.exceptions: list[dict[str, Any]] = []  # uncaught exceptions in the page
        self._router: Any = None

    def route(self, pattern: str, handler: Any) -> None:
        """Answer the page's requests to URLs matching ``pattern`` (``*`` wildcards) from the test.

        ``handler(method, url, body)`` returns ``(status, json_payload)``, or None to let the request
        through. Requests are answered while the test talks to the page (``evaluate``, ``wait_for``).
        """
        self._router = handler
        self.send("Fetch.enable", {"patterns": [{"urlPattern": pattern, "requestStage": "Request"}]})

    def _fire(self, method: str, params: dict[str, Any]) -> None:
        """Send a command without waiting for its answer (from inside the event loop)."""
        self._next_id += 1
        self._ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))

    def _answer(self, params: dict[str, Any]) -> None:
        request = params["request"]
        reply = self._router(request["method"], request["url"], request.get("postData"))
        if reply is None:
            self._fire("Fetch.continueRequest", {"requestId": params["requestId"]})
            return
        status, payload = reply
        body = base64.b64encode(json.dumps(payload).encode()).decode()
        headers = [{"name": "Content-Type", "value": "application/json"}]
        self._fire(
            "Fetch.fulfillRequest",
            {
                "requestId": params["requestId"],
                "responseCode": status,
                "responseHeaders": headers,
                "body": body,
            },
        )

    def _note(self, message: dict[str, Any]) -> None:
        """Keep an event; note and dismiss a JavaScript dialog (the page would stay blocked on it)."""
        self.events.append(message)
        method = message.get("method")
        if method == "Page.javascriptDialogOpening":
            self.dialogs.append(message["params"])
            self._fire("Page.handleJavaScriptDialog", {"accept": False})
        elif method == "Fetch.requestPaused" and self._router is not None:
            self._answer(message["params"])
        elif method == "Runtime.exceptionThrown":
            self.exceptions.append(message["params"])

    def send(
        self, method: str, params: dict[str, Any] | None = None, timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """Run a CDP command and return its result; events that arrive meanwhile are kept in ``events``."""
        self._next_id += 1
        command_id = self._next_id
        self._ws.send(json.dumps({"id": command_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = json.loads(self._ws.receive())
            if message.get("id") == command_id:
                if "error" in message:
                    raise CdpError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self._note(message)
        raise CdpError(f"{method}: no answer within {timeout_s}s")

    def wait_event(self, method: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """Wait for the next event named ``method`` (one already received counts) and consume it."""
        deadline = time.monotonic() + timeout_s
        while True:
            for index, event in enumerate(self.events):
                if event["method"] == method:
                    return self.events.pop(index)
            if time.monotonic() > deadline:
                raise CdpError(f"no {method} within {timeout_s}s")
            message = json.loads(self._ws.receive())
            if "method" in message:
                self._note(message)

    def navigate(self, url: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """Load a URL and wait for its load event; return the main document's response."""
        self.events.clear()
        result = self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CdpError(f"navigation to {url} failed: {result['errorText']}")
        self.wait_event("Page.loadEventFired", timeout_s)
        return self.main_response()

    def main_response(self) -> dict[str, Any]:
        """The last document response received (status, url, headers)."""
        for event in reversed(self.events):
            if event["method"] == "Network.responseReceived" and event["params"].get("type") == "Document":
                return event["params"]["response"]
        return {}

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page and return its (JSON) value."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def text(self, selector: str) -> str | None:
        """The text of the first element matching a CSS selector, or None."""
        return self.evaluate(f"(e => e && e.textContent)(document.querySelector({json.dumps(selector)}))")

    def click(self, selector: str, timeout_s: float = 30.0, *, navigates: bool = True) -> dict[str, Any]:
        """Click the element's centre with the mouse, as a user does, and wait for the page it loads.

        Args:
            selector: a CSS selector; the first match is clicked.
            timeout_s: how long to wait for the new page.
            navigates: False for a click that changes the page in place (nothing is awaited).

        Returns:
            The new document's response (``{}`` when ``navigates`` is False).
        """
        box = self.evaluate(
            f"(e => {{ if (!e) return null; e.scrollIntoView(); const r = e.getBoundingClientRect();"
            f" return {{x: r.left + r.width / 2, y: r.top + r.height / 2}}; }})"
            f"(document.querySelector({json.dumps(selector)}))"
        )
        if box is None:
            raise CdpError(f"nothing matches {selector}")
        self.events.clear()
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            params = {"type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1}
            if kind == "mouseMoved":
                params = {"type": kind, "x": box["x"], "y": box["y"]}
            self.send("Input.dispatchMouseEvent", params)
        if not navigates:
            return {}
        self.wait_event("Page.loadEventFired", timeout_s)
        return self.main_response()

    def type_into(self, selector: str, text: str) -> None:
        """Focus the element and type ``text`` into it, as an input method does (``Input.insertText``)."""
        found = self.evaluate(
            f"(e => {{ if (!e) return false; e.focus(); return document.activeElement === e; }})"
            f"(document.querySelector({json.dumps(selector)}))"
        )
        if not found:
            raise CdpError(f"nothing focusable matches {selector}")
        self.send("Input.insertText", {"text": text})

    def press(self, key: str, code: str | None = None, key_code: int | None = None) -> None:
        """Press and release one key (e.g. ``press("Tab", key_code=9)``, ``press("Enter", key_code=13)``)."""
        codes = {"Enter": 13, "Tab": 9, "Escape": 27, " ": 32}
        params = {
            "key": key,
            "code": code or ("Space" if key == " " else key),
            "windowsVirtualKeyCode": key_code or codes.get(key, 0),
        }
        if key == "Enter":
            params["text"] = "\r"
        self.send("Input.dispatchKeyEvent", {"type": "keyDown", **params})
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", **params})

    def wait_for(self, expression: str, timeout_s: float = 15.0, interval_s: float = 0.1) -> None:
        """Evaluate ``expression`` until it is truthy in JavaScript (an element found counts).

        Raises:
            CdpError: still falsy after ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while not self.evaluate(f"!!({expression})"):
            if time.monotonic() > deadline:
                raise CdpError(f"{expression!r} still falsy after {timeout_s}s")
            time.sleep(interval_s)

    def set_viewport(self, width: int, height: int, *, mobile: bool = False, scale: float = 1.0) -> None:
        """Size the page's viewport (``mobile``: a phone's, with touch and the mobile viewport meta)."""
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile},
        )
        self.send("Emulation.setTouchEmulationEnabled", {"enabled": mobile})

    def screenshot(self, path: Path, selector: str | None = None) -> Path:
        """Save a PNG of the viewport, or of the element ``selector`` matches (whole, even if taller
        than the viewport)."""
        params: dict[str, Any] = {"format": "png"}
        if selector is not None:
            box = self.evaluate(
                f"(e => {{ if (!e) return null; const r = e.getBoundingClientRect();"
                f" return {{x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}}; }})"
                f"(document.querySelector({json.dumps(selector)}))"
            )
            if box is None:
                raise CdpError(f"nothing matches {selector}")
            params.update(clip={**box, "scale": 1}, captureBeyondViewport=True)
        data = self.send("Page.captureScreenshot", params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self._ws.close()


class Browser:
    """A headless Chromium with a fresh profile; ``new_page()`` opens a CDP session on its first tab.

    Args:
        executable: the browser binary.
    """

    def __init__(self, executable: Path = CHROMIUM) -> None:
        self.executable = executable
        self.profile = Path(tempfile.mkdtemp(prefix="signoff-chromium-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None

    def start(self, timeout_s: float = 30.0) -> Browser:
        args = [
            str(self.executable),
            *FLAGS,
            f"--user-data-dir={self.profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while True:
            if marker.exists() and marker.read_text().strip():
                self.port = int(marker.read_text().splitlines()[0])
                return self
            if self.process.poll() is not None:
                raise CdpError(f"chromium exited with {self.process.returncode} before listening")
            if time.monotonic() > deadline:
                raise CdpError("chromium did not open its DevTools port")
            time.sleep(0.05)

    def _json(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
            return json.loads(response.read())

    def new_page(self) -> Page:
        """A CDP session on the browser's page, with the Page, Network and Runtime domains enabled."""
        deadline = time.monotonic() + 10
        while True:
            pages = [t for t in self._json("/json/list") if t.get("type") == "page"]
            if pages:
                break
            if time.monotonic() > deadline:
                raise CdpError("chromium has no page target")
            time.sleep(0.05)
        page = Page(pages[0]["webSocketDebuggerUrl"])
        for domain in ("Page", "Network", "Runtime"):
            page.send(f"{domain}.enable")
        return page

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
