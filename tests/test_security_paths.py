"""Paths from a request never reach a file outside their root (issue 9, findings 1, 2, 4, 9).

Everything goes through the real server with real runs and the real MLflow store:
the artifact tests add files next to a run's real artifacts, as a job could.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from mlflow.tracking import MlflowClient

from .conftest import TERMINAL, submit_run, wait_for_state

CANARY = "canary-7f3a9e outside every root"
UP = "../" * 40  # far enough to reach / from any artifact directory


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A secret file outside the server root and outside the run's artifacts."""
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(CANARY)
    return secret


async def finished(api) -> dict:
    """A real run of the toy project (its artifact: result.txt), ended."""
    run = await submit_run(api, parameters={"steps": 1})
    run = await wait_for_state(api, run["id"], TERMINAL)
    assert run["state"] == "FINISHED", run
    return run


def artifact_dir(run: dict) -> Path:
    from mlflow.utils.file_utils import local_file_uri_to_path

    uri = MlflowClient().get_run(run["mlflow_run_id"]).info.artifact_uri
    path = Path(local_file_uri_to_path(uri))
    assert path.is_dir(), uri
    return path


def encoded(path: str, times: int) -> str:
    """``path`` percent-encoded ``times`` times (the URL layer adds one more)."""
    for _ in range(times):
        path = quote(path, safe="")
    return path


def no_canary(body: object) -> bool:
    return CANARY not in (body.decode("latin-1") if isinstance(body, bytes) else repr(body))


# ------------------------------------------------------------------ 1: artifact download


async def test_encoded_dot_dot_never_reads_outside_the_artifacts(api, toy_project, canary):
    finished_run = await finished(api)
    run_id = finished_run["id"]
    target = UP + str(canary).lstrip("/")
    dotted = target.replace("..", "%2e%2e")
    for path in [target, dotted, encoded(target, 1), encoded(target, 2), encoded(dotted, 1),
                 target.replace("/", "\\"), "result.txt\0" + target, "/" + str(canary)]:
        status, body = await api("GET", f"runs/{run_id}/artifacts/download", path=path)
        assert 400 <= status < 500 and no_canary(body), (path, status, body)
        # A listing of such a path: refused, or (a literal name that does not exist) empty.
        status, body = await api("GET", f"runs/{run_id}/artifacts", path=path)
        assert 400 <= status < 500 or (status, body) == (200, {"artifacts": []}), (path, body)


async def test_symlink_out_of_the_artifacts_is_not_followed(api, toy_project, canary):
    finished_run = await finished(api)
    run_id = finished_run["id"]
    arts = artifact_dir(finished_run)
    (arts / "leak.txt").symlink_to(canary)
    (arts / "outdir").symlink_to(canary.parent, target_is_directory=True)
    for path in ("leak.txt", "outdir/secret.txt"):
        status, body = await api("GET", f"runs/{run_id}/artifacts/download", path=path)
        assert 400 <= status < 500 and no_canary(body), (path, status, body)
    status, body = await api("GET", f"runs/{run_id}/artifacts", path="outdir")
    assert 400 <= status < 500 and "secret.txt" not in repr(body), body
    # The root listing does not offer what it would refuse to open.
    status, listing = await api("GET", f"runs/{run_id}/artifacts")
    assert status == 200
    assert {a["path"] for a in listing["artifacts"]} == {"result.txt"}


async def test_symlinks_inside_the_artifacts_work_and_a_directory_is_a_4xx(api, toy_project):
    finished_run = await finished(api)
    run_id = finished_run["id"]
    arts = artifact_dir(finished_run)
    (arts / "sub").mkdir()
    (arts / "sub" / "inner.txt").write_text("inner")
    (arts / "alias.txt").symlink_to(arts / "result.txt")
    (arts / "subdir").symlink_to("sub", target_is_directory=True)

    status, body = await api("GET", f"runs/{run_id}/artifacts/download", path="alias.txt")
    assert (status, body) == (200, b"label=hello\n")
    status, body = await api("GET", f"runs/{run_id}/artifacts/download", path="subdir/inner.txt")
    assert (status, body) == (200, b"inner")
    for path in ("subdir", "sub"):  # a directory, symlinked or not, is not a file
        status, err = await api("GET", f"runs/{run_id}/artifacts/download", path=path)
        assert status == 400 and "directory" in err["message"], (path, status, err)
    status, listing = await api("GET", f"runs/{run_id}/artifacts", path="subdir")
    assert status == 200 and [a["path"] for a in listing["artifacts"]] == ["subdir/inner.txt"]
    status, listing = await api("GET", f"runs/{run_id}/artifacts")
    entries = {a["path"]: a["is_dir"] for a in listing["artifacts"]}
    assert entries == {"result.txt": False, "alias.txt": False, "sub": True, "subdir": True}


async def test_a_fifo_artifact_is_refused_without_hanging(api, toy_project):
    finished_run = await finished(api)
    os.mkfifo(artifact_dir(finished_run) / "pipe")
    status, err = await api("GET", f"runs/{finished_run['id']}/artifacts/download", path="pipe")
    assert status == 400 and "regular file" in err["message"]


async def test_names_with_percent_escapes_open_the_literal_file(api, toy_project):
    finished_run = await finished(api)
    run_id = finished_run["id"]
    arts = artifact_dir(finished_run)
    (arts / "%2e%2e").mkdir()
    (arts / "%2e%2e" / "a%20b%25.txt").write_text("literal")
    (arts / "..%2f..%2fx").write_text("also literal")

    status, body = await api("GET", f"runs/{run_id}/artifacts/download", path="%2e%2e/a%20b%25.txt")
    assert (status, body) == (200, b"literal")
    status, body = await api("GET", f"runs/{run_id}/artifacts/download", path="..%2f..%2fx")
    assert (status, body) == (200, b"also literal")
    status, listing = await api("GET", f"runs/{run_id}/artifacts", path="%2e%2e")
    assert status == 200 and [a["path"] for a in listing["artifacts"]] == ["%2e%2e/a%20b%25.txt"]
    # Decoded once more, the name would be another file: it is not.
    assert (await api("GET", f"runs/{run_id}/artifacts/download", path="../a b%.txt"))[0] == 400
    assert (await api("GET", f"runs/{run_id}/artifacts/download", path="%2e%2e/a b%.txt"))[0] == 404


# ------------------------------------------------------------------ 9: Content-Disposition


_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf';\s*({_TOKEN})\s*=\s*("(?:[^"\\]|\\.)*"|{_TOKEN})\s*')


def parse_disposition(header: str) -> tuple[str, dict[str, str]]:
    """RFC 6266: a type, then ``; name=token-or-quoted-string`` parameters, nothing else."""
    kind, _, rest = header.partition(";")
    rest = ";" + rest
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        assert match, f"not a parameter at {rest[pos:]!r} in {header!r}"
        name, value = match.group(1).lower(), match.group(2)
        assert name not in params, f"{name} twice in {header!r}"
        params[name] = re.sub(r"\\(.)", r"\1", value[1:-1]) if value.startswith('"') else value
        pos = match.end()
    return kind.strip(), params


async def test_content_disposition_is_rfc6266_encoded(api, jp_fetch, toy_project):
    finished_run = await finished(api)
    arts = artifact_dir(finished_run)
    names = ['quo"te; filename=evil.sh', "grüße €.txt", "semi;colon,comma.txt", "plain.txt"]
    for name in names:
        (arts / name).write_text(name)
    for name in names:
        resp = await jp_fetch("hpcml", "api", "runs", finished_run["id"], "artifacts", "download",
                              params={"path": name})
        assert resp.body == name.encode()
        header = resp.headers["Content-Disposition"]
        assert header.isascii(), header
        kind, params = parse_disposition(header)
        assert kind == "attachment" and set(params) == {"filename", "filename*"}, header
        charset, _, encoded_name = params["filename*"].partition("''")
        assert charset.upper() == "UTF-8"
        assert unquote(encoded_name, encoding="utf-8", errors="strict") == name  # what browsers use
        fallback = params["filename"]  # for old clients: ASCII, same length, unsafe characters gone
        assert fallback.isascii() and len(fallback) == len(name) and '"' not in fallback
        if name.isascii() and '"' not in name:
            assert fallback == name


# ------------------------------------------------------------------ 2: saving a config

OUTSIDE_CONFIG = "# canary-7f3a9e outside every root\nLocal: {}\nResources:\n  Nodes: 1\n"


@pytest.fixture
def outside_config(tmp_path: Path) -> Path:
    """A valid backend config outside the server root (the server root is jp_root_dir)."""
    path = tmp_path / "elsewhere" / "cluster.yaml"
    path.parent.mkdir()
    path.write_text(OUTSIDE_CONFIG)
    return path


async def save(api, path: str, project: str = "toy", nodes: int = 2) -> tuple[int, dict]:
    return await api("POST", "project/config", {
        "project": project, "path": path, "sections": {"Resources": {"Nodes": nodes}},
    })


async def test_config_save_never_writes_outside_the_project(api, toy_project, jp_root_dir,
                                                           outside_config):
    (toy_project / "evil.yaml").symlink_to(outside_config)
    (toy_project / "configs").symlink_to(outside_config.parent, target_is_directory=True)
    sibling = jp_root_dir / "other"
    sibling.mkdir()
    (sibling / "local.yaml").write_text(OUTSIDE_CONFIG)
    for path in ("evil.yaml", "configs/cluster.yaml", "../other/local.yaml",
                 "backend-configs/../../other/local.yaml", str(outside_config), "local.yaml\0x"):
        status, answer = await save(api, path)
        assert 400 <= status < 500, (path, status, answer)
        assert no_canary(answer), answer
    assert outside_config.read_text() == OUTSIDE_CONFIG
    assert (sibling / "local.yaml").read_text() == OUTSIDE_CONFIG
    assert {p.name for p in outside_config.parent.iterdir()} == {"cluster.yaml"}  # no temp file
    assert (toy_project / "evil.yaml").is_symlink()


async def test_project_description_does_not_show_outside_files(api, toy_project, outside_config):
    (toy_project / "evil.yaml").symlink_to(outside_config)
    (toy_project / "configs").symlink_to(outside_config.parent, target_is_directory=True)
    status, project = await api("GET", "project", path="toy")
    assert status == 200 and no_canary(project), project
    configs = {c["path"]: c for c in project["backend_configs"]}
    assert configs["local.yaml"]["config"] is not None  # the project's own config is shown
    for path in ("evil.yaml", "configs/cluster.yaml"):
        assert configs[path]["config"] is None and configs[path]["connection"] is None
        assert "outside" in configs[path]["problems"][0]["message"]


async def test_a_symlinked_config_inside_the_project_is_saved_at_its_target(api, toy_project):
    (toy_project / "backend-configs").mkdir()
    (toy_project / "backend-configs" / "alias.yaml").symlink_to("../local.yaml")
    status, answer = await save(api, "backend-configs/alias.yaml", nodes=3)
    assert status == 200, answer
    assert (toy_project / "backend-configs" / "alias.yaml").is_symlink()
    assert "Nodes: 3" in (toy_project / "local.yaml").read_text()
    assert sorted(p.name for p in toy_project.iterdir() if p.name.startswith(".")) == []


async def test_a_config_that_is_not_a_regular_file_is_refused(api, toy_project):
    os.mkfifo(toy_project / "pipe.yaml")
    status, answer = await save(api, "pipe.yaml")
    assert 400 <= status < 500, answer


# ------------------------------------------------------------------ 4: submissions

# A config outside the root whose content would show up in a validation message.
LEAKY_CONFIG = "Resourcse:\n  canary-7f3a9e: outside every root\n"


async def run_count(api) -> int:
    status, listing = await api("GET", "runs")
    assert status == 200
    return listing["total"]


async def test_a_submission_cannot_name_a_config_outside_the_root(api, toy_project, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "leaky.yaml").write_text(LEAKY_CONFIG)
    (toy_project / "leak.yaml").symlink_to(outside / "leaky.yaml")
    (toy_project / "shared").symlink_to(outside, target_is_directory=True)
    before = await run_count(api)
    answers = {}
    for config in [str(outside / "leaky.yaml"), str(outside / "missing.yaml"),
                   "../../elsewhere/leaky.yaml", "../../elsewhere/missing.yaml",
                   "leak.yaml", "shared/leaky.yaml"]:
        status, answer = await api("POST", "runs", {"project": "toy", "backend_config": config})
        assert status == 400 and no_canary(answer) and "Resourcse" not in repr(answer), answer
        assert "outside the server's root" in answer["message"], answer
        answers[config] = answer["message"].replace(config, "<config>")
    # Whether the outside file exists is not told either.
    assert answers[str(outside / "leaky.yaml")] == answers[str(outside / "missing.yaml")]
    assert answers["../../elsewhere/leaky.yaml"] == answers["../../elsewhere/missing.yaml"]
    assert await run_count(api) == before
    # A config inside the root, even outside the project, is fine (and found by its real place).
    (toy_project.parent / "shared-configs").mkdir()
    (toy_project.parent / "shared-configs" / "c.yaml").write_text("Local: {}\n")
    run = await submit_run(api, parameters={"steps": 1}, backend_config="../shared-configs/c.yaml")
    assert run["config_path"] == str((toy_project.parent / "shared-configs" / "c.yaml").resolve())


async def test_project_lookup_stops_at_the_server_root(api, jp_root_dir, tmp_path):
    # An MLproject above the server root must not make a plain folder inside it a project.
    assert jp_root_dir.parent == tmp_path
    (tmp_path / "MLproject").write_text("name: ancestor\nentry_points:\n  main:\n    command: id\n")
    (jp_root_dir / "plain").mkdir()
    for path in ("plain", ""):
        status, answer = await api("POST", "runs", {"project": path})
        assert status == 400 and "ancestor" not in repr(answer), answer
        assert "no MLproject" in answer["message"]
        status, answer = await api("GET", "project", path=path)
        assert status == 400 and "ancestor" not in repr(answer), answer
    # Nor may a project folder or its MLproject link out of the root.
    (tmp_path / "ext").mkdir()
    (tmp_path / "ext" / "MLproject").write_text(
        "name: ext\nentry_points:\n  main:\n    command: id\n")
    (jp_root_dir / "linked").symlink_to(tmp_path / "ext", target_is_directory=True)
    (jp_root_dir / "half").mkdir()
    (jp_root_dir / "half" / "MLproject").symlink_to(tmp_path / "ext" / "MLproject")
    for path in ("linked", "half"):
        status, answer = await api("POST", "runs", {"project": path})
        assert status == 400 and "outside" in answer["message"], answer
        status, answer = await api("GET", "project", path=path)
        assert status == 400 and "outside" in answer["message"], answer
    assert await run_count(api) == 0


async def test_rerun_from_the_lab_stays_inside_the_root(api, jp_serverapp, toy_project, tmp_path):
    """A run the CLI or Python API made of a project outside the root (they are not
    confined) cannot be re-run from the lab; one whose config now links out neither."""
    import shutil

    from jupyterlab_hpcml.engine.requests import SubmitRequest

    outside = tmp_path / "cli-project"
    shutil.copytree(toy_project, outside)
    engine = jp_serverapp.web_app.settings["hpcml_engine"]
    cli_run = await engine.runs.submit(SubmitRequest(project=str(outside), parameters={"steps": 1},
                                                     backend_config="local.yaml"))
    status, answer = await api("POST", f"runs/{cli_run.id}/rerun", {})
    assert status == 400 and "outside" in answer["message"], answer

    run = await submit_run(api, parameters={"steps": 1}, backend_config="local.yaml")
    (toy_project / "local.yaml").unlink()
    (toy_project / "local.yaml").symlink_to(outside / "local.yaml")
    status, answer = await api("POST", f"runs/{run['id']}/rerun", {})
    assert status == 400 and "outside" in answer["message"], answer
    (toy_project / "local.yaml").unlink()
    shutil.copy(outside / "local.yaml", toy_project / "local.yaml")
    status, answer = await api("POST", f"runs/{run['id']}/rerun", {})
    assert status == 201, answer
    for r in (cli_run.id, run["id"], answer["id"]):
        await wait_for_state(api, r, TERMINAL)


async def test_credentials_for_a_config_outside_the_root_are_refused(api, toy_project, tmp_path,
                                                                   lab_credentials):
    outside = tmp_path / "fc.yaml"
    outside.write_text("Firecrest:\n  ApiUrl: http://127.0.0.1:9/api\n"
                       "  TokenUrl: http://127.0.0.1:9/token\n  Machine: m\n"
                       "Resources:\n  Queue: normal\n")
    status, answer = await api("PUT", "credentials", {
        "project": "toy", "backend_config": str(outside),
        "values": {"client_id": "a", "client_secret": "b"}})
    assert status == 400 and "outside" in answer["message"], answer
    assert lab_credentials.known() == []
