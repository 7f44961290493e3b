"""Agents for the tests: the seed's data_manager plus one that exercises every kind of tool."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from catalog.data_manager import data_manager, delete_records
from signoff import Agent, approval, ask_user, tool

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


class SimulatedCrash(BaseException):
    """The invocation dies here: nothing in Signoff may catch it (Lambda would kill the process)."""


CRASH_IN: set[str] = set()
# Called while a tool of that name runs (another request arriving mid-execution, from the same
# process as Lambda would see it from another container).
WHILE_RUNNING: dict[str, Callable[[], None]] = {}


@tool(requires_confirmation=True)
def transfer(amount: int) -> str:
    """Transfer money; not safe to repeat.

    Args:
        amount: Amount in cents
    """
    EXECUTIONS.append(("transfer", {"amount": amount}))
    if "transfer" in WHILE_RUNNING:
        WHILE_RUNNING.pop("transfer")()
    if "transfer" in CRASH_IN:
        CRASH_IN.discard("transfer")
        raise SimulatedCrash("died while transferring")
    return f"Transferred {amount}"


@tool(requires_confirmation=True, idempotent=True)
def set_flag(name: str) -> str:
    """Set a feature flag; safe to repeat.

    Args:
        name: Flag name
    """
    EXECUTIONS.append(("set_flag", {"name": name}))
    if "set_flag" in CRASH_IN:
        CRASH_IN.discard("set_flag")
        raise SimulatedCrash("died while setting the flag")
    return f"Flag {name} set"


@tool(requires_confirmation=True, approval_ttl_seconds=2)
def purge_cache(region: str) -> str:
    """Purge a CDN cache; its approval lapses after two seconds.

    Args:
        region: The region
    """
    EXECUTIONS.append(("purge_cache", {"region": region}))
    return f"Purged {region}"


ops = Agent(
    id="ops",
    name="Ops",
    instructions=["You run operations"],
    tools=[lookup_user, book_room, charge_card, explode, delete_records, transfer, set_flag, purge_cache],
)

AGENTS = [data_manager, ops]


@tool(requires_confirmation=True)
def ledger_entry(amount: int, memo: str = "") -> str:
    """Write a ledger entry (a side effect other processes can count).

    Args:
        amount: Amount in cents
        memo: Free text
    """
    import os

    import psycopg

    with psycopg.connect(os.environ["SIGNOFF_DATABASE_URL"], autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS test_ledger (id serial PRIMARY KEY, amount int, memo text)")
        conn.execute("INSERT INTO test_ledger (amount, memo) VALUES (%s, %s)", (amount, memo))
    return f"Ledger entry of {amount} written"


@tool(requires_confirmation=True)
def ledger_entry_crashy(amount: int, memo: str = "") -> str:
    """Write a ledger entry; with memo "crash" the invocation dies right after writing it.

    Args:
        amount: Amount in cents
        memo: Free text
    """
    result = ledger_entry.function(amount, memo)
    if memo == "crash":
        raise SimulatedCrash("died after writing the ledger entry")
    return result


ledger = Agent(
    id="ledger",
    name="Ledger",
    instructions=["You keep the books"],
    tools=[ledger_entry, ledger_entry_crashy, lookup_user],
)
AGENTS.append(ledger)


@tool(requires_confirmation=True, approvers=["finance"], allow_self_approval=False)
def wire_money(amount: int) -> str:
    """Wire money out of the company account; finance decides, never the requester.

    Args:
        amount: Amount in cents
    """
    EXECUTIONS.append(("wire_money", {"amount": amount}))
    return f"Wired {amount}"


@tool(requires_confirmation=True, approvers=["security", "carol"])
def rotate_key(name: str) -> str:
    """Rotate an API key; the security group or carol decides.

    Args:
        name: Key name
    """
    EXECUTIONS.append(("rotate_key", {"name": name}))
    return f"Rotated {name}"


guarded = Agent(
    id="guarded",
    name="Guarded",
    instructions=["You move money and rotate keys"],
    tools=[wire_money, rotate_key, lookup_user],
)
AGENTS.append(guarded)


@tool(requires_confirmation=True)
def issue_refund(order_id: str, amount: int) -> str:
    """Refund an order; a human confirms, having seen what the agent read first.

    Args:
        order_id: The order
        amount: Amount in cents
    """
    EXECUTIONS.append(("issue_refund", {"order_id": order_id, "amount": amount}))
    return f"Refunded {amount} on {order_id}"


support = Agent(
    id="support",
    name="Support",
    instructions=["Check the handbook before you refund"],
    tools=[issue_refund],
    knowledge="handbook",
)
AGENTS.append(support)


@tool(requires_confirmation=True)
def archive_report(name: str) -> str:
    """Archive a report; names no approvers, so its run's owner decides.

    Args:
        name: Report name
    """
    EXECUTIONS.append(("archive_report", {"name": name}))
    if "archive_report" in WHILE_RUNNING:
        WHILE_RUNNING.pop("archive_report")()
    return f"Archived {name}"


mixed = Agent(
    id="mixed",
    name="Mixed",
    instructions=["You wire money and archive reports"],
    tools=[wire_money, archive_report],
)
AGENTS.append(mixed)


@tool(requires_user_input=True, user_input_fields=["priority", "due_in_days"])
def file_ticket(title: str, priority: str, due_in_days: int = 5) -> str:
    """File a support ticket; the human sets its priority and due date.

    Args:
        title: What is wrong
        priority: How urgent it is, chosen by the human
        due_in_days: Days until it is due, chosen by the human
    """
    EXECUTIONS.append(("file_ticket", {"title": title, "priority": priority, "due_in_days": due_in_days}))
    return f"Filed {title!r} as {priority}, due in {due_in_days} days"


@tool(requires_user_input=True)
def plan_trip(city: str, nights: int) -> str:
    """Plan a trip; the human may change any of it.

    Args:
        city: Where to go
        nights: How many nights
    """
    EXECUTIONS.append(("plan_trip", {"city": city, "nights": nights}))
    return f"Planned {nights} nights in {city}"


helpdesk = Agent(
    id="helpdesk",
    name="Helpdesk",
    instructions=["You file tickets and plan trips"],
    tools=[file_ticket, plan_trip],
)
AGENTS.append(helpdesk)


@approval
@tool(requires_confirmation=True, editable=True)
def pay_vendor(vendor: str, amount: int) -> str:
    """Pay a vendor; an approval admin resolves it (and may change the amount), never the requester.

    Args:
        vendor: Who
        amount: Amount in cents
    """
    EXECUTIONS.append(("pay_vendor", {"vendor": vendor, "amount": amount}))
    return f"Paid {amount} to {vendor}"


@tool(approvers=["finance"])
@approval
def wire_out(amount: int) -> str:
    """Wire money out; finance resolves it (the approval makes it ask for confirmation).

    Args:
        amount: Amount in cents
    """
    EXECUTIONS.append(("wire_out", {"amount": amount}))
    return f"Wired out {amount}"


@approval(type="audit")
@tool(requires_confirmation=True)
def close_account(account: str) -> str:
    """Close an account; its owner decides, and the decision is kept as an approval record.

    Args:
        account: The account
    """
    EXECUTIONS.append(("close_account", {"account": account}))
    return f"Closed {account}"


payouts = Agent(
    id="payouts",
    name="Payouts",
    instructions=["You pay vendors, wire money and close accounts"],
    tools=[pay_vendor, wire_out, close_account, archive_report],
)
AGENTS.append(payouts)


concierge = Agent(
    id="concierge",
    name="Concierge",
    instructions=["Ask the guest before you book"],
    tools=[ask_user, lookup_user],
)
AGENTS.append(concierge)


# The same agents on Amazon Bedrock (tests/e2e/test_providers.py runs them against the Bedrock
# stand-in): Claude through a cross-Region inference profile (takes toolResult.status), Nova, and
# Llama, which refuses toolResult.status.
BEDROCK_CLAUDE = "bedrock:us.anthropic.claude-3-5-haiku-20241022-v1:0"
BEDROCK_NOVA = "aws-bedrock:amazon.nova-lite-v1:0"
BEDROCK_LLAMA = "bedrock:meta.llama3-1-70b-instruct-v1:0"
AGENTS += [
    dataclasses.replace(data_manager, id="data_manager_bedrock", model=BEDROCK_CLAUDE),
    dataclasses.replace(data_manager, id="data_manager_llama", model=BEDROCK_LLAMA),
    dataclasses.replace(ops, id="ops_bedrock", model=BEDROCK_NOVA),
]


# -- `make soak`'s agent: ledger tools that race outside decisions and approval expiry (scripts/soak.py)


@tool(requires_confirmation=True)
def ledger_entry_slow(amount: int, memo: str = "") -> str:
    """Write a ledger entry, then take a little while (20-200 ms) before answering; with a memo ending
    in "-crash" the invocation dies after that.

    Args:
        amount: Amount in cents
        memo: Free text
    """
    import random
    import time

    result = ledger_entry.function(amount, memo)
    time.sleep(random.uniform(0.02, 0.2))  # the window in which outside decisions find the run busy
    if memo.endswith("-crash"):
        raise SimulatedCrash("died after writing the ledger entry, while the run was busy")
    return result


@tool(requires_confirmation=True, approval_ttl_seconds=2)
def ledger_entry_ttl(amount: int, memo: str = "") -> str:
    """Write a ledger entry; its approval lapses after two seconds.

    Args:
        amount: Amount in cents
        memo: Free text
    """
    return ledger_entry.function(amount, memo)


soak = Agent(
    id="soak",
    name="Soak",
    instructions=["You keep the books, in a hurry"],
    tools=[ledger_entry_slow, ledger_entry_ttl, ledger_entry],
)
AGENTS.append(soak)


# -- The approver's inbox (tests/e2e/test_inbox_browser.py): calls the finance group decides, one
# agent reading the handbook first, one tool whose arguments the approver may change.


@tool(requires_confirmation=True, approvers=["finance"])
def refund_payment(customer: str, amount: int, reason: str = "") -> str:
    """Refund a customer's payment; finance decides.

    Args:
        customer: The customer
        amount: Amount in cents
        reason: Why
    """
    EXECUTIONS.append(("refund_payment", {"customer": customer, "amount": amount, "reason": reason}))
    return f"Refunded {amount} to {customer}"


@tool(requires_confirmation=True, approvers=["finance"], editable=True)
def adjust_invoice(invoice: str, amount: int, memo: str = "") -> str:
    """Change an invoice's amount; finance decides and may correct the numbers first.

    Args:
        invoice: The invoice number
        amount: The new amount in cents
        memo: A note for the customer
    """
    EXECUTIONS.append(("adjust_invoice", {"invoice": invoice, "amount": amount, "memo": memo}))
    return f"Invoice {invoice} now {amount}"


billing = Agent(
    id="billing",
    name="Billing",
    instructions=["Check the handbook, then refund"],
    tools=[refund_payment],
    knowledge="handbook",
)
invoicing = Agent(
    id="invoicing",
    name="Invoicing",
    instructions=["You correct invoices"],
    tools=[adjust_invoice],
)
AGENTS += [billing, invoicing]
