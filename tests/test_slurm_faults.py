"""SSH connections dropped at each step of submit, poll, read and cancel (real sshd + Slurm).

The server reaches the test cluster's sshd through a loopback TCP forwarder the test cuts
(every connection through it dies at once, as when a link or a NAT drops) or takes down
(new connections are refused: an outage). To cut *during* a command, Slurm's commands are
made slow on the login node for one call: wrappers put first on the PATH the backend uses
sleep before (or after) running the real command when armed, and say when they started.

Runs must keep their state (UNKNOWN while unsure, recovered after reconnecting) and no job
may be submitted twice. Cost: a few short jobs, ~60 s in all.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jupyterlab_hpcml.backends.ssh.slurm import SlurmBackend
from jupyterlab_hpcml.core.errors import BackendUnavailable
from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.config import parse_backend_config
from jupyterlab_hpcml.engine.models import RunRecord, StateChange
from jupyterlab_hpcml.engine.requests import SubmitRequest
from jupyterlab_hpcml.engine.service import Engine

from .slurm_cluster import backend_config, make_project, slurm, ssh_cmd  # noqa: F401 - fixture

SLOW = 3  # seconds an armed wrapper sleeps


class Link:
    """A TCP forwarder to sshd that can be cut or taken down."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.down = False
        self.pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.pairs.append((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def cut(self) -> None:
        for a, b in self.pairs:
            a.transport.abort()
            b.transport.abort()
        self.pairs.clear()

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[Link]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self.cut()
            server.close()


WRAPPER = """#!/bin/sh
# Armed by a file arm.<name>.<before|after> holding how many calls to slow down.
name=$(basename "$0"); dir=%(dir)s
PATH=${PATH#"$dir/bin:"}
echo "$*" >> "$dir/args.$name"
for when in before after; do
  f="$dir/arm.$name.$when"
  if [ -s "$f" ]; then
    n=$(cat "$f"); if [ "$n" -le 1 ]; then rm -f "$f"; else echo $((n - 1)) > "$f"; fi
    if [ $when = before ]; then
      echo "$$" >> "$dir/fired.$name"; sleep %(slow)d; exec "$name" "$@"
    fi
    "$name" "$@"; rc=$?; echo "$$" >> "$dir/fired.$name"; sleep %(slow)d; exit $rc
  fi
done
exec "$name" "$@"
"""


class Faults:
    """The link, the wrappers' directory on the cluster (same machine: read directly)."""

    def __init__(self, s: dict[str, str], link: Link, directory: str):
        self.s, self.link, self.dir = s, link, directory

    def arm(self, name: str, when: str = "before", times: int = 1) -> None:
        ssh_cmd(self.s, f"echo {times} > {self.dir}/arm.{name}.{when}")

    def fired(self, name: str) -> int:
        path = Path(self.dir) / f"fired.{name}"
        return len(path.read_text().split()) if path.exists() else 0

    def calls(self, name: str) -> list[str]:
        path = Path(self.dir) / f"args.{name}"
        return path.read_text().splitlines() if path.exists() else []

    async def cut_when_fired(self, name: str, count: int = 1, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.fired(name) < count:
            assert time.monotonic() < deadline, f"{name} never started"
            await asyncio.sleep(0.05)
        self.link.cut()

    def slow_path(self, backend: SlurmBackend) -> None:
        """The wrappers first on the PATH of the backend's commands (read at connect)."""
        env = backend.conn.login_env
        env["PATH"] = f"{self.dir}/bin:{env['PATH']}"


@contextlib.asynccontextmanager
async def cluster_link(slurm, tmp_path, monkeypatch) -> AsyncIterator[Faults]:  # noqa: F811
    """The cluster through a Link, and the wrappers (the tests' async fixture)."""
    link = Link(slurm["HPCML_TEST_SSH_HOST"], int(slurm["HPCML_TEST_SSH_PORT"]))
    async with link.serve():
        host = slurm["HPCML_TEST_SSH_HOST"]
        known = Path(slurm["HPCML_TEST_SSH_KNOWN_HOSTS"]).read_text()
        lines = [f"[{host}]:{link.port} {ln.split(None, 1)[1]}"
                 for ln in known.splitlines() if ln.strip()]
        (tmp_path / "known_hosts").write_text("\n".join(lines) + "\n")
        monkeypatch.setenv("HPCML_SSH_KNOWN_HOSTS", str(tmp_path / "known_hosts"))
        directory = f"/tmp/hpcml-faults-{uuid.uuid4().hex[:8]}"
        script = WRAPPER % {"dir": directory, "slow": SLOW}
        ssh_cmd(slurm, f"mkdir -p {directory}/bin && "
                       f"cat > {directory}/bin/wrapper <<'EOF'\n{script}EOF\n"
                       f"chmod +x {directory}/bin/wrapper && cd {directory}/bin && "
                       "for c in sbatch squeue sacct scancel; do ln -s wrapper $c; done")
        try:
            yield Faults({**slurm, "HPCML_TEST_SSH_PORT": str(link.port)}, link, directory)
        finally:
            ssh_cmd(slurm, f"rm -rf {directory}", check=False)


async def connected(engine: Engine, s: dict[str, str], tmp_path: Path, faults: Faults):
    """A project on the cluster through the link, a first job submitted (code uploaded)."""
    project = make_project(tmp_path / "toy", s)
    req = SubmitRequest(project=str(project), backend_config="slurm.yaml", entry_point="fail",
                        parameters={"code": 0})
    first = await engine.runs.submit(req)
    assert first.backend_job_id, first
    backend = engine.registry.for_run(first)
    assert isinstance(backend, SlurmBackend)
    faults.slow_path(backend)
    return project, backend


def jobs_of(s: dict[str, str], run_id: str) -> list[str]:
    out = ssh_cmd(s, "squeue --me -t all -h -o '%i %k'")
    return [ln.split()[0] for ln in out.splitlines() if ln.endswith(f"hpcml:{run_id}")]


async def settle(engine: Engine, backend: SlurmBackend, run_id: str, states: set[RunState],
                 timeout: float = 40) -> RunRecord:
    deadline = time.monotonic() + timeout
    while True:
        backend._next_poll = 0.0
        await engine.runs.refresh()
        run = await engine.runs.get(run_id)
        if run.state in states:
            return run
        assert time.monotonic() < deadline, run.state_history
        await asyncio.sleep(0.5)


def never(run: RunRecord, state: RunState) -> None:
    assert state not in [c.state for c in run.state_history], run.state_history


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_connection_cut_during_sbatch_submits_once_and_fails_nothing(
        hpcml_data, tmp_path, slurm, monkeypatch, when):  # noqa: F811
    """``before``: the cut comes while the submit command waits to call sbatch; it goes on
    on the login node and submits after the cut. ``after``: the job reached Slurm, the
    answer is lost. Either way the run ends up with its one job, never FAILED."""
    async with cluster_link(slurm, tmp_path, monkeypatch) as faults:
        engine = Engine(data_dir=hpcml_data)
        try:
            project, backend = await connected(engine, faults.s, tmp_path, faults)
            faults.arm("sbatch", when)
            req = SubmitRequest(project=str(project), backend_config="slurm.yaml",
                                entry_point="sleep", parameters={"seconds": 30})
            submitting = asyncio.create_task(engine.runs.submit(req))
            await faults.cut_when_fired("sbatch")
            run = await submitting
            assert run.state in (RunState.UNKNOWN, RunState.QUEUED), run.state_history
            run = await settle(engine, backend, run.id, {RunState.QUEUED, RunState.RUNNING,
                                                         RunState.FAILED})
            never(run, RunState.FAILED)
            assert jobs_of(faults.s, run.id) == [run.backend_job_id]
            await engine.runs.cancel(run.id)
        finally:
            await engine.close()


async def test_polls_and_reads_through_cuts_and_an_outage_keep_the_state(
        hpcml_data, tmp_path, slurm, monkeypatch):  # noqa: F811
    async with cluster_link(slurm, tmp_path, monkeypatch) as faults:
        engine = Engine(data_dir=hpcml_data)
        try:
            project, backend = await connected(engine, faults.s, tmp_path, faults)
            req = SubmitRequest(project=str(project), backend_config="slurm.yaml",
                                entry_point="sleep", parameters={"seconds": 60})
            run = await engine.runs.submit(req)
            run = await settle(engine, backend, run.id, {RunState.RUNNING})

            # Cut while squeue runs: the poll reconnects and asks again; nobody sees a change.
            faults.arm("squeue")
            backend._next_poll = 0.0
            polling = asyncio.create_task(engine.runs.refresh())
            await faults.cut_when_fired("squeue")
            await polling
            run = await engine.runs.get(run.id)
            assert run.state == RunState.RUNNING
            never(run, RunState.UNKNOWN)
            faults.link.cut()  # a log read on a dead connection reconnects too
            chunk = await engine.runs.read_log(run.id, "stdout")
            assert chunk is not None

            # An outage: UNKNOWN while it lasts, reads answer "unavailable", then back to RUNNING.
            faults.link.down = True
            faults.link.cut()
            backend._next_poll = 0.0
            await engine.runs.refresh()
            assert (await engine.runs.get(run.id)).state == RunState.UNKNOWN
            with pytest.raises(BackendUnavailable):
                await engine.runs.read_log(run.id, "stdout")
            faults.link.down = False
            run = await settle(engine, backend, run.id, {RunState.RUNNING})
            assert [c.state for c in run.state_history][-3:] == [
                RunState.RUNNING, RunState.UNKNOWN, RunState.RUNNING]
            assert jobs_of(faults.s, run.id) == [run.backend_job_id]

            # Cut while scancel runs: asked again on a new connection; the run ends CANCELLED.
            faults.arm("scancel")
            cancelling = asyncio.create_task(engine.runs.cancel(run.id))
            await faults.cut_when_fired("scancel")
            await cancelling
            run = await settle(engine, backend, run.id, {RunState.CANCELLED, RunState.FAILED,
                                                         RunState.FINISHED})
            assert run.state == RunState.CANCELLED, run.state_history
        finally:
            await engine.close()


async def test_a_command_the_connection_dropped_under_twice_is_not_sent_again(
        hpcml_data, tmp_path, slurm, monkeypatch):  # noqa: F811
    """The details command for ended jobs (sacct + exit codes) loses its connection twice:
    the next pass does not send it again as it was, but in halves; the runs end right."""
    async with cluster_link(slurm, tmp_path, monkeypatch) as faults:
        engine = Engine(data_dir=hpcml_data)
        cfg = parse_backend_config(backend_config(faults.s))
        backend = engine.registry.get(cfg.kind, cfg.data, cfg.connection_name)
        assert isinstance(backend, SlurmBackend)
        base = await backend._base_dir()
        faults.slow_path(backend)
        out = ssh_cmd(faults.s, "sbatch --parsable --hold --array=0-3 -p debug -o /dev/null "
                                "--wrap true")
        array = out.strip().split(";")[0]
        try:
            now = time.time()
            records = [RunRecord(
                id=uuid.uuid4().hex[:12], name=f"r{i}", project_path="/nonexistent/toy",
                project_name="toy", entry_point="main", command="true", backend=cfg.kind,
                connection=cfg.connection_name, backend_config=cfg.redacted(),
                backend_job_id=f"{array}_{i}", run_dir=f"{base}/none/{i}", state=RunState.QUEUED,
                state_history=[StateChange(state=RunState.QUEUED, at=now)],
                created_at=now, updated_at=now) for i in range(4)]
            for r in records:
                await asyncio.to_thread(engine.store.insert, r)
            ssh_cmd(faults.s, f"scancel {array}")
            faults.arm("sacct", times=2)
            backend._next_poll = 0.0
            polling = asyncio.create_task(engine.runs.refresh())
            await faults.cut_when_fired("sacct", 1)
            await faults.cut_when_fired("sacct", 2)  # the connection's one retry
            await polling
            assert {(await engine.runs.get(r.id)).state for r in records} == {RunState.UNKNOWN}
            for r in records:
                await settle(engine, backend, r.id, {RunState.CANCELLED})
            calls = faults.calls("sacct")
            asked = [len(c.split(" -j ")[1].split()[0].split(",")) for c in calls]
            # All four twice (the second time on a new connection), then never again: halves.
            assert asked[:4] == [4, 4, 2, 2] and 4 not in asked[4:], calls
        finally:
            ssh_cmd(faults.s, f"scancel {array}", check=False)
            await engine.close()
