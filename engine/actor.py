"""Who is acting: the engine's view of a user, independent of the CRM's user table."""

from __future__ import annotations

from dataclasses import dataclass, field

REPAIR_ROLES = frozenset({"admin", "ops"})


@dataclass(frozen=True)
class Actor:
    username: str
    roles: frozenset[str] = field(default_factory=frozenset)
    teams: frozenset[str] = field(default_factory=frozenset)

    @property
    def can_repair(self) -> bool:
        """Ops and admins may act on any instance and task."""
        return bool(self.roles & REPAIR_ROLES)


SYSTEM = Actor("system", frozenset({"system", "ops"}))
