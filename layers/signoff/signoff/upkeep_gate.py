"""Whether the scheduled upkeep needs the database, asked without connecting to it.

Aurora Serverless v2 pauses (0 ACU) only after 300 s without a connection, so an upkeep that
connects every five minutes would keep it awake forever. Each upkeep pass that does look at the
database leaves, in a small SSM parameter (the marker), when it will next have work there: the
earliest pause expiry, lease end or stranded-run deadline (``PostgresRunStore.next_upkeep_due``),
at most ``LONGEST_SLEEP_S`` away. Anything else that can create work (a start, a continue, a
decision, a queued resume) runs in a watched function, so a later upkeep also looks when one of
those was invoked since the last pass (Lambda's own ``Invocations`` metric in CloudWatch, read with
a margin for its delay). Otherwise it returns without touching the database, and the database
sleeps.

Bound: each duty (expiry, dead-run sweep, kept decisions, stranded runs) is done at most one
schedule period plus ``ACTIVITY_LAG_S`` after it falls due, and an expired call can never be
approved meanwhile (every decision path checks the expiry itself).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

LONGEST_SLEEP_S = 24 * 3600
"""The upkeep looks at the database at least this often, work or not (a safety net)."""
ACTIVITY_LAG_S = 300
"""How far back before the last pass invocations still count: CloudWatch metrics arrive late."""


@dataclass(frozen=True)
class Marker:
    """What the last upkeep pass left: when work is next due, and when that pass started."""

    next_due: float
    checked_at: float


class MarkerStore(Protocol):
    def read(self) -> Marker | None: ...

    def write(self, marker: Marker) -> None: ...


class ActivityProbe(Protocol):
    def active_between(self, start: float, end: float) -> bool: ...


class UpkeepGate:
    """Decides whether an upkeep run must look at the database, and records each pass.

    Args:
        marker: where the next due time is kept (``SsmMarker`` in AWS).
        activity: whether the watched functions ran in a time window (``LambdaInvocations``).
    """

    def __init__(self, marker: MarkerStore, activity: ActivityProbe) -> None:
        self._marker = marker
        self._activity = activity

    def due(self, now: float) -> bool:
        """Whether the upkeep has work now: past the marker's time, or activity since the last pass.

        Args:
            now: epoch seconds.

        Returns:
            True when the database must be looked at (also when no pass was recorded yet).
        """
        marker = self._marker.read()
        if marker is None or now >= marker.next_due:
            return True
        return self._activity.active_between(marker.checked_at - ACTIVITY_LAG_S, now)

    def passed(self, started: float, next_due: float | None) -> Marker:
        """Record a pass over the database that started at ``started``.

        Args:
            started: epoch seconds when the pass began (activity after it is looked for next time).
            next_due: when the database next has work (``next_upkeep_due``); None for never.

        Returns:
            The marker written.
        """
        latest = started + LONGEST_SLEEP_S
        marker = Marker(latest if next_due is None else min(next_due, latest), started)
        self._marker.write(marker)
        return marker


class SsmMarker:
    """The marker in an SSM String parameter, as JSON (``{}``: no pass recorded yet).

    Args:
        name: the parameter's name.
        client: an SSM client; boto3's when None.
    """

    def __init__(self, name: str, client: Any = None) -> None:
        self._name = name
        self._client = client

    def _ssm(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("ssm")
        return self._client

    def read(self) -> Marker | None:
        value = self._ssm().get_parameter(Name=self._name)["Parameter"]["Value"]
        try:
            data = json.loads(value)
            return Marker(float(data["next_due"]), float(data["checked_at"]))
        except (ValueError, KeyError, TypeError):
            return None

    def write(self, marker: Marker) -> None:
        value = json.dumps({"next_due": marker.next_due, "checked_at": marker.checked_at})
        self._ssm().put_parameter(Name=self._name, Value=value, Type="String", Overwrite=True)


class LambdaInvocations:
    """Whether any of the named functions was invoked in a window, from ``AWS/Lambda Invocations``.

    Args:
        function_names: the functions to watch.
        client: a CloudWatch client; boto3's when None.
    """

    def __init__(self, function_names: list[str], client: Any = None) -> None:
        self._names = list(function_names)
        self._client = client

    def active_between(self, start: float, end: float) -> bool:
        from datetime import UTC, datetime

        if not self._names:
            return False
        if self._client is None:
            import boto3

            self._client = boto3.client("cloudwatch")
        queries = [
            {
                "Id": f"f{index}",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/Lambda",
                        "MetricName": "Invocations",
                        "Dimensions": [{"Name": "FunctionName", "Value": name}],
                    },
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
            for index, name in enumerate(self._names)
        ]
        answer = self._client.get_metric_data(
            MetricDataQueries=queries,
            StartTime=datetime.fromtimestamp(start, UTC),
            # a minute past the end: the minute under way is one whole period
            EndTime=datetime.fromtimestamp(end + 60, UTC),
        )
        return any(value > 0 for result in answer["MetricDataResults"] for value in result["Values"])
