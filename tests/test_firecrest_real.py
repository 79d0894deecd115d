"""The FirecREST backend where the real FirecREST v2 differs from a naive server: the test
server (tests/servers/firecrest_server.py) imitates each difference, quoting the real
server's code, and the real pyfirecrest client talks to it on loopback (never patched).

Backend-level tests drive ``FirecrestBackend`` directly; engine-level ones go through
``Engine`` (the same RunService the lab's handlers use) with no poller, so that the test
decides when a poll happens."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest
import yaml

from jupyterlab_hpcml.backends.base import JobRef, PreparedJob
from jupyterlab_hpcml.backends.firecrest import FirecrestBackend, ls_name
from jupyterlab_hpcml.core.errors import UserInputError
from jupyterlab_hpcml.core.snapshots import Snapshot
from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine import job_context
from jupyterlab_hpcml.engine.models import RunRecord
from jupyterlab_hpcml.engine.service import Engine

from .firecrest_fixtures import config, request, serve_firecrest
from .servers.firecrest_server import USER, FirecrestServer

SECRET = "canary-fc-real-5b0c2f-secret"  # the OIDC client secret
TOKEN = "canary-tracking-token-9e41d7"  # a job secret: the MLflow tracking token
SUBMIT = "POST /compute/{system}/jobs"


@pytest.fixture
def firecrest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    yield from serve_firecrest(tmp_path, monkeypatch, SECRET)


@pytest.fixture
def backend(firecrest: FirecrestServer, tmp_path: Path) -> FirecrestBackend:
    """A backend on its own (its HTTP client goes with the test's event loop)."""
    b = FirecrestBackend(config(firecrest), tmp_path / "data")
    b.retry_backoff = (0.05,)
    return b


def record(run_id: str, **fields) -> RunRecord:
    return RunRecord(id=run_id, name="n", project_path="/p", project_name="p", entry_point="main",
                     command="true", backend="firecrest", **fields)


async def prepared(backend: FirecrestBackend, run_id: str, tmp_path: Path) -> RunRecord:
    empty = Snapshot(id="empty", files=[], object_dir=tmp_path)
    prep = await backend.prepare(job_context.context(record(run_id), backend.config), empty)
    return record(run_id, run_dir=prep.run_dir)


def job(backend: FirecrestBackend, run: RunRecord, command: str = "true",
        env: dict[str, str] | None = None) -> PreparedJob:
    """What submit takes for a prepared run: its context with ``command`` and ``env``."""
    run = run.model_copy(update={"command": command})
    return PreparedJob(job_context.context(run, backend.config, env=env), run.run_dir or "")


async def until_ended(backend: FirecrestBackend, run: RunRecord, job_id: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        status = (await backend.poll([JobRef(run.id, job_id, run.run_dir or "")])).get(job_id)
        if status is not None and status.state.terminal:
            return status
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.2)


def cluster_path(server: FirecrestServer, path: str) -> Path:
    return Path(path)  # the test cluster's paths are this machine's paths


# ---------------------------------------------------------------- the engine on the test server


@pytest.fixture
def project(tmp_path: Path, firecrest: FirecrestServer) -> Path:
    p = tmp_path / "proj"
    p.mkdir()
    (p / "MLproject").write_text(
        "name: real\nentry_points:\n"
        "  main:\n    command: python job.py\n"
        "  fail:\n    parameters: {code: {type: int, default: 7}}\n"
        "    command: \"python -c 'import sys; sys.exit({code})'\"\n"
        "  sleep:\n"
        "    command: \"python -c 'import time; print(\\\"up\\\", flush=True); time.sleep(600)'\"\n"
    )
    (p / "job.py").write_text(
        "import mlflow, os\n"
        "with mlflow.start_run():\n"
        "    mlflow.log_metric('loss', 0.5, step=1)\n"
        "    for name in ['plain.txt', 'über.txt', 'dïr/çà.txt', \"it's.txt\"]:\n"
        "        mlflow.log_text('content of ' + name, name)\n"
    )
    (p / "firecrest.yaml").write_text(yaml.safe_dump(config(firecrest)))
    return p


async def engine_run(engine: Engine, project: Path, timeout: float = 90, **req) -> RunRecord:
    run = await engine.runs.submit(request(project, **req))
    deadline = time.monotonic() + timeout
    while not run.state.terminal:
        assert time.monotonic() < deadline, run
        await asyncio.sleep(0.3)
        await engine.runs.refresh()
        run = await engine.runs.get(run.id)
    return run


@pytest.mark.parametrize(("override", "slurm_says"), [
    ("Resources.Queue=nosuch", "Invalid partition name specified"),
    ("Resources.MemoryPerNode=512G", "Requested node configuration is not available"),
])
async def test_sbatch_rejection_fails_the_run_at_once_with_slurms_message(
    hpcml_data, project, firecrest, override, slurm_says
):
    engine = Engine(data_dir=hpcml_data)
    try:
        run = await engine_run(engine, project, overrides=[override])
    finally:
        await engine.close()
    assert run.state == RunState.FAILED
    assert [c.state for c in run.state_history] == [RunState.SUBMITTING, RunState.FAILED]
    message = run.state_history[-1].message or ""
    assert slurm_says in message and "Slurm rejected the job" in message, message
    assert firecrest.state.requests[SUBMIT] == 1  # never sent twice
    # The job's secrets file (tracking token) is not left behind.
    assert not list((firecrest.state.scratch / USER / "hpcml" / ".secrets").glob("*.env"))


async def test_a_script_sbatch_refuses_is_reported_not_retried(backend, firecrest, tmp_path,
                                                                monkeypatch):
    # Real FirecREST: "This does not look like a batch script" is an HTTP 500 like any sbatch error.
    import jupyterlab_hpcml.backends.batchscript as batchscript
    from jupyterlab_hpcml.backends.firecrest import SubmitRejected

    run = await prepared(backend, "badscript1", tmp_path)
    # Our renderer never writes such a script: one in its place.
    monkeypatch.setattr(batchscript, "render_batch_script", lambda *a, **k: "echo no shebang\n")
    with pytest.raises(SubmitRejected, match="does not look like a batch script"):
        await backend.submit(job(backend, run))
    assert firecrest.state.requests[SUBMIT] == 1


async def test_cancelling_a_job_that_ended_by_itself_keeps_its_own_end(hpcml_data, project,
                                                                        firecrest):
    engine = Engine(data_dir=hpcml_data)
    try:
        run = await engine.runs.submit(request(project, entry_point="fail"))
        job = firecrest.state.jobs[run.backend_job_id]
        deadline = time.monotonic() + 60
        while not (job.run and job.run.done):  # ended on the cluster; no poll has seen it yet
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        run = await engine.runs.cancel(run.id)  # the server answers HTTP 500 "already completing"
        assert (run.state, run.exit_code) == (RunState.FAILED, 7), run.state_history
        assert not run.cancel_requested
        await engine.runs.refresh()
        run = await engine.runs.get(run.id)
        assert (run.state, run.exit_code) == (RunState.FAILED, 7)
        assert RunState.CANCELLED not in [c.state for c in run.state_history]
        assert engine.tracker.client.get_run(run.mlflow_run_id).info.status == "FAILED"
    finally:
        await engine.close()


async def test_cancel_of_a_job_slurm_never_had_is_not_an_error(backend, firecrest, tmp_path):
    run = await prepared(backend, "ghost1", tmp_path)
    run = run.model_copy(update={"backend_job_id": "424242"})
    status = await backend.cancel(run.job_ref())  # HTTP 500 "Invalid job id specified"
    assert status is not None and status.state == RunState.FAILED
    assert "no longer known" in (status.message or "")


async def test_artifacts_with_non_ascii_names_are_all_copied(hpcml_data, project, firecrest):
    engine = Engine(data_dir=hpcml_data)
    engine.runs.final_sync_patience = 0.0  # a failing final copy would end the run at once
    try:
        run = await engine_run(engine, project)
        assert (run.state, run.exit_code) == (RunState.FINISHED, 0), run.state_history
        arts = engine.tracker.client.list_artifacts(run.mlflow_run_id)
        top = sorted(a.path for a in arts)
        inner = [a.path for a in engine.tracker.client.list_artifacts(run.mlflow_run_id, "dïr")]
        # "it's.txt" cannot be fetched through FirecREST (see the quote test): left out, alone.
        assert top == ["dïr", "plain.txt", "über.txt"] and inner == ["dïr/çà.txt"], (top, inner)
        local = engine.tracker.client.download_artifacts(run.mlflow_run_id, "über.txt")
        assert Path(local).read_text() == "content of über.txt"
        assert not any("incomplete" in (c.message or "") for c in run.state_history)
    finally:
        await engine.close()


def test_ls_names_are_decoded():
    assert ls_name("\\303\\274ber.txt") == "über.txt"
    assert ls_name("d\\303\\257r/\\303\\247\\303\\240.txt") == "dïr/çà.txt"
    assert ls_name('a\\"b/it\'s "x".txt') == 'a"b/it\'s "x".txt'  # header keeps \", a name not
    assert ls_name("tab\\there") == "tab\there" and ls_name("plain.txt") == "plain.txt"
    assert ls_name("\\377bad") == "\\377bad"  # not UTF-8: as FirecREST spelled it


async def test_listing_decodes_names_and_survives_unreadable_subdirectories(backend, firecrest,
                                                                            tmp_path):
    run = await prepared(backend, "listing1", tmp_path)
    root = cluster_path(firecrest, run.run_dir)
    (root / "über").mkdir()
    (root / "über" / "ça va.txt").write_text("x")
    (root / "it's.txt").write_text("quote")
    (root / "locked").mkdir()
    (root / "locked" / "hidden.txt").write_text("secret")
    (root / "locked").chmod(0)
    try:
        files = {f.path for f in await backend.list_files(run.job_ref())}
    finally:
        (root / "locked").chmod(0o755)
    assert {"über", "über/ça va.txt", "it's.txt", "locked"} <= files
    assert "locked/hidden.txt" not in files


async def test_a_quote_in_a_path_is_a_clear_error_not_unavailable(backend, firecrest, tmp_path):
    run = await prepared(backend, "quote1", tmp_path)
    (cluster_path(firecrest, run.run_dir) / "it's.txt").write_text("quote")
    # What the real server does with such a path: its shell command fails, HTTP 500.
    from firecrest.FirecrestException import FirecrestException

    with pytest.raises(FirecrestException) as raw:
        await backend.client().stat("cluster", f"{run.run_dir}/it's.txt")
    answer = raw.value.responses[-1]
    assert answer.status_code == 500 and "Unterminated quoted string" in answer.json()["message"]
    for call in (backend.read(run.job_ref(), "it's.txt", 0, 100),
                 backend.fetch(run.job_ref(), "it's.txt", tmp_path / "x")):
        with pytest.raises(UserInputError, match="single quotes"):
            await call
    cfg = config(firecrest)
    cfg["Firecrest"]["WorkDir"] = "/scratch/it's"
    other = FirecrestBackend(cfg, tmp_path / "data2")
    try:
        with pytest.raises(UserInputError) as err:
            await other.base_dir()
        assert err.value.problems[0].key == "Firecrest.WorkDir"
    finally:
        await other.close()


async def test_following_a_log_with_multibyte_characters_is_exact(backend, firecrest, tmp_path):
    run = await prepared(backend, "utf8log1", tmp_path)
    path = cluster_path(firecrest, run.run_dir) / "log.txt"
    line = "step {:05d} ✓ naïve Grüße 数据 🚀 loss=0.5\n"
    written = b""
    got = b""
    offset = 0
    with open(path, "wb") as f:
        for i in range(400):  # the job appends while the lab follows
            chunk = line.format(i).encode()
            f.write(chunk)
            f.flush()
            written += chunk
            if i % 37 == 0:
                c = await backend.read(run.job_ref(), "log.txt", offset, 1000)
                got += c.data
                offset = c.next_offset
    while offset < len(written):
        c = await backend.read(run.job_ref(), "log.txt", offset, 777)
        assert c.data, (offset, len(written))
        got += c.data
        offset = c.next_offset
    assert got == written


async def test_large_files_are_read_in_pieces_exactly(backend, firecrest, tmp_path):
    run = await prepared(backend, "bigread1", tmp_path)
    path = cluster_path(firecrest, run.run_dir) / "big.txt"
    text = "".join(f"{i:07d} äöü €uro 𝄞 ok\n" for i in range(300_000)).encode()  # ~9 MiB
    path.write_bytes(text)
    got = b""
    offset = 0
    reads = 0
    while offset < len(text):  # the engine may ask for more than the server's 5 MiB limit
        c = await backend.read(run.job_ref(), "big.txt", offset, 8 << 20)
        assert c.data and c.size == len(text)
        got += c.data
        offset = c.next_offset
        reads += 1
    assert got == text and reads < 40
    mib = 1 << 20
    for start in (1, 2, mib, mib + 1, len(text) - 5_000_001, len(text) - 3):  # mid-character too
        c = await backend.read(run.job_ref(), "big.txt", start, 100_000)
        assert c.data == text[start: start + len(c.data)]
        assert len(c.data) >= min(1000, len(text) - start - 3)


async def test_invalid_utf8_keeps_offsets_moving(backend, firecrest, tmp_path):
    run = await prepared(backend, "binary1", tmp_path)
    root = cluster_path(firecrest, run.run_dir)
    small = b"ok \xff\xfe junk \xc3 cut \xe2\x82 end\n" * 100
    (root / "small.bin").write_bytes(small)
    big = (b"line \xff\x80 of junk \xe2\x82\xac\n" * 200_000)  # > DOWNLOAD_LIMIT: lossy but moving
    (root / "big.bin").write_bytes(big)
    # Cut characters (one U+FFFD for two bytes): offsets drift, but reads still move on.
    cut = b"abc \xe2\x82 def \xf0\x9f\x9a xyz\n" * 200_000
    (root / "cut.bin").write_bytes(cut)
    for name, data, exact in (("small.bin", small, True), ("big.bin", big, False),
                              ("cut.bin", cut, None)):
        got, offset, reads = b"", 0, 0
        while offset < len(data):
            c = await backend.read(run.job_ref(), name, offset, 300_000)
            assert c.data and c.next_offset == offset + len(c.data)
            got += c.data
            offset = c.next_offset
            reads += 1
        assert len(got) == len(data) and reads < 100
        if exact:
            assert got == data
        elif exact is False:
            assert got.replace(b"?", b"") == data.replace(b"\xff", b"").replace(b"\x80", b"")


async def test_job_environment_with_nasty_values_and_a_secret(backend, firecrest, tmp_path):
    firecrest.state.queue_delay = 1.5  # pending for a while: look at the secrets file meanwhile
    run = await prepared(backend, "envjob1", tmp_path)
    env = {
        "A_COMMA": "x,y,HPCML_RUN_ID=evil", "B_QUOTE": "it's", "C_DQ": 'say "hi", then go',
        "D_NEWLINE": "line1\nline2", "E_DOLLAR": "$HOME `id` \\n", "HPCML_RUN_ID": run.id,
        "MLFLOW_TRACKING_TOKEN": TOKEN,
    }
    names = sorted(env)
    dump = ("import json, os; "
            f"json.dump({{k: os.environ.get(k) for k in {names!r}}}, open('env.json', 'w'))")
    job_id, _ = await backend.submit(job(backend, run, f"python -c \"{dump}\"", env))

    secrets = firecrest.state.scratch / USER / "hpcml" / ".secrets"
    secret_file = secrets / f"{run.id}.env"
    modes = [stat.S_IMODE(p.stat().st_mode) if p.exists() else None for p in (secrets, secret_file)]
    status = await until_ended(backend, run, job_id)
    assert status.state == RunState.FINISHED, status
    dumped = Path(run.run_dir) / "env.json"
    assert json.loads(dumped.read_text()) == env
    dumped.unlink()  # holds the token by design; nothing else may
    assert modes == [0o700, 0o600]  # while the job was pending
    # The secret never was on a command line on the login node, nor in the job's request or
    # script, and its file is gone once the job has read it.
    lines = firecrest.state.command_lines
    assert lines and not any(TOKEN in ln for ln in lines)
    sent = firecrest.state.submitted_bodies[-1]["job"]
    assert TOKEN not in json.dumps(sent) and "env" not in sent
    assert not secret_file.exists()
    for p in firecrest.state.root.rglob("*"):
        if p.is_file():
            assert TOKEN.encode() not in p.read_bytes(), p


async def test_a_job_killed_by_a_signal_gets_128_plus_n(hpcml_data, project, firecrest):
    engine = Engine(data_dir=hpcml_data)
    try:
        run = await engine.runs.submit(request(project, entry_point="sleep"))
        job = firecrest.state.jobs[run.backend_job_id]
        deadline = time.monotonic() + 60
        while not (job.run and job.run.state == "RUNNING" and job.run._proc):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        os.killpg(job.run._proc.pid, signal.SIGKILL)  # e.g. the node's OOM killer
        while not job.run.done:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        model = job.model("cluster")["status"]
        assert (model["state"], model["exitCode"], model["interruptSignal"]) == ("FAILED", 0, 9)
        await engine.runs.refresh()
        run = await engine.runs.get(run.id)
        assert (run.state, run.exit_code) == (RunState.FAILED, 137), run.state_history
        assert "SIGKILL" in (run.state_history[-1].message or "")
    finally:
        await engine.close()


async def test_jobs_that_left_the_job_list_are_looked_up_not_failed(backend, firecrest, tmp_path):
    runs = []
    for name, command in (("old-ok", "true"), ("old-bad", "exit 4")):
        run = await prepared(backend, name, tmp_path)
        job_id, _ = await backend.submit(job(backend, run, command))
        await until_ended(backend, run, job_id)
        runs.append((run, job_id))
    backend._submitted_at.clear()  # a server restarted since: no memory of the submissions
    for _, job_id in runs:  # ended more than 24 h ago: out of GET /jobs
        firecrest.state.jobs[job_id].run.ended -= 25 * 3600
    # Scratch cleaned: Slurm's record decides.
    (Path(runs[0][0].run_dir) / ".hpcml" / "exit_code").unlink()
    firecrest.state.purged.add(runs[1][1])  # Slurm forgot this one: its exit-code file decides
    refs = [JobRef(r.id, j, r.run_dir or "") for r, j in runs]
    listed = await backend.client().job_info("cluster")
    assert not {j for _, j in runs} & {str(m["jobId"]) for m in listed}
    statuses = await backend.poll(refs)
    assert (statuses[runs[0][1]].state, statuses[runs[0][1]].exit_code) == (RunState.FINISHED, 0)
    assert (statuses[runs[1][1]].state, statuses[runs[1][1]].exit_code) == (RunState.FAILED, 4)


async def test_a_runs_offline_store_is_listed_with_one_request(backend, firecrest, tmp_path):
    runs = [await prepared(backend, f"store{i}", tmp_path) for i in range(3)]
    base = ".hpcml/mlruns/1/abc"
    for run in runs:
        for sub in ("params", "metrics"):  # no "tags" yet
            d = Path(run.run_dir) / base / sub
            d.mkdir(parents=True)
            (d / "loss").write_text("1 0.5 0\n")
    (Path(runs[0].run_dir) / base / "metrics" / "nested").mkdir()
    (Path(runs[0].run_dir) / base / "metrics" / "nested" / "acc").write_text("x")
    items = [(r.job_ref(), f"{base}/{d}") for r in runs for d in ("params", "tags", "metrics")]
    firecrest.state.reset_counts()
    found = await backend.list_files_many(items)
    assert firecrest.state.requests["GET /filesystem/{system}/ops/ls"] == 3  # one per run, not 9
    paths = [sorted(f.path for f in files if not f.is_dir) for files in found]
    assert paths[:3] == [["loss"], [], ["loss", "nested/acc"]]
    assert paths[3:] == [["loss"], [], ["loss"]] * 2
