"""What a script may do: errors, limits, the compile policy and the guards its code calls."""

from __future__ import annotations

import ast
import copy
import math
import operator
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast

from RestrictedPython.transformer import (
    INSPECT_ATTRIBUTES,
    IOPERATOR_TO_STR,
    RestrictingNodeTransformer,
)

# SpiffWorkflow's PythonScriptEngine looks for this file name in tracebacks to find the line.
SCRIPT_FILENAME = "<string>"
MAX_SEQUENCE = 1_000_000  # items or characters in one string, list, range or print-out
MAX_INT_DIGITS = 10_000  # digits of an int made by **, * or <<, or taken from a Decimal
MAX_INT_BITS = int(MAX_INT_DIGITS * math.log2(10))
MAX_FORMAT_WIDTH = 10_000  # width or precision of one f-string or % field
MAX_DEPTH = 100  # nesting of lists and dicts; repr() and JSON give up not far beyond
FORBIDDEN_NAMES = frozenset(
    {
        "open", "eval", "exec", "compile", "getattr", "setattr", "delattr", "hasattr", "vars",
        "globals", "locals", "dir", "type", "object", "super", "input", "breakpoint", "help",
        "memoryview", "bytearray", "classmethod", "staticmethod", "property", "exit", "quit",
    }
)  # fmt: skip
CLOCK_ATTRIBUTES = frozenset({"now", "today", "utcnow"})
# str.format reaches attributes through "{0.__class__}" without passing _getattr_; an int from
# Decimal.as_integer_ratio() can take minutes to build.
FORBIDDEN_ATTRIBUTES = INSPECT_ATTRIBUTES | {"format", "format_map", "mro", "as_integer_ratio"}
# Methods that can return far more than they are given; their arguments are checked first.
GROWING_METHODS = frozenset(
    {"ljust", "rjust", "center", "zfill", "expandtabs", "replace", "translate", "join"}
    | {"to_bytes", "extend"}
)
_Node = TypeVar("_Node", bound=ast.AST)
_SEQUENCES = (str, bytes, list, tuple)
_CONTAINERS = (dict, list, tuple, set, frozenset)
_NESTED = (str, bytes, *_CONTAINERS)
_PLAIN = frozenset({int, float, bool, type(None), Decimal, date, datetime, timedelta})
_CONVERSIONS: dict[int, Callable[[Any], str]] = {ord("s"): str, ord("r"): repr, ord("a"): ascii}
_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\*|\d+)?(?:\.(\*|\d*))?")


class ScriptError(Exception):
    """A script or expression could not run in the sandbox; `line` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return f"{self.message} (line {self.line})" if self.line else self.message


class ScriptForbidden(ScriptError):
    """The script used a name, attribute, import or construct the sandbox does not allow."""


class ScriptTimeout(ScriptError):
    """The script ran past its time limit or step budget."""


class ScriptTooLarge(ScriptError):
    """The script would have built too large a value, or used too much memory or recursion."""


def check_size(count: int, what: str) -> None:
    """Refuse an operation that would build more than MAX_SEQUENCE items or characters."""
    if count > MAX_SEQUENCE:
        amount = f"{count:,}" if count < 10**15 else "over 10^15"
        raise ScriptTooLarge(
            f"{what} result too large: {amount} items or characters (limit {MAX_SEQUENCE:,})"
        )


def too_many_digits(what: str) -> ScriptTooLarge:
    """Return the error for a number of more than MAX_INT_DIGITS digits."""
    return ScriptTooLarge(f"{what} result too large: more than {MAX_INT_DIGITS:,} digits")


def weight(value: Any, limit: int = MAX_SEQUENCE, leaf: Callable[[Any], None] | None = None) -> int:
    """Count the slots and characters reachable from `value`, stopping once past `limit`.

    `leaf`, when given, is called with every value that is not a string, container or number.
    """
    total, stack = 0, [(value, 0)]
    while stack and total <= limit:
        item, depth = stack.pop()
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, _CONTAINERS):
            total += 2 * len(item) if isinstance(item, dict) else len(item)
            if depth >= MAX_DEPTH or total > limit:  # before the walk, so aliasing stays cheap
                return max(total, limit + 1)
            for child in (*item.keys(), *item.values()) if isinstance(item, dict) else item:
                kind = type(child)
                if kind is str or kind is bytes:
                    total += len(child)
                elif kind not in _PLAIN:
                    stack.append((child, depth + 1))
        elif leaf is not None:
            leaf(item)
    return total


def check_decimal(value: Any) -> None:
    """Refuse a Decimal whose int or fixed-point form would take minutes to build in C."""
    if isinstance(value, Decimal) and value.is_finite() and abs(value.adjusted()) > MAX_INT_DIGITS:
        raise too_many_digits("Decimal conversion")


def attribute_refusal(name: str) -> str | None:
    """Return why reading attribute `name` is refused, or None when it is allowed."""
    if name in CLOCK_ATTRIBUTES:
        return f"access to {name!r} is not allowed: scripts may not read the clock"
    if name.startswith("_") or name in FORBIDDEN_ATTRIBUTES:
        return f"access to {name!r} is not allowed"
    return None


def _grown_size(target: Any, name: str, args: tuple, kwargs: dict) -> int:
    """Return an upper bound on what a growing method call returns; 0 when it cannot grow."""
    first = args[0] if args else next(iter(kwargs.values()), None)
    if name in ("ljust", "rjust", "center", "zfill", "to_bytes"):
        return first if isinstance(first, int) else 0
    if name == "expandtabs" and isinstance(target, (str, bytes)):
        tabsize = 8 if first is None else first
        tabs = target.count("\t") if isinstance(target, str) else target.count(b"\t")
        return len(target) + tabs * tabsize if isinstance(tabsize, int) else 0
    if name == "replace" and len(args) >= 2 and type(target) is type(args[0]) is type(args[1]):
        old, new = args[0], args[1]
        if isinstance(old, (str, bytes)):
            hits = target.count(old) if old else len(target) + 1
            return len(target) + hits * max(len(new) - len(old), 0)
    if name == "translate" and isinstance(target, str) and isinstance(first, (dict, list, tuple)):
        table = first.values() if isinstance(first, dict) else first
        return len(target) * max((len(v) for v in table if isinstance(v, str)), default=1)
    if name == "extend" and isinstance(target, list) and hasattr(first, "__len__"):
        return len(target) + len(first)  # type: ignore[arg-type]
    return 0


def _guard_method(owner: Any, name: str, method: Any) -> Any:
    """Wrap a growing method so that what it would build is checked before it runs."""
    unbound = isinstance(owner, type)  # str.join(sep, items) passes the target first

    def checked(*args: Any, **kwargs: Any) -> Any:
        target, rest = (args[0], args[1:]) if unbound and args else (owner, args)
        if name == "join" and isinstance(target, (str, bytes)) and len(rest) == 1:
            items = list(rest[0])  # a generator must be read once, so read it here
            size = sum(len(item) for item in items if isinstance(item, (str, bytes)))
            check_size(size + len(target) * max(len(items) - 1, 0), "join()")
            return method(*((target, items) if unbound else (items,)))
        check_size(_grown_size(target, name, rest, kwargs), f"{type(target).__name__}.{name}()")
        return method(*args, **kwargs)

    return checked


def guarded_getattr(owner: Any, name: str, real_type: Callable[[Any], Any]) -> Any:
    """Read `owner.name` for a script; `real_type` maps a wrapped builtin to its type."""
    refusal = attribute_refusal(name)
    if refusal:
        raise ScriptForbidden(refusal)
    if isinstance(owner, (str, bytes)):  # .encode('utf-32').hex() grows 8-fold; stop chains
        check_size(len(owner), f"{type(owner).__name__}.{name}()")
    owner = real_type(owner)
    value = getattr(owner, name)
    return _guard_method(owner, name, value) if name in GROWING_METHODS else value


def _check_width(number: str) -> None:
    if number and (len(number) > 6 or int(number) > MAX_FORMAT_WIDTH):
        raise ScriptTooLarge(f"format width {number} too large (limit {MAX_FORMAT_WIDTH:,})")


def _pow(base: Any, exponent: Any) -> Any:
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and abs(base) > 1
        and (exponent > MAX_INT_BITS or exponent * math.log10(abs(base)) > MAX_INT_DIGITS)
    ):
        raise too_many_digits("'**'")
    return base**exponent


def _mul(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise too_many_digits("'*'")
    elif isinstance(left, _SEQUENCES) and isinstance(right, int):
        check_size(weight(left) * right, "'*'")
    elif isinstance(left, int) and isinstance(right, _SEQUENCES):
        check_size(left * weight(right), "'*'")
    return left * right


def _lshift(value: Any, shift: Any) -> Any:
    if (
        isinstance(value, int)
        and isinstance(shift, int)
        and value.bit_length() + shift > MAX_INT_BITS
    ):
        raise too_many_digits("'<<'")
    return value << shift


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        check_size(len(left) + len(right), "'+'")
    return left + right


def _mod(left: Any, right: Any) -> Any:
    if isinstance(left, (str, bytes)):
        text = left.decode("latin-1") if isinstance(left, bytes) else left
        total = len(text)
        for width, precision in _PERCENT_FIELD.findall(text):
            if "*" in (width, precision):
                raise ScriptForbidden("'*' widths are not allowed in % formatting")
            _check_width(width)
            _check_width(precision)
            total += int(width or 0) + int(precision or 0)
        values = right.values() if isinstance(right, dict) else right
        for value in values if isinstance(values, (tuple, type({}.values()))) else (values,):
            check_decimal(value)
            total += weight(value)
        check_size(total, "% formatting")
    return left % right


def _format(value: Any, conversion: int, spec: str) -> str:
    for number in re.findall(r"\d+", spec):
        _check_width(number)
    check_decimal(value)
    check_size(weight(value), "formatting")
    if conversion != -1:
        value = _CONVERSIONS[conversion](value)
    return format(value, spec)


def _unpack(value: Any) -> Any:
    if isinstance(value, _NESTED):
        check_size(len(value), "unpacking")
    return value


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": _add, "-=": operator.sub, "*=": _mul, "/=": operator.truediv, "%=": _mod,
    "**=": _pow, "<<=": _lshift, ">>=": operator.rshift, "|=": operator.or_,
    "^=": operator.xor, "&=": operator.and_, "//=": operator.floordiv, "@=": operator.matmul,
}  # fmt: skip


def _inplace(op: str, target: Any, value: Any) -> Any:
    if isinstance(target, list) and op in ("+=", "*="):  # a list changes in place, as in Python
        if op == "+=" and hasattr(value, "__len__"):
            check_size(len(target) + len(value), "'+='")
        elif op == "*=" and isinstance(value, int):
            check_size(weight(target) * value, "'*='")
        return operator.iadd(target, value) if op == "+=" else operator.imul(target, value)
    return _INPLACE[op](target, value)


# What the names in the policy's rewrites call.
OPERATOR_GUARDS: dict[str, Callable[..., Any]] = {
    "_pow_": _pow, "_mul_": _mul, "_lshift_": _lshift, "_add_": _add, "_mod_": _mod,
    "_format_": _format, "_unpack_": _unpack, "_inplacevar_": _inplace,
}  # fmt: skip
_BINOP_GUARDS: dict[type[ast.operator], str] = {
    ast.Pow: "_pow_", ast.Mult: "_mul_", ast.LShift: "_lshift_", ast.Add: "_add_", ast.Mod: "_mod_",
}  # fmt: skip
# Node types that read without side effects, so `a[k] += v` may evaluate `a[k]` twice.
_PURE_NODES: tuple[type[ast.AST], ...] = (
    ast.Name, ast.Constant, ast.Attribute, ast.Subscript, ast.Slice, ast.Tuple, ast.UnaryOp,
    ast.USub, ast.UAdd, ast.expr_context,
)  # fmt: skip


def _located(node: _Node, like: ast.AST) -> _Node:
    return ast.fix_missing_locations(ast.copy_location(node, like))


def _guard_call(name: str, args: list[ast.expr], like: ast.AST) -> ast.Call:
    return _located(ast.Call(func=ast.Name(name, ast.Load()), args=args, keywords=[]), like)


class SandboxPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy plus size guards, uncatchable timeouts and plain messages."""

    def check_name(self, node: Any, name: str | None, allow_magic_methods: bool = False) -> None:
        if name and name.startswith("_") and name != "_":
            self.error(node, f"name {name!r} is not allowed")
            return
        super().check_name(node, name, allow_magic_methods)

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        refusal = attribute_refusal(node.attr)
        if refusal:  # visit the object first, so `a.__class__.__base__` reports in source order
            node = self.node_contents_visit(node)
            self.error(node, refusal)
            return node
        return super().visit_Attribute(node)

    def visit_Call(self, node: ast.Call) -> Any:
        if isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_NAMES:
            self.error(node, f"{node.func.id!r} is not allowed")
            return self.node_contents_visit(node)
        return super().visit_Call(node)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> Any:
        names = getattr(node, "module", None) or ", ".join(alias.name for alias in node.names)
        self.error(node, f"import of {names!r} is not allowed")
        return node

    visit_ImportFrom = visit_Import

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        self.error(node, f"class definition {node.name!r} is not allowed")
        return node

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        node = self.node_contents_visit(node)
        guard = _BINOP_GUARDS.get(type(node.op))
        return _guard_call(guard, [node.left, node.right], node) if guard else node

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        # RestrictedPython refuses `counts[k] += 1`; allow it where re-reading the target is pure.
        target = node.target
        if not isinstance(target, ast.Subscript) or not all(
            isinstance(part, _PURE_NODES) for part in ast.walk(target)
        ):
            return super().visit_AugAssign(node)
        current = copy.deepcopy(target)
        current.ctx = ast.Load()
        op = ast.Constant(IOPERATOR_TO_STR[type(node.op)])
        value = _guard_call("_inplacevar_", [op, self.visit(current), self.visit(node.value)], node)
        return _located(ast.Assign(targets=[self.visit(target)], value=value), node)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> Any:
        # f"{x:>1000000000}" would allocate before any guard saw it; format through _format_.
        node = self.node_contents_visit(node)
        args = [node.value, ast.Constant(node.conversion), node.format_spec or ast.Constant("")]
        return _located(ast.FormattedValue(_guard_call("_format_", args, node), -1, None), node)

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        if isinstance(node.ctx, ast.Store) and isinstance(node.slice, ast.Slice):
            self.error(node, "slice assignment is not allowed")  # x[:0] = x grows unchecked
        return super().visit_Subscript(node)

    def visit_Starred(self, node: ast.Starred) -> Any:
        node = self.node_contents_visit(node)
        if isinstance(node.ctx, ast.Load):
            node.value = _guard_call("_unpack_", [node.value], node.value)
        return node

    def visit_Dict(self, node: ast.Dict) -> Any:
        node = self.node_contents_visit(node)
        node.values = [
            _guard_call("_unpack_", [value], value) if key is None else value
            for key, value in zip(node.keys, node.values, strict=True)
        ]
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> Any:
        # A timeout is an exception; unguarded, a script could catch it and run on untimed.
        handler = cast(ast.ExceptHandler, super().visit_ExceptHandler(node))
        handler.body.insert(0, self._handler_guard(handler))
        return handler

    def visit_Try(self, node: ast.Try) -> Any:
        statement = cast(ast.Try, super().visit_Try(node))
        if statement.finalbody:
            statement.finalbody.insert(0, self._handler_guard(statement.finalbody[0]))
        return statement

    def _handler_guard(self, like: ast.AST) -> ast.Expr:
        return _located(ast.Expr(_guard_call("_handler_guard_", [], like)), like)
