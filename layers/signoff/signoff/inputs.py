"""Checks every input passes before it can reach PostgreSQL: text it can store, depth it can parse."""

from __future__ import annotations

from typing import Any

MAX_JSON_DEPTH = 20
UNSTORABLE_MESSAGE = "String should not contain NUL characters or lone surrogates"


def unstorable_path(value: Any, path: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """Where ``value`` holds text PostgreSQL cannot store (NUL, lone surrogates); ``None`` if nowhere.

    Iterative, so a hostile payload cannot exhaust the stack.
    """
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or not _encodable(item):
                return where
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and ("\x00" in key or not _encodable(key)):
                    return (*where, "<key>")
                stack.append((child, (*where, str(key))))
        elif isinstance(item, list):
            stack.extend((child, (*where, str(index))) for index, child in enumerate(item))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, iteratively."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
    return deepest


_BOOLEANS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


def parse_bool(value: Any) -> bool | None:
    """A form or JSON boolean (``true/false/1/0/yes/no/on/off``, any case); ``None`` for absent.

    Raises:
        ValueError: anything else.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _BOOLEANS:
            return _BOOLEANS[text]
    raise ValueError(f"not a boolean: {value!r}")
