"""The seed's agent: data operations that need a human's confirmation."""

from signoff import Agent, tool


@tool(requires_confirmation=True)
def delete_records(table_name: str, count: int) -> str:
    """Delete records from a database table.

    Args:
        table_name: Name of the table
        count: Number of records to delete

    Returns:
        str: Confirmation message
    """
    return f"Deleted {count} records from {table_name}"


@tool(requires_confirmation=True)
def send_notification(recipient: str, message: str) -> str:
    """Send a notification to a user.

    Args:
        recipient: Email or username of the recipient
        message: Notification message

    Returns:
        str: Confirmation message
    """
    return f"Sent notification to {recipient}: {message}"


data_manager = Agent(
    id="data_manager",
    name="Data Manager",
    model="gpt-4o-mini",
    instructions=["You help users manage data operations"],
    tools=[delete_records, send_notification],
    markdown=True,
)
