"""Questions with options (Agno's ``ask_user``): the run pauses with ``user_feedback_schema``, the
continue selects options, the model is told the answers; anything not offered changes nothing."""

from __future__ import annotations

import json

import pytest

QUESTIONS = [
    {
        "question": "Which city?",
        "header": "City",
        "options": [{"label": "Paris", "description": "in France"}, {"label": "Rome"}],
    },
    {
        "question": "Which extras?",
        "header": "Extras",
        "options": [{"label": "Wifi"}, {"label": "Breakfast"}, {"label": "Parking"}],
        "multi_select": True,
    },
]


@pytest.fixture
def asked(api):
    run = api.start(
        "call ask_user " + json.dumps({"questions": QUESTIONS}), agent_id="concierge", session_id="s-ask"
    ).json()
    assert run["status"] == "PAUSED", run
    return run


def _answer(api, run, feedback):
    call = run["tools"][0]
    return api.continue_(
        run["run_id"],
        [{"tool_call_id": call["tool_call_id"], "user_feedback_schema": feedback}],
        session_id=run["session_id"],
        agent_id="concierge",
    )


def test_the_run_pauses_with_the_questions_as_agno_shapes_them(asked, model):
    [call] = asked["tools"]
    assert call["tool_name"] == "ask_user" and call["requires_user_input"] is True
    assert call["user_input_schema"] is None and call["approval_id"]
    schema = call["user_feedback_schema"]
    assert [q["question"] for q in schema] == ["Which city?", "Which extras?"]
    assert schema[0]["options"][0] == {"label": "Paris", "description": "in France", "selected": False}
    assert [q["multi_select"] for q in schema] == [False, True]
    assert all(q["selected_options"] is None for q in schema)
    assert asked["content"] == "I have tools to execute, but I need user input."
    # the model was offered ask_user with the questions' schema
    [offered] = [t for t in model.requests[-1]["tools"] if t["function"]["name"] == "ask_user"]
    assert "questions" in offered["function"]["parameters"]["properties"]


def test_selected_options_answer_and_the_model_is_told(api, asked, model):
    answer = _answer(
        api,
        asked,
        [
            {"question": "Which city?", "selected_options": ["Rome"]},
            {"question": "Which extras?", "selected_options": ["Wifi", "Parking"]},
        ],
    )

    assert answer.status == 200, answer
    done = answer.json()
    assert done["status"] == "COMPLETED"
    [call] = done["tools"]
    assert [q["selected_options"] for q in call["user_feedback_schema"]] == [["Rome"], ["Wifi", "Parking"]]
    assert [o["selected"] for o in call["user_feedback_schema"][1]["options"]] == [True, False, True]
    told = [m for m in model.requests[-1]["messages"] if m["role"] == "tool"][-1]["content"]
    assert told.startswith("User feedback received: ")
    assert json.loads(told.removeprefix("User feedback received: ")) == [
        {"question": "Which city?", "selected": ["Rome"]},
        {"question": "Which extras?", "selected": ["Wifi", "Parking"]},
    ]


def test_the_full_echo_with_options_marked_selected_answers_too(api, asked):
    echo = json.loads(json.dumps(asked["tools"][0]["user_feedback_schema"]))
    echo[0]["options"][0]["selected"] = True
    echo[1]["options"][1]["selected"] = True

    answer = _answer(api, asked, echo)

    assert answer.status == 200 and answer.json()["status"] == "COMPLETED"
    assert [q["selected_options"] for q in answer.json()["tools"][0]["user_feedback_schema"]] == [
        ["Paris"],
        ["Breakfast"],
    ]


@pytest.mark.parametrize(
    ("feedback", "detail"),
    [
        (
            [
                {"question": "Which city?", "selected_options": ["Oslo"]},
                {"question": "Which extras?", "selected_options": ["Wifi"]},
            ],
            "not an option",
        ),
        (
            [
                {"question": "Which city?", "selected_options": ["Rome", "Paris"]},
                {"question": "Which extras?", "selected_options": ["Wifi"]},
            ],
            "takes one option",
        ),
        ([{"question": "Which city?", "selected_options": ["Rome"]}], "has no answer"),
        (
            [
                {"question": "Which city?", "selected_options": ["Rome"]},
                {"question": "Which extras?", "selected_options": []},
            ],
            "one or more",
        ),
        (
            [
                {"question": "Where?", "selected_options": ["x"]},
                {"question": "Which city?", "selected_options": ["Rome"]},
                {"question": "Which extras?", "selected_options": ["Wifi"]},
            ],
            "no question",
        ),
        ([], "is required"),
    ],
)
def test_answers_that_were_not_offered_are_400_and_change_nothing(api, asked, dump, feedback, detail):
    before = dump()

    answer = _answer(api, asked, feedback)

    assert answer.status == 400, answer
    assert detail in answer.json()["detail"]
    assert dump() == before


def test_questions_the_human_could_not_answer_go_back_to_the_model(api, model):
    bad = {"questions": [{"question": "Which?", "header": "X", "options": []}]}
    run = api.start("call ask_user " + json.dumps(bad), agent_id="concierge", session_id="s-bad").json()

    [call] = run["tools"]
    assert call["tool_call_error"] is True and "options must list" in call["result"]
    assert run["status"] != "PAUSED"
