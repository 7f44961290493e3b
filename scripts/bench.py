"""`make bench`: cold start, warm overhead, database round trips, memory and size of the Lambda functions.

A benchmark, not a test: it prints tables (median and p95 over repeated runs) and writes the raw figures
to ``bench-results/`` (git-ignored). Loopback only, no AWS: PostgreSQL is the embedded one (pgserver)
and the model is the stand-in with no latency, in this process; every measured function runs in a
fresh Python process of its own, as a Lambda execution environment would.

- **Cold start**: a fresh ``python -S`` whose ``sys.path`` is Lambda's (the function's code folder,
  then the layers merged as in ``/opt/python``, then what Lambda's runtime provides) imports the
  handler module and answers its first event. The layer tree is assembled from this venv's installed
  copies of the layer's requirements and pruned as ``layers/signoff/Makefile`` prunes the real layer;
  it is measured twice: with the ``.pyc`` files the layer build ships, and without (no bytecode
  anywhere in the layers or the function: everything compiled on import, as when ``sam build``
  ships none; ``/opt`` is read-only, so nothing is cached between cold starts either).
- **SnapStart**: the same process with ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``: init, then the
  before-snapshot and after-restore hooks, then the first event. The restored figure is hooks + first
  event; Lambda's own restore of the memory snapshot comes on top and cannot be measured here.
- **Warm**: one process per function answers warm-up events, then timed ones.
- **Database round trips**: counted by libpq's protocol trace on every connection (a round trip is
  one ReadyForQuery from the server; statements are Execute and Query messages; transactions are the
  round trips that leave the connection idle, i.e. commits, implicit ones included).
- **make dev's server**: request latency on one kept-alive connection and on a fresh connection per
  request, interleaved in the same run (a response written in pieces stalls kept-alive clients).
- **Sizes**: a real ``sam build`` (arm64, as deployed) into a temporary folder; unzipped size = sum of
  the file sizes, as Lambda counts it against its 250 MB limit.

Usage: ``make bench`` or ``.venv/bin/python scripts/bench.py [--runs 10] [--flows 300] [--no-build]``.
"""

from __future__ import annotations

import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --------------------------------------------------------------------------------------------------
# The child: runs in the measured process. Only json, os, sys and time are imported before the clock
# starts (Lambda's own bootstrap has them loaded too); everything else is imported lazily.


class _Context:
    """The Lambda context object (the handlers read the deadline and the request id)."""

    def __init__(self, function_name: str, timeout_ms: int, memory_mb: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = os.urandom(16).hex()
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "2026/01/01/[$LATEST]" + os.urandom(16).hex()
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _parse_trace(text: str) -> dict[str, int]:
    round_trips = statements = transactions = 0
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        direction, kind = parts[0], parts[2]
        if direction == "F" and kind in ("Execute", "Query"):
            statements += 1
        elif direction == "B" and kind == "ReadyForQuery":
            round_trips += 1
            if parts[-1].strip() == "I":
                transactions += 1
    return {"round_trips": round_trips, "statements": statements, "transactions": transactions}


class _Counter:
    """Counts what reaches PostgreSQL with libpq's protocol trace, on every connection psycopg opens."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "w+b")  # noqa: SIM115 - lives as long as the process
        self.conns: list = []
        self.connects = 0
        self.active = False

    def patch(self) -> None:
        import psycopg

        original = psycopg.Connection.connect.__func__
        counter = self

        def connect(cls, *args, **kwargs):
            conn = original(cls, *args, **kwargs)
            counter.connects += 1
            counter.conns.append(conn)
            if counter.active:
                counter._attach(conn)
            return conn

        psycopg.Connection.connect = classmethod(connect)
        psycopg.connect = psycopg.Connection.connect

    def _attach(self, conn) -> None:
        import psycopg

        conn.pgconn.trace(self.file.fileno())
        conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)

    def start(self) -> None:
        self.active = True
        self._connects_before = self.connects
        for conn in self.conns:
            if not conn.closed:
                self._attach(conn)

    def stop(self) -> dict[str, int]:
        for conn in self.conns:
            if not conn.closed:
                conn.pgconn.untrace()  # flushes libpq's buffer
        self.active = False
        self.file.seek(0)
        text = self.file.read().decode(errors="replace")
        self.file.seek(0)
        self.file.truncate()
        return {**_parse_trace(text), "connects": self.connects - self._connects_before}


class _Split:
    """Splits a warm invocation's time: waiting on PostgreSQL (every ``execute`` on a psycopg
    connection, from the call to its answer), the model request (``OpenAIChat.request``: the openai
    client, HTTP and the stand-in answering), and the rest, which is Signoff's own code."""

    def __init__(self) -> None:
        import psycopg

        from signoff.models.bedrock_converse import BedrockConverse
        from signoff.models.openai_chat import OpenAIChat

        self.db = self.model = 0.0
        split = self

        def timed(original, field: str):
            def wrapper(*args, **kwargs):
                mark = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    setattr(split, field, getattr(split, field) + time.perf_counter() - mark)

            return wrapper

        psycopg.Connection.execute = timed(psycopg.Connection.execute, "db")
        OpenAIChat.request = timed(OpenAIChat.request, "model")
        BedrockConverse.request = timed(BedrockConverse.request, "model")

    def reset(self) -> None:
        self.db = self.model = 0.0


def _summary(response) -> dict:
    if not isinstance(response, dict):
        return {"type": type(response).__name__}
    if "statusCode" in response:
        out = {"statusCode": response["statusCode"]}
        try:
            body = json.loads(response.get("body") or "null")
        except ValueError:
            return out
        if isinstance(body, dict):
            out["status"] = body.get("status")
            out["run_id"] = body.get("run_id")
            out["session_id"] = body.get("session_id")
            out["tool_call_ids"] = [t.get("tool_call_id") for t in body.get("tools") or []]
            out["detail"] = body.get("detail")
        return out
    if "batchItemFailures" in response:
        return {"batchItemFailures": len(response["batchItemFailures"])}
    return {"keys": sorted(response)}


def _child(config_path: str) -> None:
    with open(config_path) as f:
        cfg = json.load(f)
    sys.path[0:1] = cfg["sys_path"]  # sys.path[0] was scripts/: Lambda's order instead
    counter = None
    if cfg["count"]:
        counter = _Counter(cfg["out"] + ".trace")
        counter.patch()  # imports psycopg before the clock: counting runs are not timed
    out: dict = {}
    if cfg.get("floor"):  # the libraries alone, without Signoff: the floor of a cold start on this host
        import importlib

        mark = time.perf_counter()
        for name in cfg["floor"]:
            importlib.import_module(name)
        out["floor_ms"] = (time.perf_counter() - mark) * 1000
        out["invocations"] = []
        with open(cfg["out"], "w") as f:
            json.dump(out, f)
        return
    profiler = None
    if cfg.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started, started_cpu = time.perf_counter(), time.process_time()
    import app  # the function's handler module, from its code folder

    out["import_ms"] = (time.perf_counter() - started) * 1000
    out["import_cpu_ms"] = (time.process_time() - started_cpu) * 1000
    if cfg["snapstart"]:
        from signoff import snapstart

        mark = time.perf_counter()
        snapstart.run_before_snapshot()
        out["before_snapshot_ms"] = (time.perf_counter() - mark) * 1000
        out["primed_openai"] = "openai" in sys.modules
        mark = time.perf_counter()
        snapstart.run_after_restore()
        out["after_restore_ms"] = (time.perf_counter() - mark) * 1000
    if cfg["probe_openai"]:
        # The openai package's own import: the modules of openai and of what it depends on that a
        # first event loads (recorded by a cold start of the same function), timed after importing
        # everything else that first event loads, so that what Signoff needs anyway is not counted.
        import contextlib
        import importlib

        def load(names: list[str]) -> None:
            for name in names:
                if name not in sys.modules:
                    with contextlib.suppress(Exception):  # a module that exists only at run time
                        importlib.import_module(name)

        load(cfg["probe_openai"]["others"])
        loaded = "openai" in sys.modules
        mark = time.perf_counter()
        load(cfg["probe_openai"]["family"])
        out["openai_ms"] = 0.0 if loaded else (time.perf_counter() - mark) * 1000
        cfg["events"] = []
    if cfg.get("probe_secrets"):  # AWS only: what the first read of a secret loads, before its HTTPS call
        mark = time.perf_counter()
        import boto3
        from aws_lambda_powertools.utilities import parameters  # noqa: F401

        boto3.session.Session().client("secretsmanager", region_name="us-east-1")
        out["secrets_client_ms"] = (time.perf_counter() - mark) * 1000
        cfg["events"] = []
    split = _Split() if cfg.get("split") else None
    invocations = []
    for index, event in enumerate(cfg["events"]):
        if cfg.get("profile_warm") and index == cfg["profile_from"]:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        traced = counter is not None and index >= cfg["count_from"]
        if traced:
            counter.start()
        context = _Context(cfg["function"], cfg["timeout_ms"], 256)
        if split:
            split.reset()
        mark, mark_cpu = time.perf_counter(), time.process_time()
        response = app.lambda_handler(event, context)
        elapsed = (time.perf_counter() - mark) * 1000
        cpu = (time.process_time() - mark_cpu) * 1000
        item = {"ms": elapsed, "cpu_ms": cpu, "response": _summary(response)}
        if split:
            item["db_ms"], item["model_ms"] = split.db * 1000, split.model * 1000
        if traced:
            item["db"] = counter.stop()
        invocations.append(item)
        if profiler is not None and index == 0 and cfg.get("profile"):
            profiler.disable()
            profiler.dump_stats(cfg["profile"])
    if cfg.get("profile_warm") and profiler is not None:
        profiler.disable()
        profiler.dump_stats(cfg["profile_warm"])
    out["invocations"] = invocations
    # VmHWM, not getrusage: Linux carries the parent's high-water mark into ru_maxrss across exec.
    with open("/proc/self/status") as f:
        out["max_rss_kib"] = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    out["modules"] = {name: name in sys.modules for name in ("openai", "aws_xray_sdk", "botocore", "boto3")}
    out["loaded"] = list(sys.modules)
    with open(cfg["out"], "w") as f:
        json.dump(out, f)


# --------------------------------------------------------------------------------------------------
# The parent: database, model, fixtures, children, tables.

FUNCTIONS = {  # logical id → code folder
    "StartRunFunction": "start_run",
    "ContinueRunFunction": "continue_run",
    "ReadRunsFunction": "read_runs",
    "ApprovalsFunction": "approvals",
    "ResumeWorkerFunction": "resume_worker",
    "ExpireApprovalsFunction": "expire_approvals",
}
if os.path.isdir(os.path.join(ROOT, "functions", "knowledge")):
    FUNCTIONS["KnowledgeFunction"] = "knowledge"  # measured with a listing: no embeddings call
CALLS_MODEL = {"StartRunFunction", "ContinueRunFunction", "ResumeWorkerFunction"}
LABELS = {
    "StartRunFunction": "start (→ PAUSED)",
    "ContinueRunFunction": "continue (→ COMPLETED)",
    "ReadRunsFunction": "read (GET run)",
    "ApprovalsFunction": "approvals (webhook)",
    "ResumeWorkerFunction": "resume worker (SQS)",
    "ExpireApprovalsFunction": "upkeep (schedule)",
    "KnowledgeFunction": "knowledge (GET list)",
}
# What Lambda's python3.12 runtime provides (boto3 and its dependencies); read from the layer's
# Makefile when it lists them, so that the bench prunes what the real build prunes.
RUNTIME_PROVIDED_DEFAULT = ["boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"]
# What every function imports whatever Signoff does: Powertools' logger, metrics and HTTP event
# handler, and psycopg. A process importing only these is the floor a cold start cannot go below;
# measured in every round, it also tells how fast the host is at that moment.
FLOOR_MODULES = [
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.event_handler",
    "psycopg",
]
WEBHOOK_SECRET = "bench-webhook-secret"
USER = "bench_user"
AGENT = "data_manager"
BEDROCK_AGENT = "data_manager_bedrock"
BEDROCK_MODEL = "bedrock:us.anthropic.claude-3-5-haiku-20241022-v1:0"
# The seed's agent and the same agent on Bedrock, as this deployment's catalog for the bench.
INBOX_AGENT = "bench_payouts"
# The inbox at size: pending approvals across runs (each run pauses on this many calls at once).
INBOX_RUNS, INBOX_CALLS_PER_RUN = 1000, 10

BENCH_AGENTS = f"""import dataclasses

from catalog import AGENTS as _SEED
from catalog.data_manager import data_manager

AGENTS = [*_SEED, dataclasses.replace(data_manager, id="{BEDROCK_AGENT}", model="{BEDROCK_MODEL}")]

from signoff import Agent, tool


@tool(requires_confirmation=True, approvers=["finance"], editable=True)
def pay(vendor: str, amount: int) -> str:
    '''Pay a vendor.

    Args:
        vendor: Who
        amount: Amount in cents
    '''
    return f"Paid {{amount}} to {{vendor}}"


AGENTS.append(Agent(id="{INBOX_AGENT}", name="Payouts", instructions=["You pay vendors"], tools=[pay]))
"""


def _installed_closure(requirements: list[str], *, missing_ok: bool = False):
    """``(key, distribution)`` for each installed distribution that ``requirements`` need, once each,
    following their requirements (markers evaluated, extras carried along)."""
    import importlib.metadata as md

    from packaging.requirements import Requirement

    todo = [(Requirement(line), "") for line in requirements]
    walked: set[tuple[str, frozenset[str]]] = set()
    yielded: set[str] = set()
    while todo:
        req, extra = todo.pop()
        if req.marker and not req.marker.evaluate({"extra": extra}):
            continue
        key = req.name.lower().replace("-", "_")
        if (key, frozenset(req.extras)) in walked:
            continue
        walked.add((key, frozenset(req.extras)))
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            if missing_ok:
                continue
            raise
        for sub in dist.requires or []:
            todo.extend((Requirement(sub), wanted) for wanted in req.extras or {""})
        if key not in yielded:
            yielded.add(key)
            yield key, dist


def _pct(values: list[float], q: float) -> float:
    import math

    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


class Bench:
    def __init__(self, args) -> None:
        import tempfile
        from pathlib import Path

        self.args = args
        self.root = Path(ROOT)
        self.work = Path(tempfile.mkdtemp(prefix="signoff-bench-"))
        import platform

        self.results: dict = {
            "config": vars(args).copy(),
            "machine": {
                "cpus": os.cpu_count(),
                "arch": platform.machine(),
                "python": platform.python_version(),
                "load_at_start": os.getloadavg(),
            },
        }
        self.children = 0
        self._openai_family: set[str] | None = None  # top-level modules of openai and its dependencies
        self._handler_module_cache: dict[str, list[str]] = {}  # function → modules its import loads

    # ---------------------------------------------------------------- environment
    def start_services(self) -> None:
        from signoff_dev.bedrock_standin import BedrockStandin
        from signoff_dev.postgres import start_postgres
        from signoff_dev.standin import StandinModel

        self.postgres, self.database_url = start_postgres(self.work / "pgdata")
        self.model = StandinModel(latency_s=0.0)
        self.model_url = self.model.start()
        self.bedrock = BedrockStandin(latency_s=0.0, credentials=("bench", "bench"))
        self.bedrock_url = self.bedrock.start()
        (self.work / "agents").mkdir(exist_ok=True)
        (self.work / "agents" / "bench_agents.py").write_text(BENCH_AGENTS)
        sys.path.insert(0, str(self.work / "agents"))
        os.environ.update(self._service_env())
        from signoff.config import get_settings

        get_settings.cache_clear()  # the migrations read the settings before the URL was set

    def stop_services(self) -> None:
        from signoff_dev.postgres import stop_postgres

        self.model.stop()
        self.bedrock.stop()
        stop_postgres(self.postgres)

    def _service_env(self) -> dict[str, str]:
        return {
            "SIGNOFF_DATABASE_URL": self.database_url,
            "OPENAI_BASE_URL": self.model_url,
            "SIGNOFF_BEDROCK_ENDPOINT_URL": self.bedrock_url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "SIGNOFF_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "SIGNOFF_AGENTS_MODULE": "bench_agents",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "SignoffBench",
            "POWERTOOLS_SERVICE_NAME": "signoff",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def child_env(self, function: str, *, xray: bool = False, snapstart: bool = False) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
        env = {name: os.environ[name] for name in keep if name in os.environ}
        env.update(self._service_env())
        env.update(
            {
                # As in Lambda: the code folders are read-only, nothing writes bytecode caches.
                "PYTHONDONTWRITEBYTECODE": "1",
                "AWS_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
                "AWS_LAMBDA_FUNCTION_NAME": function,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
                "LAMBDA_TASK_ROOT": str(self.task_dir(function)),
                "LOG_LEVEL": "INFO",
            }
        )
        if xray:  # as in Lambda with Tracing: Active: the SDK on, the daemon address a dead UDP port
            env.pop("POWERTOOLS_TRACE_DISABLED")
            env["_X_AMZN_TRACE_ID"] = (
                "Root=1-695661c0-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1"
            )
            env["AWS_XRAY_DAEMON_ADDRESS"] = "127.0.0.1:9"
            env["AWS_XRAY_CONTEXT_MISSING"] = "LOG_ERROR"
        if snapstart:
            env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
        return env

    # ---------------------------------------------------------------- the layer trees
    def runtime_provided(self) -> list[str]:
        import re

        makefile = self.root / "layers" / "signoff" / "Makefile"
        if makefile.is_file():
            match = re.search(r"^RUNTIME_PROVIDED\s*:?=\s*(.+)$", makefile.read_text(), re.MULTILINE)
            if match:
                return match.group(1).split()
        return RUNTIME_PROVIDED_DEFAULT

    def build_trees(self) -> None:
        """/opt/python as the layers ship it (with and without .pyc), /var/task, and /var/runtime."""
        import compileall
        import py_compile
        import shutil

        provided = {name.lower().replace("-", "_") for name in self.runtime_provided()}
        provided |= {"python_dateutil"}  # dateutil's distribution name
        opt = self.work / "opt-source" / "python"
        runtime = self.work / "runtime"
        opt.mkdir(parents=True)
        runtime.mkdir()
        site = None
        requirements = [
            line.strip()
            for line in (self.root / "layers" / "signoff" / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
        for key, dist in _installed_closure(requirements):
            site = site or dist.locate_file("")
            top = {str(f).split("/", 1)[0] for f in dist.files or [] if not str(f).startswith("..")}
            if key in provided or top & provided:
                continue  # Lambda's runtime has it: linked into /var/runtime below
            for file in dist.files or []:
                name = str(file)
                if name.startswith("..") or "__pycache__" in name or name.endswith(".pyc"):
                    continue
                target = opt / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(dist.locate_file(file), target)
        for name in sorted(provided):  # boto3 & co. from the venv, bytecode included, as the runtime has them
            for candidate in (site / name, site / f"{name}.py"):
                if candidate.exists():
                    (runtime / candidate.name).symlink_to(candidate)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(self.root / "layers" / "signoff" / "signoff", opt / "signoff", ignore=ignore)
        shutil.copytree(self.root / "layers" / "agents" / "catalog", opt / "catalog", ignore=ignore)
        (opt / "bench_agents.py").write_text(BENCH_AGENTS)
        compiled = self.work / "opt-pyc" / "python"
        shutil.copytree(opt, compiled, symlinks=True)
        compileall.compile_dir(
            compiled,
            quiet=2,
            workers=0,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        for function, folder in FUNCTIONS.items():
            shutil.copytree(self.root / "functions" / folder, self.task_dir(function), ignore=ignore)
        self.opt = {"source": opt, "pyc": compiled}
        self.runtime = runtime

    def task_dir(self, function: str):
        return self.work / "task" / FUNCTIONS[function]

    # ---------------------------------------------------------------- events and fixtures
    def _multipart(self, fields: dict[str, str]) -> tuple[bytes, str]:
        import uuid

        boundary = "------------------------" + uuid.uuid4().hex[:16]
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
            for k, v in fields.items()
        ]
        return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"

    def _http(self, method: str, route: str, params: dict[str, str], **kwargs) -> dict:
        from signoff_dev.apigw import http_api_event

        headers = {"user-agent": "curl/8.5.0", "accept": "*/*", **kwargs.pop("headers", {})}
        return http_api_event(
            method,
            route.format(**params),
            headers=headers,
            route_key=f"{method} {route}",
            path_parameters=params,
            **kwargs,
        )

    def start_event(self, agent: str = AGENT) -> dict:
        import uuid

        body, content_type = self._multipart(
            {
                "message": "Delete 50 old records from the users table",
                "user_id": USER,
                "session_id": f"bench-{uuid.uuid4().hex[:12]}",
                "stream": "false",
            }
        )
        return self._http(
            "POST", "/agents/{agent_id}/runs", {"agent_id": agent}, body=body,
            headers={"content-type": content_type},
        )  # fmt: skip

    def continue_event(self, run: dict, agent: str = AGENT) -> dict:
        tools = json.dumps([{"tool_call_id": run["tool_call_ids"][0], "confirmed": True}])
        body, content_type = self._multipart(
            {"tools": tools, "session_id": run["session_id"], "user_id": USER, "stream": "false"}
        )
        return self._http(
            "POST",
            "/agents/{agent_id}/runs/{run_id}/continue",
            {"agent_id": agent, "run_id": run["run_id"]},
            body=body,
            headers={"content-type": content_type},
        )

    def read_event(self, run: dict) -> dict:
        return self._http(
            "GET",
            "/agents/{agent_id}/runs/{run_id}",
            {"agent_id": AGENT, "run_id": run["run_id"]},
            query=f"session_id={run['session_id']}",
        )

    def webhook_event(self, run: dict) -> dict:
        import uuid

        from signoff.approvals import sign

        body = json.dumps(
            {
                "event_id": f"bench-{uuid.uuid4().hex}",
                "run_id": run["run_id"],
                "tool_call_id": run["tool_call_ids"][0],
                "decision": "approve",
                "approver": "ops-bot",
            }
        ).encode()
        headers = {
            "content-type": "application/json",
            "signoff-signature": sign(WEBHOOK_SECRET, int(time.time()), body),
        }
        return self._http("POST", "/approvals/webhook", {}, body=body, headers=headers)

    def sqs_event(self, run: dict) -> dict:
        event = json.loads((self.root / "events" / "resume_queue.json").read_text())
        record = event["Records"][0]
        record["body"] = json.dumps({"kind": "resume", "run_id": run["run_id"], "agent_id": AGENT})
        return event

    def schedule_event(self) -> dict:
        return json.loads((self.root / "events" / "expire_schedule.json").read_text())

    def paused_run(self, agent: str = AGENT) -> dict:
        """A run paused on delete_records, made by the in-process StartRunFunction."""
        import contextlib

        from signoff_dev.handlers import invoke

        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):  # its logs and metrics
            response = invoke(
                "StartRunFunction", self.start_event(agent), template=self.root / "template.yaml"
            )
        run = _summary(response)
        assert run.get("status") == "PAUSED", run
        return run

    def decided_run(self) -> dict:
        """A paused run whose only call is approved (as a webhook would): the resume worker's job."""
        from signoff import service
        from signoff.runtime import dependencies

        run = self.paused_run()
        decider = service.Decider(service.Principal("ops-bot"), "ops-bot", "webhook", vouched=True)
        decision = service.Decision(run["tool_call_ids"][0], True)
        service.decide(dependencies(), decision, decider, run_id=run["run_id"])
        return run

    def event_for(self, function: str) -> dict:
        if function == "StartRunFunction":
            return self.start_event()
        if function == "ContinueRunFunction":
            return self.continue_event(self.paused_run())
        if function == "ReadRunsFunction":
            return self.read_event(self.paused_run())
        if function == "ApprovalsFunction":
            return self.webhook_event(self.paused_run())
        if function == "ResumeWorkerFunction":
            return self.sqs_event(self.decided_run())
        if function == "KnowledgeFunction":
            return self._http("GET", "/knowledge/{kb}/documents", {"kb": "bench"})
        return self.schedule_event()

    @staticmethod
    def check(function: str, summary: dict) -> None:
        expected = {
            "StartRunFunction": {"statusCode": 200, "status": "PAUSED"},
            "ContinueRunFunction": {"statusCode": 200, "status": "COMPLETED"},
            "ReadRunsFunction": {"statusCode": 200},
            "ApprovalsFunction": {"statusCode": 200},
            "ResumeWorkerFunction": {"batchItemFailures": 0},
            "KnowledgeFunction": {"statusCode": 200},
        }.get(function, {})
        wrong = {k: summary.get(k) for k, v in expected.items() if summary.get(k) != v}
        if wrong:
            raise RuntimeError(f"{function} answered {summary}, expected {expected}")

    # ---------------------------------------------------------------- children
    def run_child(
        self,
        function: str,
        events: list[dict],
        *,
        tree: str = "pyc",
        count: bool = False,
        count_from: int = 0,
        snapstart: bool = False,
        xray: bool = False,
        probe_openai: dict | None = None,
        probe_secrets: bool = False,
        profile: str | None = None,
        profile_warm: str | None = None,
        profile_from: int = 0,
        split: bool = False,
        floor: list[str] | None = None,
    ) -> dict:
        import subprocess

        self.children += 1
        base = self.work / "children" / f"{self.children:05d}"
        base.parent.mkdir(exist_ok=True)
        out = f"{base}.json"
        config = {
            "function": function,
            "sys_path": [str(self.task_dir(function)), str(self.opt[tree]), str(self.runtime)],
            "events": events,
            "count": count,
            "count_from": count_from,
            "snapstart": snapstart,
            "probe_openai": probe_openai,
            "probe_secrets": probe_secrets,
            "timeout_ms": 29000,
            "out": out,
            "profile": profile,
            "profile_warm": profile_warm,
            "profile_from": profile_from,
            "split": split,
            "floor": floor,
        }
        with open(f"{base}.cfg", "w") as f:
            json.dump(config, f)
        with open(f"{base}.log", "wb") as log:
            flags = ["-X", "importtime"] if profile else []
            done = subprocess.run(
                [sys.executable, "-S", *flags, os.path.abspath(__file__), "--child", f"{base}.cfg"],
                env=self.child_env(function, xray=xray, snapstart=snapstart),
                cwd=self.work,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=300,
                check=False,
            )
        if done.returncode != 0 or not os.path.exists(out):
            with open(f"{base}.log", "rb") as log:
                tail = log.read()[-4000:].decode(errors="replace")
            raise RuntimeError(f"{function} child failed ({done.returncode}):\n{tail}")
        with open(out) as f:
            result = json.load(f)
        for item in result["invocations"]:
            self.check(function, item["response"])
        return result

    # ---------------------------------------------------------------- the measurements
    def profile(self, function: str) -> None:
        """Prints where one cold start goes: the costliest imports, then the costliest calls."""
        import io
        import pstats

        path = str(self.work / f"{FUNCTIONS[function]}.prof")
        result = self.run_child(function, [self.event_for(function)], profile=path)
        log = self.work / "children" / f"{self.children:05d}.log"
        imports = []
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("import time:") and "|" in line:
                _, own, total, name = (part.strip() for part in line.replace(":", "|", 1).split("|"))
                if own.isdigit():
                    imports.append((int(total), int(own), name))
        print(
            f"\n{LABELS[function]}: import {result['import_ms']:.0f} ms, first event "
            f"{result['invocations'][0]['ms']:.0f} ms (timings inflated by the profilers)"
        )
        print("slowest imports (cumulative µs, own µs):")
        for total, own, name in sorted(imports, reverse=True)[:40]:
            print(f"  {total:>9} {own:>9}  {name}")
        out = io.StringIO()
        pstats.Stats(path, stream=out).sort_stats("cumulative").print_stats(60)
        print(out.getvalue())

    def profile_warm(self) -> None:
        """Prints where warm starts and continues spend their time (cProfile, sorted by own time)."""
        import io
        import pstats

        n, w = self.args.flows, self.args.warmup
        starts = [self.start_event() for _ in range(n + w)]
        path = str(self.work / "warm-start.prof")
        started = self.run_child("StartRunFunction", starts, profile_warm=path, profile_from=w)
        runs = [item["response"] for item in started["invocations"]]
        paths = {"start": path, "continue": str(self.work / "warm-continue.prof")}
        events = [self.continue_event(run) for run in runs]
        self.run_child("ContinueRunFunction", events, profile_warm=paths["continue"], profile_from=w)
        for label, stats_path in paths.items():
            for order in ("tottime", "cumulative"):
                out = io.StringIO()
                pstats.Stats(stats_path, stream=out).sort_stats(order).print_stats(45)
                print(f"\nwarm {label}, {n} invocations, by {order}:\n{out.getvalue()}")

    def openai_modules(self, function: str, loaded: list[str]) -> dict[str, list[str]]:
        """What a first event loaded beyond the handler's import: the openai family (openai and the
        distributions it requires, transitively) and the rest outside the standard library."""
        if self._openai_family is None:
            tops: set[str] = set()
            for _key, dist in _installed_closure(["openai"], missing_ok=True):
                tops |= {str(f).split("/", 1)[0].removesuffix(".py") for f in dist.files or []}
            self._openai_family = {t for t in tops if t.isidentifier()}
        imported = set(self._handler_modules(function))
        fresh = [name for name in loaded if name not in imported]
        family = [name for name in fresh if name.split(".")[0] in self._openai_family]
        # The rest, minus the standard library: what Signoff's own lazy imports need of it comes
        # with them, and what only openai needs is then counted as openai's.
        others = [
            name
            for name in fresh
            if name.split(".")[0] not in self._openai_family
            and name.split(".")[0] not in sys.stdlib_module_names
        ]
        return {"family": family, "others": others}

    def _handler_modules(self, function: str) -> list[str]:
        if function not in self._handler_module_cache:
            self._handler_module_cache[function] = self.run_child(function, [])["loaded"]
        return self._handler_module_cache[function]

    def cold(self) -> None:
        runs = self.args.runs
        cold: dict[str, dict[str, list]] = {f: {} for f in FUNCTIONS}

        def add(function: str, key: str, value) -> None:
            cold[function].setdefault(key, []).append(value)

        functions = list(FUNCTIONS)
        for i in range(runs):
            for function in list(functions):
                if function == "KnowledgeFunction":  # new and optional: measured when it answers
                    try:
                        self.run_child(function, [self.event_for(function)])
                    except RuntimeError as exc:
                        print(f"  {function} left out: {str(exc)[-300:]}", flush=True)
                        functions.remove(function)
                        del cold[function]
                        continue
                for tree in ("pyc", "source"):
                    r = self.run_child(function, [self.event_for(function)], tree=tree)
                    first = r["invocations"][0]["ms"]
                    add(function, f"{tree}_import", r["import_ms"])
                    add(function, f"{tree}_first", first)
                    add(function, f"{tree}_cold", r["import_ms"] + first)
                    add(function, f"{tree}_cold_cpu", r["import_cpu_ms"] + r["invocations"][0]["cpu_ms"])
                    add(function, f"{tree}_rss", r["max_rss_kib"] / 1024)
                    add(function, "openai_loaded", r["modules"]["openai"])
                    add(function, "xray_loaded", r["modules"]["aws_xray_sdk"])
                if function in CALLS_MODEL:
                    r = self.run_child(function, [], probe_openai=self.openai_modules(function, r["loaded"]))
                    add(function, "openai_ms", r["openai_ms"])
                    if self.snapstart:
                        r = self.run_child(function, [self.event_for(function)], snapstart=True)
                        first = r["invocations"][0]["ms"]
                        add(function, "snap_init", r["import_ms"] + r["before_snapshot_ms"])
                        add(function, "snap_restored", r["after_restore_ms"] + first)
                        add(function, "snap_primed", r["primed_openai"])
                        add(function, "snap_rss", r["max_rss_kib"] / 1024)
                if function in self.args.xray_functions and i < self.args.xray_runs:
                    r = self.run_child(function, [self.event_for(function)], xray=True)
                    add(function, "xray_cold", r["import_ms"] + r["invocations"][0]["ms"])
                    add(function, "xray_rss", r["max_rss_kib"] / 1024)
            r = self.run_child("ReadRunsFunction", [], floor=FLOOR_MODULES)
            self.results.setdefault("floor_ms", []).append(r["floor_ms"])
            r = self.run_child("ReadRunsFunction", [], probe_secrets=True)
            self.results.setdefault("secrets_client_ms", []).append(r["secrets_client_ms"])
            print(f"  cold starts: round {i + 1}/{runs} done", flush=True)
        for function in functions:  # one counted cold start each: the first event's database work
            r = self.run_child(function, [self.event_for(function)], count=True)
            cold[function]["db_first"] = [r["invocations"][0]["db"]]
        self.results["cold"] = cold

    def warm(self) -> None:
        n, w, k = self.args.flows, self.args.warmup, self.args.counted
        total = n + w + k
        warm: dict[str, dict] = {}

        def record(function: str, result: dict) -> None:
            timed = [item["ms"] for item in result["invocations"][w : w + n]]
            counted = [item["db"] for item in result["invocations"][w + n :]]
            window = result["invocations"][w : w + n]
            warm[function] = {
                "ms": timed,
                "db_ms": [item.get("db_ms", 0.0) for item in window],
                "model_ms": [item.get("model_ms", 0.0) for item in window],
                "own_ms": [
                    item["ms"] - item.get("db_ms", 0.0) - item.get("model_ms", 0.0) for item in window
                ],
                "db": counted,
                "rss": result["max_rss_kib"] / 1024,
            }

        started = self.run_child(
            "StartRunFunction",
            [self.start_event() for _ in range(total)],
            count=True,
            count_from=w + n,
            split=True,
        )
        record("StartRunFunction", started)
        runs = [item["response"] for item in started["invocations"]]
        record(
            "ContinueRunFunction",
            self.run_child(
                "ContinueRunFunction",
                [self.continue_event(run) for run in runs],
                count=True,
                count_from=w + n,
                split=True,
            ),
        )
        read = self.read_event(runs[0])
        record(
            "ReadRunsFunction",
            self.run_child("ReadRunsFunction", [read] * total, count=True, count_from=w + n, split=True),
        )
        paused = [self.paused_run() for _ in range(total)]
        record(
            "ApprovalsFunction",
            self.run_child(
                "ApprovalsFunction",
                [self.webhook_event(r) for r in paused],
                count=True,
                count_from=w + n,
                split=True,
            ),
        )
        if self.args.xray_runs:
            record(
                "StartRunFunction+xray",
                self.run_child(
                    "StartRunFunction",
                    [self.start_event() for _ in range(total)],
                    count=True,
                    count_from=w + n,
                    xray=True,
                ),
            )
        self.results["warm"] = warm

    def providers(self) -> None:
        """Start and continue of the same agent on OpenAI and on Bedrock (each against its stand-in
        with no latency), interleaved: cold starts, warm invocations, and boto3's import."""
        runs, n, w = self.args.runs, self.args.flows, self.args.warmup
        out: dict = {}
        agents = {"OpenAI": AGENT, "Bedrock": BEDROCK_AGENT}

        def add(key: str, value) -> None:
            out.setdefault(key, []).append(value)

        for i in range(runs):
            for label, agent in agents.items():
                r = self.run_child("StartRunFunction", [self.start_event(agent)])
                add(f"{label} start cold", r["import_ms"] + r["invocations"][0]["ms"])
                add(f"{label} start first event", r["invocations"][0]["ms"])
                add(f"{label} start rss", r["max_rss_kib"] / 1024)
                r = self.run_child(
                    "ContinueRunFunction", [self.continue_event(self.paused_run(agent), agent)]
                )
                add(f"{label} continue cold", r["import_ms"] + r["invocations"][0]["ms"])
                add(f"{label} continue first event", r["invocations"][0]["ms"])
                if self.snapstart:
                    r = self.run_child("StartRunFunction", [self.start_event(agent)], snapstart=True)
                    add(
                        f"{label} start SnapStart restored", r["after_restore_ms"] + r["invocations"][0]["ms"]
                    )
            # boto3 alone in a fresh process (Lambda's runtime ships it; Bedrock needs it, OpenAI
            # deployments load it anyway for the database secret), then the bedrock-runtime client
            r = self.run_child("ReadRunsFunction", [], floor=["boto3"])
            add("boto3 import", r["floor_ms"])
            r = self.run_child("ReadRunsFunction", [], floor=["boto3", "signoff.models.bedrock_converse"])
            add("boto3 + bedrock provider import", r["floor_ms"])
            print(f"  providers: round {i + 1}/{runs} done", flush=True)
        for label, agent in agents.items():
            started = self.run_child(
                "StartRunFunction", [self.start_event(agent) for _ in range(n + w)], split=True
            )
            window = started["invocations"][w:]
            out[f"{label} start warm"] = [item["ms"] for item in window]
            out[f"{label} start warm model"] = [item["model_ms"] for item in window]
            events = [self.continue_event(item["response"], agent) for item in started["invocations"]]
            continued = self.run_child("ContinueRunFunction", events, split=True)
            window = continued["invocations"][w:]
            out[f"{label} continue warm"] = [item["ms"] for item in window]
            out[f"{label} continue warm model"] = [item["model_ms"] for item in window]
        self.results["providers"] = out

    def http(self) -> None:
        """`make dev`'s server, in this process: request latency on one kept-alive connection and on a
        fresh connection per request, interleaved (GET of one run: ReadRunsFunction).

        A response written in pieces on a socket with Nagle's algorithm on stalls a kept-alive client
        until its delayed ACK (about 40 ms on Linux); a fresh connection does not show it.
        """
        import http.client

        from signoff_dev.devserver import DevServer

        n = min(self.args.flows, 200)
        server = DevServer(
            self.root,
            port=0,
            database_url=self.database_url,
            model_base_url=self.model_url,
            announce=False,
            upkeep_seconds=0,
        )
        server.start()
        try:
            port = server._server.server_address[1]
            body, content_type = self._multipart({"message": "Delete 50 old records from the users table"})
            first = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            first.request("POST", "/agents/data_manager/runs", body, {"content-type": content_type})
            run = json.loads(first.getresponse().read())
            first.close()
            path = f"/agents/data_manager/runs/{run['run_id']}"

            def get(conn: http.client.HTTPConnection) -> float:
                started = time.perf_counter()
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                assert response.status == 200, response.status
                return (time.perf_counter() - started) * 1000

            kept = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for _ in range(self.args.warmup):
                get(kept)
            kept_ms, fresh_ms = [], []
            for _ in range(n):
                kept_ms.append(get(kept))
                fresh = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                fresh_ms.append(get(fresh))  # the connect is inside: what a client without keep-alive pays
                fresh.close()
            kept.close()
        finally:
            server.stop()
        self.results["http"] = {"kept_alive_ms": kept_ms, "fresh_ms": fresh_ms}

    def inbox(self) -> None:
        """The approver's inbox at size: 10,000 pending approvals across 1,000 runs, made through the
        start handler (each run pauses on ten calls of a tool finance approves); then the inbox's own
        requests, warm and in-process, as a finance approver (JWT): a page of 50 of what they may
        decide (the first and the 100th), the count it polls, one item's context."""
        from signoff import runtime
        from signoff.config import get_settings
        from signoff_dev import jwt
        from signoff_dev.handlers import load_handler

        start = load_handler(self.root / "functions" / "start_run", "app.lambda_handler")
        approvals = load_handler(self.root / "functions" / "approvals", "app.lambda_handler")
        calls = " and ".join(
            f'call pay {{"vendor": "v{n}", "amount": {100 + n}}}' for n in range(INBOX_CALLS_PER_RUN)
        )
        seeded = time.perf_counter()
        for n in range(INBOX_RUNS):
            body, content_type = self._multipart(
                {"message": f"Pay this month's vendors, batch {n}: {calls}", "user_id": f"owner{n % 50}"}
            )
            event = self._http(
                "POST",
                "/agents/{agent_id}/runs",
                {"agent_id": INBOX_AGENT},
                body=body,
                headers={"content-type": content_type},
            )
            answer = start(event, _Context("StartRunFunction", 30_000, 256))
            assert json.loads(answer["body"])["status"] == "PAUSED", answer["body"][:300]
        seed_s = time.perf_counter() - seeded
        previous = os.environ.get("SIGNOFF_AUTH_MODE")
        os.environ["SIGNOFF_AUTH_MODE"] = "jwt"
        get_settings.cache_clear()
        runtime.reset()
        token = jwt.mint("fiona", groups=["finance"])
        claims = {"sub": "fiona", "iss": jwt.ISSUER, "cognito:groups": "[finance]"}
        context = _Context("ApprovalsFunction", 10_000, 256)

        def call(route: str, params: dict, query: str = "") -> tuple[float, dict]:
            event = self._http(
                "GET",
                route,
                params,
                query=query,
                headers={"authorization": f"Bearer {token}"},
                authorizer_claims=claims,
            )
            started = time.perf_counter()
            answer = approvals(event, context)
            elapsed = (time.perf_counter() - started) * 1000
            assert answer["statusCode"] == 200, answer
            return elapsed, json.loads(answer["body"])

        try:
            _, first = call("/approvals", {}, "status=pending&decidable=true&limit=50")
            total = first["meta"]["total_count"]
            assert total == INBOX_RUNS * INBOX_CALLS_PER_RUN and len(first["data"]) == 50, first["meta"]
            one = first["data"][0]["id"]
            requests = {
                "page 1 of 50": ("/approvals", {}, "status=pending&decidable=true&limit=50"),
                "page 100 of 50": ("/approvals", {}, "status=pending&decidable=true&limit=50&page=100"),
                "page 1, tool filter": ("/approvals", {}, "decidable=true&tool_name=pay&limit=50"),
                "count (polled)": ("/approvals/count", {}, "decidable=true"),
                "an item's context": ("/approvals/{approval_id}/context", {"approval_id": one}, ""),
            }
            for route, params, query in requests.values():
                for _ in range(self.args.warmup):
                    call(route, params, query)
            timings: dict[str, list[float]] = {name: [] for name in requests}
            for _ in range(min(self.args.flows, 200)):
                for name, (route, params, query) in requests.items():
                    timings[name].append(call(route, params, query)[0])
        finally:
            if previous is None:
                os.environ.pop("SIGNOFF_AUTH_MODE", None)
            else:
                os.environ["SIGNOFF_AUTH_MODE"] = previous
            get_settings.cache_clear()
            runtime.reset()
        self.results["inbox"] = {"pending": total, "seed_s": round(seed_s, 1), "ms": timings}

    def sizes(self) -> None:
        import shutil
        import subprocess
        from pathlib import Path

        if self.args.build_dir:
            build = Path(self.args.build_dir)
        else:
            build = self.work / "build"
            env = dict(os.environ)
            env["PATH"] = f"{self.root / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
            env["SAM_CLI_TELEMETRY"] = "0"
            sam = self.root / ".venv-sam" / "bin" / "sam"
            started = time.monotonic()
            done = subprocess.run(
                [str(sam), "build", "--no-cached", "--parallel", "--build-dir", str(build),
                 "--cache-dir", str(self.work / "sam-cache")],
                cwd=self.root, env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"sam build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
            self.results["sam_build_s"] = round(time.monotonic() - started, 1)
        sizes = {}
        for artifact in sorted(p for p in build.iterdir() if p.is_dir()):
            total = files = pyc = 0
            for dirpath, _dirs, names in os.walk(artifact):
                for name in names:
                    path = os.path.join(dirpath, name)
                    if os.path.islink(path):
                        continue
                    total += os.path.getsize(path)
                    files += 1
                    pyc += name.endswith(".pyc")
            sizes[artifact.name] = {
                "bytes": total,
                "files": files,
                "pyc": pyc,
                "botocore": (artifact / "python" / "botocore").exists(),
                "dev": (artifact / "python" / "signoff_dev").exists(),
            }
        self.results["sizes"] = sizes
        if not self.args.build_dir:
            shutil.rmtree(build, ignore_errors=True)

    # ---------------------------------------------------------------- the tables
    def report(self) -> str:
        r = self.results
        m = r["machine"]
        lines: list[str] = [
            f"{m['cpus']} CPUs {m['arch']}, Python {m['python']}; load average "
            f"{m['load_at_start'][0]:.1f} at the start, {m.get('load_at_end', [0])[0]:.1f} at the end",
            "",
        ]
        ms = lambda v: f"{v:.0f}" if v >= 10 else f"{v:.1f}"  # noqa: E731
        if "cold" in r:
            lines += [
                f"Cold start, ms: fresh process, import of the handler module + its first event "
                f"(median / p95 of {self.args.runs}; layers with the .pyc the build ships, and without)",
                "",
                "| function | import | first event | cold | cold, CPU | cold, no .pyc "
                "| of which `openai` import | cold without it | SnapStart restored | DB round trips "
                "| peak RSS MiB |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for function in r["cold"]:
                c = r["cold"][function]
                openai_ms = _median(c["openai_ms"]) if c.get("openai_ms") else 0.0
                cold_ms = _median(c["pyc_cold"])
                snap = (
                    f"{ms(_median(c['snap_restored']))} / {ms(_pct(c['snap_restored'], 0.95))}"
                    if c.get("snap_restored")
                    else "—"
                )
                db = c["db_first"][0]
                rss = max(c["pyc_rss"] + c["source_rss"] + c.get("snap_rss", []))
                lines.append(
                    f"| {LABELS[function]} | {ms(_median(c['pyc_import']))} | {ms(_median(c['pyc_first']))} "
                    f"| {ms(cold_ms)} / {ms(_pct(c['pyc_cold'], 0.95))} | {ms(_median(c['pyc_cold_cpu']))} "
                    f"| {ms(_median(c['source_cold']))} / {ms(_pct(c['source_cold'], 0.95))} "
                    f"| {ms(openai_ms) if openai_ms else '—'} "
                    f"| {ms(cold_ms - openai_ms) if openai_ms else ms(cold_ms)} | {snap} "
                    f"| {db['round_trips']} (+{db['connects']} connect) | {rss:.0f} |"
                )
            xray = [(f, c) for f, c in r["cold"].items() if c.get("xray_cold")]
            if xray:
                lines.append("")
                lines.append(
                    "X-Ray SDK on (Lambda with Tracing: Active; off above, "
                    "as with POWERTOOLS_TRACE_DISABLED=true): "
                    + "; ".join(
                        f"{LABELS[f]} cold {ms(_median(c['xray_cold']))} ms "
                        f"({_median(c['xray_cold']) - _median(c['pyc_cold']):+.0f}), "
                        f"peak RSS {max(c['xray_rss']):.0f} MiB"
                        for f, c in xray
                    )
                )
            snaps = [(f, c) for f, c in r["cold"].items() if c.get("snap_restored")]
            if snaps:
                lines.append(
                    "SnapStart: init before the snapshot (import, priming, before-snapshot hooks) "
                    + "; ".join(f"{LABELS[f]} {ms(_median(c['snap_init']))} ms" for f, c in snaps)
                    + "; restored = after-restore hooks + first event, openai primed: "
                    + ", ".join(str(all(c["snap_primed"])) for _, c in snaps)
                )
            if r.get("floor_ms"):
                floor = _median(r["floor_ms"])
                lines.append(
                    "Floor: a fresh process importing only the libraries every function needs "
                    f"({', '.join(FLOOR_MODULES)}): {ms(floor)} ms p50 this run; the cold starts above "
                    "are, in multiples of it: "
                    + ", ".join(
                        f"{LABELS[f].split(' (')[0]} {_median(c['pyc_cold']) / floor:.2f}"
                        for f, c in r["cold"].items()
                        if c.get("pyc_cold")
                    )
                )
            if r.get("secrets_client_ms"):
                lines.append(
                    "Not in the table, AWS only: the first read of a secret (the database URL, in every "
                    "function) loads boto3 and Powertools' parameters and builds a Secrets Manager client: "
                    f"{ms(_median(r['secrets_client_ms']))} ms here, before its HTTPS call"
                )
            lines.append("")
        if "warm" in r:
            lines += [
                f"Warm, per invocation: one process per function, {self.args.warmup} warm-up events, then "
                f"{self.args.flows} timed; stand-in model with no latency, PostgreSQL on a Unix socket",
                "",
                "| function | p50 ms | p95 ms | waiting on PostgreSQL, p50 | model request, p50 "
                "| Signoff's own, p50 / p95 | DB round trips | statements | transactions | peak RSS MiB |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            for function, w in r["warm"].items():
                db = w["db"][-1]
                label = LABELS.get(function) or LABELS[function.split("+")[0]] + ", X-Ray SDK on"
                split = "| — | — | — "
                if w.get("own_ms") and any(w["db_ms"]):
                    model = f"{_median(w['model_ms']):.2f}" if any(w["model_ms"]) else "—"
                    split = (
                        f"| {_median(w['db_ms']):.2f} | {model} "
                        f"| {_median(w['own_ms']):.2f} / {_pct(w['own_ms'], 0.95):.2f} "
                    )
                lines.append(
                    f"| {label} | {_median(w['ms']):.2f} | {_pct(w['ms'], 0.95):.2f} {split}"
                    f"| {db['round_trips']} | {db['statements']} | {db['transactions']} | {w['rss']:.0f} |"
                )
            lines.append("")
        if "providers" in r:
            lines += [
                "The same agent on OpenAI and on Amazon Bedrock (each against its stand-in, no latency), ms",
                "",
                "| figure | OpenAI p50 / p95 | Bedrock p50 / p95 |",
                "|---|---|---|",
            ]
            p = r["providers"]
            for figure in (
                "start cold", "start first event", "start SnapStart restored", "continue cold",
                "continue first event", "start warm", "start warm model", "continue warm",
                "continue warm model", "start rss",
            ):  # fmt: skip
                cells = [
                    f"{ms(_median(p[k]))} / {ms(_pct(p[k], 0.95))}" if p.get(k) else "—"
                    for k in (f"OpenAI {figure}", f"Bedrock {figure}")
                ]
                lines.append(f"| {figure} | {cells[0]} | {cells[1]} |")
            for figure in ("boto3 import", "boto3 + bedrock provider import"):
                if p.get(figure):
                    lines.append(
                        f"| {figure}, fresh process "
                        f"| {ms(_median(p[figure]))} / {ms(_pct(p[figure], 0.95))} | |"
                    )
            lines.append("")
        if "http" in r:
            kept, fresh = r["http"]["kept_alive_ms"], r["http"]["fresh_ms"]
            lines += [
                f"make dev's HTTP server (in-process, one warm handler), GET of one run, ms: {len(kept)} "
                "requests on one kept-alive connection and as many on a fresh connection each, interleaved",
                "",
                "| connection | p50 | p95 | max |",
                "|---|---|---|---|",
                *(
                    f"| {label} | {_median(v):.2f} | {_pct(v, 0.95):.2f} | {max(v):.2f} |"
                    for label, v in (("kept alive", kept), ("fresh (connect included)", fresh))
                ),
                "",
            ]
        if "inbox" in r:
            inbox = r["inbox"]
            lines += [
                f"The approver's inbox at size: {inbox['pending']} pending approvals across "
                f"{INBOX_RUNS} runs (seeded through the start handler in {inbox['seed_s']} s); the "
                "ApprovalsFunction handler, warm and in-process, as a finance approver (JWT), ms "
                "(the goal: a page under 100 ms at p50)",
                "",
                "| request | p50 | p95 | max |",
                "|---|---|---|---|",
                *(
                    f"| {label} | {_median(v):.2f} | {_pct(v, 0.95):.2f} | {max(v):.2f} |"
                    for label, v in inbox["ms"].items()
                ),
                "",
            ]
        if "sizes" in r:
            total = sum(s["bytes"] for s in r["sizes"].values())
            lines += [
                "Built artifacts (sam build, arm64), unzipped"
                + (f"; the build took {r['sam_build_s']} s" if "sam_build_s" in r else ""),
                "",
                "| artifact | MiB | files | .pyc | botocore | signoff_dev |",
                "|---|---|---|---|---|---|",
            ]
            for name, s in r["sizes"].items():
                lines.append(
                    f"| {name} | {s['bytes'] / 2**20:.1f} | {s['files']} | {s['pyc']} "
                    f"| {'yes' if s['botocore'] else 'no'} | {'yes' if s['dev'] else 'no'} |"
                )
            lines.append(f"| **total** | **{total / 2**20:.1f}** | | | | |")
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import shutil
    from pathlib import Path

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="cold starts per function and variant (7)")
    parser.add_argument("--flows", type=int, default=300, help="timed warm invocations per function (300)")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up invocations before timing (20)")
    parser.add_argument("--counted", type=int, default=3, help="invocations traced for round trips (3)")
    parser.add_argument(
        "--xray-runs", type=int, default=5, help="cold starts with the X-Ray SDK on (5; 0: none)"
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness for the bench and everything it starts (e.g. -10 on a shared machine, as root)",
    )
    parser.add_argument(
        "--xray-functions",
        nargs="*",
        default=["ReadRunsFunction", "StartRunFunction"],
        help="functions measured with the X-Ray SDK on",
    )
    parser.add_argument("--no-build", action="store_true", help="skip sam build and the sizes")
    parser.add_argument("--build-dir", help="measure this existing sam build output instead of building")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["cold", "warm", "providers", "http", "inbox", "sizes"]
    )
    parser.add_argument("--out", help="where to write the raw figures (default bench-results/<time>.json)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (trees, child logs)")
    parser.add_argument(
        "--profile",
        nargs="+",
        metavar="FUNCTION",
        choices=sorted(FUNCTIONS),
        help="instead of the tables: where one cold start of these functions spends its time "
        "(the slowest imports from -X importtime, then cProfile of import + first event)",
    )
    parser.add_argument(
        "--profile-warm",
        action="store_true",
        help="instead of the tables: cProfile of warm starts and continues (after --warmup events)",
    )
    args = parser.parse_args(argv)
    if min(args.runs, args.flows, args.counted) < 1 or args.warmup < 0:
        parser.error("--runs, --flows and --counted must be positive")

    for entry in (
        os.path.join(ROOT, "devtools"),
        os.path.join(ROOT, "layers", "agents"),
        os.path.join(ROOT, "layers", "signoff"),
    ):
        sys.path.insert(0, entry)
    import logging
    import warnings

    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    if args.nice:
        os.nice(args.nice)  # inherited by PostgreSQL, the stand-in and every measured process
    bench = Bench(args)
    t0 = time.monotonic()
    print(f"bench: work folder {bench.work}", flush=True)
    try:
        bench.start_services()
        # The in-process handlers that make fixtures log every request: keep them quiet.
        os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
        import importlib.util

        bench.snapstart = importlib.util.find_spec("signoff.snapstart") is not None
        bench.build_trees()
        if args.profile:
            for function in args.profile:
                bench.profile(function)
            return 0
        if args.profile_warm:
            bench.profile_warm()
            return 0
        if "cold" not in args.skip:
            bench.cold()
        if "warm" not in args.skip:
            print("  warm invocations…", flush=True)
            bench.warm()
        if "providers" not in args.skip:
            print("  OpenAI and Bedrock agents…", flush=True)
            bench.providers()
        if "http" not in args.skip:
            print("  make dev's server: kept-alive and fresh connections…", flush=True)
            bench.http()
        if "inbox" not in args.skip:
            print(f"  the inbox at size: {INBOX_RUNS * INBOX_CALLS_PER_RUN} pending approvals…", flush=True)
            bench.inbox()
        if "sizes" not in args.skip and not args.no_build:
            print("  sam build…", flush=True)
            bench.sizes()
    finally:
        try:
            bench.stop_services()
        except Exception as exc:  # reporting matters more than a clean stop
            print(f"bench: could not stop the services: {exc}", file=sys.stderr)
    bench.results["seconds"] = round(time.monotonic() - t0, 1)
    bench.results["machine"]["load_at_end"] = os.getloadavg()
    out = Path(args.out) if args.out else Path(ROOT) / "bench-results" / time.strftime("%Y%m%d-%H%M%S.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(bench.results, indent=1, default=str))
    print()
    print(bench.report())
    print(f"\nbench: {bench.results['seconds']} s, {bench.children} processes; raw figures in {out}")
    if args.keep:
        print(f"bench: kept {bench.work}")
    else:
        shutil.rmtree(bench.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2])
    else:
        sys.exit(main())
