"""Run process scripts and expressions in a RestrictedPython sandbox with time and size limits.

SpiffWorkflow's stock environment is escapable (`().__class__.__base__.__subclasses__()` reaches
`os`). Here code is compiled under `engine.sandbox_policy`, sees only allow-listed builtins and
helpers, and a trace function stops it past its time limit, step budget or memory limit.
"""

from __future__ import annotations

import ast
import decimal
import functools
import re
import resource
import sys
import textwrap
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from types import CodeType, FrameType, FunctionType, TracebackType
from typing import Any, cast

from RestrictedPython import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from engine.sandbox_policy import (
    FORBIDDEN_NAMES,
    MAX_INT_DIGITS,
    MAX_SEQUENCE,
    OPERATOR_GUARDS,
    SCRIPT_FILENAME,
    SandboxPolicy,
    ScriptError,
    ScriptForbidden,
    ScriptTimeout,
    ScriptTooLarge,
    check_decimal,
    check_size,
    guarded_getattr,
    too_many_digits,
    weight,
)

__all__ = [
    "HELPERS", "SandboxEnvironment", "ScriptError", "ScriptForbidden", "ScriptTimeout",
    "ScriptTooLarge", "add_days", "check_script", "days_between", "parse_date", "round_money",
]  # fmt: skip

MAX_TASK_DATA = 5 * MAX_SEQUENCE  # items and characters reachable from task data after a run
# Scripts get the same arithmetic whatever another library did to this thread's context.
_DECIMAL_CONTEXT = decimal.Context(prec=28, rounding=decimal.ROUND_HALF_EVEN)
_PROBLEM = re.compile(r"^Line (\d+|None): (.*)$", re.S)


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


def _int(*args: Any, **kwargs: Any) -> int:
    if args:
        check_decimal(args[0])
    return int(*args, **kwargs)


def _str(*args: Any, **kwargs: Any) -> str:
    if len(args) == 1 and not kwargs:
        check_size(weight(args[0]), "str()")
    return str(*args, **kwargs)


def _range(*args: int) -> range:
    numbers = range(*args)
    try:
        count = len(numbers)
    except OverflowError:  # longer than sys.maxsize
        count = sys.maxsize
    check_size(count, "range()")
    return numbers


def _round(number: Any, ndigits: int | None = None) -> Any:
    check_decimal(number)
    if isinstance(ndigits, int) and abs(ndigits) > MAX_INT_DIGITS:
        raise too_many_digits("round()")
    return round(number, ndigits)


def _sum(items: Iterable[Any], start: Any = 0) -> Any:
    if isinstance(start, (str, bytes, list, tuple)):  # quadratic, and unchecked in C
        raise ScriptForbidden("sum() of sequences is not allowed; use '+' or join()")
    return sum(items, start)


# The wrapped builtins stand in for their types in isinstance() and attribute reads (str.upper).
_REAL_TYPES: dict[Any, type] = {_int: int, _str: str, _range: range}


def _real_type(value: Any) -> Any:
    return _REAL_TYPES.get(value, value) if isinstance(value, FunctionType) else value


def _isinstance(value: Any, classinfo: Any) -> bool:
    if isinstance(classinfo, tuple):
        return isinstance(value, tuple(_real_type(item) for item in classinfo))
    return isinstance(value, _real_type(classinfo))


def _write(target: Any) -> Any:
    if isinstance(target, (dict, list)):
        return target
    raise ScriptForbidden(f"a {type(target).__name__} cannot be modified")


class _PrintCollector:
    """Collect what a script prints into `printed`; nothing reaches the server's stdout."""

    def __init__(self, _getattr_: Any = None) -> None:
        self.parts: list[str] = []
        self.size = 0

    def _call_print(self, *objects: Any, sep: str | None = " ", end: str | None = "\n") -> None:
        sep, end = _str(" " if sep is None else sep), _str("\n" if end is None else end)
        texts = [_str(item) for item in objects]
        self.size += sum(map(len, texts)) + len(sep) * len(texts) + len(end)
        check_size(self.size, "print()")
        self.parts.append(sep.join(texts) + end)

    def __call__(self) -> str:
        return "".join(self.parts)


HELPERS: dict[str, Any] = {
    "Decimal": Decimal, "ROUND_HALF_UP": ROUND_HALF_UP, "round_money": round_money,
    "date": date, "datetime": datetime, "timedelta": timedelta, "timezone": timezone, "UTC": UTC,
    "parse_date": parse_date, "add_days": add_days, "days_between": days_between,
}  # fmt: skip
_BUILTINS: dict[str, Any] = {
    "None": None, "True": True, "False": False, "abs": abs, "all": all, "any": any,
    "bool": bool, "dict": dict, "enumerate": enumerate, "filter": filter, "float": float,
    "int": _int, "isinstance": _isinstance, "len": len, "list": list, "map": map, "max": max,
    "min": min, "range": _range, "reversed": reversed, "round": _round, "set": set,
    "sorted": sorted, "str": _str, "sum": _sum, "tuple": tuple, "zip": zip, "next": next,
    "ArithmeticError": ArithmeticError, "AssertionError": AssertionError,
    "Exception": Exception, "IndexError": IndexError, "KeyError": KeyError,
    "LookupError": LookupError, "TypeError": TypeError, "ValueError": ValueError,
    "ZeroDivisionError": ZeroDivisionError,
}  # fmt: skip
_GUARDS: dict[str, Any] = {
    **OPERATOR_GUARDS, "_getattr_": lambda owner, name: guarded_getattr(owner, name, _real_type),
    "_getitem_": lambda obj, key: obj[key], "_getiter_": lambda value: value, "_write_": _write,
    "_print_": _PrintCollector, "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence, "_apply_": lambda f, *a, **k: f(*a, **k),
}  # fmt: skip
RESERVED_NAMES = frozenset(_GUARDS) | {"_handler_guard_"}


def _peak_memory_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux


def _script_line(traceback: TracebackType | None) -> int | None:
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == SCRIPT_FILENAME:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def _is_live(value: Any) -> bool:
    # Calling, iterating or closing it would run script code, maybe after the run has ended.
    return callable(value) or hasattr(value, "__next__")


def _refuse_live_code(value: Any) -> None:
    if _is_live(value):
        raise ScriptForbidden(f"a {type(value).__name__} cannot be kept; make it a list or value")


def _check_result(value: Any, what: str) -> None:
    # JSON encoding of task data would otherwise meet aliased, cyclic or bottomless values.
    if weight(value, MAX_TASK_DATA, _refuse_live_code) > MAX_TASK_DATA:
        raise ScriptTooLarge(f"{what} too large or too deeply nested (limit {MAX_TASK_DATA:,})")


@functools.lru_cache(maxsize=4096)
def _compile(source: str, mode: str) -> tuple[CodeType | None, tuple[tuple[int | None, str], ...]]:
    if mode not in ("exec", "eval"):
        raise ValueError(f"mode must be 'exec' or 'eval', not {mode!r}")
    text, offset = textwrap.dedent(source), 0
    if mode == "eval":  # conditions in BPMN XML often start on a fresh, indented line
        stripped = text.lstrip()
        text, offset = stripped.rstrip(), text[: len(text) - len(stripped)].count("\n")
    compiler = compile_restricted_exec if mode == "exec" else compile_restricted_eval
    try:
        tree = cast("ast.Module | ast.Expression", ast.parse(text, SCRIPT_FILENAME, mode))
        result = compiler(tree, SCRIPT_FILENAME, policy=SandboxPolicy)
    except SyntaxError as exc:  # from the parser, or the compiler ('return' outside function)
        return None, ((exc.lineno + offset if exc.lineno else None, f"syntax error: {exc.msg}"),)
    problems: list[tuple[int | None, str]] = []
    for error in result.errors:
        match = _PROBLEM.match(error)
        line, message = match.groups() if match else ("None", error)
        problem = (int(line) + offset if line.isdigit() else None, message)
        if problem not in problems:  # a re-read `a[k] += v` target reports its problems twice
            problems.append(problem)
    return (None, tuple(problems)) if problems else (result.code, ())


def check_script(source: str, mode: str = "exec") -> list[tuple[int | None, str]]:
    """Compile `source` without running it; return (line, message) for every problem found."""
    return list(_compile(source, mode)[1])


def compile_script(source: str, mode: str) -> CodeType:
    """Return the cached sandboxed code for `source`, or raise its problems as a ScriptError."""
    code, problems = _compile(source, mode)
    if code is None:
        line, first = problems[0]
        kind = ScriptError if first.startswith("syntax error") else ScriptForbidden
        raise kind("; ".join(message for _, message in problems), line)
    return code


class _Run:
    """The clock, step count and memory baseline of one evaluate or execute call."""

    def __init__(self, limits: SandboxEnvironment, builtins: dict[str, Any]) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.time_limit
        self.steps = 0
        self.memory_base = _peak_memory_kb()
        self.stopped: ScriptError | None = None
        self.active = False
        self.builtins = {**builtins, "_handler_guard_": self.handler_guard}
        # Bound once: they are handed to sys.settrace and returned on every event.
        self.trace_call = self._trace_call
        self.trace_line = self._trace_line

    def _trace_call(self, frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_builtins is not self.builtins:
            return None  # our guards, the library: anything but the script's own frames
        return self._trace_line(frame, event, arg)

    def _trace_line(self, frame: FrameType, event: str, arg: Any) -> Any:
        if not self.active:
            return None  # a frame of a finished run, such as a generator being collected
        self.steps += 1
        if self.steps & 15 == 0 or self.stopped is not None:
            self.check()
        return self.trace_line

    def check(self) -> None:
        """Raise once the script is out of time, steps or memory, and at every check after."""
        limits = self.limits
        if self.stopped is None and self.steps > limits.max_steps:
            self.stopped = ScriptTimeout(f"script ran past its step budget ({limits.max_steps:,})")
        elif self.stopped is None and time.monotonic() > self.deadline:
            self.stopped = ScriptTimeout(
                f"script ran past its time limit ({limits.time_limit:g} s)"
            )
        elif self.stopped is None and _peak_memory_kb() - self.memory_base > limits.memory_kb:
            self.stopped = ScriptTooLarge(f"script used over {limits.memory_limit_mb} MB of memory")
        if self.stopped is not None:
            raise type(self.stopped)(self.stopped.message)

    def handler_guard(self) -> None:
        """Open every except and finally block: a script may not swallow a stop."""
        error = sys.exc_info()[1]
        if isinstance(error, GeneratorExit):
            raise error  # a generator being closed closes without running its handlers
        if not self.active:
            raise ScriptForbidden("script code may not run after its script has finished")
        if sys.gettrace() is None:  # an exception raised by a trace function switches it off
            sys.settrace(self.trace_call)
            frame: FrameType | None = sys._getframe(1)
            while frame is not None:
                if frame.f_builtins is self.builtins:
                    frame.f_trace = self.trace_line
                frame = frame.f_back
        self.check()
        if isinstance(error, (RecursionError, MemoryError)) or (
            error is not None and not isinstance(error, Exception)
        ):
            raise error

    def run(self, code: CodeType, names: dict[str, Any], mode: str) -> Any:
        """Run `code` with `names` as its globals under this run's limits."""
        names["__builtins__"] = self.builtins
        previous = sys.gettrace()
        self.active = True
        sys.settrace(self.trace_call)
        try:
            with decimal.localcontext(_DECIMAL_CONTEXT):
                if mode == "eval":
                    return eval(code, names)  # noqa: S307 - compiled by the sandbox policy
                exec(code, names)  # noqa: S102 - compiled by the sandbox policy
                # Drop the script's functions and generators while the run still bounds them.
                for key in [key for key, value in names.items() if _is_live(value)]:
                    del names[key]
                return None
        finally:
            sys.settrace(previous)
            self.active = False


class SandboxEnvironment(BasePythonScriptEngineEnvironment):
    """Evaluate and execute task scripts in the sandbox; one instance serves every thread."""

    def __init__(
        self,
        environment_globals: dict[str, Any] | None = None,
        *,
        time_limit: float = 2.0,
        max_steps: int = 5_000_000,
        memory_limit_mb: int = 256,
    ) -> None:
        super().__init__({**HELPERS, **(environment_globals or {})})
        self.time_limit = time_limit
        self.max_steps = max_steps
        self.memory_limit_mb = memory_limit_mb
        self.memory_kb = memory_limit_mb * 1024

    def evaluate(
        self, expression: str, context: dict[str, Any], external_context: Any = None
    ) -> Any:
        """Return the value of `expression` over the task data and `external_context`."""
        value = self._run(expression, "eval", dict(context), external_context)
        _check_result(value, "expression result")
        return value

    def execute(self, script: str, context: dict[str, Any], external_context: Any = None) -> bool:
        """Run `script` with the task data as globals, so its assignments land in `context`."""
        before = set(context)
        try:
            self._run(script, "exec", context, external_context)
        finally:
            for key in list(context):
                injected = key in (external_context or ()) and key not in before
                if key == "__builtins__" or injected or _is_live(context[key]):
                    del context[key]
        _check_result(list(context.values()), "task data")
        return True

    def call_service(self, context: dict[str, Any], **kwargs: Any) -> Any:
        raise NotImplementedError("service calls go through the script engine's operation registry")

    def _run(
        self, source: str, mode: str, names: dict[str, Any], external: dict[str, Any] | None
    ) -> Any:
        code = compile_script(source, mode)
        reserved = RESERVED_NAMES.intersection(names)
        if reserved:
            raise ScriptForbidden(f"task data may not use the sandbox's name {min(reserved)!r}")
        run = _Run(self, {**_BUILTINS, **self.globals, **(external or {}), **_GUARDS})
        try:
            return run.run(code, names, mode)
        except ScriptError as exc:
            exc.line = exc.line or _script_line(exc.__traceback__)
            raise
        except (RecursionError, MemoryError) as exc:
            what = "recursion too deep" if isinstance(exc, RecursionError) else "out of memory"
            too_large = ScriptTooLarge(f"script too large: {what}", _script_line(exc.__traceback__))
            raise too_large.with_traceback(exc.__traceback__) from None
        except NameError as exc:
            if exc.name not in FORBIDDEN_NAMES:
                raise
            refused = ScriptForbidden(
                f"{exc.name!r} is not allowed", _script_line(exc.__traceback__)
            )
            raise refused.with_traceback(exc.__traceback__) from None
