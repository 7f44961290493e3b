"""The @tool decorator: the JSON schema the model sees, argument validation, and Agent rules."""

from __future__ import annotations

import enum
from typing import Literal, Optional

import pytest

from signoff import Agent, Tool, UserInputField, tool
from signoff.tools import ToolArgumentsInvalid


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


def _properties(t: Tool) -> dict:
    return t.parameters["properties"]


# --- schema -------------------------------------------------------------------------------------


def test_seed_delete_records_schema_is_exactly_the_contract_example():
    # Given the seed's delete_records tool
    from catalog.data_manager import delete_records

    # When its schema is built for OpenAI
    schema = delete_records.openai_schema()

    # Then it is CONTRACT.md's example, key for key
    assert schema == {
        "type": "function",
        "function": {
            "name": "delete_records",
            "description": "Delete records from a database table.",
            "parameters": {
                "type": "object",
                "properties": {
                    "table_name": {"type": "string", "description": "Name of the table"},
                    "count": {"type": "integer", "description": "Number of records to delete"},
                },
                "required": ["table_name", "count"],
            },
        },
    }
    assert delete_records.requires_confirmation is True
    assert delete_records.requirement == "confirmation"


def test_optional_parameters_are_not_required_and_their_defaults_fill_in():
    # Given a tool with one required and two defaulted parameters
    @tool
    def search(query: str, limit: int = 10, exact: bool = False) -> str:
        """Search."""
        return f"{query}|{limit}|{exact}"

    # When the schema is built and the model sends only the required argument
    required = search.parameters["required"]
    result = search.execute({"query": "cats"}).content

    # Then only the parameter without default is required, and the defaults are used
    assert required == ["query"]
    assert set(_properties(search)) == {"query", "limit", "exact"}
    assert _properties(search)["limit"]["type"] == "integer"
    assert _properties(search)["exact"]["type"] == "boolean"
    assert result == "cats|10|False"


def test_optional_list_literal_and_enum_types_map_to_plain_json_schema():
    # Given a tool using Optional, X | None, list[int], Literal and an Enum
    @tool
    def archive(
        ids: list[int],
        mode: Literal["soft", "hard"],
        priority: Priority,
        ratio: float,
        owner: Optional[str] = None,  # noqa: UP045 - the Optional spelling is what is under test
        note: str | None = None,
        tags: list[str] | None = None,
        extra: dict | None = None,
    ) -> str:
        """Archive rows."""
        return "ok"

    # When the schema is built
    props = _properties(archive)

    # Then each type is the JSON schema a model understands, nullable ones unwrapped
    assert props["ids"] == {"type": "array", "items": {"type": "integer"}}
    assert props["mode"] == {"type": "string", "enum": ["soft", "hard"]}
    assert props["priority"] == {"type": "string", "enum": ["low", "high"]}
    assert props["ratio"] == {"type": "number"}
    assert props["owner"] == {"type": "string"}
    assert props["note"] == {"type": "string"}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["extra"] == {"type": "object"}
    assert archive.parameters["required"] == ["ids", "mode", "priority", "ratio"]


def test_docstring_args_become_descriptions_including_multi_line_ones():
    # Given a Google-style docstring with a multi-line summary, typed args and wrapped descriptions
    @tool
    def transfer(source: str, target: str, amount: int) -> str:
        """Move money between two
        accounts.

        The body paragraph is not part of the description.

        Args:
            source (str): Account to debit.
            target: Account to credit; the account must
                already exist -- it is never created.
                Format: IBAN
            amount: Amount in cents

        Returns:
            str: a receipt
        """
        return "ok"

    # When the schema is built
    props = _properties(transfer)

    # Then the summary is the description and each argument has its full, joined description
    assert transfer.description == "Move money between two accounts."
    assert props["source"]["description"] == "Account to debit."
    assert props["target"]["description"] == (
        "Account to credit; the account must already exist -- it is never created. Format: IBAN"
    )
    assert props["amount"]["description"] == "Amount in cents"


def test_a_parameter_without_docstring_entry_has_no_description():
    # Given a docstring that documents only one of two arguments
    @tool
    def ping(host: str, port: int) -> str:
        """Ping a host.

        Args:
            host: the host name
        """
        return "pong"

    # Then the undocumented one carries only its type
    assert _properties(ping)["port"] == {"type": "integer"}
    assert _properties(ping)["host"] == {"type": "string", "description": "the host name"}


def test_bare_decorator_and_decorator_with_options_both_build_tools():
    # Given the same function decorated bare, with empty parentheses and with options
    def lookup(key: str) -> str:
        """Look a key up."""
        return key

    bare = tool(lookup)
    empty = tool()(lookup)
    named = tool(name="find", description="Find a key.", requires_confirmation=True)(lookup)

    # Then all are tools; options change only what they name
    assert isinstance(bare, Tool) and isinstance(empty, Tool) and isinstance(named, Tool)
    assert bare.name == empty.name == "lookup"
    assert bare.description == "Look a key up."
    assert bare.requirement is None and empty.requirement is None
    assert named.name == "find"
    assert named.description == "Find a key."
    assert named.openai_schema()["function"]["name"] == "find"
    assert named.requirement == "confirmation"
    assert bare.execute({"key": "k"}).content == named.execute({"key": "k"}).content == "k"


def test_requires_user_input_keeps_the_humans_fields_out_of_the_models_schema():
    # Given a tool where the human supplies only the recipient
    @tool(requires_user_input=True, user_input_fields=["recipient"])
    def send(recipient: str, message: str, retries: int = 1) -> str:
        """Send a message.

        Args:
            recipient: Who receives it
            message: The text
        """
        return "sent"

    # Then the model is neither offered nor required the recipient
    assert send.requirement == "user_input"
    assert send.parameters == {
        "type": "object",
        "properties": {
            "message": {"type": "string", "description": "The text"},
            "retries": {"type": "integer"},
        },
        "required": ["message"],
    }
    # and the human's field is typed and described, while the paused schema lists every argument
    assert send.user_input_fields == (UserInputField("recipient", "str", "Who receives it"),)
    assert [f.name for f in send.user_input_schema] == ["recipient", "message", "retries"]
    assert send.hidden_from_model == {"recipient"}


def test_requires_user_input_without_field_list_shows_the_model_everything_and_asks_for_every_argument():
    # Given a user-input tool without user_input_fields
    @tool(requires_user_input=True)
    def book(room: str, hours: int, ids: list[int], options: dict) -> str:
        """Book a room."""
        return "booked"

    # Then (as Agno) the model sees every argument, and every argument is a field the human may set
    assert book.parameters["required"] == ["room", "hours", "ids", "options"]
    assert book.hidden_from_model == frozenset()
    assert [(f.name, f.field_type) for f in book.user_input_fields] == [
        ("room", "str"),
        ("hours", "int"),
        ("ids", "list"),
        ("options", "dict"),
    ]
    assert book.user_input_schema == book.user_input_fields


def test_naming_user_input_fields_implies_requires_user_input():
    # Given fields named without the flag (Agno's decorator sets it then)
    @tool(user_input_fields=["room"])
    def book(title: str, room: str) -> str:
        """Book a room."""
        return "booked"

    assert book.requirement == "user_input"
    assert list(book.parameters["properties"]) == ["title"]


def test_a_proposal_may_lack_the_humans_fields_but_not_the_models():
    @tool(requires_user_input=True, user_input_fields=["priority"])
    def file_ticket(title: str, priority: int) -> str:
        """File a ticket."""
        return "filed"

    # the human's field may be missing or null
    file_ticket.validate_proposal({"title": "Disk full"})
    file_ticket.validate_proposal({"title": "Disk full", "priority": None})
    # the model's own argument may not, and whatever the model sends must fit the signature
    with pytest.raises(ToolArgumentsInvalid, match="title: Field required"):
        file_ticket.validate_proposal({})
    with pytest.raises(ToolArgumentsInvalid, match="priority"):
        file_ticket.validate_proposal({"title": "Disk full", "priority": "soon"})
    with pytest.raises(ToolArgumentsInvalid, match="assignee"):
        file_ticket.validate_proposal({"title": "Disk full", "assignee": "bob"})
    # the complete arguments are coerced for storing, defaults left to the function
    assert file_ticket.checked_arguments({"title": "Disk full", "priority": "2"}) == {
        "title": "Disk full",
        "priority": 2,
    }


def test_user_input_field_that_is_not_an_argument_is_refused_at_definition():
    # Given a user_input_fields entry that names no argument
    def send(recipient: str) -> str:
        """Send."""
        return "sent"

    # When the tool is defined / Then it fails loudly, naming the bad field
    with pytest.raises(ValueError, match="recipent"):
        tool(requires_user_input=True, user_input_fields=["recipent"])(send)


# --- argument validation ------------------------------------------------------------------------


@tool(requires_confirmation=True)
def delete_rows(table_name: str, count: int) -> str:
    """Delete rows.

    Args:
        table_name: Name of the table
        count: Number of rows
    """
    return f"Deleted {count} rows from {table_name}"


def test_arguments_are_coerced_to_the_signature():
    # Given the model sends a number as a string
    args = {"table_name": "users", "count": "50"}

    # When the arguments are validated and the tool executed
    validated = delete_rows.validate_arguments(args)
    result = delete_rows.execute(args).content

    # Then the function gets an int
    assert validated == {"table_name": "users", "count": 50}
    assert isinstance(validated["count"], int)
    assert result == "Deleted 50 rows from users"


def test_enum_and_list_arguments_are_coerced():
    # Given a tool taking an enum and a list of ints
    seen = {}

    @tool
    def tag(priority: Priority, ids: list[int]) -> str:
        """Tag rows."""
        seen.update(priority=priority, ids=ids)
        return "ok"

    # When the model sends their JSON forms
    tag.execute({"priority": "high", "ids": ["1", 2]})

    # Then the function receives Python values
    assert seen == {"priority": Priority.HIGH, "ids": [1, 2]}


def test_missing_argument_is_reported_by_name():
    # When the model forgets an argument
    with pytest.raises(ToolArgumentsInvalid) as caught:
        delete_rows.validate_arguments({"table_name": "users"})

    # Then the message names the tool and the argument
    message = str(caught.value)
    assert "delete_rows" in message
    assert "count" in message
    assert "required" in message.lower()


def test_extra_argument_is_refused_by_name():
    # When the model invents an argument
    with pytest.raises(ToolArgumentsInvalid) as caught:
        delete_rows.validate_arguments({"table_name": "users", "count": 1, "cascade": True})

    # Then the message names it
    assert "cascade" in str(caught.value)


def test_uncoercible_argument_is_refused_and_the_function_never_runs():
    # Given a tool that records its calls
    calls = []

    @tool
    def remove(count: int) -> str:
        """Remove."""
        calls.append(count)
        return "removed"

    # When the model sends a value that is not a number
    with pytest.raises(ToolArgumentsInvalid, match="count"):
        remove.execute({"count": "fifty"})

    # Then nothing ran
    assert calls == []


def test_literal_argument_outside_the_allowed_values_is_refused():
    @tool
    def purge(mode: Literal["soft", "hard"]) -> str:
        """Purge."""
        return mode

    with pytest.raises(ToolArgumentsInvalid, match="mode"):
        purge.validate_arguments({"mode": "nuclear"})


def test_non_string_results_are_returned_as_json():
    # Given a tool returning a dict
    @tool
    def stats(table: str) -> dict:
        """Stats."""
        return {"table": table, "rows": 3}

    # Then the model gets JSON text
    assert stats.execute({"table": "t"}).content == '{"table": "t", "rows": 3}'


# --- schema hash --------------------------------------------------------------------------------


def test_schema_hash_is_stable_for_the_same_definition_and_changes_with_the_signature():
    # Given the same function defined twice, then with a changed signature and requirement
    def v1(table_name: str, count: int) -> str:
        """Delete rows."""
        return ""

    def v2(table_name: str, count: int, cascade: bool = False) -> str:
        """Delete rows."""
        return ""

    def v3(table_name: str, count: str) -> str:
        """Delete rows."""
        return ""

    first = tool(name="delete", requires_confirmation=True)(v1)
    again = tool(name="delete", requires_confirmation=True)(v1)
    new_param = tool(name="delete", requires_confirmation=True)(v2)
    new_type = tool(name="delete", requires_confirmation=True)(v3)
    no_confirmation = tool(name="delete")(v1)

    # Then the hash follows what the model and the approver see
    assert first.schema_hash and first.schema_hash == again.schema_hash
    assert new_param.schema_hash != first.schema_hash
    assert new_type.schema_hash != first.schema_hash
    assert no_confirmation.schema_hash != first.schema_hash


# --- Agent --------------------------------------------------------------------------------------


def test_agent_rejects_two_tools_with_the_same_name():
    # Given two different functions exposed under one name
    @tool(name="act")
    def one() -> str:
        """One."""
        return "1"

    @tool(name="act")
    def two() -> str:
        """Two."""
        return "2"

    # When an agent is defined with both / Then it is refused
    with pytest.raises(ValueError, match="name"):
        Agent(id="a", name="A", tools=[one, two])


def test_agent_system_message_has_description_instructions_and_markdown_line():
    # Given the seed's agent and a variant with a description and a single-string instruction
    from catalog.data_manager import data_manager

    custom = Agent(id="c", name="C", description="You are careful.", instructions="Never guess")

    # Then the instructions are listed and markdown is requested only when asked for
    assert "You help users manage data operations" in data_manager.system_message
    assert "markdown" in data_manager.system_message.lower()
    assert custom.system_message.splitlines()[0] == "You are careful."
    assert "Never guess" in custom.system_message
    assert "markdown" not in custom.system_message.lower()


def test_agent_tool_lookup_and_schemas():
    # Given the seed's agent
    from catalog.data_manager import data_manager

    # Then its tools are found by name, unknown names are None, and schemas go to the model in order
    assert data_manager.tool("send_notification") is not None
    assert data_manager.tool("drop_database") is None
    assert [s["function"]["name"] for s in data_manager.tool_schemas] == [
        "delete_records",
        "send_notification",
    ]


def test_agent_version_changes_when_a_tool_schema_changes():
    # Given an agent, then the same agent with a tool whose signature changed
    def delete(table_name: str) -> str:
        """Delete."""
        return ""

    def delete_v2(table_name: str, count: int) -> str:
        """Delete."""
        return ""

    before = Agent(id="a", name="A", tools=[tool(name="delete")(delete)])
    same = Agent(id="a", name="A", tools=[tool(name="delete")(delete)])
    after = Agent(id="a", name="A", tools=[tool(name="delete")(delete_v2)])

    # Then the version follows the schema
    assert before.version == same.version
    assert before.version != after.version


def test_every_shipped_tool_builds_its_argument_checker():
    # Given the agents this deployment ships (their argument checkers are built on first use)
    from catalog import AGENTS

    # Then each tool's checker builds, so a signature pydantic cannot check fails here, not mid-run
    for agent in AGENTS:
        for shipped in agent.tools:
            offered = set(shipped.parameters["properties"]) | shipped.hidden_from_model
            assert set(shipped.arguments_model.model_fields) == offered
