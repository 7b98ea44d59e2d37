"""Domain errors of the CRM: the engine's, so that one web handler maps them all."""

from __future__ import annotations

from engine.errors import Conflict, EngineError, Forbidden, InvalidInput, NotFound

__all__ = ["Conflict", "EngineError", "Forbidden", "InvalidInput", "NotFound", "fields_error"]


def fields_error(**messages: str) -> InvalidInput:
    """Build an InvalidInput naming each bad field: `fields_error(amount="must be positive")`."""
    names = ", ".join(sorted(messages))
    return InvalidInput(f"please correct: {names}", {k: [v] for k, v in messages.items()})
