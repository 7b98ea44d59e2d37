"""Run process scripts and expressions in a RestrictedPython sandbox with time and size limits."""

from __future__ import annotations

import decimal
import math
import operator
import re
import resource
import sys
import time
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from types import FrameType, FunctionType, TracebackType
from typing import Any

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from engine.sandbox_policy import (
    FORBIDDEN_NAMES,
    MAX_FORMAT_WIDTH,
    MAX_INT_BITS,
    MAX_INT_DIGITS,
    MAX_SEQUENCE,
    SCRIPT_FILENAME,
    ScriptError,
    ScriptForbidden,
    ScriptTimeout,
    ScriptTooLarge,
    attribute_refusal,
    check_script,
    compile_script,
)

__all__ = [
    "SandboxEnvironment",
    "ScriptError",
    "ScriptForbidden",
    "ScriptTimeout",
    "ScriptTooLarge",
    "add_days",
    "check_script",
    "days_between",
    "parse_date",
    "round_money",
]

MAX_TASK_DATA = 5 * MAX_SEQUENCE  # items and characters reachable from task data after a run
_SEQUENCES = (str, bytes, list, tuple)
_CHECKED_METHODS = frozenset(
    {"ljust", "rjust", "center", "zfill", "expandtabs", "replace", "translate", "join", "to_bytes"}
    | {"extend"}
)
_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\*|\d+)?(?:\.(\*|\d*))?")
_FATAL = (RecursionError, MemoryError)
# Scripts see the same arithmetic whatever another library did to this thread's context.
_DECIMAL_CONTEXT = decimal.Context(prec=28, rounding=decimal.ROUND_HALF_EVEN)


def _amount(count: int) -> str:
    return f"{count:,}" if count < 10**15 else "more than 10^15"


def _check_size(count: int, what: str) -> None:
    if count > MAX_SEQUENCE:
        raise ScriptTooLarge(
            f"{what} would make {_amount(count)} items or characters; the limit is {MAX_SEQUENCE:,}"
        )


def _too_many_digits(what: str) -> ScriptTooLarge:
    return ScriptTooLarge(f"{what} would make a number of more than {MAX_INT_DIGITS:,} digits")


def _weight(value: Any, limit: int = MAX_SEQUENCE) -> int:
    """Count the slots and characters reachable from `value`, stopping once past `limit`."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, dict):
            total += 2 * len(item)
            if total <= limit:  # aliased or cyclic containers must not explode the walk
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += len(item)
            if total <= limit:
                stack.extend(item)
    return total


def _check_decimal(value: Any) -> None:
    # int(Decimal("1e1000000")) or f"{...:f}" spends minutes in C, out of the tracer's reach.
    if isinstance(value, Decimal) and value.is_finite() and abs(value.adjusted()) > MAX_INT_DIGITS:
        raise _too_many_digits("this Decimal")


def _pow_(base: Any, exponent: Any) -> Any:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 1 and abs(base) > 1:
        if exponent > MAX_INT_BITS or exponent * math.log10(abs(base)) > MAX_INT_DIGITS:
            raise _too_many_digits("'**'")
    return base**exponent


def _mul_(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise _too_many_digits("'*'")
    elif isinstance(left, _SEQUENCES) and isinstance(right, int):
        _check_size(_weight(left) * right, "'*'")
    elif isinstance(left, int) and isinstance(right, _SEQUENCES):
        _check_size(left * _weight(right), "'*'")
    return left * right


def _lshift_(value: Any, shift: Any) -> Any:
    if isinstance(value, int) and isinstance(shift, int) and value and shift > 0:
        if value.bit_length() + shift > MAX_INT_BITS:
            raise _too_many_digits("'<<'")
    return value << shift


def _add_(left: Any, right: Any) -> Any:
    if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        _check_size(len(left) + len(right), "'+'")
    return left + right


def _mod_(left: Any, right: Any) -> Any:
    if isinstance(left, (str, bytes)):
        text = left.decode("latin-1") if isinstance(left, bytes) else left
        total = len(text)
        for width, precision in _PERCENT_FIELD.findall(text):
            if "*" in (width, precision):
                raise ScriptForbidden("'*' widths are not allowed in % formatting")
            for number in (width, precision):
                if number and (len(number) > 6 or int(number) > MAX_FORMAT_WIDTH):
                    raise ScriptTooLarge(f"% format width {number} is over {MAX_FORMAT_WIDTH:,}")
                total += int(number or 0)
        values = right.values() if isinstance(right, dict) else right
        for value in values if isinstance(values, (tuple, type({}.values()))) else (values,):
            _check_decimal(value)
            total += _weight(value)
        _check_size(total, "% formatting")
    return left % right


def _format_(value: Any, conversion: int, spec: str) -> str:
    for number in re.findall(r"\d+", spec):
        if len(number) > 6 or int(number) > MAX_FORMAT_WIDTH:
            raise ScriptTooLarge(f"format width {number} is over {MAX_FORMAT_WIDTH:,}")
    _check_decimal(value)
    _check_size(_weight(value), "formatting")
    if conversion != -1:
        value = {ord("s"): str, ord("r"): repr, ord("a"): ascii}[conversion](value)
    return format(value, spec)


def _unpack_(value: Any) -> Any:
    if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)):
        _check_size(len(value), "unpacking")
    return value


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": _add_, "-=": operator.sub, "*=": _mul_, "/=": operator.truediv, "%=": _mod_,
    "**=": _pow_, "<<=": _lshift_, ">>=": operator.rshift, "|=": operator.or_,
    "^=": operator.xor, "&=": operator.and_, "//=": operator.floordiv, "@=": operator.matmul,
}  # fmt: skip


def _inplacevar_(op: str, target: Any, value: Any) -> Any:
    if isinstance(target, list) and op in ("+=", "*="):  # lists change in place, as in Python
        grown = len(target) + len(value) if op == "+=" and hasattr(value, "__len__") else 0
        _check_size(len(target) * value if op == "*=" and isinstance(value, int) else grown, op)
        return operator.iadd(target, value) if op == "+=" else operator.imul(target, value)
    return _INPLACE[op](target, value)


def _check_method_call(target: Any, name: str, args: tuple, kwargs: dict) -> None:
    first = args[0] if args else None
    what = f"{type(target).__name__}.{name}()"
    if name in ("ljust", "rjust", "center", "zfill", "to_bytes"):
        width = kwargs.get("width", kwargs.get("length", first if first is not None else 1))
        if isinstance(width, int):
            _check_size(width, what)
    elif name == "expandtabs" and isinstance(target, (str, bytes)):
        tabsize = kwargs.get("tabsize", first if first is not None else 8)
        tab = "\t" if isinstance(target, str) else b"\t"
        if isinstance(tabsize, int):
            _check_size(len(target) + target.count(tab) * tabsize, what)  # type: ignore[arg-type]
    elif name == "replace" and len(args) >= 2 and isinstance(target, (str, bytes)):
        old, new = args[0], args[1]
        if isinstance(old, type(target)) and isinstance(new, type(target)):
            hits = target.count(old) if old else len(target) + 1
            limit = args[2] if len(args) > 2 else kwargs.get("count", -1)
            hits = min(hits, limit) if isinstance(limit, int) and limit >= 0 else hits
            _check_size(len(target) + hits * max(len(new) - len(old), 0), what)
    elif name == "translate" and isinstance(target, str) and first is not None:
        values = first.values() if isinstance(first, dict) else first
        texts = [len(v) for v in values if isinstance(v, str)] if hasattr(values, "__iter__") else []
        _check_size(len(target) * max(texts, default=1), what)
    elif name == "extend" and isinstance(target, list) and hasattr(first, "__len__"):
        _check_size(len(target) + len(first), what)  # type: ignore[arg-type]


def _guard_method(owner: Any, name: str, method: Any) -> Any:
    """Wrap a method that can grow a value without bound so its arguments are checked first."""
    unbound = isinstance(owner, type)  # str.join(sep, items) passes the target first

    def checked(*args: Any, **kwargs: Any) -> Any:
        target, rest = (args[0], args[1:]) if unbound and args else (owner, args)
        if name == "join" and rest and isinstance(target, (str, bytes)):
            items = list(rest[0])
            sizes = sum(len(item) for item in items if isinstance(item, (str, bytes)))
            _check_size(sizes + len(target) * max(len(items) - 1, 0), f"{name}()")
            return method(*((target, items) if unbound else (items,)))
        _check_method_call(target, name, rest, kwargs)
        return method(*args, **kwargs)

    return checked


def _int(*args: Any, **kwargs: Any) -> int:
    if args:
        _check_decimal(args[0])
    return int(*args, **kwargs)


def _str(*args: Any, **kwargs: Any) -> str:
    if len(args) == 1 and not kwargs:
        _check_size(_weight(args[0]), "str()")
    return str(*args, **kwargs)


def _range(*args: int) -> range:
    numbers = range(*args)
    try:
        count = len(numbers)
    except OverflowError:
        count = sys.maxsize
    _check_size(count, "range()")
    return numbers


def _round(number: Any, ndigits: int | None = None) -> Any:
    _check_decimal(number)
    if isinstance(ndigits, int) and abs(ndigits) > MAX_INT_DIGITS:
        raise _too_many_digits("round()")
    return round(number, ndigits)


def _sum(items: Iterable[Any], start: Any = 0) -> Any:
    if isinstance(start, (str, bytes, list, tuple)):
        raise ScriptForbidden("sum() of sequences is not allowed; use '+' or join()")
    return sum(items, start)


# Wrapped builtins stand in for their types in isinstance() and attribute lookups (str.upper).
_REAL_TYPES: dict[Any, type] = {_int: int, _str: str, _range: range}


def _real_type(value: Any) -> Any:
    return _REAL_TYPES.get(value, value) if isinstance(value, FunctionType) else value


def _isinstance(value: Any, classinfo: Any) -> bool:
    if isinstance(classinfo, tuple):
        return isinstance(value, tuple(_real_type(item) for item in classinfo))
    return isinstance(value, _real_type(classinfo))


def _getattr_(owner: Any, name: str) -> Any:
    refusal = attribute_refusal(name)
    if refusal:
        raise ScriptForbidden(refusal)
    owner = _real_type(owner)
    value = getattr(owner, name)
    return _guard_method(owner, name, value) if name in _CHECKED_METHODS else value


class _ListWriter:
    """Stand in for a list being assigned to, so slice assignment cannot grow it unchecked."""

    __slots__ = ("items",)

    def __init__(self, items: list) -> None:
        object.__setattr__(self, "items", items)

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(key, slice) and hasattr(value, "__len__"):
            _check_size(len(self.items) + len(value), "slice assignment")
        self.items[key] = value

    def __delitem__(self, key: Any) -> None:
        del self.items[key]

    def __setattr__(self, name: str, value: Any) -> None:
        raise ScriptForbidden("a list's attributes cannot be set")


def _write_(target: Any) -> Any:
    if isinstance(target, dict):
        return target
    if isinstance(target, list):
        return _ListWriter(target)
    raise ScriptForbidden(f"a {type(target).__name__} cannot be modified")


class _PrintCollector:
    """Collect what a script prints into `printed`; nothing reaches the server's stdout."""

    def __init__(self, _getattr_: Any = None) -> None:
        self.parts: list[str] = []
        self.size = 0

    def _call_print(self, *objects: Any, sep: str = " ", end: str = "\n") -> None:
        texts = [_str(item) for item in objects]
        self.size += sum(map(len, texts)) + len(str(sep)) * len(texts) + len(str(end))
        _check_size(self.size, "print()")
        self.parts.append(str(sep).join(texts) + str(end))

    def __call__(self) -> str:
        return "".join(self.parts)


def round_money(value: Decimal | int | float | str, places: int = 2) -> Decimal:
    """Round an amount to `places` decimals, halves away from zero."""
    if not 0 <= places <= 12:
        raise ValueError("places must be between 0 and 12")
    amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def parse_date(value: str | date) -> date:
    """Return the calendar date of an ISO 8601 date or date-time string."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    return datetime.fromisoformat(text).date() if len(text) > 10 else date.fromisoformat(text)


def add_days(value: str | date, days: int) -> str:
    """Return the ISO date `days` days after the given ISO date."""
    return (parse_date(value) + timedelta(days=days)).isoformat()


def days_between(start: str | date, end: str | date) -> int:
    """Return how many days `end` falls after `start` (negative when before)."""
    return (parse_date(end) - parse_date(start)).days


_GUARDS: dict[str, Any] = {
    "_getattr_": _getattr_, "_getitem_": operator.getitem, "_getiter_": lambda value: value,
    "_write_": _write_, "_inplacevar_": _inplacevar_, "_print_": _PrintCollector,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence, "_apply_": lambda f, *a, **k: f(*a, **k),
    "_pow_": _pow_, "_mul_": _mul_, "_lshift_": _lshift_, "_add_": _add_, "_mod_": _mod_,
    "_format_": _format_, "_unpack_": _unpack_,
}  # fmt: skip
RESERVED_NAMES = frozenset(_GUARDS) | {"_handler_guard_"}
_BUILTINS: dict[str, Any] = {
    "None": None, "True": True, "False": False, "abs": abs, "all": all, "any": any,
    "bool": bool, "dict": dict, "enumerate": enumerate, "filter": filter, "float": float,
    "int": _int, "isinstance": _isinstance, "len": len, "list": list, "map": map, "max": max,
    "min": min, "range": _range, "reversed": reversed, "round": _round, "set": set,
    "sorted": sorted, "str": _str, "sum": _sum, "tuple": tuple, "zip": zip,
    "ArithmeticError": ArithmeticError, "AssertionError": AssertionError,
    "Exception": Exception, "IndexError": IndexError, "KeyError": KeyError,
    "LookupError": LookupError, "TypeError": TypeError, "ValueError": ValueError,
    "ZeroDivisionError": ZeroDivisionError,
    "Decimal": Decimal, "ROUND_HALF_UP": ROUND_HALF_UP, "round_money": round_money,
    "date": date, "datetime": datetime, "timedelta": timedelta, "timezone": timezone,
    "parse_date": parse_date, "add_days": add_days, "days_between": days_between,
}  # fmt: skip


def _peak_memory_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux


def _script_line(traceback: TracebackType | None) -> int | None:
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == SCRIPT_FILENAME:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line
