"""Sweeps: many runs of one entry point and one code snapshot, handled as one.

A sweep is a record of its own (``SweepRecord``) with one MLflow parent run; its children
are ordinary runs (``RunRecord.sweep_id``) with their own MLflow runs, tagged
``mlflow.parentRunId`` so that MLflow's UI nests them. Everything is checked, and every
record and MLflow run created, before anything is submitted.

How the children reach the backend:

* where the backend has array jobs (``Features.job_arrays``: Slurm over SSH or FirecREST),
  as ONE array job in one shared run directory, with the code uploaded once and the cap
  on parallel children left to the scheduler (``%K``);
* elsewhere as jobs of their own, at most ``max_parallel`` active at once; the others are
  *held* (QUEUED, no job) and submitted by later poll passes as children end.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.errors import BackendUnavailable, Conflict, NotFound, Problem, UserInputError
from ..core.job import ArrayTask
from ..core.states import TERMINAL_STATES, JobStatus, RunState
from . import job_context, sweep_spec
from . import project as project_mod
from . import snapshot as snapshot_mod
from .locks import HOST
from .models import RunRecord, SweepDefinition, SweepPreview, SweepRecord, SweepView
from .requests import SubmitRequest, SweepRequest, SweepRerunRequest
from .runs import IN_FLIGHT, Plan, RunService, _merge_overrides, new_run_id

log = logging.getLogger(__name__)

SUBMIT_CONCURRENCY = 4  # children submitted at once where each is a job of its own
APPLY_CONCURRENCY = 16  # children's states recorded at once after an array submission
PREVIEW_SAMPLE = 20
WAITING = "waiting for a slot (max parallel {k})"
SLOT_FREE = "a slot is free: submitting"
# The env of a job that is the run's own; an array job's shared env leaves these out.
PER_RUN_ENV = ("MLFLOW_RUN_ID", "HPCML_RUN_ID", "HPCML_CHECKPOINT_DIR")
RERUNNABLE = (RunState.FAILED, RunState.TIMEOUT)
_SWEEP_ID = re.compile(r"s[0-9a-f]{3,11}")


def new_sweep_id() -> str:
    return "s" + uuid.uuid4().hex[:11]


def is_sweep_id(text: str) -> bool:
    """A sweep id or prefix (run ids are hex only, so an "s" never starts one)."""
    return bool(_SWEEP_ID.fullmatch(text))


class SweepService:
    def __init__(self, runs: RunService):
        self.runs = runs
        self.store = runs.store
        self.tracker = runs.tracker
        runs.sweep_hooks = self
        # Plans of sweeps this process submits held children of: sweep id → Plan.
        self._plans: dict[str, Plan] = {}
        self._fill_lock = asyncio.Lock()

    # ------------------------------------------------------------------ defining

    @staticmethod
    def _build(project: project_mod.ProjectSpec, req: SweepRequest
               ) -> tuple[sweep_spec.SweepPlan, list[dict[str, str]]]:
        ep = project.entry_points.get(req.entry_point)  # unknown: check_points says so
        types = {p.name: p.type for p in ep.parameters} if ep else None
        plan = sweep_spec.build(req.parameters, samples=req.random, seed=req.seed,
                                rows=req.rows, types=types)
        if plan.mode == "random" and not plan.axes:
            raise UserInputError(Problem(
                "random sampling needs a parameter to sample: give one as a list, range(), "
                "choice() or interval()", key="random"))
        return plan, sweep_spec.check_points(project, req.entry_point, plan.points)

    async def preview(self, req: SweepRequest, *, root: Path | None = None) -> SweepPreview:
        """The points a definition makes, checked against the MLproject; creates nothing."""
        project_dir = await asyncio.to_thread(
            project_mod.find_project_root, Path(req.project), root)
        project = await asyncio.to_thread(project_mod.load_project, project_dir)
        plan, points = await asyncio.to_thread(self._build, project, req)
        return SweepPreview(points=len(points), mode=plan.mode, sample=points[:PREVIEW_SAMPLE],
                            varying=plan.axes, max_parallel=req.max_parallel)

    # ------------------------------------------------------------------ submitting

    async def submit(self, req: SweepRequest, *, root: Path | None = None) -> SweepView:
        plan, _ = await self.runs.plan(req, root=root)
        spec, points = await asyncio.to_thread(self._build, plan.project, req)
        ids = [new_run_id() for _ in points]
        resolved = await asyncio.to_thread(self._resolve_all, plan, req.entry_point, points, ids)
        await self.runs.take_code(plan)
        assert plan.snapshot is not None
        notes = list(plan.notes)
        max_parallel = req.max_parallel
        if max_parallel is None and not plan.backend.supported_features().queue:
            # No scheduler queues the children here (the local machine): as many at once
            # as it has CPUs, unless the user says otherwise.
            max_parallel = os.cpu_count() or 1
            notes.append(f"max parallel {max_parallel} (this machine's CPUs): "
                              "set it to run more or fewer children at once")
        now = time.time()
        name = req.run_name or f"{req.entry_point}-sweep-{time.strftime('%m%d-%H%M%S')}"
        sweep = SweepRecord(
            id=new_sweep_id(), name=name, project_path=str(plan.project_dir),
            project_name=plan.project.name, entry_point=req.entry_point,
            definition=SweepDefinition(
                parameters=spec.parameters, mode=spec.mode, samples=spec.samples,
                seed=spec.seed, rows_source=req.rows_source, points=len(points)),
            max_parallel=max_parallel, backend=plan.cfg.kind,
            connection=plan.cfg.connection_name,
            config_path=str(plan.cfg.path) if plan.cfg.path else None,
            backend_config=plan.cfg.redacted(), config_overrides=req.overrides,
            tracking_mode=plan.cfg.tracking_mode, mlflow_experiment_name=plan.experiment_name,
            code=plan.code, snapshot_id=plan.snapshot.id, notes=notes,
            created_at=now, updated_at=now)
        children = self._children(plan, req, sweep, ids, resolved, range(len(points)))
        IN_FLIGHT.update(ids)  # held ones too: no poll pass starts them before they are ready
        try:
            if not await self._create(sweep, plan, children, first=True):
                return await self.get(sweep.id)
            return await self._launch(sweep, plan, children, array_name=sweep.id)
        finally:
            IN_FLIGHT.difference_update(ids)

    def _resolve_all(self, plan: Plan, entry_point: str, points: Sequence[dict[str, str]],
                     ids: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
        storage = self.runs.data_dir / "param-storage"
        return [project_mod.resolve_command(plan.project, entry_point, point, storage / run_id)
                for point, run_id in zip(points, ids, strict=True)]

    def _children(self, plan: Plan, req: SubmitRequest, sweep: SweepRecord, ids: Sequence[str],
                  resolved: Sequence[tuple[str, dict[str, str]]], indexes: Sequence[int],
                  rerun_of: Sequence[RunRecord | None] | None = None) -> list[RunRecord]:
        arrays = plan.backend.supported_features().job_arrays
        cap = sweep.max_parallel
        active = 0 if rerun_of is None else self._active_count(self.store.get_sweep(sweep.id))
        out: list[RunRecord] = []
        for n, (run_id, (command, params), index) in enumerate(
                zip(ids, resolved, indexes, strict=True)):
            held = not arrays and cap is not None and active + n >= cap
            out.append(self.runs.new_record(
                plan, req, run_id, command, params,
                rerun_of=rerun_of[n] if rerun_of else None,
                run_name=f"{sweep.name}-{index}", sweep_id=sweep.id, sweep_index=index,
                held=held, **({"state": RunState.QUEUED, "message": WAITING.format(k=cap)}
                              if held else {})))
        return out

    def _active_count(self, sweep: SweepRecord) -> int:
        """Children that hold a slot: active, not held (read with the index, not loaded)."""
        active = sum(n for state, n in sweep.counts.items() if not RunState(state).terminal)
        return active - len(self.store.held_children(sweep.id))

    async def _create(self, sweep: SweepRecord, plan: Plan, children: list[RunRecord],
                      *, first: bool) -> bool:
        """The records, then the MLflow parent (first time) and child runs: a crash in
        between leaves SUBMITTING children that a later poll resolves (as for runs).
        False when the children could not get MLflow runs (they are FAILED, saying why)."""
        if first:
            await asyncio.to_thread(self.store.insert_sweep, sweep)
        await asyncio.to_thread(self.store.insert_many, children)
        try:
            if first:
                exp_id, parent = await asyncio.to_thread(self._create_parent, sweep, plan)
                sweep.mlflow_experiment_id, sweep.mlflow_run_id = exp_id, parent
                await asyncio.to_thread(self.store.update_sweep, sweep.id,
                                        mlflow_experiment_id=exp_id, mlflow_run_id=parent)
        except Exception:
            # E.g. a deleted experiment: a user error, after which nothing may remain.
            await asyncio.to_thread(self._forget, sweep.id, children)
            raise
        try:
            created = await asyncio.to_thread(self._create_children, sweep, plan, children)
        except Exception as exc:  # noqa: BLE001 - MLflow trouble: children end FAILED, said why
            log.exception("could not create the MLflow runs of sweep %s", sweep.id)
            for child in children:
                await self.runs._apply(child, JobStatus(
                    RunState.FAILED, message=f"could not create its MLflow run: {exc}"))
            return False
        for i, child in enumerate(children):
            children[i] = created[child.id]
        return True

    def _forget(self, sweep_id: str, children: list[RunRecord]) -> None:
        for child in children:
            self.store.delete(child.id, expect=(RunState.SUBMITTING, RunState.QUEUED))
        self.store.delete_sweep(sweep_id)

    def _create_parent(self, sweep: SweepRecord, plan: Plan) -> tuple[str, str]:
        code = plan.code
        params = {f"sweep.{k}": v for k, v in sweep.definition.parameters.items()}
        params.update({"sweep.mode": sweep.definition.mode,
                       "sweep.points": str(sweep.definition.points)})
        if sweep.definition.seed is not None:
            params["sweep.seed"] = str(sweep.definition.seed)
        if sweep.max_parallel:
            params["sweep.max_parallel"] = str(sweep.max_parallel)
        tags = {"hpcml.sweep_id": sweep.id, "hpcml.backend": sweep.backend,
                "hpcml.connection": sweep.connection or "",
                "mlflow.project.entryPoint": sweep.entry_point,
                "hpcml.code.content_hash": code.content_hash if code else "",
                "mlflow.source.git.commit": (code.git_commit or "") if code else ""}
        exp_id, run_id = self.tracker.create_run(plan.experiment_name, sweep.name, params, tags)
        self.tracker.set_status(run_id, RunState.RUNNING)
        return exp_id, run_id

    def _create_children(self, sweep: SweepRecord, plan: Plan,
                         children: list[RunRecord]) -> dict[str, RunRecord]:
        out: dict[str, RunRecord] = {}
        for child in children:
            tags = {**self.runs.run_tags(plan, child), "mlflow.parentRunId": sweep.mlflow_run_id
                    or "", "hpcml.sweep_id": sweep.id, "hpcml.sweep_index": str(child.sweep_index)}
            exp_id, run_id = self.tracker.create_run(
                plan.experiment_name, child.name, child.parameters, tags)
            out[child.id] = self.store.update(child.id, mlflow_experiment_id=exp_id,
                                              mlflow_run_id=run_id)
        return out

    async def _launch(self, sweep: SweepRecord, plan: Plan, children: list[RunRecord],
                      *, array_name: str) -> SweepView:
        """Submit the children not held. ``array_name``: the array job's name in paths and
        job names (the sweep's id; a re-run's array gets a directory of its own, so the
        task files and exit codes of an earlier array are never overwritten)."""
        starting = [c for c in children if not c.held]
        IN_FLIGHT.update(c.id for c in starting)
        try:
            if plan.backend.supported_features().job_arrays:
                await self._launch_array(sweep, plan, starting, array_name)
            else:
                await self._launch_each(plan, starting)
        finally:
            IN_FLIGHT.difference_update(c.id for c in starting)
        return await self.get(sweep.id)

    async def _launch_each(self, plan: Plan, children: list[RunRecord]) -> None:
        bound = asyncio.Semaphore(SUBMIT_CONCURRENCY)

        async def one(child: RunRecord) -> None:
            async with bound:
                await self.runs._launch(child, plan)

        await asyncio.gather(*(one(c) for c in children))

    async def _launch_array(self, sweep: SweepRecord, plan: Plan,
                            children: list[RunRecord], array_name: str) -> None:
        """ONE array job (per chunk the backend must split it into) in one run directory."""
        if not children:
            return
        backend, snapshot = plan.backend, plan.snapshot
        assert snapshot is not None
        # The array's own context: named after the sweep (its run dir, job name, comment).
        lead = children[0].model_copy(update={"id": array_name})
        ctx = job_context.context(lead, plan.config)
        fields: list[dict[str, Any]] = [{} for _ in children]
        try:
            data: dict[str, Any] = {}
            if plan.data.specs:  # once for the whole array: its tasks share the run directory
                stages, uses, notes = await self.runs.data.stage(plan.data, backend,
                                                                 plan.project_dir)
                ctx = ctx.replace(data=tuple(stages))
                data = {"datasets": uses, **({"notes": [*lead.notes, *notes]} if notes else {})}
            run_dir = await backend.run_dir_for(ctx)
            envs = [{**self.runs.job_env(c, plan.cfg, run_dir, task=i),
                     **plan.data.job_env(run_dir)} for i, c in enumerate(children)]
            shared = {k: v for k, v in envs[0].items() if k not in PER_RUN_ENV}
            ctx = ctx.replace(run_dir=run_dir, env=shared, command="")
            extra: dict[str, bytes] = {}
            for i, child in enumerate(children):
                extra.update(self.runs.run_files(child, run_dir, task=i))
            tasks = [ArrayTask(i, job_context.context(c, plan.config, run_dir, envs[i]))
                     for i, c in enumerate(children)]
            prepared = await backend.prepare(
                ctx, snapshot, extra,
                progress=lambda s, t: self.runs._progress(children[0].id, s, t))
            await asyncio.to_thread(self.store.update_sweep, sweep.id, run_dir=prepared.run_dir)
            # Recorded before the submission: after a crash in it, a restarted engine finds
            # each task's job through the array's record in this directory.
            await asyncio.to_thread(self._record_tasks, children, prepared.run_dir, array_name)
            submissions = await backend.submit_array(prepared, tasks,
                                                     max_parallel=sweep.max_parallel)
            statuses = [s.status for s in submissions]
            fields = [{"backend_job_id": s.job_id, **data} for s in submissions]
        except BackendUnavailable as exc:
            statuses = [JobStatus(RunState.UNKNOWN, message=str(exc))] * len(children)
        except Exception as exc:  # noqa: BLE001 - any fault must end in a definite state
            log.exception("submission of sweep %s failed", sweep.id)
            statuses = [JobStatus(RunState.FAILED, message=f"submission failed: {exc}")
                        ] * len(children)
        finally:
            self.runs.upload_progress.pop(children[0].id, None)
        await self._note_arrays(sweep, [f.get("backend_job_id") for f in fields])
        bound = asyncio.Semaphore(APPLY_CONCURRENCY)

        async def apply(child: RunRecord, status: JobStatus, f: dict[str, Any]) -> None:
            async with bound:
                new = await self.runs._apply(child, status, **f)
                if new.cancel_requested and new.backend_job_id and not new.state.terminal:
                    await self.runs._send_cancel(new)  # cancelled while it was submitted

        await asyncio.gather(*(apply(c, s, f) for c, s, f in
                               zip(children, statuses, fields, strict=True)))

    def _record_tasks(self, children: list[RunRecord], run_dir: str, array_name: str) -> None:
        for i, child in enumerate(children):
            children[i] = self.store.update(child.id, run_dir=run_dir, array_task=i,
                                            array_name=array_name)

    async def _note_arrays(self, sweep: SweepRecord, job_ids: Sequence[str | None]) -> None:
        arrays = list(dict.fromkeys(j.split("_", 1)[0] for j in job_ids if j))
        if not arrays:
            return
        current = await asyncio.to_thread(self.store.get_sweep, sweep.id)
        notes = list(current.notes)
        if len(arrays) > 1:
            notes.append(f"{len(job_ids)} children exceed the cluster's largest array "
                         f"(MaxArraySize): submitted as {len(arrays)} array jobs "
                         f"{', '.join(arrays)}, each starting after the previous one")
        await asyncio.to_thread(self.store.update_sweep, sweep.id,
                                array_jobs=[*current.array_jobs, *arrays], notes=notes)

    # ------------------------------------------------------------------ held children

    async def fill_slots(self, held: list[RunRecord]) -> None:
        """Submit held children of sweeps whose active children are fewer than their cap."""
        by_sweep: defaultdict[str, list[RunRecord]] = defaultdict(list)
        for run in held:
            if not run.sweep_id or run.cancel_requested:
                continue
            if run.id in IN_FLIGHT or (not run.mlflow_run_id and self.runs._being_submitted(run)):
                continue  # its sweep is still being created (here, or by another process)
            by_sweep[run.sweep_id].append(run)
        async with self._fill_lock:  # one filler per process: counts stay right
            await asyncio.gather(*(self._fill(s, w) for s, w in by_sweep.items()))

    async def _fill(self, sweep_id: str, waiting: list[RunRecord]) -> None:
        try:
            sweep = await asyncio.to_thread(self.store.get_sweep, sweep_id)
        except NotFound:
            return
        active = await asyncio.to_thread(self._active_count, sweep)
        free = (sweep.max_parallel or len(waiting)) - active
        if free <= 0:
            return
        claimed: list[RunRecord] = []
        for child in sorted(waiting, key=lambda r: (r.sweep_index or 0, r.created_at)):
            if len(claimed) == free:
                break
            # Compare-and-set: of two processes filling the same slot, one wins.
            got = await asyncio.to_thread(
                self.store.transition, child.id, RunState.SUBMITTING, message=SLOT_FREE,
                expect=(RunState.QUEUED,), where={"held": True, "cancel_requested": False},
                held=False, submitter_host=HOST, submitter_pid=os.getpid())
            if got is None:
                continue
            if not got.mlflow_run_id:
                # Its sweep's submission was interrupted before its MLflow run existed.
                await self.runs._apply(got, JobStatus(RunState.FAILED, message=(
                    "the sweep's submission was interrupted before this run was created "
                    "in MLflow")))
                continue
            claimed.append(got)
        if not claimed:
            return
        IN_FLIGHT.update(c.id for c in claimed)
        try:
            try:
                plan = await self._plan_of(sweep)
            except Exception as exc:  # noqa: BLE001 - e.g. its config file is gone: said why
                for child in claimed:
                    await self.runs._apply(child, JobStatus(
                        RunState.FAILED, message=f"could not submit: {exc}"))
                return
            await self._launch_each(plan, claimed)
        finally:
            IN_FLIGHT.difference_update(c.id for c in claimed)

    async def _plan_of(self, sweep: SweepRecord) -> Plan:
        """The sweep's project, config, backend and snapshot, read again (once per process)."""
        if sweep.id in self._plans:
            return self._plans[sweep.id]
        assert sweep.snapshot_id
        snapshot = await asyncio.to_thread(snapshot_mod.load_snapshot, sweep.snapshot_id,
                                           self.runs.object_dir, self.runs.manifest_dir)
        req = SubmitRequest(project=sweep.project_path, entry_point=sweep.entry_point,
                            backend_config=sweep.config_path, overrides=sweep.config_overrides,
                            experiment_name=sweep.mlflow_experiment_name)
        plan, _ = await self.runs.plan(req, snapshot=snapshot)
        plan.code = sweep.code
        self._plans[sweep.id] = plan
        return plan

    async def child_ended(self, run: RunRecord) -> None:
        """A child ended: start a held sibling in its slot; close the parent run when it
        was the last."""
        assert run.sweep_id
        try:
            sweep = await asyncio.to_thread(self.store.get_sweep, run.sweep_id)
        except NotFound:
            return
        if sweep.counts.get(RunState.QUEUED.value):
            held = await asyncio.to_thread(self.store.held_children, sweep.id)
            if held:
                asyncio.ensure_future(self._fill_later(held))
        if sweep.state is not None and sweep.state.terminal and sweep.ended_at is None:
            await self._close_parent(sweep)

    async def _fill_later(self, held: list[RunRecord]) -> None:
        try:
            await self.fill_slots(held)
        except Exception:  # noqa: BLE001 - the next poll pass tries again
            log.exception("could not start held children")

    async def _close_parent(self, sweep: SweepRecord) -> None:
        assert sweep.state is not None
        self._plans.pop(sweep.id, None)  # no held child left to submit
        if sweep.mlflow_run_id:
            try:
                await asyncio.to_thread(self.tracker.set_status, sweep.mlflow_run_id, sweep.state)
            except Exception as exc:  # noqa: BLE001 - tracking trouble must not break the sweep
                log.warning("could not close the MLflow parent run of sweep %s: %r", sweep.id, exc)
                return  # tried again when the next child ends or the sweep is read
        await asyncio.to_thread(self.store.update_sweep, sweep.id, ended_at=time.time())

    # ------------------------------------------------------------------ reading

    async def get(self, sweep_id: str) -> SweepView:
        sweep = await asyncio.to_thread(self.store.get_sweep, sweep_id)
        children = await asyncio.to_thread(self.store.sweep_children, sweep.id)
        return SweepView(**sweep.model_dump(), children=children)

    async def current(self, sweep_id: str) -> SweepView:
        """The sweep after one poll of its active children."""
        view = await self.get(sweep_id)
        active = [c for c in view.children if not c.state.terminal]
        if active:
            await self.runs.refresh(active)
            view = await self.get(view.id)
        if view.state is not None and view.state.terminal and view.ended_at is None:
            await self._close_parent(view)
            view = await self.get(view.id)
        return view

    async def list(self, *, limit: int = 100, offset: int = 0) -> list[SweepRecord]:
        return await asyncio.to_thread(self.store.list_sweeps, limit=limit, offset=offset)

    # ------------------------------------------------------------------ actions

    async def cancel(self, sweep_id: str) -> SweepView:
        """Cancel every child still active (held ones end CANCELLED at once)."""
        view = await self.get(sweep_id)
        active = [c for c in view.children if not c.state.terminal]
        if not active:
            raise Conflict(f"sweep {view.id} has no active child")
        bound = asyncio.Semaphore(APPLY_CONCURRENCY)

        async def one(child: RunRecord) -> None:
            async with bound:
                try:
                    await self.runs.cancel(child.id)
                except Conflict:
                    pass  # it ended meanwhile

        await asyncio.gather(*(one(c) for c in active))
        return await self.get(view.id)

    async def rerun(self, sweep_id: str, req: SweepRerunRequest, *,
                    root: Path | None = None) -> SweepView:
        """Re-run the failed children (the latest attempt of each point that FAILED or
        TIMED OUT), same snapshot, ``req``'s overrides on each, as new children."""
        view = await self.get(sweep_id)
        latest = [c for c in view.children if c.superseded_by is None]
        wanted = RERUNNABLE if req.failed else TERMINAL_STATES
        again = [c for c in latest if c.state in wanted]
        if not again:
            raise Conflict(f"sweep {view.id} has no failed child to re-run")
        assert view.snapshot_id
        snapshot = await asyncio.to_thread(snapshot_mod.load_snapshot, view.snapshot_id,
                                           self.runs.object_dir, self.runs.manifest_dir)
        overrides = _merge_overrides(view.config_overrides, req.overrides)
        sub = SubmitRequest(project=view.project_path, entry_point=view.entry_point,
                            backend_config=view.config_path, overrides=overrides,
                            experiment_name=view.mlflow_experiment_name)
        plan, _ = await self.runs.plan(sub, root=root, snapshot=snapshot)
        plan.code = view.code
        await self.runs.take_code(plan, rerun_of=again[0])
        points = [{**c.parameters, **{k: str(v) for k, v in req.parameters.items()}}
                  for c in again]
        points = await asyncio.to_thread(sweep_spec.check_points, plan.project,
                                         view.entry_point, points)
        ids = [new_run_id() for _ in again]
        resolved = await asyncio.to_thread(self._resolve_all, plan, view.entry_point, points, ids)
        sweep = SweepRecord(**{k: v for k, v in view.model_dump().items() if k != "children"})
        sweep.config_overrides = overrides
        children = self._children(plan, sub, sweep, ids, resolved,
                                  [c.sweep_index or 0 for c in again], rerun_of=again)
        IN_FLIGHT.update(ids)
        try:
            if not await self._create(sweep, plan, children, first=False):
                return await self.get(sweep.id)
            await asyncio.to_thread(self._supersede, again, children)
            await self._reopen(sweep)
            return await self._launch(sweep, plan, children,
                                      array_name=f"{sweep.id}r{uuid.uuid4().hex[:4]}")
        finally:
            IN_FLIGHT.difference_update(ids)

    def _supersede(self, old: Sequence[RunRecord], new: Sequence[RunRecord]) -> None:
        for before, after in zip(old, new, strict=True):
            self.store.update(before.id, superseded_by=after.id)

    async def _reopen(self, sweep: SweepRecord) -> None:
        if sweep.mlflow_run_id:
            try:
                await asyncio.to_thread(self.tracker.set_status, sweep.mlflow_run_id,
                                        RunState.RUNNING)
            except Exception as exc:  # noqa: BLE001 - closed again when the children end
                log.warning("could not reopen the MLflow parent of sweep %s: %r", sweep.id, exc)
        await asyncio.to_thread(self.store.update_sweep, sweep.id, ended_at=None)

