"""Tools: plain Python functions the model may call, some of which need a human first."""

from __future__ import annotations

import enum
import hashlib
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

if TYPE_CHECKING:
    from pydantic import BaseModel

FieldType = Literal["str", "int", "float", "bool", "list", "dict"]
Requirement = Literal["confirmation", "user_input", "external_execution"]


@dataclass(frozen=True)
class ToolOutput:
    """A tool result with what the tool consulted, listed in the run's ``references``.

    Attributes:
        content: the text the model receives.
        references: sources the tool read (e.g. knowledge chunks), shown to approvers.
    """

    content: str
    references: tuple[dict[str, Any], ...] = ()


class ToolArgumentsInvalid(ValueError):
    """Arguments do not fit the tool's signature; the text goes back to the model.

    Attributes:
        errors: each problem as pydantic reports it (``loc``, ``msg``, ``type``).
    """

    def __init__(self, message: str, errors: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(message)
        self.errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]


@dataclass(frozen=True)
class UserInputField:
    """One argument of a ``requires_user_input`` tool, as its paused call lists it."""

    name: str
    field_type: FieldType
    description: str | None = None


@dataclass(frozen=True)
class Tool:
    """A function the model can call, with the rules for when a human must be asked first.

    Build one with the :func:`tool` decorator rather than directly.
    """

    name: str
    description: str
    function: Callable[..., Any]
    parameters: dict[str, Any]
    # (annotation, default) per argument; the pydantic model that checks them is built on first use,
    # so that loading a catalog (every function does) never imports pydantic.
    argument_fields: dict[str, tuple[Any, Any]] = field(compare=False, repr=False)
    requires_confirmation: bool = False
    requires_user_input: bool = False
    # The arguments the human may set (the declared ``user_input_fields``, else every argument).
    user_input_fields: tuple[UserInputField, ...] = ()
    # Every argument, in signature order: what a paused call's ``user_input_schema`` lists.
    user_input_schema: tuple[UserInputField, ...] = ()
    # The declared ``user_input_fields``: the human's alone, left out of the model's JSON schema.
    hidden_from_model: frozenset[str] = frozenset()
    external_execution: bool = False
    idempotent: bool = False
    stop_after_tool_call: bool = False
    approvers: tuple[str, ...] = ()
    allow_self_approval: bool = True
    approval_ttl_seconds: int | None = None
    # Agno's @approval: "required" (an approver resolves it through the approvals API, never the
    # requester) or "audit" (a record of the decision); None: neither.
    approval_type: str | None = None
    # Agno's ask_user: the call's arguments are questions; the human's selections are its result.
    asks_questions: bool = False
    # An approver other than the requester may approve a confirmation with changed arguments.
    editable: bool = False
    schema_hash: str = field(default="", compare=False)

    @property
    def requirement(self) -> Requirement | None:
        """What a human (or the client) must supply before this tool's call can finish."""
        if self.external_execution:
            return "external_execution"
        if self.requires_user_input:
            return "user_input"
        if self.requires_confirmation:
            return "confirmation"
        return None

    def openai_schema(self) -> dict[str, Any]:
        """The tool as the Chat Completions API expects it in ``tools``."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    @cached_property
    def arguments_model(self) -> type[BaseModel]:
        """The pydantic model of the arguments: checks and coerces what the model sent."""
        from pydantic import ConfigDict, create_model

        return create_model(
            f"{self.name}_arguments",
            __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
            **self.argument_fields,
        )

    @property
    def required_arguments(self) -> frozenset[str]:
        """The arguments without a default: the function cannot be called without them."""
        return frozenset(name for name, (_, default) in self.argument_fields.items() if default is ...)

    def validate_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check and coerce the complete arguments against the signature.

        Raises:
            ToolArgumentsInvalid: with a message fit to show the model; ``errors`` lists each
                problem as pydantic reports it.
        """
        parsed = self._parse(arguments)
        return {name: getattr(parsed, name) for name in type(parsed).model_fields}

    def validate_proposal(self, arguments: dict[str, Any]) -> None:
        """Check the arguments the model proposed, before anyone is asked about the call.

        Every value the model sent must fit the signature and name an argument, but an argument the
        human may set can be missing: the human supplies it when the run continues (its ``null``
        counts as missing).

        Raises:
            ToolArgumentsInvalid: with a message fit to show the model.
        """
        human = {f.name for f in self.user_input_fields}
        sent = {k: v for k, v in arguments.items() if not (k in human and v is None)}
        self._parse(sent, may_lack=human)

    def checked_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The complete arguments coerced to the signature, as JSON values (to be stored).

        Only the arguments given are returned: defaults stay the function's own.

        Raises:
            ToolArgumentsInvalid: as :meth:`validate_arguments`.
        """
        dumped: dict[str, Any] = self._parse(arguments).model_dump(mode="json", include=set(arguments))
        return dumped

    def _parse(self, arguments: dict[str, Any], may_lack: set[str] | frozenset[str] = frozenset()) -> Any:
        """The validated pydantic object; ``None`` when the only problems are arguments in ``may_lack``
        being absent."""
        from pydantic import ValidationError

        try:
            return self.arguments_model.model_validate(arguments)
        except ValidationError as exc:
            errors = [
                err
                for err in exc.errors()
                if not (err["type"] == "missing" and len(err["loc"]) == 1 and err["loc"][0] in may_lack)
            ]
            if not errors:
                return None
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in errors
            )
            raise ToolArgumentsInvalid(f"Invalid arguments for {self.name}: {problems}", errors) from None

    def execute(self, arguments: dict[str, Any]) -> ToolOutput:
        """Validate the arguments, call the function and return its result as text."""
        result = self.function(**self.validate_arguments(arguments))
        if isinstance(result, ToolOutput):
            return result
        if isinstance(result, str):
            return ToolOutput(result)
        return ToolOutput(json.dumps(result, default=str))


def tool(
    function: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    requires_confirmation: bool = False,
    requires_user_input: bool = False,
    user_input_fields: Sequence[str] | None = None,
    external_execution: bool = False,
    idempotent: bool = False,
    stop_after_tool_call: bool = False,
    approvers: Sequence[str] = (),
    allow_self_approval: bool = True,
    approval_ttl_seconds: int | None = None,
    approval_type: str | None = None,
    editable: bool = False,
) -> Any:
    """Turn a function into a :class:`Tool`; usable bare (``@tool``) or with options.

    The JSON schema the model sees is derived from the signature (types, defaults) and the
    Google-style docstring (first paragraph = description, ``Args:`` = parameter descriptions).

    Args:
        function: the function, when used as ``@tool`` without parentheses.
        name: the tool's name for the model; defaults to the function's name.
        description: overrides the docstring's first paragraph.
        requires_confirmation: the run pauses until a human confirms or rejects the call.
        requires_user_input: the run pauses until a human supplies ``user_input_fields``; the
            paused call's ``user_input_schema`` lists every argument, the model's values filled in.
        user_input_fields: the arguments only the human fills in (naming any implies
            ``requires_user_input``): they are left out of the JSON schema the model is sent.
            Omitted: the model sees every argument and the human may change any of them.
        external_execution: the client executes the tool and sends its result back.
        idempotent: running it twice is harmless, so a call whose outcome is unknown after a crash
            may be re-run on recovery instead of asking a human again.
        stop_after_tool_call: end the run with the tool's result instead of calling the model again.
        approvers: groups or user ids allowed to decide on this tool's calls; they need not own
            the run. Empty: whoever may continue the run decides. Non-empty requires
            authentication, and such calls get no approval links (a link proves no identity).
        allow_self_approval: ``False`` bars the run's owner from approving their own call
            (rejecting it stays allowed).
        approval_ttl_seconds: how long a call waits for a decision before it expires; defaults to
            the agent's ``approval_ttl_seconds``.
        approval_type: ``"required"`` or ``"audit"``, as :func:`approval` sets it (either order).
        editable: an approver who is not the requester may approve a paused call with changed
            arguments (``POST /approvals/{id}/resolve`` with ``resolution_data.tool_args``); the
            call runs with them, the model is told, and the audit keeps both digests. Only for
            calls that ask for a confirmation (with ``requires_confirmation`` or ``@approval``).

    Returns:
        The :class:`Tool`, or a decorator producing it.
    """

    def build(fn: Callable[..., Any]) -> Tool:
        kind = approval_type or getattr(fn, _APPROVAL_ATTR, None)
        doc = _parse_docstring(inspect.getdoc(fn) or "")
        parameters, argument_fields, field_types = _signature_schema(fn, doc.args)
        if editable and (external_execution or requires_user_input or user_input_fields):
            raise ValueError(
                f"editable applies to calls awaiting a confirmation; {fn.__name__} asks for user input "
                "or an external result (the human sets those values already)"
            )
        if user_input_fields is not None:
            unknown = set(user_input_fields) - set(field_types)
            if unknown:
                raise ValueError(f"user_input_fields not in {fn.__name__}'s signature: {sorted(unknown)}")
        # As Agno: naming fields asks for user input; declared fields are the human's alone and the
        # model never sees them; without a list, the model sees every argument and the human may
        # set any of them.
        asks_human = requires_user_input or bool(user_input_fields)
        hidden = frozenset(user_input_fields or ())
        wanted = list(user_input_fields) if user_input_fields else list(field_types)
        every = tuple(UserInputField(n, t, doc.args.get(n)) for n, t in field_types.items())
        built = Tool(
            name=name or fn.__name__,
            description=description or doc.summary,
            function=fn,
            parameters=_without(parameters, hidden),
            argument_fields=argument_fields,
            requires_confirmation=requires_confirmation,
            requires_user_input=asks_human,
            user_input_fields=tuple(f for f in every if f.name in wanted) if asks_human else (),
            user_input_schema=every if asks_human else (),
            hidden_from_model=hidden,
            external_execution=external_execution,
            idempotent=idempotent,
            stop_after_tool_call=stop_after_tool_call,
            approvers=tuple(approvers),
            allow_self_approval=allow_self_approval,
            approval_ttl_seconds=approval_ttl_seconds,
            editable=editable,
        )
        return _hashed(_with_approval(built, kind) if kind is not None else built)

    if function is not None:
        return build(function)
    return build


_APPROVAL_ATTR = "_signoff_approval_type"
_APPROVAL_TYPES = ("required", "audit")


def approval(target: Any = None, *, type: str = "required") -> Any:
    """Mark a tool as needing an approval record, as Agno's ``@approval`` does; either order with
    :func:`tool`, bare (``@approval``) or with a type (``@approval(type="audit")``).

    ``required``: an approver resolves each call through the approvals API (``POST
    /approvals/{id}/resolve``) before the run may go on — the tool's ``approvers``, or when it
    names none the admin group (``SIGNOFF_APPROVAL_ADMINS``), never the requester; a tool with no
    other human step then asks for confirmation. ``audit``: the decision is recorded as an approval
    too; the tool must already ask a human something (confirmation, user input or an external
    result).

    Raises:
        ValueError: an unknown type, or ``audit`` on a tool that asks nobody anything.
    """
    if type not in _APPROVAL_TYPES:
        raise ValueError(f"Invalid approval type: {type!r}. Must be 'required' or 'audit'.")

    def apply(item: Any) -> Any:
        if isinstance(item, Tool):
            return _hashed(_with_approval(item, type))
        if callable(item):
            setattr(item, _APPROVAL_ATTR, type)
            return item
        raise TypeError(f"@approval must be applied to a function or a Tool, got {item.__class__.__name__}")

    return apply(target) if target is not None else apply


def _with_approval(built: Tool, kind: str) -> Tool:
    if kind not in _APPROVAL_TYPES:
        raise ValueError(f"Invalid approval type: {kind!r}. Must be 'required' or 'audit'.")
    asks = built.requires_confirmation or built.requires_user_input or built.external_execution
    if kind == "audit" and not asks:
        raise ValueError(
            "@approval(type='audit') needs the tool to ask a human something: requires_confirmation, "
            "requires_user_input or external_execution"
        )
    return replace(built, approval_type=kind, requires_confirmation=built.requires_confirmation or not asks)


def _without(parameters: dict[str, Any], hidden: frozenset[str]) -> dict[str, Any]:
    """The JSON schema the model is sent: the human's fields are neither offered nor required."""
    if not hidden:
        return parameters
    return {
        **parameters,
        "properties": {k: v for k, v in parameters["properties"].items() if k not in hidden},
        "required": [k for k in parameters["required"] if k not in hidden],
    }


def rehash(built: Tool) -> Tool:
    """A tool changed after it was built (``dataclasses.replace``), with its hash made anew."""
    return _hashed(built)


def _hashed(built: Tool) -> Tool:
    """The tool with the hash of what a human decides on: the schema, the requirement and the
    approval type (a deploy that changes any of them refuses decisions made on the old one)."""
    extra = [built.approval_type] if built.approval_type else []
    digest = hashlib.sha256(
        json.dumps([built.openai_schema(), built.requirement, *extra], sort_keys=True).encode()
    ).hexdigest()[:16]
    object.__setattr__(built, "schema_hash", digest)
    return built


@dataclass
class _Docstring:
    summary: str
    args: dict[str, str]


_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Return|Raises|Yields|Examples?|Notes?):\s*$")
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def _parse_docstring(doc: str) -> _Docstring:
    lines = doc.splitlines()
    summary_lines: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for raw in lines:
        line = raw.strip()
        header = _SECTION.match(line)
        if header and not raw.startswith(" "):
            section, current = header.group(1), None
            continue
        if section is None:
            if not line and summary_lines:
                section = "body"
            elif line:
                summary_lines.append(line)
        elif section in ("Args", "Arguments", "Parameters") and line:
            match = _ARG_LINE.match(line)
            indent = len(raw) - len(raw.lstrip())
            if match and (current is None or indent <= _arg_indent(lines, current)):
                current = match.group(1).lstrip("*")
                args[current] = match.group(3).strip()
            elif current is not None:
                args[current] = f"{args[current]} {line}".strip()
    return _Docstring(" ".join(summary_lines), args)


def _arg_indent(lines: list[str], name: str) -> int:
    for raw in lines:
        if raw.strip().startswith(f"{name}") and ":" in raw:
            return len(raw) - len(raw.lstrip())
    return 0


_SIMPLE: dict[Any, tuple[str, FieldType]] = {
    str: ("string", "str"),
    int: ("integer", "int"),
    float: ("number", "float"),
    bool: ("boolean", "bool"),
    list: ("array", "list"),
    dict: ("object", "dict"),
}


def _json_schema(annotation: Any) -> tuple[dict[str, Any], FieldType]:
    """JSON schema of a parameter type, kept as plain as OpenAI's examples."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return {}, "str"
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return _json_schema(members[0])
        return {"anyOf": [_json_schema(m)[0] for m in members]}, "str"
    if origin is Literal:
        values = list(get_args(annotation))
        schema, kind = _json_schema(type(values[0]))
        return {**schema, "enum": values}, kind
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        values = [member.value for member in annotation]
        schema, kind = _json_schema(type(values[0]))
        return {**schema, "enum": values}, kind
    if origin in (list, tuple, set, Sequence) or annotation in (list, tuple, set):
        items = get_args(annotation)
        schema: dict[str, Any] = {"type": "array"}
        if items and items[0] is not Ellipsis:
            schema["items"] = _json_schema(items[0])[0]
        return schema, "list"
    if origin is dict or annotation is dict:
        return {"type": "object"}, "dict"
    if annotation in _SIMPLE:
        json_type, kind = _SIMPLE[annotation]
        return {"type": json_type}, kind
    if isinstance(annotation, type) and callable(getattr(annotation, "model_json_schema", None)):
        return annotation.model_json_schema(), "dict"  # a pydantic model
    return {}, "str"


def _signature_schema(
    fn: Callable[..., Any], arg_docs: dict[str, str]
) -> tuple[dict[str, Any], dict[str, tuple[Any, Any]], dict[str, FieldType]]:
    hints = typing.get_type_hints(fn)
    properties: dict[str, Any] = {}
    required: list[str] = []
    model_fields: dict[str, Any] = {}
    field_types: dict[str, FieldType] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(param.name, Any)
        schema, kind = _json_schema(annotation)
        if param.name in arg_docs:
            schema = {**schema, "description": arg_docs[param.name]}
        properties[param.name] = schema
        field_types[param.name] = kind
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
            model_fields[param.name] = (annotation, ...)
        else:
            model_fields[param.name] = (annotation, param.default)
    parameters = {"type": "object", "properties": properties, "required": required}
    return parameters, model_fields, field_types
