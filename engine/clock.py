"""Injected time for the library's timer events.

SpiffWorkflow's timer definitions read `datetime.now()` directly. Services here take `now`
explicitly, so the engine runs library code inside `frozen_at(now)`, which makes that module see
the caller's time. Outside such a block the real clock is used.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, tzinfo

from SpiffWorkflow.bpmn.specs.event_definitions import timer as _timer_module

_current: contextvars.ContextVar[datetime | None] = contextvars.ContextVar(
    "stagecraft_engine_now", default=None
)


class _InjectedDatetime(datetime):
    """A datetime whose `now()` answers the time the engine was given."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
        frozen = _current.get()
        if frozen is None:
            return datetime.now(tz)
        return frozen.astimezone(tz) if tz is not None else frozen


_timer_module.datetime = _InjectedDatetime


@contextmanager
def frozen_at(now: datetime) -> Iterator[None]:
    """Run library code as if the time were `now` (an aware datetime)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    token = _current.set(now)
    try:
        yield
    finally:
        _current.reset(token)
