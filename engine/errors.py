"""Domain errors raised by engine services; the web layer maps them to responses."""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(EngineError):
    """The record does not exist, or the actor may not know that it does."""


class Forbidden(EngineError):
    """The actor may not do this."""


class Conflict(EngineError):
    """The record changed under the caller (lost race, stale task, wrong status)."""


class InvalidInput(EngineError):
    """Input was rejected; `fields` maps a field name to its messages."""

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


class DeployRejected(EngineError):
    """A deploy found errors; nothing was stored. `problems` lists every one of them."""

    def __init__(self, problems: list) -> None:  # list[Problem], kept loose to avoid a cycle
        count = len(problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} found; nothing was deployed")
        self.problems = problems
