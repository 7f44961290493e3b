"""Questions with options, as Agno's ``UserFeedbackTools.ask_user`` asks them.

The agent calls ``ask_user`` with questions (``question``, ``header``, 2-4 ``options`` of ``label``
and ``description``, ``multi_select``); the run pauses with the call's ``user_feedback_schema``; a
continue selects options (``selected_options``, or ``selected: true`` on options); the model is told
the answers. Add it to an agent like any tool: ``Agent(tools=[ask_user, ...])``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from signoff.tools import Tool, ToolArgumentsInvalid, rehash, tool

MAX_QUESTIONS = 10
MAX_OPTIONS = 10
MAX_TEXT = 500

_OPTION = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "description": "Short display text for this option (1-5 words)."},
        "description": {"type": "string", "description": "Explanation of what this option means."},
    },
    "required": ["label"],
}
_QUESTION = {
    "type": "object",
    "properties": {
        "question": {"type": "string", "description": "The question to ask. Must end with a question mark."},
        "header": {"type": "string", "description": "Short label for the question (max 12 chars)."},
        "options": {"type": "array", "items": _OPTION, "description": "2-4 options to choose from."},
        "multi_select": {"type": "boolean", "description": "If true, the user can select several options."},
    },
    "required": ["question", "header", "options"],
}
PARAMETERS = {
    "type": "object",
    "properties": {
        "questions": {
            "type": "array",
            "items": _QUESTION,
            "description": "Questions to present to the user, each with a header, question text and options.",
        }
    },
    "required": ["questions"],
}


def _ask_user(questions: list[dict[str, Any]]) -> str:
    """Present structured questions with predefined options to the user.

    Args:
        questions: The questions, each with a header, question text and 2-4 options.
    """
    return "User feedback received"  # never runs: the run pauses and the human answers


ask_user: Tool = rehash(
    replace(
        tool(requires_user_input=True)(_ask_user), name="ask_user", parameters=PARAMETERS, asks_questions=True
    )
)


def feedback_schema(arguments: dict[str, Any]) -> list[dict[str, Any]]:
    """The paused call's ``user_feedback_schema`` from the model's questions, nothing selected yet.

    Raises:
        ToolArgumentsInvalid: questions the human could not answer (told to the model).
    """
    questions = arguments.get("questions")
    if not isinstance(questions, list) or not 1 <= len(questions) <= MAX_QUESTIONS:
        raise ToolArgumentsInvalid(f"ask_user needs 1 to {MAX_QUESTIONS} questions")
    schema, texts = [], set()
    for index, item in enumerate(questions):
        where = f"questions[{index}]"
        if not isinstance(item, dict):
            raise ToolArgumentsInvalid(f"{where} must be an object")
        text, header = item.get("question"), item.get("header")
        if not _text(text) or text in texts:
            raise ToolArgumentsInvalid(f"{where}.question must be a distinct non-empty string")
        texts.add(text)
        options = item.get("options")
        if not isinstance(options, list) or not 1 <= len(options) <= MAX_OPTIONS:
            raise ToolArgumentsInvalid(f"{where}.options must list 1 to {MAX_OPTIONS} options")
        labels = [o.get("label") if isinstance(o, dict) else None for o in options]
        if not all(_text(label) for label in labels) or len(set(labels)) != len(labels):
            raise ToolArgumentsInvalid(f"{where}.options need distinct non-empty labels")
        schema.append(
            {
                "question": text,
                "header": header if _text(header) else None,
                "options": [
                    {
                        "label": o["label"],
                        "description": o.get("description") if _text(o.get("description")) else None,
                        "selected": False,
                    }
                    for o in options
                ],
                "multi_select": item.get("multi_select") is True,
                "selected_options": None,
            }
        )
    return schema


def answered(schema: list[dict[str, Any]], answers: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The schema with the human's selections, each checked against the options offered.

    Raises:
        ValueError: a question left unanswered, an option not offered, several for a single choice.
    """
    # A channel that cannot carry a question's text (Slack's block ids) names it "#<index>".
    answers = {
        (schema[int(k[1:])]["question"] if _index(k, len(schema)) else k): v for k, v in answers.items()
    }
    filled = []
    for question in schema:
        text = question["question"]
        chosen = answers.get(text)
        if chosen is None:
            raise ValueError(f"the question {text!r} has no answer")
        labels = [o["label"] for o in question["options"]]
        unknown = [label for label in chosen if label not in labels]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not an option of {text!r}")
        if (
            len(set(chosen)) != len(chosen)
            or not chosen
            or (len(chosen) > 1 and not question["multi_select"])
        ):
            raise ValueError(
                f"{text!r} takes {'one or more options' if question['multi_select'] else 'one option'}"
            )
        filled.append(
            {
                **question,
                "options": [{**o, "selected": o["label"] in chosen} for o in question["options"]],
                "selected_options": list(chosen),
            }
        )
    extra = set(answers) - {q["question"] for q in schema}
    if extra:
        raise ValueError(f"no question {sorted(extra)[0]!r} was asked")
    return filled


def model_message(filled: list[dict[str, Any]]) -> str:
    """What the model is told, as Agno words it."""
    answers = [{"question": q["question"], "selected": q["selected_options"] or []} for q in filled]
    return f"User feedback received: {json.dumps(answers, ensure_ascii=False)}"


def _index(key: str, size: int) -> bool:
    return key.startswith("#") and key[1:].isdigit() and int(key[1:]) < size


def _text(value: Any) -> bool:
    return isinstance(value, str) and len(value.strip()) > 0 and len(value) <= MAX_TEXT
