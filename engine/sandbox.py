"""Run task scripts and expressions in a RestrictedPython sandbox with size and time limits.

The library's stock environment only swaps globals, which is escapable
(`().__class__.__base__.__subclasses__()` reaches `os`). Here scripts are compiled with
RestrictedPython: no imports, no names or attributes starting with an underscore, attribute,
item and iteration guards, an allow-list of builtins and helpers, checks on operations that
could allocate without bound, and a wall-clock limit enforced by a trace function.
"""

from __future__ import annotations

import ast
import math
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from types import CodeType, FrameType
from typing import Any

from RestrictedPython import (
    RestrictingNodeTransformer,
    compile_restricted_eval,
    compile_restricted_exec,
)
from RestrictedPython.Eval import default_guarded_getitem, default_guarded_getiter
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safer_getattr,
)
from RestrictedPython.PrintCollector import PrintCollector
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

FILENAME = "<string>"
MAX_ITEMS = 1_000_000
MAX_INT_DIGITS = 10_000
_DENIED_ATTRIBUTES = frozenset(
    {
        "format",
        "format_map",
        "mro",
        "gi_frame",
        "gi_code",
        "gi_yieldfrom",
        "cr_frame",
        "cr_code",
        "ag_frame",
        "ag_code",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_back",
        "f_code",
        "tb_frame",
        "tb_next",
        "func_globals",
        "func_code",
    }
)
_LINE = re.compile(r"Line (\d+)")


class ScriptError(Exception):
    """A script was refused or failed in the sandbox; `line` is 1-based where known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class ScriptForbidden(ScriptError):
    """The script uses something the sandbox does not allow."""


class ScriptTimeout(ScriptError):
    """The script ran longer than its time limit."""


class ScriptTooLarge(ScriptError):
    """The script would build a value larger than the sandbox allows."""


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy, plus no imports and guarded `**`, `*` and `<<`."""

    _GUARDED = {ast.Pow: "_pow_", ast.Mult: "_mul_", ast.LShift: "_lshift_"}

    def visit_Import(self, node: ast.Import) -> Any:
        self.error(node, "import statements are not allowed")
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> Any:
        self.error(node, "import statements are not allowed")
        return node

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        node = self.node_contents_visit(node)
        guard = self._GUARDED.get(type(node.op))
        if guard is None:
            return node
        func = ast.copy_location(ast.Name(guard, ast.Load()), node)
        call = ast.copy_location(
            ast.Call(func=func, args=[node.left, node.right], keywords=[]), node
        )
        return ast.fix_missing_locations(call)


def _too_large(what: str) -> ScriptTooLarge:
    return ScriptTooLarge(f"result too large: {what}")


def _guarded_pow(base: Any, exponent: Any) -> Any:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if exponent * math.log10(abs(base)) > MAX_INT_DIGITS:
            raise _too_large(f"{base} ** {exponent} has more than {MAX_INT_DIGITS:,} digits")
    if isinstance(base, Decimal) and isinstance(exponent, int) and abs(exponent) > MAX_INT_DIGITS:
        raise _too_large(f"exponent {exponent} is too big")
    return base**exponent


def _guarded_mul(left: Any, right: Any) -> Any:
    for seq, count in ((left, right), (right, left)):
        if isinstance(seq, str | bytes | list | tuple) and isinstance(count, int):
            if len(seq) * count > MAX_ITEMS:
                raise _too_large(f"a sequence of {len(seq) * count:,} items (limit {MAX_ITEMS:,})")
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_DIGITS * 4:
            raise _too_large("an integer with too many digits")
    return left * right


def _guarded_lshift(value: Any, shift: Any) -> Any:
    if isinstance(shift, int) and shift > MAX_INT_DIGITS * 3:
        raise _too_large(f"a shift by {shift:,} bits")
    return value << shift


def _guarded_range(*args: int) -> range:
    items = range(*args)
    if len(items) > MAX_ITEMS:
        raise _too_large(f"a range of {len(items):,} items (limit {MAX_ITEMS:,})")
    return items


def _guarded_getattr(obj: Any, name: str, default: Any = None) -> Any:
    if name.startswith("_") or name in _DENIED_ATTRIBUTES:
        raise ScriptForbidden(f"access to '{name}' is not allowed")
    if isinstance(obj, type(sys)):
        raise ScriptForbidden("access to modules is not allowed")
    return safer_getattr(obj, name, default)


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    operations: dict[str, Callable[[Any, Any], Any]] = {
        "+=": lambda a, b: a + b,
        "-=": lambda a, b: a - b,
        "*=": _guarded_mul,
        "/=": lambda a, b: a / b,
        "//=": lambda a, b: a // b,
        "%=": lambda a, b: a % b,
        "**=": _guarded_pow,
        "<<=": _guarded_lshift,
        ">>=": lambda a, b: a >> b,
        "&=": lambda a, b: a & b,
        "|=": lambda a, b: a | b,
        "^=": lambda a, b: a ^ b,
    }
    if op not in operations:
        raise ScriptForbidden(f"operator {op} is not allowed")
    if op == "+=" and isinstance(target, str | list) and len(target) + len(value) > MAX_ITEMS:
        raise _too_large("a sequence over the limit")
    return operations[op](target, value)


def round_money(value: Any, places: int = 2) -> Decimal:
    """Round to `places` decimals, halves away from zero, as accountants expect."""
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def parse_date(value: str) -> date:
    return date.fromisoformat(value[:10])


def add_days(value: str, days: int) -> str:
    return (parse_date(value) + timedelta(days=days)).isoformat()


def days_between(start: str, end: str) -> int:
    return (parse_date(end) - parse_date(start)).days


_BUILTINS: dict[str, Any] = {
    name: getattr(__builtins__, name) if not isinstance(__builtins__, dict) else __builtins__[name]
    for name in (
        "abs",
        "all",
        "any",
        "bool",
        "dict",
        "enumerate",
        "filter",
        "float",
        "int",
        "isinstance",
        "len",
        "list",
        "map",
        "max",
        "min",
        "reversed",
        "round",
        "set",
        "sorted",
        "str",
        "sum",
        "tuple",
        "zip",
        "ValueError",
        "KeyError",
        "TypeError",
        "ZeroDivisionError",
        "Exception",
        "None",
        "True",
        "False",
    )
}
_BUILTINS["range"] = _guarded_range

HELPERS: dict[str, Any] = {
    "Decimal": Decimal,
    "ROUND_HALF_UP": ROUND_HALF_UP,
    "round_money": round_money,
    "date": date,
    "datetime": datetime,
    "timedelta": timedelta,
    "timezone": timezone,
    "UTC": UTC,
    "parse_date": parse_date,
    "add_days": add_days,
    "days_between": days_between,
}

_GUARDS: dict[str, Any] = {
    "__builtins__": _BUILTINS,
    "_getattr_": _guarded_getattr,
    "_getitem_": default_guarded_getitem,
    "_getiter_": default_guarded_getiter,
    "_write_": full_write_guard,
    "_inplacevar_": _inplacevar,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_print_": PrintCollector,
    "_pow_": _guarded_pow,
    "_mul_": _guarded_mul,
    "_lshift_": _guarded_lshift,
}
_INJECTED = frozenset(_GUARDS) | frozenset(HELPERS)


@lru_cache(maxsize=4096)
def _compile(source: str, mode: str) -> CodeType:
    compiler = compile_restricted_exec if mode == "exec" else compile_restricted_eval
    result = compiler(source, filename=FILENAME, policy=_Policy)
    if result.errors or result.code is None:
        message = "; ".join(result.errors) or "does not compile"
        match = _LINE.search(message)
        cls = ScriptError if "SyntaxError" in message else ScriptForbidden
        raise cls(message, int(match.group(1)) if match else None)
    return result.code


def check_script(source: str, mode: str = "exec") -> list[tuple[int | None, str]]:
    """Return the problems that keep `source` from compiling in the sandbox (none: empty list)."""
    try:
        _compile(source.strip() if mode == "eval" else source, mode)
    except ScriptError as exc:
        return [(exc.line, str(exc))]
    return []


class _Deadline:
    """A trace function that stops script code once its time is up."""

    def __init__(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds
        self.seconds = seconds

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != FILENAME:
            return None
        if time.monotonic() > self.until:
            raise ScriptTimeout(f"script ran past its time limit of {self.seconds:g} s")
        return self


class SandboxEnvironment(BasePythonScriptEngineEnvironment):
    """The script environment of every instance: restricted, bounded in size and time."""

    def __init__(self, time_limit: float = 2.0) -> None:
        super().__init__(dict(HELPERS))
        self.time_limit = time_limit

    def _globals(self, context: dict[str, Any], external: dict[str, Any] | None) -> dict[str, Any]:
        names = dict(_GUARDS)
        names.update(HELPERS)
        names.update(external or {})
        names.update(context)
        return names

    def _run(self, code: CodeType, names: dict[str, Any]) -> Any:
        previous = sys.gettrace()
        sys.settrace(_Deadline(self.time_limit))
        try:
            return eval(code, names)  # noqa: S307 - compiled by RestrictedPython, guarded globals
        except RecursionError as exc:
            raise ScriptError("script recursed too deeply") from exc
        except MemoryError as exc:
            raise ScriptTooLarge("script ran out of memory") from exc
        finally:
            sys.settrace(previous)

    def evaluate(
        self, expression: str, context: dict[str, Any], external_context: Any = None
    ) -> Any:
        return self._run(
            _compile(expression.strip(), "eval"), self._globals(context, external_context)
        )

    def execute(self, script: str, context: dict[str, Any], external_context: Any = None) -> bool:
        names = self._globals(context, external_context)
        self._run(_compile(script, "exec"), names)
        skip = _INJECTED | set(external_context or {})
        for key in list(context):
            if key not in names:
                del context[key]
        for key, value in names.items():
            if (
                key in skip
                or key.startswith("_")
                or callable(value)
                and not isinstance(value, Decimal)
            ):
                continue
            context[key] = value
        return True

    def call_service(self, context: dict[str, Any], **kwargs: Any) -> Any:
        raise NotImplementedError("service calls go through the script engine's operation registry")
