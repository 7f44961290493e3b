"""Agents for the tests: the seed's data_manager plus one that exercises every kind of tool."""

from __future__ import annotations

from catalog.data_manager import data_manager, delete_records

from signoff import Agent, tool

EXECUTIONS: list[tuple[str, dict]] = []


@tool
def lookup_user(name: str) -> str:
    """Look up a user by name.

    Args:
        name: The user's name
    """
    EXECUTIONS.append(("lookup_user", {"name": name}))
    return f"{name} is an admin"


@tool(requires_user_input=True, user_input_fields=["room"])
def book_room(title: str, room: str) -> str:
    """Book a meeting room.

    Args:
        title: Meeting title
        room: Room to book, chosen by the user
    """
    EXECUTIONS.append(("book_room", {"title": title, "room": room}))
    return f"Booked {room} for {title}"


@tool(external_execution=True)
def charge_card(amount: int) -> str:
    """Charge the customer's card; the client does it.

    Args:
        amount: Amount in cents
    """
    raise AssertionError("an external tool never runs on the server")


@tool(requires_confirmation=True)
def explode(reason: str) -> str:
    """A confirmed tool that fails.

    Args:
        reason: Why
    """
    EXECUTIONS.append(("explode", {"reason": reason}))
    raise RuntimeError(f"boom: {reason}")


ops = Agent(
    id="ops",
    name="Ops",
    instructions=["You run operations"],
    tools=[lookup_user, book_room, charge_card, explode, delete_records],
)

AGENTS = [data_manager, ops]
