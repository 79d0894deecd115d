"""The local backend with real processes and real files."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import jupyterlab_hpcml
from jupyterlab_hpcml.backends.base import JobContext, JobRef, PreparedJob
from jupyterlab_hpcml.backends.local import NO_EXIT_CODE, LocalBackend
from jupyterlab_hpcml.core.errors import Conflict, NotFound, UserInputError
from jupyterlab_hpcml.core.snapshots import Snapshot, SnapshotFile
from jupyterlab_hpcml.core.states import JobStatus, RunState

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


# ---------------------------------------------------------------- helpers


def make_snapshot(project: Path, objects: Path) -> Snapshot:
    """A snapshot of ``project``: the engine's own when available, else built by hand."""
    try:
        from jupyterlab_hpcml.engine.snapshot import take_snapshot
    except ImportError:
        return _hand_made_snapshot(project, objects)
    return take_snapshot(project, objects, objects.parent / "snapshots")


def _hand_made_snapshot(project: Path, objects: Path) -> Snapshot:
    files = []
    for p in sorted(project.rglob("*")):
        if not p.is_file():
            continue
        data = p.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        obj = objects / sha[:2] / sha
        obj.parent.mkdir(parents=True, exist_ok=True)
        obj.write_bytes(data)
        rel = p.relative_to(project).as_posix()
        files.append(SnapshotFile(rel, len(data), p.stat().st_mode & 0o777, sha))
    manifest = json.dumps([[f.relpath, f.sha256, f.mode] for f in files]).encode()
    return Snapshot(hashlib.sha256(manifest).hexdigest(), files, objects)


def make_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "MLproject").write_text("name: demo\n")
    (project / "src" / "train.py").write_text("print('training')\n")
    script = project / "run.sh"
    script.write_text("#!/bin/sh\necho from-script\n")
    script.chmod(0o755)
    return project


def record(run_id: str, command: str = "true", config: dict[str, Any] | None = None,
           environment: dict[str, Any] | None = None, resources: dict[str, Any] | None = None,
           env: dict[str, str] | None = None) -> JobContext:
    """A job context as the engine builds it (config normalised: Runtime in seconds)."""
    data = {**(config or {}), "Environment": environment or {}, "Resources": resources or {}}
    return JobContext(
        run_id=run_id, run_name=run_id, project_name="demo", entry_point="main",
        job_name="hpcml-demo-main", command=command, config=LocalBackend.parse_config(data),
        project_path="/nowhere", env=env or {},
    )


def as_ref(prepared: PreparedJob, job_id: str = "") -> JobRef:
    return JobRef(prepared.ctx.run_id, job_id, prepared.run_dir)


class Env:
    """One backend, its data dir and a project snapshot."""

    def __init__(self, tmp_path: Path, config: dict[str, Any] | None = None):
        self.tmp_path = tmp_path
        self.data_dir = tmp_path / "data"
        self.config = config or {}
        self.backend = LocalBackend(self.config, self.data_dir)
        self.project = make_project(tmp_path)
        self.snapshot = make_snapshot(self.project, self.data_dir / "objects")
        self._n = 0

    async def prepare(self, extra_files: dict[str, bytes] | None = None, command: str = "true",
                      **job: Any) -> PreparedJob:
        self._n += 1
        ctx = record(f"run{self._n}", command, self.config, **job)
        return await self.backend.prepare(ctx, self.snapshot, extra_files)

    async def start(
        self,
        command: str,
        environment: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        resources: dict[str, Any] | None = None,
    ) -> tuple[PreparedJob, JobRef]:
        run = await self.prepare(command=command, environment=environment, env=env,
                                 resources=resources)
        job_id, status = await self.backend.submit(run)
        assert status.state == RunState.RUNNING
        return run, as_ref(run, job_id)


async def wait_end(backend: LocalBackend, ref: JobRef, timeout: float = 30) -> JobStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = (await backend.poll([ref]))[ref.job_id]
        if status.state.terminal:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {ref.job_id} still running after {timeout}s")


async def wait_for_file(path: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.05)


def log(ref: JobRef, stream: str) -> str:
    return (Path(ref.run_dir) / ".hpcml" / f"{stream}.log").read_text()


def alive(pid: int) -> bool:
    """Running and not a zombie (orphans may linger as zombies in containers)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


# ---------------------------------------------------------------- outcomes


async def test_finished_with_stdout(env: Env) -> None:
    run, ref = await env.start("echo hello; ./run.sh; python src/train.py")
    status = await wait_end(env.backend, ref)
    assert (status.state, status.exit_code) == (RunState.FINISHED, 0)
    assert log(ref, "stdout") == "hello\nfrom-script\ntraining\n"
    meta = Path(ref.run_dir) / ".hpcml"
    assert (meta / "started").exists()
    job = json.loads((meta / "job.json").read_text())
    assert job["pid"] == int(ref.job_id) and isinstance(job["start_time"], int)
    done = json.loads((meta / "exit_code").read_text())
    assert done["exit_code"] == 0 and done["timeout"] is False and done["signal"] is None
    assert Path(ref.run_dir) == env.data_dir / "runs" / run.ctx.run_id


async def test_failed_with_exit_code(env: Env) -> None:
    _, ref = await env.start("echo oops >&2; exit 3")
    status = await wait_end(env.backend, ref)
    assert (status.state, status.exit_code, status.message) == (RunState.FAILED, 3, "exit code 3")
    assert "oops" in log(ref, "stderr")


async def test_pre_command_failure_stops_the_job(env: Env) -> None:
    environment = {
        "PreRunCommandOnComputeNode": "echo pre; exit 7",
        "PostRunCommandOnLoginNode": "touch post_ran",
    }
    _, ref = await env.start("touch main_ran", environment)
    status = await wait_end(env.backend, ref)
    assert (status.state, status.exit_code) == (RunState.FAILED, 7)
    assert "hpcml: pre-run command failed with exit code 7: echo pre; exit 7" in log(ref, "stderr")
    run_dir = Path(ref.run_dir)
    assert not (run_dir / "main_ran").exists()
    assert not (run_dir / ".hpcml" / "started").exists()
    assert (run_dir / "post_ran").exists()  # post commands always run (cleanup)


async def test_commands_run_in_order_and_post_runs_after_failure(env: Env) -> None:
    environment = {
        "PreRunCommandOnLoginNode": "echo pre-login >> order.txt",
        "PreRunCommandOnComputeNode": [
            "echo pre-compute-1 >> order.txt",
            "echo pre-compute-2 >> order.txt",
        ],
        "PostRunCommandOnComputeNode": "echo post-compute >> order.txt",
        "PostRunCommandOnLoginNode": "echo post-login >> order.txt",
    }
    _, ref = await env.start("echo main >> order.txt; exit 3", environment)
    status = await wait_end(env.backend, ref)
    assert (status.state, status.exit_code) == (RunState.FAILED, 3)
    order = (Path(ref.run_dir) / "order.txt").read_text().split()
    assert order == [
        "pre-login", "pre-compute-1", "pre-compute-2", "main", "post-compute", "post-login"
    ]


async def test_failing_post_command_keeps_the_programs_exit_code(env: Env) -> None:
    _, ref = await env.start("echo ok", {"PostRunCommandOnComputeNode": "exit 9"})
    status = await wait_end(env.backend, ref)
    assert (status.state, status.exit_code) == (RunState.FINISHED, 0)
    assert "hpcml: post-run command failed with exit code 9: exit 9" in log(ref, "stderr")


# ---------------------------------------------------------------- environment


async def test_variables_and_server_python_on_path(env: Env) -> None:
    environment = {"Variables": {"FOO": "bar baz", "N": 3, "FLAG": True}}
    _, ref = await env.start('echo "$FOO|$N|$FLAG"; command -v python', environment)
    status = await wait_end(env.backend, ref)
    assert status.state == RunState.FINISHED
    line, python = log(ref, "stdout").splitlines()
    assert line == "bar baz|3|true"
    assert os.path.dirname(python) == os.path.dirname(sys.executable)


async def test_environment_python_venv_first_on_path(env: Env, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    fake = venv / "bin" / "python"
    fake.write_text('#!/bin/sh\necho "fake-python $VIRTUAL_ENV $*"\n')
    fake.chmod(0o755)
    _, ref = await env.start("python train.py", {"Python": str(venv)})
    assert (await wait_end(env.backend, ref)).state == RunState.FINISHED
    assert log(ref, "stdout") == f"fake-python {venv} train.py\n"
    # The interpreter's path works too.
    _, ref = await env.start("python", {"Python": str(fake)})
    assert (await wait_end(env.backend, ref)).state == RunState.FINISHED
    assert log(ref, "stdout") == f"fake-python {venv} \n"
    job = json.loads((Path(ref.run_dir) / ".hpcml" / "job.json").read_text())
    assert job["python"] == str(venv)


async def test_missing_venv_is_a_user_error(env: Env, tmp_path: Path) -> None:
    run = await env.prepare(environment={"Python": str(tmp_path / "nope")})
    with pytest.raises(UserInputError, match="Environment.Python"):
        await env.backend.submit(run)


async def test_secret_reaches_the_program_but_no_file(env: Env) -> None:
    secret = "s3cr3t-" + "token-value-4711"
    environment = {"Variables": {"PUBLIC": "visible"}}
    # The program proves it got the token by its hash: the command must not hold the secret.
    command = (
        "python -c 'import os, hashlib; "
        "print(hashlib.sha256(os.environ[\"MLFLOW_TRACKING_TOKEN\"].encode()).hexdigest())'; "
        'echo "$PUBLIC"'
    )
    _, ref = await env.start(command, environment, env={"MLFLOW_TRACKING_TOKEN": secret})
    assert (await wait_end(env.backend, ref)).state == RunState.FINISHED
    assert log(ref, "stdout") == hashlib.sha256(secret.encode()).hexdigest() + "\nvisible\n"
    for p in Path(ref.run_dir).rglob("*"):
        if p.is_file():
            assert secret.encode() not in p.read_bytes(), p
    job = json.loads((Path(ref.run_dir) / ".hpcml" / "job.json").read_text())
    assert job["variables"] == {"PUBLIC": "visible"} and "env" not in job


# ---------------------------------------------------------------- limits and cancel


async def test_runtime_limit_gives_timeout(env: Env) -> None:
    t0 = time.monotonic()
    _, ref = await env.start(
        "sleep 30", {"PostRunCommandOnLoginNode": "touch post_ran"}, resources={"Runtime": 1}
    )
    status = await wait_end(env.backend, ref)
    assert status.state == RunState.TIMEOUT
    assert status.exit_code == 128 + signal.SIGTERM
    assert time.monotonic() - t0 < 10
    done = json.loads((Path(ref.run_dir) / ".hpcml" / "exit_code").read_text())
    assert done["timeout"] is True and done["signal"] == "SIGTERM"
    assert (Path(ref.run_dir) / "post_ran").exists()


async def test_cancel_kills_the_whole_process_group(env: Env) -> None:
    # written then renamed: the test must never read a half-written pid file
    command = "sleep 1000 & echo $! > gc.tmp && mv gc.tmp grandchild.pid; sleep 1000"
    run, ref = await env.start(command, {"PostRunCommandOnComputeNode": "touch post_ran"})
    run_dir = Path(ref.run_dir)
    await wait_for_file(run_dir / "grandchild.pid")
    grandchild = int((run_dir / "grandchild.pid").read_text())
    assert alive(grandchild)
    assert (await env.backend.poll([ref]))[ref.job_id].state == RunState.RUNNING

    await env.backend.cancel(as_ref(run))
    status = await wait_end(env.backend, ref, timeout=8)  # well before the 10 s SIGKILL
    assert (status.state, status.exit_code) == (RunState.FAILED, 128 + signal.SIGTERM)
    done = json.loads((run_dir / ".hpcml" / "exit_code").read_text())
    assert done["signal"] == "SIGTERM"
    await asyncio.sleep(0.2)
    assert not alive(grandchild)
    assert not alive(int(ref.job_id))
    assert not (run_dir / "post_ran").exists()  # a cancel stops everything
    await env.backend.cancel(as_ref(run))  # already ended: no error
    await env.backend.close()


async def test_cancel_escalates_to_sigkill(env: Env) -> None:
    env.backend.kill_grace = 0.5
    run, ref = await env.start("trap '' TERM; touch ready; sleep 1000")  # ignores SIGTERM
    await wait_for_file(Path(ref.run_dir) / "ready")
    await env.backend.cancel(as_ref(run))
    status = await wait_end(env.backend, ref, timeout=10)
    # The runner killed its program after the grace and recorded it (engine: CANCELLED).
    assert (status.state, status.exit_code) == (RunState.FAILED, 128 + signal.SIGKILL)
    done = json.loads((Path(ref.run_dir) / ".hpcml" / "exit_code").read_text())
    assert done["signal"] == "SIGKILL" and done["cancelled"] is True


async def test_cancel_before_submit_is_harmless(env: Env) -> None:
    run = await env.prepare()
    assert await env.backend.find_submitted(run.ctx) is None
    await env.backend.cancel(as_ref(run))


# ---------------------------------------------------------------- re-attach


POLL_SCRIPT = """
import asyncio, json, sys
from pathlib import Path
from jupyterlab_hpcml.backends.base import JobRef
from jupyterlab_hpcml.backends.local import LocalBackend

async def main():
    backend = LocalBackend({}, Path(sys.argv[1]))
    ref = JobRef(sys.argv[2], sys.argv[3], sys.argv[4])
    st = (await backend.poll([ref]))[ref.job_id]
    print(json.dumps({"state": st.state.value, "exit_code": st.exit_code}))

asyncio.run(main())
"""


def poll_in_other_process(data_dir: Path, ref: JobRef) -> dict[str, Any]:
    # Import the package from the same place as this test, installed or not.
    src = str(Path(jupyterlab_hpcml.__file__).parent.parent)
    path = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    out = subprocess.run(
        [sys.executable, "-c", POLL_SCRIPT, str(data_dir), ref.run_id, ref.job_id, ref.run_dir],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=env,
    )
    return json.loads(out.stdout)


async def test_reattach_from_another_instance_and_process(env: Env) -> None:
    run, ref = await env.start("while [ ! -e go ]; do sleep 0.05; done; echo done; exit 4")
    other = LocalBackend({}, env.data_dir)
    assert await other.find_submitted(run.ctx.replace(run_dir=run.run_dir)) == ref.job_id
    assert (await other.poll([ref]))[ref.job_id].state == RunState.RUNNING
    assert await asyncio.to_thread(poll_in_other_process, env.data_dir, ref) == {
        "state": "RUNNING",
        "exit_code": None,
    }

    (Path(ref.run_dir) / "go").touch()
    status = await wait_end(other, ref)  # the first instance never polls: its runner stays a zombie
    assert (status.state, status.exit_code) == (RunState.FAILED, 4)
    assert await asyncio.to_thread(poll_in_other_process, env.data_dir, ref) == {
        "state": "FAILED",
        "exit_code": 4,
    }
    await env.backend.poll([ref])  # reaps


async def test_reattach_sees_a_runner_that_died_without_exit_code(env: Env) -> None:
    _, ref = await env.start("touch ready; sleep 1000")
    await wait_for_file(Path(ref.run_dir) / "ready")
    os.killpg(int(ref.job_id), signal.SIGKILL)  # e.g. the OOM killer; the runner stays a zombie
    other = LocalBackend({}, env.data_dir)
    status = await wait_end(other, ref, timeout=10)
    assert (status.state, status.exit_code, status.message) == (RunState.FAILED, None, NO_EXIT_CODE)
    await env.backend.poll([ref])  # the spawning instance reaps its child
    assert not Path(f"/proc/{ref.job_id}").exists() or not alive(int(ref.job_id))


async def test_pid_reuse_is_not_mistaken_for_the_job(env: Env) -> None:
    _, ref = await env.start("touch ready; sleep 1000")
    run_dir = Path(ref.run_dir)
    await wait_for_file(run_dir / "ready")
    job_file = run_dir / ".hpcml" / "job.json"
    job = json.loads(job_file.read_text())
    # Pretend the job's pid now belongs to a process started at another time.
    job_file.write_text(json.dumps({**job, "start_time": job["start_time"] - 1}))
    status = (await env.backend.poll([ref]))[ref.job_id]
    assert (status.state, status.message) == (RunState.FAILED, NO_EXIT_CODE)
    job_file.write_text(json.dumps(job))
    os.killpg(int(ref.job_id), signal.SIGTERM)
    await wait_end(env.backend, ref)


# ---------------------------------------------------------------- files


async def test_read_by_offset_and_path_escapes(env: Env, tmp_path: Path) -> None:
    blob = os.urandom(1000)
    run = await env.prepare({"data/blob.bin": blob, ".hpcml/mlruns/meta.yaml": b"x: 1\n"})
    run_dir = Path(run.run_dir)
    assert (run_dir / ".hpcml" / "mlruns" / "meta.yaml").read_bytes() == b"x: 1\n"

    parts, offset = [], 0
    while True:
        chunk = await env.backend.read(as_ref(run), "data/blob.bin", offset, 97)
        assert chunk.offset == offset and chunk.size == 1000
        if not chunk.data:
            break
        parts.append(chunk.data)
        offset = chunk.next_offset
    assert b"".join(parts) == blob and offset == 1000

    missing = await env.backend.read(as_ref(run), ".hpcml/stdout.log", 0, 100)
    assert (missing.data, missing.next_offset, missing.size) == (b"", 0, None)

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("nope")
    (run_dir / "link").symlink_to(outside)
    (run_dir / "inner").symlink_to(run_dir / "src")
    for bad in ("../data/objects", "/etc/passwd", "link/secret.txt", "src/../../run1"):
        with pytest.raises(UserInputError):
            await env.backend.read(as_ref(run), bad, 0, 10)
        with pytest.raises(UserInputError):
            await env.backend.fetch(as_ref(run), bad, tmp_path / "dest")
    with pytest.raises(UserInputError):
        await env.backend.list_files(as_ref(run), "link")
    with pytest.raises(UserInputError):
        await env.backend.prepare(record("run9"), env.snapshot, {"../escape.txt": b"x"})
    assert not (env.data_dir / "runs" / "escape.txt").exists()

    # Symlinks that stay inside are fine.
    assert (
        await env.backend.read(as_ref(run), "inner/train.py", 0, 100)
    ).data == b"print('training')\n"

    files = {f.path: f for f in await env.backend.list_files(as_ref(run))}
    assert files["data/blob.bin"].size == 1000 and not files["data/blob.bin"].is_dir
    assert files["data"].is_dir and "src/train.py" in files and "inner" in files
    assert "link" not in files
    assert [f.path for f in await env.backend.list_files(as_ref(run), "src")] == ["train.py"]
    with pytest.raises(NotFound):
        await env.backend.list_files(as_ref(run), "nope")

    dest = tmp_path / "fetched" / "blob.bin"
    await env.backend.fetch(as_ref(run), "data/blob.bin", dest)
    assert dest.read_bytes() == blob
    with pytest.raises(NotFound):
        await env.backend.fetch(as_ref(run), "data/none.bin", dest)


async def test_run_dir_is_isolated_from_later_project_edits(env: Env) -> None:
    run = await env.prepare()
    run_dir = Path(run.run_dir)
    (env.project / "src" / "train.py").write_text("print('edited')\n")
    (env.project / "new.txt").write_text("new")
    assert (run_dir / "src" / "train.py").read_text() == "print('training')\n"
    assert not (run_dir / "new.txt").exists()
    assert os.access(run_dir / "run.sh", os.X_OK)  # permission bits survive
    assert (run_dir / ".hpcml").is_dir()


async def test_prepare_progress_workdir_and_relaunch_guard(tmp_path: Path) -> None:
    env = Env(tmp_path, {"Local": {"WorkDir": str(tmp_path / "work")}})
    calls: list[tuple[int, int]] = []
    run = record("r1", config=env.config)
    extra = {"a.txt": b"12345"}
    prepared = await env.backend.prepare(run, env.snapshot, extra, lambda *a: calls.append(a))
    run_dir = prepared.run_dir
    assert run_dir == str(tmp_path / "work" / "r1")
    total = env.snapshot.total_bytes + 5
    assert calls == [(total, total)]
    job_id, _ = await env.backend.submit(prepared)
    assert await env.backend.find_submitted(run) == job_id
    with pytest.raises(Conflict):
        await env.backend.prepare(run, env.snapshot)
    await wait_end(env.backend, JobRef(run.run_id, job_id, run_dir))


# ---------------------------------------------------------------- features and notes


def test_features_and_notes(tmp_path: Path) -> None:
    backend = LocalBackend({}, tmp_path)
    features = backend.supported_features()
    assert features.cancel and features.logs and features.artifacts and features.rerun
    assert not features.upload_progress
    assert features.resources == ["Runtime"]
    notes = backend.config_notes(backend.parse_config(
        {
            "Resources": {"Runtime": 3600, "GPUsPerNode": 4, "Queue": "gpu"},
            "Environment": {"Modules": ["CUDA"], "Apptainer": {"Path": "x.sif"}, "Python": "/venv"},
        }
    ))
    assert notes == [
        "Resources.Queue ignored by the local backend",
        "Resources.GPUsPerNode ignored by the local backend",
        "Environment.Modules ignored by the local backend (no module system)",
        "Environment.Apptainer ignored by the local backend (runs without a container)",
    ]
    assert backend.config_notes(backend.parse_config({})) == []
