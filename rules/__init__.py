"""Scheduled rules (timers, reminders, pool recycling) and the scheduler that clocks them.

Importing this package starts nothing: the scheduler runs only when a command asks for it.
"""

from rules import models as _models  # noqa: F401
