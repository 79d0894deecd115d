"""Sweep definitions: the override grammar, grid/random/rows points, the cap, and the
type check of every point against real MLproject files (tests/projects/toy, examples/digits)."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from jupyterlab_hpcml.core.errors import UserInputError
from jupyterlab_hpcml.engine.limits import MAX_PARAM_VALUE_LENGTH
from jupyterlab_hpcml.engine.project import load_project
from jupyterlab_hpcml.engine.sweep_spec import (
    MAX_POINTS,
    Discrete,
    Fixed,
    Interval,
    build,
    check_points,
    count_points,
    literal,
    load_rows,
    parse_parameter,
)

REPO = Path(__file__).resolve().parent.parent
TOY = REPO / "tests" / "projects" / "toy"
DIGITS = REPO / "examples" / "digits"


def values_of(text: str) -> list[str]:
    axis = parse_parameter("p", text)
    assert isinstance(axis, Discrete), axis
    return list(axis.values)


def problems(exc: pytest.ExceptionInfo[UserInputError]) -> list[tuple[str | None, str]]:
    return [(p.key, p.message) for p in exc.value.problems]


# ---------------------------------------------------------------------------
# Grammar


@pytest.mark.parametrize(("text", "value"), [
    ("0.1", "0.1"),
    ("adam", "adam"),
    ("  hello world  ", "hello world"),  # inner spaces stay
    ("", ""),
    ("don't", "don't"),  # a quote inside a word is a character
    ("'a,b'", "a,b"),
    ('"a,b"', "a,b"),
    ("'f(x)'", "f(x)"),
    ("'it\\'s'", "it's"),
    ("a\\,b", "a,b"),
    ("x=y", "x=y"),
])
def test_fixed_values(text: str, value: str) -> None:
    assert parse_parameter("p", text) == Fixed(value)


@pytest.mark.parametrize(("text", "values"), [
    ("0.1,0.01,0.001", ["0.1", "0.01", "0.001"]),
    (" a , b ,c ", ["a", "b", "c"]),
    ("x,'y,z',\"w(1)\"", ["x", "y,z", "w(1)"]),
    ("'',b", ["", "b"]),
    ("choice(adam,sgd)", ["adam", "sgd"]),
    ("choice( adam , 'a,b' )", ["adam", "a,b"]),
    ("range(0,5)", ["0", "1", "2", "3", "4"]),
    ("range(1, 10, 3)", ["1", "4", "7"]),
    ("range(10,0,-4)", ["10", "6", "2"]),
    ("range(0, 1, 0.25)", ["0.0", "0.25", "0.5", "0.75"]),
    ("range(0,1,0.1)", [repr(i / 10) for i in range(10)]),  # exact: 0.3, not 0.30000000000000004
    ("range(start=0, stop=3)", ["0", "1", "2"]),
    ("range(0, stop=2, step=0.5)", ["0.0", "0.5", "1.0", "1.5"]),
    ("range ( 0 , 2 )", ["0", "1"]),
])
def test_discrete_values(text: str, values: list[str]) -> None:
    assert values_of(text) == values


def test_intervals() -> None:
    assert parse_parameter("p", "interval(1e-4, 1e-1)") == Interval(1e-4, 0.1, False, False)
    assert parse_parameter("p", "interval(1, 10)") == Interval(1, 10, ints=True, log=False)
    assert parse_parameter("p", "interval(1, 10.0)").ints is False  # type: ignore[union-attr]
    assert parse_parameter("p", "interval(start=-1, end=1)") == Interval(-1, 1, True, False)
    assert parse_parameter("p", "tag(log, interval(1e-4,1e-1))") == Interval(
        1e-4, 0.1, ints=False, log=True)


def test_json_numbers_and_lists_are_literals() -> None:
    """From REST JSON or Python: numbers are fixed values, lists are list axes."""
    assert parse_parameter("p", 0.001) == Fixed("0.001")
    assert parse_parameter("p", 1e-5) == Fixed("1e-05")
    assert parse_parameter("p", 7) == Fixed("7")
    assert parse_parameter("p", [0.1, 2, "a,b"]) == Discrete("list", ["0.1", "2", "a,b"])
    plan = build({"lr": [0.1, 0.01], "label": "a,b"})
    assert plan.parameters == {"lr": "0.1,0.01", "label": "a,b"}


@pytest.mark.parametrize(("text", "message"), [
    ("interval(1e-4)", "parameter 'lr': interval() needs two numbers, got 'interval(1e-4)'"),
    ("interval(1, 2, 3)", "interval() needs two numbers, got 'interval(1, 2, 3)'"),
    ("interval(a, 2)", "interval() takes numbers, got 'a' in 'interval(a, 2)'"),
    ("interval('1', 2)", "interval() takes numbers, got '1'"),
    ("interval(2, 1)", "low bound below its high one, got 'interval(2, 1)'"),
    ("interval(0, inf)", "takes numbers, got 'inf'"),
    ("tag(log, interval(0, 1))", "log interval needs a low bound above 0, "
                                 "got 'tag(log, interval(0, 1))'"),
    ("tag(log, choice(1, 2))", "tag(log, ...) applies to interval()"),
    ("tag(lin, interval(1, 2))", "unknown tag 'lin'"),
    ("tag(interval(1, 2))", "tag() needs tags and then a sweep"),
    ("range(1)", "range() needs a start and a stop (and optionally a step), got 'range(1)'"),
    ("range(0, 5, 0)", "step must not be 0"),
    ("range(5, 0)", "range() has no values (stop is exclusive)"),
    ("range(0, 5", "missing ')' after 'range(0, 5'"),
    ("range(0, x)", "range() takes numbers, got 'x'"),
    ("range(start=0, 5)", "a positional argument cannot follow a named one"),
    ("range(0, 5, stop=6)", "range() got 'stop' twice"),
    ("range(0, end=5)", "range() has no argument 'end'"),
    ("choice()", "choice() needs at least one value, got 'choice()'"),
    ("choice(a, range(0, 2))", "choice() takes plain values, got 'range(0, 2)'"),
    ("1,range(0, 2)", "a list takes plain values, got 'range(0, 2)'"),
    ("a,,b", "a list has an empty value"),
    ("foo(1)", "unknown function 'foo()'"),
    ("(1)", "unexpected '(' at position 1 (quote the value"),
    ("a)", "unexpected ')' at position 2"),
    ("'a,b", "the quote ' at position 1 is never closed"),
    ("'a'b", "unexpected 'b' at position 4"),
    ("range(0, 2) x", "unexpected 'x'"),
])
def test_syntax_errors_name_the_parameter(text: str, message: str) -> None:
    with pytest.raises(UserInputError) as exc:
        build({"lr": text})
    [(key, got)] = problems(exc)
    assert key == "parameters.lr"
    assert got.startswith("parameter 'lr': ")
    assert message in got


def test_all_problems_at_once() -> None:
    with pytest.raises(UserInputError) as exc:
        build({"lr": "interval(1e-4)", "epochs": "1,2", "opt": "choice(", "seed": [],
               "ok": "range(0, 3)"})
    assert [k for k, _ in problems(exc)] == [
        "parameters.lr", "parameters.opt", "parameters.seed"]


# ---------------------------------------------------------------------------
# Grid


def test_grid_is_the_product_first_parameter_slowest() -> None:
    plan = build({"opt": "adam,sgd", "seed": "range(0,3)", "label": "x"})
    assert plan.mode == "grid" and plan.seed is None
    assert plan.axes == ["opt", "seed"]
    assert plan.points == [
        {"opt": o, "seed": s, "label": "x"} for o in ("adam", "sgd") for s in ("0", "1", "2")
    ]
    assert count_points({"opt": "adam,sgd", "seed": "range(0,3)", "label": "x"}) == 6


def test_fixed_only_is_one_point_and_none_is_not_given() -> None:
    plan = build({"lr": "0.1", "epochs": 3, "seed": None})
    assert plan.points == [{"lr": "0.1", "epochs": "3"}]
    assert plan.axes == []


def test_interval_in_a_grid_says_to_sample() -> None:
    with pytest.raises(UserInputError) as exc:
        build({"lr": "tag(log, interval(1e-4, 1e-1))", "alpha": "interval(0, 1)",
               "seed": "0,1"})
    found = problems(exc)
    assert [k for k, _ in found] == ["parameters.lr", "parameters.alpha"]
    assert all("random sampling" in m for _, m in found)
    with pytest.raises(UserInputError, match="random sampling"):
        count_points({"lr": "interval(0, 1)"})


def test_seed_without_random_is_refused() -> None:
    with pytest.raises(UserInputError, match="only used by random sampling"):
        build({"lr": "0.1,0.2"}, seed=3)


def test_grid_cap_is_checked_before_the_product_is_made() -> None:
    huge = {f"p{i}": "range(0,100)" for i in range(5)}
    start = time.monotonic()
    assert count_points(huge) == 100**5
    with pytest.raises(UserInputError) as exc:
        build(huge)
    assert time.monotonic() - start < 1.0
    [(key, message)] = problems(exc)
    assert key == "parameters"
    assert f"{100**5} points (p0 100 × p1 100 × p2 100 × p3 100 × p4 100)" in message
    assert f"at most {MAX_POINTS}" in message
    # A range far beyond any memory is counted, not listed.
    assert count_points({"seed": "range(0, 1000000000000000)"}) == 10**15


def test_grid_at_the_cap_is_allowed() -> None:
    plan = build({"a": "range(0,100)", "b": "range(0,100)"})
    assert len(plan.points) == MAX_POINTS
    assert plan.points[-1] == {"a": "99", "b": "99"}


# ---------------------------------------------------------------------------
# Random


def test_random_is_reproducible_with_a_seed() -> None:
    spec = {"lr": "tag(log, interval(1e-4, 1e-1))", "opt": "adam,sgd",
            "hidden": "range(16, 257, 16)", "label": "x"}
    one = build(spec, samples=20, seed=42)
    two = build(spec, samples=20, seed=42)
    assert one.mode == "random" and one.seed == 42 and one.samples == 20
    assert one.points == two.points and len(one.points) == 20
    assert one.axes == ["lr", "opt", "hidden"]
    assert build(spec, samples=20, seed=43).points != one.points
    assert {p["label"] for p in one.points} == {"x"}
    assert {p["opt"] for p in one.points} <= {"adam", "sgd"}
    assert {int(p["hidden"]) for p in one.points} <= set(range(16, 257, 16))


def test_random_without_a_seed_records_the_one_it_chose() -> None:
    spec = {"lr": "interval(0, 1)"}
    plan = build(spec, samples=5)
    assert isinstance(plan.seed, int)
    assert build(spec, samples=5, seed=plan.seed).points == plan.points
    assert count_points(spec, samples=5) == 5


def test_log_uniform_stays_in_bounds_and_spreads_over_decades() -> None:
    points = build({"lr": "tag(log, interval(1e-4, 1e-1))"}, samples=3000, seed=1).points
    values = [float(p["lr"]) for p in points]
    assert all(1e-4 <= v <= 1e-1 for v in values)
    # Log-uniform: a third per decade (uniform would put 90% in the top one).
    for low in (1e-4, 1e-3, 1e-2):
        share = sum(low <= v < low * 10 for v in values) / len(values)
        assert 0.28 < share < 0.39, (low, share)


def test_uniform_floats_render_as_shortest_text() -> None:
    points = build({"x": "interval(-1, 1.5)"}, samples=200, seed=3).points
    for p in points:
        value = float(p["x"])
        assert -1 <= value <= 1.5
        assert p["x"] == repr(value)


def test_int_intervals_draw_ints_including_both_bounds() -> None:
    points = build({"n": "interval(1, 4)", "m": "tag(log, interval(1, 1000))"},
                   samples=400, seed=7).points
    assert {p["n"] for p in points} == {"1", "2", "3", "4"}
    ms = [int(p["m"]) for p in points]  # ints, or int() fails
    assert all(1 <= m <= 1000 for m in ms)
    assert sum(m < 32 for m in ms) > 100  # log-uniform: half below sqrt(1000)


def test_random_draws_from_huge_ranges_without_listing_them() -> None:
    start = time.monotonic()
    points = build({"seed": "range(0, 1000000000000000)"}, samples=50, seed=0).points
    assert time.monotonic() - start < 1.0
    assert all(0 <= int(p["seed"]) < 10**15 for p in points)


@pytest.mark.parametrize("samples", [0, -1, MAX_POINTS + 1])
def test_random_sample_count_is_checked(samples: int) -> None:
    with pytest.raises(UserInputError) as exc:
        build({"lr": "interval(0, 1)"}, samples=samples)
    [(_, message)] = problems(exc)
    assert ("positive integer" in message) or (f"{MAX_POINTS + 1} points" in message)


# ---------------------------------------------------------------------------
# Rows


def test_rows_from_csv_with_fixed_values(tmp_path: Path) -> None:
    file = tmp_path / "points.csv"
    file.write_text("\ufefflearning_rate, epochs,run_label\n0.1,3,\"a,b\"\n\n0.01,5,\n",
                    encoding="utf-8")
    rows = load_rows(file)
    assert rows == [{"learning_rate": "0.1", "epochs": "3", "run_label": "a,b"},
                    {"learning_rate": "0.01", "epochs": "5", "run_label": ""}]
    plan = build({"seed": "4"}, rows=rows)
    assert plan.mode == "rows" and plan.axes == ["learning_rate", "epochs", "run_label"]
    assert plan.points == [
        {"seed": "4", "learning_rate": "0.1", "epochs": "3", "run_label": "a,b"},
        {"seed": "4", "learning_rate": "0.01", "epochs": "5", "run_label": ""},
    ]
    assert count_points({"seed": "4"}, rows=rows) == 2


def test_rows_from_json(tmp_path: Path) -> None:
    file = tmp_path / "points.json"
    file.write_text(json.dumps([{"learning_rate": 0.001, "epochs": 2},
                                {"learning_rate": 1e-05, "hidden": 32, "epochs": None}]))
    plan = build({}, rows=load_rows(file))
    # null: not given (the MLproject's default applies); numbers render as MLflow logs them.
    assert plan.points == [{"learning_rate": "0.001", "epochs": "2"},
                           {"learning_rate": "1e-05", "hidden": "32"}]
    assert plan.axes == ["learning_rate", "epochs", "hidden"]


def test_rows_refuse_sweep_axes_and_double_definitions() -> None:
    with pytest.raises(UserInputError) as exc:
        build({"seed": "0,1", "epochs": "3"}, rows=[{"epochs": "2"}])
    assert [k for k, _ in problems(exc)] == ["parameters.seed", "parameters.epochs"]
    with pytest.raises(UserInputError, match="not both"):
        build({}, rows=[{"epochs": "2"}], samples=3)
    with pytest.raises(UserInputError, match="must be a single value"):
        build({}, rows=[{"epochs": [1, 2]}])  # type: ignore[list-item]


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("bad.csv", "a,b\n1,2\n3\n4,5,6\n", [(3, "1 cells, but the header has 2"),
                                        (4, "3 cells, but the header has 2")]),
    ("dup.csv", "a,a,\n1,2,3\n", [(1, "column 3 of the header has no name"),
                                  (1, "column 'a' appears twice in the header")]),
    ("empty.csv", "a,b\n", [(None, "the file has no rows")]),
    ("list.json", '{"a": 1}', [(None, "must be a list of objects")]),
    ("nested.json", '[{"a": {"b": 1}}, 3]', [(None, "row 0: parameter 'a' must be a single"),
                                             (None, "row 1 must be an object")]),
    ("broken.json", "[{", [(None, "invalid JSON")]),
    ("rows.txt", "a\n1\n", [(None, "rows come from a .csv or .json file")]),
])
def test_row_file_errors(tmp_path: Path, name: str, text: str,
                         expected: list[tuple[int | None, str]]) -> None:
    file = tmp_path / name
    file.write_text(text)
    with pytest.raises(UserInputError) as exc:
        load_rows(file)
    found = exc.value.problems
    assert len(found) == len(expected)
    for problem, (line, message) in zip(found, expected, strict=True):
        assert problem.file == str(file)
        assert problem.line == line
        assert message in problem.message


# ---------------------------------------------------------------------------
# Type check against the MLproject


def test_points_are_checked_against_digits_each_bad_value_once() -> None:
    project = load_project(DIGITS)
    points = build({"epochs": "5,abc,7,x", "learning_rate": "0.1,fast",
                    "batch_size": 32, "layers": "2"}).points
    # epochs cycles slowest: 'abc' is at points 2 and 3, 'x' at 6 and 7.
    with pytest.raises(UserInputError) as exc:
        check_points(project, "main", points)
    found = problems(exc)
    assert found[:3] == [
        ("parameters.epochs", "parameter 'epochs' must be an int, got 'abc' (points 2, 3)"),
        ("parameters.epochs", "parameter 'epochs' must be an int, got 'x' (points 6, 7)"),
        ("parameters.learning_rate",
         "parameter 'learning_rate' must be a float, got 'fast' (points 1, 3, 5, 7)"),
    ]
    [(key, message)] = found[3:]  # an unknown name once, not once per point
    assert key == "parameters.layers"
    assert message.startswith("entry point 'main' has no parameter 'layers'; declared: ")


def test_checked_points_are_complete_and_normalised() -> None:
    project = load_project(DIGITS)
    points = build({"epochs": "3,4", "hidden": "interval(8, 64)", "alpha": 1e-05},
                   samples=4, seed=5).points
    full = check_points(project, "train", points)
    assert len(full) == 4
    for given, values in zip(points, full, strict=True):
        assert {k: values[k] for k in given} == given
        assert 8 <= int(values["hidden"]) <= 64
        assert values["alpha"] == "1e-05"
        assert values["learning_rate"] == "0.01" and values["run_label"] == ""  # defaults
    assert set(full[0]) == {"learning_rate", "epochs", "hidden", "alpha", "batch_size",
                            "seed", "epoch_delay", "run_label"}


def test_required_parameters_and_entry_points_against_toy(tmp_path: Path) -> None:
    project = load_project(TOY)
    file = tmp_path / "rows.json"
    file.write_text(json.dumps([{"value": "a"}, {}, {"value": None}]))
    points = build({}, rows=load_rows(file)).points
    with pytest.raises(UserInputError) as exc:
        check_points(project, "args", points)
    assert problems(exc) == [("parameters.value",
                              "parameter 'value' is required (string, no default) (points 1, 2)")]
    assert check_points(project, "args", points[:1]) == [{"value": "a"}]
    with pytest.raises(UserInputError) as exc:
        check_points(project, "nope", points)
    assert problems(exc)[0][0] == "entry_point"
    grid = build({"steps": "range(1,4)", "lr": "tag(log, interval(1e-3, 1))"}, samples=6, seed=0)
    checked = check_points(project, "main", grid.points)
    assert all(math.isfinite(float(p["lr"])) and p["label"] == "hello" for p in checked)


def test_float_parameters_draw_floats_from_int_bounds() -> None:
    """alpha=interval(0,1) for a float parameter: floats, not just 0 and 1."""
    project = load_project(DIGITS)
    types = {p.name: p.type for p in project.entry_points["main"].parameters}
    spec = {"alpha": "interval(0, 1)", "hidden": "interval(8, 16)"}
    plan = build(spec, samples=50, seed=2, types=types)
    assert len({p["alpha"] for p in plan.points}) == 50
    assert all("." in p["alpha"] or "e" in p["alpha"] for p in plan.points)
    assert all(p["hidden"].isdigit() for p in plan.points)  # int parameter: still ints
    assert {p["alpha"] for p in build(spec, samples=50, seed=2).points} <= {"0", "1"}
    check_points(project, "main", plan.points)


@pytest.mark.parametrize("text", ["a,b", "f(x)", "it's", ' "q" ', "", "back\\slash", "plain"])
def test_literal_reads_back_as_the_same_value(text: str) -> None:
    assert parse_parameter("p", literal(text)) == Fixed(text)
    assert literal("plain") == "plain"


def test_values_longer_than_mlflow_keeps_are_refused() -> None:
    project = load_project(TOY)
    long = "x" * (MAX_PARAM_VALUE_LENGTH + 1)
    with pytest.raises(UserInputError) as exc:
        check_points(project, "main", [{"label": "ok"}, {"label": long}])
    assert problems(exc) == [("parameters.label", f"parameter 'label' has a value of "
                              f"{len(long)} characters; MLflow keeps at most "
                              f"{MAX_PARAM_VALUE_LENGTH} (point 1)")]
