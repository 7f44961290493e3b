"""Who is asking: the principal a request or a signed channel vouches for."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """The caller, as authenticated by API Gateway's JWT authorizer (or a signed channel).

    Attributes:
        user_id: the ``sub`` claim (or the approver a signed webhook names).
        groups: the caller's groups exactly as the token carries them; ``None`` when they could not
            be read exactly (then no group grants anything: a group matches exactly or not at all).
    """

    user_id: str
    groups: tuple[str, ...] | None = ()

    def matches(self, names: tuple[str, ...]) -> bool:
        """Whether this principal is one of ``names`` (user ids or group names), compared exactly."""
        return self.user_id in names or any(group in names for group in self.groups or ())
