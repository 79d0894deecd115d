"""The magics in a real IPython kernel (jupyter_client) on the local backend.

Each test starts one kernel (it inherits the isolated HPCML_DATA_DIR and MLFLOW_TRACKING_URI
of the ``hpcml_data`` fixture) and checks several things in it, to keep the suite light.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .conftest import TOY_PROJECT
from .test_cli import hpcml

KERNEL_TIMEOUT = 120


@dataclass
class Result:
    status: str
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def _streams(self, name: str) -> str:
        return "".join(c["text"] for t, c in self.messages if t == "stream" and c["name"] == name)

    @property
    def stdout(self) -> str:
        return self._streams("stdout")

    @property
    def stderr(self) -> str:
        return self._streams("stderr")

    @property
    def displays(self) -> list[dict[str, Any]]:
        return [c["data"] for t, c in self.messages if t in ("display_data", "execute_result")]

    @property
    def tracebacks(self) -> list[dict[str, Any]]:
        return [c for t, c in self.messages if t == "error"]


class Kernel:
    """A real ipykernel; ``run`` executes a cell and collects what it sent."""

    def __init__(self, cwd: Path):
        from jupyter_client.manager import start_new_kernel

        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(cwd),
                                            startup_timeout=KERNEL_TIMEOUT)

    def run(self, code: str, timeout: float = KERNEL_TIMEOUT) -> Result:
        result = Result(status="")

        def hook(msg: dict[str, Any]) -> None:
            if msg["msg_type"] in ("stream", "display_data", "execute_result", "error",
                                   "update_display_data"):
                result.messages.append((msg["msg_type"], msg["content"]))

        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=hook,
                                            allow_stdin=False)
        result.status = reply["content"]["status"]
        return result

    def ok(self, code: str, timeout: float = KERNEL_TIMEOUT) -> Result:
        result = self.run(code, timeout)
        assert result.status == "ok", (code, result.messages)
        return result

    def eval(self, expr: str) -> Any:
        """The value of ``expr`` in the kernel, through JSON."""
        out = self.ok(f"import json as _j; print(_j.dumps({expr}))").stdout
        return json.loads(out.strip().splitlines()[-1])

    def until(self, condition: str, timeout: float = 60) -> None:
        """Await ``condition`` in the kernel (its event loop runs meanwhile, so live views
        keep updating, as when the kernel is idle)."""
        self.ok(
            "import asyncio as _a, time as _t\n"
            f"_deadline = _t.monotonic() + {timeout}\n"
            f"while not ({condition}):\n"
            "    assert _t.monotonic() < _deadline, 'timed out'\n"
            "    await _a.sleep(0.1)\n",
            timeout=timeout + 30,
        )

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "toy"
    shutil.copytree(TOY_PROJECT, dest)
    (dest / "notebooks").mkdir()
    return dest


@pytest.fixture
def kernel(project: Path, hpcml_data: Path) -> Iterator[Kernel]:
    """A kernel whose working folder (the "notebook's folder") lies below the toy project."""
    k = Kernel(project / "notebooks")
    try:
        k.ok("%load_ext jupyterlab_hpcml")
        yield k
    finally:
        k.close()


def stored_runs(data_dir: Path) -> list[Any]:
    from jupyterlab_hpcml.engine.store import RunStore

    if not (data_dir / "runs.sqlite").exists():
        return []
    store = RunStore(data_dir / "runs.sqlite")
    try:
        return store.list(limit=1000)[0]
    finally:
        store.close()


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """The cell failed with a single ``UsageError:`` line on stderr and no traceback."""
    assert result.status == "error", result.messages
    assert not result.tracebacks, result.tracebacks
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("UsageError: "), result.messages
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_submit_wait_logs_status_runs_widget_and_cli_interop(kernel, project, hpcml_data):
    k = kernel
    # A run from the CLI first: the magics see it.
    cli_run = json.loads(hpcml("submit", str(project), "-e", "fail", "-P", "code=0",
                               "--wait", "--json").stdout)

    # Defaults: the project above the notebook's folder, entry point main; $var and {expr}.
    k.ok("label = 'from-kernel'")
    res = k.ok("run = %hpc_submit -P steps=3 -P label=$label -P lr={0.1 * 2} --run-name nb --wait")
    view = res.displays[0]
    assert "application/vnd.jupyter.widget-view+json" in view  # the live widget ...
    assert "hpcml-run" in view["text/html"] and "run " in view["text/plain"]  # ... + fallbacks
    run = k.eval("{'id': run.id, 'state': run.state, 'exit': run.exit_code, "
                 "'params': run.parameters, 'project': run.record.project_path, "
                 "'entry': run.entry_point, 'name': run.name}")
    assert run["state"] == "FINISHED" and run["exit"] == 0
    assert run["params"] == {"steps": "3", "lr": "0.2", "label": "from-kernel", "delay": "0"}
    assert run["project"] == str(project) and run["entry"] == "main" and run["name"] == "nb"

    # Logs: whole, tail, stderr.
    assert k.ok(f"%hpc_logs {run['id']}").stdout.startswith("step 0 loss 1.000\n")
    assert k.ok(f"%hpc_logs {run['id'][:6]} --tail 2").stdout == "step 2 loss 0.333\nno token\n"
    assert k.ok(f"%hpc_logs {run['id']} --stderr --follow").status == "ok"

    # Status: the details table.
    status = k.ok(f"%hpc_status {run['id']}").displays[0]
    assert "FINISHED" in status["text/plain"] and "--label from-kernel" in status["text/plain"]
    assert "hpcml-run-details" in status["text/html"]

    # --follow prints the log; the returned Run is bound to `_`; displaying it shows its view.
    first = k.ok("%hpc_submit -P steps=2 --run-name second --follow")
    assert len(first.displays) == 1  # shown once, although displayed and returned
    assert first.stdout == "step 0 loss 1.000\nstep 1 loss 0.500\nno token\n"  # --follow
    assert k.eval("_.name") == "second"
    again = k.ok("run")
    assert len(again.displays) == 1 and "'nb': FINISHED" in again.displays[0]["text/plain"]

    # %hpc_runs: every run of the store, from the CLI too, newest first; rich and plain.
    table = k.ok("%hpc_runs").displays[0]
    assert cli_run["id"] in table["text/plain"] and run["id"] in table["text/plain"]
    assert 'class="hpcml-runs"' in table["text/html"]
    finished = k.ok("%hpc_runs --state finished --limit 2").displays[0]["text/plain"]
    assert finished.count("FINISHED") <= 2 and "ID" in finished

    # ... and the CLI sees the magic's runs.
    listed = json.loads(hpcml("runs", "--json").stdout)
    assert {run["id"], cli_run["id"]} <= {r["id"] for r in listed["runs"]}
    assert json.loads(hpcml("show", run["id"], "--json").stdout)["state"] == "FINISHED"

    # The live view's model state, read in the kernel once the run ended.
    k.until("run.view().done")
    state = k.eval(
        "{'state': run.view().state, 'job': run.view().job_id, 'log': run.view().log_tail, "
        "'loss': run.view().metrics['loss']['value'], "
        "'hist': run.view().metrics['loss']['history'], "
        "'header': run.view().header.value, 'spark': run.view().metrics_html.value, "
        "'log_html': run.view().log_html.value, "
        "'button': [run.view().cancel_button.disabled, run.view().cancel_button.layout.display]}")
    assert state["state"] == "FINISHED" and state["job"]
    assert state["log"].endswith("step 2 loss 0.333\nno token\n")
    assert state["loss"] == pytest.approx(1 / 3) and state["hist"] == pytest.approx([1, 0.5, 1 / 3])
    assert "FINISHED" in state["header"] and state["job"] in state["header"]
    assert "<svg" in state["spark"] and "loss" in state["spark"]
    assert "step 2 loss 0.333" in state["log_html"]
    assert state["button"] == [True, "none"]


def test_cancel_rerun_and_cell_magic(kernel, project, hpcml_data):
    k = kernel
    # A long run: its view updates while the kernel is idle; the widget's button cancels it.
    k.ok("s = %hpc_submit -e sleep")
    k.until("'sleeping' in s.view().log_tail and s.view().state == 'RUNNING'")
    assert k.ok("print('the kernel is free')").stdout == "the kernel is free\n"
    k.ok("s.view().cancel_button.click()")
    k.until("s.view().done", timeout=30)
    assert k.eval("[s.view().state, s.state, s.view().cancel_button.disabled]") == \
        ["CANCELLED", "CANCELLED", True]

    # %hpc_cancel, and cancelling an ended run is one line.
    k.ok("s2 = %hpc_submit -e sleep")
    out = k.ok("%hpc_cancel {s2.id}").stdout
    assert out.startswith("cancel requested for run ")
    k.ok("s2.wait(30)")
    assert k.eval("s2.state") == "CANCELLED"
    assert_one_line_error(k.run("%hpc_cancel {s2.id}"), "already ended")

    # %hpc_rerun: same code, new parameter; --wait.
    k.ok("r = %hpc_rerun {s.id} -P seconds=0 --wait")
    rerun = k.eval("[r.state, r.record.rerun_of, r.parameters, r.entry_point]")
    assert rerun == ["FINISHED", k.eval("s.id"), {"seconds": "0"}, "sleep"]

    # The cell magic: the body runs as the command; parameters as variables, `params`, argv.
    k.ok("who = 'cell user'")
    k.ok("%%hpc_submit --wait -P lr=0.5 -P steps=3 -P who=\"$who\" --run-name cell\n"
         "import sys\n"
         "print(type(lr).__name__, lr, type(steps).__name__, steps, who)\n"
         "print(sorted(params.items()))\n"
         "print(sys.argv[1:])\n"
         "import mlflow\n"
         "with mlflow.start_run():\n"
         "    mlflow.log_metric('acc', 0.75)\n")
    cell = k.eval("{'id': _.id, 'state': _.state, 'entry': _.entry_point, 'cmd': _.record.command,"
                  " 'log': _.logs(), 'metrics': _.latest_metrics(),"
                  " 'code': _.record.code.content_hash,"
                  " 'project': _.record.project_path}")
    assert cell["state"] == "FINISHED" and cell["entry"] == "hpcml_cell"
    assert cell["cmd"] == "python hpcml_cell.py --lr 0.5 --steps 3 --who 'cell user'"
    assert cell["log"].splitlines() == [
        "float 0.5 int 3 cell user",
        "[('lr', 0.5), ('steps', 3), ('who', 'cell user')]",
        "['--lr', '0.5', '--steps', '3', '--who', 'cell user']",
    ]
    assert cell["metrics"] == {"acc": 0.75} and cell["code"] and cell["project"] == str(project)
    assert not (project / "hpcml_cell.py").exists()  # only the run's snapshot has the cell

    # A cell re-run with another value (same snapshot, so the same cell code).
    k.ok(f"c2 = %hpc_rerun {cell['id']} -P lr=0.25 --wait")
    assert k.eval("c2.logs().splitlines()[0]") == "float 0.25 int 3 cell user"

    # A failing cell: one line naming the run; the traceback's line numbers are the cell's.
    runs_before = len(stored_runs(hpcml_data))
    div = k.run("%%hpc_submit --wait\nx = 1\ny = x / 0\n")
    assert_one_line_error(div, "ended FAILED")
    div_id = div.stderr.split("run ")[1].split()[0]
    stderr = hpcml("logs", div_id, "--stderr").stdout
    assert 'hpcml_cell.py", line 3' in stderr and "ZeroDivisionError" in stderr
    assert len(stored_runs(hpcml_data)) == runs_before + 1


def test_errors_are_one_line_and_submit_nothing(project, hpcml_data, tmp_path):
    from jupyterlab_hpcml.magics import AUTOLOAD_CODE

    # A folder with no MLproject at or above it; the magics loaded as the lab would.
    k = Kernel(tmp_path)
    try:
        k.ok(AUTOLOAD_CODE)
        k.ok(AUTOLOAD_CODE)  # twice is harmless
        k.ok(f"toy = {str(project)!r}")
        cases = [
            ("%hpc_submit $toy --bogus", ["unrecognized arguments: --bogus"]),
            ("%hpc_submit $toy -e trian", ["unknown entry point 'trian'", "'main'"]),
            ("%hpc_submit $toy -P steps", ["expected name=value, got 'steps'"]),
            ("%hpc_submit $toy -P steps=many", ["parameter 'steps' must be an int"]),
            ("%hpc_submit $toy -P nope=1", ["has no parameter 'nope'"]),
            ("%hpc_submit $toy -c missing.yaml", ["missing.yaml", "not found"]),
            ("%hpc_submit $toy --set Resources.Nodes", ["expected Section.Key=value"]),
            ("%hpc_submit $toy --set Resources.Runtim=1h", ["Runtim"]),
            ("%hpc_submit", ["no MLproject file"]),
            ("%hpc_submit $toy -P label='unbalanced", ["%hpc_submit:", "quotation"]),
            ("%hpc_logs nosuchrun", ["nosuchrun"]),
            ("%hpc_status", ["the following arguments are required: run"]),
            ("%hpc_runs --state sleeping", ["invalid choice"]),
            ("%%hpc_submit $toy\nprint('unclosed'\n", ["plain Python", "line 2 of the cell"]),
            ("%%hpc_submit $toy -e main\nprint(1)\n", ["unrecognized arguments: -e"]),
            ("%%hpc_submit $toy -P 1x=2\nprint(1)\n", ["parameter name '1x'"]),
            ("%%hpc_submit\nprint(1)\n", ["no MLproject file"]),
        ]
        for code, fragments in cases:
            assert_one_line_error(k.run(code), *fragments)
        assert stored_runs(hpcml_data) == []
        # -h prints the help and is not an error.
        assert "--backend-config" in k.ok("%hpc_submit -h").stdout
        assert k.ok("%hpc_runs").displays[0]["text/plain"] == "no runs"
    finally:
        k.close()


EXAMPLES = Path(__file__).parents[1] / "examples"


def test_example_notebook_executes(tmp_path, hpcml_data):
    """examples/notebooks/hpcml-magics.ipynb runs top to bottom without an error."""
    import nbformat
    from nbclient import NotebookClient

    shutil.copytree(EXAMPLES / "digits", tmp_path / "digits")
    shutil.copytree(EXAMPLES / "notebooks", tmp_path / "notebooks")
    path = tmp_path / "notebooks" / "hpcml-magics.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    text = "\n".join(
        json.dumps(out.get("data", {})) + out.get("text", "")
        for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
    )
    assert "('FINISHED', 0)" in text and "CANCELLED" in text and "trees: test accuracy" in text
    names = {r.name: r.state.value for r in stored_runs(hpcml_data)}
    assert names == {"magics-demo": "FINISHED", "forest": "FINISHED", "to-cancel": "CANCELLED",
                     **{n: "FINISHED" for n in names if n.startswith(("train-", "evaluate-"))}}
    assert len(names) == 5
    # The saved notebook carries the widgets' state and a static summary of each run.
    assert "application/vnd.jupyter.widget-state+json" in nb.metadata.get("widgets", {})
    # ... brought up to date when the runs ended (Run.wait and --wait update the view).
    submit_cell = next(c for c in nb.cells if "run = %hpc_submit" in c.source)
    first = next(o for o in submit_cell.outputs if o.output_type == "display_data")
    assert 'data-state="FINISHED"' in first["data"]["text/html"]
    assert "magics-demo': FINISHED" in first["data"]["text/plain"]


# ---------------------------------------------------------------------------
# Kernels started by the lab follow the server's settings


@pytest.fixture
def jp_server_config(hpcml_data: Path) -> dict[str, Any]:
    # Only the test below starts a server in this module; its default backend is a config.
    return {
        "ServerApp": {"jpserver_extensions": {"jupyterlab_hpcml": True}},
        "HpcmlApp": {"poll_interval": 0.2, "default_backend": "local.yaml"},
    }


async def test_a_kernel_started_by_the_lab_follows_its_default_backend(
        api, jp_fetch, jp_serverapp, toy_project, hpcml_data):
    """A notebook's kernel started through the server (POST /api/sessions, as the lab does)
    submits with the server's ``default_backend`` when no -c is given (docs/magics.md)."""
    from jupyter_client.asynchronous import AsyncKernelClient

    resp = await jp_fetch("api", "sessions", method="POST", body=json.dumps({
        "path": "toy/nb.ipynb", "type": "notebook", "name": "nb.ipynb",
        "kernel": {"name": "python3"}}))
    kernel_id = json.loads(resp.body)["kernel"]["id"]
    # An async client on the server's own loop (the server shuts the kernel down).
    km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    kc = AsyncKernelClient(parent=km)  # alive as the manager sees it, not by heartbeat
    kc.load_connection_info(km.get_connection_info())
    kc.start_channels()
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    try:
        await kc.wait_for_ready(KERNEL_TIMEOUT)
        reply = await kc.execute_interactive(
            "%load_ext jupyterlab_hpcml\n"
            "r = %hpc_submit -P steps=1 --run-name lab-kernel --wait\n"
            "import json; print(json.dumps({'id': r.id, 'config': r.record.config_path}))",
            timeout=KERNEL_TIMEOUT, output_hook=hook, allow_stdin=False)
    finally:
        kc.stop_channels()
    assert reply["content"]["status"] == "ok", (reply["content"], out)
    run = json.loads("".join(out).strip().splitlines()[-1])
    assert run["config"] == str(toy_project / "local.yaml")
    status, seen = await api("GET", f"runs/{run['id']}")  # in the server's store too
    assert status == 200 and seen["name"] == "lab-kernel" and seen["config_path"] == run["config"]


def test_the_servers_exports_are_put_back_when_it_stops(tmp_path):
    """What a server exports for its kernels is read back by a kernel's engine settings, and
    a stopped server leaves the environment as it found it (unless changed since)."""
    from jupyterlab_hpcml import kernel_env

    env = {"HPCML_DEFAULT_BACKEND": "mine.yaml", "OTHER": "x"}
    restore = kernel_env.export(tmp_path, "sqlite:///t.db", "cluster.yaml",
                                explicit_tracking=False, environ=env)
    got = kernel_env.settings(environ=env)
    assert (got.tracking_uri, got.default_backend) == ("sqlite:///t.db", "cluster.yaml")
    assert env["HPCML_DATA_DIR"] == str(tmp_path) and "MLFLOW_TRACKING_URI" not in env
    env["HPCML_MLFLOW_TRACKING_URI"] = "changed-since"
    restore()
    assert env == {"HPCML_DEFAULT_BACKEND": "mine.yaml", "OTHER": "x",
                   "HPCML_MLFLOW_TRACKING_URI": "changed-since"}
    assert kernel_env.settings(environ={}).default_backend == "local"
