"""`make invoke`: the `sam local invoke` equivalent, in-process, on the dev database and model.

The event's ``__NAME__`` placeholders are filled from ``--set NAME=VALUE`` or the environment
(``RUN_ID``, ``TOOL_CALL_ID``, ``SESSION_ID``, ``TOKEN``: an approval link's token, or the whole link).
Then the signatures are computed over the final body with the local secrets: ``__SIGNATURE__``
(``Signoff-Signature``, ``SIGNOFF_WEBHOOK_SECRET``), ``__SLACK_TIMESTAMP__`` and ``__SLACK_SIGNATURE__``
(Slack v0, ``SIGNOFF_SLACK_SIGNING_SECRET``).

The function gets its own template environment (``signoff_dev.env``). What it sends to the resume
queue is printed with the command that delivers it (``make invoke FUNCTION=ResumeWorkerFunction
EVENT=events/resume_queue.json RUN_ID=...``), and a pause's approval links are printed, as
``make dev`` does; nothing reaches AWS.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from signoff import runtime
from signoff_dev.apigw import FakeLambdaContext, event_body_bytes
from signoff_dev.devserver import (
    DEV_SLACK_SIGNING_SECRET,
    DEV_WEBHOOK_SECRET,
    LocalBackends,
    lambda_result_to_http,
)
from signoff_dev.handlers import get_function, invoke
from signoff_dev.notifier import CHANNEL_VARIABLES, LocalNotifier
from signoff_dev.template import TEMPLATE_NAME, find_repo_root, load_template

PLACEHOLDER = re.compile(r"__([A-Z][A-Z0-9_]*)__")
KNOWN_PLACEHOLDERS = ("RUN_ID", "TOOL_CALL_ID", "SESSION_ID", "TOKEN")
# Computed last, over the final body (see ``sign_placeholders``).
COMPUTED_PLACEHOLDERS = ("SIGNATURE", "SLACK_TIMESTAMP", "SLACK_SIGNATURE")


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


def signature_values(
    event: dict[str, Any],
    *,
    webhook_secret: str,
    slack_signing_secret: str,
    now: int | None = None,
) -> dict[str, str]:
    """The computed placeholders for an event whose other placeholders are filled.

    Args:
        event: the filled event (its body is final).
        webhook_secret: signs ``__SIGNATURE__`` (``t=<unix>,v1=<HMAC-SHA256 of "<unix>." + body>``,
            as ``signoff.approvals.sign``).
        slack_signing_secret: signs ``__SLACK_SIGNATURE__`` (``v0=<HMAC-SHA256 of "v0:<ts>:" + body>``).
        now: the timestamp (epoch seconds); now when None.

    Returns:
        ``SIGNATURE``, ``SLACK_TIMESTAMP`` and ``SLACK_SIGNATURE``.
    """
    timestamp = int(time.time()) if now is None else int(now)
    body = event_body_bytes(event)
    digest = hmac.new(webhook_secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    slack = hmac.new(slack_signing_secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
    return {
        "SIGNATURE": f"t={timestamp},v1={digest}",
        "SLACK_TIMESTAMP": str(timestamp),
        "SLACK_SIGNATURE": f"v0={slack.hexdigest()}",
    }


def prepare_event(
    event: dict[str, Any],
    values: dict[str, str],
    *,
    webhook_secret: str,
    slack_signing_secret: str,
    now: int | None = None,
) -> tuple[dict[str, Any], set[str]]:
    """Fill an event's placeholders: the given values first, then the signatures over the final body.

    Args:
        event: the sample event (not modified).
        values: placeholder name → value (``RUN_ID``, ``TOKEN``...).
        webhook_secret: the ``Signoff-Signature`` secret.
        slack_signing_secret: the Slack signing secret.
        now: the signatures' timestamp; now when None.

    Returns:
        The filled event and the names still missing a value.
    """
    given = {name: value for name, value in values.items() if name not in COMPUTED_PLACEHOLDERS}
    filled, missing = fill_placeholders(event, given)
    computed = set(COMPUTED_PLACEHOLDERS) & missing
    if computed and not (missing - computed):
        signatures = signature_values(
            filled, webhook_secret=webhook_secret, slack_signing_secret=slack_signing_secret, now=now
        )
        filled, missing = fill_placeholders(filled, signatures)
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
    if "/approve/" in values.get("TOKEN", ""):  # the whole approval link was given
        values["TOKEN"] = values["TOKEN"].rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    return values


def decision_hint(notifier: LocalNotifier | None) -> str | None:
    """The commands that decide a pause from outside, as a link, a webhook or Slack would.

    Args:
        notifier: the notifier that recorded the pauses of this invocation.

    Returns:
        The hint, or None when no pause with links was announced.
    """
    if notifier is None:
        return None
    lines = []
    for detail in notifier.paused:
        for call in detail.get("tool_calls") or []:
            if not call.get("approve_url"):
                continue
            token = call["approve_url"].rsplit("/", 1)[-1]
            ids = f"RUN_ID={detail['run_id']} TOOL_CALL_ID={call['tool_call_id']}"
            command = "make invoke FUNCTION=ApprovalsFunction EVENT=events"
            lines += [
                f"Or decide {call['tool_name']} from outside (then deliver the queued resume):",
                f"  approval link:  {command}/approval_link_post.json TOKEN={token}",
                f"  signed webhook: {ids} {command}/approval_webhook.json",
                f"  Slack button:   {ids} {command}/approval_slack.json",
            ]
    return "\n".join(lines) or None


class PrintingQueue:
    """``make invoke``'s resume queue: prints each message with the command that delivers it.

    Attributes:
        sent: the messages, in order.
    """

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def hint(self) -> str | None:
        """The next commands, or None when nothing was sent."""
        if not self.sent:
            return None
        lines = ["Sent to the resume queue (in AWS, SQS hands it to ResumeWorkerFunction):"]
        for message in self.sent:
            lines.append(f"  {json.dumps(message)}")
            lines.append(
                f"  deliver it: make invoke FUNCTION=ResumeWorkerFunction EVENT=events/resume_queue.json "
                f"RUN_ID={message.get('run_id')}"
            )
        return "\n".join(lines)


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
    parser = argparse.ArgumentParser(prog="python -m signoff_dev.invoke", description=__doc__)
    parser.add_argument("function", help="logical id in template.yaml, e.g. StartRunFunction")
    parser.add_argument("event", type=Path, help="event file, e.g. events/start_run.json")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fill __KEY__ placeholders (RUN_ID, TOOL_CALL_ID, SESSION_ID, TOKEN also come from the "
        "environment; SIGNATURE and the SLACK_ ones are computed)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    repo_root = find_repo_root()
    template = load_template(repo_root / TEMPLATE_NAME)
    webhook_secret = os.environ.get("SIGNOFF_WEBHOOK_SECRET") or DEV_WEBHOOK_SECRET
    slack_secret = os.environ.get("SIGNOFF_SLACK_SIGNING_SECRET") or DEV_SLACK_SIGNING_SECRET
    try:
        function = get_function(args.function, template)
        values = placeholder_values(args.set)
        event, missing = prepare_event(
            json.loads(args.event.read_text()),
            values,
            webhook_secret=webhook_secret,
            slack_signing_secret=slack_secret,
        )
    except (KeyError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if missing:
        names = ", ".join(sorted(missing - set(COMPUTED_PLACEHOLDERS)))
        where = (
            "TOKEN is the last part of an approval link (printed when a run pauses)"
            if "TOKEN" in missing
            else "the ids are in the PAUSED answer of StartRunFunction"
        )
        print(
            f"error: {args.event} needs values for {names}: pass --set NAME=VALUE or set them in the "
            f"environment ({where})",
            file=sys.stderr,
        )
        return 2
    for layer in reversed(template.layer_dirs):
        if str(layer) not in sys.path:
            sys.path.insert(0, str(layer))
    backends = LocalBackends(repo_root, template=template)
    backends.start()
    for name, value in backends.overlays.get(args.function, {}).items():
        if value is not None:
            backends._setenv(name, value)  # this function's template environment (restored by stop)
    queue = PrintingQueue()
    notifier = None if any(os.environ.get(name) for name in CHANNEL_VARIABLES) else LocalNotifier()
    runtime.provide(queue=queue, notifier=notifier)
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
        runtime.reset(keep_provided=False)
        backends.stop()
    if worker.is_alive():
        return 1
    if "error" in outcome:
        error = outcome["error"]
        traceback.print_exception(error, file=sys.stderr)
        print(json.dumps({"errorMessage": str(error), "errorType": type(error).__name__}, indent=2))
        return 1
    print(format_result(outcome["result"]))
    for hint in (pause_hint(outcome["result"]), decision_hint(notifier), queue.hint()):
        if hint:
            print("\n" + hint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
