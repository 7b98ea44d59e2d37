"""Finding instances for the ops console: filters, counts and per-element statistics.

The console's list page, its bulk actions and the heatmap all select instances through
`InstanceFilter`, so a bulk action touches exactly the instances the list shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class InstanceFilter:
    """Every field is optional; set fields are combined with AND."""

    process_id: str | None = None
    definition_id: int | None = None  # one deployed version
    status: str | None = None  # running, waiting, suspended, error, completed, terminated
    business_key: str | None = None  # exact, or prefix when it ends with '*'
    customer_id: int | None = None
    owner: str | None = None  # username owning the CRM record the instance serves
    started_from: datetime | None = None
    started_to: datetime | None = None
    updated_from: datetime | None = None
    updated_to: datetime | None = None
    waiting_at: str | None = None  # bpmn id of an element with a live (READY/WAITING) task
    in_error: bool = False  # has an open incident
    idle_days: int | None = None  # not updated for longer than this many days
    instance_ids: tuple[int, ...] = ()  # an explicit selection (checked rows)


def matching_ids(session: Session, criteria: InstanceFilter, *, now: datetime,
                 limit: int = 10_000) -> list[int]:
    """Ids of the instances matching `criteria`, newest first, at most `limit`."""
    raise NotImplementedError  # implemented with the ops console
