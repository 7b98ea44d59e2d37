"""What a process script may say: sandbox errors, limits and the RestrictedPython compile policy."""

from __future__ import annotations

import ast
import copy
import functools
import re
import textwrap
from types import CodeType

from RestrictedPython import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.transformer import (
    INSPECT_ATTRIBUTES,
    IOPERATOR_TO_STR,
    RestrictingNodeTransformer,
    copy_locations,
)

# SpiffWorkflow's PythonScriptEngine looks for this file name in tracebacks to find the line.
SCRIPT_FILENAME = "<string>"
MAX_SEQUENCE = 1_000_000  # items or characters in one string, list, range or padded field
MAX_INT_DIGITS = 10_000  # decimal digits of an int made by **, *, << or from a Decimal
MAX_INT_BITS = int(MAX_INT_DIGITS * 3.33)
MAX_FORMAT_WIDTH = 10_000  # width or precision in an f-string or % format

FORBIDDEN_NAMES = frozenset(
    {
        "open", "eval", "exec", "compile", "getattr", "setattr", "delattr", "hasattr", "vars",
        "globals", "locals", "dir", "type", "object", "super", "input", "breakpoint", "help",
        "memoryview", "bytearray", "classmethod", "staticmethod", "property", "exit", "quit",
    }
)  # fmt: skip
CLOCK_ATTRIBUTES = frozenset({"now", "today", "utcnow"})
# str.format reaches attributes through "{0.__class__}" without going past our _getattr_.
FORBIDDEN_ATTRIBUTES = INSPECT_ATTRIBUTES | {"format", "format_map", "mro", "as_integer_ratio"}
_BINOP_GUARDS = {
    ast.Pow: "_pow_",
    ast.Mult: "_mul_",
    ast.LShift: "_lshift_",
    ast.Add: "_add_",
    ast.Mod: "_mod_",
}
# Node types whose evaluation has no side effects, so `a[k] += v` may evaluate `a[k]` twice.
_PURE_NODES = (ast.Name, ast.Constant, ast.Attribute, ast.Subscript, ast.Slice, ast.Tuple)
_PURE_NODES += (ast.UnaryOp, ast.USub, ast.UAdd, ast.expr_context)
_PROBLEM = re.compile(r"^Line (\d+|None): (.*)$", re.S)


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
    """The script ran longer than its time limit or step budget."""


class ScriptTooLarge(ScriptError):
    """The script would have built a value, or used memory or recursion, beyond the limits."""


def attribute_refusal(name: str) -> str | None:
    """Return why reading attribute `name` is refused, or None when it is allowed."""
    if name in CLOCK_ATTRIBUTES:
        return f"access to {name!r} is not allowed: scripts may not read the clock"
    if name.startswith("_") or name in FORBIDDEN_ATTRIBUTES:
        return f"access to {name!r} is not allowed"
    return None


def _guard_call(name: str, args: list[ast.expr], like: ast.AST) -> ast.Call:
    call = ast.Call(func=ast.Name(name, ast.Load()), args=args, keywords=[])
    copy_locations(call, like)
    return call


class SandboxPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy plus size guards, uncatchable timeouts and plain messages."""

    def check_name(self, node, name, allow_magic_methods=False):  # type: ignore[no-untyped-def]
        if name and name.startswith("_") and name != "_":
            self.error(node, f"name {name!r} is not allowed")
            return
        super().check_name(node, name, allow_magic_methods)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        refusal = attribute_refusal(node.attr)
        if refusal:
            self.error(node, refusal)
            return self.node_contents_visit(node)
        return super().visit_Attribute(node)  # type: ignore[return-value]

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_NAMES:
            self.error(node, f"{node.func.id!r} is not allowed")
            return self.node_contents_visit(node)
        return super().visit_Call(node)  # type: ignore[return-value]

    def visit_Import(self, node: ast.Import) -> ast.AST:
        names = ", ".join(repr(alias.name) for alias in node.names)
        self.error(node, f"import of {names} is not allowed")
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        self.error(node, f"import from {node.module!r} is not allowed")
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.error(node, f"class definition {node.name!r} is not allowed")
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        node = self.node_contents_visit(node)
        guard = _BINOP_GUARDS.get(type(node.op))
        return _guard_call(guard, [node.left, node.right], node) if guard else node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        # RestrictedPython refuses `counts[k] += 1`; allow it when re-reading the target is pure.
        target = node.target
        if not isinstance(target, ast.Subscript) or not all(
            isinstance(part, _PURE_NODES) for part in ast.walk(target)
        ):
            return super().visit_AugAssign(node)  # type: ignore[return-value]
        current = copy.deepcopy(target)
        current.ctx = ast.Load()
        operator = ast.Constant(IOPERATOR_TO_STR[type(node.op)])
        value = _guard_call("_inplacevar_", [operator, self.visit(current), self.visit(node.value)], node)
        assign = ast.Assign(targets=[self.visit(target)], value=value)
        copy_locations(assign, node)
        return assign

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        # f"{x:>1000000000}" would allocate before any guard sees it; format through _format_.
        node = self.node_contents_visit(node)
        spec = node.format_spec or ast.Constant("")
        args = [node.value, ast.Constant(node.conversion), spec]
        formatted = ast.FormattedValue(_guard_call("_format_", args, node), -1, None)
        copy_locations(formatted, node)
        return formatted

    def visit_Starred(self, node: ast.Starred) -> ast.AST:
        node = self.node_contents_visit(node)
        if isinstance(node.ctx, ast.Load):
            node.value = _guard_call("_unpack_", [node.value], node.value)
        return node

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        node = self.node_contents_visit(node)
        node.values = [
            _guard_call("_unpack_", [value], value) if key is None else value
            for key, value in zip(node.keys, node.values, strict=True)
        ]
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        # A timeout is an exception; without this a script could catch it and run on untimed.
        node = super().visit_ExceptHandler(node)  # type: ignore[assignment]
        node.body.insert(0, self._handler_guard(node))
        return node

    def visit_Try(self, node: ast.Try) -> ast.AST:
        node = super().visit_Try(node)  # type: ignore[assignment]
        if node.finalbody:
            node.finalbody.insert(0, self._handler_guard(node.finalbody[0]))
        return node

    def _handler_guard(self, like: ast.AST) -> ast.Expr:
        statement = ast.Expr(_guard_call("_handler_guard_", [], like))
        copy_locations(statement, like)
        return statement


def _prepare_source(source: str, mode: str) -> tuple[str, int]:
    """Return the text to compile and how many leading lines were dropped from it."""
    text = textwrap.dedent(source)
    if mode == "exec":
        return text, 0
    stripped = text.lstrip()
    return stripped.rstrip(), text[: len(text) - len(stripped)].count("\n")


@functools.lru_cache(maxsize=2048)
def _compile(source: str, mode: str) -> tuple[CodeType | None, tuple[tuple[int | None, str], ...]]:
    if mode not in ("exec", "eval"):
        raise ValueError(f"mode must be 'exec' or 'eval', not {mode!r}")
    text, offset = _prepare_source(source, mode)
    try:
        tree = ast.parse(text, SCRIPT_FILENAME, mode)
    except SyntaxError as exc:
        line = exc.lineno + offset if exc.lineno else None
        return None, ((line, f"syntax error: {exc.msg}"),)
    compile_mode = compile_restricted_exec if mode == "exec" else compile_restricted_eval
    try:
        result = compile_mode(tree, filename=SCRIPT_FILENAME, policy=SandboxPolicy)
    except SyntaxError as exc:  # raised by the compiler proper, e.g. 'return' outside function
        line = exc.lineno + offset if exc.lineno else None
        return None, ((line, f"syntax error: {exc.msg}"),)
    problems: list[tuple[int | None, str]] = []
    for error in result.errors:
        match = _PROBLEM.match(error)
        line_text, message = match.groups() if match else ("None", error)
        problem = (int(line_text) + offset if line_text.isdigit() else None, message)
        if problem not in problems:  # a re-read AugAssign target reports its problems twice
            problems.append(problem)
    return (None, tuple(problems)) if problems else (result.code, ())


def check_script(source: str, mode: str = "exec") -> list[tuple[int | None, str]]:
    """Compile `source` without running it; return (line, message) for every problem found."""
    return list(_compile(source, mode)[1])


def compile_script(source: str, mode: str) -> CodeType:
    """Return cached sandboxed code for `source`, or raise the first problem as a ScriptError."""
    code, problems = _compile(source, mode)
    if code is None:
        line, message = problems[0]
        kind = ScriptError if message.startswith("syntax error") else ScriptForbidden
        raise kind("; ".join(text for _, text in problems), line)
    return code
