"""The FirecREST backend: Slurm jobs through a site's FirecREST v2 API
(``firecrest.v2.AsyncFirecrest``).

Config (Mantik's format, unchanged)::

    Firecrest: {ApiUrl: https://api.cscs.ch/..., TokenUrl: https://auth.../token, Machine: daint,
                WorkDir: /scratch/me/hpcml}   # WorkDir optional
    Resources: {Queue: normal, Runtime: 1h, ...}

Credentials come from :mod:`.credentials` (``MANTIK_FIRECREST_CLIENT_ID``/``_SECRET`` etc.).

* **Auth**: OIDC client credentials through an awaitable ``auth_headers()`` that refreshes
  with ``httpx.AsyncClient`` (the stock ``ClientCredentialsAuth`` blocks the loop); API key
  and token command too. Explicit HTTP timeout; at most ``max_429_retries`` retries of a
  429 (the client's default is unlimited); idempotent calls retried twice on 5xx and
  dropped connections; a 401 refreshes the token once.
* **Layout**: ``<base>/<run id>/`` is the run directory, ``<base>/.objects/<sha256>`` a
  content-addressed store of file contents shared by all runs; ``<base>`` is ``WorkDir``
  or ``<scratch>/<user>/hpcml`` (home when the system has no scratch).
* **Upload** (``prepare``): one ``ls`` of the object store, then ONE gzip archive with the
  objects the cluster lacks, the run's manifest and the engine's extra files, uploaded
  directly (small) or through the staged S3 multipart transfer (large), unpacked with
  ``extract``. A second run of the same code uploads a few kilobytes. The job's first
  step copies the files from the object store into the run directory.
* **Data** (:mod:`.firecrest_data`): dataset versions in ``<base>/.data`` beside the object
  store, only missing contents sent (in archives, large files as themselves), each checked
  by the server's sha256 ``checksum``; a version's tree of hard links built once by
  ``extract`` and published by a symbolic link (complete or absent). The job's first step
  links each dataset's path in the run directory to its version (or to the mapped path).
* **Submit**: the shared Slurm script (``batchscript.render_batch_script``) with the job's
  environment in it (``shlex``-quoted), secrets (tracking token) in a 0600 file in the
  0700 ``<base>/.secrets`` the script sources and deletes. Never the API's ``env`` field:
  the real server turns it into ``sbatch --export=ALL,K=V,...``, which splits values at
  commas and quotes and shows them on the login node's command line. ``partition``/
  ``account``/``reservation`` as API fields where the server's version has them, else as
  ``#SBATCH`` lines. A submission whose answer was lost is looked for in Slurm's job list
  before it is sent again; sbatch's own refusals (HTTP 500 ``exit_status:1 std_err:sbatch:
  error: ...``) end the run at once.
* **Poll**: ONE ``GET /compute/{machine}/jobs`` per cycle for all runs, filtered here; a
  job that left that list (it shows 24 h of history) is looked up by id, then by its
  exit-code file. States and exit codes (``interruptSignal`` → 128 + n) as for Slurm over
  SSH (:mod:`.slurm_common`).
* **Sweeps** (``submit_array``): ONE ``sbatch --array=0-(n-1)%K`` per chunk of at most
  ``max_array_size`` tasks (Slurm's default MaxArraySize, 1001: FirecREST cannot read
  slurm.conf), each chunk ``afterany`` the previous; the task files (env, command,
  parameter table) uploaded in one archive next to the code uploaded once. Tasks are
  "<array id>_<index>": polled with the same ONE job list (sacct names them so; squeue
  lists the pending rest under the array's id). The real server takes only
  ``[a-zA-Z0-9]+`` job ids in paths, so an array is looked up by its own id and a task is
  cancelled by the Slurm job id it noted when it started (``.hpcml/tasks/<i>.<array>.jobid``);
  one not started yet is asked not to start (``.hpcml/tasks/<i>.<array>.cancelled``).
* **Files**: byte ranges with ``tail -c +N`` near the end of a file and whole ``dd`` blocks
  (``view`` with a block-aligned offset) elsewhere: the server decodes both as UTF-8, and
  ``view`` counts its offset in characters past the block start. ``ls`` names come
  C-escaped (``\\303\\274``) and are decoded; an unreadable subdirectory (403) or a huge
  tree (413) is listed directory by directory. Paths with ``'`` are refused with a clear
  message (the server pastes paths into ``'...'`` in shell commands).
* **Faults**: 429 waits for ``Retry-After`` (up to ``max_retry_after``; longer: no request
  until then), 408/424/5xx of the server's plumbing are retried where that is safe.
"""
from __future__ import annotations

import asyncio
import io
import logging
import os
import posixpath
import shlex
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from ..core.config_models import FirecrestConfig
from ..core.errors import BackendUnavailable, HpcmlError, NotFound, Problem, UserInputError
from ..core.files import META_DIR, Chunk, FileInfo, run_relpath
from ..core.job import (
    ArrayTask,
    DataProgress,
    DataStage,
    DataVersion,
    JobContext,
    JobRef,
    PreparedJob,
    StagedData,
    StagedVersion,
    Submission,
    TargetListing,
)
from ..core.snapshots import ProgressCallback, Snapshot
from ..core.states import JobStatus, RunState
from .array_chunks import array_chunks
from .base import Backend, Features, JobSpec
from .cas_upload import MANIFEST, UploadPlan, copy_from_store_command, manifest0, plan_upload
from .credentials import (
    MEMORY,
    ApiKeyHeaderAuth,
    AsyncClientCredentialsAuth,
    AsyncTokenCommandAuth,
    AuthenticationError,
    TokenEndpointUnavailable,
    firecrest_credentials,
)
from .data_links import data_links_command, data_path
from .exitrecord import exit_file, parse_exit_record, signal_number
from .remote_calls import (
    Attempts,
    RateGate,
    RemoteError,
    RetryPolicy,
    Service,
    Verdict,
    call_async,
    judge_status,
    judge_transport,
    retry_after,
    submit_looked_up,
)
from .slurm_common import (
    SlurmJob,
    array_task,
    cancel_moot,
    index_jobs,
    job_status,
    map_state,
    sbatch_message,
    slurm_transient,
)

if TYPE_CHECKING:
    from .firecrest_data import FirecrestDataStore

log = logging.getLogger(__name__)
T = TypeVar("T")

OBJECTS = ".objects"
VIEW_LIMIT = 5 * 1024 * 1024  # the API's ops size limit

READ_LIMIT = 1 << 20  # per read(): tail output and view blocks stay well below VIEW_LIMIT
TAIL_LIMIT = 1 << 20  # read with `tail -c +N` when at most this much is left to the end
VIEW_BLOCK = 1 << 20  # `view` = dd of two blocks: 2 MiB, under the server's 5 MiB output limit
DOWNLOAD_LIMIT = 3 << 20  # `ops/download` is base64 through the same 5 MiB limit
SECRETS_DIR = ".secrets"  # in <base>, mode 0700: the jobs' secrets files (0600)
# An array task's notes in the shared run directory (batchscript.TASKS_DIR): the Slurm job
# id it runs as (written when it starts), and a request to stop before it starts. Named by
# the array's id too: a re-run of the task in the same directory is another array.
TASK_JOB_ID = f"{META_DIR}/tasks/{{task}}.{{array}}.jobid"
TASK_CANCELLED = f"{META_DIR}/tasks/{{task}}.{{array}}.cancelled"
# The array's code is in place (the first of its tasks put it there).
PLACED = f'{META_DIR}/placed."$SLURM_ARRAY_JOB_ID"'


class Forbidden(RemoteError):
    """HTTP 403: no permission (also: any unreadable subdirectory of an ``ls -R``)."""


class OutputTooLarge(RemoteError):
    """HTTP 413: the command's output reached the server's limit (5 MiB)."""


class CommandFailed(RemoteError):
    """HTTP 500 from a command that ran and failed (its ``exit_status``/``std_err``):
    the same request fails the same way again."""

    def __init__(self, message: str, detail: str):
        super().__init__(message)
        self.detail = detail


class SubmitRejected(HpcmlError):
    """sbatch refused the job (partition, memory, script...): nothing was submitted."""

    status = 400


def slurm_state(job: dict[str, Any]) -> JobStatus:
    """A FirecREST job model → JobStatus, by the rules of every Slurm backend
    (:func:`.slurm_common.job_status`)."""
    slurm = slurm_job(job)
    if slurm is None:
        return JobStatus(RunState.UNKNOWN, None, "FirecREST reported no job state")
    return job_status(slurm)


def slurm_job(job: dict[str, Any]) -> SlurmJob | None:
    """What Slurm said, from a FirecREST job model: ``status.state`` (a string, "A,B" or a
    list), ``stateReason``, ``exitCode`` and ``interruptSignal`` (sacct's "0:9" split in two;
    an ``exitCode`` given as "0:9" or as slurmrestd's ``{"return_code": ...}`` is read too)."""
    status = job.get("status") or {}
    raw = status.get("state")
    parts = raw if isinstance(raw, list) else str(raw or "").split(",")
    states = [str(p).strip() for p in parts if p and str(p).strip()]
    if not states:
        return None
    value = status.get("exitCode")
    if isinstance(value, dict):  # slurmrestd: {"return_code": {"number": 1}, ...}
        value = (value.get("return_code") or {}).get("number", value.get("number"))
    code = SlurmJob.from_sacct(states[0], "" if value is None else str(value))
    signal = signal_number(status.get("interruptSignal")) or code.signal
    return SlurmJob(states[0], _reason(status.get("stateReason")), code.code, signal)


def _reason(reason: Any) -> str | None:
    return None if reason in (None, "", "None") else str(reason)


def _mtime(text: Any) -> float | None:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S").timestamp()
    except ValueError:
        return None


class FirecrestBackend(Backend[FirecrestConfig]):
    kind = "firecrest"
    config_model = FirecrestConfig
    http_timeout = 30.0
    max_429_retries = 3
    transient_retries = 2  # extra attempts of idempotent calls after 5xx / dropped connections
    max_retry_after = 30.0  # a 429's Retry-After up to this is waited for; longer: unavailable
    # After a submission whose answer was lost: how long to look for the job in Slurm's list
    # before sending it again. Longer than the real server's own limit on a command (its
    # `ssh.timeout.command_execution`, 5 s by default), so that a submission it was still
    # carrying out shows up first.
    ambiguous_settle = 10.0
    retry_backoff = (0.3, 1.0)
    submit_grace = 120.0  # a job not yet in the list this long after submission counts as QUEUED
    max_fallback_reads = 20  # per poll: look-ups of jobs no longer in the job list
    max_walk_entries = 100_000  # listing directory by directory stops here
    list_parallel = 8  # list_files_many: listings in flight at once
    # Slurm's MaxArraySize (slurm.conf; default 1001: indexes 0..1000). FirecREST cannot read
    # slurm.conf, so a sweep is split into arrays of at most this many tasks; a site with a
    # smaller limit refuses the submission ("Invalid job array specification").
    max_array_size = 1001

    def __init__(self, config: FirecrestConfig | Mapping[str, Any] | None, data_dir: Path):
        super().__init__(config, data_dir)
        fc = self.config.firecrest
        self.api_url = fc.api_url.strip().rstrip("/")
        self.token_url = fc.token_url.strip()
        self.machine = fc.machine
        self.work_dir = fc.work_dir
        self._client: Any = None
        self._creds_version = 0  # MEMORY.version of the credentials the client was made with
        self._retired: list[Any] = []  # clients replaced after new credentials
        self._auth: Any = None
        self._base: str | None = None
        self._api_version: str | None = None
        self._submitted_at: dict[str, float] = {}
        self._ambiguous: dict[str, float] = {}  # run id → when a submission's answer was lost
        self._gate = RateGate()  # closed while a 429's long Retry-After lasts
        self._secrets_ready = False  # <base>/.secrets exists with mode 0700
        self._lock: asyncio.Lock | None = None
        self._data: Any = None  # the data store (firecrest_data), made on first use
        if isinstance(self.work_dir, str) and self.work_dir.startswith("/"):
            self._base = self.work_dir.rstrip("/") or "/"

    def supported_features(self) -> Features:
        from .batchscript import HONOURED_RESOURCES

        return Features(cancel=True, logs=True, log_follow=True, artifacts=True, rerun=True,
                        upload_progress=True, resources=list(HONOURED_RESOURCES),
                        unsupported_name_chars="'",  # see _shell_safe
                        job_arrays=True, max_array_size=self.max_array_size,
                        data_staging=True)  # no services/tunnel: its API forwards no port

    def config_notes(self, config: FirecrestConfig) -> list[str]:
        given = config.environment.given()
        notes = super().config_notes(config)
        for key in ("PreRunCommandOnLoginNode", "PostRunCommandOnLoginNode"):
            if given.get(key):
                notes.append(f"Environment.{key} runs at the start/end of the batch job "
                             "(FirecREST has no login-node shell)")
        return notes

    # ------------------------------------------------------------ client and errors

    def _new_auth(self) -> Any:
        creds = firecrest_credentials(self.identity)
        if creds.method == "api_key":
            assert creds.api_key is not None
            return ApiKeyHeaderAuth(creds.api_key)
        if creds.method == "token_command":
            assert creds.token_command is not None
            return AsyncTokenCommandAuth(creds.token_command)
        assert creds.client_id and creds.client_secret is not None
        return AsyncClientCredentialsAuth(creds.client_id, creds.client_secret, self.token_url,
                                          timeout=self.http_timeout)

    def check_ready(self) -> None:
        firecrest_credentials(self.identity)  # raises CredentialsMissing

    def client(self) -> Any:
        if self._client is not None and self._creds_version != MEMORY.version(self.identity):
            self._retired.append(self._client)  # closed with the backend (it may be mid-request)
            self._client = None  # credentials entered in the UI since: a client with them
        if self._client is None:
            from firecrest.v2 import AsyncFirecrest

            self._creds_version = MEMORY.version(self.identity)
            self._auth = self._new_auth()
            client = AsyncFirecrest(self.api_url, authorization=self._auth)
            client.timeout = httpx.Timeout(self.http_timeout, connect=10.0)
            client.num_retries_rate_limit = 0  # 429s come to _call, which honours Retry-After
            self._client = client
        return self._client

    def _unavailable(self, what: str, detail: str) -> BackendUnavailable:
        return BackendUnavailable(
            f"FirecREST ({self.api_url}, {self.machine}) {detail} while {what}")

    async def _call(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any,
                    idempotent: bool = True, **kwargs: Any) -> T:
        """Run a client call under the remote API policy (:mod:`.remote_calls`); failures
        become the engine's errors (never a secret).

        ``idempotent=False`` (submit): a failure after the request may have reached the
        server raises :class:`Ambiguous` instead of being retried."""
        policy = RetryPolicy(self.transient_retries, tuple(self.retry_backoff),
                             self.max_429_retries, self.max_retry_after)
        attempts = Attempts(self._service(), what, policy, idempotent, self._gate)
        judge = self._judge(what, idempotent)
        return await call_async(lambda: fn(*args, **kwargs), judge, attempts)

    def _service(self) -> Service:
        return Service("FirecREST", f"{self.api_url}, {self.machine}")

    def _judge(self, what: str, idempotent: bool) -> Callable[[BaseException], Verdict]:
        """FirecREST's own answers first (403, 413, a command that ran and failed), then the
        shared translation."""
        from firecrest.FirecrestException import FirecrestException

        service = self._service()

        def judge(exc: BaseException) -> Verdict:
            if isinstance(exc, AuthenticationError):
                return Verdict("raise", RemoteError(f"FirecREST authentication failed: {exc}"))
            if isinstance(exc, TokenEndpointUnavailable):
                return Verdict("retry", BackendUnavailable(f"FirecREST: {exc} while {what}"))
            if isinstance(exc, httpx.TransportError):
                return judge_transport(service, what, exc, idempotent)
            if not isinstance(exc, FirecrestException):
                return Verdict("raise", exc)  # ours (CredentialsMissing...) or the client's
            resp = exc.responses[-1] if exc.responses else None
            code = resp.status_code if resp is not None else 0
            message = _message(resp)
            if code == 401 and hasattr(self._auth, "invalidate"):
                self._auth.invalidate()  # expired or revoked token: one fresh try
            elif code == 401:
                return Verdict("raise", RemoteError(
                    f"FirecREST refused the request while {what} (HTTP 401: {message})"))
            if code == 403:
                return Verdict("raise", Forbidden(
                    f"FirecREST refused the request while {what} (HTTP 403: {message})"))
            if code == 413:
                return Verdict("raise", OutputTooLarge(f"FirecREST: {message} (while {what})"))
            if code >= 500 and _command_failed(message):
                return Verdict("raise", CommandFailed(
                    f"FirecREST: a command failed while {what}: {message}", message))
            headers = resp.headers if resp is not None else None
            delay = retry_after(headers) if code == 429 else None
            return judge_status(service, what, code, message, idempotent, delay)

        return judge

    # ------------------------------------------------------------ layout

    async def run_dir_for(self, ctx: JobContext[FirecrestConfig]) -> str:
        """``<base>/<run id>``; asks the server for the base directory once."""
        return f"{await self.base_dir()}/{_safe_id(ctx.run_id)}"

    def _path(self, ref: JobRef, relpath: str = "") -> str:
        if not ref.run_dir:
            raise NotFound(f"run {ref.run_id} has no run directory yet")
        rel = run_relpath(relpath)
        path = f"{ref.run_dir.rstrip('/')}/{rel}" if rel else ref.run_dir.rstrip("/")
        return _shell_safe(path, relpath or path)

    async def base_dir(self) -> str:
        if self._base:
            return _shell_safe(self._base, "Firecrest.WorkDir", key="Firecrest.WorkDir")
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._base:
                return self._base
            c = self.client()
            systems = await self._call("listing systems", c.systems)
            machine = self.machine.lower()
            system = next((s for s in systems if str(s.get("name", "")).lower() == machine), None)
            if system is None:
                names = ", ".join(sorted(str(s.get("name")) for s in systems)) or "none"
                raise UserInputError(Problem(
                    f"machine {self.machine!r} is not offered by {self.api_url} "
                    f"(available: {names})",
                    key="Firecrest.Machine"))
            info = await self._call("reading user info", c.userinfo, self.machine)
            user = info["user"]["name"]
            fss = {f.get("dataType"): str(f.get("path", "")).rstrip("/")
                   for f in system.get("fileSystems") or []}
            home = fss.get("users")
            wd = str(self.work_dir or "")
            if wd:
                rest = wd[2:] if wd.startswith("~/") else wd[6:] if wd.startswith("$HOME/") else wd
                if not home:
                    raise UserInputError(Problem(
                        "WorkDir must be absolute: the system lists no home file system",
                        key="Firecrest.WorkDir"))
                base = f"{home}/{user}/{rest.strip('/')}"
            else:
                root = fss.get("scratch") or home
                if not root:
                    raise UserInputError(Problem(
                        "the system lists neither a scratch nor a home file system: "
                        "set Firecrest.WorkDir", key="Firecrest.WorkDir"))
                base = f"{root}/{user}/hpcml"
            _shell_safe(base, "the work directory", key="Firecrest.WorkDir")
            await self._call("creating the work directory", c.mkdir, self.machine, base,
                             create_parents=True)
            self._base = base
            return base

    # ------------------------------------------------------------ prepare (upload)

    async def prepare(
        self,
        ctx: JobContext[FirecrestConfig],
        snapshot: Snapshot,
        extra_files: Mapping[str, bytes] | None = None,
        progress: ProgressCallback | None = None,
    ) -> PreparedJob[FirecrestConfig]:
        c = self.client()
        base = await self.base_dir()
        run_id = ctx.run_id
        run_dir = f"{base}/{_safe_id(run_id)}"
        plan = plan_upload(snapshot, await self._present_objects(f"{base}/{OBJECTS}"))
        extras = dict(extra_files or {})
        for key in extras:
            run_relpath(key.rstrip("/"))
        for stage in ctx.data:  # linked by the job's first step (submit): checked now
            data_path(stage)
        with tempfile.TemporaryDirectory(prefix="hpcml-fc-") as tmp:
            archive = Path(tmp) / f".hpcml-upload-{_safe_id(run_id)}.tar.gz"
            total = await asyncio.to_thread(_write_archive, archive, _safe_id(run_id), plan, extras)
            if progress:
                progress(0, total)
            await self._call("uploading the code", c.upload, self.machine, archive, base,
                             archive.name)
            if progress:
                progress(total, total)
            remote = f"{base}/{archive.name}"
            await self._call("unpacking the code", c.extract, self.machine, remote, base, "gzip")
        try:
            await self._call("removing the upload archive", c.rm, self.machine, remote)
        except HpcmlError as exc:  # only litter: the run is fine
            log.warning("could not remove %s: %s", remote, exc)
        return PreparedJob(ctx, run_dir)

    async def _present_objects(self, objects_dir: str) -> dict[str, int | None]:
        """hash → size of the objects the cluster holds."""
        try:
            entries = await self._call("listing stored code", self.client().list_files,
                                       self.machine, objects_dir)
        except (NotFound, OutputTooLarge):  # too many to list (413): send them all again
            return {}
        return {str(e.get("name")): _size(e.get("size")) for e in entries if e.get("type") == "-"}

    # ------------------------------------------------------------ data (firecrest_data)

    @property
    def data_store(self) -> FirecrestDataStore:
        from .firecrest_data import FirecrestDataStore

        if self._data is None:
            self._data = FirecrestDataStore(self)
        store: FirecrestDataStore = self._data
        return store

    async def stage_data(self, versions: Sequence[DataVersion],
                         progress: DataProgress | None = None) -> list[StagedData]:
        """Into ``<base>/.data`` beside the code's object store: only missing contents,
        verified by sha256 on the cluster; each version's tree built once by ``extract``.
        The job's first step links its datasets into its run directory (``submit``)."""
        return await self.data_store.stage(versions, progress)

    async def target_listing(self, path: str) -> TargetListing:
        return await self.data_store.listing(path)

    async def staged_versions(self) -> list[StagedVersion]:
        return await self.data_store.versions()

    async def remove_staged(self, digest: str) -> bool:
        return await self.data_store.remove(digest)

    # ------------------------------------------------------------ submit

    def _script_job(self, run_dir: str, job: JobSpec, api_fields: set[str], *,
                    array: bool = False, name_id: str | None = None,
                    data: Sequence[DataStage] = ()) -> JobSpec:
        """The JobSpec the shared renderer sees: the materialisation step first (the code,
        then the datasets' links: ``data``), login-node commands inside the job, the job
        name ending in the run id (``find_submitted``; ``name_id``: an array chunk's own).
        An array task notes its Slurm job id first (:func:`_task_note_command`), then
        places the shared code once."""
        from .batchscript import job_name

        env = dict(job.environment or {})
        objects = f"{posixpath.dirname(run_dir.rstrip('/'))}/{OBJECTS}" if run_dir else OBJECTS
        pre = [_task_note_command(), _place_once_command(objects)] if array \
            else [copy_from_store_command(objects)]
        if data:
            pre.append(data_links_command(data))
        pre += list(env.get("PreRunCommandOnLoginNode") or [])
        pre += list(env.get("PreRunCommandOnComputeNode") or [])
        post = list(env.get("PostRunCommandOnComputeNode") or [])
        post += list(env.get("PostRunCommandOnLoginNode") or [])
        env.update(PreRunCommandOnComputeNode=pre, PostRunCommandOnComputeNode=post)
        env.pop("PreRunCommandOnLoginNode", None)
        env.pop("PostRunCommandOnLoginNode", None)
        resources = {k: v for k, v in (job.resources or {}).items() if k not in api_fields}
        suffix = f"-{_safe_id(name_id or job.run_id)}"  # kept whole: names are cut at 100
        name = job_name(job.job_name)[: 100 - len(suffix)] + suffix
        return replace(job, environment=env, resources=resources, job_name=name)

    def _api_fields(self) -> set[str]:
        """Resources keys the server's API version takes as request fields."""
        from packaging.version import parse

        version = getattr(self.client(), "_api_version", None) or parse("2.6.0")
        fields = set()
        if version >= parse("2.2.6"):
            fields.add("Account")
        if version >= parse("2.5.4"):
            fields |= {"Queue", "Reservation"}
        return fields

    def _secrets_path(self, run_id: str) -> str | None:
        return f"{self._base}/{SECRETS_DIR}/{_safe_id(run_id)}.env" if self._base else None

    async def _upload_secrets(self, run_id: str, secret: dict[str, str]) -> str:
        """The job's secrets as a file only the user can read, for the script to source:
        the 0700 directory makes it private from the moment the upload creates it."""
        from .batchscript import secrets_file_content

        c = self.client()
        directory = f"{await self.base_dir()}/{SECRETS_DIR}"
        if not self._secrets_ready:
            await self._call("creating the secrets directory", c.mkdir, self.machine, directory,
                             create_parents=True)
            await self._call("protecting the secrets directory", c.chmod, self.machine, directory,
                             "700")
            self._secrets_ready = True
        path = self._secrets_path(run_id)
        assert path is not None
        with tempfile.TemporaryDirectory(prefix="hpcml-fc-") as tmp:
            local = Path(tmp) / posixpath.basename(path)
            fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets_file_content(secret))
            await self._call("uploading the job's secrets", c.upload, self.machine, local,
                             directory, local.name)
        await self._call("protecting the job's secrets", c.chmod, self.machine, path, "600")
        return path

    async def _remove_secrets(self, run_id: str) -> None:
        try:
            if not self._base:
                await self.base_dir()
            path = self._secrets_path(run_id)
            if not path:
                return
            await self._call("removing the job's secrets", self.client().rm, self.machine, path)
        except NotFound:
            pass
        except HpcmlError as exc:  # the job script removes it too when it runs
            log.warning("could not remove the secrets file of run %s: %s", run_id, exc)

    async def submit(self, prepared: PreparedJob[FirecrestConfig]) -> Submission:
        from .batchscript import render_batch_script, split_env

        c = self.client()
        run_id, run_dir = prepared.ctx.run_id, prepared.run_dir
        if not run_dir:
            raise UserInputError(Problem(f"run {run_id} was not prepared"))
        job = JobSpec.from_context(prepared.ctx)
        api_fields = self._api_fields()
        spec = self._script_job(run_dir, job, api_fields, data=prepared.ctx.data)
        _, secret = split_env(spec.env)
        secrets_path = await self._upload_secrets(run_id, secret) if secret else None
        script = render_batch_script(spec, run_dir, secrets_file=secrets_path)
        kwargs = _submit_fields(job, api_fields)

        async def send() -> str:
            try:
                result = await self._call("submitting the job", c.submit, self.machine, run_dir,
                                          script_str=script, idempotent=False, **kwargs)
            except CommandFailed as exc:
                # Real FirecREST: sbatch's refusal is HTTP 500 "Unexpected Slurm command
                # response. exit_status:1 std_err:sbatch: error: ...": definite, nothing ran.
                if secrets_path:
                    await self._remove_secrets(run_id)
                stderr = exc.detail.partition("std_err:")[2] or exc.detail
                raise SubmitRejected(sbatch_message(stderr)) from None
            return str(result["jobId"])

        async def look_up() -> str | None:
            # The request may have reached Slurm: look for the job before sending it again.
            self._ambiguous[run_id] = time.monotonic()
            found = await self._await_submitted(run_id)
            if not found:
                log.info("run %s: no job in Slurm's list %.0f s after a submission without "
                         "answer", run_id, self.ambiguous_settle)
            return found

        job_id: str | None = (await submit_looked_up(send, look_up)).value
        assert job_id is not None
        self._ambiguous.pop(run_id, None)
        self._submitted_at[job_id] = time.monotonic()
        return Submission(job_id, JobStatus(RunState.QUEUED))

    async def submit_array(self, prepared: PreparedJob[FirecrestConfig],
                           tasks: Sequence[ArrayTask], max_parallel: int | None = None
                           ) -> list[Submission]:
        """The tasks as ONE Slurm job array per chunk of at most ``max_array_size`` (one in
        the usual case), each chunk after the previous has ended (``afterany``), so that at
        most ``max_parallel`` run at once (``%K``). The code was uploaded once by
        ``prepare``; the per-task files (env, command, parameter table) go up here in one
        archive. Task ``i`` is element ``i - offset`` of its chunk: job id "<array>_<local>".

        A later chunk that sbatch refuses fails its own tasks; the first one fails them all."""
        from .batchscript import render_batch_script, split_env, task_files

        run_id, run_dir = prepared.ctx.run_id, prepared.run_dir
        if not run_dir:
            raise UserInputError(Problem(f"run {run_id} was not prepared"))
        if not tasks:
            return []
        if max_parallel is not None and max_parallel < 1:
            raise UserInputError(Problem("max-parallel must be at least 1", key="max_parallel"))
        await self._upload_into(run_dir, task_files(tasks))
        job = JobSpec.from_context(prepared.ctx)
        api_fields = self._api_fields()
        _, secret = split_env(job.env)
        secrets_path = await self._upload_secrets(run_id, secret) if secret else None
        kwargs = _submit_fields(job, api_fields)
        by_index = {t.index: t for t in tasks}
        out: dict[int, Submission] = {}
        previous: str | None = None
        for n, chunk in enumerate(array_chunks(by_index, self.max_array_size)):
            name_id = run_id if n == 0 else f"{run_id}-{n}"
            spec = self._script_job(run_dir, job, api_fields, array=True, name_id=name_id,
                                    data=prepared.ctx.data)
            after = [f"--dependency=afterany:{previous}"] if previous else []
            script = render_batch_script(spec, run_dir, secrets_file=secrets_path,
                                         array=chunk.spec(max_parallel),
                                         array_offset=chunk.offset, extra_sbatch=after)
            try:
                array_id = await self._send_array(name_id, run_dir, script, kwargs)
            except SubmitRejected as exc:
                if n == 0:
                    if secrets_path:
                        await self._remove_secrets(run_id)
                    raise
                for i in chunk.tasks:  # the chunks before it run; these never will
                    out[i] = Submission("", JobStatus(RunState.FAILED, None, str(exc)))
                continue
            previous = array_id
            now = time.monotonic()
            for local, i in zip(chunk.local, chunk.tasks, strict=True):
                job_id = f"{array_id}_{local}"
                self._submitted_at[job_id] = now
                out[i] = Submission(job_id, JobStatus(RunState.QUEUED))
        return [out[t.index] for t in tasks]

    async def _send_array(self, name_id: str, run_dir: str, script: str,
                          kwargs: dict[str, str]) -> str:
        """sbatch one array chunk; a lost answer is looked for in Slurm's list first."""
        c = self.client()

        async def send() -> str:
            try:
                result = await self._call("submitting the array job", c.submit, self.machine,
                                          run_dir, script_str=script, idempotent=False, **kwargs)
            except CommandFailed as exc:
                # Real FirecREST: sbatch's refusal (e.g. "Invalid job array specification"
                # above the site's MaxArraySize) is HTTP 500 "... std_err:sbatch: error: ...".
                stderr = exc.detail.partition("std_err:")[2] or exc.detail
                raise SubmitRejected(sbatch_message(stderr)) from None
            return str(result["jobId"])

        async def look_up() -> str | None:
            self._ambiguous[name_id] = time.monotonic()
            return await self._await_submitted(name_id, array=True)

        array_id: str | None = (await submit_looked_up(send, look_up)).value
        assert array_id is not None
        self._ambiguous.pop(name_id, None)
        return array_id

    async def _upload_into(self, run_dir: str, files: Mapping[str, bytes]) -> None:
        """Files (relative path → content) into the run directory: one archive, one extract."""
        c = self.client()
        base, name = posixpath.split(run_dir.rstrip("/"))
        for key in files:
            run_relpath(key)
        with tempfile.TemporaryDirectory(prefix="hpcml-fc-") as tmp:
            archive = Path(tmp) / f".hpcml-tasks-{_safe_id(name)}.tar.gz"
            await asyncio.to_thread(_write_files, archive, name, files)
            await self._call("uploading the task files", c.upload, self.machine, archive, base,
                             archive.name)
        remote = f"{base}/{archive.name}"
        await self._call("unpacking the task files", c.extract, self.machine, remote, base, "gzip")
        try:
            await self._call("removing the upload archive", c.rm, self.machine, remote)
        except HpcmlError as exc:  # only litter
            log.warning("could not remove %s: %s", remote, exc)

    async def _await_submitted(self, run_id: str, array: bool = False) -> str | None:
        """Look for the run's job in Slurm's list until ``ambiguous_settle`` has passed."""
        deadline = time.monotonic() + self.ambiguous_settle
        while True:
            try:
                found = await self._find(run_id, array)
            except BackendUnavailable:
                found = None
            if found or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(min(1.0, max(deadline - time.monotonic(), 0.0)))

    async def _find(self, run_id: str, array: bool = False) -> str | None:
        """The job id of the run's job (``array``: of an array chunk) in Slurm's list."""
        jobs = await self._call("listing jobs", self.client().job_info, self.machine)
        suffix = f"-{_safe_id(run_id)}"
        found = [str(j.get("jobId")) for j in jobs if str(j.get("name", "")).endswith(suffix)]
        ids = [int(base) for f in found if (base := array_task(f)[0]).isdigit()]
        if ids and (array or len(found) > 1):
            # An array is listed as "<id>_<i>" (sacct), by each running element's own id
            # and the pending rest under the array's id (squeue): the array's id is the
            # smallest (Slurm numbers an element when it starts).
            return str(min(ids))
        return found[0] if found else None

    async def find_submitted(self, ctx: JobContext[FirecrestConfig]) -> str | None:
        found = await self._find(ctx.run_id)
        since = self._ambiguous.get(ctx.run_id)
        if found is None and since is not None and time.monotonic() - since < self.ambiguous_settle:
            # The server may still be carrying out a submission whose answer we lost.
            raise BackendUnavailable(f"waiting to see whether run {ctx.run_id}'s job reached Slurm")
        return found

    # ------------------------------------------------------------ poll

    async def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        if not jobs:
            return {}
        try:
            listed = await self._call("listing jobs", self.client().job_info, self.machine)
        except BackendUnavailable:
            raise
        except HpcmlError as exc:  # auth trouble etc.: the jobs may well run on
            raise BackendUnavailable(str(exc)) from None
        by_id = index_jobs((str(j.get("jobId")), sj) for j in listed if (sj := slurm_job(j)))
        # Ids as the server listed them (index_jobs also adds an array's summary).
        literal = {str(j.get("jobId")) for j in listed}
        out: dict[str, JobStatus] = {}
        fallback = 0
        arrays: dict[str, dict[str, dict[str, Any]] | None] = {}  # looked up this poll
        for ref in jobs:
            found = by_id.get(ref.job_id)
            if found is not None and (ref.job_id in literal or not _is_task(ref.job_id)):
                out[ref.job_id] = job_status(found)
                continue
            base, _ = array_task(ref.job_id)
            waiting = by_id.get(base) if _is_task(ref.job_id) and base in literal else None
            if waiting is not None and map_state(waiting.state)[0] == RunState.QUEUED:
                # Real FirecREST (squeue): an array's elements that have not started are ONE
                # entry under the array's id, e.g. PENDING with reason JobArrayTaskLimit.
                out[ref.job_id] = job_status(waiting)
                continue
            submitted = self._submitted_at.get(ref.job_id)
            if submitted is not None and time.monotonic() - submitted < self.submit_grace:
                out[ref.job_id] = JobStatus(RunState.QUEUED, message="not yet in Slurm's job list")
                continue
            if _is_task(ref.job_id) and base in arrays:
                out[ref.job_id] = await self._task_status(ref, arrays[base], base in literal)
                continue
            if fallback >= self.max_fallback_reads:
                continue  # the engine records UNKNOWN; looked at again next time
            fallback += 1
            try:
                if _is_task(ref.job_id):
                    arrays[base] = await self._array_models(base)
                    out[ref.job_id] = await self._task_status(ref, arrays[base],
                                                              base in literal)
                else:
                    out[ref.job_id] = await self._status_of_unlisted(ref)
            except BackendUnavailable:
                continue  # UNKNOWN this time
        return out

    async def _array_models(self, array_id: str) -> dict[str, dict[str, Any]] | None:
        """Slurm's record of every element of an array, by "<array>_<index>" (``GET
        /jobs/<array id>``: ``sacct --jobs`` has no time window); None: Slurm has none."""
        try:
            models = await self._call(f"looking up job {array_id}", self.client().job_info,
                                      self.machine, array_id)
        except NotFound:
            return None
        except HpcmlError as exc:
            if isinstance(exc, BackendUnavailable):
                raise
            return None
        return {str(m.get("jobId")): m for m in models}

    async def _task_status(self, ref: JobRef, models: dict[str, dict[str, Any]] | None,
                           listed: bool = False) -> JobStatus:
        """A task from its array's records (``models``), else from its exit-code file. An
        array Slurm still runs (``listed``, or live in ``models``) may have started the task
        before its accounting shows it (sacct lags squeue by seconds): UNKNOWN then, not
        the FAILED of a task Slurm forgot."""
        model = (models or {}).get(ref.job_id)
        if model is not None:
            return slurm_state(model)
        status = await self._status_from_exit_file(ref)
        live = listed or any(
            not map_state(sj.state)[0].terminal
            for m in (models or {}).values() if (sj := slurm_job(m)) is not None)
        if status.state.terminal and status.exit_code is None and live:
            return JobStatus(RunState.UNKNOWN, None,
                             "Slurm's accounting does not list this task yet")
        return status

    async def _status_of_unlisted(self, ref: JobRef) -> JobStatus:
        """A job missing from the job list (which shows the last 24 h of ended jobs):
        Slurm's own record of it (``sacct -j`` has no time window), else the exit-code
        file its batch script wrote; FAILED only when neither exists."""
        try:
            models = await self._call(f"looking up job {ref.job_id}", self.client().job_info,
                                      self.machine, ref.job_id)
        except NotFound:
            models = []
        except HpcmlError as exc:
            if isinstance(exc, BackendUnavailable):
                raise
            models = []
        model = next((m for m in models if str(m.get("jobId")) == ref.job_id), None)
        if model is not None:
            return slurm_state(model)
        return await self._status_from_exit_file(ref)

    async def _status_from_exit_file(self, ref: JobRef) -> JobStatus:
        """A job Slurm no longer knows: its end as the batch script recorded it."""
        if not ref.run_dir:
            return job_status(None)
        name = exit_file(ref.task)
        path = _shell_safe(f"{ref.run_dir.rstrip('/')}/{name}", name)
        try:
            data: bytes | None = await self._read_range(path, 0, 4096, 4096)
        except NotFound:
            data = None
        return job_status(None, parse_exit_record(data))

    # ------------------------------------------------------------ files

    async def _view(self, path: str, offset: int, size: int) -> str:
        """``GET ops/view`` with the spec's ``offset``/``size`` (pyfirecrest's ``view()``
        takes neither, so its request helper is used)."""
        c = self.client()

        async def call() -> Any:
            resp = await c._get_request(endpoint=f"/filesystem/{self.machine}/ops/view",
                                        params={"path": path, "offset": offset, "size": size})
            return c._check_response(resp, 200)["output"]

        out = await self._call(f"reading {posixpath.basename(path)}", call)
        if isinstance(out, dict):  # newer servers: {"content": ..., "file_size": ...}
            out = out.get("content", "")
        return str(out or "")

    async def _tail_from(self, path: str, start: int) -> str:
        """The file from byte ``start`` to its end (``tail -c +N``: byte semantics)."""
        out = await self._call(f"reading {posixpath.basename(path)}", self.client().tail,
                               self.machine, path,
                               num_bytes=start + 1, exclude_beginning=True)
        return str((out.get("content") if isinstance(out, dict) else out) or "")

    async def _download_small(self, path: str) -> bytes | None:
        """The file's exact bytes through ``ops/download`` (None when it is too large)."""
        c = self.client()

        async def call() -> bytes:
            resp: httpx.Response = await c._get_request(
                endpoint=f"/filesystem/{self.machine}/ops/download", params={"path": path})
            c._check_response(resp, 200, return_json=False)
            return resp.content

        try:
            return await self._call(f"downloading {posixpath.basename(path)}", call)
        except OutputTooLarge:
            return None

    async def _read_range(self, path: str, offset: int, want: int, size: int) -> bytes:
        """Up to ``want`` bytes from byte ``offset`` (``size``: the file's size at stat).

        FirecREST only serves files as text decoded from UTF-8 (errors → U+FFFD), and its
        ``view`` counts offsets in characters past a block start: so the read starts at a
        byte-exact place (``tail -c +N``, or a ``view`` block boundary) up to 3 bytes
        early (a character cut at ``offset`` comes back whole), and the text is encoded
        again. Where the text has U+FFFD, the exact bytes come from ``ops/download`` when
        the file is small enough; else each U+FFFD stands for one byte ``?``."""
        lead = min(offset, 3)
        start = offset - lead
        text: str | None = None
        drop_tail = True  # tail: a trailing U+FFFD is a character still being written
        at_end = True  # the text runs to the end of the file
        if size - start <= TAIL_LIMIT:
            try:
                text = await self._tail_from(path, start)
            except OutputTooLarge:  # it grew past the output limit since the stat
                text = None
        if text is None:
            start -= start % VIEW_BLOCK
            text = await self._view(path, start, VIEW_BLOCK)
            at_end = start + 2 * VIEW_BLOCK >= size
            # Cut by the two-block window (not by the character count, not at the end)?
            drop_tail = len(text) < VIEW_BLOCK and not at_end
        if drop_tail and text.endswith(_REPLACEMENT):
            text = text[:-1]
        skip = len(text) - len(text.lstrip(_REPLACEMENT))  # bytes of a character cut by `start`
        if _REPLACEMENT in text[skip:] or skip > offset - start:
            raw = await self._download_small(path) if size <= DOWNLOAD_LIMIT else None
            if raw is not None:
                return _cut(raw[offset: offset + want], want)
        data = text.replace(_REPLACEMENT, "?").encode("utf-8")[offset - start:]
        if not data and not at_end:
            # Undecodable bytes that stood for more than one byte each hid the offset: give
            # one placeholder byte so that a reader always moves on (the file goes on).
            return b"?"
        return _cut(data, want)

    async def read(self, ref: JobRef, relpath: str, offset: int, max_bytes: int) -> Chunk:
        if offset < 0 or max_bytes < 0:
            raise UserInputError(Problem("offset and max_bytes must not be negative"))
        path = self._path(ref, relpath)
        try:
            st = await self._call(f"reading {relpath}", self.client().stat, self.machine, path)
        except NotFound:
            return Chunk(b"", offset, offset, None)
        size = int(st["size"])
        want = min(max_bytes, max(size - offset, 0), READ_LIMIT)
        if want <= 0:
            return Chunk(b"", offset, offset, size)
        try:
            data = await self._read_range(path, offset, want, size)
        except NotFound:
            return Chunk(b"", offset, offset, None)
        return Chunk(data, offset, offset + len(data), max(size, offset + len(data)))

    async def _ls(self, path: str, recursive: bool) -> list[dict[str, Any]]:
        return await self._call(f"listing {posixpath.basename(path) or path}",
                                self.client().list_files,
                                self.machine, path, show_hidden=True, recursive=recursive)

    async def _walk(self, path: str) -> list[dict[str, Any]]:
        """``ls`` directory by directory, names made relative to ``path`` and decoded;
        directories that cannot be read are left out (logged)."""
        out: list[dict[str, Any]] = []
        todo = [""]
        while todo and len(out) < self.max_walk_entries:
            rel = todo.pop(0)
            try:
                entries = await self._ls(f"{path}/{rel}" if rel else path, recursive=False)
            except (Forbidden, NotFound) as exc:
                if not rel:
                    raise
                log.warning("FirecREST: leaving out %s of %s: %s", rel, path, exc)
                continue
            for e in entries:
                leaf = ls_name(str(e.get("name")))
                name = f"{rel}/{leaf}" if rel else leaf
                out.append({**e, "name": name})
                if e.get("type") == "d" and "'" not in name:
                    todo.append(name)
        return out

    async def list_files(self, ref: JobRef, relpath: str = "") -> list[FileInfo]:
        path = self._path(ref, relpath)
        try:
            listed = await self._ls(path, recursive=True)
            entries = [{**e, "name": ls_name(str(e.get("name")))} for e in listed]
        except NotFound:
            raise NotFound(f"no such directory in the run directory: {relpath}") from None
        except (Forbidden, OutputTooLarge) as exc:
            # Real FirecREST: one unreadable subdirectory fails the whole `ls -R` (403), a
            # big tree its output limit (413): list what can be listed, one directory at a time.
            log.info("FirecREST: listing %s directory by directory (%s)", path, exc)
            try:
                entries = await self._walk(path)
            except NotFound:
                raise NotFound(f"no such directory in the run directory: {relpath}") from None
        out = []
        for e in entries:
            is_dir = e.get("type") == "d"
            size = None if is_dir else _size(e.get("size"))
            out.append(FileInfo(path=str(e.get("name")), is_dir=is_dir, size=size,
                                mtime=_mtime(e.get("lastModified"))))
        return sorted(out, key=lambda f: f.path)

    async def list_files_many(
        self, items: Sequence[tuple[JobRef, str]]
    ) -> list[list[FileInfo] | BaseException]:
        """Sibling directories of a run (its offline store's params, tags, metrics) from ONE
        recursive ``ls`` of their parent instead of one each; up to ``list_parallel`` at once."""
        groups: dict[tuple[str, str], list[int]] = {}
        for i, (ref, rel) in enumerate(items):
            parent = run_relpath(rel.rstrip("/")).rpartition("/")[0]
            groups.setdefault((ref.run_id, parent), []).append(i)
        out: list[list[FileInfo] | BaseException] = [[] for _ in items]
        gate = asyncio.Semaphore(self.list_parallel)

        async def one(parent: str, idx: list[int]) -> None:
            ref = items[idx[0]][0]
            whole = len(idx) == 1
            async with gate:
                try:
                    files = await self.list_files(ref, items[idx[0]][1] if whole else parent)
                except (NotFound, FileNotFoundError):
                    files = []
                except Exception as exc:  # noqa: BLE001 - returned in its place
                    for i in idx:
                        out[i] = exc
                    return
            for i in idx:
                if whole:
                    out[i] = files
                    continue
                prefix = run_relpath(items[i][1].rstrip("/")).rpartition("/")[2] + "/"
                out[i] = [replace(f, path=f.path[len(prefix):]) for f in files
                          if f.path.startswith(prefix)]

        await asyncio.gather(*(one(parent, idx) for (_, parent), idx in groups.items()))
        return out

    async def fetch(self, ref: JobRef, relpath: str, dest: Path) -> None:
        path = self._path(ref, relpath)
        dest = Path(dest)
        await asyncio.to_thread(dest.parent.mkdir, parents=True, exist_ok=True)
        try:
            await self._call(f"downloading {relpath}", self.client().download, self.machine, path,
                             dest)
        except FileNotFoundError:
            raise NotFound(f"no such file in the run directory: {relpath}") from None

    async def cancel(self, ref: JobRef) -> JobStatus | None:
        """Cancel the job; when it had already ended (the real server answers HTTP 500
        "Job/step already completing or completed" or "Invalid job id specified", never
        404), return how it really ended, so that its own end is recorded, not "cancelled"."""
        if not ref.job_id:
            return None
        if _is_task(ref.job_id):
            return await self._cancel_task(ref)
        ended = False
        try:
            await self._call("cancelling the job", self.client().cancel_job, self.machine,
                             ref.job_id)
        except NotFound:
            ended = True
        except CommandFailed as exc:
            if not cancel_moot(exc.detail):  # (an ended job: HTTP 500, never 404)
                why = exc.detail.partition("std_err:")[2].strip() or exc.detail
                raise RemoteError(
                    f"FirecREST could not cancel job {ref.job_id}: {why}") from None
            ended = True
        await self._remove_secrets(ref.run_id)  # a job cancelled while pending never deletes it
        if not ended:
            return None
        status = await self._status_of_unlisted(ref)
        return status if status.state.terminal else None

    async def _cancel_task(self, ref: JobRef) -> JobStatus | None:
        """One element of an array, never its siblings. Real FirecREST takes only job ids
        matching ``^[a-zA-Z0-9]+$`` (DELETE /jobs/123_4 is a 400), and ``scancel <array
        id>`` would stop every element: so the task is cancelled by the Slurm job id it
        noted when it started (``.hpcml/tasks/<i>.<array id>.jobid``). One that has not
        started is asked not to (``.hpcml/tasks/<i>.<array id>.cancelled``, written before
        the note is looked for) and is CANCELLED from now on."""
        if ref.task is None or not ref.run_dir:
            raise UserInputError(Problem(f"job {ref.job_id} is an array task without its index"))
        c = self.client()
        run_dir = ref.run_dir.rstrip("/")
        array_id = array_task(ref.job_id)[0]
        asked = TASK_CANCELLED.format(task=ref.task, array=array_id)
        with tempfile.TemporaryDirectory(prefix="hpcml-fc-") as tmp:
            local = Path(tmp) / posixpath.basename(asked)
            await asyncio.to_thread(local.write_bytes, b"cancelled\n")
            await self._call(f"asking task {ref.task} to stop", c.upload, self.machine, local,
                             f"{run_dir}/{posixpath.dirname(asked)}", local.name)
        note = _shell_safe(f"{run_dir}/{TASK_JOB_ID.format(task=ref.task, array=array_id)}",
                           "task note")
        try:
            raw = (await self._read_range(note, 0, 64, 64)).decode().strip()
        except NotFound:
            raw = ""
        if not raw.isdigit():
            return JobStatus(RunState.CANCELLED, None, "cancelled before it started")
        try:
            await self._call(f"cancelling task {ref.task} (job {raw})", c.cancel_job,
                             self.machine, raw)
        except NotFound:
            pass
        except CommandFailed as exc:
            if not cancel_moot(exc.detail):
                why = exc.detail.partition("std_err:")[2].strip() or exc.detail
                raise RemoteError(
                    f"FirecREST could not cancel job {ref.job_id}: {why}") from None
        else:
            return None
        models = await self._array_models(array_id)
        status = await self._task_status(ref, models, listed=False)
        return status if status.state.terminal else None

    async def close(self) -> None:
        for client in [*self._retired, self._client]:
            if client is None:
                continue
            try:
                await client.close_session()
            except Exception:  # noqa: BLE001 - closing must not fail shutdown
                pass
        self._client, self._retired = None, []


_REPLACEMENT = "\ufffd"
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13,
              "\\": 92, '"': 34, "'": 39, "?": 63}


def _c_unescape(text: str, quotes_too: bool) -> bytes:
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            octal = text[i + 1: i + 4]
            if len(octal) == 3 and all(c in "01234567" for c in octal):
                out.append(int(octal, 8) & 0xFF)
                i += 4
                continue
            nxt = text[i + 1]
            if nxt in "abtnvfr" or (quotes_too and nxt in "\\\"'?"):
                out.append(_C_ESCAPES[nxt])
                i += 2
                continue
        out += ch.encode("utf-8")
        i += 1
    return bytes(out)


def ls_name(name: str) -> str:
    """A name from FirecREST's ``ls``, decoded.

    The real server runs ``ls --quoting-style=c`` (C locale: ``ü`` is ``\\303\\274``) and
    unquotes each file name with ``shlex.split``, which undoes only ``\\\\`` and ``\\"``;
    the directory part of a recursive listing's names is ls's folder header, all escapes
    kept. A name that is not UTF-8 once decoded stays as FirecREST spelled it."""
    if "\\" not in name:
        return name
    head, sep, last = name.rpartition("/")
    raw = (_c_unescape(head, True) + b"/" if sep else b"") + _c_unescape(last, False)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return name


def _cut(data: bytes, want: int) -> bytes:
    """At most ``want`` bytes, not ending inside a UTF-8 character (the next read starts
    at a character then, which the text endpoints can serve)."""
    if len(data) <= want:
        return data
    cut = want
    while cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return data[:cut] if cut > 0 else data[:want]


def _is_task(job_id: str) -> bool:
    """An array element's id ("123_4"): the real server cannot take it in a path."""
    return array_task(job_id)[1] is not None


def _command_failed(message: str) -> bool:
    """Whether a 500 reports a command that ran and failed (sbatch, scancel, a file
    operation), rather than trouble reaching Slurm or the login node."""
    ran = "exit_status:" in message or "Remote process failed with exit status" in message
    return ran and not slurm_transient(message)


def _message(resp: httpx.Response | None) -> str:
    if resp is None:
        return "no response"
    try:
        body = resp.json()
        msg = body.get("message") if isinstance(body, dict) else None
    except ValueError:
        msg = None
    return str(msg or resp.reason_phrase or "error")[:300]


def _shell_safe(path: str, what: str, key: str | None = None) -> str:
    """``path``, unless FirecREST cannot handle it: the real server pastes paths between
    single quotes into shell commands (``ls -- '<path>'``), so one ``'`` breaks the
    command (HTTP 500, "Unterminated quoted string") and two change the path."""
    if "'" in path:
        raise UserInputError(Problem(
            f"FirecREST cannot work with {what!r}: its server puts paths into shell commands "
            "between single quotes, so a name with ' cannot be read, listed or downloaded "
            "through it", key=key))
    return path


def _safe_id(run_id: str) -> str:
    if not run_id or not all(ch.isalnum() or ch in "-_" for ch in run_id):
        raise UserInputError(Problem(f"invalid run id {run_id!r}"))
    return run_id


def _size(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _submit_fields(job: JobSpec, api_fields: set[str]) -> dict[str, str]:
    """``submit()``'s keyword fields for the Resources the server's API takes as fields."""
    res = job.resources or {}
    fields = {"account": "Account", "partition": "Queue", "reservation": "Reservation"}
    return {k: str(res[key]) for k, key in fields.items()
            if key in api_fields and res.get(key) not in (None, "")}


def _task_note_command() -> str:
    """An array task's first step: note the Slurm job id it runs as (the real server takes
    only ``[a-zA-Z0-9]+`` job ids, so one task is cancelled by this id, not by
    "<array>_<index>"), then stop if it was cancelled before it started (FirecREST cannot
    cancel one pending element). Note first, check second: a cancel that finds no note
    wrote its request before the task could look for it."""
    note = '"$HPCML_TASK_DIR/$HPCML_TASK_INDEX.$SLURM_ARRAY_JOB_ID.jobid"'
    asked = '"$HPCML_TASK_DIR/$HPCML_TASK_INDEX.$SLURM_ARRAY_JOB_ID.cancelled"'
    return (f'printf "%s\\n" "$SLURM_JOB_ID" > {note} && '
            f'{{ [ ! -e {asked} ] || {{ echo "hpcml: task $HPCML_TASK_INDEX was cancelled '
            'before it started" >&2; exit 1; }; }')


def _place_once_command(objects_dir: str) -> str:
    """:func:`.cas_upload.copy_from_store_command` for the tasks of an array sharing one run
    directory: each file copied beside its place and renamed into it (a task that already
    runs never reads half a file another task is writing), skipped once done."""
    o = shlex.quote(objects_dir)
    return (
        f"[ -e {PLACED} ] || [ ! -f {MANIFEST} ] || {{ "
        "while IFS= read -r -d '' __sha && IFS= read -r -d '' __mode "
        "&& IFS= read -r -d '' __rel; do "
        'mkdir -p -- "$(dirname -- "$__rel")" && __tmp="$__rel.hpcml-$$" && '
        f'cp -f -- {o}/"$__sha" "$__tmp" && chmod "$__mode" -- "$__tmp" && '
        'mv -f -- "$__tmp" "$__rel" '
        '|| { echo "hpcml: could not place $__rel from the object store" >&2; exit 1; }; '
        f"done < {MANIFEST} && : > {PLACED}; }}"
    )


def _write_files(archive: Path, top: str, files: Mapping[str, bytes]) -> None:
    """A gzip archive of ``files`` under the directory ``top``."""
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        for rel, data in sorted(files.items()):
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))


def _write_archive(archive: Path, run_id: str, plan: UploadPlan, extras: dict[str, bytes]) -> int:
    """The upload: missing objects, the run's manifest, the extra files. Returns its size."""
    def add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), mode, int(time.time())
        tar.addfile(info, io.BytesIO(data))

    def add_dir(tar: tarfile.TarFile, name: str) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
        tar.addfile(info)

    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        add_dir(tar, OBJECTS)
        for f in plan.missing:
            path = str(plan.snapshot.object_path(f))
            tar.add(path, arcname=f"{OBJECTS}/{f.sha256}", recursive=False)
        add_dir(tar, run_id)
        add_dir(tar, f"{run_id}/{META_DIR}")
        add_bytes(tar, f"{run_id}/{MANIFEST}", manifest0(plan.snapshot))
        for key, data in sorted(extras.items()):
            rel = key.rstrip("/")
            if key.endswith("/"):
                add_dir(tar, f"{run_id}/{rel}")
            else:
                add_bytes(tar, f"{run_id}/{rel}", data)
    return os.path.getsize(archive)
