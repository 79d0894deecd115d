"""UNICORE code upload through the user's HOME storage as a content-addressed object store:
only what HOME lacks is uploaded, UNICORE copies each job's code in from there (``Imports``
``file://…``), so a second run of unchanged code sends only its per-run files. The real
pyunicore against the loopback UNICORE/X (tests/servers/unicore_server.py), jobs executed."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import httpx
import pytest
import yaml

from jupyterlab_hpcml.backends.unicore import STORE_DIR, UnicoreBackend

from .conftest import TERMINAL, submit_run, wait_for_state
from .servers.unicore_server import UnicoreServer

USER = "demouser"
PASSWORD = "pw-cas-7d31"
HOME_PUT = "PUT /storages/HOME/files/{path}"
RENAME = "POST /storages/HOME/actions/rename"
JOB_PUT = "PUT /storages/{id}/files/{path}"
CHECK = """\
import hashlib, os, pathlib
p = pathlib.Path('data')
print(sorted(str(f) for f in p.rglob('*') if f.is_file()))
print(hashlib.sha256((p / 'blob.bin').read_bytes()).hexdigest())
"""


@pytest.fixture
def unicore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    server = UnicoreServer(tmp_path / "unicore", users={USER: PASSWORD}).start()
    monkeypatch.setenv("MANTIK_UNICORE_USERNAME", USER)
    monkeypatch.setenv("MANTIK_UNICORE_PASSWORD", PASSWORD)
    monkeypatch.setattr(UnicoreBackend, "http_timeout", 3.0)
    monkeypatch.setattr(UnicoreBackend, "retry_backoff", (0.05, 0.1, 0.2))
    yield server
    server.stop()


@pytest.fixture
def project(toy_project: Path, unicore: UnicoreServer) -> Path:
    cfg = {"UnicoreApiUrl": unicore.base_url,
           "Resources": {"Queue": "batch", "Runtime": "10m", "Account": "proj1"}}
    (toy_project / "unicore.yaml").write_text(yaml.safe_dump(cfg))
    nested = toy_project / "data" / "deep" / "deeper"
    nested.mkdir(parents=True)
    (nested / "leaf.txt").write_text("leaf\n")
    (toy_project / "data" / "top.txt").write_text("top\n")
    (toy_project / "data" / "blob.bin").write_bytes(os.urandom(300_000))
    (toy_project / "data" / "same.txt").write_text("leaf\n")  # a content twice: stored once
    (toy_project / "check.py").write_text(CHECK)
    script = toy_project / "check.sh"
    script.write_text("#!/bin/sh\necho executable ok\nexec python check.py\n")
    script.chmod(0o755)
    mlproject = toy_project / "MLproject"
    mlproject.write_text(mlproject.read_text() + '  check:\n    command: "./check.sh"\n')
    return toy_project


def project_files(project: Path) -> set[str]:
    return {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()}


def store(server: UnicoreServer) -> Path:
    return server.state.root / "home" / USER / STORE_DIR


async def run_check(api, server: UnicoreServer) -> tuple[dict, list[str]]:
    status, _ = await api("GET", "experiments")  # MLflow opened before the submission's clock
    assert status == 200
    run = await submit_run(api, backend_config="unicore.yaml", entry_point="check")
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=60)
    job = server.state.jobs[run["backend_job_id"]]
    out = (job.workdir / ".hpcml" / "stdout.log").read_text().strip().splitlines()
    return run, out


def expect_output(project: Path, out: list[str]) -> None:
    assert out[0] == "executable ok", out  # the mode came back after the copy
    assert out[-2] == str(["data/blob.bin", "data/deep/deeper/leaf.txt", "data/same.txt",
                           "data/top.txt"])
    assert out[-1] == hashlib.sha256((project / "data" / "blob.bin").read_bytes()).hexdigest()


def home_puts(server: UnicoreServer) -> int:
    return server.state.requests[HOME_PUT]


async def test_a_second_run_of_unchanged_code_uploads_only_the_per_run_files(api, project, unicore):
    files = project_files(project)
    contents = {hashlib.sha256(Path(project, f).read_bytes()).hexdigest() for f in files}
    run, out = await run_check(api, unicore)
    assert run["state"] == "FINISHED", run
    expect_output(project, out)
    assert home_puts(unicore) == len(contents) == len(files) - 1  # same.txt = leaf.txt
    assert unicore.state.requests[RENAME] == len(contents)
    assert {p.name for p in store(unicore).iterdir() if p.is_file()} == contents
    first_bytes = unicore.state.bytes_in[HOME_PUT]

    unicore.state.reset_counts()
    uploaded = len(unicore.state.uploads)
    run, out = await run_check(api, unicore)
    assert run["state"] == "FINISHED", run
    expect_output(project, out)
    assert home_puts(unicore) == 0 and unicore.state.requests[RENAME] == 0
    sent = [path for _, path in unicore.state.uploads[uploaded:]]
    assert sent and not set(sent) & files, sent  # job.sh, env.sh, the offline store: per run
    assert unicore.state.bytes_in[JOB_PUT] < 20_000 < 300_000 < first_bytes
    imports = unicore.state.submitted_descriptions[-1]["Imports"]
    assert sorted(i["To"] for i in imports) == sorted(files)
    assert all(i["From"].startswith(f"file://{store(unicore)}/") for i in imports)


async def test_a_removed_or_truncated_object_is_sent_again(api, project, unicore):
    run, _ = await run_check(api, unicore)
    assert run["state"] == "FINISHED", run
    blob = hashlib.sha256((project / "data" / "blob.bin").read_bytes()).hexdigest()
    top = hashlib.sha256((project / "data" / "top.txt").read_bytes()).hexdigest()
    (store(unicore) / top).unlink()
    (store(unicore) / blob).write_bytes(b"half")  # e.g. a copy cut short by hand
    unicore.state.reset_counts()
    run, out = await run_check(api, unicore)
    assert run["state"] == "FINISHED", run
    expect_output(project, out)
    assert home_puts(unicore) == 2 and unicore.state.requests[RENAME] == 2


async def test_a_lost_rename_answer_is_looked_at_not_failed(api, project, unicore):
    """UNICORE renames with the TSI's `mv -f`: sent again after its answer was lost it would
    fail (the source is gone). The client looks at the target instead."""
    unicore.state.lost_answers.add("drop", path=r"/storages/HOME/actions/rename$", method="POST")
    run, out = await run_check(api, unicore)
    assert run["state"] == "FINISHED", run
    expect_output(project, out)
    assert unicore.state.lost_answers.fired["drop"] == 1
    contents = len(project_files(project)) - 1
    assert unicore.state.requests[RENAME] == contents  # none sent twice
    assert not any((store(unicore) / ".incoming").iterdir())


async def test_without_a_home_storage_each_job_gets_every_file(api, project, unicore):
    unicore.state.home_storage = False
    run, out = await run_check(api, unicore)
    assert run["state"] == "FINISHED", run
    expect_output(project, out)
    assert "Imports" not in unicore.state.submitted_descriptions[-1]
    sent = {path for _, path in unicore.state.uploads}
    assert project_files(project) <= sent


def test_the_server_keeps_home_and_stages_in_as_unicore_does(unicore, tmp_path):
    """The loopback server's storage and stage-in behaviour, through pyunicore."""
    from pyunicore.client import Client, Job, Transport
    from pyunicore.credentials import UsernamePassword

    client = Client(Transport(UsernamePassword(USER, PASSWORD)), unicore.base_url)
    storages = client.get_storages()
    assert [s.resource_url.rsplit("/", 1)[-1] for s in storages] == ["HOME"]
    home = storages[0]
    mount = home.properties["mountPoint"]
    assert mount.endswith("/") and "action:rename" in home.links
    home.put(b"hello\n", "a/one.txt")
    home.rename("a/one.txt", "a/two.txt")
    assert home.stat("a/two.txt").properties["size"] == 6
    with pytest.raises(httpx.HTTPError, match=r"^500 .*Error handling action: 'rename'"):
        home.rename("a/one.txt", "a/three.txt")  # the source is gone: mv fails
    with pytest.raises(httpx.HTTPError, match=r"^404 Server Error: Not Found"):
        home.stat("a/missing.txt")  # no JSON body: pyunicore shows the reason phrase

    desc = {"Executable": "cat", "Arguments": ["in/copy.txt"], "haveClientStageIn": "true",
            "Imports": [{"From": f"file://{mount}a/two.txt", "To": "in/copy.txt"}]}
    def ended(job: Job) -> dict:
        for _ in range(200):
            props = Job(client.transport, job.resource_url, cache_time=0).properties
            if props["status"] in ("SUCCESSFUL", "FAILED"):
                return props
            time.sleep(0.05)
        raise AssertionError(props)

    job = client.new_job(desc, autostart=False)
    job.start()  # during stage-in: remembered, the job goes on once staged
    assert ended(job)["status"] == "SUCCESSFUL"
    assert job.working_dir.stat("in/copy.txt").properties["size"] == 6

    bad = client.new_job({**desc, "Imports": [{"From": f"file://{mount}nope", "To": "x"}]},
                         autostart=False)
    props = ended(bad)
    assert props["status"] == "FAILED"
    assert props["statusMessage"].startswith("Staging in failed. Reason: Could not copy")
