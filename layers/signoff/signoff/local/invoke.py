"""`make invoke`: the `sam local invoke` equivalent, in-process, on the dev database and model."""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import os
import re
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from signoff.local.apigw import FakeLambdaContext
from signoff.local.devserver import LocalBackends, lambda_result_to_http
from signoff.local.handlers import get_function, invoke
from signoff.local.template import TEMPLATE_NAME, find_repo_root, load_template

PLACEHOLDER = re.compile(r"__([A-Z][A-Z0-9_]*)__")
KNOWN_PLACEHOLDERS = ("RUN_ID", "TOOL_CALL_ID", "SESSION_ID")


def _replace(text: str, values: dict[str, str], missing: set[str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in values:
            return values[name]
        missing.add(name)
        return match.group(0)

    return PLACEHOLDER.sub(substitute, text)


def _walk(value: Any, values: dict[str, str], missing: set[str]) -> Any:
    if isinstance(value, str):
        return _replace(value, values, missing)
    if isinstance(value, list):
        return [_walk(item, values, missing) for item in value]
    if isinstance(value, dict):
        return {_replace(key, values, missing): _walk(item, values, missing) for key, item in value.items()}
    return value


def fill_placeholders(event: dict[str, Any], values: dict[str, str]) -> tuple[dict[str, Any], set[str]]:
    """Replace ``__NAME__`` placeholders everywhere in an event, inside a base64 body too.

    Args:
        event: the sample event (not modified).
        values: placeholder name (without underscores, e.g. ``RUN_ID``) → value.

    Returns:
        The filled event and the names of placeholders left without a value.
    """
    missing: set[str] = set()
    filled = _walk({key: value for key, value in event.items() if key != "body"}, values, missing)
    body = event.get("body")
    if isinstance(body, str):
        if event.get("isBase64Encoded"):
            raw = base64.b64decode(body).decode("utf-8", errors="surrogateescape")
            data = _replace(raw, values, missing).encode("utf-8", errors="surrogateescape")
            filled["body"] = base64.b64encode(data).decode("ascii")
        else:
            data = _replace(body, values, missing).encode()
            filled["body"] = data.decode()
        headers = filled.get("headers") or {}
        if "content-length" in headers:
            headers["content-length"] = str(len(data))
    return filled, missing


def placeholder_values(sets: list[str], environ: dict[str, str] | None = None) -> dict[str, str]:
    """Collect placeholder values: ``--set KEY=VALUE`` first, then the environment for the known names.

    Args:
        sets: ``KEY=VALUE`` strings.
        environ: the environment; defaults to ``os.environ``.

    Returns:
        KEY → VALUE.

    Raises:
        ValueError: for a ``--set`` without ``=``.
    """
    env = os.environ if environ is None else environ
    values = {name: env[name] for name in KNOWN_PLACEHOLDERS if env.get(name)}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        values[key.strip().upper()] = value
    return values


def format_result(result: Any) -> str:
    """Render a handler's result for the terminal: status, headers, and the body (pretty if JSON).

    Args:
        result: what the handler returned.

    Returns:
        The text to print.
    """
    if not (isinstance(result, dict) and "statusCode" in result):
        return json.dumps(result, indent=2, default=str)
    status, headers, data = lambda_result_to_http(result)
    lines = [f"HTTP {status}"] + [f"{name}: {value}" for name, value in headers]
    text = data.decode("utf-8", errors="replace")
    with contextlib.suppress(ValueError):
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return "\n".join([*lines, "", text])


def pause_hint(result: Any) -> str | None:
    """The next commands after a PAUSED answer: approve or reject each pending tool call.

    Args:
        result: what the handler returned.

    Returns:
        The hint, or None when the answer is not a paused run.
    """
    if not (isinstance(result, dict) and "statusCode" in result):
        return None
    try:
        run = json.loads(lambda_result_to_http(result)[2])
    except ValueError:
        return None
    if not isinstance(run, dict) or str(run.get("status", "")).upper() != "PAUSED":
        return None
    pending = [
        req.get("tool_execution") or {} for req in run.get("requirements") or [] if isinstance(req, dict)
    ] or [
        tool
        for tool in run.get("tools") or []
        if isinstance(tool, dict) and tool.get("requires_confirmation")
    ]
    run_id = run.get("run_id", "<run_id>")
    lines = [f"Run {run_id} is PAUSED (session {run.get('session_id')}), waiting on:"]
    for tool in pending:
        args = json.dumps(tool.get("tool_args") or {}, ensure_ascii=False)
        lines.append(f"  {tool.get('tool_name')}({args})  tool_call_id={tool.get('tool_call_id')}")
    for tool in pending:
        prefix = f"RUN_ID={run_id} TOOL_CALL_ID={tool.get('tool_call_id')}"
        lines += [
            f"Approve {tool.get('tool_name')}:",
            f"  {prefix} make invoke FUNCTION=ContinueRunFunction EVENT=events/continue_run.json",
            "Reject it:",
            f"  {prefix} make invoke FUNCTION=ContinueRunFunction EVENT=events/continue_run_reject.json",
        ]
    if len(pending) > 1:
        lines.append("(each event decides one call; the run stays PAUSED until every call is decided)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Invoke one function's handler with a sample event, on the dev database and model.

    Args:
        argv: ``<LogicalId> <event.json> [--set KEY=VALUE ...]``.

    Returns:
        The exit code: 0 when the handler returned, 1 when it raised or timed out, 2 on bad usage.
    """
    parser = argparse.ArgumentParser(prog="python -m signoff.local.invoke", description=__doc__)
    parser.add_argument("function", help="logical id in template.yaml, e.g. StartRunFunction")
    parser.add_argument("event", type=Path, help="event file, e.g. events/start_run.json")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fill __KEY__ placeholders (RUN_ID, TOOL_CALL_ID, SESSION_ID also come from the environment)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    repo_root = find_repo_root()
    template = load_template(repo_root / TEMPLATE_NAME)
    try:
        function = get_function(args.function, template)
        values = placeholder_values(args.set)
        event, missing = fill_placeholders(json.loads(args.event.read_text()), values)
    except (KeyError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if missing:
        names = ", ".join(sorted(missing))
        print(
            f"error: {args.event} needs values for {names}: pass --set NAME=VALUE or set them in the "
            "environment (the ids are in the PAUSED answer of StartRunFunction)",
            file=sys.stderr,
        )
        return 2
    for layer in reversed(template.layer_dirs):
        if str(layer) not in sys.path:
            sys.path.insert(0, str(layer))
    backends = LocalBackends(repo_root, template=template)
    backends.start()
    timeout_ms = (function.timeout_s or 29) * 1000
    context = FakeLambdaContext(args.function, timeout_ms=timeout_ms, memory_mb=function.memory_mb or 256)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = invoke(args.function, event, context, template=template)
        except BaseException as error:  # reported below, like Lambda's errorMessage/errorType
            outcome["error"] = error

    worker = threading.Thread(target=run, name=f"invoke-{args.function}", daemon=True)
    try:
        worker.start()
        worker.join(timeout_ms / 1000 + 1)
    finally:
        if worker.is_alive():
            print(f"Task timed out after {timeout_ms / 1000:.2f} seconds", file=sys.stderr)
        backends.stop()
    if worker.is_alive():
        return 1
    if "error" in outcome:
        error = outcome["error"]
        traceback.print_exception(error, file=sys.stderr)
        print(json.dumps({"errorMessage": str(error), "errorType": type(error).__name__}, indent=2))
        return 1
    print(format_result(outcome["result"]))
    hint = pause_hint(outcome["result"])
    if hint:
        print("\n" + hint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
