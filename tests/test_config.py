"""Backend config: schema, loader, error messages, overrides, redaction, discovery."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from jupyterlab_hpcml.core.errors import Problem, UserInputError
from jupyterlab_hpcml.engine.config import (
    apply_overrides,
    default_local_config,
    load_backend_config,
    parse_backend_config,
    schema,
)
from jupyterlab_hpcml.engine.config_discovery import find_backend_configs
from jupyterlab_hpcml.engine.config_redaction import is_secret_key
from jupyterlab_hpcml.engine.config_units import parse_memory, parse_runtime

UNICORE_URL = "https://zam2125.zam.kfa-juelich.de:9112/JUWELS/rest/core"

MANTIK_UNICORE = f"""\
UnicoreApiUrl: {UNICORE_URL}
Environment:
  Apptainer:
    Path: mantik-test.sif
    Type: lOcAl
    Options: --nv
  Modules:
    - Stages/2023
    - Python/3.10.4
  Variables:
    TEST_ENV_VAR: variable value
    OMP_NUM_THREADS: 4
    DEBUG: true
  PreRunCommandOnLoginNode: echo precommand login node
  PostRunCommandOnLoginNode:
    - echo postcommand
    - echo on login node
  PreRunCommandOnComputeNode:
    - echo precommand
    - 1
  PostRunCommandOnComputeNode: echo done
Resources:
  Queue: batch
  Runtime: 1h
  Nodes: 2
  TotalCPUs: 96
  CPUsPerNode: 48
  GPUsPerNode: 4
  MemoryPerNode: 64G
  Reservation: my-reservation
  NodeConstraints: gpu
  QoS: normal
Exclude:
  - "*.sif"
  - sub-directory/
  - "**/*.png"
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(UserInputError) as info:
        load_backend_config(path)
    return info.value.problems


def only_problem(path: Path) -> Problem:
    problems = problems_of(path)
    assert len(problems) == 1, problems
    return problems[0]


# ------------------------------------------------------------------ schema


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema() is schema()  # cached


def _object_schemas(node: Any, where: str = "#"):
    if isinstance(node, dict):
        if "properties" in node:
            yield where, node
        for key, value in node.items():
            yield from _object_schemas(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _object_schemas(value, f"{where}/{i}")


def test_every_property_has_title_and_description_and_objects_are_closed() -> None:
    for where, obj in _object_schemas(schema()):
        if "/allOf/" in where or "/if" in where or "/then" in where:
            continue  # conditional fragments only add constraints
        assert obj.get("additionalProperties") is False, where
        for name, prop in obj["properties"].items():
            assert prop.get("title") and prop.get("description"), f"{where}/{name}"


# ------------------------------------------------------------------ valid configs


def test_mantik_unicore_config_loads_unchanged(tmp_path: Path) -> None:
    path = write(tmp_path, "compute-backend-config.yaml", MANTIK_UNICORE)
    cfg = load_backend_config(path)
    assert cfg.kind == "unicore"
    assert cfg.path == path
    assert cfg.connection_name == f"unicore:{UNICORE_URL}"
    assert cfg.data["Resources"]["Runtime"] == "1h"  # data stays as written
    assert cfg.resources == {
        "Queue": "batch", "Runtime": 3600, "Nodes": 2, "TotalCPUs": 96, "CPUsPerNode": 48,
        "GPUsPerNode": 4, "MemoryPerNode": 65536, "Reservation": "my-reservation",
        "NodeConstraints": "gpu", "QoS": "normal",
    }
    env = cfg.environment
    assert env["Apptainer"] == {"Path": "mantik-test.sif", "Type": "local", "Options": ["--nv"]}
    assert env["PreRunCommandOnLoginNode"] == ["echo precommand login node"]
    assert env["PreRunCommandOnComputeNode"] == ["echo precommand", "1"]
    assert env["Variables"] == {
        "TEST_ENV_VAR": "variable value", "OMP_NUM_THREADS": "4", "DEBUG": "true",
    }
    assert cfg.exclude == ["*.sif", "sub-directory/", "**/*.png"]
    assert cfg.tracking_mode == "offline" and cfg.tracking_uri is None


def test_firecrest_config(tmp_path: Path) -> None:
    path = write(tmp_path, "firecrest.yml", """\
Firecrest:
  ApiUrl: https://firecrest.cscs.ch/
  TokenUrl: https://auth.cscs.ch/auth/realms/firecrest-clients/protocol/openid-connect/token
  Machine: daint
Resources:
  Queue: normal
  Runtime: "1-02:00:00"
  MemoryPerNode: 512MiB
Environment:
  Python: {Path: /users/me/venv}
Tracking:
  Mode: direct
  Uri: https://mlflow.example.org
""")
    cfg = load_backend_config(path)
    assert cfg.kind == "firecrest"
    assert cfg.connection_name == (
        "firecrest:https://firecrest.cscs.ch#daint token="
        "https://auth.cscs.ch/auth/realms/firecrest-clients/protocol/openid-connect/token")
    assert cfg.resources["Runtime"] == 26 * 3600
    assert cfg.resources["MemoryPerNode"] == 512
    assert cfg.environment["Python"] == "/users/me/venv"
    assert (cfg.tracking_mode, cfg.tracking_uri) == ("direct", "https://mlflow.example.org")


def test_ssh_config(tmp_path: Path) -> None:
    path = write(tmp_path, "ssh.yaml", """\
Name: My cluster
SSH:
  Hostname: login.cluster.example.org
  Port: "2222"
  User: alice
  IdentityFile: ~/.ssh/id_ed25519
  ProxyJump: gateway.example.org
  WorkDir: /scratch/alice/hpcml
Resources:
  Queue: gpu
  Account: proj42
  Runtime: 90min
Environment:
  Python: /home/alice/venv
""")
    cfg = load_backend_config(path)
    assert cfg.kind == "ssh"
    assert cfg.connection_name == "ssh:alice@login.cluster.example.org:2222 via gateway.example.org"
    assert cfg.resources == {"Queue": "gpu", "Account": "proj42", "Runtime": 5400}
    assert cfg.tracking_mode == "offline"


def test_ssh_connection_name_defaults(tmp_path: Path) -> None:
    cfg = parse_backend_config({"SSH": {"Hostname": "h"}, "Resources": {"Queue": "q"}})
    assert cfg.connection_name == "ssh:h:22"


def test_local_config_json(tmp_path: Path) -> None:
    path = write(tmp_path, "local.json", json.dumps({
        "Local": {"WorkDir": "/tmp/runs"},
        "Resources": {"CPUsPerNode": 2, "Runtime": 600},
        "Environment": {"Variables": {"A": "1"}},
        "Tracking": {"Mode": "offline"},
    }, indent="\t"))
    cfg = load_backend_config(path)
    assert cfg.kind == "local" and cfg.connection_name == "local"
    assert cfg.resources == {"CPUsPerNode": 2, "Runtime": 600}
    assert cfg.tracking_mode == "offline"


def test_no_backend_key_means_local(tmp_path: Path) -> None:
    cfg = load_backend_config(write(tmp_path, "c.yaml", "Resources:\n  Runtime: 10m\n"))
    assert cfg.kind == "local" and cfg.tracking_mode == "direct"
    assert cfg.resources == {"Runtime": 600}


def test_empty_local_section(tmp_path: Path) -> None:
    cfg = load_backend_config(write(tmp_path, "c.yaml", "Name: laptop\nLocal:\n"))
    assert cfg.kind == "local" and cfg.connection_name == "local"


def test_multiple_types_message(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "c.yaml", "Environment:\n  Variables:\n    A: [1]\n"))
    assert (problem.line, problem.key) == (3, "Environment.Variables.A")
    assert problem.message == "must be a string, a number or true/false, got a list"


def test_default_local_config() -> None:
    cfg = default_local_config()
    assert (cfg.kind, cfg.path, cfg.data, cfg.resources, cfg.environment, cfg.exclude) == (
        "local", None, {}, {}, {}, [],
    )
    assert cfg.tracking_mode == "direct" and cfg.tracking_uri is None
    assert cfg.connection_name == "local" and cfg.redacted() == {}


def test_parse_backend_config_from_request_data_and_text() -> None:
    body = {"Resources": {"Nodes": 1}}
    cfg = parse_backend_config(body)
    assert cfg.path is None and cfg.kind == "local"
    cfg.data["Resources"]["Nodes"] = 5
    assert body["Resources"]["Nodes"] == 1  # the caller's dict is not shared
    with pytest.raises(UserInputError) as info:
        parse_backend_config("Resources:\n  Nodes: 0\n", source="editor")
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.key) == ("editor", 2, "Resources.Nodes")
    with pytest.raises(UserInputError) as info:
        parse_backend_config(["not", "a", "mapping"])
    assert "top level must be a mapping" in info.value.problems[0].message


# ------------------------------------------------------------------ Runtime / Memory

RUNTIMES = [
    ("1h30m", 5400), ("1h 30m", 5400), ("90min", 5400), ("90 minutes", 5400), ("01:30:00", 5400),
    ("1:30:00", 5400), ("90:00", 5400), ("1-02:00:00", 93600), ("1-2", 93600),
    ("2-00:30", 2 * 86400 + 1800), ("2d", 172800), ("2 days", 172800), ("1H", 3600),
    ("30s", 30), ("45sec", 45), ("1.5h", 5400), ("3600", 3600), (3600, 3600), (1, 1),
    ("1d2h3m4s", 93784),
]
BAD_RUNTIMES = ["", "0", "0h", "1x", "1 hour and a bit", "1:60:00", "1-24:00", "abc", "-5",
                "1h30", "1ms", " 1h", 0, -3]


@pytest.mark.parametrize(("value", "seconds"), RUNTIMES)
def test_parse_runtime(value: str | int, seconds: int) -> None:
    assert parse_runtime(value) == seconds


@pytest.mark.parametrize("value", BAD_RUNTIMES + [1.5, True, None, [1]])
def test_parse_runtime_rejects(value: Any) -> None:
    with pytest.raises(ValueError, match="Runtime must be"):
        parse_runtime(value)


MEMORIES = [
    ("64G", 65536), ("64GB", 65536), ("64GiB", 65536), ("64g", 65536), ("65536M", 65536),
    ("512MiB", 512), ("512", 512), (512, 512), ("1T", 1048576), ("1.5G", 1536),
    ("2048K", 2), ("512K", 1), ("8 GB", 8192),
]
BAD_MEMORIES = ["", "0", "0G", "64X", "G", "64 gigs", "64GiBs", "-1G", 0, -1]


@pytest.mark.parametrize(("value", "mib"), MEMORIES)
def test_parse_memory(value: str | int, mib: int) -> None:
    assert parse_memory(value) == mib


@pytest.mark.parametrize("value", BAD_MEMORIES + [1.5, False, None])
def test_parse_memory_rejects(value: Any) -> None:
    with pytest.raises(ValueError, match="MemoryPerNode must be"):
        parse_memory(value)


def _schema_accepts(definition: str, value: Any) -> bool:
    return jsonschema.Draft202012Validator(schema()["$defs"][definition]).is_valid(value)


ZERO_VALUES = {"0h", "0G"}  # patterns allow them; only the parser knows they are zero


@pytest.mark.parametrize(("definition", "good", "bad"), [
    ("runtime", [v for v, _ in RUNTIMES], BAD_RUNTIMES),
    ("memory", [v for v, _ in MEMORIES], BAD_MEMORIES),
])
def test_schema_patterns_agree_with_parsers(definition: str, good: list, bad: list) -> None:
    for value in good:
        assert _schema_accepts(definition, value), value
    for value in bad:
        if value not in ZERO_VALUES:
            assert not _schema_accepts(definition, value), value


# ------------------------------------------------------------------ malformed configs


def test_unknown_nested_key_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "SSH:\n  Hostname: h\nResources:\n  Queue: q\n  Nodess: 2\n")
    problem = only_problem(path)
    assert (problem.file, problem.line, problem.key) == (str(path), 5, "Resources.Nodess")
    assert problem.message == "unknown key 'Nodess' — did you mean 'Nodes'?"


def test_unknown_key_typo_in_queue_reports_both(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", f"UnicoreApiUrl: {UNICORE_URL}\nResources:\n  Queu: batch\n")
    problems = problems_of(path)
    assert [(p.line, p.key, p.message) for p in problems] == [
        (2, "Resources.Queue", "Queue is required for the unicore backend"),
        (3, "Resources.Queu", "unknown key 'Queu' — did you mean 'Queue'?"),
    ]


def test_unknown_key_without_close_match_lists_allowed(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "c.yaml", "Local:\n  Flavour: x\n"))
    assert problem.key == "Local.Flavour" and problem.line == 2
    assert problem.message == "unknown key 'Flavour' (allowed here: WorkDir, KillGrace)"


def test_unknown_top_level_key(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "c.yaml", "Name: x\nresources:\n  Nodes: 1\n"))
    assert (problem.line, problem.key) == (2, "resources")
    assert "did you mean 'Resources'?" in problem.message


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml",
                 "Resources:\n  Nodes: two\n  GPUsPerNode: -1\nExclude: '*.sif'\n")
    problems = problems_of(path)
    assert [(p.line, p.key, p.message) for p in problems] == [
        (2, "Resources.Nodes", "must be an integer ≥ 1, got 'two'"),
        (3, "Resources.GPUsPerNode", "must be an integer ≥ 0, got -1"),
        (4, "Exclude", "must be a list, got '*.sif'"),
    ]


def test_missing_queue_for_cluster_backend(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "SSH:\n  Hostname: h\nResources:\n  Nodes: 1\n")
    problem = only_problem(path)
    assert (problem.line, problem.key) == (3, "Resources.Queue")
    assert problem.message == "Queue is required for the ssh backend"


def test_missing_resources_for_cluster_backend(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "Name: x\nFirecrest:\n  ApiUrl: https://a\n"
                                     "  TokenUrl: https://t\n  Machine: m\n")
    problem = only_problem(path)
    assert (problem.line, problem.key) == (2, "Resources.Queue")
    assert problem.message.startswith("Queue is required for the firecrest backend")


def test_missing_required_nested_key(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "Firecrest:\n  ApiUrl: https://a\n  Machine: m\n"
                                     "Resources:\n  Queue: q\n")
    problem = only_problem(path)
    assert (problem.line, problem.key, problem.message) == (1, "Firecrest.TokenUrl",
                                                            "TokenUrl is required")


def test_two_backends_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", f"UnicoreApiUrl: {UNICORE_URL}\nResources:\n  Queue: q\n"
                                     "SSH:\n  Hostname: h\n")
    problem = only_problem(path)
    assert (problem.line, problem.key) == (4, "SSH")
    assert problem.message.startswith(
        "only one of UnicoreApiUrl, Firecrest, SSH, Local may be given"
    )


def test_apptainer_and_python_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "Environment:\n  Apptainer:\n    Path: i.sif\n  Python: /v\n")
    problem = only_problem(path)
    assert (problem.line, problem.key) == (4, "Environment.Python")
    assert problem.message.startswith("only one of Apptainer, Python may be given")


def test_bad_runtime(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "c.yaml", "Resources:\n  Runtime: 1 fortnight\n"))
    assert (problem.line, problem.key) == (2, "Resources.Runtime")
    assert problem.message.startswith("must be a duration such as 1h30m")
    assert problem.message.endswith("got '1 fortnight'")


def test_zero_runtime(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "c.yaml", "Resources:\n  Runtime: 0h\n"))
    assert (problem.line, problem.key) == (2, "Resources.Runtime")
    assert problem.message == "must be at least 1 second, got '0h'"


def test_bad_memory(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "c.yaml", "Resources:\n  MemoryPerNode: 64 gigs\n"))
    assert (problem.line, problem.key) == (2, "Resources.MemoryPerNode")
    assert problem.message.startswith("must be a size such as 64G")


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "Resources:\n  Queue: batch\n  Nodes: [1, 2\nExclude: []\n")
    problem = only_problem(path)
    assert problem.message.startswith("YAML syntax error")
    assert problem.line == 4 and problem.file == str(path)


def test_yaml_bad_indentation(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "Resources:\n  Queue: batch\n Nodes: 2\n")
    problem = only_problem(path)
    assert problem.message.startswith("YAML syntax error") and problem.line == 3


def test_json_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "c.json", '{\n  "Resources": {\n    "Nodes": 2,\n  }\n}\n')
    problem = only_problem(path)
    assert problem.message.startswith("JSON syntax error") and problem.line == 4


def test_json_config_with_error(tmp_path: Path) -> None:
    path = write(tmp_path, "c.json", json.dumps(
        {"SSH": {"Hostname": "h", "Port": 70000}, "Resources": {"Queue": "q", "QOS": "x"}},
        indent=2,
    ))
    problems = problems_of(path)
    assert [(p.line, p.key, p.message) for p in problems] == [
        (4, "SSH.Port", "must be a port number between 1 and 65535, got 70000"),
        (8, "Resources.QOS", "unknown key 'QOS' — did you mean 'QoS'?"),
    ]


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "# nothing here yet\n")
    problem = only_problem(path)
    assert (problem.message, problem.file, problem.line) == ("the file is empty", str(path), None)
    assert only_problem(write(tmp_path, "e.json", "  \n")).message == "the file is empty"


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "c.yaml", "- Resources\n- Queue\n"))
    assert problem.line == 1 and "top level must be a mapping" in problem.message
    assert "got a list" in problem.message


def test_missing_file_and_bad_extension(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    problem = only_problem(missing)
    assert (problem.file, problem.message) == (str(missing), "backend config file not found")
    problem = only_problem(write(tmp_path, "c.toml", "x = 1\n"))
    assert "unsupported file type '.toml'" in problem.message


def test_duplicate_key(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "c.yaml", "Resources:\n  Nodes: 1\n  Nodes: 2\n"))
    assert (problem.line, problem.key) == (3, "Resources.Nodes")
    assert problem.message == "duplicate key 'Nodes' (first given on line 2)"


def test_enum_and_url_and_variable_name(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "UnicoreApiUrl: juwels\nResources:\n  Queue: q\n"
                                     "Tracking:\n  Mode: ofline\nEnvironment:\n  Variables:\n"
                                     "    1BAD: x\n")
    problems = problems_of(path)
    assert [(p.line, p.key) for p in problems] == [
        (1, "UnicoreApiUrl"), (5, "Tracking.Mode"), (8, "Environment.Variables.1BAD"),
    ]
    assert problems[0].message == "must be an http:// or https:// URL, got 'juwels'"
    assert problems[1].message.endswith("did you mean 'offline'?")
    assert "not a valid environment variable name" in problems[2].message


def test_direct_tracking_on_cluster_needs_uri(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "SSH:\n  Hostname: h\nResources:\n  Queue: q\n"
                                     "Tracking:\n  Mode: direct\n")
    problem = only_problem(path)
    assert (problem.line, problem.key) == (5, "Tracking.Uri")
    assert "compute nodes must reach the tracking server" in problem.message


def test_remote_apptainer_needs_absolute_path(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "Environment:\n  Apptainer:\n    Path: img.sif\n"
                                     "    Type: remote\n")
    problem = only_problem(path)
    assert (problem.line, problem.key) == (3, "Environment.Apptainer.Path")
    assert "absolute path" in problem.message


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "SSH:\n  Hostname: h\n  Prot: 22\nResources:\n"
                                     "  Nodes: 0\n  Runtime: soon\n")
    problems = problems_of(path)
    assert [p.key for p in problems] == [
        "SSH.Prot", "Resources.Queue", "Resources.Nodes", "Resources.Runtime",
    ]
    text = str(UserInputError(problems))
    assert f"{path}:3: SSH.Prot: unknown key 'Prot' — did you mean 'Port'?" in text


# ------------------------------------------------------------------ overrides


def test_apply_overrides_list(tmp_path: Path) -> None:
    cfg = load_backend_config(write(tmp_path, "c.yaml", MANTIK_UNICORE))
    new = apply_overrides(cfg, [
        "Resources.Nodes=4", "Resources.Runtime=2h", "Environment.Variables.FOO=yes",
        "Resources.Reservation=null", "Tracking.Mode=direct", "Tracking.Uri=https://ml.example",
    ])
    assert new.resources["Nodes"] == 4 and new.resources["Runtime"] == 7200
    assert "Reservation" not in new.resources
    assert new.environment["Variables"]["FOO"] == "yes"  # literal text, not YAML's true
    assert new.tracking_mode == "direct" and new.tracking_uri == "https://ml.example"
    assert new.path == cfg.path
    # the original is untouched
    assert cfg.resources["Nodes"] == 2 and cfg.data["Resources"]["Nodes"] == 2
    assert cfg.data["Resources"]["Reservation"] == "my-reservation"
    assert "FOO" not in cfg.data["Environment"]["Variables"]


def test_apply_overrides_dict_deep_merge() -> None:
    cfg = parse_backend_config({"SSH": {"Hostname": "h"}, "Resources": {"Queue": "q", "Nodes": 1}})
    new = apply_overrides(cfg, {"Resources": {"Nodes": 3, "GPUsPerNode": 2},
                                "Environment.Modules": ["CUDA"]})
    assert new.resources == {"Queue": "q", "Nodes": 3, "GPUsPerNode": 2}
    assert new.environment == {"Modules": ["CUDA"]}
    assert cfg.resources == {"Queue": "q", "Nodes": 1}


def test_apply_overrides_invalid(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", MANTIK_UNICORE)
    cfg = load_backend_config(path)
    with pytest.raises(UserInputError) as info:
        apply_overrides(cfg, ["Resources.Nodes=two", "Resources.Queu=x", "Resources.Queue=null"])
    problems = {p.key: p for p in info.value.problems}
    assert set(problems) == {"Resources.Nodes", "Resources.Queu", "Resources.Queue"}
    nodes = problems["Resources.Nodes"]
    assert nodes.message == "must be an integer ≥ 1, got 'two' (override 'Resources.Nodes=two')"
    assert nodes.file == str(path) and nodes.line is None
    assert "did you mean 'Queue'?" in problems["Resources.Queu"].message
    assert problems["Resources.Queue"].message.startswith("Queue is required for the unicore")
    assert cfg.resources["Nodes"] == 2


def test_apply_overrides_malformed_items() -> None:
    cfg = parse_backend_config({"Exclude": ["*.sif"]})
    with pytest.raises(UserInputError) as info:
        apply_overrides(cfg, ["Resources.Nodes", "Exclude.x=1", "=3"])
    messages = [p.message for p in info.value.problems]
    assert messages[0] == "override 'Resources.Nodes' must look like Key.Path=value"
    assert messages[1] == "cannot set Exclude.x: Exclude is a list, not a mapping"
    assert messages[2] == "override '=3' must look like Key.Path=value"


def test_override_keeps_file_lines_for_untouched_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "Resources:\n  Nodes: 1\n")
    cfg = load_backend_config(path)
    with pytest.raises(UserInputError) as info:
        apply_overrides(cfg, ["SSH.Hostname=h"])  # now a cluster config without a Queue
    (problem,) = info.value.problems
    assert (problem.key, problem.line) == ("Resources.Queue", 1)


# ------------------------------------------------------------------ redaction


def test_redacted_hides_secrets_keeps_identity_file() -> None:
    cfg = parse_backend_config({
        "SSH": {"Hostname": "h", "IdentityFile": "~/.ssh/id_secret_key"},
        "Resources": {"Queue": "q"},
        "Environment": {"Variables": {
            "HF_TOKEN": "hf_abc123", "WANDB_API_KEY": "k-456", "DB_PASSWORD": "pw-789",
            "ClientSecret": "cs-000", "TOKENIZERS_PARALLELISM": "false", "PLAIN": "visible",
        }},
        "Tracking": {"Mode": "direct", "Uri": "https://bob:s3cr3t@mlflow.example.org"},
    })
    red = cfg.redacted()
    dumped = json.dumps(red)
    for secret in ("hf_abc123", "k-456", "pw-789", "cs-000", "s3cr3t"):
        assert secret not in dumped
    variables = red["Environment"]["Variables"]
    assert variables["HF_TOKEN"] == variables["WANDB_API_KEY"] == "***"
    assert variables["PLAIN"] == "visible" and variables["TOKENIZERS_PARALLELISM"] == "false"
    assert red["SSH"]["IdentityFile"] == "~/.ssh/id_secret_key"
    assert red["Tracking"]["Uri"] == "https://bob:***@mlflow.example.org"
    assert cfg.data["Environment"]["Variables"]["HF_TOKEN"] == "hf_abc123"  # data unredacted


def test_redacted_keeps_firecrest_token_url() -> None:
    cfg = parse_backend_config({
        "Firecrest": {"ApiUrl": "https://a", "TokenUrl": "https://t/token", "Machine": "m"},
        "Resources": {"Queue": "q"},
    })
    assert cfg.redacted()["Firecrest"]["TokenUrl"] == "https://t/token"


@pytest.mark.parametrize(("name", "secret"), [
    ("password", True), ("Password", True), ("MLFLOW_TRACKING_TOKEN", True), ("apikey", True),
    ("api_key", True), ("ApiKey", True), ("client_secret", True), ("MY_SECRET", True),
    ("TokenUrl", False), ("IdentityFile", False), ("TOKENIZERS_PARALLELISM", False),
    ("Hostname", False),
])
def test_secret_key_names(name: str, secret: bool) -> None:
    assert is_secret_key(name) is secret


# ------------------------------------------------------------------ discovery


def test_find_backend_configs(tmp_path: Path) -> None:
    write(tmp_path, "MLproject", "name: x\nentry_points: {}\n")
    write(tmp_path, "conda.yaml", "name: env\ndependencies: []\n")
    write(tmp_path, "python_env.yaml", "python: '3.11'\n")
    write(tmp_path, "unicore.yaml", MANTIK_UNICORE)
    write(tmp_path, "package.json", '{"name": "x"}')
    write(tmp_path, "broken.yaml", "Resources: [\n")
    write(tmp_path, "list.yml", "- Resources\n")
    write(tmp_path, "notes.txt", "Resources: {}\n")
    write(tmp_path, "backend-configs/ssh.yml", "SSH: {Hostname: h}\nResources: {Queue: q}\n")
    write(tmp_path, "backend-configs/local.json", '{"Local": {}}')
    write(tmp_path, "backend-configs/typo.yaml", "SSH:\n  Hostname: [h\n")  # shown, with its error
    write(tmp_path, "configs/broken.yaml", "a: [\n")  # configs/ may hold other YAML: skipped
    write(tmp_path, "configs/env-only.yaml", "Environment:\n  Modules: [x]\n")
    write(tmp_path, "configs/train.yaml", "lr: 0.1\n")
    write(tmp_path, "other/hidden.yaml", "Resources: {Queue: q}\n")
    found = find_backend_configs(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "unicore.yaml", "backend-configs/local.json", "backend-configs/ssh.yml",
        "backend-configs/typo.yaml", "configs/env-only.yaml",
    ]
    assert only_problem(tmp_path / "backend-configs/typo.yaml").message.startswith("YAML syntax")


def test_find_backend_configs_in_example_project() -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "digits"
    if not example.is_dir():
        pytest.skip("example project not present")
    for path in find_backend_configs(example):
        load_backend_config(path)  # every shipped example config is valid


def test_problem_messages_have_no_raw_jsonschema_text(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "Resources:\n  Nodes: [1, 2, 3]\n  Queue: {a: 1}\n"
                                     "Environment: []\n")
    for problem in problems_of(path):
        assert not re.search(r"is not of type|does not match|\{'", problem.message), problem
