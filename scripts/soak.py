"""`make soak`: thousands of sign-off flows with duplicate and concurrent continues, rejections, model faults,
invocation crashes, outside decisions racing executing runs, decisions around approval expiry and PostgreSQL
stalls, against the local server (warm containers in worker processes) and real PostgreSQL.

Every flow's confirmed tools insert one row, tagged with a unique amount, into ``test_ledger``; the database
therefore counts every execution, whichever process ran it. Flow kinds:

- classic: one ``ledger`` call, decided by the owner with 1-4 concurrent copies of the continue; some crash
  the invocation right after the tool wrote its row.
- pair: the model proposes two ``ledger_entry_slow`` calls in one turn (the tool sleeps 20-200 ms after
  writing); the owner confirms the first through the API while an outside decision (signed webhook, Slack
  button, approval link or resume-queue message), plus duplicates, approves or rejects the second. Outside
  decisions that find the run executing are kept (202) and applied once it is free.
- expiry: one ``ledger_entry_ttl`` call (approval TTL 2 s) decided just before, at and after its expiry
  through the API continue and the webhook; a decision sent at or after the expiry must be refused (410,
  or 409 once the run moved on) and a refused one never leads to an execution.

Meanwhile all PostgreSQL server processes are occasionally frozen (SIGSTOP) for 0.5-3 s, always resumed.
After the flows, the upkeep and the resume worker settle the runs; every ERROR run left must resume with a
continue. The script prints the figures and exits non-zero when a flow was lost, a tool ran twice or
differently from the decisions that were accepted, a refused decision executed, a run was left stuck, or a
kept decision was left unapplied. Loopback only; bounded by ``--flows`` (or ``SOAK_FLOWS``) and
``--seconds`` (derived from the flows by default); a watchdog ends the process at ``--seconds``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import hashlib
import hmac
import json
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _entry in (ROOT / "layers" / "agents", ROOT / "layers" / "signoff", ROOT / "devtools", ROOT):
    if str(_entry) not in sys.path:
        sys.path.insert(0, str(_entry))

LEASE_SECONDS = 2
MODEL_MAX_RETRIES = 3
CONTAINERS = 4
USER = "soak"
MAX_STEPS = 12  # requests a classic flow may make after its start before it gives up (it is then classified)
UPKEEP_SECONDS = 3.0  # the scheduled upkeep (expiry sweep, dead-run sweep, kept decisions) runs this often
PAIR_B_OFFSET = 50_000_000  # the second call of a pair flow writes amount PAIR_B_OFFSET + index
DRIVE_SECONDS = 60.0  # how long a pair or expiry flow may take to bring its run to an end
DRIVE_STEPS = 240
OUTSIDE_CHANNELS = ("webhook", "link", "slack", "queue", "approvals")
QUEUED = 1  # the "status" recorded for a decision sent on the resume queue (it has no answer)
EXPIRY_TTL_S = 2
DEFAULT_FLOWS = 2000

CONFLICTS = ("run is already running", "run is already continued")
BUSY = "run is already running"


def default_seconds(flows: int) -> float:
    """The hard time bound for a number of flows: room for about 3 flows/s plus settling."""
    return 300.0 + 0.35 * flows


@dataclass
class Flow:
    index: int
    amount: int
    session_id: str
    crash: bool
    confirm: bool
    duplicates: int
    kind: str = "classic"  # classic | pair | expiry
    agent: str = "ledger"
    run_id: str | None = None
    decided: bool = False
    winner_confirmed: bool | None = None  # the decision that won, as the client saw it
    ambiguous: bool = False  # the decision's winner got an answer that does not say whether it applied
    winners: int = 0
    crashed: bool = False  # a continue answered 502
    recovery_pauses: int = 0
    error_resumes: int = 0
    notes: list[str] = field(default_factory=list)
    # pair flows
    channel: str | None = None  # the outside decision's channel
    approve_b: bool = True  # what the outside decision says
    call_a: str | None = None
    call_b: str | None = None
    a_applied: bool = False  # an owner continue confirming A answered 200/502
    a_unclear: bool = False  # an owner continue got an answer that does not say (5xx, no answer)
    outside: list[tuple[str, int]] = field(default_factory=list)  # (channel, status) per outside decision
    # expiry flows
    expires_at: float | None = None
    approve: bool = True
    # (channel, sent - expires_at, status, detail)
    expiry_answers: list[tuple[str, float, int, str]] = field(default_factory=list)  # + the detail

    @property
    def amount_b(self) -> int:
        return PAIR_B_OFFSET + self.index


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.conflict_details: Counter[str] = Counter()
        self.channels: dict[str, Counter[int]] = defaultdict(Counter)
        self.expiry: dict[str, Counter[str]] = defaultdict(Counter)
        self.late_refusals: Counter[str] = Counter()  # decisions sent after expiry, refused other than 410

    def add(self, name: str, value: int = 1) -> None:
        with self.lock:
            self.counts[name] += value

    def channel(self, name: str, status: int) -> None:
        with self.lock:
            self.channels[name][status] += 1


class Client:
    """Plain urllib over loopback, as a user's script would call the API."""

    def __init__(self, base_url: str, stats: Stats) -> None:
        self.base_url = base_url
        self.stats = stats

    def _send(self, request: urllib.request.Request) -> tuple[int, Any]:
        headers: Any = {}
        try:
            with urllib.request.urlopen(request, timeout=90) as response:
                status, raw, headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, raw, headers = error.code, error.read(), error.headers
        except (urllib.error.URLError, OSError) as error:
            status, raw = 0, json.dumps({"client_error": repr(error)}).encode()
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = {"raw": raw[:300].decode(errors="replace")}
        with self.stats.lock:
            self.stats.statuses[status] += 1
            if status == 409 and isinstance(body, dict) and body.get("detail") == BUSY:
                self.stats.counts["busy_409"] += 1
                if not (headers and headers.get("Retry-After")):
                    self.stats.counts["busy_409_without_retry_after"] += 1
        return status, body

    def post(self, path: str, fields: dict[str, str]) -> tuple[int, Any]:
        boundary = "soak" + uuid.uuid4().hex
        body = (
            b"".join(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
                for name, value in fields.items()
            )
            + f"--{boundary}--\r\n".encode()
        )
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        return self._send(urllib.request.Request(self.base_url + path, body, headers, method="POST"))

    def post_raw(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        return self._send(urllib.request.Request(self.base_url + path, body, headers, method="POST"))

    def get(self, path: str) -> tuple[int, Any]:
        return self._send(urllib.request.Request(self.base_url + path, method="GET"))


class Pauses:
    """Each pause the containers announce (the local notifier's relay), indexed by run: the approval
    links and expiry of every pending call. Replaces the notifier's list, which grows and is scanned."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._calls: dict[str, dict[str, dict[str, Any]]] = {}

    def record(self, detail: dict[str, Any]) -> None:
        with self._cond:
            calls = self._calls.setdefault(str(detail.get("run_id")), {})
            for call in detail.get("tool_calls") or []:
                calls[str(call.get("tool_call_id"))] = call
            self._cond.notify_all()

    def call(self, run_id: str, call_id: str, timeout_s: float = 5.0) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = self._calls.get(run_id, {}).get(call_id)
                left = deadline - time.monotonic()
                if found is not None or left <= 0:
                    return found
                self._cond.wait(left)


class SlackReplies:
    """A loopback stand-in for Slack's ``response_url``: records what deciders are told."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kinds: Counter[str] = Counter()
        replies = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    text = str(json.loads(raw).get("text") or "")
                except (ValueError, AttributeError):
                    text = ""
                if "was not applied" in text:
                    kind = "dropped"
                elif "applied once the run was free" in text:
                    kind = "applied_later"
                elif "is kept" in text:
                    kind = "kept"
                else:
                    kind = "decided"
                with replies.lock:
                    replies.kinds[kind] += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="slack-replies", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Staller:
    """Freezes every PostgreSQL server process (the postmaster and its children) with SIGSTOP for a
    while, then SIGCONT. Whatever happens, ``resume_all`` continues every process it stopped."""

    def __init__(self, data_dir: Path, budget: int, stop: threading.Event) -> None:
        self.data_dir = data_dir
        self.budget = budget
        self.stop = stop
        self.lock = threading.Lock()
        self.stopped: list[int] = []
        self.injected = 0
        self.seconds = 0.0
        self.failures: list[str] = []

    def _postmaster(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    @staticmethod
    def _children(parent: int) -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces and parentheses; split after the last ")"
            fields = stat[stat.rfind(")") + 2 :].split()
            if len(fields) > 1 and fields[1] == str(parent):
                found.append(int(entry))
        return found

    def stall(self, seconds: float) -> bool:
        postmaster = self._postmaster()
        if postmaster is None:
            self.failures.append("no postmaster.pid")
            return False
        try:
            with self.lock:
                for pid in [postmaster, *self._children(postmaster)]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGSTOP)
                        self.stopped.append(pid)
                # Children forked just before the postmaster stopped.
                for pid in self._children(postmaster):
                    if pid not in self.stopped:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGSTOP)
                            self.stopped.append(pid)
                self.injected += 1
            started = time.monotonic()
            self.stop.wait(seconds)
            self.seconds += time.monotonic() - started
        finally:
            self.resume_all()
        return True

    def resume_all(self) -> None:
        with self.lock:
            for pid in reversed(self.stopped):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            self.stopped.clear()


class Oracle:
    """The soak's own read-only view of the database (one connection per thread)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.local = threading.local()

    def _conn(self) -> Any:
        import psycopg

        conn = getattr(self.local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(self.database_url, autocommit=True, connect_timeout=30)
            self.local.conn = conn
        return conn

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        for attempt in range(3):
            try:
                return self._conn().execute(sql, params).fetchall()
            except Exception:
                conn = getattr(self.local, "conn", None)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
                time.sleep(1)
        return []

    def was_decided(self, run_id: str, call_id: str) -> bool:
        """Whether a decision on the call was ever applied (a call asked again was decided before)."""
        rows = self.query(
            "SELECT 1 FROM run_events WHERE run_id = %s AND kind = 'decision'"
            " AND detail->>'tool_call_id' = %s LIMIT 1",
            (run_id, call_id),
        )
        return bool(rows)


class Soak:
    def __init__(
        self,
        args: argparse.Namespace,
        client: Client,
        standin: Any,
        stats: Stats,
        *,
        server: Any = None,
        oracle: Oracle | None = None,
        pauses: Pauses | None = None,
        slack_url: str = "",
    ) -> None:
        self.args = args
        self.client = client
        self.standin = standin
        self.stats = stats
        self.server = server
        self.oracle = oracle
        self.pauses = pauses or Pauses()
        self.slack_url = slack_url
        self.webhook_secret = os.environ.get("SIGNOFF_WEBHOOK_SECRET", "")
        self.slack_secret = os.environ.get("SIGNOFF_SLACK_SIGNING_SECRET", "")
        self.rng = random.Random(args.seed)
        self.rng_lock = threading.Lock()
        self.flows: list[Flow] = []
        self.flows_lock = threading.Lock()
        self.started = time.monotonic()
        self.launch_until = self.started + args.seconds * 0.7
        self.work_until = self.started + args.seconds * 0.85

    # -- randomness, shared by the flow threads (seeded: the plan is reproducible, the interleaving not)
    def _random(self) -> float:
        with self.rng_lock:
            return self.rng.random()

    def _new_flow(self, index: int) -> Flow:
        with self.rng_lock:
            roll = self.rng.random()
            kind = (
                "pair"
                if roll < self.args.pair_rate
                else "expiry"
                if roll < self.args.pair_rate + self.args.expiry_rate
                else "classic"
            )
            # Pair flows crash four times as often: the invocation running call A dies after writing,
            # while an outside decision on call B may be kept on the run.
            crash_rate = self.args.crash_rate * (4 if kind == "pair" else 1 if kind == "classic" else 0)
            crash = self.args.crashes and self.rng.random() < crash_rate
            confirm = crash or self.rng.random() < 0.6
            duplicates = self.rng.randint(1, 4)
            channel = self.rng.choice(OUTSIDE_CHANNELS)
            approve_b = self.rng.random() < 0.7
            approve = self.rng.random() < 0.85
        return Flow(
            index=index,
            amount=100_000 + index,
            session_id=f"soak-{self.args.seed}-{index}",
            crash=crash,
            confirm=confirm,
            duplicates=duplicates,
            kind=kind,
            agent="ledger" if kind == "classic" else "soak",
            channel=channel if kind == "pair" else None,
            approve_b=approve_b,
            approve=approve,
        )

    def _maybe_inject_fault(self) -> None:
        roll = self._random()
        kind, times = None, 0
        if roll < self.args.fault_rate * 0.15:
            # More failures in a row than a model call retries, even spread over every container's
            # concurrent calls: some run's model turn ends in ERROR.
            kind, times = "429", (MODEL_MAX_RETRIES + 1) * CONTAINERS
        elif roll < self.args.fault_rate:
            kind = ("429", "500", "malformed_tool_call")[int(self._random() * 3)]
            times = 1  # retried within the invocation
        if kind:
            self.standin.inject(kind, times)
            with self.stats.lock:
                self.stats.faults[kind] += times

    # -- the API calls of a flow
    def _run_path(self, flow: Flow) -> str:
        return f"/agents/{flow.agent}/runs/{flow.run_id}"

    def _continue(self, flow: Flow, decision: bool | None, call_id: str | None) -> tuple[int, Any]:
        fields = {"session_id": flow.session_id, "user_id": USER}
        if decision is not None and call_id is not None:
            fields["tools"] = json.dumps([{"tool_call_id": call_id, "confirmed": decision}])
        return self.client.post(self._run_path(flow) + "/continue", fields)

    def _get(self, flow: Flow) -> tuple[int, Any]:
        return self.client.get(f"{self._run_path(flow)}?session_id={flow.session_id}")

    def _at_once(
        self, flow: Flow, copies: int, decision: bool | None, call_id: str | None
    ) -> list[tuple[int, Any]]:
        """The same continue, ``copies`` times, released at the same moment."""
        if copies == 1:
            return [self._continue(flow, decision, call_id)]
        barrier = threading.Barrier(copies)
        answers: list[tuple[int, Any]] = [(0, None)] * copies

        def send(slot: int) -> None:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=30)
            answers[slot] = self._continue(flow, decision, call_id)

        threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(copies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        self.stats.add("duplicates_sent", copies - 1)
        return answers

    def _tally_conflicts(self, answers: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
        """Count the 409s; return the other answers (the winners)."""
        winners = []
        for status, body in answers:
            if status == 409:
                detail = body.get("detail") if isinstance(body, dict) else None
                self.stats.add("duplicates_rejected")
                with self.stats.lock:
                    self.stats.conflict_details[str(detail)] += 1
            else:
                winners.append((status, body))
        return winners

    def _refresh(self, flow: Flow) -> dict[str, Any] | None:
        status, body = self._get(flow)
        return body if status == 200 and isinstance(body, dict) else None

    def _find_run(self, flow: Flow) -> None:
        """A start that did not answer 200: find its run through the session, as a user would."""
        status, body = self.client.get(f"/sessions/{flow.session_id}/runs?user_id={USER}")
        if status == 200 and isinstance(body, list) and body:
            flow.run_id = body[0].get("run_id")

    def _start(self, flow: Flow, message: str) -> dict[str, Any] | None:
        status, body = self.client.post(
            f"/agents/{flow.agent}/runs", {"message": message, "session_id": flow.session_id, "user_id": USER}
        )
        self.stats.add("flows_started")
        self.stats.add(f"flows_{flow.kind}")
        if status == 200 and isinstance(body, dict):
            flow.run_id = body["run_id"]
            return body
        flow.notes.append(f"start answered {status}")
        for _ in range(5):
            self._find_run(flow)
            if flow.run_id is not None:
                return self._refresh(flow)
            time.sleep(1)
        return None

    def run_flow(self, flow: Flow) -> None:
        self._maybe_inject_fault()
        if flow.kind == "pair":
            self.run_pair_flow(flow)
            return
        if flow.kind == "expiry":
            self.run_expiry_flow(flow)
            return
        tool = "ledger_entry_crashy" if flow.crash else "ledger_entry"
        memo = "crash" if flow.crash else f"flow-{flow.index}"
        message = f"call {tool} " + json.dumps({"amount": flow.amount, "memo": memo})
        run = self._start(flow, message)
        if flow.run_id is None:
            return
        for _ in range(MAX_STEPS):
            if run is None or time.monotonic() > self.work_until:
                return
            status_now = run.get("status")
            if status_now in ("COMPLETED", "CANCELLED"):
                return
            if status_now == "PAUSED":
                run = self._decide(flow, run)
            elif status_now == "ERROR":
                flow.error_resumes += 1
                self.stats.add("error_resumes")
                status, body = self._continue(flow, None, None)
                run = body if status == 200 else self._refresh(flow)
            elif status_now == "RUNNING":
                run = self._recover(flow, run)
            elif status_now == "PENDING":  # handed to the resume worker: it runs it
                time.sleep(0.5)
                run = self._refresh(flow)
            else:
                flow.notes.append(f"unexpected status {status_now}")
                return

    def _pending_call(self, run: dict[str, Any]) -> str | None:
        for call in run.get("tools") or []:
            if call.get("requires_confirmation") and call.get("confirmed") is None:
                return call.get("tool_call_id")
        return None

    @staticmethod
    def _pending_calls(run: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            call
            for call in run.get("tools") or []
            if call.get("requires_confirmation") and call.get("confirmed") is None
        ]

    def _decide(self, flow: Flow, run: dict[str, Any]) -> dict[str, Any] | None:
        call_id = self._pending_call(run)
        if call_id is None:
            flow.notes.append("paused without a call awaiting confirmation")
            return None
        if flow.decided:
            # Paused again after the decision: a recovered run asks about a call whose outcome is
            # unknown. Say no, so that it never runs a second time.
            flow.recovery_pauses += 1
            self.stats.add("recovery_pauses")
            status, body = self._continue(flow, False, call_id)
            return body if status == 200 else self._refresh(flow)
        answers = self._at_once(flow, flow.duplicates, flow.confirm, call_id)
        others = self._tally_conflicts(answers)
        winners, recovered, unclear = [], [], []
        for status, body in others:
            if status == 502:  # the invocation died after its claim: the decision was applied
                winners.append((status, body))
            elif status in (200, 202) and self._asks_again(body, call_id):
                # A copy that found the run RUNNING past its lease (its winner had died, or was
                # slower than the lease) and recovered it: the decision in it was not applied, the
                # run asks about the call again. Not a second winner.
                recovered.append(body)
            elif status in (200, 202):
                winners.append((status, body))
            else:
                unclear.append((status, body))
        flow.winners += len(winners)
        if recovered:
            self.stats.add("copies_recovering_an_expired_lease", len(recovered))
        if len(winners) > 1:
            flow.notes.append("several winners: " + "; ".join(self._describe(s, b) for s, b in winners))
        if unclear:
            flow.notes.append("decision answered " + "; ".join(self._describe(s, b) for s, b in unclear))
        if winners:
            status, body = winners[0]
            flow.decided, flow.winner_confirmed = True, flow.confirm
            if status == 502:
                flow.crashed = True
                self.stats.add("crashes_observed")
                return recovered[0] if recovered else self._refresh(flow)
            return body
        if recovered:  # the winner died without answering us (cannot happen without a 502 above)
            flow.notes.append("recovered copies but no winner")
            return recovered[0]
        refreshed = self._refresh(flow)
        if unclear and refreshed is not None and refreshed.get("status") != "PAUSED":
            # A 5xx that does not say whether its claim went through; the run moved on, so it did.
            flow.decided, flow.winner_confirmed, flow.ambiguous = True, flow.confirm, True
        elif not unclear:
            flow.notes.append("every copy of the decision got 409")
        return refreshed

    @staticmethod
    def _asks_again(body: Any, call_id: str) -> bool:
        if not isinstance(body, dict) or body.get("status") != "PAUSED":
            return False
        calls = body.get("tools") or []
        return any(call.get("tool_call_id") == call_id and call.get("confirmed") is None for call in calls)

    @staticmethod
    def _describe(status: int, body: Any) -> str:
        if not isinstance(body, dict):
            return f"{status}"
        tools = [(t.get("tool_name"), t.get("state"), t.get("confirmed")) for t in body.get("tools") or []]
        return f"{status} {body.get('status') or body.get('detail') or body.get('message')} {tools}"

    def _recover(self, flow: Flow, run: dict[str, Any]) -> dict[str, Any] | None:
        """A run left RUNNING by a dead invocation: wait out its lease, then continue it (racing copies)."""
        time.sleep(LEASE_SECONDS + 0.3)
        with self.rng_lock:
            copies = self.rng.randint(1, 3)
        answers = self._at_once(flow, copies, None, None)
        others = self._tally_conflicts(answers)
        winners = [body for status, body in others if status == 200]
        for status, body in others:
            if status == 400 and isinstance(body, dict) and "tools is required" in str(body.get("detail")):
                # A copy that came in after the winner had paused the run again: it is asked for a
                # decision, and changes nothing.
                self.stats.add("late_recovery_copies_400")
            elif status != 200:
                flow.notes.append(f"recovery answered {status}: {body}")
        if len(winners) > 1:
            flow.notes.append(f"{len(winners)} recoveries won")
            self.stats.add("double_recoveries")
        return winners[0] if winners else self._refresh(flow)

    # -- outside decisions: signed webhook, Slack button, approval link, resume-queue message
    def _webhook(
        self, flow: Flow, call_id: str, approve: bool, event_id: str, *, want_answer: bool = False
    ) -> Any:
        from signoff.approvals import sign

        body = json.dumps(
            {
                "event_id": event_id,
                "decision": "approve" if approve else "reject",
                "approver": "soak-webhook",
                "run_id": flow.run_id,
                "tool_call_id": call_id,
                "note": f"soak flow {flow.index}",
            }
        ).encode()
        signature = sign(self.webhook_secret, int(time.time()), body)
        headers = {"Content-Type": "application/json", "Signoff-Signature": signature}
        status, answer = self.client.post_raw("/approvals/webhook", body, headers)
        if status == 202 and not (isinstance(answer, dict) and answer.get("deferred") is True):
            flow.notes.append(f"webhook 202 without deferred: {answer}")
            self.stats.add("webhook_202_without_deferred")
        return (status, answer) if want_answer else status

    def _slack(self, flow: Flow, call_id: str, approve: bool, action_ts: str) -> int:
        payload = {
            "type": "block_actions",
            "user": {"id": "USOAK", "username": "soakbot"},
            "response_url": f"{self.slack_url}/slack/{flow.index}",
            "trigger_id": f"soak.{flow.index}",
            "actions": [
                {
                    "action_id": "approve" if approve else "reject",
                    "value": json.dumps({"run_id": flow.run_id, "tool_call_id": call_id}),
                    "action_ts": action_ts,
                }
            ],
        }
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        timestamp = str(int(time.time()))
        digest = hmac.new(self.slack_secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": "v0=" + digest.hexdigest(),
        }
        status, answer = self.client.post_raw("/approvals/slack", body, headers)
        if status == 200 and isinstance(answer, dict) and "is kept" in str(answer.get("text")):
            self.stats.add("slack_kept_answers")
        return status

    def _link(self, flow: Flow, call_id: str, approve: bool) -> int:
        call = self.pauses.call(str(flow.run_id), call_id, timeout_s=5.0)
        url = call and call.get("approve_url" if approve else "reject_url")
        if not url:
            flow.notes.append(f"no approval link for {call_id}")
            self.stats.add("links_missing")
            return -1
        body = urllib.parse.urlencode({"note": f"soak flow {flow.index}"}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        status, _ = self.client.post_raw(urllib.parse.urlsplit(url).path, body, headers)
        return status

    def _approvals(self, flow: Flow, call_id: str, approve: bool) -> int:
        """The approvals API (the inbox's channel): resolve the call's record, bound to the digest the
        record shows, as an approver's page would send it."""
        status, run = self._get(flow)
        tools = run.get("tools") if status == 200 and isinstance(run, dict) else None
        approval_id = next(
            (t.get("approval_id") for t in tools or [] if t.get("tool_call_id") == call_id), None
        )
        if not approval_id:
            flow.notes.append(f"no approval record for {call_id} ({status})")
            self.stats.add("approval_records_missing")
            return -1
        status, record = self.client.get(f"/approvals/{approval_id}")
        if status != 200 or not isinstance(record, dict):
            return status
        body = json.dumps(
            {
                "status": "approved" if approve else "rejected",
                "resolution_data": {
                    "note": f"soak flow {flow.index}",
                    "args_digest": record.get("args_digest"),
                },
            }
        ).encode()
        status, answer = self.client.post_raw(
            f"/approvals/{approval_id}/resolve", body, {"Content-Type": "application/json"}
        )
        if status == 202 and "kept" not in str(isinstance(answer, dict) and answer.get("detail")):
            flow.notes.append(f"approvals 202 without saying it is kept: {answer}")
            self.stats.add("approvals_202_unexplained")
        return status

    def _queue(self, flow: Flow, call_id: str, approve: bool, event_id: str) -> int:
        self.server.queue.send(
            {
                "kind": "decision",
                "event_id": event_id,
                "run_id": flow.run_id,
                "tool_call_id": call_id,
                "decision": "approve" if approve else "reject",
                "approver": "soak-queue",
            }
        )
        return QUEUED

    def _outside(self, flow: Flow, channel: str, call_id: str, approve: bool, key: str) -> int:
        """One outside decision; ``key`` names the delivery (the same key again is a redelivery)."""
        if channel == "webhook":
            status = self._webhook(flow, call_id, approve, key)
        elif channel == "slack":
            status = self._slack(flow, call_id, approve, key)
        elif channel == "link":
            status = self._link(flow, call_id, approve)
        elif channel == "approvals":
            status = self._approvals(flow, call_id, approve)
        else:
            status = self._queue(flow, call_id, approve, key)
        self.stats.channel(channel, status)
        with self.stats.lock:
            flow.outside.append((channel, status))
        return status

    # -- pair flows: the owner confirms call A while an outside decision decides call B
    def run_pair_flow(self, flow: Flow) -> None:
        memo_a = f"pair-{flow.index}-a" + ("-crash" if flow.crash else "")  # dies after writing
        a = json.dumps({"amount": flow.amount, "memo": memo_a})
        b = json.dumps({"amount": flow.amount_b, "memo": f"pair-{flow.index}-b"})
        run = self._start(flow, f"call ledger_entry_slow {a} and call ledger_entry_slow {b}")
        if flow.run_id is None:
            return
        run = self._until_paused(flow, run)
        if run is None:
            return
        by_amount = {
            (call.get("tool_args") or {}).get("amount"): call.get("tool_call_id")
            for call in self._pending_calls(run)
        }
        flow.call_a, flow.call_b = by_amount.get(flow.amount), by_amount.get(flow.amount_b)
        if flow.call_a is None or flow.call_b is None:
            flow.notes.append(f"pair paused without both calls: {self._describe(200, run)}")
            self._drive(flow)
            return
        with self.rng_lock:
            delay = self.rng.uniform(0.0, 0.15)
            copies = [
                (self.rng.uniform(0.0, 0.25), self.rng.random() < 0.5) for _ in range(self.rng.randint(0, 2))
            ]
        owner = threading.Thread(target=self._owner_confirm, args=(flow,), daemon=True)
        owner.start()
        time.sleep(delay)
        key = f"soak-{self.args.seed}-{flow.index}-{uuid.uuid4().hex[:8]}"
        threads = []
        for extra_delay, replay in copies:
            # Duplicates: a redelivery of the same delivery, or the same decision sent again.
            copy_key = key if replay else f"{key}-{uuid.uuid4().hex[:6]}"

            def send_copy(wait: float = extra_delay, copy: str = copy_key) -> None:
                time.sleep(wait)
                self._outside(flow, str(flow.channel), str(flow.call_b), flow.approve_b, copy)

            threads.append(threading.Thread(target=send_copy, daemon=True))
        for thread in threads:
            thread.start()
        self._outside(flow, str(flow.channel), flow.call_b, flow.approve_b, key)
        self.stats.add("outside_duplicates_sent", len(copies))
        for thread in [owner, *threads]:
            thread.join(timeout=120)
        self._drive(flow)

    def _owner_confirm(self, flow: Flow) -> None:
        """The owner confirms call A through the API; a 409 or an unclear answer is retried.

        Nobody else decides A, so once A no longer waits after an unclear answer, that answer applied.
        """
        for _ in range(4):
            status, body = self._continue(flow, True, flow.call_a)
            if status == 202:  # near its deadline the invocation handed the run, decision recorded, off
                self.stats.add("continues_handed_off")
            if status in (200, 202, 502):
                flow.a_applied = True
                if status == 502:  # the invocation died after writing A's row (a crashing pair flow)
                    flow.crashed = True
                    self.stats.add("crashes_observed")
                return
            if status in UNCLEAR:
                flow.notes.append(f"owner continue answered {status}")
            elif status == 409:
                self.stats.add("owner_continue_retried_after_409")
                if isinstance(body, dict) and body.get("detail") == BUSY:
                    time.sleep(0.5)
            else:
                flow.notes.append(f"owner continue answered {status}: {str(body)[:200]}")
            run = None
            for _ in range(3):
                run = self._refresh(flow)
                if run is not None:
                    break
                time.sleep(0.5)
            if run is None:
                flow.a_unclear = flow.a_unclear or status in UNCLEAR
                continue
            if flow.call_a not in {c.get("tool_call_id") for c in self._pending_calls(run)}:
                if status in UNCLEAR or flow.a_unclear:
                    flow.a_applied = True
                else:
                    flow.notes.append(f"A decided by nobody after {status}")
                return

    def _until_paused(self, flow: Flow, run: dict[str, Any] | None) -> dict[str, Any] | None:
        """From a start: resume ERROR (model faults), wait out RUNNING/PENDING, until it pauses."""
        deadline = min(self.work_until, time.monotonic() + DRIVE_SECONDS)
        while run is not None and time.monotonic() < deadline:
            status_now = run.get("status")
            if status_now == "PAUSED":
                return run
            if status_now in ("COMPLETED", "CANCELLED"):
                flow.notes.append(f"run {status_now} before any decision")
                return None
            if status_now == "ERROR":
                flow.error_resumes += 1
                self.stats.add("error_resumes")
                status, body = self._continue(flow, None, None)
                run = body if status == 200 and isinstance(body, dict) else self._refresh(flow)
            else:
                time.sleep(0.3)
                run = self._refresh(flow)
        return None

    def _drive(self, flow: Flow) -> None:
        """Bring a pair or expiry flow's run to an end as its users would, within a budget."""
        deadline = min(self.work_until, time.monotonic() + DRIVE_SECONDS)
        run = self._refresh(flow)
        busy_since: float | None = None
        waiting_since: float | None = None
        resends = 0
        owner_retries = 0
        for _ in range(DRIVE_STEPS):
            if time.monotonic() > deadline:
                flow.notes.append(f"gave up driving the run ({run and run.get('status')})")
                return
            if run is None:
                time.sleep(0.3)
                run = self._refresh(flow)
                continue
            status_now = run.get("status")
            if status_now in ("COMPLETED", "CANCELLED"):
                return
            if status_now == "ERROR":
                busy_since = None
                flow.error_resumes += 1
                self.stats.add("error_resumes")
                status, body = self._continue(flow, None, None)
                run = body if status == 200 and isinstance(body, dict) else self._refresh(flow)
                continue
            if status_now in ("RUNNING", "PENDING"):
                now = time.monotonic()
                busy_since = busy_since or now
                if status_now == "RUNNING" and now - busy_since > LEASE_SECONDS + 2:
                    # Its invocation may have died: continue it (a live one answers 409).
                    status, body = self._continue(flow, None, None)
                    busy_since = None
                    if status == 200 and isinstance(body, dict):
                        run = body
                        continue
                time.sleep(0.3)
                run = self._refresh(flow)
                continue
            busy_since = None
            pending = self._pending_calls(run)
            if not pending:  # every call decided: the resume worker runs it
                time.sleep(0.3)
                run = self._refresh(flow)
                continue
            call_id = str(pending[0].get("tool_call_id"))
            if self.oracle is not None and self.oracle.was_decided(str(flow.run_id), call_id):
                # Asked again after a recovery (its outcome is unknown): say no, it never runs twice.
                flow.recovery_pauses += 1
                self.stats.add("recovery_pauses")
                status, body = self._continue(flow, False, call_id)
                run = body if status == 200 and isinstance(body, dict) else self._refresh(flow)
                continue
            if flow.kind == "pair" and call_id == flow.call_a and owner_retries < 3:
                owner_retries += 1
                self._owner_confirm(flow)
                run = self._refresh(flow)
                continue
            if flow.kind == "pair" and call_id == flow.call_b:
                now = time.monotonic()
                waiting_since = waiting_since or now
                accepted = any(status in (200, 202, QUEUED) for _, status in flow.outside)
                if (not accepted or now - waiting_since > 20) and resends < 3:
                    # No answer said it was taken (or it is long overdue): decide again, afresh.
                    resends += 1
                    waiting_since = now
                    self.stats.add("outside_resent")
                    channel = str(flow.channel) if flow.channel != "link" or resends < 2 else "webhook"
                    key = f"soak-{self.args.seed}-{flow.index}-r{resends}-{uuid.uuid4().hex[:6]}"
                    self._outside(flow, channel, call_id, flow.approve_b, key)
                else:
                    time.sleep(0.3)
                run = self._refresh(flow)
                continue
            # An expiry flow's call that nobody could decide in time: the expiry sweep ends it.
            time.sleep(0.5)
            run = self._refresh(flow)

    # -- expiry flows: decisions just before, at and after the approval's expiry
    def run_expiry_flow(self, flow: Flow) -> None:
        args = json.dumps({"amount": flow.amount, "memo": f"ttl-{flow.index}"})
        run = self._start(flow, f"call ledger_entry_ttl {args}")
        if flow.run_id is None:
            return
        run = self._until_paused(flow, run)
        pending = self._pending_calls(run) if run else []
        if not pending:
            self._drive(flow)
            return
        call_id = str(pending[0].get("tool_call_id"))
        flow.call_a = call_id
        detail = self.pauses.call(str(flow.run_id), call_id, timeout_s=5.0)
        if not detail or not detail.get("expires_at"):
            flow.notes.append("no expiry announced")
            self._drive(flow)
            return
        flow.expires_at = datetime.fromisoformat(str(detail["expires_at"]).replace("Z", "+00:00")).timestamp()
        with self.rng_lock:
            plan = [
                (self.rng.choice(("api", "webhook")), self.rng.uniform(-1.2, 1.0))
                for _ in range(1 if self.rng.random() < 0.5 else 2)
            ]

        def send(channel: str, offset: float) -> None:
            assert flow.expires_at is not None
            time.sleep(max(0.0, flow.expires_at + offset - time.time()))
            sent = time.time()
            if channel == "api":
                status, body = self._continue(flow, flow.approve, call_id)
            else:
                key = f"soak-{self.args.seed}-{flow.index}-ttl-{uuid.uuid4().hex[:8]}"
                status, body = self._webhook(flow, call_id, flow.approve, key, want_answer=True)
            self.stats.channel(f"expiry-{channel}", status)
            detail = body.get("detail") if isinstance(body, dict) else None
            text = str(detail)[:80] if isinstance(detail, str) else ""
            if sent >= (flow.expires_at or 0) and status not in (200, 202, 410):
                # Sent after the expiry and refused, but not as expired: say why.
                shown = (
                    "tool_call_id … is not a paused tool call" if text.startswith("tool_call_id") else text
                )
                with self.stats.lock:
                    self.stats.late_refusals[f"{channel} {status} {shown[:60]}"] += 1
            with self.stats.lock:
                flow.expiry_answers.append((channel, sent - flow.expires_at, status, text))

        threads = [threading.Thread(target=send, args=step, daemon=True) for step in plan]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        self._drive(flow)

    # -- the driver
    def worker(self) -> None:
        while True:
            with self.flows_lock:
                if len(self.flows) >= self.args.flows or time.monotonic() > self.launch_until:
                    return
                flow = self._new_flow(len(self.flows))
                self.flows.append(flow)
            try:
                self.run_flow(flow)
            except Exception as error:  # a bug in the soak itself: keep going, report it
                flow.notes.append(f"soak error: {error!r}")
                self.stats.add("soak_errors")

    def run(self, staller: Staller | None = None) -> None:
        threads = [
            threading.Thread(target=self.worker, name=f"flow-{i}", daemon=True)
            for i in range(self.args.concurrency)
        ]
        for thread in threads:
            thread.start()
        next_progress = time.monotonic() + 60
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=5)
                if time.monotonic() >= next_progress:  # a line a minute: a long run shows it is alive
                    next_progress += 60
                    self.progress(staller)

    def progress(self, staller: Staller | None) -> None:
        counts = self.stats.counts
        print(
            f"soak: {time.monotonic() - self.started:.0f} s, {counts['flows_started']} flows started "
            f"({counts['flows_classic']} classic, {counts['flows_pair']} pair, "
            f"{counts['flows_expiry']} expiry), "
            f"{staller.injected if staller else 0} stalls, {counts['soak_errors']} soak errors",
            flush=True,
        )


def stall_loop(soak: Soak, staller: Staller, stop: threading.Event) -> None:
    """Freeze PostgreSQL when the flows started cross planned points (seeded), at most ``budget`` times."""
    rng = random.Random(soak.args.seed * 7 + 1)
    flows = soak.args.flows
    points = sorted(rng.uniform(0.05, 0.9) * flows for _ in range(staller.budget))
    for point in points:
        while not stop.is_set() and len(soak.flows) < point:
            if time.monotonic() > soak.launch_until:
                return
            stop.wait(0.2)
        if stop.is_set():
            return
        staller.stall(rng.uniform(0.5, 3.0))


def db_figures(oracle: Oracle) -> dict[str, int]:
    rows = oracle.query(
        "SELECT"
        " count(*) FILTER (WHERE status = 'RUNNING' AND lease_until > now()),"
        " count(*) FILTER (WHERE status = 'RUNNING' AND (lease_until IS NULL OR lease_until <= now())),"
        " count(*) FILTER (WHERE status = 'PENDING'),"
        " count(*) FILTER (WHERE status = 'ERROR'),"
        " count(*) FILTER (WHERE deferred <> '[]'::jsonb),"
        " count(*) FILTER (WHERE status = 'PAUSED' AND NOT EXISTS (SELECT 1 FROM tool_calls t"
        "   WHERE t.run_id = runs.run_id AND t.state = 'awaiting_decision'))"
        " FROM runs"
    )
    live, stale, pending, error, deferred, decided_paused = rows[0]
    return {
        "running_live": live,
        "running_stale": stale,
        "pending": pending,
        "error": error,
        "deferred": deferred,
        "decided_paused": decided_paused,
    }


def settle(soak: Soak, server: Any, oracle: Oracle, until: float) -> dict[str, Any]:
    """After the flows: let the worker and the upkeep finish; then every ERROR run must resume."""
    soak.standin.clear()  # no fault is left for the runs settling
    result: dict[str, Any] = {"upkeep_passes": 0}
    figures = db_figures(oracle)
    while time.monotonic() < until:
        server.queue.wait_idle(max(0.1, min(20.0, until - time.monotonic())))
        server.run_upkeep()
        result["upkeep_passes"] += 1
        server.queue.wait_idle(max(0.1, min(20.0, until - time.monotonic())))
        figures = db_figures(oracle)
        busy = figures["running_live"] + figures["running_stale"] + figures["pending"]
        if busy == 0 and figures["deferred"] == 0 and figures["decided_paused"] == 0:
            break
        time.sleep(1.0)
    # Every ERROR run must be resumable by a continue (its owner's, as a user would).
    errors = oracle.query("SELECT run_id, agent_id, session_id FROM runs WHERE status = 'ERROR'")
    resumed, refused = 0, []
    for run_id, agent_id, session_id in errors:
        ok = False
        for _ in range(3):
            status, body = soak.client.post(
                f"/agents/{agent_id}/runs/{run_id}/continue", {"session_id": session_id, "user_id": USER}
            )
            if status == 200 and isinstance(body, dict) and body.get("status") != "ERROR":
                ok = True
                break
            time.sleep(1.0)
        if ok:
            resumed += 1
        else:
            refused.append(run_id)
    result["error_runs_found"] = len(errors)
    result["error_runs_resumed"] = resumed
    result["error_runs_not_resumable"] = refused
    # A final upkeep pass: nothing may be left busy, and no kept decision unapplied.
    for _ in range(3):
        server.queue.wait_idle(max(0.1, min(20.0, until - time.monotonic())))
        server.run_upkeep()
        result["upkeep_passes"] += 1
        server.queue.wait_idle(max(0.1, min(20.0, until - time.monotonic())))
        figures = db_figures(oracle)
        if figures["running_live"] + figures["pending"] == 0 or time.monotonic() > until:
            break
        time.sleep(1.0)
    result["figures"] = figures
    result["dead_letters"] = len(server.queue.dead_letters)
    return result


def classify(soak: Soak) -> Counter[str]:
    """GET every flow's run: completed / paused-left / errored / running-left / lost."""
    outcome: Counter[str] = Counter()
    lock = threading.Lock()
    pending = list(soak.flows)

    def work() -> None:
        while True:
            with lock:
                if not pending:
                    return
                flow = pending.pop()
            if flow.run_id is None:
                soak._find_run(flow)
            if flow.run_id is None:
                kind = "lost"
            else:
                status, body = soak._get(flow)
                if status == 404:
                    kind = "lost"
                elif status != 200:
                    kind = f"unreadable ({status})"
                else:
                    kind = {
                        "COMPLETED": "completed",
                        "PAUSED": "paused-left",
                        "ERROR": "errored",
                        "RUNNING": "running-left",
                    }.get(body.get("status"), str(body.get("status")).lower())
                    if kind == "completed" and flow.crashed and flow.recovery_pauses:
                        soak.stats.add("crashes_recovered")
            with lock:
                outcome[kind] += 1

    threads = [threading.Thread(target=work, daemon=True) for _ in range(CONTAINERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcome


@dataclass
class Audit:
    """What the database holds about decisions, for the checks."""

    executed: Counter[int]
    approved_calls: set[tuple[str, str]]  # (run_id, tool_call_id) with an applied approval
    unknown_calls: set[tuple[str, str]]  # calls whose outcome became unknown (0 or 1 execution)
    call_amounts: dict[tuple[str, str], int]
    call_states: dict[tuple[str, str], str]
    dropped: Counter[str]  # reason -> kept decisions dropped
    dropped_by_channel: Counter[str]
    applied_by_channel: Counter[str]


def read_audit(oracle: Oracle) -> Audit:
    executed = Counter(
        {
            amount: count
            for amount, count in oracle.query("SELECT amount, count(*) FROM test_ledger GROUP BY amount")
        }
    )
    decisions = oracle.query(
        "SELECT run_id, detail->>'tool_call_id', detail->>'decision', channel FROM run_events"
        " WHERE kind = 'decision'"
    )
    approved = {(run, call) for run, call, decision, _ in decisions if decision in ("approved", "succeeded")}
    applied_by_channel = Counter(str(channel) for _, _, _, channel in decisions)
    unknown = {
        (run, call)
        for run, call in oracle.query(
            "SELECT run_id, detail->>'tool_call_id' FROM run_events WHERE kind = 'outcome_unknown'"
        )
    }
    calls = oracle.query("SELECT run_id, tool_call_id, (args->>'amount')::bigint, state FROM tool_calls")
    dropped_rows = oracle.query(
        "SELECT channel, detail->>'reason' FROM run_events WHERE kind = 'deferred_decision_dropped'"
    )
    return Audit(
        executed=executed,
        approved_calls=approved,
        unknown_calls=unknown,
        call_amounts={(run, call): amount for run, call, amount, _ in calls if amount is not None},
        call_states={(run, call): state for run, call, _, state in calls},
        dropped=Counter(str(reason) for _, reason in dropped_rows),
        dropped_by_channel=Counter(str(channel) for channel, _ in dropped_rows),
        applied_by_channel=applied_by_channel,
    )


ACCEPTED = (200, 202)
UNCLEAR = (0, 500, 502, 503, 504)


def check_pair(flow: Flow, audit: Audit, problems: Counter[str], notes: list[str]) -> None:
    run = str(flow.run_id)
    if flow.call_a is None or flow.call_b is None:
        return
    # A: the owner's confirmation.
    ran_a = audit.executed.get(flow.amount, 0)
    unknown_a = (run, flow.call_a) in audit.unknown_calls
    if flow.a_applied:
        # A crashing tool writes before its invocation dies: its outcome is unknown to the run, not to us.
        allowed_a = (0, 1) if unknown_a and not flow.crash else (1, 1)
    elif flow.a_unclear:
        allowed_a = (0, 1)
    else:
        allowed_a = (0, 0)
    if not allowed_a[0] <= ran_a <= allowed_a[1]:
        problems["pair call A ran differently from the owner's answers"] += 1
        notes.append(f"flow {flow.index} (run {run}): A ran {ran_a}x, allowed {allowed_a}")
    # B: the outside decision(s), all saying the same.
    ran_b = audit.executed.get(flow.amount_b, 0)
    statuses = [status for _, status in flow.outside]
    accepted = any(status in ACCEPTED or status == QUEUED for status in statuses)
    unclear = any(status in UNCLEAR for status in statuses)
    unknown_b = (run, flow.call_b) in audit.unknown_calls
    if flow.approve_b and accepted:
        allowed_b = (0, 1) if unknown_b else (1, 1)
    elif flow.approve_b and unclear:
        allowed_b = (0, 1)
    else:
        allowed_b = (0, 0)
    if not allowed_b[0] <= ran_b <= allowed_b[1]:
        problems["pair call B ran differently from the outside answers"] += 1
        notes.append(
            f"flow {flow.index} (run {run}, {flow.channel}, approve={flow.approve_b}): B ran {ran_b}x, "
            f"allowed {allowed_b}, answers {statuses}"
        )
    if accepted and audit.call_states.get((run, flow.call_b)) == "awaiting_decision" and not unknown_b:
        problems["outside decisions accepted (200/202/queued) but never applied"] += 1
        notes.append(f"flow {flow.index} (run {run}): B still awaits a decision; answers {statuses}")


def check_expiry(flow: Flow, audit: Audit, problems: Counter[str], notes: list[str], stats: Stats) -> None:
    if flow.expires_at is None:
        return
    ran = audit.executed.get(flow.amount, 0)
    answers = flow.expiry_answers
    others_took_it = any(status in ACCEPTED or status in UNCLEAR for _, _, status, _ in answers)
    for channel, offset, status, text in answers:
        if (
            offset >= 0
            and status in (400, 409)
            and ("not a paused tool call" in text or "already decided" in text)
            and not others_took_it
        ):
            # Nobody decided the call: it expired (and the sweep ran). The answer must say so, 410.
            problems["decisions on an expired call answered 'not paused/already decided' instead of 410"] += 1
            notes.append(f"flow {flow.index} (run {flow.run_id}): {channel} {offset:+.3f}s {status} {text}")
        bucket = "before" if offset < -0.25 else "at" if offset <= 0.25 else "after"
        with stats.lock:
            stats.expiry[f"{bucket} expiry ({channel})"][str(status)] += 1
        if offset >= 0 and status in ACCEPTED:
            problems["decisions sent at/after expiry and accepted"] += 1
            notes.append(f"flow {flow.index} (run {flow.run_id}): {channel} {offset:+.3f}s answered {status}")
    approvals = [status for _, _, status, _ in answers] if flow.approve else []
    applied = any(status == 200 for status in approvals)
    maybe = any(status == 202 or status in UNCLEAR for status in approvals)
    unknown = (str(flow.run_id), str(flow.call_a)) in audit.unknown_calls
    if ran and not flow.approve:
        problems["expiry flow executed after rejections"] += 1
        notes.append(f"flow {flow.index} (run {flow.run_id}): rejected but ran {ran}x, answers {answers}")
    elif ran and not (applied or maybe):
        if any(status == 410 for status in approvals):
            problems["decisions refused 410 that still executed"] += 1
        else:
            problems["expiry flow executed without an accepted decision"] += 1
        notes.append(f"flow {flow.index} (run {flow.run_id}): ran {ran}x, answers {answers}")
    elif applied and ran == 0 and not unknown:
        problems["expiry flow approved (200) but never executed"] += 1
        notes.append(f"flow {flow.index} (run {flow.run_id}): approved but ran 0x, answers {answers}")


def report(
    soak: Soak,
    outcome: Counter[str],
    audit: Audit,
    settled: dict[str, Any],
    staller: Staller | None,
    replies: SlackReplies | None,
    wall_s: float,
) -> int:
    stats = soak.stats.counts
    flows = soak.flows
    executed = audit.executed
    classic = [flow for flow in flows if flow.kind == "classic"]
    known_amounts = {flow.amount for flow in flows} | {flow.amount_b for flow in flows if flow.kind == "pair"}
    expected = sum(1 for flow in classic if flow.winner_confirmed)
    observed = sum(executed.get(flow.amount, 0) for flow in classic)
    twice = sorted(amount for amount, count in executed.items() if count > 1)
    wrong = [flow for flow in classic if executed.get(flow.amount, 0) != (1 if flow.winner_confirmed else 0)]
    strays = sum(count for amount, count in executed.items() if amount not in known_amounts)
    # Every execution must follow from an approval the audit log holds.
    approved_amounts = Counter(
        audit.call_amounts[call] for call in audit.approved_calls if call in audit.call_amounts
    )
    unapproved = sum(max(0, count - approved_amounts.get(amount, 0)) for amount, count in executed.items())
    problems: Counter[str] = Counter()
    notes: list[str] = []
    for flow in flows:
        if flow.kind == "pair":
            check_pair(flow, audit, problems, notes)
        elif flow.kind == "expiry":
            check_expiry(flow, audit, problems, notes, soak.stats)
    many_winners = [flow for flow in classic if flow.winners > 1]
    double_recoveries = stats["double_recoveries"]
    crashes_planned = sum(1 for flow in flows if flow.crash)
    lost = outcome.get("lost", 0)
    figures = settled.get("figures", {})
    not_resumable = settled.get("error_runs_not_resumable", [])
    stuck_running = figures.get("running_live", 0) + figures.get("running_stale", 0)
    stuck_pending = figures.get("pending", 0)
    decided_paused = figures.get("decided_paused", 0)
    deferred_left = figures.get("deferred", 0)
    outside_202 = sum(
        counter.get(202, 0) for name, counter in soak.stats.channels.items() if name in OUTSIDE_CHANNELS
    )
    dropped = sum(audit.dropped.values())
    refused_410_ran = problems.get("decisions refused 410 that still executed", 0)
    rows: list[tuple[str, Any]] = [
        ("flows planned / started", f"{soak.args.flows} / {stats['flows_started']}"),
        (
            "  classic / pair / expiry",
            f"{stats['flows_classic']} / {stats['flows_pair']} / {stats['flows_expiry']}",
        ),
        ("  completed", outcome.get("completed", 0)),
        ("  paused-left", outcome.get("paused-left", 0)),
        ("  errored", outcome.get("errored", 0)),
    ]
    rows += [
        (f"  {kind}", count)
        for kind, count in sorted(outcome.items())
        if kind not in ("completed", "paused-left", "errored", "lost")
    ]
    rows += [
        ("FLOWS LOST (must be 0)", lost),
        ("TOOLS RUN TWICE (must be 0)", len(twice)),
        ("RUNS LEFT RUNNING after settling (must be 0)", stuck_running),
        ("RUNS LEFT PENDING after settling (must be 0)", stuck_pending),
        ("RUNS PAUSED, ALL DECIDED, NOT RESUMED (must be 0)", decided_paused),
        ("ERROR RUNS NOBODY CAN RESUME (must be 0)", len(not_resumable)),
        ("KEPT DECISIONS LEFT UNAPPLIED (must be 0)", deferred_left),
        ("DECISIONS REFUSED 410 THAT EXECUTED (must be 0)", refused_410_ran),
        ("EXECUTIONS WITHOUT AN APPLIED APPROVAL (must be 0)", unapproved),
        ("outside decisions answered 202 (kept)", outside_202),
        ("  and Slack presses answered 200 'kept'", stats["slack_kept_answers"]),
        ("kept decisions dropped with a reason", dropped),
    ]
    rows += [(f"  dropped: {reason[:70]}", count) for reason, count in audit.dropped.most_common()]
    rows += [
        (
            "  dropped by channel",
            ", ".join(f"{k}:{v}" for k, v in sorted(audit.dropped_by_channel.items())) or "-",
        ),
        (
            "postgres stalls injected",
            f"{staller.injected} ({staller.seconds:.1f} s frozen)" if staller else 0,
        ),
        ("outside decisions per channel (status:count)", ""),
    ]
    for name in (*OUTSIDE_CHANNELS, "expiry-api", "expiry-webhook"):
        counter = soak.stats.channels.get(name, Counter())
        shown = ", ".join(f"{'queued' if k == QUEUED else k}:{v}" for k, v in sorted(counter.items()))
        rows.append((f"  {name} (sent {sum(counter.values())})", shown or "-"))
    rows += [
        (
            "decisions applied, by channel (audit)",
            ", ".join(f"{k}:{v}" for k, v in sorted(audit.applied_by_channel.items())),
        ),
        (
            "slack deciders told",
            ", ".join(f"{k}:{v}" for k, v in sorted(replies.kinds.items())) if replies else "-",
        ),
        (
            "outside duplicates sent / resent",
            f"{stats['outside_duplicates_sent']} / {stats['outside_resent']}",
        ),
        ("owner continues retried after 409", stats["owner_continue_retried_after_409"]),
        ("owner continues handed off at the deadline (202)", stats["continues_handed_off"]),
        ("expiry decisions (offset bucket: status:count)", ""),
    ]
    for bucket, counter in sorted(soak.stats.expiry.items()):
        rows.append((f"  {bucket}", ", ".join(f"{k}:{v}" for k, v in sorted(counter.items()))))
    rows.append(("sent after expiry, refused other than 410", sum(soak.stats.late_refusals.values())))
    rows += [(f"  {reason}", count) for reason, count in soak.stats.late_refusals.most_common()]
    rows += [
        (
            "decisions confirmed / rejected (classic)",
            f"{expected} / {sum(1 for f in classic if f.decided) - expected}",
        ),
        ("tool executions expected (classic)", expected),
        (
            "tool executions observed (classic)",
            f"{observed}" + ("  (MISMATCH)" if observed != expected else ""),
        ),
        ("tool executions observed (all)", sum(executed.values())),
        ("flows with a wrong execution count (classic)", len(wrong)),
        ("calls with an unknown outcome (0 or 1 allowed)", len(audit.unknown_calls)),
        ("decisions answered by more than one copy", len(many_winners)),
        ("recoveries answered by more than one copy", double_recoveries),
        ("copies that recovered an expired lease", stats["copies_recovering_an_expired_lease"]),
        ("duplicate continues sent", stats["duplicates_sent"]),
        ("duplicates rejected with 409", stats["duplicates_rejected"]),
        ("late recovery copies answered 400 (paused)", stats["late_recovery_copies_400"]),
        ("busy 409s / without Retry-After", f"{stats['busy_409']} / {stats['busy_409_without_retry_after']}"),
        ("model faults injected", sum(soak.stats.faults.values())),
        ("  by kind", ", ".join(f"{k}x{v}" for k, v in sorted(soak.stats.faults.items())) or "-"),
        ("runs resumed from ERROR (flows)", stats["error_resumes"]),
        ("recovery pauses answered no", stats["recovery_pauses"]),
        ("crashes planned / observed (502)", f"{crashes_planned} / {stats['crashes_observed']}"),
        ("crashes recovered (re-asked, rejected, completed)", stats["crashes_recovered"]),
        (
            "ERROR runs after settling / resumed by a continue",
            f"{settled.get('error_runs_found', 0)} / {settled.get('error_runs_resumed', 0)}",
        ),
        (
            "upkeep passes while settling / dead letters",
            f"{settled.get('upkeep_passes', 0)} / {settled.get('dead_letters', 0)}",
        ),
        ("HTTP statuses", ", ".join(f"{k}:{v}" for k, v in sorted(soak.stats.statuses.items()))),
        ("409 details", ", ".join(f"{k!r}:{v}" for k, v in soak.stats.conflict_details.most_common())),
        ("soak errors (bugs in this script)", stats["soak_errors"]),
        ("wall time", f"{wall_s:.1f} s"),
        ("flows/s", f"{stats['flows_started'] / wall_s:.1f}"),
    ]
    width = max(len(name) for name, _ in rows)
    args = soak.args
    print(
        f"\nSoak figures (seed {args.seed}, {CONTAINERS} containers, concurrency {args.concurrency}, "
        f"upkeep every {UPKEEP_SECONDS:g} s)"
    )
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    noted = [flow for flow in flows if flow.notes]
    for flow in noted[:10]:
        print(
            f"  note: flow {flow.index} (run {flow.run_id}): {'; '.join(flow.notes)[:400]}", file=sys.stderr
        )
    for line in notes[:20]:
        print(f"  problem: {line}", file=sys.stderr)
    failures = []
    if observed != expected or wrong:
        failures.append("classic tool executions differ from the winning decisions")
    if strays:
        failures.append(f"{strays} execution(s) of amounts no flow asked for")
    if twice:
        failures.append(f"{len(twice)} tool call(s) executed more than once (amounts {twice[:10]})")
    if unapproved:
        failures.append(f"{unapproved} execution(s) without an applied approval in the audit log")
    for problem, count in sorted(problems.items()):
        failures.append(f"{count} x {problem}")
    if lost:
        failures.append(f"{lost} run(s) lost")
    if stuck_running or stuck_pending or decided_paused:
        failures.append(
            f"runs stuck after settling: {stuck_running} RUNNING, {stuck_pending} PENDING, "
            f"{decided_paused} PAUSED with every call decided"
        )
    if not_resumable:
        failures.append(f"{len(not_resumable)} ERROR run(s) a continue could not resume: {not_resumable[:5]}")
    if deferred_left:
        failures.append(f"{deferred_left} run(s) still hold kept decisions after the final upkeep")
    if stats["busy_409_without_retry_after"]:
        failures.append(f"{stats['busy_409_without_retry_after']} busy 409(s) without Retry-After")
    if stats["webhook_202_without_deferred"]:
        failures.append("webhook 202 without deferred: true")
    if staller is not None and staller.failures:
        failures.append(f"stall injection failed: {staller.failures[:3]}")
    if many_winners or double_recoveries:
        # Not a lost guarantee (the executions are checked above), but not "one answer, the rest
        # 409" either: a late copy of a decision found the run in ERROR (or RUNNING past its lease)
        # and resumed it, its decisions ignored.
        print(
            f"WARN: {len(many_winners)} decision(s) and {double_recoveries} recovery continue(s) were "
            "answered by more than one copy (a late copy resumed the run instead of getting 409)",
            file=sys.stderr,
        )
    if stats["soak_errors"]:
        print(
            f"WARN: {stats['soak_errors']} flow(s) hit a bug in the soak itself (see notes)", file=sys.stderr
        )
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    if not failures:
        print(
            "OK: every accepted decision ran its tool exactly once and no refused one ran; nothing ran "
            "twice; no run was lost or left stuck; every kept decision was applied or dropped with a reason."
        )
    return 1 if failures else 0


def _configure_environment() -> None:
    os.environ.pop("OPENAI_API_KEY", None)  # never send a real key to the stand-in
    for name in ("SIGNOFF_EVENT_BUS", "SIGNOFF_NOTIFY_URL", "SIGNOFF_SLACK_WEBHOOK_URL"):
        os.environ.pop(name, None)  # pauses go to the local notifier (the approval links)
    os.environ.update(
        {
            "OPENAI_API_KEY": "standin",
            "SIGNOFF_AGENTS_MODULE": "tests.support.agents",
            "SIGNOFF_LEASE_SECONDS": str(LEASE_SECONDS),
            "SIGNOFF_MODEL_MAX_RETRIES": str(MODEL_MAX_RETRIES),
            "SIGNOFF_MODEL_TIMEOUT_S": "10",
            "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "CRITICAL"),
            "POWERTOOLS_METRICS_NAMESPACE": "SignoffSoak",
            "POWERTOOLS_METRICS_DISABLED": "true",  # no metric lines on stdout
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    paths = [
        str(ROOT / "layers" / "signoff"),
        str(ROOT / "layers" / "agents"),
        str(ROOT / "devtools"),
        str(ROOT),
    ]
    existing = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths + existing))


def _quiet(log_path: Path) -> None:
    """Send this process's (and the containers') stdout/stderr to a log file; keep the console for us.

    The handlers log and emit metrics on stdout, as on Lambda; thousands of invocations would bury the
    figures. ``sys.stdout``/``sys.stderr`` of this script keep writing to the console.
    """
    console_out = os.fdopen(os.dup(1), "w", buffering=1)
    console_err = os.fdopen(os.dup(2), "w", buffering=1)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.stdout, sys.stderr = console_out, console_err


def _watchdog(limit_s: float, cleanup: dict[str, Any]) -> None:
    def fire() -> None:
        print(f"FAIL: the soak overran its hard limit of {limit_s:.0f} s", file=sys.stderr, flush=True)
        staller = cleanup.get("staller")
        if staller is not None:
            staller.resume_all()  # never leave postgres frozen
        # The containers exit when this process does (their pipe closes); postgres must be told.
        postgres = cleanup.get("postgres")
        if postgres is not None:
            stopper = threading.Thread(target=cleanup["stop_postgres"], args=(postgres,), daemon=True)
            stopper.start()
            stopper.join(10)
        os._exit(3)

    timer = threading.Timer(limit_s, fire)
    timer.daemon = True
    timer.start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    env_flows = os.environ.get("SOAK_FLOWS")
    parser.add_argument(
        "--flows",
        type=int,
        default=int(env_flows) if env_flows else DEFAULT_FLOWS,
        help=f"flows to run (default $SOAK_FLOWS or {DEFAULT_FLOWS})",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="hard time bound, the watchdog's (default 300 + 0.35 s per flow)",
    )
    parser.add_argument("--concurrency", type=int, default=10, help="flows in flight (default 10)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument(
        "--crash-rate", type=float, default=0.02, help="share of classic flows that crash (0.02)"
    )
    parser.add_argument("--no-crashes", dest="crashes", action="store_false", help="inject no crashes")
    parser.add_argument("--pair-rate", type=float, default=0.25, help="share of pair flows (0.25)")
    parser.add_argument("--expiry-rate", type=float, default=0.15, help="share of expiry flows (0.15)")
    parser.add_argument(
        "--stalls",
        type=int,
        default=None,
        help="postgres stalls to inject (default flows/200, at most 100; 0 for none)",
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.04,
        help="share of flows that inject a model fault (0.04); faults hit whichever model call comes next",
    )
    parser.add_argument("--verbose", action="store_true", help="show the server's and the handlers' logs")
    parser.add_argument("--keep", action="store_true", help="keep the database folder and the server log")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1_000_000)
    if args.seconds is None:
        args.seconds = default_seconds(args.flows)
    if args.stalls is None:
        args.stalls = min(100, max(1, args.flows // 200))
    if args.flows < 1 or args.concurrency < 1 or args.seconds <= 60:
        parser.error("--flows and --concurrency must be positive and --seconds more than 60")
    if args.pair_rate < 0 or args.expiry_rate < 0 or args.pair_rate + args.expiry_rate > 1:
        parser.error("--pair-rate and --expiry-rate must be shares that add up to at most 1")

    t0 = time.monotonic()
    # The phases: launching flows, finishing them, settling (upkeep, worker, ERROR resumes), then reading
    # every flow's run back; the watchdog ends the process at --seconds whatever happens.
    settle_s, read_s = 180.0, 60.0 + 0.02 * args.flows
    scale = min(1.0, args.seconds * 0.5 / (settle_s + read_s))
    settle_s, read_s = settle_s * scale, read_s * scale
    work_until = t0 + args.seconds - settle_s - read_s
    launch_until = t0 + (args.seconds - settle_s - read_s) * 0.9
    settle_until = t0 + args.seconds - read_s
    cleanup: dict[str, Any] = {}
    _watchdog(args.seconds, cleanup)
    _configure_environment()
    temp = Path(tempfile.mkdtemp(prefix="signoff-soak-"))
    if args.verbose:
        os.environ["POWERTOOLS_LOG_LEVEL"] = "INFO"
    else:
        _quiet(temp / "server.log")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        filename=None if args.verbose else temp / "server.log",
    )

    from signoff_dev.devserver import DevServer
    from signoff_dev.postgres import start_postgres, stop_postgres
    from signoff_dev.standin import StandinModel
    from tests.support import agents

    if args.crashes and not hasattr(agents, "ledger_entry_crashy"):
        print("tests.support.agents has no ledger_entry_crashy: running without crashes", file=sys.stderr)
        args.crashes = False
    if not hasattr(agents, "ledger_entry_slow"):
        print("tests.support.agents has no soak agent: classic flows only", file=sys.stderr)
        args.pair_rate = args.expiry_rate = 0.0

    postgres = standin = server = replies = None
    stop_stalls = threading.Event()
    staller: Staller | None = None
    code = 2

    def on_signal(signum: int, frame: Any) -> None:
        stop_stalls.set()
        if staller is not None:
            staller.resume_all()
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        postgres, database_url = start_postgres(temp / "pgdata")
        cleanup.update(postgres=postgres, stop_postgres=stop_postgres)
        staller = Staller(temp / "pgdata", args.stalls, stop_stalls)
        cleanup["staller"] = staller
        atexit.register(staller.resume_all)
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as conn:
            # Created up front: concurrent CREATE TABLE IF NOT EXISTS can collide in the catalog.
            conn.execute(
                "CREATE TABLE IF NOT EXISTS test_ledger (id serial PRIMARY KEY, amount int, memo text)"
            )
        standin = StandinModel()
        standin.retry_after_ms = 20  # 429s ask for a short wait, so injected ones cost little time
        standin.requests = deque(maxlen=100)  # the stand-in keeps every request; 20,000 flows would pile up
        model_url = standin.start()
        os.environ["SIGNOFF_DATABASE_URL"] = database_url
        replies = SlackReplies()
        replies.start()
        server = DevServer(
            ROOT,
            port=0,
            database_url=database_url,
            model_base_url=model_url,
            containers=CONTAINERS,
            upkeep_seconds=UPKEEP_SECONDS,
            announce=False,
        )
        base_url = server.start()
        assert base_url.startswith("http://127.0.0.1:")
        assert server.queue is not None and server.notifier is not None, "needs the local queue and notifier"
        pauses = Pauses()
        server.notifier.record = pauses.record  # type: ignore[method-assign]
        print(
            f"soak: {args.flows} flows (pair {args.pair_rate:g}, expiry {args.expiry_rate:g}), concurrency "
            f"{args.concurrency}, seed {args.seed}, {CONTAINERS} containers, {args.stalls} postgres stalls, "
            f"bound {args.seconds:.0f} s, server {base_url}",
            flush=True,
        )
        stats = Stats()
        oracle = Oracle(database_url)
        soak = Soak(
            args,
            Client(base_url, stats),
            standin,
            stats,
            server=server,
            oracle=oracle,
            pauses=pauses,
            slack_url=replies.url,
        )
        soak.started = t0
        soak.launch_until = launch_until
        soak.work_until = work_until
        stall_thread = threading.Thread(
            target=stall_loop, args=(soak, staller, stop_stalls), name="stalls", daemon=True
        )
        stall_thread.start()
        soak.run(staller)
        stop_stalls.set()
        stall_thread.join(10)
        staller.resume_all()
        settled = settle(soak, server, oracle, settle_until)
        outcome = classify(soak)
        audit = read_audit(oracle)
        code = report(soak, outcome, audit, settled, staller, replies, time.monotonic() - t0)
        return code
    finally:
        stop_stalls.set()
        if staller is not None:
            staller.resume_all()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if server is not None:
            server.stop()
        if standin is not None:
            standin.stop()
        if replies is not None:
            replies.stop()
        if postgres is not None:
            stop_postgres(postgres)
        if args.keep or code != 0:
            print(f"kept: {temp} (pgdata/, server.log)", file=sys.stderr)
        else:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
