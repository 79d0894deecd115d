"""The Slurm-over-SSH backend (``kind = "ssh"``).

* One :class:`~.connection.SSHConnection` per cluster (the registry keeps one backend
  per connection), so polls, log reads and uploads share one SSH handshake.
* Run directories: ``<base>/hpcml/<project>/<run-id>``, base = ``SSH.WorkDir`` or
  ``$SCRATCH`` or ``$HOME`` as the login shell sets them.
* ``prepare`` gets the code onto the cluster through its object cache (``transfer``):
  nothing travels when the snapshot's tree is known to be there. ``submit`` is ONE
  command: copy the tree into the run directory, unpack the per-run files from a tar on
  stdin (batch script from ``batchscript``, offline MLflow store, ``code.json``, the
  secrets file: 0600, outside the run directory, sourced by the script), run the
  login-node pre-commands, ``sbatch --parsable``, record the job id.
* ``poll``: one ``squeue`` for all jobs of the cluster, then one ``sacct`` (+ the jobs'
  ``.hpcml/exit_code`` files) per 2,000 jobs that ended: a fixed script, the run
  directories on stdin (a command line is bounded; 1,000 ended runs once made one too long
  for sshd). Backs off while nothing changes; works without accounting (exit-code files).
  Unreachable → raise ``BackendUnavailable`` (the engine shows UNKNOWN).
* Concurrent cancels go out as one ``scancel`` with many ids; the offline stores of all
  running runs are listed with one ``find`` (``list_files_many``).
* A dropped connection during ``submit``: the command may go on on the login node and
  still submit; a marker file (host, pid) tells ``find_submitted`` to stay unsure until
  it has ended, then the job is adopted (job id file, ``--comment``) or the run fails.
* Service jobs: ``open_tunnel`` forwards a local port to the job's node over the shared
  connection (``tunnel.py``).
* Files: SFTP reads at an offset (``stat`` + ``seek``), listings with one ``find``, and no
  path (``..``, absolute, symlink) may leave the run directory.
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
import posixpath
import re
import shlex
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import asyncssh

from ...core import yamlio
from ...core.config_models import SSHConfig
from ...core.errors import BackendUnavailable, HpcmlError, NotFound, Problem, UserInputError
from ...core.files import META_DIR, OFFLINE_MLRUNS, Chunk, FileInfo, run_relpath
from ...core.job import (
    ArrayTask,
    DataProgress,
    DataVersion,
    JobContext,
    JobRef,
    PreparedJob,
    ServiceEndpoint,
    StagedData,
    StagedVersion,
    Submission,
    TargetListing,
)
from ...core.snapshots import ProgressCallback, Snapshot
from ...core.states import JobStatus, RunState
from ..base import Backend, Features, JobSpec, Tunnel
from ..batchscript import (
    ARRAYS_FILE,
    CLEANUP_SCRIPT,
    HONOURED_RESOURCES,
    REQUEUE_RESOURCES,
    SCRIPT_NAME,
    render_batch_script,
    secrets_file_content,
    split_env,
    task_files,
)
from ..data_links import data_links_command
from ..exitrecord import EXIT_FILE, exit_file, parse_exit_record
from ..slurm_common import (
    JOB_ID,
    SlurmJob,
    array_chunks,
    array_elements,
    array_spec,
    array_task,
    cancel_moot,
    index_jobs,
    job_status,
    sbatch_message,
)
from .connection import CommandPoisoned, CommandTooLong, SSHConnection, SSHError
from .data_store import DataStore
from .transfer import TREE_MISSING, TransferError, Uploader, UploadStats
from .tunnel import open_ssh_tunnel

log = logging.getLogger(__name__)

JOB_ID_FILE = f"{META_DIR}/job_id"
POST_LOGIN_SCRIPT = f"{META_DIR}/post_login.sh"
LOGIN_LOG = f"{META_DIR}/login.log"
CODE_FILE = f"{META_DIR}/code.json"
# Exit statuses of the submit command (besides TREE_MISSING): nothing was submitted.
_SBATCH_FAILED, _PRE_FAILED, _SETUP_FAILED = 96, 98, 99
# job id (123 or 123_4) | unique id | state | restarts | requeue on preemption | reason
SQUEUE_FORMAT = "JobArrayID:|,JobID:|,State:|,RestartCnt:|,Requeue:|,Reason:"
SACCT_FIELDS = "JobIDRaw,JobID,State,ExitCode"
_SACCT_OFF = ("accounting storage is disabled", "slurmdbd", "connection refused",
              "unable to contact")

def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:80] or "project"


@dataclass(frozen=True)
class SlurmPrepared(PreparedJob[SSHConfig]):
    """What ``prepare`` hands to ``submit`` (the run directory is made by submit's command)."""

    snapshot: Snapshot
    cache: str  # the cluster's object cache, where the code's tree waits
    links: dict[str, Path]  # files outside the snapshot that go through the cache
    link_hashes: dict[str, str]
    extras: dict[str, bytes]
    image: str | None  # the Apptainer image on the cluster, when prepare placed one


class SubmitError(HpcmlError):
    """Slurm or a login-node pre-command refused the job: the message says why."""

    status = 400


class SlurmBackend(Backend[SSHConfig]):
    kind = "ssh"
    config_model = SSHConfig
    # Poll backoff: after a poll that changed nothing, the next squeue waits this long
    # (doubling up to backoff_max); a change, a submit or a cancel resets it.
    backoff_start = 1.0
    backoff_max = 8.0
    sacct_retry = 600.0  # seconds before trying sacct again after it said "disabled"
    # How long an interrupted submission on another login node (not checkable from here)
    # may still submit its job: until then the run stays UNKNOWN.
    orphan_submit_patience = 600.0
    # The site's MaxArraySize: asked of the cluster at the first array submission (set it
    # to impose a smaller one).
    max_array_size: int | None = None

    def __init__(self, config: SSHConfig | Mapping[str, Any] | None, data_dir: Path):
        super().__init__(config, data_dir)
        self.conn = SSHConnection(self.config.ssh.as_written())
        self.uploader = Uploader(self.conn, Path(data_dir) / "snapshots")
        self.data_store = DataStore(self.uploader)
        self.last_upload: UploadStats | None = None
        self._base: str | None = None
        self._cache: dict[str, JobStatus] = {}  # job id → last status reported
        self._next_poll = 0.0
        self._interval = 0.0
        self._sacct_off_until = 0.0
        self._realroots: dict[str, str] = {}  # run dir → its realpath
        # waiting for scancel
        self._cancels: list[tuple[str, str | None, str | None, asyncio.Future[None]]] = []
        self._cancelling: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ identity

    def supported_features(self) -> Features:
        return Features(cancel=True, logs=True, log_follow=True, artifacts=True, rerun=True,
                        upload_progress=True, offline_tracking=True,
                        resources=[*HONOURED_RESOURCES, *REQUEUE_RESOURCES],
                        job_arrays=True, max_array_size=self.max_array_size or 1001,
                        requeue=True, data_staging=True, data_fetch=True,
                        services=True, tunnel=True)

    # ------------------------------------------------------------ layout

    async def _base_dir(self) -> str:
        """``<WorkDir or $SCRATCH or $HOME>/hpcml`` on the cluster (resolved once)."""
        if self._base:
            return self._base
        await self.conn.connection()
        env = self.conn.login_env
        home = env.get("HOME") or ""
        wd = self.config.ssh.work_dir
        if wd:
            base = str(wd)
            if base == "~" or base.startswith("~/"):
                base = home + base[1:]
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)",
                          lambda m: env.get(m.group(1) or m.group(2), m.group(0)), base)
            if not base.startswith("/") or "$" in base:
                raise SSHError("SSH.WorkDir must be an absolute path on the cluster, "
                               f"got {wd!r} (→ {base!r})")
        else:
            base = env.get("SCRATCH") or home
            if not base.startswith("/"):
                raise SSHError(
                    f"cannot tell the home directory on {self.conn.label}: set SSH.WorkDir")
        self._base = posixpath.join(base.rstrip("/") or "/", "hpcml")
        return self._base

    async def _definite_base_dir(self) -> str:
        try:
            return await self._base_dir()
        except BackendUnavailable as exc:  # nothing was submitted: a definite failure
            raise SSHError(str(exc)) from None

    @staticmethod
    def _run_dir(ctx: JobContext[SSHConfig], base: str) -> str:
        if ctx.run_dir:
            return ctx.run_dir
        if not ctx.run_id or not re.fullmatch(r"[A-Za-z0-9_-]+", ctx.run_id):
            raise UserInputError(Problem(f"invalid run id {ctx.run_id!r}"))
        return f"{base}/{_slug(ctx.project_name)}/{ctx.run_id}"

    async def run_dir_for(self, ctx: JobContext[SSHConfig]) -> str:
        """``<base>/<project>/<run id>``; asks the cluster for its base directory once."""
        return self._run_dir(ctx, await self._definite_base_dir())

    def _path(self, ref: JobRef, relpath: str) -> tuple[str, str]:
        root = ref.run_dir
        if not root:
            raise NotFound(f"run {ref.run_id} has no run directory yet")
        rel = run_relpath(relpath)
        return root, posixpath.join(root, rel) if rel else root

    # ------------------------------------------------------------ prepare

    async def prepare(self, ctx: JobContext[SSHConfig], snapshot: Snapshot,
                      extra_files: Mapping[str, bytes] | None = None,
                      progress: ProgressCallback | None = None) -> SlurmPrepared:
        """Get the code onto the cluster (its tree in the object cache; nothing travels when
        the tree is known to be there). The run directory itself is made by ``submit``, in
        the same command as ``sbatch``."""
        base = await self._definite_base_dir()
        run_dir = self._run_dir(ctx, base)
        extras = {}
        for key, data in (extra_files or {}).items():
            run_relpath(key.rstrip("/"), "extra file")
            extras[key] = _absolute_offline_paths(key, data, run_dir)
        links, image = self._apptainer_links(ctx, snapshot)
        cache = f"{base}/.cache"
        link_hashes = await self.uploader.link_hashes(links)
        self.last_upload = await self.uploader.ensure(snapshot, cache, links, link_hashes,
                                                      progress=progress)
        return SlurmPrepared(ctx, run_dir, snapshot, cache, links, link_hashes, extras, image)

    @staticmethod
    def _apptainer_links(ctx: JobContext[SSHConfig],
                         snapshot: Snapshot) -> tuple[dict[str, Path], str | None]:
        """A local Apptainer image outside the snapshot goes through the object cache too:
        (files to link into the run directory, the image's path there)."""
        app = ctx.environment.apptainer
        if app is None or app.type != "local":
            return {}, None
        path = app.path
        if not path.startswith("/") and any(f.relpath == path for f in snapshot.files):
            return {}, path  # uploaded with the project (and hard-linked if large)
        local = Path(path).expanduser()
        if not local.is_absolute():
            local = Path(ctx.project_path) / local
        if not local.is_file():
            raise UserInputError(Problem(f"Apptainer image not found: {local}",
                                         key="Environment.Apptainer.Path"))
        rel = f"{META_DIR}/apptainer/{local.name}"
        return {rel: local}, rel

    # ------------------------------------------------------------ data

    async def _cache_dir(self) -> str:
        return f"{await self._definite_base_dir()}/.cache"

    async def stage_data(self, versions: Sequence[DataVersion],
                         progress: DataProgress | None = None) -> list[StagedData]:
        """Into the data store beside the code cache (``data_store``): only missing contents
        travel; nothing at all but one command when the cluster holds them all."""
        return await self.data_store.stage(await self._cache_dir(), list(versions), progress)

    async def fetch_data(self, name: str, url: str) -> StagedVersion:
        """The login node downloads it (Python's urllib: no curl or wget needed)."""
        return await self.data_store.fetch(await self._cache_dir(), name, url)

    async def target_listing(self, path: str) -> TargetListing:
        if not path.startswith("/") or "\0" in path:
            raise UserInputError(Problem(f"a path on the cluster must be absolute: {path!r}"))
        return await self.data_store.listing(await self._cache_dir(), path)

    async def staged_versions(self) -> list[StagedVersion]:
        return await self.data_store.versions(await self._cache_dir())

    async def remove_staged(self, digest: str) -> bool:
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            return False  # not a version's name: not in the store
        return await self.data_store.remove(await self._cache_dir(), digest)

    # ------------------------------------------------------------ submit

    async def submit(self, prepared: PreparedJob[SSHConfig]) -> Submission:
        """One command: materialise the run directory from the cached tree, unpack the
        per-run files (script, offline store, code.json, secrets) from a tar on stdin, run
        the login-node pre-commands, ``sbatch --parsable``, record the job id."""
        prep = self._prepared(prepared)
        ctx, run_dir = prep.ctx, prep.run_dir
        base = await self._base_dir()
        secrets_path = self._secrets_path(base, ctx)
        script = render_batch_script(JobSpec.from_context(ctx), run_dir, secrets_file=secrets_path,
                                     apptainer_image=self._image(prep),
                                     extra_sbatch=[f"--comment=hpcml:{ctx.run_id}"],
                                     requeue=ctx.requeue)
        ids = await self._submit_files(prep, base, {SCRIPT_NAME: script.encode()}, [SCRIPT_NAME])
        self._interval, self._next_poll = 0.0, 0.0
        return Submission(ids[0], JobStatus(RunState.QUEUED))

    async def submit_array(self, prepared: PreparedJob[SSHConfig], tasks: Sequence[ArrayTask],
                           *, max_parallel: int | None = None) -> list[Submission]:
        """``tasks`` as ONE Slurm job array in the shared run directory ``prepared``: the task
        files (:func:`~..batchscript.task_files`) next to the code, ``sbatch --array=…%K``
        (K = ``max_parallel``). More tasks than the site's ``MaxArraySize`` allows become
        several arrays, each after the one before (``--dependency=afterany:<id>``), so that
        still at most K run at once. All in the same one remote command as ``submit``; a
        refused later array cancels the ones before it (nothing is left half-submitted).
        One ``Submission`` per task, in order, job id "<array id>_<index in its array>"."""
        if not tasks:
            return []
        prep = self._prepared(prepared)
        ctx, run_dir = prep.ctx, prep.run_dir
        if max_parallel is not None and (isinstance(max_parallel, bool) or max_parallel < 1):
            raise UserInputError(Problem(f"max parallel must be at least 1, got {max_parallel!r}"))
        base = await self._base_dir()
        limit = await self._site_max_array_size()
        chunks = array_chunks([t.index for t in tasks], limit)
        if len(chunks) > 1:
            log.info("sweep %s: %d tasks in %d job arrays (MaxArraySize %d on %s)", ctx.run_id,
                     len(tasks), len(chunks), limit, self.conn.label)
        secrets_path = self._secrets_path(base, ctx)
        files: dict[str, bytes] = dict(task_files(tasks, secrets_path))
        scripts: list[str] = []
        for k, (offset, locals_) in enumerate(chunks):
            spec = array_spec(locals_)
            if max_parallel and max_parallel < len(locals_):
                spec += f"%{max_parallel}"
            name = SCRIPT_NAME if k == 0 else f"{META_DIR}/job.{k}.sbatch"
            files[name] = render_batch_script(
                JobSpec.from_context(ctx), run_dir, secrets_file=secrets_path,
                apptainer_image=self._image(prep), array=spec, array_offset=offset,
                extra_sbatch=[f"--comment=hpcml:{ctx.run_id}"], requeue=ctx.requeue).encode()
            scripts.append(name)
        ids = await self._submit_files(prep, base, files, scripts, [o for o, _ in chunks])
        where: dict[int, str] = {}
        for (offset, locals_), array_id in zip(chunks, ids, strict=True):
            for local in locals_:
                where[offset + local] = f"{array_id}_{local}"
        self._interval, self._next_poll = 0.0, 0.0
        return [Submission(where[t.index], JobStatus(RunState.QUEUED)) for t in tasks]

    async def _site_max_array_size(self) -> int:
        """The cluster's ``MaxArraySize`` (``scontrol show config``), asked once per
        connection; ``max_array_size`` set on the instance wins (a site's policy, tests)."""
        if self.max_array_size:
            return self.max_array_size
        res = await self.conn.run("scontrol show config | sed -n 's/^MaxArraySize *= *//p'",
                                  name="scontrol")
        text = res.out.strip()
        self.max_array_size = int(text) if text.isdigit() and int(text) > 0 else 1001
        return self.max_array_size

    def _prepared(self, prepared: PreparedJob[SSHConfig]) -> SlurmPrepared:
        if not isinstance(prepared, SlurmPrepared):
            raise SubmitError("prepare() must run before submit()")
        return prepared

    @staticmethod
    def _secrets_path(base: str, ctx: JobContext[SSHConfig]) -> str | None:
        _, secret = split_env(ctx.env)
        return f"{base}/.secrets/{ctx.run_id}.env" if secret else None

    @staticmethod
    def _image(prep: SlurmPrepared) -> str | None:
        image = prep.image
        app = prep.ctx.environment.apptainer
        if app is not None and image is None:
            image = app.path if app.type == "remote" or app.path.startswith("/") \
                else f"{META_DIR}/apptainer/{PurePosixPath(app.path).name}"
        return image

    async def _submit_files(self, prep: SlurmPrepared, base: str, run_files: dict[str, bytes],
                            scripts: list[str], offsets: list[int] | None = None) -> list[str]:
        """The one submit command with ``run_files`` (scripts, task files) added to the
        per-run files; ``sbatch`` for each of ``scripts`` in order (each after the one
        before when there are several). Returns their job ids."""
        ctx, run_dir = prep.ctx, prep.run_dir
        _, secret = split_env(ctx.env)
        secrets_path = self._secrets_path(base, ctx)
        pre = list(ctx.environment.pre_run_login)
        post = list(ctx.environment.post_run_login)
        files: dict[str, bytes | None] = dict(prep.extras)
        files.update(run_files)
        files[CODE_FILE] = json.dumps({
            "snapshot_id": prep.snapshot.id, "files": len(prep.snapshot.files),
            "bytes": prep.snapshot.total_bytes,
        }).encode()
        if post:
            files[POST_LOGIN_SCRIPT] = "".join(
                f"bash -c {shlex.quote(c)} </dev/null || echo \"hpcml: post-run command on the "
                f"login node failed with exit code $?: \"{shlex.quote(c)} >&2\n"
                for c in post).encode()
        # Secrets travel on stdin only (a command line is visible in `ps` on the login node);
        # without them, small text files ride in the command itself: stdin costs a round trip.
        inline = None if secret else _inline_files(run_dir, files)
        payload = None if inline else _tar(run_dir, files, secrets_path,
                                           secrets_file_content(secret) if secret else None)

        res: Any = None
        job_ids: list[str] | None = None
        for attempt in range(2):
            materialise = self.uploader.materialise_command(prep.snapshot, prep.cache, run_dir,
                                                            prep.link_hashes)
            if ctx.data:
                materialise += "\n" + data_links_command(ctx.data, run_dir, _SETUP_FAILED)
            command = _submit_command(materialise, run_dir, secrets_path, pre, inline,
                                      self._submit_marker(base, ctx.run_id), scripts, offsets)
            try:
                res = await self.conn.run(command, input=payload, retry=False, name="sbatch")
            except CommandTooLong as exc:
                if inline is None:  # the login-node pre-commands alone are too long
                    raise SubmitError(
                        f"{exc}: shorten Environment.PreRunCommandOnLoginNode") from None
                inline, payload = None, _tar(run_dir, files, None, None)  # the files go on stdin
                continue
            except BackendUnavailable:
                # The connection dropped during the command: did the job reach Slurm?
                if offsets is not None:
                    raise  # a sweep: find_submitted_tasks tells its tasks' ids
                found = await self.find_submitted(ctx.replace(run_dir=run_dir))
                if found is None:
                    raise
                job_ids = [found]
                break
            if res.exit_status == TREE_MISSING and attempt == 0:
                # The cluster's cache lost the tree (pruned or cleaned): nothing was done yet.
                log.info("snapshot tree %s missing on %s: rebuilding it",
                         prep.snapshot.id, self.conn.label)
                self.uploader.forget_tree(prep.snapshot.id)
                self.last_upload = await self.uploader.ensure(
                    prep.snapshot, prep.cache, prep.links, prep.link_hashes, force=True)
                continue
            break
        if job_ids is None:
            job_ids = _submitted_ids(res.out)
            if len(job_ids) != len(scripts):
                raise _submit_failure(res, pre, self.conn.label)
        return job_ids

    @staticmethod
    def _submit_marker(base: str, run_id: str) -> str | None:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", run_id or ""):
            return None
        return f"{base}/.submitting/{run_id}"

    async def find_submitted(self, ctx: JobContext[SSHConfig]) -> str | None:
        """The job id if the job reached Slurm; None only when sure it did not. While the
        submit command of a dropped connection still runs on the login node (its marker
        file names a live process), or may run on another login node, we cannot know:
        BackendUnavailable (the run stays UNKNOWN and is asked about again)."""
        run_dir, run_id = ctx.run_dir, ctx.run_id
        if run_dir:
            async def read_id(sftp: asyncssh.SFTPClient) -> str | None:
                try:
                    async with sftp.open(f"{run_dir}/{JOB_ID_FILE}", "rb") as f:
                        data: bytes = await f.read()  # "rb": bytes
                        return data.decode().strip().split(";")[0] or None
                except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPFailure):
                    return None
            found = await self.conn.sftp_call(read_id)
            if found:
                return found
        marker = self._submit_marker(await self._base_dir(), run_id)
        check = ""
        if marker:
            m = shlex.quote(marker)
            # The marker is checked before squeue: once its process is gone, squeue is final.
            check = (f"if [ -f {m} ]; then read -r host pid < {m}; "
                     f"if [ \"$host\" != \"$(uname -n)\" ]; then "
                     f"echo \"__HPCML_SUBMIT elsewhere $(( $(date +%s) - $(stat -c %Y {m}) ))\"; "
                     f"elif kill -0 \"$pid\" 2>/dev/null; then echo '__HPCML_SUBMIT running'; "
                     f"else rm -f {m}; fi; fi; ")
        res = await self.conn.run(f"{check}squeue --me -t all -h -o '%i|%k'", name="squeue")
        for line in res.out.splitlines():
            jid, _, comment = line.partition("|")
            if comment.strip() == f"hpcml:{run_id}":
                return jid.strip().split("_")[0]  # an array's element or pending line: the array
        for line in res.out.splitlines():
            if line.startswith("__HPCML_SUBMIT running"):
                raise BackendUnavailable(
                    f"the interrupted submission of run {run_id} is still running on "
                    f"{self.conn.label}: whether it submits the job is not known yet")
            if line.startswith("__HPCML_SUBMIT elsewhere"):
                age = line.split()[-1]
                if not age.isdigit() or int(age) < self.orphan_submit_patience:
                    raise BackendUnavailable(
                        f"the interrupted submission of run {run_id} may still be "
                        "running on another login node")
        return None

    async def find_submitted_tasks(self, ctx: JobContext[SSHConfig],
                                   indexes: Sequence[int]) -> dict[int, str] | None:
        """After a crash in ``submit_array`` (``ctx``: the sweep's lead context with the
        shared run directory): each task's job id "<array id>_<element>", from the arrays'
        record in the run directory; None only when sure nothing was submitted;
        BackendUnavailable while that cannot be told."""
        found = await self.find_submitted(ctx)
        if found is None:
            return None
        run_dir = ctx.run_dir

        async def read(sftp: asyncssh.SFTPClient) -> str | None:
            try:
                async with sftp.open(f"{run_dir}/{ARRAYS_FILE}", "rb") as f:
                    data: bytes = await f.read()
                    return data.decode()
            except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPFailure):
                return None
        text = await self.conn.sftp_call(read) if run_dir else None
        rows = [ln.split() for ln in (text or "").splitlines()]
        arrays = sorted((int(r[0]), r[1]) for r in rows if len(r) == 2 and r[0].isdigit())
        if not arrays:
            raise BackendUnavailable(f"sweep {ctx.run_id} reached Slurm (job {found}) but its "
                                     "arrays' record is not there (yet)")
        out: dict[int, str] = {}
        for i in indexes:
            offset, array_id = max((a for a in arrays if a[0] <= i), default=arrays[0])
            out[i] = f"{array_id}_{i - offset}"
        return out

    # ------------------------------------------------------------ poll

    async def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        if not jobs:
            return {}
        now = time.monotonic()
        wanted = {j.job_id for j in jobs}
        if now < self._next_poll and wanted <= self._cache.keys():
            return {j: self._cache[j] for j in wanted}  # backing off: nothing changed lately
        statuses = await self._poll_now(jobs)
        changed = any(self._cache.get(k) != v for k, v in statuses.items())
        self._cache = {k: v for k, v in {**self._cache, **statuses}.items() if k in wanted}
        self._interval = 0.0 if changed else min(max(self._interval * 2, self.backoff_start),
                                                 self.backoff_max)
        self._next_poll = time.monotonic() + self._interval
        return statuses

    async def _poll_now(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        res = await self.conn.run(f"squeue --me -t all -h -r -O {shlex.quote(SQUEUE_FORMAT)}",
                                  name="squeue")
        if res.exit_status != 0:
            raise BackendUnavailable(
                f"squeue failed on {self.conn.label}: {res.err or res.out}".strip())
        listed: list[tuple[str, SlurmJob]] = []
        for line in res.out.splitlines():
            parts = line.strip().split("|", 5)
            if len(parts) < 6:
                continue
            jid, raw, state, restarts, requeue, reason = (x.strip() for x in parts)
            job = SlurmJob(state, reason, restarts=int(restarts) if restarts.isdigit() else None,
                           requeueable=requeue == "1")
            # An array's elements that have not started may be one line ("123_[2-5%2]").
            for element in array_elements(jid):
                listed.append((element, job))
            if array_task(jid)[1] is None:  # an element's raw id may be the array's own
                listed.append((raw, job))
        by_id = index_jobs(listed)

        out: dict[str, JobStatus] = {}
        detail: dict[str, SlurmJob | None] = {}  # ended (or unknown) jobs: what squeue said
        for ref in jobs:
            found = by_id.get(ref.job_id)
            status = job_status(found) if found is not None else None
            if status is not None and status.state in (RunState.QUEUED, RunState.RUNNING):
                out[ref.job_id] = status
            else:
                detail[ref.job_id] = found
        if detail:
            arrays = {array_task(j)[0] for j, _ in listed if array_task(j)[1] is not None}
            await self._details([r for r in jobs if r.job_id in detail], detail, out, arrays)
        return out

    async def _details(self, refs: list[JobRef], squeued: dict[str, SlurmJob | None],
                       out: dict[str, JobStatus], arrays: set[str] | None = None) -> None:
        """sacct for the ended jobs + their exit-code files (+ post-login commands): one
        command per chunk of ``DETAILS_CHUNK`` jobs, the run directories on stdin. Then
        :func:`~..slurm_common.job_status` decides, as for every Slurm backend."""
        use_sacct = time.monotonic() >= self._sacct_off_until
        sacct: dict[str, SlurmJob] = {}
        exits: dict[str, str] = {}  # job id → its exit-code file's first line
        unsent: dict[str, str] = {}  # job id → why its details could not be fetched
        sacct_rc = 0
        sacct_text: list[str] = []
        for chunk in _chunks(refs):
            rc, text = await self._details_chunk(chunk, use_sacct, sacct, exits, unsent)
            sacct_rc = sacct_rc or rc
            sacct_text += text
        asked = use_sacct
        said = " ".join(sacct_text)
        if use_sacct and (sacct_rc != 0 or any(s in said.lower() for s in _SACCT_OFF)):
            log.info("sacct unavailable on %s (%s): using exit-code files",
                     self.conn.label, said[:200])
            self._sacct_off_until = time.monotonic() + self.sacct_retry
            sacct, asked = {}, False
        for ref in refs:
            if ref.job_id in unsent:  # ended maybe, but with which exit code: not sure yet
                out[ref.job_id] = JobStatus(RunState.UNKNOWN, None, unsent[ref.job_id])
                continue
            acct = sacct.get(ref.job_id)
            slurm = squeued.get(ref.job_id)
            if slurm is None:
                slurm = acct
            elif acct is not None:  # squeue's state and reason, sacct's exit code
                slurm = SlurmJob(slurm.state, slurm.reason, acct.code, acct.signal,
                                 slurm.restarts, slurm.requeueable)
            record = parse_exit_record(exits.get(ref.job_id))
            base, element = array_task(ref.job_id)
            if slurm is None and record is None and asked and element is not None and (
                    base in (arrays or ()) or any(array_task(k)[0] == base for k in sacct)):
                # Slurm knows the array but keeps no record of this element: it was
                # cancelled before it started (a pending element leaves no trace).
                out[ref.job_id] = JobStatus(RunState.CANCELLED, None,
                                            "cancelled before it started")
                continue
            # Accounting that answered without the job: Slurm has no record of it at all.
            out[ref.job_id] = job_status(slurm, record,
                                         forgotten=RunState.FAILED if asked else RunState.UNKNOWN)

    @staticmethod
    def _ended_secrets(base: str, ref: JobRef) -> str:
        """The secrets file of a single job that has ended (a requeueable job's script keeps
        it after an end by a signal, which may be a requeue; Slurm says it was not). A
        sweep task's is shared: ``tasks/cleanup.sh`` decides. "": none to remove."""
        if not base or ref.task is not None or not re.fullmatch(r"[A-Za-z0-9_-]+",
                                                                 ref.run_id or ""):
            return ""
        return f"{base}/.secrets/{ref.run_id}.env"

    async def _details_chunk(
        self, refs: list[JobRef], use_sacct: bool, sacct: dict[str, SlurmJob],
        exits: dict[str, str], unsent: dict[str, str],
    ) -> tuple[int, list[str]]:
        """One details command for ``refs``; (sacct's exit status, its non-record lines).
        A command the connection dropped under twice is never sent again as it was: its
        batch is split in halves (each its own command) down to single jobs."""
        ids = ",".join(r.job_id for r in refs)
        command = (f"use_sacct={1 if use_sacct else 0}; ids={shlex.quote(ids)}\n{_DETAILS_SCRIPT}")
        base = self._base or ""
        listing = "".join(
            f"{r.job_id}\t{r.run_dir}\t{_exit_file_of(r)}\t{self._ended_secrets(base, r)}\n"
            for r in refs if r.run_dir and not any(c in r.run_dir for c in "\t\n"))
        try:
            res = await self.conn.run(command, input=listing.encode(),
                                      name="sacct" if use_sacct else "exit-codes")
        except CommandPoisoned as exc:
            if len(refs) == 1:
                unsent[refs[0].job_id] = str(exc)
                return 0, []
            half = len(refs) // 2
            rc1, text1 = await self._details_chunk(refs[:half], use_sacct, sacct, exits, unsent)
            rc2, text2 = await self._details_chunk(refs[half:], use_sacct, sacct, exits, unsent)
            return rc1 or rc2, text1 + text2
        sacct_rc = 0
        sacct_text: list[str] = []
        for line in res.out.splitlines():
            if line.startswith("__HPCML_SACCT_RC "):
                sacct_rc = int(line.split()[1] or 0)
            elif line.startswith("__HPCML_EXIT "):
                _, jid, *rest = line.split(" ", 2)
                if rest and rest[0].startswith("+"):  # "+": the file exists ("+<first line>")
                    exits[jid] = rest[0][1:]
            elif "|" in line:
                f = line.split("|")
                if len(f) >= 4:
                    sacct.setdefault(f[0], SlurmJob.from_sacct(f[2], f[3]))
                    for element in array_elements(f[1]):  # "123_[4-5]": never started
                        sacct.setdefault(element, SlurmJob.from_sacct(f[2], f[3]))
            else:
                sacct_text.append(line)
        return sacct_rc, sacct_text

    # ------------------------------------------------------------ cancel

    async def cancel(self, ref: JobRef) -> None:
        """Cancels asked for at the same time (many runs cancelled at once) go out together:
        one ``scancel`` with many job ids, while the previous batch is still on its way."""
        if not ref.job_id:
            return
        if not JOB_ID.fullmatch(ref.job_id):
            raise SubmitError(f"cannot cancel: {ref.job_id!r} is not a Slurm job id")
        secrets_path = None
        if re.fullmatch(r"[A-Za-z0-9_-]+", ref.run_id or ""):
            # A job cancelled while pending never runs the script that deletes its secrets
            # file; a running one has read it already.
            secrets_path = f"{await self._base_dir()}/.secrets/{ref.run_id}.env"
        if ref.task is not None and ref.run_dir:
            # A sweep's task: its secrets file is the sweep's, shared; the cleanup script
            # removes it once no task may still need it (a pending task never runs).
            secrets_path = None
            cleanup = f"{ref.run_dir}/{CLEANUP_SCRIPT}"
        else:
            cleanup = None
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._cancels.append((ref.job_id, secrets_path, cleanup, done))
        if self._cancelling is None or self._cancelling.done():
            self._cancelling = asyncio.create_task(self._cancel_batches())
        await done

    async def _cancel_batches(self) -> None:
        while self._cancels:
            await asyncio.sleep(0)  # cancels asked for in this same moment join the batch
            batch, self._cancels = self._cancels[:CANCEL_CHUNK], self._cancels[CANCEL_CHUNK:]
            ids = sorted({job_id for job_id, _, _, _ in batch})
            secrets = [path for _, path, _, _ in batch if path]
            cleanups = sorted({c for _, _, c, _ in batch if c})
            command = f"scancel {' '.join(ids)}"
            if secrets or cleanups:
                command += "; rc=$?"
                if secrets:
                    command += f"; rm -f {' '.join(shlex.quote(p) for p in secrets)}"
                for c in cleanups:
                    command += f"; [ ! -f {shlex.quote(c)} ] || bash {shlex.quote(c)}"
                command += "; exit $rc"
            try:
                res = await self.conn.run(command, name="scancel")
            except Exception as exc:  # noqa: BLE001 - every caller of the batch learns it
                for _, _, _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            self._interval, self._next_poll = 0.0, 0.0
            errors = _scancel_errors(res.err)
            for job_id, _, _, done in batch:
                why = errors.get(job_id)
                if why is None and res.exit_status != 0 and not errors:
                    why = res.err or res.out or f"exit status {res.exit_status}"
                if done.done():
                    continue
                if why and not cancel_moot(why):
                    done.set_exception(SubmitError(f"scancel failed: {why}"))
                else:
                    done.set_result(None)

    # ------------------------------------------------------------ files

    async def _realroot(self, sftp: asyncssh.SFTPClient, root: str) -> str:
        real = self._realroots.get(root)
        if real is None:
            real = await sftp.realpath(root)
            self._realroots[root] = real
        return real

    async def _inside(self, sftp: asyncssh.SFTPClient, root: str, path: str) -> bool:
        """``path`` resolves (following symlinks) to the run directory or below."""
        real_root, real = await asyncio.gather(self._realroot(sftp, root), sftp.realpath(path))
        return real == real_root or real.startswith(real_root.rstrip("/") + "/")

    async def read(self, ref: JobRef, relpath: str, offset: int, max_bytes: int) -> Chunk:
        if offset < 0 or max_bytes < 0:
            raise UserInputError(Problem("offset and max_bytes must not be negative"))
        root, path = self._path(ref, relpath)

        async def go(sftp: asyncssh.SFTPClient) -> Chunk:
            try:
                f = await sftp.open(path, "rb")
            except asyncssh.SFTPNoSuchFile:
                return Chunk(b"", offset, offset, None)
            except asyncssh.SFTPError as exc:
                raise UserInputError(Problem(f"cannot read {relpath}: {exc.reason}")) from None
            try:
                inside, attrs = await asyncio.gather(self._inside(sftp, root, path), f.stat())
                if not inside:
                    raise UserInputError(Problem(f"path leaves the run directory: {relpath!r}"))
                if attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY:
                    raise UserInputError(Problem(f"not a file: {relpath}"))
                size = attrs.size or 0
                data = b""
                if offset < size and max_bytes:
                    data = await f.read(min(max_bytes, size - offset), offset)
                return Chunk(data, offset, offset + len(data), size)
            finally:
                await f.close()

        return await self.conn.sftp_call(go)

    async def list_files(self, ref: JobRef, relpath: str = "") -> list[FileInfo]:
        root, path = self._path(ref, relpath)
        q = shlex.quote(path)
        res = await self.conn.run(
            f"if [ -d {q} ]; then cd {q} && find . -mindepth 1 \\( -type f -o -type d \\) "
            f"-printf '%y %s %T@ %P\\0'; elif [ -e {q} ]; then echo __HPCML_NOTDIR; "
            f"else echo __HPCML_MISSING; fi", name="find")
        text = res.stdout.decode("utf-8", errors="replace")
        if text.startswith("__HPCML_MISSING"):
            raise NotFound(f"no such directory in the run directory: {relpath or '.'}")
        if text.startswith("__HPCML_NOTDIR"):
            raise UserInputError(Problem(f"not a directory: {relpath}"))
        out: list[FileInfo] = []
        for item in text.split("\0"):
            if not item:
                continue
            kind, size, mtime, name = item.split(" ", 3)
            out.append(FileInfo(path=name, is_dir=kind == "d",
                                size=None if kind == "d" else int(size), mtime=float(mtime)))
        return sorted(out, key=lambda f: f.path)

    async def list_files_many(
        self, items: Sequence[tuple[JobRef, str]]
    ) -> list[list[FileInfo] | BaseException]:
        """One ``find`` for all the directories (their paths on stdin), however many runs:
        a poll pass lists the offline stores of every running run with one command."""
        out: list[list[FileInfo] | BaseException] = [[] for _ in items]
        where: dict[str, list[int]] = {}
        for i, (ref, relpath) in enumerate(items):
            try:
                where.setdefault(self._path(ref, relpath)[1], []).append(i)
            except Exception as exc:  # noqa: BLE001 - returned in its place
                out[i] = exc
        paths = [p for p in where if "\0" not in p]
        if not paths:
            return out
        res = await self.conn.run(_LIST_SCRIPT, input=b"".join(p.encode() + b"\0" for p in paths),
                                  name="find")
        fields = res.stdout.decode("utf-8", errors="replace").split("\0")
        for start, item in zip(fields[0::2], fields[1::2], strict=False):
            kind, size, mtime, name = item.split(" ", 3)
            info = FileInfo(path=name, is_dir=kind == "d", size=None if kind == "d" else int(size),
                            mtime=float(mtime))
            for i in where.get(start, ()):
                listing = out[i]
                if isinstance(listing, list):
                    listing.append(info)
        for listing in out:
            if isinstance(listing, list):
                listing.sort(key=lambda f: f.path)
        return out

    async def fetch(self, ref: JobRef, relpath: str, dest: Path) -> None:
        root, path = self._path(ref, relpath)
        dest = Path(dest)
        await asyncio.to_thread(dest.parent.mkdir, parents=True, exist_ok=True)

        async def go(sftp: asyncssh.SFTPClient) -> None:
            try:
                attrs = await sftp.stat(path)
            except asyncssh.SFTPNoSuchFile:
                raise NotFound(f"no such file in the run directory: {relpath}") from None
            if attrs.type != asyncssh.FILEXFER_TYPE_REGULAR:
                raise UserInputError(Problem(f"not a file: {relpath}"))
            if not await self._inside(sftp, root, path):
                raise UserInputError(Problem(f"path leaves the run directory: {relpath!r}"))
            await sftp.get(path, str(dest))

        await self.conn.sftp_call(go)

    # ------------------------------------------------------------ service jobs

    async def open_tunnel(self, ref: JobRef, endpoint: ServiceEndpoint) -> Tunnel:
        """A local port forwarded to the job's node over the shared connection (``tunnel``)."""
        return await open_ssh_tunnel(self.conn, endpoint)

    async def close(self) -> None:
        await self.conn.close()


# ---------------------------------------------------------------- helpers


def _tar(run_dir: str, files: dict[str, bytes | None], secrets_path: str | None,
         secret: bytes | None) -> bytes:
    """The per-run files as a tar to unpack with ``tar -xof - -C /``: ``files`` (relpath in
    the run directory → content; a relpath ending in ``/`` or None content: a directory) and
    the secrets file (0600 in a 0700 directory, created with those modes: never readable by
    others, not even briefly)."""
    buf = io.BytesIO()
    now = int(time.time())

    def add(path: str, data: bytes | None, mode: int) -> None:
        info = tarfile.TarInfo(path.lstrip("/"))
        info.mtime, info.mode = now, mode
        if data is None:
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        else:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel, data in files.items():
            is_dir = data is None or rel.endswith("/")  # "dir/": a directory (the offline store's)
            add(f"{run_dir}/{rel.rstrip('/')}", None if is_dir else data,
                0o755 if is_dir else 0o644)
        if secrets_path and secret is not None:
            add(posixpath.dirname(secrets_path), None, 0o700)
            add(secrets_path, secret, 0o600)
        end = tar.offset + 2 * tarfile.BLOCKSIZE  # the end-of-archive blocks, not the 10 KiB record
    return buf.getvalue()[:end]


# The details command: the jobs' ids in ``$ids`` (bounded by ``_chunks``), "<job id>\t<run
# dir>\t<exit-code file>\t<secrets file or nothing>" lines on stdin. Builtins only per job,
# except for a post-run command to start; the secrets files left behind go in one rm.
_DETAILS_SCRIPT = f"""\
if [ "$use_sacct" = 1 ]; then
  sacct -X -n -P -j "$ids" -o {SACCT_FIELDS} </dev/null 2>&1; echo "__HPCML_SACCT_RC $?"
fi
while IFS='	' read -r jid d e s; do
  [ -n "$d" ] || continue
  [ -z "$s" ] || [ ! -e "$s" ] || set -- "$@" "$s"  # ended: its secrets file can go
  code=-  # "-": no exit-code file; "+<its first line>"
  if [ -f "$d/$e" ]; then line=; IFS= read -r line < "$d/$e"; code="+$line"; fi
  printf '__HPCML_EXIT %s %s\\n' "$jid" "$code"
  # Login-node post-run commands, once, after the job has ended.
  if [ -f "$d/{EXIT_FILE}" ] && [ -f "$d/{POST_LOGIN_SCRIPT}" ] && [ ! -e "$d/{META_DIR}/post_login.done" ]; then
    touch "$d/{META_DIR}/post_login.done"
    (cd "$d" && nohup bash {POST_LOGIN_SCRIPT} >> {LOGIN_LOG} 2>&1 </dev/null &)
  fi
done
[ "$#" -eq 0 ] || rm -f "$@"
"""  # noqa: E501 (the script is sent as written: wrapping its lines would change it)
# Many directories listed by one find (xargs splits a long list); "<start>\0<entry>\0" each.
# Missing directories list as empty (find's complaint is dropped); links are not followed.
_LIST_SCRIPT = ("xargs -0 -r sh -c 'exec find \"$@\" -mindepth 1 \\( -type f -o -type d \\) "
                "-printf \"%H\\0%y %s %T@ %P\\0\"' sh 2>/dev/null; exit 0")
CANCEL_CHUNK = 200  # jobs per scancel (ids and secrets-file paths in its command line)


def _scancel_errors(stderr: str) -> dict[str, str]:
    """"scancel: error: Kill job error on job id 123: Invalid job id specified" → {"123": ...}."""
    out: dict[str, str] = {}
    for line in stderr.splitlines():
        m = re.search(r"job id (\S+?):? (.+)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


DETAILS_CHUNK = 2000  # jobs per details command
DETAILS_IDS_BYTES = 24 * 1024  # their ids in the command line


def _exit_file_of(ref: JobRef) -> str:
    """A job's exit-code file: a sweep task's by its task (global) index, else an array
    element's by its index in the array."""
    return exit_file(ref.task if ref.task is not None else array_task(ref.job_id)[1])


def _chunks(refs: list[JobRef]) -> list[list[JobRef]]:
    """``refs`` in batches whose id list stays far below a command line's limit."""
    out: list[list[JobRef]] = [[]]
    size = 0
    for ref in refs:
        full = len(out[-1]) >= DETAILS_CHUNK or size + len(ref.job_id) + 1 > DETAILS_IDS_BYTES
        if out[-1] and full:
            out.append([])
            size = 0
        out[-1].append(ref)
        size += len(ref.job_id) + 1
    return [c for c in out if c]


# Above this, per-run files go by stdin: a command line must stay well under Linux's
# 128 KiB limit for one argument (sshd passes it to the login shell as ``-c <command>``).
MAX_INLINE_BYTES = 48 * 1024


def _inline_files(run_dir: str, files: dict[str, bytes | None]) -> str | None:
    """Shell lines writing ``files`` (as for :func:`_tar`) with builtins and one ``mkdir``;
    None when a file is not text or they are too big for a command line."""
    q = shlex.quote
    dirs: set[str] = set()
    writes: list[str] = []
    size = 0
    for rel, data in files.items():
        path = f"{run_dir}/{rel.rstrip('/')}"
        if data is None or rel.endswith("/"):
            dirs.add(path)
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if "\0" in text:
            return None
        size += len(data)
        dirs.add(posixpath.dirname(path))
        writes.append(f"printf %s {q(text)} > {q(path)} || fail {_SETUP_FAILED}")
    if size > MAX_INLINE_BYTES:
        return None
    # The run directory itself comes from the materialised tree; mkdir only what is below it.
    needed = sorted(d for d in dirs
                    if d != run_dir and not any(o.startswith(d + "/") for o in dirs))
    lines = [f"mkdir -p {' '.join(q(d) for d in needed)} || fail {_SETUP_FAILED}"] if needed else []
    return "\n".join(lines + writes)


def _submit_command(materialise: str, run_dir: str, secrets_path: str | None, pre: list[str],
                    inline: str | None = None, marker: str | None = None,
                    scripts: Sequence[str] = (SCRIPT_NAME,),
                    offsets: Sequence[int] | None = None) -> str:
    """The POSIX shell command of ``submit``: its stdin is the tar of :func:`_tar`, or
    ``inline`` (from :func:`_inline_files`) writes the per-run files instead.

    ``marker``: a file holding "<login node> <pid>" while the command runs. A command whose
    connection dropped goes on running on the login node (sshd does not stop it) and may
    still submit the job: ``find_submitted`` is unsure, not "not submitted", while it lives.

    ``scripts``: the batch scripts to submit, in order; with ``offsets`` (a sweep's job
    arrays, each's first task) each after the one before (``--dependency=afterany:<its
    id>``, so that their ``%K`` holds across them), a refused later one cancelling those
    before it, and "<offset> <array id>" lines in ``ARRAYS_FILE``.

    Exit statuses: 0 with ``__HPCML_JOB <id>`` on stdout (one line per script);
    ``TREE_MISSING`` (before anything
    was written); 96 sbatch refused (its message on stderr); 98 a login-node pre-command
    failed (``__HPCML_PRE <index> <rc>`` and the log's tail on stdout); 99 setup failed.
    The secrets file is removed on every failure after it was written."""
    q = shlex.quote
    qdir = q(run_dir)
    remove = f"rm -f {q(secrets_path)}; " if secrets_path else ""
    lines = []
    if marker:  # (an EXIT trap removes it; a shell killed by a signal leaves it, with a dead pid)
        mark = f"printf '%s %s\\n' \"$(uname -n)\" $$ > {q(marker)}"
        lines += [f"{mark} 2>/dev/null || {{ mkdir -p {q(posixpath.dirname(marker))} && {mark}; }} "
                  f"|| exit {_SETUP_FAILED}", f"trap {q(f'rm -f {q(marker)}')} EXIT"]
    lines += [
        f"if [ -e {q(f'{run_dir}/{JOB_ID_FILE}')} ]; then "
        f"printf 'hpcml: a job was already started in %s\\n' {qdir} >&2; exit {_SETUP_FAILED}; fi",
        materialise,
        f'fail() {{ {remove}exit "$1"; }}',
        inline or f"tar -xof - -C / || fail {_SETUP_FAILED}",
        f"cd {qdir} || fail {_SETUP_FAILED}",
    ]
    for i, cmd in enumerate(pre):
        lines.append(
            f"{{ bash -c {q(cmd)} </dev/null; }} >> {LOGIN_LOG} 2>&1 || "
            f"{{ rc=$?; echo \"__HPCML_PRE {i} $rc\"; tail -c 2000 {LOGIN_LOG}; "
            f"fail {_PRE_FAILED}; }}")
    if offsets is None:  # one job
        lines += [
            f"out=$(sbatch --parsable {q(scripts[0])} </dev/null) || fail {_SBATCH_FAILED}",
            # The answer first: a failing job_id write must not hide a submitted job
            # (find_submitted also finds it by its --comment).
            "printf '__HPCML_JOB %s\\n' \"$out\"",
            f"printf '%s\\n' \"$out\" > {JOB_ID_FILE}",
            "exit 0",
        ]
        return "\n".join(lines)
    lines.append("ids=; prev=; first=; arrays=")
    for script, offset in zip(scripts, offsets or [0] * len(scripts), strict=True):
        after = '${prev:+--dependency=afterany:$prev}'
        lines += [
            f"out=$(sbatch --parsable {after} {q(script)} </dev/null) || "
            f"{{ [ -z \"$ids\" ] || scancel $ids; fail {_SBATCH_FAILED}; }}",
            "prev=${out%%;*}; ids=\"$ids $prev\"; first=${first:-$prev}",
            f"arrays=\"${{arrays}}{int(offset)} $prev\n\"",
            "printf '__HPCML_JOB %s\\n' \"$prev\"",
        ]
    lines += [f"printf '%b' \"$arrays\" > {ARRAYS_FILE}",
              f"printf '%s\\n' \"$first\" > {JOB_ID_FILE}", "exit 0"]
    return "\n".join(lines)


def _submitted_ids(out: str) -> list[str]:
    ids = []
    for line in out.splitlines():
        if line.startswith("__HPCML_JOB "):
            job_id = line.split(None, 1)[1].split(";")[0].strip() if " " in line.strip() else ""
            if job_id:
                ids.append(job_id)
    return ids


def _submit_failure(res: Any, pre: list[str], label: str) -> Exception:
    if res.exit_status == _SBATCH_FAILED:
        return SubmitError(sbatch_message(res.err or res.out))
    if res.exit_status == _PRE_FAILED:
        _, marker, rest = res.out.partition("__HPCML_PRE ")
        head, _, tail = rest.partition("\n")
        parts = head.split()
        if not marker or len(parts) < 2 or not parts[0].isdigit() or int(parts[0]) >= len(pre):
            return SubmitError(
                f"a pre-run command on the login node failed: {res.out.strip()[-2000:]}")
        cmd, rc = pre[int(parts[0])], parts[1]
        return SubmitError(f"pre-run command on the login node failed with exit code {rc}: "
                           f"{cmd}\n{tail.strip()}")
    if res.exit_status == TREE_MISSING:
        return TransferError(
            f"the code kept disappearing from the cache on {label}: {res.err or res.out}".strip())
    return TransferError(f"preparing the run directory on {label} failed "
                         f"(exit status {res.exit_status}): {(res.err or res.out).strip()[-2000:]}")


def _absolute_offline_paths(key: str, data: bytes, run_dir: str) -> bytes:
    """The offline MLflow store's meta.yaml files with artifact locations made absolute,
    in case the engine wrote them before the run directory was known."""
    if not key.startswith(OFFLINE_MLRUNS + "/") or not key.endswith("meta.yaml") or not data:
        return data
    import yaml

    try:
        meta = yamlio.safe_load(data)
    except yaml.YAMLError:
        return data
    if not isinstance(meta, dict):
        return data
    changed = False
    for field_name in ("artifact_uri", "artifact_location"):
        value = meta.get(field_name)
        if isinstance(value, str) and value and not value.startswith("/") and "://" not in value \
                and not value.startswith("file:"):
            meta[field_name] = f"{run_dir.rstrip('/')}/{value}"
            changed = True
    return yamlio.safe_dump(meta, default_flow_style=False).encode() if changed else data
