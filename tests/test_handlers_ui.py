"""REST endpoints behind the submit sidebar: saving config sections, listing experiments."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from jupyterlab_hpcml.engine.config_edit import replace_sections

CONFIG = """\
# Local runs, 2 threads (header comment is kept)
Name: Local, 2 threads
Local: {}
Resources:
  Runtime: 30m          # the run is stopped after this long

# Environment of the job
Environment:
  Variables:
    OMP_NUM_THREADS: "2"
Exclude:                # on top of the project's .gitignore
  - "*.ckpt"
"""


def _write_config(project: Path, name: str = "local.yaml", text: str = CONFIG) -> Path:
    folder = project / "backend-configs"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_replace_sections_keeps_everything_else():
    out = replace_sections(CONFIG, {"Resources": {"Runtime": "1h", "Nodes": 2}}, is_json=False)
    assert "# Local runs, 2 threads (header comment is kept)" in out
    assert "# Environment of the job\nEnvironment:" in out
    assert 'Exclude:                # on top of the project\'s .gitignore' in out
    data = yaml.safe_load(out)
    assert data["Resources"] == {"Runtime": "1h", "Nodes": 2}
    assert data["Environment"] == {"Variables": {"OMP_NUM_THREADS": "2"}}
    assert list(data) == ["Name", "Local", "Resources", "Environment", "Exclude"]


def test_replace_sections_removes_and_appends():
    out = replace_sections(CONFIG, {"Environment": None}, is_json=False)
    assert "Environment" not in yaml.safe_load(out)
    assert "# Environment of the job" in out  # a comment before a key stays
    out = replace_sections("Local: {}\n", {"Resources": {"Runtime": "5m"}}, is_json=False)
    assert yaml.safe_load(out) == {"Local": {}, "Resources": {"Runtime": "5m"}}
    out = replace_sections(
        '{"Local": {}, "Resources": {"Nodes": 1}}', {"Resources": {"Nodes": 3}}, True
    )
    assert json.loads(out) == {"Local": {}, "Resources": {"Nodes": 3}}


async def test_save_config_writes_the_sections(api, toy_project):
    path = _write_config(toy_project)
    status, answer = await api("POST", "project/config", {
        "project": "toy",
        "path": "backend-configs/local.yaml",
        "sections": {"Resources": {"Runtime": "2h", "Nodes": 1},
                     "Environment": {"Variables": {"OMP_NUM_THREADS": "4"}}},
    })
    assert status == 200, answer
    assert answer["config"]["path"] == "backend-configs/local.yaml"
    assert answer["config"]["config"]["Resources"] == {"Runtime": "2h", "Nodes": 1}
    text = path.read_text()
    assert text.startswith(
        "# Local runs, 2 threads (header comment is kept)\nName: Local, 2 threads\n"
    )
    assert yaml.safe_load(text)["Environment"]["Variables"] == {"OMP_NUM_THREADS": "4"}
    assert "Exclude:                # on top of the project's .gitignore" in text


async def test_save_config_rejects_invalid_values_with_keys(api, toy_project):
    path = _write_config(toy_project)
    status, answer = await api("POST", "project/config", {
        "project": "toy",
        "path": "backend-configs/local.yaml",
        "sections": {"Resources": {"Runtime": "soon", "Nodes": 0}},
    })
    assert status == 400
    keys = {p["key"] for p in answer["problems"]}
    assert {"Resources.Runtime", "Resources.Nodes"} <= keys
    assert path.read_text() == CONFIG  # nothing written


async def test_save_config_only_into_project_configs(api, toy_project):
    status, answer = await api("POST", "project/config", {
        "project": "toy", "path": "MLproject", "sections": {"Resources": {"Nodes": 1}},
    })
    assert status == 400 and answer["problems"][0]["key"] == "path"
    _write_config(toy_project)
    status, answer = await api("POST", "project/config", {
        "project": "toy", "path": "backend-configs/local.yaml", "sections": {"Local": {}},
    })
    assert status == 400 and answer["problems"][0]["key"] == "Local"


async def test_experiments_lists_mlflow_experiments(api, toy_project):
    status, answer = await api("POST", "runs", {"project": "toy", "experiment_name": "picker-test",
                                                "parameters": {"steps": 1}})
    assert status == 201, answer
    status, answer = await api("GET", "experiments")
    assert status == 200
    names = [e["name"] for e in answer["experiments"]]
    assert "picker-test" in names
    assert all(isinstance(e["id"], str) for e in answer["experiments"])


def test_every_route_and_method_is_in_the_openapi_file() -> None:
    import inspect
    import re

    from jupyterlab_hpcml.handlers import HANDLERS

    spec = yaml.safe_load((Path(__file__).parents[1] / "docs" / "openapi.yaml").read_text())
    routes = {}
    for pattern, handler in HANDLERS:
        path = "/" + re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern)
        methods = {m for m in ("get", "post", "put", "delete", "patch")
                   if m in vars(handler) and inspect.isfunction(vars(handler)[m])}
        routes[path] = methods
    assert set(routes) == set(spec["paths"])
    for path, methods in routes.items():
        assert methods == set(spec["paths"][path]) - {"parameters"}, path
