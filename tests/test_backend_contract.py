"""The backend contract, one suite for every backend: local, Slurm over SSH (the real test
cluster), FirecREST and UNICORE (their loopback servers, driven by the real client
libraries) and the example plug-in (examples/backend-plugin, installed with pip).

Everything goes through the Engine facade, as the faces do: submit, poll until terminal,
cancel, read logs by offset, list and fetch artifacts, and a new Engine over the same data
dir after a restart. Each backend's scenarios run side by side in one event loop with one
engine (the suite must stay fast on 2 cores); each scenario is then reported as its own
test. A scenario a backend cannot do is skipped with the reason its Features give.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import runpy
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient

from jupyterlab_hpcml.backends import registry
from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.models import RunRecord
from jupyterlab_hpcml.engine.requests import SubmitRequest
from jupyterlab_hpcml.engine.service import Engine

from . import slurm_cluster
from .firecrest_fixtures import CLIENT_ID
from .firecrest_fixtures import config as firecrest_config
from .plugin_fixtures import install_plugin, plugin_on_path
from .servers.firecrest_server import FirecrestServer
from .servers.unicore_server import UnicoreServer

CONTRACT_PROJECT = Path(__file__).parent / "projects" / "contract"
# What the programs write (the project is data, not a package: read its constants).
_JOBS = runpy.run_path(str(CONTRACT_PROJECT / "jobs.py"))
ARTIFACTS: list[str] = _JOBS["ARTIFACTS"]
GROW_LINES: list[str] = _JOBS["GROW_LINES"]
BACKENDS = ("local", "ssh", "firecrest", "unicore", "tinyqueue")
SCENARIOS = ("finished", "failed", "signal", "cancel_queued", "cancel_running",
             "log_offsets", "artifacts", "reattach")
SIGKILL_EXIT = 128 + 9
FC_SECRET = "canary-contract-fc-3b9d"
UC_USER, UC_PASSWORD = "demouser", "canary-contract-uc-61e0"
SCENARIO_TIMEOUT = 150.0  # longer than a wait (90 s): a stuck run is named with its states


class Skipped(Exception):
    """A scenario the backend cannot do; the message says why."""


Cleanup = Callable[[], Awaitable[None]]


@dataclass
class Queued:
    """How a backend makes the next submission wait QUEUED: ``overrides`` for it, a switch
    set around that submission alone, and what to undo once the scenario is over."""

    overrides: dict[str, Any] = field(default_factory=dict)
    switch: Callable[[bool], None] | None = None  # True before the submission, False after
    after_scenario: Cleanup | None = None


# ---------------------------------------------------------------- the plug-in


@pytest.fixture(scope="session")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_plugin(tmp_path_factory.mktemp("plugin-site"))


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for all backends (creating one costs seconds; runs are apart by
    their own experiments and run ids anyway)."""
    return f"sqlite:///{tmp_path_factory.mktemp('contract-mlflow')}/mlflow.db"


# ---------------------------------------------------------------- one backend under test


@dataclass
class Target:
    """A backend set up for the suite: its project (with a config selecting it), and how
    to make a job wait in its queue."""

    name: str
    workdir: Path
    config: dict[str, Any] | None  # None: the default (local) config
    make_queued: Callable[[Harness], Awaitable[Queued]] | None = None
    # Its queue is a switch on the server, read at each submission: one submit at a time.
    serial_submits: bool = False
    # Filling its queue holds back every later job (a scheduler's priority order).
    queue_last: bool = False
    project: Path = field(init=False)

    def __post_init__(self) -> None:
        self.project = self.workdir / "contract"
        shutil.copytree(CONTRACT_PROJECT, self.project)
        if self.config is not None:
            (self.project / "backend.yaml").write_text(yaml.safe_dump(self.config))

    @property
    def config_file(self) -> str | None:
        return "backend.yaml" if self.config is not None else None


class Harness:
    """The scenarios' view of the Engine facade (one place to adapt if the facade moves)."""

    def __init__(self, target: Target, engine: Engine):
        self.target = target
        self.engine = engine
        # A server's queue switch must affect one submission only.
        self.submit_lock: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if target.serial_submits else contextlib.nullcontext())

    async def submit(self, entry: str, *, engine: Engine | None = None, queued: bool = False,
                     overrides: dict[str, Any] | None = None, **params: Any) -> RunRecord:
        engine = engine or self.engine
        hold = Queued()
        if queued:
            assert self.target.make_queued is not None
            hold = await self.target.make_queued(self)
            if hold.after_scenario:
                self.cleanups.append(hold.after_scenario)
        async with self.submit_lock:  # no other submission sees the switch
            if hold.switch:
                hold.switch(True)
            try:
                return await engine.submit(SubmitRequest(
                    project=str(self.target.project), backend_config=self.target.config_file,
                    entry_point=entry, parameters=params,
                    overrides={**(overrides or {}), **hold.overrides}))
            finally:
                if hold.switch:
                    hold.switch(False)

    cleanups: list[Cleanup]

    async def wait(self, run_id: str, states: set[RunState], *, engine: Engine | None = None,
                   timeout: float = 90) -> RunRecord:
        engine = engine or self.engine
        deadline = time.monotonic() + timeout
        while True:
            run = await engine.get(run_id)
            if run.state in states:
                return run
            if run.state.terminal or time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} is {run.state.value}, expected one of "
                                     f"{sorted(s.value for s in states)}: {run.state_history}")
            await asyncio.sleep(0.2)

    async def terminal(self, run_id: str, **kw: Any) -> RunRecord:
        return await self.wait(run_id, {s for s in RunState if s.terminal}, **kw)

    async def features(self) -> dict[str, Any]:
        return (await self.engine.features())[self.target.name]

    def mlflow_status(self, run: RunRecord) -> str:
        """The MLflow run's status: set before the run's end is recorded (MLflow first)."""
        assert run.mlflow_run_id
        return MlflowClient(self.engine.tracking_uri).get_run(run.mlflow_run_id).info.status

    async def log_text(self, run_id: str) -> str:
        return (await self.engine.read_log_all(run_id, "stdout")).data


# ---------------------------------------------------------------- the scenarios


async def finished(h: Harness) -> None:
    run = await h.submit("main")
    assert run.backend == h.target.name and run.backend_job_id, run
    run = await h.terminal(run.id)
    assert (run.state, run.exit_code) == (RunState.FINISHED, 0), run.state_history
    assert "hello from the job" in await h.log_text(run.id)
    assert h.mlflow_status(run) == "FINISHED"


async def failed(h: Harness) -> None:
    run = await h.terminal((await h.submit("fail", code=7)).id)
    assert (run.state, run.exit_code) == (RunState.FAILED, 7), run.state_history
    assert "failing now" in await h.log_text(run.id)
    assert h.mlflow_status(run) == "FAILED"


async def killed_by_signal(h: Harness) -> None:
    run = await h.terminal((await h.submit("signal")).id)
    assert (run.state, run.exit_code) == (RunState.FAILED, SIGKILL_EXIT), run.state_history


async def cancel_queued(h: Harness) -> None:
    if not (await h.features())["queue"]:
        raise Skipped("Features.queue is false: jobs start at once, none waits in a queue")
    assert h.target.make_queued is not None, "a backend with a queue needs a way to fill it"
    try:
        run = await h.submit("sleep", queued=True, seconds=1)
        await h.wait(run.id, {RunState.QUEUED})
        await asyncio.sleep(1.0)  # a poll or two: still waiting, not started
        assert (await h.engine.get(run.id)).state == RunState.QUEUED
        await h.engine.cancel(run.id)
        run = await h.terminal(run.id)
    finally:
        for cleanup in h.cleanups:
            await cleanup()
    assert run.state == RunState.CANCELLED, run.state_history
    assert RunState.RUNNING not in [c.state for c in run.state_history], run.state_history


async def cancel_running(h: Harness) -> None:
    run = await h.submit("sleep", seconds=300)
    await h.wait(run.id, {RunState.RUNNING})
    deadline = time.monotonic() + 30
    while "sleeping" not in await h.log_text(run.id):  # the program itself is running
        assert time.monotonic() < deadline, "the job never wrote its first line"
        await asyncio.sleep(0.2)
    await h.engine.cancel(run.id)
    run = await h.terminal(run.id, timeout=60)
    assert run.state == RunState.CANCELLED, run.state_history
    assert h.mlflow_status(run) == "KILLED"


async def log_offsets(h: Harness) -> None:
    """Follow the log while it grows, 13 bytes at a time (lines are 25): multi-byte
    characters are split across reads, held back whole, and never garbled."""
    run = await h.submit("grow")
    expected = "".join(GROW_LINES)
    text, offset, seen_growing, held_back = "", 0, False, False
    deadline = time.monotonic() + SCENARIO_TIMEOUT
    while time.monotonic() < deadline:
        chunk = await h.engine.read_log(run.id, "stdout", offset, max_bytes=13)
        assert chunk.offset == offset and chunk.next_offset >= offset
        text += chunk.data
        offset = chunk.next_offset
        if chunk.running and chunk.size and 0 < offset < len(expected.encode()):
            seen_growing = True  # read part of the log while the job still wrote it
        if chunk.size and chunk.offset + 13 <= chunk.size and offset < chunk.offset + 13:
            held_back = True  # the read ended inside a character: its start waits
        if chunk.data:
            continue
        if not chunk.running and chunk.size is not None and offset >= chunk.size:
            break
        await asyncio.sleep(0.1)
    assert "\ufffd" not in text, text
    assert text == expected
    assert seen_growing, "the log was never read while the job wrote it"
    assert held_back, "no read ended inside a multi-byte character"
    run = await h.terminal(run.id)
    assert run.state == RunState.FINISHED, run.state_history


async def artifacts(h: Harness) -> None:
    run = await h.terminal((await h.submit("artifacts")).id)
    assert run.state == RunState.FINISHED, run.state_history
    # A name the backend cannot handle (Features.unsupported_name_chars) is left out of
    # the copy, never fetched wrongly; every other name arrives intact.
    refused = set((await h.features())["unsupported_name_chars"])
    expected = sorted(n for n in ARTIFACTS if not refused & set(n))
    listed = await h.engine.list_artifacts(run.id)
    assert sorted(a.path for a in listed) == expected
    for name in expected:
        local, tmp = await h.engine.download_artifact(run.id, name)
        try:
            assert local.read_text(encoding="utf-8") == f"content of {name}\n"
        finally:
            tmp.cleanup()


async def reattach(h: Harness) -> None:
    """A job submitted by one engine is followed to its end by a new engine over the same
    data dir (a restarted lab). Its own data dir: the suite's engine must not poll it."""
    data_dir = h.engine.data_dir.parent / f"{h.engine.data_dir.name}-restart"
    first = Engine(data_dir=data_dir, tracking_uri=h.engine.tracking_uri, poll_interval=0.3)
    first.start()
    try:
        run = await h.submit("sleep", engine=first, seconds=4)
        await h.wait(run.id, {RunState.RUNNING}, engine=first)
    finally:
        await first.close()
    second = Engine(data_dir=data_dir, tracking_uri=h.engine.tracking_uri, poll_interval=0.3)
    second.start()
    try:
        done = await h.terminal(run.id, engine=second)
    finally:
        await second.close()
    assert (done.state, done.exit_code) == (RunState.FINISHED, 0), done.state_history


SCENARIO_FUNCS: dict[str, Callable[[Harness], Awaitable[None]]] = {
    "finished": finished, "failed": failed, "signal": killed_by_signal,
    "cancel_queued": cancel_queued, "cancel_running": cancel_running,
    "log_offsets": log_offsets, "artifacts": artifacts, "reattach": reattach,
}


# ---------------------------------------------------------------- the backends


@contextlib.contextmanager
def local_target(workdir: Path, env: pytest.MonkeyPatch, plugin: Path) -> Iterator[Target]:
    yield Target("local", workdir, None)


@contextlib.contextmanager
def ssh_target(workdir: Path, env: pytest.MonkeyPatch, plugin: Path) -> Iterator[Target]:
    reason = slurm_cluster.skip_reason()
    if reason:
        raise Skipped(reason)
    s = slurm_cluster.cluster_settings()
    assert s is not None
    env.setenv("HPCML_SSH_KNOWN_HOSTS", s["HPCML_TEST_SSH_KNOWN_HOSTS"])
    env.delenv("HPCML_SSH_CONFIG", raising=False)
    from jupyterlab_hpcml.backends.ssh.slurm import SlurmBackend

    env.setattr(SlurmBackend, "backoff_start", 0.5)
    env.setattr(SlurmBackend, "backoff_max", 1.0)
    # The test cluster has one node of 16 CPUs: two jobs of 9 cannot run side by side
    # (the second waits PENDING), and the other scenarios' jobs still find CPUs.
    most_cpus = {"Resources": {"TotalCPUs": 9}}

    async def make_queued(h: Harness) -> Queued:
        blocker = await h.engine.submit(SubmitRequest(
            project=str(h.target.project), backend_config=h.target.config_file,
            entry_point="sleep", parameters={"seconds": 300}, overrides=most_cpus))
        await h.wait(blocker.id, {RunState.RUNNING})

        async def cleanup() -> None:
            await h.engine.cancel(blocker.id)
        return Queued(most_cpus, after_scenario=cleanup)

    yield Target("ssh", workdir, slurm_cluster.backend_config(s), make_queued, queue_last=True)


@contextlib.contextmanager
def firecrest_target(workdir: Path, env: pytest.MonkeyPatch, plugin: Path) -> Iterator[Target]:
    server = FirecrestServer(workdir / "cluster", clients={CLIENT_ID: FC_SECRET}).start()
    env.setenv("MANTIK_FIRECREST_CLIENT_ID", CLIENT_ID)
    env.setenv("MANTIK_FIRECREST_CLIENT_SECRET", FC_SECRET)
    try:
        yield Target("firecrest", workdir, firecrest_config(server), _server_queue(server),
                     serial_submits=True)
    finally:
        server.stop()


@contextlib.contextmanager
def unicore_target(workdir: Path, env: pytest.MonkeyPatch, plugin: Path) -> Iterator[Target]:
    from jupyterlab_hpcml.backends.unicore import UnicoreBackend

    server = UnicoreServer(workdir / "unicore", users={UC_USER: UC_PASSWORD}).start()
    env.setenv("MANTIK_UNICORE_USERNAME", UC_USER)
    env.setenv("MANTIK_UNICORE_PASSWORD", UC_PASSWORD)
    env.setattr(UnicoreBackend, "retry_backoff", (0.05, 0.1, 0.2))
    config = {"UnicoreApiUrl": server.base_url,
              "Resources": {"Queue": "batch", "Runtime": "10m", "Account": "proj1"}}
    try:
        yield Target("unicore", workdir, config, _server_queue(server), serial_submits=True)
    finally:
        server.stop()


def _server_queue(server: Any) -> Callable[[Harness], Awaitable[Queued]]:
    """The loopback servers hold a job PENDING for ``state.queue_delay`` seconds (read at
    its submission; the harness submits one job at a time)."""
    def switch(on: bool) -> None:
        server.state.queue_delay = 60.0 if on else 0.0

    async def make_queued(h: Harness) -> Queued:
        return Queued(switch=switch)
    return make_queued


@contextlib.contextmanager
def tinyqueue_target(workdir: Path, env: pytest.MonkeyPatch, plugin: Path) -> Iterator[Target]:
    config = {"Backend": "tinyqueue", "TinyQueue": {"MaxParallel": 2},
              "Resources": {"Runtime": "10m"}}

    async def make_queued(h: Harness) -> Queued:
        # Two slots: fill both, the next job waits for one.
        blockers = [await h.engine.submit(SubmitRequest(
            project=str(h.target.project), backend_config=h.target.config_file,
            entry_point="sleep", parameters={"seconds": 300})) for _ in range(2)]
        for b in blockers:
            await h.wait(b.id, {RunState.RUNNING})

        async def cleanup() -> None:
            for b in blockers:
                await h.engine.cancel(b.id)
        return Queued(after_scenario=cleanup)

    with plugin_on_path(plugin):
        yield Target("tinyqueue", workdir, config, make_queued)


TARGETS = {"local": local_target, "ssh": ssh_target, "firecrest": firecrest_target,
           "unicore": unicore_target, "tinyqueue": tinyqueue_target}


# ---------------------------------------------------------------- running it


async def run_all(target: Target, data_dir: Path,
                  tracking_uri: str) -> dict[str, BaseException | None]:
    engine = Engine(data_dir=data_dir, tracking_uri=tracking_uri, poll_interval=0.3)
    engine.start()
    h = Harness(target, engine)
    h.cleanups = []

    async def one(name: str) -> BaseException | None:
        started = time.monotonic()
        try:
            await asyncio.wait_for(SCENARIO_FUNCS[name](h), SCENARIO_TIMEOUT)
            return None
        except asyncio.TimeoutError:
            return AssertionError(f"{name} took longer than {SCENARIO_TIMEOUT} s")
        except BaseException as exc:  # noqa: BLE001 - reported by the scenario's own test
            return exc
        finally:  # shown with -s: where a backend's time goes
            print(f"contract {target.name}-{name}: {time.monotonic() - started:.1f} s")
    try:
        others = [n for n in SCENARIOS if n != "cancel_queued"]
        if target.queue_last:  # its filled queue would hold the others' jobs back
            results = await asyncio.gather(*(one(n) for n in others))
            results.append(await one("cancel_queued"))
        else:  # first: a filled queue then drains into the others
            queued = asyncio.ensure_future(one("cancel_queued"))
            results = [*await asyncio.gather(*(one(n) for n in others)), await queued]
        return dict(zip([*others, "cancel_queued"], results, strict=True))
    finally:
        active = [r for r in (await engine.list_runs(limit=1000))[0] if not r.state.terminal]
        for run in active:  # nothing left running on a cluster after the suite
            with contextlib.suppress(Exception):
                await engine.cancel(run.id)
        await engine.close()


_RESULTS: dict[str, dict[str, BaseException | None] | BaseException] = {}


class _Keep(logging.Handler):
    """What the engine and backends logged (warnings and errors) while a backend's
    scenarios ran: a failed scenario shows it (they all share one test's run)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def explain(self, exc: BaseException | None) -> BaseException | None:
        if exc is None or isinstance(exc, Skipped) or not self.lines:
            return exc
        log = "\n".join(self.lines[-40:])
        return AssertionError(f"{exc}\n--- logged while the scenarios ran:\n{log}")


def results_for(backend: str, tmp_path_factory: pytest.TempPathFactory,
                plugin: Path, tracking_uri: str) -> dict[str, BaseException | None]:
    """Every scenario of ``backend``, run once (by its first test) and kept."""
    if backend not in _RESULTS:
        workdir = tmp_path_factory.mktemp(f"contract-{backend}")
        loop = asyncio.new_event_loop()
        logged = _Keep()
        logging.getLogger("jupyterlab_hpcml").addHandler(logged)
        try:
            with pytest.MonkeyPatch.context() as env, \
                    TARGETS[backend](workdir, env, plugin) as target:
                results = loop.run_until_complete(
                    run_all(target, workdir / "hpcml-data", tracking_uri))
            _RESULTS[backend] = {name: logged.explain(exc) for name, exc in results.items()}
        except Skipped as exc:
            _RESULTS[backend] = exc
        finally:
            logging.getLogger("jupyterlab_hpcml").removeHandler(logged)
            loop.close()
    outcome = _RESULTS[backend]
    if isinstance(outcome, Skipped):
        pytest.skip(str(outcome))
    assert isinstance(outcome, dict)
    return outcome


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("backend", "scenario"),
                         [(b, s) for b in BACKENDS for s in SCENARIOS],
                         ids=[f"{b}-{s}" for b in BACKENDS for s in SCENARIOS])
def test_contract(backend: str, scenario: str, tmp_path_factory: pytest.TempPathFactory,
                  plugin_dir: Path, tracking_uri: str) -> None:
    outcome = results_for(backend, tmp_path_factory, plugin_dir, tracking_uri)[scenario]
    if isinstance(outcome, Skipped):
        pytest.skip(f"{backend}: {outcome}")
    if outcome is not None:
        raise outcome


def test_plugin_kinds_are_entry_points(plugin_dir: Path) -> None:
    """The five backends of this suite are all found the same way: as entry points."""
    with plugin_on_path(plugin_dir):
        assert set(BACKENDS) <= set(registry.kinds())
        assert registry.backend_class("tinyqueue").kind == "tinyqueue"
    assert "tinyqueue" not in registry.kinds()  # gone with the plug-in
