"""How runs look in a notebook: the live view, and static HTML/text summaries.

``RunView`` shows a state badge, the backend job id, the elapsed time, the last
lines of the log, the latest value and a sparkline of each metric, and a Cancel
button. In a kernel with ipywidgets it is an ipywidgets box, updated by an
asyncio task on the kernel's own event loop: the engine work happens on the
bridge's loop thread (``bridge.py``) and the task only awaits it, so the kernel
stays free between updates. The task stops when the run ends. What the view
shows, and how it is fetched, is ``widget_state.py``.

Every display also carries ``text/html`` and ``text/plain`` summaries, refreshed
with ``update_display`` when the run ends, so a saved or converted notebook
(nbconvert, GitHub) shows the final state without widgets. Without ipywidgets
the HTML summary itself is updated live.

The view's state is plain traitlets on ``RunView`` (``state``, ``job_id``,
``elapsed``, ``log_tail``, ``stderr_tail``, ``metrics``, ``done``, ``error``; see
``RunViewState``), readable from the kernel; the widgets (``view.widget``,
``view.header``, ``view.metrics_html``, ``view.log_html``, ``view.cancel_button``)
mirror it.
"""
from __future__ import annotations

import asyncio
import contextvars
import html
import logging
import math
import time
import uuid
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from . import run_text
from .bridge import bridge
from .widget_state import RunViewState

if TYPE_CHECKING:
    from .api import Run, RunList
    from .engine.models import RunRecord

log = logging.getLogger(__name__)

UPDATE_INTERVAL = 1.0  # seconds between two updates of a live view
MAX_ERRORS = 10  # consecutive failed updates before the view gives up

STATE_COLORS = {
    "SUBMITTING": "#757575",
    "STAGING": "#757575",
    "QUEUED": "#757575",
    "RUNNING": "#1976d2",
    "FINISHED": "#2e7d32",
    "FAILED": "#c62828",
    "CANCELLED": "#ef6c00",
    "TIMEOUT": "#c62828",
    "UNKNOWN": "#6a1b9a",
}


# ---------------------------------------------------------------------------
# Formatting


def fmt_value(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-" if value is None else str(value)
    return f"{value:.4g}"


def badge_html(state: str) -> str:
    color = STATE_COLORS.get(state, "#757575")
    return (f'<span class="hpcml-badge hpcml-state-{html.escape(state.lower())}" '
            f'style="background:{color};color:#fff;border-radius:3px;padding:1px 6px;'
            f'font-size:85%;font-weight:600;letter-spacing:.03em">{html.escape(state)}</span>')


def sparkline_svg(values: Sequence[float | None], width: int = 120, height: int = 22) -> str:
    """A tiny inline SVG line of ``values`` (None and non-finite values are skipped)."""
    ys = [v for v in values if v is not None and math.isfinite(v)]
    if not ys:
        return ""
    lo, hi = min(ys), max(ys)
    span = (hi - lo) or 1.0
    n = len(ys)
    pad = 2
    pts = [
        (pad + (width - 2 * pad) * (i / (n - 1) if n > 1 else 0.5),
         pad + (height - 2 * pad) * (1 - (y - lo) / span) if hi > lo else height / 2)
        for i, y in enumerate(ys)
    ]
    poly = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
    last_x, last_y = pts[-1]
    return (f'<svg class="hpcml-sparkline" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" style="vertical-align:middle">'
            f'<polyline fill="none" stroke="#1976d2" stroke-width="1.5" points="{poly}"/>'
            f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="2" fill="#1976d2"/></svg>')


def _header_html(record: RunRecord, elapsed: str) -> str:
    bits = [f"{html.escape(record.backend)} job {html.escape(record.backend_job_id or '-')}",
            f"elapsed {elapsed}"]
    if record.exit_code is not None:
        bits.append(f"exit code {record.exit_code}")
    return (f'{badge_html(record.state.value)} <b>{html.escape(record.name)}</b> '
            f'<code>{html.escape(record.id)}</code> '
            f'<span style="opacity:.75">{html.escape(record.project_name)}:'
            f'{html.escape(record.entry_point)} · {" · ".join(bits)}</span>')


def _metrics_html(metrics: dict[str, dict[str, Any]]) -> str:
    if not metrics:
        return ""
    rows = "".join(
        f'<tr><td style="padding:0 8px 0 0">{html.escape(key)}</td>'
        f'<td style="padding:0 8px 0 0;text-align:right;font-family:monospace">'
        f'{fmt_value(m.get("value"))}</td>'
        f'<td style="padding:0 8px 0 0;opacity:.6">step {m.get("step", "-")}</td>'
        f'<td>{sparkline_svg(m.get("history") or [])}</td></tr>'
        for key, m in metrics.items()
    )
    return f'<table class="hpcml-metrics" style="border-collapse:collapse">{rows}</table>'


def _log_html(stdout: str, stderr: str, error: str = "") -> str:
    parts = []
    style = ("margin:4px 0;padding:4px 6px;max-height:14em;overflow:auto;"
             "font-size:85%;background:var(--jp-layout-color2,#f5f5f5);white-space:pre-wrap")
    if stdout:
        parts.append(f'<pre class="hpcml-log" style="{style}">{html.escape(stdout)}</pre>')
    if stderr:
        parts.append(f'<pre class="hpcml-log hpcml-stderr" style="{style};color:#c62828">'
                     f'{html.escape(stderr)}</pre>')
    if error:
        parts.append(f'<div class="hpcml-error" style="color:#c62828">{html.escape(error)}</div>')
    return "".join(parts)


def summary_html(record: RunRecord, stdout: str = "", stderr: str = "",
                 metrics: dict[str, dict[str, Any]] | None = None, error: str = "") -> str:
    """The static HTML summary of a run (what the live view shows, without widgets)."""
    return (f'<div class="hpcml-run" data-run-id="{html.escape(record.id)}" '
            f'data-state="{record.state.value}" style="line-height:1.5">'
            f"<div>{_header_html(record, run_text.duration(record))}</div>"
            f"{_metrics_html(metrics or {})}{_log_html(stdout, stderr, error)}</div>")


def summary_text(record: RunRecord, stdout: str = "", stderr: str = "",
                 metrics: dict[str, dict[str, Any]] | None = None, error: str = "") -> str:
    lines = [f"run {record.id} {record.name!r}: {record.state.value} "
             f"({record.backend} job {record.backend_job_id or '-'}, "
             f"elapsed {run_text.duration(record)}"
             + (f", exit code {record.exit_code})" if record.exit_code is not None else ")")]
    lines += [f"  {k} = {fmt_value(m.get('value'))} (step {m.get('step')})"
              for k, m in (metrics or {}).items()]
    if stdout:
        lines += ["  " + line for line in stdout.rstrip("\n").splitlines()]
    if stderr:
        lines += ["  stderr: " + line for line in stderr.rstrip("\n").splitlines()]
    if error:
        lines.append(f"  ({error})")
    return "\n".join(lines)


def runs_table_html(runs: RunList) -> str:
    head = "".join(f'<th style="text-align:left">{h}</th>' for h in runs.HEADER)
    body = []
    for run, row in zip(runs, runs.rows(), strict=True):
        cells = [f"<td><code>{html.escape(row[0])}</code></td>"]
        cells += [f"<td>{html.escape(v)}</td>" for v in row[1:5]]
        cells.append(f"<td>{badge_html(row[5])}</td>")
        cells += [f"<td>{html.escape(v)}</td>" for v in row[6:]]
        body.append(f'<tr data-run-id="{html.escape(run.id)}">{"".join(cells)}</tr>')
    more = (f"<div>{len(runs)} of {runs.total} runs</div>" if runs.total > len(runs) else "")
    if not runs:
        return "<div>no runs</div>"
    return (f'<table class="hpcml-runs"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>{more}')


class RunDetails:
    """Everything about one run (what ``hpcml show`` prints), as HTML and text."""

    def __init__(self, record: RunRecord):
        self.record = record

    def rows(self) -> list[tuple[str, str]]:
        import json

        r = self.record
        rows = [
            ("id", r.id), ("name", r.name), ("state", r.state.value),
            ("exit code", "-" if r.exit_code is None else str(r.exit_code)),
            ("project", r.project_path), ("entry point", r.entry_point), ("command", r.command),
            ("parameters", json.dumps(r.parameters)),
            ("backend", f"{r.backend} ({r.connection or '-'})"),
            ("job id", r.backend_job_id or "-"),
            ("run dir", r.run_dir or "-"), ("resources", json.dumps(r.resources)),
            ("mlflow", f"experiment {r.mlflow_experiment_id}, run {r.mlflow_run_id}"),
            ("elapsed", run_text.duration(r)),
        ]
        rows += [("history", f"{run_text.fmt_time(c.at)} "
                             f"{c.state.value}{'  ' + c.message if c.message else ''}")
                 for c in r.state_history]
        rows += [("note", n) for n in r.notes]
        return rows

    def __str__(self) -> str:
        return "\n".join(f"{k:>12}: {v}" for k, v in self.rows())

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        rows = "".join(
            f'<tr><th style="text-align:right;padding-right:8px">{html.escape(k)}</th>'
            f'<td style="text-align:left">{badge_html(v) if k == "state" else html.escape(v)}</td>'
            "</tr>"
            for k, v in self.rows()
        )
        return f'<table class="hpcml-run-details">{rows}</table>'


# ---------------------------------------------------------------------------
# The live view


def _kernel_widgets() -> bool:
    """ipywidgets is installed and we run in a kernel with a frontend to show them."""
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


class RunView(RunViewState):
    """The live view of one run; see the module docstring."""

    def __init__(self, run: Run, *, interval: float = UPDATE_INTERVAL,
                 widgets: bool | None = None):
        super().__init__(run)
        self.interval = interval
        self.display_id = f"hpcml-run-{run.id}-{uuid.uuid4().hex[:8]}"
        self.shown_in: int | None = None  # execution count of the cell that displayed it
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._displayed = False
        self.widget: Any = None
        if widgets if widgets is not None else _kernel_widgets():
            self._build_widgets()
            self._render()

    # -- widgets

    def _build_widgets(self) -> None:
        import ipywidgets as w

        self.header = w.HTML(layout=w.Layout(flex="1 1 auto"))
        self.cancel_button = w.Button(description="Cancel", icon="stop", button_style="warning",
                                      tooltip="Cancel this run", layout=w.Layout(width="auto"))
        self.cancel_button.on_click(self._on_cancel)
        self.metrics_html = w.HTML()
        self.log_html = w.HTML()
        self.widget = w.VBox(
            [w.HBox([self.header, self.cancel_button], layout=w.Layout(align_items="center")),
             self.metrics_html, self.log_html],
            layout=w.Layout(border="1px solid var(--jp-border-color2, #ddd)", padding="4px 8px"),
        )
        self.widget.add_class("hpcml-run-view")

    def _render(self) -> None:
        if self.widget is None:
            return
        record = self.run.record
        self.header.value = _header_html(record, self.elapsed)
        self.metrics_html.value = _metrics_html(self.metrics)
        self.log_html.value = _log_html(self.log_tail, self.stderr_tail, self.error)
        if record.state.terminal or record.cancel_requested:
            self.cancel_button.disabled = True
            self.cancel_button.description = ("Cancelling…" if not record.state.terminal
                                              else "Cancel")
        if record.state.terminal:
            self.cancel_button.layout.display = "none"

    # -- display

    def _bundle(self) -> dict[str, Any]:
        args = (self.run.record, self.log_tail, self.stderr_tail, self.metrics, self.error)
        data: dict[str, Any] = {"text/plain": summary_text(*args), "text/html": summary_html(*args)}
        if self.widget is not None:
            data.update({k: v for k, v in self.widget._repr_mimebundle_().items()
                         if k != "text/plain"})
        return data

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return self._bundle()

    def __repr__(self) -> str:
        return summary_text(self.run.record, metrics=self.metrics)

    # -- updating

    def display(self) -> None:
        """Show the view (again) and keep it updated while the run lasts."""
        from IPython.display import display

        display(self, display_id=self.display_id)
        self._displayed = True
        self.start()

    def start(self) -> None:
        """Start updating: an asyncio task on the running loop (a kernel's); without a
        running loop, one update now (the view is then static)."""
        if self._task is not None or self.done:
            return
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self.update()
            return
        # An empty context: ipykernel keeps the parent message in a context variable, and a
        # task would otherwise copy the current cell's for good. Without it, updates go out
        # under the kernel's latest request, which frontends (nbclient) still listen to.
        self._task = contextvars.Context().run(self._loop.create_task, self._updates())

    def stop(self) -> None:
        """Stop updating (the run goes on)."""
        if self._task is not None:
            self._task.cancel()

    def update(self) -> None:
        """One update, blocking (for scripts and tests)."""
        self._after_poll(bridge.run(self.fetch()))

    def _after_poll(self, record: RunRecord) -> None:
        self.apply(record)
        self._render()
        if record.state.terminal:
            self.done = True
        # Without widgets the HTML summary is the view: update it each time. With widgets
        # only at the end, so that saved and converted notebooks show the final state.
        if self._displayed and (self.widget is None or self.done):
            self._refresh_display()

    def _refresh_display(self) -> None:
        from IPython.display import update_display

        try:
            update_display(self, display_id=self.display_id)
        except Exception:  # no frontend to update
            log.debug("update_display failed", exc_info=True)

    async def _updates(self) -> None:
        errors = 0
        try:
            while not self.done:
                try:
                    record = await bridge.arun(self.fetch())
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # shown in the view, retried
                    errors += 1
                    self.error = f"cannot update: {exc}"
                    self._render()
                    if errors >= MAX_ERRORS:
                        return
                else:
                    errors = 0
                    self.error = ""
                    self._after_poll(record)
                if not self.done:
                    await asyncio.sleep(self.interval)
        except asyncio.CancelledError:
            pass
        finally:
            self._task = None

    async def wait_done(self, timeout: float | None = None) -> None:
        """Await the end of the updates, on the kernel's loop: ``await view.wait_done()``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done and self._task is not None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {self.run_id} still {self.state}")
            await asyncio.sleep(0.1)

    # -- cancel

    def _on_cancel(self, _button: Any = None) -> None:
        if self.widget is not None:
            self.cancel_button.disabled = True
            self.cancel_button.description = "Cancelling…"
        if self._loop is not None and self._loop.is_running():
            self._loop.create_task(self._cancel())
        else:
            self._cancel_done(bridge.run(self._cancel_engine()))

    async def _cancel(self) -> None:
        self._cancel_done(await bridge.arun(self._cancel_engine()))

    def _cancel_engine(self) -> Coroutine[Any, Any, str]:
        from .core.errors import HpcmlError

        engine, run_id = self.run.engine, self.run.id  # found here, outside the bridge's loop

        async def cancel() -> str:
            try:
                await engine.cancel(run_id)
            except HpcmlError as exc:
                return str(exc)
            return ""

        return cancel()

    def _cancel_done(self, error: str) -> None:
        if error:
            self.error = error
        self._render()


def display_run(run: Run) -> None:
    """Display the live view of ``run``, once per cell execution (the magics display it and
    also return the run, which IPython would display a second time)."""
    from IPython import get_ipython

    ip = get_ipython()
    count = getattr(ip, "execution_count", None) if ip is not None else None
    view = run.view()
    if count is not None and view.shown_in == count:
        return
    view.shown_in = count
    view.display()
