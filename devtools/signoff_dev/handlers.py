"""Loads Lambda handlers from their code folders (every one is ``app.py``) and invokes them in-process."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from signoff_dev.apigw import FakeLambdaContext
from signoff_dev.template import Function, Template, find_repo_root, load_template

Handler = Callable[[dict[str, Any], Any], Any]

_cache: dict[tuple[Path, str], Handler] = {}
_lock = threading.Lock()
_templates: dict[Path, Template] = {}


def load_handler(code_uri: Path, handler: str) -> Handler:
    """Import a handler by file path under a unique module name, once per (folder, handler).

    Args:
        code_uri: the function's code folder.
        handler: ``module.function`` (the module may be dotted: ``pkg.app.handler``).

    Returns:
        The handler function.

    Raises:
        FileNotFoundError: when the module file does not exist.
        AttributeError: when the module has no such function.
    """
    code_uri = Path(code_uri).resolve()
    key = (code_uri, handler)
    with _lock:
        if key in _cache:
            return _cache[key]
        module_path, _, function_name = handler.rpartition(".")
        file = code_uri.joinpath(*module_path.split(".")).with_suffix(".py")
        if not file.is_file():
            raise FileNotFoundError(f"handler module {file} not found (Handler: {handler})")
        digest = hashlib.sha1(str(file).encode()).hexdigest()[:10]
        name = f"_signoff_local_fn_{code_uri.name}_{digest}"
        spec = importlib.util.spec_from_file_location(name, file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        # Lambda puts the code folder on sys.path: sibling modules of app.py import as top-level names.
        added = str(code_uri) not in sys.path
        if added:
            sys.path.insert(0, str(code_uri))
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        finally:
            if added:
                sys.path.remove(str(code_uri))
        function = getattr(module, function_name)
        _cache[key] = function
        return function


def clear_cache() -> None:
    """Forget loaded handlers and templates (the next invoke imports them afresh: a cold start)."""
    with _lock:
        for function in _cache.values():
            sys.modules.pop(function.__module__, None)
        _cache.clear()
        _templates.clear()


def _template(template: Template | Path | None) -> Template:
    if isinstance(template, Template):
        return template
    path = Path(template) if template is not None else find_repo_root() / "template.yaml"
    path = path.resolve()
    if path not in _templates:
        _templates[path] = load_template(path)
    return _templates[path]


def get_function(logical_id: str, template: Template | Path | None = None) -> Function:
    """Look up a function of the template by logical id.

    Args:
        logical_id: e.g. ``StartRunFunction``.
        template: a loaded template, a template path, or None for the checkout's ``template.yaml``.

    Returns:
        The function.

    Raises:
        KeyError: when the template has no such function (the message lists the ones it has).
    """
    loaded = _template(template)
    try:
        return loaded.functions[logical_id]
    except KeyError:
        known = ", ".join(sorted(loaded.functions)) or "none"
        raise KeyError(f"no function {logical_id!r} in {loaded.path} (functions: {known})") from None


def invoke(
    logical_id: str,
    event: dict[str, Any],
    context: Any = None,
    *,
    template: Template | Path | None = None,
) -> Any:
    """Call a function's handler in-process, as Lambda would.

    Args:
        logical_id: the function's logical id in the template.
        event: the event to pass.
        context: a Lambda context; defaults to a ``FakeLambdaContext`` with the function's timeout
            (29 s when the template sets none) and memory.
        template: a loaded template, a template path, or None for the checkout's ``template.yaml``.

    Returns:
        Whatever the handler returns (a dict for HTTP handlers).
    """
    function = get_function(logical_id, template)
    handler = load_handler(function.code_uri, function.handler)
    if context is None:
        timeout_ms = (function.timeout_s or 29) * 1000
        context = FakeLambdaContext(logical_id, timeout_ms=timeout_ms, memory_mb=function.memory_mb or 256)
    return handler(event, context)
