"""Domain errors of the CRM: the engine's, so that one web handler maps them all.

Messages are English. A message with values in it is built with `msg("... %(name)s ...",
name=value)`: it reads as the English text everywhere (it is a `str`), and it remembers its
template and values, so that the web layer can look the template up in the translation catalogue
and put the values back in. A message without values needs nothing: its English text is the key.
"""

from __future__ import annotations

from typing import Any

from engine.errors import Conflict, EngineError, Forbidden, InvalidInput, NotFound

__all__ = [
    "Conflict",
    "EngineError",
    "Forbidden",
    "InvalidInput",
    "Msg",
    "NotFound",
    "fields_error",
    "msg",
]


class Msg(str):
    """An English message that keeps its catalogue key (`msgid`) and the values put into it."""

    msgid: str
    params: dict[str, Any]

    def __new__(cls, msgid: str, params: dict[str, Any]) -> Msg:
        text = msgid % params if params else msgid
        made = super().__new__(cls, text)
        made.msgid, made.params = msgid, params
        return made

    def __reduce__(self) -> Any:  # keep the key when pickled (e.g. by a job queue)
        return (Msg, (self.msgid, self.params))


def msg(msgid: str, **params: Any) -> str:
    """Return a translatable message: `msg("lead %(id)s does not exist", id=7)`."""
    return Msg(msgid, params)


def fields_error(**messages: str) -> InvalidInput:
    """Build an InvalidInput naming each bad field: `fields_error(amount="must be positive")`."""
    names = ", ".join(sorted(messages))
    return InvalidInput(
        msg("please correct: %(fields)s", fields=names), {k: [v] for k, v in messages.items()}
    )
