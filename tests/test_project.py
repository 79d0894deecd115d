"""MLproject loading, validation and command resolution, on real files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jupyterlab_hpcml.core.errors import UserInputError
from jupyterlab_hpcml.engine.project import (
    EntryPointSpec,
    ParameterSpec,
    find_project_root,
    load_project,
    resolve_command,
)

MLPROJECT = """\
name: demo

entry_points:
  main:
    parameters:
      learning_rate: {type: float, default: 0.01}
      epochs: {type: int, default: 10}
      label: {type: string, default: ""}
      data: path
      model: {type: uri, default: "runs:/abc/model"}
      tag: string
    command: "python train.py --lr {learning_rate} --epochs {epochs} --label {label} --data {data} --model {model} --tag {tag}"
  other:
    command: "python other.py"
"""  # noqa: E501 (the command line is the test's input)


def write_project(root: Path, mlproject: str, name: str = "MLproject") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(textwrap.dedent(mlproject))
    return root


def problems_of(exc: pytest.ExceptionInfo[UserInputError]) -> list[str]:
    return [p.message for p in exc.value.problems]


@pytest.fixture
def project(tmp_path: Path):
    write_project(tmp_path / "proj", MLPROJECT)
    (tmp_path / "proj" / "data.csv").write_text("x\n")
    return load_project(tmp_path / "proj")


# ---------------------------------------------------------------------------
# Loading


def test_loads_entry_points_parameters_defaults_and_types(project):
    assert project.name == "demo"
    assert list(project.entry_points) == ["main", "other"]
    main = project.entry_points["main"]
    assert main.parameters == [
        ParameterSpec("learning_rate", "float", "0.01"),
        ParameterSpec("epochs", "int", "10"),
        ParameterSpec("label", "string", ""),
        ParameterSpec("data", "path", None),
        ParameterSpec("model", "uri", "runs:/abc/model"),
        ParameterSpec("tag", "string", None),
    ]
    assert project.entry_points["other"] == EntryPointSpec("other", "python other.py", [])
    assert project.env_note is None
    assert project.mlproject_file == project.path / "MLproject"


def test_json_schema(project):
    schema = project.entry_points["main"].json_schema()
    assert schema["type"] == "object"
    assert schema["title"] == "main"
    assert "python train.py" in schema["description"]
    assert schema["required"] == ["data", "tag"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["learning_rate"]["type"] == "number" and props["learning_rate"]["default"] == 0.01
    assert props["epochs"]["type"] == "integer" and props["epochs"]["default"] == 10
    assert props["label"] == {"title": "label", "x-mlflow-type": "string", "type": "string",
                              "default": ""}
    assert props["data"]["type"] == "string" and props["data"]["format"] == "path"
    assert "default" not in props["data"]
    assert props["model"]["format"] == "uri" and props["model"]["default"] == "runs:/abc/model"

    import jsonschema

    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate({"data": "x", "tag": "t", "epochs": 3}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"data": "x", "tag": "t", "epochs": 3.5}, schema)


def test_to_dict_is_json(project):
    data = json.loads(json.dumps(project.to_dict()))
    assert data["name"] == "demo"
    assert data["path"] == str(project.path)
    assert [ep["name"] for ep in data["entry_points"]] == ["main", "other"]
    main = data["entry_points"][0]
    assert main["parameters"][1] == {"name": "epochs", "type": "int", "default": "10",
                                     "required": False}
    assert main["json_schema"]["properties"]["epochs"]["type"] == "integer"
    assert data["env_note"] is None


def test_example_project_loads():
    example = Path(__file__).parent.parent / "examples" / "digits"
    spec = load_project(example)
    assert {"main", "train", "evaluate"} <= set(spec.entry_points)
    command, values = resolve_command(spec, "main", {}, None)
    assert command.startswith("python train.py --learning-rate 0.01 --epochs 10")
    assert values["run_label"] == ""


@pytest.mark.parametrize("filename", ["MLproject", "mlproject", "MLProject"])
def test_find_project_root(tmp_path: Path, filename: str):
    root = write_project(tmp_path / "proj", MLPROJECT, name=filename)
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("")
    assert find_project_root(root / "src" / "pkg") == root.resolve()
    assert find_project_root(root / "src" / "pkg" / "mod.py") == root.resolve()
    assert find_project_root(root) == root.resolve()
    assert load_project(root).mlproject_file == root.resolve() / filename


def test_find_project_root_none(tmp_path: Path):
    with pytest.raises(UserInputError, match="no MLproject file"):
        find_project_root(tmp_path)
    with pytest.raises(UserInputError, match="no such file"):
        find_project_root(tmp_path / "missing")


def test_load_without_mlproject(tmp_path: Path):
    with pytest.raises(UserInputError, match="no MLproject file"):
        load_project(tmp_path)


@pytest.mark.parametrize(
    ("declaration", "note"),
    [
        ("python_env: python_env.yaml",
         "MLproject declares python_env 'python_env.yaml'; it is not built — the backend "
         "config's Environment decides the job environment"),
        ("conda_env: conda.yaml", "MLproject declares conda_env 'conda.yaml'; it is not built"),
        ("docker_env: {image: 'python:3.12'}",
         "MLproject declares docker_env (image 'python:3.12'); it is not built"),
    ],
)
def test_env_note(tmp_path: Path, declaration: str, note: str):
    root = write_project(tmp_path, MLPROJECT + declaration + "\n")
    (root / "python_env.yaml").write_text("python: '3.12'\n")
    (root / "conda.yaml").write_text("name: x\n")
    assert load_project(root).env_note.startswith(note)


def test_env_note_implicit_python_env(tmp_path: Path):
    root = write_project(tmp_path, MLPROJECT)
    (root / "python_env.yaml").write_text("python: '3.12'\n")
    assert "python_env.yaml" in load_project(root).env_note


# ---------------------------------------------------------------------------
# Malformed MLproject


def load_problems(tmp_path: Path, mlproject: str) -> list:
    write_project(tmp_path, mlproject)
    with pytest.raises(UserInputError) as exc:
        load_project(tmp_path)
    for p in exc.value.problems:
        assert p.file == str(tmp_path.resolve() / "MLproject")
    return exc.value.problems


def test_yaml_syntax_error_has_line(tmp_path: Path):
    (problem,) = load_problems(tmp_path, "name: x\nentry_points:\n  main:\n    command: [oops\n")
    assert problem.message.startswith("invalid YAML")
    assert problem.line is not None and problem.line >= 4


def test_not_a_mapping(tmp_path: Path):
    (problem,) = load_problems(tmp_path, "- a\n- b\n")
    assert "must be a mapping" in problem.message and "list" in problem.message
    (problem,) = load_problems(tmp_path, "")
    assert "must be a mapping" in problem.message and "empty" in problem.message


def test_entry_points_missing(tmp_path: Path):
    (problem,) = load_problems(tmp_path, "name: x\n")
    assert problem.message == "MLproject has no 'entry_points'"


def test_entry_points_not_a_mapping(tmp_path: Path):
    (problem,) = load_problems(tmp_path, "name: x\nentry_points: [a, b]\n")
    assert "'entry_points' must be a mapping" in problem.message
    assert problem.line == 2 and problem.key == "entry_points"


def test_entry_point_without_command(tmp_path: Path):
    (problem,) = load_problems(
        tmp_path, "entry_points:\n  main:\n    parameters: {a: string}\n"
    )
    assert problem.message == "entry point 'main' has no 'command'"
    assert problem.line == 2 and problem.key == "entry_points.main"


def test_unknown_type_and_bad_defaults_all_reported(tmp_path: Path):
    problems = load_problems(
        tmp_path,
        """\
        entry_points:
          main:
            parameters:
              a: {type: integer, default: 1}
              b: {type: int, default: 3.5}
              c: {type: float, default: abc}
              d: {type: float, default: true}
              e: {type: uri, default: not-a-uri}
              f: [1, 2]
            command: "python x.py {a} {b} {c} {d} {e} {f}"
          second:
            command: "python y.py"
            parameters:
              g: {type: int, default: [1]}
        """,
    )
    by_key = {p.key: p for p in problems}
    a = by_key["entry_points.main.parameters.a.type"]
    assert a.message == ("parameter 'a' has unknown type 'integer'; use one of: "
                         "string, float, int, path, uri")
    assert a.line == 4
    b = by_key["entry_points.main.parameters.b.default"]
    assert b.message == "default of parameter 'b' must be an int, got 3.5" and b.line == 5
    assert by_key["entry_points.main.parameters.c.default"].message == (
        "default of parameter 'c' must be a float, got 'abc'")
    assert by_key["entry_points.main.parameters.d.default"].message == (
        "default of parameter 'd' must be a float, got True")
    assert by_key["entry_points.main.parameters.e.default"].message == (
        "default of parameter 'e' must be a URI, got 'not-a-uri'")
    assert "must be a type name" in by_key["entry_points.main.parameters.f"].message
    assert by_key["entry_points.main.parameters.f"].line == 9
    assert "single value" in by_key["entry_points.second.parameters.g.default"].message
    assert len(problems) == 7


def test_command_placeholder_not_declared(tmp_path: Path):
    (problem,) = load_problems(
        tmp_path, "entry_points:\n  main:\n    command: \"awk '{print $1}' {x}\"\n"
                  "    parameters: {x: string}\n"
    )
    assert "{print $1}" in problem.message and "{{" in problem.message
    assert problem.line == 3


def test_command_conversion_rejected(tmp_path: Path):
    # `{x!r}` would put Python quotes around MLflow's shell quotes and undo them.
    (problem,) = load_problems(
        tmp_path, "entry_points:\n  main:\n    command: \"echo {x!r}\"\n"
                  "    parameters: {x: string}\n"
    )
    assert "without conversions" in problem.message


def test_duplicate_key(tmp_path: Path):
    (problem,) = load_problems(
        tmp_path, "entry_points:\n  main:\n    command: a\n  main:\n    command: b\n"
    )
    assert problem.message == "duplicate key 'main'" and problem.line == 4


def test_mlflow_loader_errors_are_wrapped(tmp_path: Path):
    # MLflow's own checks: missing env file, several env fields.
    (problem,) = load_problems(tmp_path, MLPROJECT + "python_env: missing.yaml\n")
    assert "missing.yaml" in problem.message and "no such file" in problem.message
    (tmp_path / "conda.yaml").write_text("name: x\n")
    (tmp_path / "python_env.yaml").write_text("python: '3.12'\n")
    (problem,) = load_problems(
        tmp_path, MLPROJECT + "python_env: python_env.yaml\nconda_env: conda.yaml\n"
    )
    assert "multiple environment fields" in problem.message


def test_several_mlproject_files(tmp_path: Path):
    write_project(tmp_path, MLPROJECT)
    write_project(tmp_path, MLPROJECT, name="mlproject")
    if len(list(tmp_path.iterdir())) < 2:
        pytest.skip("case-insensitive file system")
    with pytest.raises(UserInputError, match="several MLproject files"):
        load_project(tmp_path)


# ---------------------------------------------------------------------------
# Parameter values


def test_resolve_fills_defaults_and_normalises(project, tmp_path: Path):
    command, values = resolve_command(
        project, "main", {"data": "data.csv", "tag": "t", "epochs": 3, "learning_rate": 0.5},
        tmp_path,
    )
    assert values == {
        "learning_rate": "0.5", "epochs": "3", "label": "", "data": "data.csv",
        "model": "runs:/abc/model", "tag": "t",
    }
    assert command == (
        "python train.py --lr 0.5 --epochs 3 --label '' --data data.csv "
        "--model runs:/abc/model --tag t"
    )


def test_resolve_accepts_strings_and_integral_floats(project):
    _, values = resolve_command(
        project, "main",
        {"data": "data.csv", "tag": "t", "epochs": "7", "learning_rate": "1e-3"}, None,
    )
    assert values["epochs"] == "7" and values["learning_rate"] == "1e-3"
    _, values = resolve_command(project, "main", {"data": "data.csv", "tag": 5, "epochs": 4.0},
                                None)
    assert values["epochs"] == "4" and values["tag"] == "5"


def test_unknown_entry_point(project):
    with pytest.raises(UserInputError) as exc:
        resolve_command(project, "ohter", {}, None)
    assert problems_of(exc) == ["unknown entry point 'ohter'; available: 'other', 'main'"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("epochs", "3.5", "parameter 'epochs' must be an int, got '3.5'"),
        ("epochs", 3.5, "parameter 'epochs' must be an int, got 3.5"),
        ("epochs", True, "parameter 'epochs' must be an int, got True"),
        ("epochs", "ten", "parameter 'epochs' must be an int, got 'ten'"),
        ("learning_rate", "fast", "parameter 'learning_rate' must be a float, got 'fast'"),
        ("learning_rate", False, "parameter 'learning_rate' must be a float, got False"),
        ("learning_rate", [1], "parameter 'learning_rate' must be a float, got [1]"),
        ("model", "no-scheme", "parameter 'model' must be a URI, got 'no-scheme'"),
    ],
)
def test_wrong_value_type(project, name, value, message):
    with pytest.raises(UserInputError) as exc:
        resolve_command(project, "main", {"data": "data.csv", "tag": "t", name: value}, None)
    assert problems_of(exc) == [message]
    assert exc.value.problems[0].key == f"parameters.{name}"


def test_required_parameters_named(project):
    with pytest.raises(UserInputError) as exc:
        resolve_command(project, "main", {"tag": None}, None)
    assert problems_of(exc) == [
        "parameter 'data' is required (path, no default)",
        "parameter 'tag' is required (string, no default)",
    ]


def test_undeclared_parameter_closest_first(project):
    with pytest.raises(UserInputError) as exc:
        resolve_command(project, "main", {"data": "data.csv", "tag": "t", "epoch": 3}, None)
    (message,) = problems_of(exc)
    assert message.startswith("entry point 'main' has no parameter 'epoch'; declared: 'epochs', ")
    for name in ("learning_rate", "label", "data", "model", "tag"):
        assert f"'{name}'" in message


def test_all_value_problems_at_once(project):
    with pytest.raises(UserInputError) as exc:
        resolve_command(project, "main", {"epochs": "x", "lr": 1}, None)
    assert len(exc.value.problems) == 4  # lr undeclared, epochs type, data and tag required


# ---------------------------------------------------------------------------
# path / uri resolution, the MLflow way


def test_path_relative_to_project_and_absolute(project, tmp_path: Path):
    command, values = resolve_command(project, "main", {"data": "data.csv", "tag": "t"}, tmp_path)
    assert values["data"] == "data.csv"  # the value as given
    # Relative for the job, whose working directory is the run's copy of the project
    # (this folder does not exist on a cluster).
    assert "--data data.csv " in command and str(project.path) not in command
    (project.path / "sub").mkdir()
    (project.path / "sub" / "x y.txt").write_text("")
    command, _ = resolve_command(project, "main", {"data": "sub/x y.txt", "tag": "t"}, tmp_path)
    assert "--data 'sub/x y.txt' " in command
    command, _ = resolve_command(project, "main", {"data": "file:sub/x y.txt", "tag": "t"},
                                 tmp_path)
    assert "--data 'sub/x y.txt' " in command
    outside = tmp_path / "outside.csv"
    outside.write_text("")
    command, _ = resolve_command(project, "main", {"data": str(outside), "tag": "t"}, tmp_path)
    assert f"--data {outside} " in command
    command, _ = resolve_command(project, "main", {"data": f"file://{outside}", "tag": "t"},
                                 tmp_path)
    assert f"--data {outside} " in command


def test_missing_path(project, tmp_path: Path):
    with pytest.raises(UserInputError) as exc:
        resolve_command(project, "main", {"data": "nope.csv", "tag": "t"}, tmp_path)
    (message,) = problems_of(exc)
    assert message.startswith("parameter 'data' is a path, but 'nope.csv' does not exist")


def test_relative_path_leaving_the_project_is_refused(project, tmp_path: Path):
    # It exists here, but not in the run's copy of the project, where the job looks.
    (tmp_path / "outside.csv").write_text("")
    with pytest.raises(UserInputError) as exc:
        resolve_command(project, "main", {"data": "../outside.csv", "tag": "t"}, tmp_path)
    (message,) = problems_of(exc)
    assert message.startswith("parameter 'data' is a path, but '../outside.csv' leaves the "
                              "project")
    assert exc.value.problems[0].key == "parameters.data"


def test_remote_path_is_fetched_by_mlflow(project, tmp_path: Path):
    # MLflow downloads remote `path` values into storage_dir; an unknown scheme is its error.
    storage = tmp_path / "storage" / "run1"
    with pytest.raises(UserInputError) as exc:
        resolve_command(project, "main", {"data": "nosuchscheme://bucket/x", "tag": "t"}, storage)
    (message,) = problems_of(exc)
    assert message.startswith("could not fetch path parameter 'data': ")
    assert "nosuchscheme://bucket" in message
    assert exc.value.problems[0].key == "parameters.data"
    assert storage.is_dir()


def test_uri_passes_through_untouched(project):
    command, _ = resolve_command(
        project, "main", {"data": "data.csv", "tag": "t", "model": "s3://bucket/a b"}, None
    )
    assert "--model 's3://bucket/a b' " in command


# ---------------------------------------------------------------------------
# Hostile values stay literal through MLflow's quoting, checked with a real shell


PRINT_ARGS = """\
import json, sys
with open("argv.json", "w") as f:
    json.dump(sys.argv[1:], f)
"""

HOSTILE = [
    "; rm -rf ~",
    "$(touch pwned)",
    "`touch pwned`",
    "a\nb; touch pwned",
    "it's \"quoted\"",
    "' ; touch pwned ; '",
    "$HOME ${HOME} \\ * ?",
    "-x",
    "",
    "ünïcødé ✓",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_reach_the_program_literally(tmp_path: Path, value: str):
    root = write_project(
        tmp_path / "proj",
        """\
        entry_points:
          main:
            parameters: {x: string, n: {type: int, default: 1}}
            command: "python print_args.py --x {x} --n {n}"
        """,
    )
    (root / "print_args.py").write_text(PRINT_ARGS)
    home = tmp_path / "home"  # `~` inside the job, should anything expand it
    home.mkdir()
    (home / "precious").write_text("keep")

    command, values = resolve_command(load_project(root), "main", {"x": value}, None)
    assert values["x"] == value

    env = {
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        "HOME": str(home),
    }
    result = subprocess.run(["bash", "-c", command], cwd=root, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads((root / "argv.json").read_text()) == ["--x", value, "--n", "1"]
    assert not (root / "pwned").exists()
    assert (home / "precious").read_text() == "keep"
