"""The script sandbox: ordinary scripts work, known escapes and resource bombs are refused."""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
from decimal import Decimal

import pytest
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine

from engine.sandbox import (
    SandboxEnvironment,
    ScriptError,
    ScriptForbidden,
    ScriptTimeout,
    ScriptTooLarge,
    check_script,
    compile_script,
)

TIME_LIMIT = 0.5
# A generator whose clean-up never ends, were it ever allowed to run.
ENDLESS_CLEANUP = (
    "def g():\n    try:\n        yield 1\n    finally:\n        while True:\n            pass\n"
)


@pytest.fixture
def env() -> SandboxEnvironment:
    return SandboxEnvironment(time_limit=TIME_LIMIT)


def _assert_unharmed(env: SandboxEnvironment, tracer_before: object) -> None:
    assert sys.gettrace() is tracer_before
    data = {"x": 41}
    env.execute("y = x + 1\ndef helper():\n    return y\nz = helper()", data)
    assert data == {"x": 41, "y": 42, "z": 42}


def test_sandbox_script_assignments_loops_and_comprehensions_land_in_task_data(env):
    data = {"lines": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 3}, {"sku": "A", "qty": 1}]}
    script = """
counts = {}
for line in lines:
    counts.setdefault(line["sku"], 0)
    counts[line["sku"]] += line["qty"]
skus = sorted({line["sku"] for line in lines})
total = sum(line["qty"] for line in lines)
first, *rest = [line["qty"] for line in lines]
pairs = [(sku, n) for sku, n in sorted(counts.items())]
lines[0]["checked"] = True
label = f"{len(lines)} lines, {total:>4} units"
def double(n):
    return n * 2
doubled = list(map(double, [first] + rest))
try:
    ratio = total / 0
except ZeroDivisionError:
    ratio = None
print("done", total)
log = printed
"""
    env.execute(script, data)
    assert data["counts"] == {"A": 3, "B": 3}
    assert data["skus"] == ["A", "B"]
    assert data["total"] == 6
    assert (data["first"], data["rest"]) == (2, [3, 1])
    assert data["pairs"] == [("A", 3), ("B", 3)]
    assert data["lines"][0]["checked"] is True
    assert data["label"] == "3 lines,    6 units"
    assert data["doubled"] == [4, 6, 2]
    assert data["ratio"] is None
    assert data["log"] == "done 6\n"
    # The script's function and the sandbox's plumbing do not stay in the task data.
    assert "double" not in data
    assert not [key for key in data if key.startswith("_")]


def test_sandbox_money_math_uses_decimal_half_up(env):
    data = {"price": "19.99", "qty": 3, "discount": 2.675}
    env.execute(
        "gross = Decimal(price) * qty\n"
        "net = round_money(gross * (1 - Decimal('0.125')))\n"
        "rounded_float = round_money(discount)\n"
        "whole = round_money('2.5', 0)\n"
        "net_text = str(net)\n",
        data,
    )
    assert data["gross"] == Decimal("59.97")
    assert data["net"] == Decimal("52.47")
    assert data["rounded_float"] == Decimal("2.68")  # 2.675 as written, not its binary value
    assert data["whole"] == Decimal("3")
    assert data["net_text"] == "52.47"


def test_sandbox_date_helpers_return_iso_strings(env):
    data = {"signed": "2024-02-28", "due": "2024-03-31T09:00:00+00:00"}
    env.execute(
        "starts = add_days(signed, 2)\n"
        "days_left = days_between(signed, due)\n"
        "weekday = parse_date(due).isoweekday()\n"
        "deadline = (datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=36)).isoformat()\n",
        data,
    )
    assert data["starts"] == "2024-03-01"
    assert data["days_left"] == 32
    assert data["weekday"] == 7
    assert data["deadline"] == "2024-01-02T12:00:00+00:00"
    json.dumps(data)  # what the helpers leave behind is JSON-friendly


def test_sandbox_builtins_keep_their_types_for_isinstance_and_methods(env):
    data = {"names": ["ann", "bob"], "raw": "12"}
    env.execute(
        "upper = list(map(str.upper, names))\n"
        "joined = ', '.join(names)\n"
        "number = int(raw) + 1\n"
        "kinds = [isinstance(raw, str), isinstance(number, (int, float)), isinstance(raw, int)]\n"
        "evens = [n for n in range(10) if n % 2 == 0]\n"
        "padded = raw.zfill(5)\n",
        data,
    )
    assert data["upper"] == ["ANN", "BOB"]
    assert data["joined"] == "ann, bob"
    assert data["number"] == 13
    assert data["kinds"] == [True, True, False]
    assert data["evens"] == [0, 2, 4, 6, 8]
    assert data["padded"] == "00012"


def test_sandbox_evaluate_returns_the_value_and_sees_external_context(env):
    data = {"amount": 1500, "tier": "A"}
    assert env.evaluate('amount > 1000 and tier == "A"', data) is True
    assert env.evaluate("amount > 1000 and tier == 'B'", data) is False
    assert env.evaluate("\n    amount // 100\n  ", data) == 15
    assert env.evaluate("limit - amount", data, external_context={"limit": 2000}) == 500
    # Task data wins over the external context, as in SpiffWorkflow's own environment.
    assert env.evaluate("amount", data, external_context={"amount": 1}) == 1500
    assert data == {"amount": 1500, "tier": "A"}


def _spiff_error_line(env: SandboxEnvironment, script: str) -> tuple[type, tuple[int, str]]:
    engine = PythonScriptEngine(environment=env)
    try:
        env.execute(script, {})
    except Exception as exc:  # SpiffWorkflow reads the traceback from sys.exc_info()
        return type(exc), engine.get_error_line_number_and_content(script, exc)
    raise AssertionError("the script did not fail")


def test_sandbox_runtime_errors_keep_the_line_for_spiffworkflow(env):
    assert _spiff_error_line(env, "a = 1\nb = a / 0") == (ZeroDivisionError, (2, "b = a / 0"))
    refused = "a = 1\nf = lambda: getattr\nb = f()"
    assert _spiff_error_line(env, refused) == (ScriptForbidden, (2, "f = lambda: getattr"))
    too_large = "a = 1\nb = 'x' * 10 ** 10"
    assert _spiff_error_line(env, too_large) == (ScriptTooLarge, (2, "b = 'x' * 10 ** 10"))
    with pytest.raises(ScriptForbidden, match="'getattr' is not allowed") as error:
        env.execute(refused, {})
    assert error.value.line == 2
    assert str(error.value) == "'getattr' is not allowed (line 2)"


def test_sandbox_check_script_reports_lines_without_running():
    assert check_script("x = 1\ny = [i * 2 for i in range(3)]") == []
    assert check_script("amount > 10", "eval") == []
    assert check_script("x = 1\nimport os\ny = ().__class__.__base__\n") == [
        (2, "import of 'os' is not allowed"),
        (3, "access to '__class__' is not allowed"),
        (3, "access to '__base__' is not allowed"),
    ]
    [(line, message)] = check_script("x = (\n")
    assert line == 1
    assert message.startswith("syntax error")
    assert check_script("\n\n  x.__class__", "eval") == [
        (3, "access to '__class__' is not allowed")
    ]
    assert check_script("return 1") == [(1, "syntax error: 'return' outside function")]


def test_sandbox_compiled_code_is_cached_per_source_and_mode():
    assert compile_script("x + 1", "eval") is compile_script("x + 1", "eval")
    assert compile_script("x + 1", "eval") is not compile_script("x + 1", "exec")


def test_sandbox_compile_error_raises_with_line(env):
    with pytest.raises(ScriptForbidden, match="name '__import__' is not allowed") as error:
        env.execute("x = 1\n\nos = __import__('os')", {})
    assert error.value.line == 3
    with pytest.raises(ScriptError, match="syntax error") as error:
        env.execute("x = 1\nif x\n", {})
    assert error.value.line == 2


def test_sandbox_task_data_cannot_shadow_the_guards(env):
    with pytest.raises(ScriptForbidden, match="_getattr_"):
        env.execute("y = x.real", {"x": 1, "_getattr_": "junk from a form"})


def test_sandbox_step_budget_stops_long_loops():
    env = SandboxEnvironment(time_limit=30, max_steps=20_000)
    with pytest.raises(ScriptTimeout, match=r"step budget \(20,000\)"):
        env.execute("n = 0\nfor i in range(100000):\n    n += i", {})


def test_sandbox_memory_limit_stops_a_growing_script():
    # The limit counts growth of the process's peak memory, so first fill the gap below the peak.
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    with open("/proc/self/statm") as statm:
        current_mb = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20
    megabytes = max(peak_mb - current_mb, 0) + 32 + 100
    env = SandboxEnvironment(time_limit=30, memory_limit_mb=32)
    with pytest.raises(ScriptTooLarge, match="over 32 MB of memory"):
        env.execute(f"keep = []\nfor i in range({megabytes}):\n    keep.append('x' * 1000000)", {})


def test_sandbox_a_timeout_in_one_thread_leaves_others_alone(env):
    stopped: list[ScriptError] = []
    answers: list[bool] = []

    def hostile() -> None:
        try:
            env.execute("while True:\n    pass", {})
        except ScriptTimeout as exc:
            stopped.append(exc)

    def normal() -> None:
        answers.extend(env.evaluate("n * 2", {"n": n}) == n * 2 for n in range(200))

    threads = [threading.Thread(target=hostile, daemon=True)]
    threads += [threading.Thread(target=normal, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(stopped) == 1
    assert answers == [True] * 600


def test_sandbox_generators_do_not_outlive_the_run(env, monkeypatch):
    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    data: dict[str, object] = {}
    env.execute(ENDLESS_CLEANUP + "it = g()\nfirst = next(it)", data)
    assert data == {"first": 1}  # the generator and its function are gone, their cleanup unrun
    with pytest.raises(ScriptForbidden, match="a generator cannot be kept"):
        env.execute(ENDLESS_CLEANUP + "rows = [g()]", {})
    with pytest.raises(ScriptForbidden, match="a generator cannot be kept"):
        env.evaluate("(n for n in range(10 ** 6) for m in range(10 ** 6))", {})
    assert unraisable == []


def _loop(handler: str) -> str:
    return "while True:\n    try:\n        while True:\n            pass\n" + handler


# name: (script, what the refusal must say)
FORBIDDEN = {
    "subclasses": ("x = ().__class__.__base__.__subclasses__()", "'__class__'"),
    "func-globals": ("def f():\n    return 1\ng = f.__globals__", "'__globals__'"),
    "getattr-concat": ("x = getattr(1, '__cl' + 'ass__')", "'getattr'"),
    "str-format": ("x = '{0.__class__}'.format(1)", "'format'"),
    "format-map": ("x = '{x.__init__.__globals__}'.format_map({})", "'format_map'"),
    "import": ("import os", "import of 'os'"),
    "import-from": ("from os import system", "import of 'os'"),
    "dunder-import": ("x = __import__('os')", "'__import__'"),
    "open": ("x = open('/etc/passwd').read()", "'open'"),
    "eval": ("x = eval('1 + 1')", "'eval'"),
    "exec": ("exec('x = 1')", "'exec'"),
    "compile": ("x = compile('1', 's', 'eval')", "'compile'"),
    "gen-frame": ("x = (i for i in []).gi_frame.f_globals", "'gi_frame'"),
    "type": ("x = type(1)", "'type'"),
    "vars": ("x = vars()", "'vars'"),
    "globals": ("x = globals()", "'globals'"),
    "locals": ("x = locals()", "'locals'"),
    "mro-loop": ("x = [c for c in ().__class__.__mro__]", "'__mro__'"),
    "lambda-globals": ("g = (lambda: 0).__globals__", "'__globals__'"),
    "lambda-default": ("f = lambda g=globals: g()\nx = f()", "'globals'"),
    "alias-getattr": ("g = getattr", "'getattr'"),
    "builtins-dict": ("x = __builtins__['open']", "'__builtins__'"),
    "dict-dunder": ("x = dict.__dict__", "'__dict__'"),
    "object-subclasses": ("x = object.__subclasses__()", "'__subclasses__'"),
    "mro-method": ("x = int.mro()", "'mro'"),
    "class": ("class Evil:\n    pass", "class definition 'Evil'"),
    "tb": ("try:\n    1/0\nexcept Exception as e:\n    t = e.__traceback__", "'__traceback__'"),
    "fstring-dunder": ("x = f'{(1).__class__}'", "'__class__'"),
    "clock": ("x = datetime.now()", "clock"),
    "set-attribute": ("d = date(2024, 1, 1)\nd.year = 2025", "date cannot be modified"),
    "async": ("async def f():\n    pass", "AsyncFunctionDef"),
    "guard-name": ("_getattr_ = lambda o, n: 1", "'_getattr_'"),
    "star-width": ("x = '%*d' % (5, 1)", "'*' widths"),
    "sum-lists": ("x = sum([[1], [2]], [])", "sum()"),
    "integer-ratio": ("x = Decimal(1).as_integer_ratio()", "'as_integer_ratio'"),
    "slice-grow": ("x = [0] * 10\nx[:0] = x", "slice assignment"),
}  # fmt: skip
TOO_LARGE = {
    "power-tower": ("x = 10 ** 10 ** 8", "'**' result too large"),
    "str-repeat": ("x = 'a' * 10 ** 10", "'*' result too large"),
    "list-repeat": ("x = [0] * 10 ** 10", "'*' result too large"),
    "range-list": ("x = list(range(10 ** 9))", "range() result too large"),
    "range-sum": ("x = sum(range(10 ** 12))", "range() result too large"),
    "shift-repeat": ("x = 'x' * (1 << 40)", "'*' result too large"),
    "shift": ("x = 1 << (1 << 40)", "'<<' result too large"),
    "nested-repeat": ("x = [[0] * 10 ** 6] * 10 ** 6", "'*' result too large"),
    "doubling": ("s = 'x' * 10 ** 6\nwhile True:\n    s = s + s", "'+' result too large"),
    "inplace-doubling": ("s = [0] * 10 ** 6\ns += s", "'+=' result too large"),
    "fstring-width": ("x = f'{1:>10000000000}'", "format width"),
    "percent-width": ("x = '%10000000000d' % 1", "format width"),
    "ljust": ("x = 'a'.ljust(10 ** 10)", "str.ljust() result too large"),
    "join": ("x = ('a' * 600000).join(['b', 'c', 'd'])", "join() result too large"),
    "replace": ("x = 'ab'.replace('', 'x' * 900000)", "str.replace() result too large"),
    "encode-chain": ("x = ('a' * 10 ** 6).encode('utf-32').hex()", "bytes.hex()"),
    "to-bytes": ("x = (1).to_bytes(10 ** 10, 'big')", "int.to_bytes() result too large"),
    "map-ljust": ("x = list(map(str.ljust, ['a'], [10 ** 10]))", "str.ljust() result"),
    "decimal-int": ("x = int(Decimal('1e1000000'))", "Decimal conversion"),
    "decimal-format": ("x = f\"{Decimal('1e100000000'):f}\"", "Decimal conversion"),
    "round-digits": ("x = round(5, -10 ** 8)", "round() result too large"),
    "extend": ("x = [0] * 10 ** 6\nx.extend(x)", "list.extend() result too large"),
    "star-unpack": ("x = [0] * 10 ** 6\ny = [*x, *x]\nz = [*y]", "unpacking result too large"),
    "str-of-alias": ("x = [0] * 10 ** 6\ny = [x, x]\nz = str(y)", "str() result too large"),
    "cycle": ("x = []\nx.append(x)", "task data too large"),
    "recursion": ("def f():\n    return f()\nf()", "recursion too deep"),
    "recursion-finally": (
        "def f():\n    try:\n        f()\n    finally:\n        f()\nf()", "recursion too deep"
    ),
}  # fmt: skip
TIMEOUTS = {
    "while-true": ("while True:\n    pass", "time limit"),
    "swallow-exception": (_loop("    except Exception:\n        pass"), "time limit"),
    "swallow-bare": (_loop("    except:\n        x = 1"), "time limit"),
    "loop-in-finally": (_loop("    finally:\n        while True:\n            pass"), "time limit"),
    "generator-swallow": (
        "def g():\n    while True:\n        try:\n            yield 1\n        except:\n"
        "            pass\nfor v in g():\n    pass",
        "time limit",
    ),
    "generator-sum": ("x = sum(i for i in range(10 ** 6) for j in range(10 ** 6))", "time limit"),
    "cleanup-loop": (ENDLESS_CLEANUP + "for v in g():\n    while 1:\n        pass", "time limit"),
}  # fmt: skip
KINDS = ((FORBIDDEN, ScriptForbidden), (TOO_LARGE, ScriptTooLarge), (TIMEOUTS, ScriptTimeout))
HOSTILE = [
    (name, source, error, says) for cases, error in KINDS for name, (source, says) in cases.items()
]


@pytest.mark.parametrize(("name", "source", "error", "says"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_sandbox_hostile_script_is_refused(env, name, source, error, says):
    tracer_before = sys.gettrace()
    data = {"x": 0}
    with pytest.raises(error) as refused:
        env.execute(source, data)
    assert says in refused.value.message, name
    assert "__builtins__" not in data
    _assert_unharmed(env, tracer_before)


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("().__class__.__bases__[0].__subclasses__()", "'__class__'"),
        ("[x for x in ()].__class__", "'__class__'"),
        ("(lambda: 0).__code__", "'__code__'"),
        ("'{0.__class__}'.format(amount)", "'format'"),
        ("amount ** amount ** amount", "'**' result too large"),
        ("open", "'open'"),
        ("[n for n in range(10 ** 6) for m in range(10 ** 6)]", "time limit"),
    ],
)
def test_sandbox_hostile_expression_is_refused(env, expression, says):
    tracer_before = sys.gettrace()
    with pytest.raises(ScriptError) as error:
        env.evaluate(expression, {"amount": 99})
    assert says in error.value.message
    _assert_unharmed(env, tracer_before)
