"""Warm "Lambda containers" for the dev server: one worker process each, one event at a time.

Lambda runs one event per execution environment at a time and scales out by adding environments;
races between duplicate requests only show up across them. ``ContainerPool`` reproduces that shape
locally: N worker processes (multiprocessing, "spawn" context) that each load the handlers lazily,
keep their module-level state (settings, the database connection) between events, and answer one
event at a time. A caller takes a free container for each request, blocking until one is free.

Each event carries its function's environment overlay (see ``signoff_dev.env``), applied in the
container before the handler runs. With ``services``, each container hands its runtime relays for the
resume queue and the pause notifier (``signoff_dev.queue``, through ``signoff.runtime.provide``): what
a handler sends travels back over the container's pipe while the invocation runs, to the pool's
``on_event`` (the dev server's local queue and notifier).

When a handler lets any ``BaseException`` escape (a test's simulated crash included), the container
reports the crash and exits, and the pool starts a fresh process in its place, as Lambda does; the
run's database state is whatever the crash left. The same happens when a container dies on its own
or does not answer within its time.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger("signoff_dev.containers")

STOP = None  # the message that asks a container to exit
CRASH_EXIT_CODE = 70
DEFAULT_GRACE_S = 5.0  # how much longer than its deadline an invocation may take before it is killed


class ContainerCrashed(Exception):
    """The handler died inside its container (or the container died): what a Lambda failure is."""


class ContainerTimedOut(Exception):
    """The container did not answer within the invocation's deadline plus a grace period."""


class PoolClosed(Exception):
    """The pool was stopped while a request waited for a container."""


def _serve(
    conn: Any,
    env: dict[str, str],
    sys_path: list[str],
    template_path: str,
    services: dict[str, bool] | None = None,
) -> None:
    """A container's main loop (runs in the worker process): answer one event at a time until STOP."""
    os.environ.clear()
    os.environ.update(env)
    for entry in reversed(sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    # Ctrl-C reaches the whole process group; the dev server stops its containers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    template = None
    installed = False

    def emit(kind: str, payload: Any) -> None:
        conn.send(("event", (kind, payload)))

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the front went away
            return
        if message is STOP:
            return
        logical_id, event, timeout_ms, overlay = message
        try:
            from signoff_dev.apigw import FakeLambdaContext
            from signoff_dev.env import apply_overlay
            from signoff_dev.handlers import invoke
            from signoff_dev.template import load_template

            if not installed:
                installed = True
                if services and any(services.values()):
                    from signoff import runtime
                    from signoff_dev.queue import RelayNotifier, RelayQueue

                    runtime.provide(
                        queue=RelayQueue(emit) if services.get("queue") else None,
                        notifier=RelayNotifier(emit) if services.get("notifier") else None,
                    )
            if overlay:
                apply_overlay(overlay)
            if template is None:
                template = load_template(Path(template_path))
            function = template.functions[logical_id]
            context = FakeLambdaContext(
                logical_id, timeout_ms=timeout_ms, memory_mb=function.memory_mb or 256
            )
            result = invoke(logical_id, event, context, template=template)
            conn.send(("ok", result))
        except BaseException:
            # Lambda tears the environment down when an invocation dies: report, then exit at once
            # (no cleanup, no rollback beyond what the database does for a dropped connection).
            try:
                conn.send(("crash", traceback.format_exc()))
            finally:
                os._exit(CRASH_EXIT_CODE)


class Container:
    """One worker process, driven over a pipe by one caller at a time.

    Attributes:
        name: ``container-<n>``, for logs.
        process: the worker process.
        invocations: how many events it answered.
    """

    def __init__(
        self,
        ctx: Any,
        name: str,
        *,
        env: dict[str, str],
        sys_path: list[str],
        template_path: Path,
        services: dict[str, bool] | None = None,
    ) -> None:
        self.name = name
        self.invocations = 0
        self._send_lock = threading.Lock()
        self._killed = False
        self._conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=_serve,
            args=(child, env, sys_path, str(template_path), services),
            name=f"signoff-{name}",
            daemon=True,
        )
        self.process.start()
        child.close()  # only the worker holds its end: its death reads as EOF here

    def alive(self) -> bool:
        return self.process.is_alive()

    def invoke(
        self,
        logical_id: str,
        event: dict[str, Any],
        timeout_ms: int,
        wait_s: float,
        *,
        overlay: dict[str, str | None] | None = None,
        on_event: Callable[[str, Any], None] | None = None,
    ) -> Any:
        """Send one event and wait for the handler's result.

        Args:
            logical_id: the function's logical id in the template.
            event: the event.
            timeout_ms: the deadline the handler's context reports.
            wait_s: how long to wait for the answer before giving up on the container.
            overlay: the function's environment overlay.
            on_event: receives what the handler sends through the relays (``(kind, payload)``), as
                it is sent.

        Returns:
            What the handler returned.

        Raises:
            ContainerCrashed: the handler raised, or the process died; the container is dead.
            ContainerTimedOut: no answer within ``wait_s``; the container must be killed.
        """
        deadline = time.monotonic() + wait_s
        try:
            with self._send_lock:
                self._conn.send((logical_id, event, timeout_ms, overlay))
            while True:
                if not self._conn.poll(max(0.0, deadline - time.monotonic())):
                    raise ContainerTimedOut(f"{self.name} gave no answer within {wait_s:.0f}s")
                kind, value = self._conn.recv()
                if kind != "event":
                    break
                if on_event is not None:
                    try:
                        on_event(*value)
                    except Exception:
                        logger.exception("%s: could not forward %s", self.name, value[0])
        except (EOFError, OSError) as error:
            raise ContainerCrashed(f"{self.name} died: {error!r}") from None
        self.invocations += 1
        if kind == "crash":
            raise ContainerCrashed(f"{self.name}: the handler died:\n{value}")
        return value

    def request_stop(self) -> None:
        """Ask the worker to exit after the event it is handling, if any."""
        with self._send_lock, contextlib.suppress(OSError, ValueError):
            self._conn.send(STOP)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the worker to exit; kill it when it does not within ``timeout_s``."""
        self.request_stop()
        if not self._killed:
            self.process.join(timeout_s)
        self.kill()

    def kill(self) -> None:
        """End the worker now (no-op when it has exited) and release the pipe."""
        if self._killed:
            return
        self._killed = True
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(2)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(2)
        with contextlib.suppress(OSError):
            self._conn.close()
        with contextlib.suppress(ValueError):
            self.process.close()


class ContainerPool:
    """N warm containers behind one ``invoke``; dead containers are replaced by fresh ones.

    Args:
        size: how many containers (Lambda's concurrency for this local API).
        template_path: the template the workers load routes and handlers from.
        sys_path: folders put first on each worker's ``sys.path`` (and ``PYTHONPATH``): the layers and
            the checkout.
        grace_s: how long past its deadline an invocation may run before its container is killed.
        overlays: logical id → the environment overlay applied before each of its events.
        services: ``{"queue": bool, "notifier": bool}``: the relays each container installs.
        on_event: receives ``(kind, payload)`` for what the relays send (``"queue"``: a message,
            ``"paused"``: a pause's detail).
    """

    def __init__(
        self,
        size: int,
        *,
        template_path: Path,
        sys_path: Sequence[str] = (),
        grace_s: float = DEFAULT_GRACE_S,
        overlays: dict[str, dict[str, str | None]] | None = None,
        services: dict[str, bool] | None = None,
        on_event: Callable[[str, Any], None] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a container pool needs at least one container")
        self.size = size
        self.template_path = Path(template_path)
        self.sys_path = [str(entry) for entry in sys_path]
        self.grace_s = grace_s
        self.overlays = dict(overlays or {})
        self.services = dict(services or {})
        self.on_event = on_event
        self.started_containers = 0  # replacements included
        self.crashes = 0
        self._ctx = multiprocessing.get_context("spawn")
        self._idle: queue.Queue[Container] = queue.Queue()
        self._all: set[Container] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def _environment(self) -> dict[str, str]:
        # The parent's environment as it is now, with the layers and the checkout on PYTHONPATH.
        env = dict(os.environ)
        paths = [*self.sys_path, *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        return env

    def _spawn(self) -> Container:
        with self._lock:
            self.started_containers += 1
            name = f"container-{self.started_containers}"
        container = Container(
            self._ctx,
            name,
            env=self._environment(),
            sys_path=self.sys_path,
            template_path=self.template_path,
            services=self.services,
        )
        with self._lock:
            if self._closed.is_set():
                closed = True
            else:
                closed = False
                self._all.add(container)
        if closed:
            container.stop(0.5)
            raise PoolClosed("the container pool is stopped")
        logger.debug("%s started (pid %s)", name, container.process.pid)
        return container

    def start(self) -> None:
        """Start all containers (each loads its handlers on its first event, a cold start)."""
        for _ in range(self.size):
            self._idle.put(self._spawn())

    def _replace(self, dead: Container) -> None:
        with self._lock:
            self._all.discard(dead)
        dead.kill()
        if self._closed.is_set():
            return

        def spawn() -> None:
            with contextlib.suppress(PoolClosed):
                self._idle.put(self._spawn())

        threading.Thread(target=spawn, name="signoff-container-spawn", daemon=True).start()

    def _acquire(self) -> Container:
        while True:
            if self._closed.is_set():
                raise PoolClosed("the container pool is stopped")
            try:
                container = self._idle.get(timeout=0.5)
            except queue.Empty:
                continue
            if container.alive():
                return container
            logger.warning("%s had exited while idle; starting a fresh one", container.name)
            self._replace(container)

    def invoke(self, logical_id: str, event: dict[str, Any], timeout_ms: int) -> Any:
        """Run one event in a free container, blocking until one is free.

        Args:
            logical_id: the function's logical id in the template.
            event: the event.
            timeout_ms: the invocation's deadline (its context counts down from it).

        Returns:
            What the handler returned.

        Raises:
            ContainerCrashed: the handler died; its container was replaced.
            ContainerTimedOut: the container did not answer in time; it was killed and replaced.
            PoolClosed: the pool was stopped.
        """
        container = self._acquire()
        try:
            result = container.invoke(
                logical_id,
                event,
                timeout_ms,
                timeout_ms / 1000 + self.grace_s,
                overlay=self.overlays.get(logical_id),
                on_event=self.on_event,
            )
        except (ContainerCrashed, ContainerTimedOut):
            with self._lock:
                self.crashes += 1
            self._replace(container)
            raise
        except BaseException:
            self._replace(container)  # the pipe's state is unknown: never hand this one out again
            raise
        self._idle.put(container)
        return result

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop every container: idle ones at once, busy ones after their event (or ``timeout_s``)."""
        self._closed.set()
        with self._lock:
            containers = list(self._all)
            self._all.clear()
        for container in containers:
            container.request_stop()
        deadline = time.monotonic() + timeout_s
        for container in containers:
            container.process.join(max(0.0, deadline - time.monotonic()))
            container.kill()
