"""Reads template.yaml for the local server: each function's code, handler, environment, HttpApi routes
(with the authorizer API Gateway would run for each), SQS and schedule triggers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

TEMPLATE_NAME = "template.yaml"
_PARAM = re.compile(r"^\{([A-Za-z0-9_.-]+)(\+?)\}$")


class _CfnLoader(yaml.SafeLoader):
    """A safe YAML loader that reads CloudFormation short tags (!Ref, !GetAtt, !Sub, ...) as dicts."""


def _cfn_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    key = "Ref" if tag_suffix == "Ref" else "Condition" if tag_suffix == "Condition" else f"Fn::{tag_suffix}"
    return {key: value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


@dataclass(frozen=True)
class Route:
    """One HttpApi route of a function, e.g. ``POST /agents/{agent_id}/runs``.

    Attributes:
        method: upper-case HTTP method, or ``ANY``.
        path: the route path with ``{param}`` / ``{proxy+}`` segments.
        function_id: logical id of the function serving it.
        authorizer: the authorizer API Gateway runs before this route (the route's ``Auth.Authorizer``,
            else the API's ``DefaultAuthorizer``); None for an open route (``Authorizer: NONE``, or an
            API without authorizers). Conditions (``!If``) are resolved with the parameters' defaults.
        scopes: the route's ``AuthorizationScopes`` (the token must carry one of them), if any.
    """

    method: str
    path: str
    function_id: str
    authorizer: str | None = None
    scopes: tuple[str, ...] = ()

    @property
    def route_key(self) -> str:
        """The API Gateway route key, e.g. ``"POST /agents/{agent_id}/runs"``."""
        return f"{self.method} {self.path}"

    def _segments(self) -> list[str]:
        return self.path.strip("/").split("/") if self.path.strip("/") else []

    def specificity(self) -> tuple[int, ...]:
        """Sort key: literal segments beat parameters, which beat greedy ``{proxy+}``; ANY comes last."""
        ranks = []
        for segment in self._segments():
            match = _PARAM.match(segment)
            ranks.append(0 if match is None else 2 if match.group(2) else 1)
        return (*ranks, 3, 1 if self.method == "ANY" else 0)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Match a request against this route.

        Args:
            method: the request's HTTP method.
            path: the request path (percent-encoded as received, without the query string).

        Returns:
            The path parameters (decoded) when the route matches, else None.
        """
        if self.method not in ("ANY", method.upper()):
            return None
        wanted = self._segments()
        given = path.strip("/").split("/") if path.strip("/") else []
        params: dict[str, str] = {}
        for index, segment in enumerate(wanted):
            match = _PARAM.match(segment)
            if match and match.group(2):  # greedy: the rest of the path, at least one segment
                rest = given[index:]
                if not rest or not all(rest):
                    return None
                params[match.group(1)] = unquote("/".join(rest))
                return params
            if index >= len(given) or not given[index]:
                return None
            if match:
                params[match.group(1)] = unquote(given[index])
            elif unquote(given[index]) != segment:
                return None
        return params if len(given) == len(wanted) else None


@dataclass(frozen=True)
class Function:
    """One ``AWS::Serverless::Function`` as the local server needs it.

    Attributes:
        logical_id: the resource's logical id, e.g. ``StartRunFunction``.
        code_uri: absolute path of the function's code folder.
        handler: ``module.function``, e.g. ``app.lambda_handler``.
        routes: its HttpApi routes (empty for functions without HTTP events).
        environment: literal environment variables (Globals merged; parameter defaults resolved;
            values that need a deployed stack, like ``!Ref`` of a resource, are left out).
        timeout_s: the function timeout in seconds, when set.
        memory_mb: the memory size, when set.
        queues: logical ids of the SQS queues it consumes (``Type: SQS`` events).
        batch_size: the largest SQS batch it is given (``BatchSize``, SQS's default 10).
        schedules: its ``Type: Schedule`` expressions, e.g. ``rate(5 minutes)``.
    """

    logical_id: str
    code_uri: Path
    handler: str
    routes: tuple[Route, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)
    timeout_s: int | None = None
    memory_mb: int | None = None
    queues: tuple[str, ...] = ()
    batch_size: int = 10
    schedules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Template:
    """The parts of a SAM template that the local server uses.

    Attributes:
        path: the template file.
        functions: logical id → function.
        layer_dirs: the ``ContentUri`` folders of the template's layers (put on ``sys.path`` locally,
            as Lambda puts layers under /opt/python).
    """

    path: Path
    functions: dict[str, Function]
    layer_dirs: tuple[Path, ...] = ()

    def consumers(self) -> list[Function]:
        """The functions with an SQS trigger (the resume worker), in template order."""
        return [function for function in self.functions.values() if function.queues]

    def scheduled(self) -> list[Function]:
        """The functions with a schedule trigger (upkeep), in template order."""
        return [function for function in self.functions.values() if function.schedules]

    @property
    def routes(self) -> list[Route]:
        """All HttpApi routes, most specific first (the order in which they are matched)."""
        routes = [route for function in self.functions.values() for route in function.routes]
        return sorted(routes, key=Route.specificity)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """Find the route serving a request, as API Gateway does (literal segments beat parameters).

        Args:
            method: the HTTP method.
            path: the raw request path, without the query string.

        Returns:
            The route and its path parameters, or None (API Gateway answers 404).
        """
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML file, reading short tags like ``!Ref X`` as ``{"Ref": "X"}``.

    Args:
        path: the YAML file.

    Returns:
        The document as plain dicts and lists.
    """
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader) or {}


class _Unresolved(Exception):
    """A value that needs a deployed stack (a resource's ``!Ref``, ``!GetAtt``, ``!Sub``...)."""


_NO_VALUE = object()


class _Resolver:
    """Resolves the intrinsics a local run can know: parameter ``!Ref`` (defaults, or overrides),
    conditions, ``!If`` and ``AWS::NoValue``. Anything else raises ``_Unresolved``."""

    def __init__(self, parameters: dict[str, Any], conditions: dict[str, Any], overrides: dict[str, str]):
        self.parameters = parameters
        self.conditions = conditions
        self.overrides = overrides
        self._evaluating: set[str] = set()

    def ref(self, name: str) -> Any:
        if name in self.overrides:
            return self.overrides[name]
        spec = self.parameters.get(name)
        if isinstance(spec, dict) and "Default" in spec:
            default = spec["Default"]
            if str(spec.get("Type", "")).startswith(("CommaDelimitedList", "List<")):
                return [item.strip() for item in str(default).split(",")] if default != "" else [""]
            return default
        raise _Unresolved(name)

    def condition(self, name: str) -> bool:
        if name in self._evaluating or name not in self.conditions:
            raise _Unresolved(name)
        self._evaluating.add(name)
        try:
            return self.truth(self.conditions[name])
        finally:
            self._evaluating.discard(name)

    def truth(self, expr: Any) -> bool:
        if isinstance(expr, dict) and len(expr) == 1:
            ((key, arg),) = expr.items()
            if key == "Condition":
                return self.condition(str(arg))
            if key == "Fn::Equals" and isinstance(arg, list) and len(arg) == 2:
                return self.scalar(arg[0]) == self.scalar(arg[1])
            if key == "Fn::Not" and isinstance(arg, list) and len(arg) == 1:
                return not self.truth(arg[0])
            if key == "Fn::And" and isinstance(arg, list):
                return all(self.truth(item) for item in arg)
            if key == "Fn::Or" and isinstance(arg, list):
                return any(self.truth(item) for item in arg)
        raise _Unresolved(repr(expr))

    def scalar(self, value: Any) -> Any:
        value = self.value(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value) if isinstance(value, int | float) else value

    def value(self, value: Any) -> Any:
        """The value with its intrinsics resolved; ``_NO_VALUE`` for ``!Ref AWS::NoValue``."""
        if isinstance(value, list):
            return [item for item in (self.value(v) for v in value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return _NO_VALUE if arg == "AWS::NoValue" else self.ref(str(arg))
            if key == "Fn::If":
                if not (isinstance(arg, list) and len(arg) == 3):
                    raise _Unresolved("Fn::If")
                return self.value(arg[1] if self.condition(str(arg[0])) else arg[2])
            if key == "Fn::Join" and isinstance(arg, list) and len(arg) == 2:
                items = self.value(arg[1])
                if not isinstance(items, list):
                    raise _Unresolved("Fn::Join")
                return str(arg[0]).join(str(self.scalar(item)) for item in items)
            if key.startswith("Fn::") or key == "Condition":
                raise _Unresolved(key)
        resolved = {k: self.value(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def literal(self, value: Any) -> str | None:
        """An environment value as Lambda would see it, or None when it needs a deployed stack."""
        try:
            resolved = self.value(value)
        except _Unresolved:
            return None
        if resolved is _NO_VALUE or isinstance(resolved, dict | list) or resolved is None:
            return None
        return str(self.scalar(resolved))


_CLOSED = "(unresolved)"  # an authorizer the template sets in a way that cannot be read locally


def _api_auth(api: dict[str, Any] | None, resolver: _Resolver) -> tuple[str | None, dict[str, Any]]:
    """The API's default authorizer and its authorizers, from its (resolved) ``Auth`` block."""
    try:
        auth = resolver.value((api or {}).get("Auth"))
    except _Unresolved:
        return _CLOSED, {}
    if not isinstance(auth, dict):
        return None, {}
    default = auth.get("DefaultAuthorizer")
    authorizers = auth.get("Authorizers") if isinstance(auth.get("Authorizers"), dict) else {}
    return (str(default) if default else None), authorizers


def _http_routes(
    logical_id: str, events: dict[str, Any], apis: dict[str, dict[str, Any]], resolver: _Resolver
) -> tuple[Route, ...]:
    routes = []
    for event in (events or {}).values():
        if not isinstance(event, dict) or event.get("Type") != "HttpApi":
            continue
        props = event.get("Properties") or {}
        path = props.get("Path", "/{proxy+}")
        method = str(props.get("Method", "ANY")).upper()
        if method in ("X-AMAZON-APIGATEWAY-ANY-METHOD", "*"):
            method = "ANY"
        api_ref = props.get("ApiId")
        api_id = str(api_ref["Ref"]) if isinstance(api_ref, dict) and "Ref" in api_ref else None
        default, authorizers = _api_auth(apis.get(api_id or "ServerlessHttpApi"), resolver)
        authorizer: str | None = default
        scopes: list[Any] = []
        try:
            auth = resolver.value(props.get("Auth"))
        except _Unresolved:
            auth, authorizer = None, default or _CLOSED
        if isinstance(auth, dict):
            if auth.get("Authorizer"):
                authorizer = None if auth["Authorizer"] == "NONE" else str(auth["Authorizer"])
            scopes = list(auth.get("AuthorizationScopes") or [])
        if authorizer and not scopes:
            scopes = list((authorizers.get(authorizer) or {}).get("AuthorizationScopes") or [])
        routes.append(
            Route(
                method=method,
                path=str(path),
                function_id=logical_id,
                authorizer=authorizer,
                scopes=tuple(str(scope) for scope in scopes) if authorizer else (),
            )
        )
    return tuple(routes)


def _triggers(events: dict[str, Any]) -> tuple[tuple[str, ...], int, tuple[str, ...]]:
    queues: list[str] = []
    schedules: list[str] = []
    batch_size = 10
    for event in (events or {}).values():
        if not isinstance(event, dict):
            continue
        props = event.get("Properties") or {}
        if event.get("Type") == "SQS":
            queue = props.get("Queue")
            if isinstance(queue, dict) and isinstance(queue.get("Fn::GetAtt"), list):
                queues.append(str(queue["Fn::GetAtt"][0]))
            else:
                queues.append(str(queue))
            if str(props.get("BatchSize", "")).isdigit():
                batch_size = int(props["BatchSize"])
        elif event.get("Type") in ("Schedule", "ScheduleV2"):
            expression = props.get("Schedule") or props.get("ScheduleExpression")
            if isinstance(expression, str):
                schedules.append(expression)
    return tuple(queues), batch_size, tuple(schedules)


def load_template(path: Path, parameters: dict[str, str] | None = None) -> Template:
    """Read a SAM template's functions, routes and layers, as ``sam local start-api`` does.

    Args:
        path: the ``template.yaml`` file.
        parameters: parameter values that replace the defaults (``sam --parameter-overrides``).

    Returns:
        The functions (with ``CodeUri`` resolved against the template's folder) and layer folders.
    """
    path = Path(path).resolve()
    doc = read_yaml(path)
    base = path.parent
    resolver = _Resolver(doc.get("Parameters") or {}, doc.get("Conditions") or {}, dict(parameters or {}))
    globals_fn = (doc.get("Globals") or {}).get("Function") or {}
    resources = doc.get("Resources") or {}
    apis = {
        name: resource.get("Properties") or {}
        for name, resource in resources.items()
        if isinstance(resource, dict) and resource.get("Type") == "AWS::Serverless::HttpApi"
    }
    apis.setdefault("ServerlessHttpApi", (doc.get("Globals") or {}).get("HttpApi") or {})
    functions: dict[str, Function] = {}
    layers: list[Path] = []
    for logical_id, resource in resources.items():
        if not isinstance(resource, dict):
            continue
        kind = resource.get("Type")
        props = resource.get("Properties") or {}
        if kind == "AWS::Serverless::LayerVersion" and isinstance(props.get("ContentUri"), str):
            layers.append((base / props["ContentUri"]).resolve())
        if kind != "AWS::Serverless::Function":
            continue
        code_uri = props.get("CodeUri", globals_fn.get("CodeUri"))
        handler = props.get("Handler", globals_fn.get("Handler"))
        if not isinstance(code_uri, str) or not isinstance(handler, str):
            continue  # inline code or an image function: not runnable locally
        variables = dict(((globals_fn.get("Environment") or {}).get("Variables")) or {})
        variables.update(((props.get("Environment") or {}).get("Variables")) or {})
        environment = {}
        for name, value in variables.items():
            literal = resolver.literal(value)
            if literal is not None:
                environment[name] = literal
        timeout = props.get("Timeout", globals_fn.get("Timeout"))
        memory = props.get("MemorySize", globals_fn.get("MemorySize"))
        events = props.get("Events") or {}
        queues, batch_size, schedules = _triggers(events)
        functions[logical_id] = Function(
            logical_id=logical_id,
            code_uri=(base / code_uri).resolve(),
            handler=handler,
            routes=_http_routes(logical_id, events, apis, resolver),
            environment=environment,
            timeout_s=int(timeout) if isinstance(timeout, int | str) and str(timeout).isdigit() else None,
            memory_mb=int(memory) if isinstance(memory, int | str) and str(memory).isdigit() else None,
            queues=queues,
            batch_size=batch_size,
            schedules=schedules,
        )
    return Template(path=path, functions=functions, layer_dirs=tuple(layers))


def find_repo_root(start: Path | None = None) -> Path:
    """Find the checkout: the nearest folder holding ``template.yaml``, from ``start`` (or the current
    folder), else from this file's location.

    Args:
        start: where to start looking; defaults to the current working directory.

    Returns:
        The folder holding ``template.yaml``.

    Raises:
        FileNotFoundError: when no such folder is found.
    """
    candidates = [Path(start or Path.cwd()).resolve(), Path(__file__).resolve().parent]
    for candidate in candidates:
        for folder in (candidate, *candidate.parents):
            if (folder / TEMPLATE_NAME).is_file():
                return folder
    raise FileNotFoundError(f"no {TEMPLATE_NAME} found above {candidates[0]}")
