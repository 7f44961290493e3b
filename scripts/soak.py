"""`make soak`: thousands of sign-off flows with duplicate and concurrent continues, rejections, model faults
and invocation crashes, against the local server (warm containers in worker processes) and real PostgreSQL.

Each flow starts a run of the ``ledger`` test agent whose confirmed tool inserts one row, tagged with the
flow's unique amount, into ``test_ledger``; the database therefore counts every execution, whichever
process ran it. The script prints the figures and exits non-zero when a tool ran a different number of
times than the winning decisions ask for, ran twice for one flow, or a run was lost. Loopback only;
bounded by ``--flows`` and ``--seconds`` (a watchdog ends the process 30 s past ``--seconds``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _entry in (ROOT / "layers" / "agents", ROOT / "layers" / "signoff", ROOT):
    if str(_entry) not in sys.path:
        sys.path.insert(0, str(_entry))

LEASE_SECONDS = 2
MODEL_MAX_RETRIES = 3
CONTAINERS = 4
USER = "soak"
MAX_STEPS = 12  # requests a flow may make after its start before it gives up (it is then classified)

CONFLICTS = ("run is already running", "run is already continued")


@dataclass
class Flow:
    index: int
    amount: int
    session_id: str
    crash: bool
    confirm: bool
    duplicates: int
    run_id: str | None = None
    decided: bool = False
    winner_confirmed: bool | None = None  # the decision that won, as the client saw it
    ambiguous: bool = False  # the decision's winner got an answer that does not say whether it applied
    winners: int = 0
    crashed: bool = False  # a continue answered 502
    recovery_pauses: int = 0
    error_resumes: int = 0
    notes: list[str] = field(default_factory=list)


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.conflict_details: Counter[str] = Counter()

    def add(self, name: str, value: int = 1) -> None:
        with self.lock:
            self.counts[name] += value


class Client:
    """Plain urllib over loopback, as a user's script would call the API."""

    def __init__(self, base_url: str, stats: Stats) -> None:
        self.base_url = base_url
        self.stats = stats

    def _send(self, request: urllib.request.Request) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(request, timeout=90) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except (urllib.error.URLError, OSError) as error:
            status, raw = 0, json.dumps({"client_error": repr(error)}).encode()
        with self.stats.lock:
            self.stats.statuses[status] += 1
        try:
            return status, json.loads(raw or b"null")
        except ValueError:
            return status, {"raw": raw[:200].decode(errors="replace")}

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

    def get(self, path: str) -> tuple[int, Any]:
        return self._send(urllib.request.Request(self.base_url + path, method="GET"))


class Soak:
    def __init__(self, args: argparse.Namespace, client: Client, standin: Any, stats: Stats) -> None:
        self.args = args
        self.client = client
        self.standin = standin
        self.stats = stats
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
            crash = self.args.crashes and self.rng.random() < self.args.crash_rate
            confirm = crash or self.rng.random() < 0.6
            duplicates = self.rng.randint(1, 4)
        return Flow(
            index=index,
            amount=100_000 + index,
            session_id=f"soak-{self.args.seed}-{index}",
            crash=crash,
            confirm=confirm,
            duplicates=duplicates,
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
        return f"/agents/ledger/runs/{flow.run_id}"

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

    def run_flow(self, flow: Flow) -> None:
        self._maybe_inject_fault()
        tool = "ledger_entry_crashy" if flow.crash else "ledger_entry"
        memo = "crash" if flow.crash else f"flow-{flow.index}"
        message = f"call {tool} " + json.dumps({"amount": flow.amount, "memo": memo})
        status, body = self.client.post(
            "/agents/ledger/runs", {"message": message, "session_id": flow.session_id, "user_id": USER}
        )
        self.stats.add("flows_started")
        run = body if status == 200 and isinstance(body, dict) else None
        if run is not None:
            flow.run_id = run["run_id"]
        else:
            flow.notes.append(f"start answered {status}")
            self._find_run(flow)
            if flow.run_id is None:
                return
            run = self._refresh(flow)
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
            else:
                flow.notes.append(f"unexpected status {status_now}")
                return

    def _pending_call(self, run: dict[str, Any]) -> str | None:
        for call in run.get("tools") or []:
            if call.get("requires_confirmation") and call.get("confirmed") is None:
                return call.get("tool_call_id")
        return None

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

    def run(self) -> None:
        threads = [
            threading.Thread(target=self.worker, name=f"flow-{i}", daemon=True)
            for i in range(self.args.concurrency)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


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


def ledger_counts(database_url: str) -> Counter[int]:
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT amount, count(*) FROM test_ledger GROUP BY amount").fetchall()
    return Counter({amount: count for amount, count in rows})


def report(soak: Soak, outcome: Counter[str], executed: Counter[int], wall_s: float) -> int:
    stats = soak.stats.counts
    flows = soak.flows
    by_amount = {flow.amount: flow for flow in flows}
    expected = sum(1 for flow in flows if flow.winner_confirmed)
    observed = sum(executed.values())
    twice = [flow for flow in flows if executed.get(flow.amount, 0) > 1]
    wrong = [flow for flow in flows if executed.get(flow.amount, 0) != (1 if flow.winner_confirmed else 0)]
    strays = sum(count for amount, count in executed.items() if amount not in by_amount)
    many_winners = [flow for flow in flows if flow.winners > 1]
    double_recoveries = stats["double_recoveries"]
    crashes_planned = sum(1 for flow in flows if flow.crash)
    lost = outcome.get("lost", 0)
    rows = [
        ("flows planned / started", f"{soak.args.flows} / {stats['flows_started']}"),
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
        ("  lost (must be 0)", lost),
        ("decisions confirmed / rejected", f"{expected} / {sum(1 for f in flows if f.decided) - expected}"),
        ("tool executions expected", expected),
        ("tool executions observed", f"{observed}" + ("  (MISMATCH)" if observed != expected else "")),
        ("flows executed more than once", len(twice)),
        ("flows with a wrong execution count", len(wrong)),
        ("decisions answered by more than one copy", len(many_winners)),
        ("recoveries answered by more than one copy", double_recoveries),
        ("copies that recovered an expired lease", stats["copies_recovering_an_expired_lease"]),
        ("duplicate continues sent", stats["duplicates_sent"]),
        ("duplicates rejected with 409", stats["duplicates_rejected"]),
        ("late recovery copies answered 400 (paused)", stats["late_recovery_copies_400"]),
        ("model faults injected", sum(soak.stats.faults.values())),
        ("  by kind", ", ".join(f"{k}x{v}" for k, v in sorted(soak.stats.faults.items())) or "-"),
        ("runs resumed from ERROR", stats["error_resumes"]),
        ("crashes planned / observed (502)", f"{crashes_planned} / {stats['crashes_observed']}"),
        ("crashes recovered (re-asked, rejected, completed)", stats["crashes_recovered"]),
        ("HTTP statuses", ", ".join(f"{k}:{v}" for k, v in sorted(soak.stats.statuses.items()))),
        ("409 details", ", ".join(f"{k!r}:{v}" for k, v in soak.stats.conflict_details.most_common())),
        ("wall time", f"{wall_s:.1f} s"),
        ("flows/s", f"{stats['flows_started'] / wall_s:.1f}"),
    ]
    width = max(len(name) for name, _ in rows)
    args = soak.args
    print(f"\nSoak figures (seed {args.seed}, {CONTAINERS} containers, concurrency {args.concurrency})")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    noted = [flow for flow in flows if flow.notes]
    for flow in noted[:10]:
        print(f"  note: flow {flow.index} (run {flow.run_id}): {'; '.join(flow.notes)}", file=sys.stderr)
    failures = []
    if observed != expected or wrong or strays:
        failures.append("tool executions differ from the winning decisions")
    if twice:
        failures.append(f"{len(twice)} flow(s) executed their tool more than once")
    if many_winners or double_recoveries:
        # Not a lost guarantee (the executions are checked above), but not "one answer, the rest
        # 409" either: a late copy of a decision found the run in ERROR (or RUNNING past its lease)
        # and resumed it, its decisions ignored.
        print(
            f"WARN: {len(many_winners)} decision(s) and {double_recoveries} recovery continue(s) were "
            "answered by more than one copy (a late copy resumed the run instead of getting 409)",
            file=sys.stderr,
        )
    if lost:
        failures.append(f"{lost} run(s) lost")
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    if not failures:
        print("OK: every confirmed tool ran exactly once; nothing ran twice; no run was lost.")
    return 1 if failures else 0


def _configure_environment() -> None:
    os.environ.pop("OPENAI_API_KEY", None)  # never send a real key to the stand-in
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
    paths = [str(ROOT / "layers" / "signoff"), str(ROOT / "layers" / "agents"), str(ROOT)]
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
    parser.add_argument("--flows", type=int, default=2000, help="flows to run (default 2000)")
    parser.add_argument("--seconds", type=float, default=240, help="hard time bound (default 240)")
    parser.add_argument("--concurrency", type=int, default=8, help="flows in flight (default 8)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--crash-rate", type=float, default=0.02, help="share of flows that crash (0.02)")
    parser.add_argument("--no-crashes", dest="crashes", action="store_false", help="inject no crashes")
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
    if args.flows < 1 or args.concurrency < 1 or args.seconds <= 10:
        parser.error("--flows and --concurrency must be positive and --seconds more than 10")

    t0 = time.monotonic()
    cleanup: dict[str, Any] = {}
    _watchdog(args.seconds + 30, cleanup)
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

    from signoff.local.devserver import DevServer
    from signoff.local.postgres import start_postgres, stop_postgres
    from signoff.local.standin import StandinModel
    from tests.support import agents

    if args.crashes and not hasattr(agents, "ledger_entry_crashy"):
        print("tests.support.agents has no ledger_entry_crashy: running without crashes", file=sys.stderr)
        args.crashes = False

    postgres = standin = server = None
    code = 2
    try:
        postgres, database_url = start_postgres(temp / "pgdata")
        cleanup.update(postgres=postgres, stop_postgres=stop_postgres)
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as conn:
            # Created up front: concurrent CREATE TABLE IF NOT EXISTS can collide in the catalog.
            conn.execute(
                "CREATE TABLE IF NOT EXISTS test_ledger (id serial PRIMARY KEY, amount int, memo text)"
            )
        standin = StandinModel()
        standin.retry_after_ms = 20  # 429s ask for a short wait, so injected ones cost little time
        model_url = standin.start()
        os.environ["SIGNOFF_DATABASE_URL"] = database_url
        server = DevServer(
            ROOT,
            port=0,
            database_url=database_url,
            model_base_url=model_url,
            containers=CONTAINERS,
            announce=False,
        )
        base_url = server.start()
        assert base_url.startswith("http://127.0.0.1:")
        print(
            f"soak: {args.flows} flows, concurrency {args.concurrency}, seed {args.seed}, "
            f"{CONTAINERS} containers, bound {args.seconds:.0f} s, server {base_url}",
            flush=True,
        )
        stats = Stats()
        soak = Soak(args, Client(base_url, stats), standin, stats)
        soak.started = t0
        soak.launch_until = t0 + args.seconds * 0.7
        soak.work_until = t0 + args.seconds * 0.85
        soak.run()
        outcome = classify(soak)
        executed = ledger_counts(database_url)
        code = report(soak, outcome, executed, time.monotonic() - t0)
        return code
    finally:
        if server is not None:
            server.stop()
        if standin is not None:
            standin.stop()
        if postgres is not None:
            stop_postgres(postgres)
        if args.keep or code != 0:
            print(f"kept: {temp} (pgdata/, server.log)", file=sys.stderr)
        else:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
