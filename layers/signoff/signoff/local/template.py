"""Reads template.yaml for the local server: each function's code, handler and HttpApi routes."""

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
    """

    method: str
    path: str
    function_id: str

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
    """

    logical_id: str
    code_uri: Path
    handler: str
    routes: tuple[Route, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)
    timeout_s: int | None = None
    memory_mb: int | None = None


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


def _literal(value: Any, parameters: dict[str, Any]) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, dict) and set(value) == {"Ref"}:
        default = parameters.get(str(value["Ref"]), {})
        if isinstance(default, dict) and "Default" in default:
            return _literal(default["Default"], parameters)
    return None


def _http_routes(logical_id: str, events: dict[str, Any]) -> tuple[Route, ...]:
    routes = []
    for event in (events or {}).values():
        if not isinstance(event, dict) or event.get("Type") != "HttpApi":
            continue
        props = event.get("Properties") or {}
        path = props.get("Path", "/{proxy+}")
        method = str(props.get("Method", "ANY")).upper()
        if method in ("X-AMAZON-APIGATEWAY-ANY-METHOD", "*"):
            method = "ANY"
        routes.append(Route(method=method, path=str(path), function_id=logical_id))
    return tuple(routes)


def load_template(path: Path) -> Template:
    """Read a SAM template's functions, routes and layers, as ``sam local start-api`` does.

    Args:
        path: the ``template.yaml`` file.

    Returns:
        The functions (with ``CodeUri`` resolved against the template's folder) and layer folders.
    """
    path = Path(path).resolve()
    doc = read_yaml(path)
    base = path.parent
    parameters = doc.get("Parameters") or {}
    globals_fn = (doc.get("Globals") or {}).get("Function") or {}
    functions: dict[str, Function] = {}
    layers: list[Path] = []
    for logical_id, resource in (doc.get("Resources") or {}).items():
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
            literal = _literal(value, parameters)
            if literal is not None:
                environment[name] = literal
        timeout = props.get("Timeout", globals_fn.get("Timeout"))
        memory = props.get("MemorySize", globals_fn.get("MemorySize"))
        functions[logical_id] = Function(
            logical_id=logical_id,
            code_uri=(base / code_uri).resolve(),
            handler=handler,
            routes=_http_routes(logical_id, props.get("Events") or {}),
            environment=environment,
            timeout_s=int(timeout) if isinstance(timeout, int | str) and str(timeout).isdigit() else None,
            memory_mb=int(memory) if isinstance(memory, int | str) and str(memory).isdigit() else None,
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
