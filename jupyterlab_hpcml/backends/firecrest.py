"""The FirecREST backend: Slurm jobs through a site's FirecREST v2 API (``firecrest.v2.AsyncFirecrest``).

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
* **Submit**: the shared Slurm script (``batchscript.render_batch_script``); the job's
  environment (tracking token included) travels in the API's ``env`` field, never in
  the script; ``partition``/``account``/``reservation`` as API fields where the server's
  version has them, else as ``#SBATCH`` lines.
* **Poll**: ONE ``GET /compute/{machine}/jobs`` per cycle for all runs, filtered here.
* **Files**: ``stat`` + ``view`` (offset/size, ≤ 5 MiB) for byte-range reads, ``ls``
  (recursive) for listings, ``download`` (direct or staged) for artifacts.
"""
from __future__ import annotations

import asyncio
import io
import logging
import os
import posixpath
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from ..engine.errors import BackendUnavailable, HpcmlError, NotFound, Problem, UserInputError
from ..engine.models import RunRecord, RunState
from .base import (
    META_DIR,
    Backend,
    Chunk,
    Features,
    FileInfo,
    JobRef,
    JobSpec,
    JobStatus,
    ProgressCallback,
    Snapshot,
    run_relpath,
)
from .credentials import (
    MEMORY,
    ApiKeyHeaderAuth,
    AsyncClientCredentialsAuth,
    AsyncTokenCommandAuth,
    AuthenticationError,
    CredentialsMissing,
    TokenEndpointUnavailable,
    firecrest_credentials,
)

log = logging.getLogger(__name__)

OBJECTS = ".objects"
MANIFEST = f"{META_DIR}/manifest0"  # NUL-separated: sha256, octal mode, relpath (per file)
VIEW_LIMIT = 5 * 1024 * 1024  # the API's ops size limit
EXIT_FILE = f"{META_DIR}/exit_code"

# Slurm job states (squeue/sacct/slurmrestd spellings) → run states.
_QUEUED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD",
           "PD", "CF", "RQ", "RH", "RF", "RD"}
_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING", "SUSPENDED", "STOPPED",
            "R", "CG", "SO", "SI", "RS", "S", "ST"}
_FAILED = {"FAILED", "NODE_FAIL", "BOOT_FAIL", "OUT_OF_MEMORY", "DEADLINE", "PREEMPTED",
           "LAUNCH_FAILED", "SPECIAL_EXIT", "REVOKED", "F", "NF", "BF", "OOM", "DL", "PR", "SE", "RV"}


class RemoteError(HpcmlError):
    """FirecREST refused a request for a reason retrying will not fix."""

    status = 502


def slurm_state(job: dict[str, Any]) -> JobStatus:
    """A FirecREST job model (``status.state`` may be a string, "A,B" or a list) → JobStatus."""
    status = job.get("status") or {}
    raw = status.get("state")
    parts = raw if isinstance(raw, list) else str(raw or "").split(",")
    # "CANCELLED by 1234" (sacct) → CANCELLED; flags such as "+" are dropped.
    states = [p.strip().split(" ")[0].rstrip("+").upper() for p in parts if p and p.strip()]
    code = _exit_code(status.get("exitCode"))
    reason = status.get("stateReason")
    if not states:
        return JobStatus(RunState.UNKNOWN, code, "FirecREST reported no job state")
    s = states[0]
    if s in _QUEUED:
        return JobStatus(RunState.QUEUED, None, _reason(reason))
    if s in _RUNNING:
        return JobStatus(RunState.RUNNING)
    if s in ("COMPLETED", "CD"):
        if code:
            return JobStatus(RunState.FAILED, code, f"exit code {code}")
        return JobStatus(RunState.FINISHED, 0)
    if s in ("CANCELLED", "CA"):
        return JobStatus(RunState.CANCELLED, code, f"Slurm: {str(raw if not isinstance(raw, list) else s)}")
    if s in ("TIMEOUT", "TO"):
        return JobStatus(RunState.TIMEOUT, code, "Slurm: runtime limit reached")
    if s in _FAILED:
        msg = f"Slurm: {s}" + (f", exit code {code}" if code else "")
        return JobStatus(RunState.FAILED, code, msg)
    return JobStatus(RunState.UNKNOWN, code, f"unrecognised Slurm state {s!r}")


def _exit_code(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, dict):  # slurmrestd: {"return_code": {"number": 1}, ...}
        value = (value.get("return_code") or {}).get("number", value.get("number"))
    text = str(value)
    try:
        return int(text.split(":")[0])  # sacct "1:0"
    except ValueError:
        return None


def _reason(reason: Any) -> str | None:
    return None if reason in (None, "", "None") else f"Slurm: {reason}"


def _mtime(text: Any) -> float | None:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S").timestamp()
    except ValueError:
        return None


class FirecrestBackend(Backend):
    kind = "firecrest"
    http_timeout = 30.0
    max_429_retries = 3
    transient_retries = 2  # extra attempts of idempotent calls after 5xx / dropped connections
    retry_backoff = (0.3, 1.0)
    submit_grace = 120.0  # a job not yet in the list this long after submission counts as QUEUED
    max_fallback_reads = 20  # per poll: exit-code reads of jobs no longer in the job list

    def __init__(self, config: dict[str, Any], data_dir: Path):
        super().__init__(config, data_dir)
        fc = config.get("Firecrest") or {}
        self.api_url = str(fc.get("ApiUrl") or "").rstrip("/")
        self.token_url = str(fc.get("TokenUrl") or "")
        self.machine = str(fc.get("Machine") or "")
        self.work_dir = fc.get("WorkDir")
        self._client: Any = None
        self._creds_version = 0  # MEMORY.version of the credentials the client was made with
        self._retired: list[Any] = []  # clients replaced after new credentials
        self._auth: Any = None
        self._base: str | None = None
        self._api_version: str | None = None
        self._submitted_at: dict[str, float] = {}
        self._lock: asyncio.Lock | None = None
        if isinstance(self.work_dir, str) and self.work_dir.startswith("/"):
            self._base = self.work_dir.rstrip("/") or "/"

    def supported_features(self) -> Features:
        from .batchscript import HONOURED_RESOURCES

        return Features(cancel=True, logs=True, log_follow=True, artifacts=True, rerun=True,
                        upload_progress=True, resources=list(HONOURED_RESOURCES))

    def notes_for(self, config: dict[str, Any]) -> list[str]:
        env = config.get("Environment") or {}
        notes = []
        for key in ("PreRunCommandOnLoginNode", "PostRunCommandOnLoginNode"):
            if env.get(key):
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
            client.num_retries_rate_limit = self.max_429_retries
            self._client = client
        return self._client

    def _unavailable(self, what: str, detail: str) -> BackendUnavailable:
        return BackendUnavailable(f"FirecREST ({self.api_url}, {self.machine}) {detail} while {what}")

    async def _call(self, what: str, fn: Any, *args: Any, idempotent: bool = True, **kwargs: Any) -> Any:
        """Run a client call; translate failures into the engine's errors (never a secret)."""
        from firecrest.FirecrestException import FirecrestException

        attempts = 1 + (self.transient_retries if idempotent else 0)
        refreshed = False
        err: Exception | None = None
        i = 0
        while i < attempts:
            try:
                return await fn(*args, **kwargs)
            except CredentialsMissing:
                raise
            except AuthenticationError as exc:
                raise RemoteError(f"FirecREST authentication failed: {exc}") from None
            except TokenEndpointUnavailable as exc:
                err = BackendUnavailable(f"FirecREST: {exc} while {what}")
            except httpx.TransportError as exc:  # refused, dropped, timed out
                if not idempotent and not isinstance(exc, httpx.ConnectError):
                    raise _Ambiguous(self._unavailable(what, f"dropped the connection ({type(exc).__name__})")) from None
                err = self._unavailable(what, f"cannot be reached ({type(exc).__name__})")
            except FirecrestException as exc:
                resp = exc.responses[-1] if exc.responses else None
                code = resp.status_code if resp is not None else 0
                message = _message(resp)
                if code == 401 and not refreshed and hasattr(self._auth, "invalidate"):
                    self._auth.invalidate()  # expired or revoked token: one fresh try
                    refreshed = True
                    continue
                if code in (401, 403):
                    raise RemoteError(
                        f"FirecREST refused the request while {what} (HTTP {code}: {message})"
                    ) from None
                if code == 404:
                    raise NotFound(f"FirecREST: {message} (while {what})") from None
                if code == 429 or code >= 500:
                    if not idempotent and code >= 500:
                        raise _Ambiguous(self._unavailable(what, f"answered HTTP {code} ({message})")) from None
                    err = self._unavailable(what, f"answered HTTP {code} ({message})")
                else:
                    raise RemoteError(f"FirecREST rejected the request while {what}: HTTP {code}: {message}") from None
            i += 1
            if i < attempts:
                await asyncio.sleep(self.retry_backoff[min(i - 1, len(self.retry_backoff) - 1)])
        assert err is not None
        raise err

    # ------------------------------------------------------------ layout

    def run_dir_for(self, run: RunRecord) -> str | None:
        return f"{self._base}/{_safe_id(run.id)}" if self._base else None

    def _path(self, run: RunRecord, relpath: str = "") -> str:
        if not run.run_dir:
            raise NotFound(f"run {run.id} has no run directory yet")
        rel = run_relpath(relpath)
        return f"{run.run_dir.rstrip('/')}/{rel}" if rel else run.run_dir.rstrip("/")

    async def base_dir(self) -> str:
        if self._base:
            return self._base
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._base:
                return self._base
            c = self.client()
            systems = await self._call("listing systems", c.systems)
            system = next((s for s in systems if str(s.get("name", "")).lower() == self.machine.lower()), None)
            if system is None:
                names = ", ".join(sorted(str(s.get("name")) for s in systems)) or "none"
                raise UserInputError(Problem(
                    f"machine {self.machine!r} is not offered by {self.api_url} (available: {names})",
                    key="Firecrest.Machine"))
            user = (await self._call("reading user info", c.userinfo, self.machine))["user"]["name"]
            fss = {f.get("dataType"): str(f.get("path", "")).rstrip("/") for f in system.get("fileSystems") or []}
            home = fss.get("users")
            wd = str(self.work_dir or "")
            if wd:
                rest = wd[2:] if wd.startswith("~/") else wd[6:] if wd.startswith("$HOME/") else wd
                if not home:
                    raise UserInputError(Problem("WorkDir must be absolute: the system lists no home file system",
                                                 key="Firecrest.WorkDir"))
                base = f"{home}/{user}/{rest.strip('/')}"
            else:
                root = fss.get("scratch") or home
                if not root:
                    raise UserInputError(Problem("the system lists neither a scratch nor a home file system: "
                                                 "set Firecrest.WorkDir", key="Firecrest.WorkDir"))
                base = f"{root}/{user}/hpcml"
            await self._call("creating the work directory", c.mkdir, self.machine, base, create_parents=True)
            self._base = base
            return base

    # ------------------------------------------------------------ prepare (upload)

    async def prepare(
        self,
        run: RunRecord,
        snapshot: Snapshot,
        extra_files: dict[str, bytes] | None = None,
        progress: ProgressCallback | None = None,
    ) -> str:
        c = self.client()
        base = await self.base_dir()
        run_dir = f"{base}/{_safe_id(run.id)}"
        present = await self._present_objects(f"{base}/{OBJECTS}")
        extras = {k: v for k, v in (extra_files or {}).items()}
        for key in extras:
            run_relpath(key.rstrip("/"))
        with tempfile.TemporaryDirectory(prefix="hpcml-fc-") as tmp:
            archive = Path(tmp) / f".hpcml-upload-{_safe_id(run.id)}.tar.gz"
            total = await asyncio.to_thread(_write_archive, archive, _safe_id(run.id), snapshot, extras, present)
            if progress:
                progress(0, total)
            await self._call("uploading the code", c.upload, self.machine, archive, base, archive.name)
            if progress:
                progress(total, total)
            remote = f"{base}/{archive.name}"
            await self._call("unpacking the code", c.extract, self.machine, remote, base, "gzip")
        try:
            await self._call("removing the upload archive", c.rm, self.machine, remote)
        except HpcmlError as exc:  # only litter: the run is fine
            log.warning("could not remove %s: %s", remote, exc)
        return run_dir

    async def _present_objects(self, objects_dir: str) -> set[str]:
        try:
            entries = await self._call("listing stored code", self.client().list_files, self.machine, objects_dir)
        except NotFound:
            return set()
        return {str(e.get("name")) for e in entries if e.get("type") == "-"}

    # ------------------------------------------------------------ submit

    def _script_job(self, run: RunRecord, job: JobSpec, api_fields: set[str]) -> tuple[JobSpec, dict[str, str]]:
        """The JobSpec the shared renderer sees: no env (it goes through the API), the
        materialisation step first, login-node commands inside the job."""
        env = dict(job.environment or {})
        objects = f"{posixpath.dirname(run.run_dir.rstrip('/'))}/{OBJECTS}" if run.run_dir else OBJECTS
        pre = [_materialize_command(objects)]
        pre += list(env.get("PreRunCommandOnLoginNode") or []) + list(env.get("PreRunCommandOnComputeNode") or [])
        post = list(env.get("PostRunCommandOnComputeNode") or []) + list(env.get("PostRunCommandOnLoginNode") or [])
        env.update(PreRunCommandOnComputeNode=pre, PostRunCommandOnComputeNode=post)
        env.pop("PreRunCommandOnLoginNode", None)
        env.pop("PostRunCommandOnLoginNode", None)
        resources = {k: v for k, v in (job.resources or {}).items() if k not in api_fields}
        name = f"{job.job_name}-{_safe_id(run.id)}"
        return replace(job, env={}, environment=env, resources=resources, job_name=name), \
            {k: str(v) for k, v in job.env.items()}

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

    async def submit(self, run: RunRecord, job: JobSpec) -> tuple[str, JobStatus]:
        from .batchscript import render_batch_script

        c = self.client()
        if not run.run_dir:
            raise UserInputError(Problem(f"run {run.id} was not prepared"))
        api_fields = self._api_fields()
        spec, env = self._script_job(run, job, api_fields)
        script = render_batch_script(spec, run.run_dir)
        res = job.resources or {}
        kwargs = {
            "account": res.get("Account") if "Account" in api_fields else None,
            "partition": res.get("Queue") if "Queue" in api_fields else None,
            "reservation": res.get("Reservation") if "Reservation" in api_fields else None,
        }
        for attempt in range(2):
            try:
                result = await self._call("submitting the job", c.submit, self.machine, run.run_dir,
                                          script_str=script, env_vars=env, idempotent=False,
                                          **{k: v for k, v in kwargs.items() if v is not None})
                job_id = str(result["jobId"])
                break
            except _Ambiguous as amb:
                # The request may have reached Slurm: look before submitting again.
                found = None
                for _ in range(2):
                    try:
                        found = await self.find_submitted(run)
                    except BackendUnavailable:
                        found = None
                    if found:
                        break
                    await asyncio.sleep(0.5)
                if found:
                    job_id = found
                    break
                if attempt == 1:
                    raise amb.error from None
        self._submitted_at[job_id] = time.monotonic()
        return job_id, JobStatus(RunState.QUEUED)

    async def find_submitted(self, run: RunRecord) -> str | None:
        jobs = await self._call("listing jobs", self.client().job_info, self.machine)
        suffix = f"-{_safe_id(run.id)}"
        for j in jobs:
            if str(j.get("name", "")).endswith(suffix):
                return str(j.get("jobId"))
        return None

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
        by_id = {str(j.get("jobId")): j for j in listed}
        out: dict[str, JobStatus] = {}
        fallback = 0
        for ref in jobs:
            model = by_id.get(ref.job_id)
            if model is not None:
                out[ref.job_id] = slurm_state(model)
                continue
            submitted = self._submitted_at.get(ref.job_id)
            if submitted is not None and time.monotonic() - submitted < self.submit_grace:
                out[ref.job_id] = JobStatus(RunState.QUEUED, message="not yet in Slurm's job list")
                continue
            if fallback >= self.max_fallback_reads or not ref.run_dir:
                continue  # the engine records UNKNOWN; looked at again next time
            fallback += 1
            out[ref.job_id] = await self._status_from_exit_file(ref)
        return out

    async def _status_from_exit_file(self, ref: JobRef) -> JobStatus:
        """A job Slurm no longer lists: its end as the batch script recorded it."""
        import json

        path = f"{ref.run_dir.rstrip('/')}/{EXIT_FILE}"
        try:
            text = await self._view(path, 0, 4096)
        except NotFound:
            return JobStatus(RunState.FAILED, None, "the job is no longer known to Slurm and left no exit code")
        try:
            done = json.loads(text)
        except ValueError:
            return JobStatus(RunState.FAILED, None, "unreadable exit code file")
        code = done.get("exit_code")
        if done.get("timeout"):
            return JobStatus(RunState.TIMEOUT, code, "runtime limit reached")
        if code == 0:
            return JobStatus(RunState.FINISHED, 0)
        return JobStatus(RunState.FAILED, code, f"exit code {code}")

    # ------------------------------------------------------------ files

    async def _view(self, path: str, offset: int, size: int) -> str:
        """``GET ops/view`` with the spec's ``offset``/``size`` (pyfirecrest's ``view()``
        takes neither, so its request helper is used, with its 429 handling)."""
        c = self.client()

        async def call() -> Any:
            resp = await c._get_request(endpoint=f"/filesystem/{self.machine}/ops/view",
                                        params={"path": path, "offset": offset, "size": size})
            return c._check_response(resp, 200)["output"]

        out = await self._call(f"reading {posixpath.basename(path)}", call)
        if isinstance(out, dict):  # newer servers: {"content": ..., "file_size": ...}
            out = out.get("content", "")
        return str(out or "")

    async def read(self, run: RunRecord, relpath: str, offset: int, max_bytes: int) -> Chunk:
        if offset < 0 or max_bytes < 0:
            raise UserInputError(Problem("offset and max_bytes must not be negative"))
        path = self._path(run, relpath)
        try:
            st = await self._call(f"reading {relpath}", self.client().stat, self.machine, path)
        except NotFound:
            return Chunk(b"", offset, offset, None)
        size = int(st["size"])
        want = min(max_bytes, max(size - offset, 0), VIEW_LIMIT)
        if want <= 0:
            return Chunk(b"", offset, offset, size)
        try:
            text = await self._view(path, offset, want)
        except NotFound:
            return Chunk(b"", offset, offset, None)
        data = text.encode("utf-8")
        if len(data) > want:  # invalid UTF-8 came back as U+FFFD: keep offsets honest
            data = data[:want]
        return Chunk(data, offset, offset + len(data), max(size, offset + len(data)))

    async def list_files(self, run: RunRecord, relpath: str = "") -> list[FileInfo]:
        path = self._path(run, relpath)
        try:
            entries = await self._call(f"listing {relpath or 'the run directory'}", self.client().list_files,
                                       self.machine, path, show_hidden=True, recursive=True)
        except NotFound:
            raise NotFound(f"no such directory in the run directory: {relpath}") from None
        out = []
        for e in entries:
            is_dir = e.get("type") == "d"
            try:
                size = None if is_dir else int(e.get("size"))
            except (TypeError, ValueError):
                size = None
            out.append(FileInfo(path=str(e.get("name")), is_dir=is_dir, size=size,
                                mtime=_mtime(e.get("lastModified"))))
        return sorted(out, key=lambda f: f.path)

    async def fetch(self, run: RunRecord, relpath: str, dest: Path) -> None:
        path = self._path(run, relpath)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            await self._call(f"downloading {relpath}", self.client().download, self.machine, path, dest)
        except FileNotFoundError:
            raise NotFound(f"no such file in the run directory: {relpath}") from None

    async def cancel(self, run: RunRecord) -> None:
        if not run.backend_job_id:
            return
        try:
            await self._call("cancelling the job", self.client().cancel_job, self.machine, run.backend_job_id)
        except NotFound:
            pass  # already gone: the next poll reports its end

    async def close(self) -> None:
        for client in [*self._retired, self._client]:
            if client is None:
                continue
            try:
                await client.close_session()
            except Exception:  # noqa: BLE001 - closing must not fail shutdown
                pass
        self._client, self._retired = None, []


class _Ambiguous(Exception):
    """A non-idempotent request failed after it may have reached the server."""

    def __init__(self, error: BackendUnavailable):
        super().__init__(str(error))
        self.error = error


def _message(resp: httpx.Response | None) -> str:
    if resp is None:
        return "no response"
    try:
        body = resp.json()
        msg = body.get("message") if isinstance(body, dict) else None
    except ValueError:
        msg = None
    return str(msg or resp.reason_phrase or "error")[:300]


def _safe_id(run_id: str) -> str:
    if not run_id or not all(ch.isalnum() or ch in "-_" for ch in run_id):
        raise UserInputError(Problem(f"invalid run id {run_id!r}"))
    return run_id


def _materialize_command(objects_dir: str) -> str:
    """Copy the run's files from the object store (bash; NUL-separated manifest)."""
    import shlex

    o = shlex.quote(objects_dir)
    return (
        f"[ -f {MANIFEST} ] || exit 0; "
        "while IFS= read -r -d '' __sha && IFS= read -r -d '' __mode && IFS= read -r -d '' __rel; do "
        'mkdir -p -- "$(dirname -- "$__rel")" && '
        f'cp -f -- {o}/"$__sha" "$__rel" && chmod "$__mode" -- "$__rel" '
        '|| { echo "hpcml: could not place $__rel from the object store" >&2; exit 1; }; '
        f"done < {MANIFEST}"
    )


def _write_archive(archive: Path, run_id: str, snapshot: Snapshot, extras: dict[str, bytes],
                   present: set[str]) -> int:
    """The upload: missing objects, the run's manifest, the extra files. Returns its size."""
    def add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), mode, int(time.time())
        tar.addfile(info, io.BytesIO(data))

    def add_dir(tar: tarfile.TarFile, name: str) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
        tar.addfile(info)

    manifest = bytearray()
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        sent: set[str] = set()
        add_dir(tar, OBJECTS)
        for f in snapshot.files:
            if f.sha256 not in present and f.sha256 not in sent:
                tar.add(str(snapshot.object_path(f)), arcname=f"{OBJECTS}/{f.sha256}", recursive=False)
                sent.add(f.sha256)
            mode = f"{(f.mode & 0o777) or 0o644:o}"
            manifest += f.sha256.encode() + b"\0" + mode.encode() + b"\0" + f.relpath.encode() + b"\0"
        add_dir(tar, run_id)
        add_dir(tar, f"{run_id}/{META_DIR}")
        add_bytes(tar, f"{run_id}/{MANIFEST}", bytes(manifest))
        for key, data in sorted(extras.items()):
            rel = key.rstrip("/")
            if key.endswith("/"):
                add_dir(tar, f"{run_id}/{rel}")
            else:
                add_bytes(tar, f"{run_id}/{rel}", data)
    return os.path.getsize(archive)
