"""Sweep definitions: parameter values in Hydra's override grammar → the sweep's points.

The grammar is the subset of Hydra's "Extended Override syntax" that describes values
(https://hydra.cc/docs/advanced/override_grammar/extended/):

    lr=0.1                       fixed value
    lr=0.1,0.01,0.001            list (each a point of the grid)
    seed=range(0,5)              0 1 2 3 4 (stop exclusive; ints or floats; step optional)
    opt=choice(adam,sgd)         like a list
    lr=interval(1e-4,1e-1)       uniform in [lo, hi] (random search only; ints when both
                                 bounds are int literals, drawn inclusively)
    lr=tag(log,interval(1e-4,1e-1))  log-uniform (lo > 0)
    label='a,b'  label="a,b"     quoted: a literal, commas and parentheses included

``build`` turns a mapping of such texts into a ``SweepPlan``: the grid (cartesian product,
first parameter varying slowest), ``samples`` random points (seeded; the seed is chosen
and returned when not given, so it can be recorded), or ``rows`` (from ``load_rows``)
combined with fixed values. ``check_points`` type-checks every point against the
MLproject before anything is submitted. Apart from ``load_rows`` nothing here does I/O.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import math
import random
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from ..core.errors import Problem, UserInputError
from .limits import MAX_PARAM_VALUE_LENGTH
from .models import SweepMode
from .project import (
    EntryPointSpec,
    ParameterSpec,
    ProjectSpec,
    _check_values,
    _entry_point,
    _normalise,
)

MAX_POINTS = 10_000
"""Children of one sweep: more is a mistake in the definition, not a sweep to run."""
MAX_ROWS_FILE_BYTES = 16 << 20
"""A --from file of rows: 10 000 rows of a few parameters is well below a MiB."""

Scalar = str | int | float
GivenValue = Scalar | Sequence[Scalar] | None
RowValue = Scalar | None

_FUNCTIONS = ("range", "choice", "interval", "tag")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INT_RE = re.compile(r"[+-]?\d+")
_ESCAPABLE = set("\\,()'\"= ")


# ---------------------------------------------------------------------------
# Axes: what one parameter's text means


@dataclass(frozen=True)
class Fixed:
    """One value for every point."""

    value: str


class NumberRange(Sequence[str]):
    """``range(start, stop, step)`` as strings, without listing it (it may be huge).

    Exact decimal arithmetic: ``range(0, 1, 0.1)`` gives 0.3, not 0.30000000000000004.
    """

    def __init__(self, start: Decimal, stop: Decimal, step: Decimal, ints: bool):
        self.start, self.step, self.ints = start, step, ints
        span = (stop - start) / step
        self._len = max(0, int(span.to_integral_value(rounding=ROUND_CEILING)))

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: Any) -> Any:  # Sequence's overloads: int → str only here
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._len))]
        if not -self._len <= index < self._len:
            raise IndexError(index)
        value = self.start + (index % self._len) * self.step
        return str(int(value)) if self.ints else format_float(float(value))


@dataclass(frozen=True)
class Discrete:
    """A finite set of values: a list, ``choice(...)`` or ``range(...)``."""

    kind: Literal["list", "choice", "range"]
    values: Sequence[str]


@dataclass(frozen=True)
class Interval:
    """``interval(lo, hi)``, log-uniform under ``tag(log, ...)``: random search only."""

    low: float
    high: float
    ints: bool
    log: bool


Axis = Fixed | Discrete | Interval


def format_float(value: float) -> str:
    """The shortest text that reads back as ``value`` (0.001, not 0.0010000)."""
    return repr(float(value))


def format_scalar(value: Scalar) -> str:
    """A JSON/Python value as MLflow would log it (``str``; floats in shortest form)."""
    if isinstance(value, float):
        return format_float(value)
    return str(value)


# ---------------------------------------------------------------------------
# Parsing the grammar


class _SyntaxError(Exception):
    """A message about the text; the caller adds the parameter's name."""


@dataclass(frozen=True)
class _Literal:
    text: str
    quoted: bool


@dataclass(frozen=True)
class _Call:
    name: str
    args: list[_Literal | _Call]
    kwargs: dict[str, _Literal | _Call]
    source: str  # the call's own text, for messages


_Element = _Literal | _Call


class _Parser:
    """Recursive descent over one parameter's text."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def parse(self) -> list[_Element]:
        """The top-level, comma-separated elements (one for a fixed value or a call)."""
        elements = [self.element(nested=False)]
        while self.peek() == ",":
            self.pos += 1
            elements.append(self.element(nested=False))
        self.skip_ws()
        if self.pos < len(self.text):
            raise _SyntaxError(self.unexpected())
        return elements

    # -- helpers
    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def unexpected(self) -> str:
        char = self.text[self.pos]
        hint = " (quote the value to use it literally)" if char in "()" else ""
        return f"unexpected '{char}' at position {self.pos + 1}{hint}"

    # -- elements
    def element(self, nested: bool) -> _Element:
        char = self.peek()
        if char in ("'", '"'):
            return self.quoted(char)
        match = _NAME_RE.match(self.text, self.pos)
        if match:
            after = match.end()
            while after < len(self.text) and self.text[after].isspace():
                after += 1
            if after < len(self.text) and self.text[after] == "(":
                return self.call(match.group(), match.start(), after + 1)
        return self.plain(nested)

    def quoted(self, quote: str) -> _Literal:
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.text[self.pos + 1:self.pos + 2] in (quote, "\\"):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if char == quote:
                self.pos += 1
                return _Literal("".join(out), quoted=True)
            out.append(char)
            self.pos += 1
        raise _SyntaxError(f"the quote {quote} at position {start + 1} is never closed")

    def plain(self, nested: bool) -> _Literal:
        """An unquoted value up to the next ``,`` (or ``)`` inside a call); inner spaces
        stay, surrounding ones go, a backslash escapes the next character."""
        out: list[str] = []
        trailing = 0  # unescaped whitespace at the end of ``out``, dropped
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.text[self.pos + 1:self.pos + 2] in _ESCAPABLE:
                out.append(self.text[self.pos + 1])
                self.pos += 2
                trailing = 0
                continue
            if char == "," or (char == ")" and nested):
                break
            if char in "()":
                raise _SyntaxError(self.unexpected())
            out.append(char)
            trailing = trailing + 1 if char.isspace() else 0
            self.pos += 1
        return _Literal("".join(out[:len(out) - trailing]), quoted=False)

    def call(self, name: str, start: int, body: int) -> _Call:
        if name not in _FUNCTIONS:
            raise _SyntaxError(
                f"unknown function '{name}()'; use one of "
                + ", ".join(f"{f}()" for f in _FUNCTIONS)
                + " (or quote the value to use it literally)"
            )
        self.pos = body
        args: list[_Element] = []
        kwargs: dict[str, _Element] = {}
        if self.peek() == ")":
            self.pos += 1
            return _Call(name, args, kwargs, self.text[start:self.pos])
        while True:
            self.argument(name, args, kwargs)
            char = self.peek()
            if char == ",":
                self.pos += 1
            elif char == ")":
                self.pos += 1
                return _Call(name, args, kwargs, self.text[start:self.pos])
            elif not char:
                raise _SyntaxError(f"missing ')' after '{self.text[start:]}'")
            else:
                raise _SyntaxError(self.unexpected())

    def argument(self, func: str, args: list[_Element], kwargs: dict[str, _Element]) -> None:
        self.skip_ws()
        match = _NAME_RE.match(self.text, self.pos)
        if match:
            after = match.end()
            while after < len(self.text) and self.text[after].isspace():
                after += 1
            if self.text[after:after + 1] == "=":
                self.pos = after + 1
                if match.group() in kwargs:
                    raise _SyntaxError(f"{func}() got '{match.group()}' twice")
                kwargs[match.group()] = self.element(nested=True)
                return
        if kwargs:
            raise _SyntaxError(f"{func}(): a positional argument cannot follow a named one")
        args.append(self.element(nested=True))


# ---------------------------------------------------------------------------
# From parsed elements to axes


def _number(element: _Element, func: str, source: str) -> tuple[Decimal, bool]:
    """A numeric literal as an exact Decimal, and whether it was written as an int."""
    if isinstance(element, _Literal) and not element.quoted:
        text = element.text
        if _INT_RE.fullmatch(text):
            return Decimal(int(text)), True
        try:
            value = Decimal(text)
        except InvalidOperation:
            value = Decimal("nan")
        if value.is_finite() and "_" not in text:
            return value, False
    shown = element.source if isinstance(element, _Call) else element.text
    raise _SyntaxError(f"{func}() takes numbers, got '{shown}' in '{source}'")


def _arguments(call: _Call, names: tuple[str, ...], required: int) -> list[_Element]:
    """Positional and named arguments in ``names`` order, checked for count and names."""
    unknown = [k for k in call.kwargs if k not in names]
    if unknown:
        raise _SyntaxError(
            f"{call.name}() has no argument '{unknown[0]}' (it takes "
            + ", ".join(names) + f"), in '{call.source}'"
        )
    values: list[_Element | None] = list(call.args[:len(names)]) + [None] * (
        len(names) - min(len(call.args), len(names)))
    for i, name in enumerate(names):
        if name in call.kwargs:
            if values[i] is not None:
                raise _SyntaxError(f"{call.name}() got '{name}' twice in '{call.source}'")
            values[i] = call.kwargs[name]
    given = [v for v in values if v is not None]
    if len(call.args) > len(names) or len(given) < required or None in values[:len(given)]:
        raise _SyntaxError(_arity_message(call))
    return given


def _arity_message(call: _Call) -> str:
    needs = {
        "range": "a start and a stop (and optionally a step)",
        "interval": "two numbers",
        "choice": "at least one value",
        "tag": "tags and then a sweep, e.g. tag(log, interval(1e-4, 1e-1))",
    }[call.name]
    return f"{call.name}() needs {needs}, got '{call.source}'"


def _range_axis(call: _Call) -> Discrete:
    args = _arguments(call, ("start", "stop", "step"), 2)
    numbers = [_number(a, "range", call.source) for a in args]
    start, stop = numbers[0][0], numbers[1][0]
    step = numbers[2][0] if len(numbers) == 3 else Decimal(1)
    if step == 0:
        raise _SyntaxError(f"range() step must not be 0, in '{call.source}'")
    values = NumberRange(start, stop, step, ints=all(is_int for _, is_int in numbers))
    if not values:
        raise _SyntaxError(f"range() has no values (stop is exclusive), in '{call.source}'")
    return Discrete("range", values)


def _interval_axis(call: _Call, log: bool, source: str | None = None) -> Interval:
    source = source or call.source
    args = _arguments(call, ("start", "end"), 2)
    (low, low_int), (high, high_int) = (_number(a, "interval", call.source) for a in args)
    if not low < high:
        raise _SyntaxError(f"interval() needs its low bound below its high one, "
                           f"got '{source}'")
    if log and low <= 0:
        raise _SyntaxError(f"a log interval needs a low bound above 0, got '{source}'")
    return Interval(float(low), float(high), ints=low_int and high_int, log=log)


def _choice_axis(call: _Call) -> Discrete:
    if call.kwargs or not call.args:
        raise _SyntaxError(_arity_message(call))
    return Discrete("choice", [_literal_text(a, "choice()") for a in call.args])


def _tag_axis(call: _Call) -> Axis:
    if call.kwargs or len(call.args) < 2 or not isinstance(call.args[-1], _Call):
        raise _SyntaxError(_arity_message(call))
    tags = [_literal_text(a, "tag()") for a in call.args[:-1]]
    unknown = [t for t in tags if t != "log"]
    if unknown:
        raise _SyntaxError(f"unknown tag '{unknown[0]}' (only 'log' is understood), "
                           f"in '{call.source}'")
    inner = call.args[-1]
    if inner.name != "interval":
        raise _SyntaxError(f"tag(log, ...) applies to interval(), got '{call.source}'")
    return _interval_axis(inner, log=True, source=call.source)


def _literal_text(element: _Element, where: str) -> str:
    if isinstance(element, _Call):
        raise _SyntaxError(f"{where} takes plain values, got '{element.source}'")
    return element.text


def _call_axis(call: _Call) -> Axis:
    if call.name == "range":
        return _range_axis(call)
    if call.name == "choice":
        return _choice_axis(call)
    if call.name == "interval":
        return _interval_axis(call, log=False)
    return _tag_axis(call)


def parse_value(text: str) -> Axis:
    """One parameter's text as an axis; ``_SyntaxError`` says what is wrong."""
    elements = _Parser(text).parse()
    if len(elements) == 1:
        only = elements[0]
        return _call_axis(only) if isinstance(only, _Call) else Fixed(only.text)
    values = []
    for element in elements:
        if isinstance(element, _Call):
            raise _SyntaxError(f"a list takes plain values, got '{element.source}' "
                               "(write one sweep function per parameter)")
        if not element.text and not element.quoted:
            raise _SyntaxError("a list has an empty value (write '' for an empty string)")
        values.append(element.text)
    return Discrete("list", values)


def parse_parameter(name: str, value: GivenValue) -> Axis:
    """The axis of one given parameter: text in the grammar, a JSON number (fixed) or a
    list of values (from Python or JSON: a list axis of literals)."""
    if isinstance(value, str):
        try:
            return parse_value(value)
        except _SyntaxError as exc:
            raise _problem(name, str(exc)) from None
    if isinstance(value, (int, float)):
        return Fixed(format_scalar(value))
    if isinstance(value, (list, tuple)) and value and all(
        isinstance(v, (str, int, float)) for v in value
    ):
        return Discrete("list", [format_scalar(v) for v in value])
    raise _problem(name, "must be a value, an override text such as '1,2,3' or "
                         f"'range(0,5)', or a non-empty list of values; got {value!r}")


def _problem(name: str, message: str) -> UserInputError:
    return UserInputError(Problem(f"parameter '{name}': {message}", key=f"parameters.{name}"))


def parse_parameters(parameters: Mapping[str, GivenValue]) -> dict[str, Axis]:
    """Every given parameter's axis (None values are left out: not given, so the default);
    all problems at once."""
    axes: dict[str, Axis] = {}
    problems: list[Problem] = []
    for name, value in parameters.items():
        if value is None:
            continue
        if not isinstance(name, str) or not name:
            problems.append(Problem(f"parameter names must be non-empty text, got {name!r}",
                                    key="parameters"))
            continue
        try:
            axes[name] = parse_parameter(name, value)
        except UserInputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise UserInputError(problems)
    return axes


# ---------------------------------------------------------------------------
# Plans


@dataclass
class SweepPlan:
    """The points of a sweep and how they were made (enough to record and redo them)."""

    mode: SweepMode
    points: list[dict[str, str]]
    axes: list[str]  # the parameters that vary (rows: the rows' columns)
    parameters: dict[str, str] = field(default_factory=dict)  # each as given, as text
    samples: int | None = None
    seed: int | None = None  # random mode: the seed used (chosen when not given)


def _mode(samples: int | None, rows: Sequence[Mapping[str, RowValue]] | None) -> SweepMode:
    if rows is not None and samples is not None:
        raise UserInputError(Problem("give either rows or a number of random samples, "
                                     "not both", key="random"))
    return "rows" if rows is not None else "random" if samples is not None else "grid"


def count_points(
    parameters: Mapping[str, GivenValue],
    *,
    samples: int | None = None,
    rows: Sequence[Mapping[str, RowValue]] | None = None,
) -> int:
    """How many points ``build`` would make, without making them (may exceed MAX_POINTS;
    ``build`` refuses that). Raises the definition's syntax problems."""
    axes = parse_parameters(parameters)
    mode = _mode(samples, rows)
    if mode == "rows":
        return len(rows or ())
    if mode == "random":
        return samples or 0
    problems = _interval_problems(axes, parameters)
    if problems:
        raise UserInputError(problems)
    return math.prod(_grid_sizes(axes).values())


def _interval_problems(axes: Mapping[str, Axis], given: Mapping[str, Any]) -> list[Problem]:
    return [
        Problem(f"parameter '{n}': {given[n]!r} is a continuous interval; a grid cannot "
                "list it: use random sampling (--random N) or a list/range",
                key=f"parameters.{n}")
        for n, a in axes.items() if isinstance(a, Interval)
    ]


def _grid_sizes(axes: Mapping[str, Axis]) -> dict[str, int]:
    return {n: len(a.values) for n, a in axes.items() if isinstance(a, Discrete)}


def build(
    parameters: Mapping[str, GivenValue],
    *,
    samples: int | None = None,
    seed: int | None = None,
    rows: Sequence[Mapping[str, RowValue]] | None = None,
    types: Mapping[str, str] | None = None,
) -> SweepPlan:
    """The sweep's points: the grid (default), ``samples`` random points, or ``rows``
    with the fixed ``parameters`` added. Every problem of the definition at once; more
    than MAX_POINTS points is refused before any is made.

    ``types`` (name → MLproject type, optional): a ``float`` parameter's interval draws
    floats even when both bounds are written as ints (``alpha=interval(0,1)``)."""
    mode = _mode(samples, rows)
    axes = _typed(parse_parameters(parameters), types or {})
    given = {n: _given_text(parameters[n]) for n in axes}
    varying = [n for n, a in axes.items() if not isinstance(a, Fixed)]
    if mode == "grid":
        return _grid(axes, given, seed, varying)
    if mode == "random":
        return _random(axes, given, samples, seed, varying)
    return _rows(axes, given, rows or [], seed, varying)


def _typed(axes: dict[str, Axis], types: Mapping[str, str]) -> dict[str, Axis]:
    return {
        n: replace(a, ints=False) if isinstance(a, Interval) and types.get(n) == "float" else a
        for n, a in axes.items()
    }


def _given_text(value: GivenValue) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(literal(format_scalar(v)) for v in value)
    return format_scalar(value) if isinstance(value, (str, int, float)) else ""


def literal(text: str) -> str:
    """Override text that reads back as exactly ``text`` (quoted when it has to be): for
    a face holding a plain value (the form's "value" mode), so 'a,b' stays one value."""
    if text and not any(c in text for c in "\\,()'\"") and text == text.strip():
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _no_seed(seed: int | None, mode: str) -> None:
    if seed is not None:
        raise UserInputError(Problem(f"a seed is only used by random sampling, not by a "
                                     f"{mode} sweep", key="seed"))


def _check_cap(count: int, detail: str) -> None:
    if count > MAX_POINTS:
        raise UserInputError(Problem(
            f"the sweep would have {count} points ({detail}); at most {MAX_POINTS} are "
            "allowed: narrow the values or use random sampling", key="parameters"))
    if count < 1:
        raise UserInputError(Problem("the sweep has no points", key="parameters"))


def _grid(axes: dict[str, Axis], given: dict[str, str], seed: int | None,
          varying: list[str]) -> SweepPlan:
    problems = _interval_problems(axes, given)
    if problems:
        raise UserInputError(problems)
    _no_seed(seed, "grid")
    sizes = _grid_sizes(axes)
    detail = " × ".join(f"{n} {s}" for n, s in sizes.items()) or "no varying parameter"
    _check_cap(math.prod(sizes.values()), detail)
    points = list(_product(axes))
    return SweepPlan("grid", points, varying, given)


def _product(axes: Mapping[str, Axis]) -> Iterator[dict[str, str]]:
    """The cartesian product in parameter order: the first parameter varies slowest."""
    names = list(axes)
    choices = [_grid_values(a) for a in axes.values()]
    for combo in itertools.product(*choices):
        yield dict(zip(names, combo, strict=True))


def _grid_values(axis: Axis) -> Sequence[str]:
    if isinstance(axis, Fixed):
        return [axis.value]
    if isinstance(axis, Discrete):
        return axis.values
    raise AssertionError("intervals are refused before a grid is made")


def _random(axes: dict[str, Axis], given: dict[str, str], samples: int | None,
            seed: int | None, varying: list[str]) -> SweepPlan:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise UserInputError(Problem(f"the number of random samples must be a positive "
                                     f"integer, got {samples!r}", key="random"))
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise UserInputError(Problem(f"the seed must be an integer, got {seed!r}", key="seed"))
    _check_cap(samples, f"{samples} random samples")
    used = secrets.randbelow(2**31) if seed is None else seed  # JSON-safe, short to quote
    rng = random.Random(used)
    points = [{n: _draw(rng, a) for n, a in axes.items()} for _ in range(samples)]
    return SweepPlan("random", points, varying, given, samples=samples, seed=used)


def _draw(rng: random.Random, axis: Axis) -> str:
    """One value of ``axis``: uniform among discrete values, uniform or log-uniform in an
    interval (ints: bounds included)."""
    if isinstance(axis, Fixed):
        return axis.value
    if isinstance(axis, Discrete):
        return axis.values[rng.randrange(len(axis.values))]
    if axis.ints and axis.log:
        # Log-uniform over [lo, hi + 1) then floored: each int weighted by its log-width.
        value = math.exp(rng.uniform(math.log(axis.low), math.log(axis.high + 1)))
        return str(min(int(axis.high), max(int(axis.low), math.floor(value))))
    if axis.ints:
        return str(rng.randint(int(axis.low), int(axis.high)))
    if axis.log:
        value = math.exp(rng.uniform(math.log(axis.low), math.log(axis.high)))
    else:
        value = rng.uniform(axis.low, axis.high)
    return format_float(min(axis.high, max(axis.low, value)))  # exp/log rounding


def _rows(axes: dict[str, Axis], given: dict[str, str],
          rows: Sequence[Mapping[str, RowValue]], seed: int | None,
          varying: list[str]) -> SweepPlan:
    problems = _row_problems(rows)
    if problems:
        raise UserInputError(problems)
    problems = [
        Problem(f"parameter '{n}': rows give the points, so other parameters must be fixed "
                f"values, got {given[n]!r}", key=f"parameters.{n}")
        for n in varying
    ]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    problems += [
        Problem(f"parameter '{n}' is both a column of the rows and a fixed value; give it "
                "in one place", key=f"parameters.{n}")
        for n in columns if n in axes
    ]
    if problems:
        raise UserInputError(problems)
    _no_seed(seed, "rows")
    _check_cap(len(rows), f"{len(rows)} rows")
    fixed = {n: a.value for n, a in axes.items() if isinstance(a, Fixed)}
    points = [
        {**fixed, **{k: format_scalar(v) for k, v in row.items() if v is not None}}
        for row in rows
    ]
    return SweepPlan("rows", points, columns, given)


def _row_problems(rows: Sequence[Mapping[str, RowValue]]) -> list[Problem]:
    problems = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            problems.append(Problem(f"row {i} must be an object of parameter values, "
                                    f"got {type(row).__name__}", key=f"rows.{i}"))
            continue
        for key, value in row.items():
            if not isinstance(key, str) or not key:
                problems.append(Problem(f"row {i}: parameter names must be non-empty text, "
                                        f"got {key!r}", key=f"rows.{i}"))
            elif value is not None and not isinstance(value, (str, int, float)):
                problems.append(Problem(f"row {i}: parameter '{key}' must be a single value, "
                                        f"got {type(value).__name__}", key=f"rows.{i}.{key}"))
    return problems


# ---------------------------------------------------------------------------
# Rows from a file


def load_rows(path: Path) -> list[dict[str, RowValue]]:
    """The rows of a CSV file (its header names the parameters; an empty cell is the
    empty string) or a JSON file (a list of objects; null = the parameter's default)."""
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in (".csv", ".json"):
        raise UserInputError(Problem("rows come from a .csv or .json file", file=str(path)))
    try:
        if path.stat().st_size > MAX_ROWS_FILE_BYTES:
            raise UserInputError(Problem(f"the file is larger than {MAX_ROWS_FILE_BYTES} bytes",
                                         file=str(path)))
        text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets write a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(Problem(f"cannot read the rows: {exc}", file=str(path))) from None
    rows = _csv_rows(text, path) if kind == ".csv" else _json_rows(text, path)
    if not rows:
        raise UserInputError(Problem("the file has no rows", file=str(path)))
    return rows


def _csv_rows(text: str, path: Path) -> list[dict[str, RowValue]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        lines = [(reader.line_num, cells) for cells in reader]
    except csv.Error as exc:
        raise UserInputError(Problem(f"invalid CSV: {exc}", file=str(path),
                                     line=reader.line_num)) from None
    lines = [(n, cells) for n, cells in lines if cells]  # blank lines
    if not lines:
        return []
    header = [h.strip() for h in lines[0][1]]
    problems = [Problem(f"column {i + 1} of the header has no name", file=str(path), line=1)
                for i, h in enumerate(header) if not h]
    problems += [Problem(f"column '{h}' appears twice in the header", file=str(path), line=1)
                 for h in sorted({h for h in header if h and header.count(h) > 1})]
    for line, cells in lines[1:]:
        if len(cells) != len(header):
            problems.append(Problem(f"{len(cells)} cells, but the header has {len(header)}",
                                    file=str(path), line=line))
    if problems:
        raise UserInputError(problems)
    return [dict(zip(header, cells, strict=True)) for _, cells in lines[1:]]


def _json_rows(text: str, path: Path) -> list[dict[str, RowValue]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UserInputError(Problem(f"invalid JSON: {exc}", file=str(path))) from None
    if not isinstance(data, list):
        raise UserInputError(Problem("the JSON file must be a list of objects "
                                     "(one per point)", file=str(path)))
    problems = [
        Problem(p.message, file=str(path), key=p.key)
        for p in _row_problems(data)
    ]
    if problems:
        raise UserInputError(problems)
    return [dict(row) for row in data]


# ---------------------------------------------------------------------------
# Type-checking the points against the MLproject


def check_points(project: ProjectSpec, entry_point: str,
                 points: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """Every point's complete parameter values (defaults added, as MLflow logs them),
    after checking all of them: each bad value and unknown name is named once, with the
    points (indexes, 0-based as the children's ``sweep_index``) that have it."""
    ep = _entry_point(project, entry_point)
    where: dict[str, dict[str, list[int]]] = {}  # name → value → points that have it
    for index, point in enumerate(points):
        for name, value in point.items():
            where.setdefault(name, {}).setdefault(value, []).append(index)
    problems: list[Problem] = []
    normal: dict[tuple[str, str], str] = {}
    for name, values in where.items():
        spec = ep.parameter(name)
        if spec is None:  # named once, whatever its values
            problems += _own_problems(project, ep, name, next(iter(values)))
            continue
        for value, indexes in values.items():
            own = _own_problems(project, ep, name, value)
            if len(value) > MAX_PARAM_VALUE_LENGTH:  # MLflow would refuse it mid-submission
                own.append(Problem(f"parameter '{name}' has a value of {len(value)} "
                                   f"characters; MLflow keeps at most "
                                   f"{MAX_PARAM_VALUE_LENGTH}", key=f"parameters.{name}"))
            problems += [Problem(f"{p.message} {_points_text(indexes, len(points))}",
                                 key=p.key) for p in own]
            normal[(name, value)] = _normalise(spec.type, value)
    problems += _missing_required(ep.parameters, points)
    if problems:
        raise UserInputError(problems)
    defaults = {p.name: p.default for p in ep.parameters if p.default is not None}
    return [{**defaults, **{n: normal[(n, v)] for n, v in point.items()}} for point in points]


def _own_problems(project: ProjectSpec, ep: EntryPointSpec, name: str, value: str
                  ) -> list[Problem]:
    """The project's checks of one value (problems of other parameters, such as required
    ones not given here, are checked per point by the caller)."""
    try:
        _check_values(project, ep, {name: value})
    except UserInputError as exc:
        return [p for p in exc.problems if p.key == f"parameters.{name}"]
    return []


def _missing_required(parameters: Sequence[ParameterSpec], points: Sequence[Mapping[str, str]]
                      ) -> list[Problem]:
    problems = []
    for p in parameters:
        if not p.required:
            continue
        lacking = [i for i, point in enumerate(points) if p.name not in point]
        if lacking:
            problems.append(Problem(
                f"parameter '{p.name}' is required ({p.type}, no default) "
                + _points_text(lacking, len(points)), key=f"parameters.{p.name}"))
    return problems


def _points_text(indexes: Sequence[int], total: int) -> str:
    """'(points 3, 7)', '(all 12 points)', '(points 0, 1, 2, 3, 4, … 40 points)'."""
    if len(indexes) == total and total > 1:
        return f"(all {total} points)"
    if len(indexes) == 1:
        return f"(point {indexes[0]})"
    shown = ", ".join(str(i) for i in indexes[:5])
    more = f", … {len(indexes)} points" if len(indexes) > 5 else ""
    return f"(points {shown}{more})"
