"""The UNICORE backend: jobs through a site's UNICORE/X REST API with ``pyunicore``.

Config (Mantik's format, unchanged): ``UnicoreApiUrl: https://.../SITE/rest/core`` plus
``Resources`` (``Account`` → the job's ``Project``) and ``Environment``. Credentials from
:mod:`.credentials` (``MANTIK_UNICORE_USERNAME``/``_PASSWORD``, or a bearer token).

pyunicore's asyncio client has known bugs (``Client.get_jobs`` and ``Job.bss_details``
fail on coroutines), so the synchronous client runs in worker threads
(``asyncio.to_thread``); every call has an explicit timeout, idempotent calls are retried
on 5xx and dropped connections, and failures become the engine's errors.

* **Submit** (Mantik's flow): create the job with ``haveClientStageIn`` (it waits in
  READY), upload the project into its working directory with one ``PUT files/<path>``
  per file, relative paths kept (nested folders intact), plus ``.hpcml/job.sh``, then
  ``POST actions/start``. The job description: ``Executable``/``Arguments`` (bash
  ``.hpcml/job.sh``), ``Environment`` (config Variables + the tracking environment),
  ``Resources`` (Queue, Runtime, Nodes, CPUsPerNode, TotalCPUs, GPUsPerNode, Memory,
  Reservation, NodeConstraints, QoS), ``Project``, ``Job type``, ``User precommand`` /
  ``User postcommand`` with ``RunUserPre/PostcommandOnLoginNode`` for the login-node
  commands, ``Stdout``/``Stderr`` = ``.hpcml/{stdout,stderr}.log``, ``Tags``.
* **Run directory**: the job's working directory (a UNICORE storage). It is only known
  once the job exists, after ``prepare``; so ``prepare`` returns ``.`` (the job's working
  directory seen from the job: offline tracking paths are relative) and every file
  access goes through the job's ``workingDirectory`` link (``backend_job_id`` = job UUID).
* **Poll**: UNICORE has no bulk status call (the job list returns URLs only), so each
  active job costs one ``GET /jobs/{id}?fields=status,statusMessage,exitCode``; at most
  ``max_status_requests`` per cycle (round-robin, oldest first, in parallel), the rest
  keep their last known state until their turn.
* **Files**: HTTP ``Range`` reads (``Content-Range`` gives the size), directory listings
  of the working-directory storage, streamed downloads; **cancel**: ``actions/abort``
  (the job ends FAILED; the engine records CANCELLED because it asked).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import shlex
import threading
import time
from collections.abc import Callable, Sequence
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
from .batchscript import command_list
from .credentials import MEMORY, CredentialsMissing, unicore_credentials

log = logging.getLogger(__name__)

JOB_SCRIPT = f"{META_DIR}/job.sh"
HONOURED_RESOURCES = ("Queue", "Runtime", "Nodes", "TotalCPUs", "CPUsPerNode", "GPUsPerNode",
                      "MemoryPerNode", "Reservation", "NodeConstraints", "QoS", "Account")
_SIMPLE_RESOURCES = ("Queue", "Nodes", "CPUsPerNode", "TotalCPUs", "GPUsPerNode", "Reservation",
                     "NodeConstraints", "QoS")
LOGIN_QUEUES = {"login", "on_login_node"}
_ERROR_RE = re.compile(r"^(\d{3}) Server Error: (.*) for url: ", re.S)


class RemoteError(HpcmlError):
    status = 502


class _Ambiguous(Exception):
    def __init__(self, error: BackendUnavailable):
        super().__init__(str(error))
        self.error = error


def unicore_state(props: dict[str, Any]) -> JobStatus:
    """UNICORE job properties → JobStatus (an aborted job is FAILED; the engine makes it
    CANCELLED when a cancel was requested)."""
    status = str(props.get("status") or "UNDEFINED").upper()
    message = props.get("statusMessage") or None
    code = _int(props.get("exitCode"))
    if status in ("CREATED", "UNDEFINED", "READY", "STAGINGIN", "QUEUED"):
        return JobStatus(RunState.QUEUED, None, f"UNICORE: {status}" if status != "QUEUED" else None)
    if status in ("RUNNING", "STAGINGOUT"):
        return JobStatus(RunState.RUNNING)
    if status == "SUCCESSFUL":
        if code:
            return JobStatus(RunState.FAILED, code, f"exit code {code}")
        return JobStatus(RunState.FINISHED, 0 if code is None else code)
    if status == "FAILED":
        text = str(message or "")
        if re.search(r"TIMEOUT|time ?limit|wall ?time", text, re.I):
            return JobStatus(RunState.TIMEOUT, code, f"UNICORE: {text}")
        return JobStatus(RunState.FAILED, code, f"UNICORE: {text}" if text else "UNICORE: FAILED")
    return JobStatus(RunState.UNKNOWN, code, f"unrecognised UNICORE status {status!r}")


def _int(value: Any) -> int | None:
    try:
        return int(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


def _mtime(text: Any) -> float | None:
    if not text:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(str(text), fmt).timestamp()
        except ValueError:
            continue
    return None


def job_script(job: JobSpec) -> str:
    """``.hpcml/job.sh``: modules, venv, compute-node pre/post commands, the command, the exit code file."""
    env = job.environment or {}
    q = shlex.quote
    out = [
        "#!/bin/bash",
        f"# jupyterlab-hpcml run {job.run_id}: generated, do not edit",
        'export HPCML_RUN_DIR="$PWD"',
        "mkdir -p .hpcml",
        "__hpcml_record() {",
        "  printf '{\"exit_code\": %d, \"timeout\": false, \"signal\": null, \"ended_at\": %s}\\n' "
        '"$1" "$(date +%s)" > .hpcml/.exit_code.$$ && mv -f .hpcml/.exit_code.$$ .hpcml/exit_code',
        "}",
        '__hpcml_fail() { echo "hpcml: $2" >&2; __hpcml_record "$1"; exit "$1"; }',
        "trap '__hpcml_record 143; exit 143' TERM INT",
    ]
    for m in env.get("Modules") or []:
        out.append(f"module load {q(str(m))} || __hpcml_fail 1 {q('module load ' + str(m) + ' failed')}")
    python = env.get("Python")
    if python:
        venv = str(python)
        if venv.endswith(("/bin/python", "/bin/python3")):
            venv = venv.rsplit("/bin/", 1)[0]
        out.append(f"[ -f {q(venv)}/bin/activate ] || __hpcml_fail 1 "
                   f"{q('Environment.Python: no virtual environment at ' + venv)}")
        out.append(f"VIRTUAL_ENV_DISABLE_PROMPT=1 . {q(venv)}/bin/activate")
    out.append('export PYTHONUNBUFFERED="${PYTHONUNBUFFERED:-1}"')
    for cmd in command_list(env.get("PreRunCommandOnComputeNode")):
        out.append(f"bash -c {q(cmd)} || __hpcml_fail $? {q('pre-run command failed: ' + cmd)}")
    apptainer = env.get("Apptainer") if isinstance(env.get("Apptainer"), dict) else None
    if apptainer:
        opts = " ".join(q(str(o)) for o in (apptainer.get("Options") or []))
        main = f"apptainer run {opts + ' ' if opts else ''}{q(str(apptainer.get('Path')))} bash -c {q(job.command)}"
    else:
        main = f"bash -c {q(job.command)}"
    out.append("date +%s > .hpcml/started")
    out.append(f"{main} &")
    out.append('__hpcml_child=$!; trap \'kill -TERM "$__hpcml_child" 2>/dev/null\' TERM INT')
    out.append('wait "$__hpcml_child"; __hpcml_rc=$?')
    out.append('while kill -0 "$__hpcml_child" 2>/dev/null; do wait "$__hpcml_child"; __hpcml_rc=$?; done')
    for cmd in command_list(env.get("PostRunCommandOnComputeNode")):
        out.append(f"bash -c {q(cmd)} || echo {q('hpcml: post-run command failed: ' + cmd)} >&2")
    out.append('__hpcml_record "$__hpcml_rc"')
    out.append('exit "$__hpcml_rc"')
    return "\n".join(out) + "\n"


def job_description(run_id: str, job: JobSpec) -> dict[str, Any]:
    """The UNICORE job description (Mantik's mapping, login-node commands as user pre/post commands)."""
    env = job.environment or {}
    res = job.resources or {}
    resources: dict[str, Any] = {k: res[k] for k in _SIMPLE_RESOURCES if res.get(k) not in (None, "")}
    if res.get("Runtime"):
        resources["Runtime"] = str(int(res["Runtime"]))  # seconds
    if res.get("MemoryPerNode"):
        resources["Memory"] = f"{int(res['MemoryPerNode'])}M"
    on_login = str(res.get("Queue") or "").lower() in LOGIN_QUEUES
    variables = {str(k): str(v) for k, v in (env.get("Variables") or {}).items()}
    desc: dict[str, Any] = {
        "Name": job.job_name,
        "Executable": "bash",
        "Arguments": [JOB_SCRIPT],
        "Environment": {**variables, **{str(k): str(v) for k, v in job.env.items()}},
        "Job type": "ON_LOGIN_NODE" if on_login else "BATCH",
        "Stdout": f"{META_DIR}/stdout.log",
        "Stderr": f"{META_DIR}/stderr.log",
        "Tags": ["hpcml", f"hpcml-run-{run_id}"],
        "haveClientStageIn": "true",
    }
    if on_login:
        resources.pop("Queue", None)
    if resources:
        desc["Resources"] = resources
    if res.get("Account"):
        desc["Project"] = str(res["Account"])
    pre = command_list(env.get("PreRunCommandOnLoginNode"))
    if pre:
        desc["User precommand"] = " && ".join(pre)
        desc["RunUserPrecommandOnLoginNode"] = True
    post = command_list(env.get("PostRunCommandOnLoginNode"))
    if post:
        desc["User postcommand"] = " ; ".join(post)
        desc["RunUserPostcommandOnLoginNode"] = True
    return desc


class UnicoreBackend(Backend):
    kind = "unicore"
    http_timeout = 30.0
    retries = 2  # extra attempts of idempotent calls after 5xx / dropped connections
    retry_backoff = (0.3, 1.0, 2.0)
    submit_retries = 5  # the job exists: try harder before giving up on it
    max_status_requests = 32  # per poll cycle
    upload_threads = 4

    def __init__(self, config: dict[str, Any], data_dir: Path):
        super().__init__(config, data_dir)
        self.url = str(config.get("UnicoreApiUrl") or "").rstrip("/")
        self._client: Any = None
        self._creds_version = 0  # MEMORY.version of the credentials the client was made with
        self._client_lock = threading.Lock()
        self._pending: dict[str, tuple[Snapshot, dict[str, bytes], ProgressCallback | None]] = {}
        self._storages: dict[str, str] = {}  # job id → working-directory storage URL
        self._last: dict[str, tuple[float, JobStatus]] = {}  # job id → (checked at, status)

    def supported_features(self) -> Features:
        return Features(cancel=True, logs=True, log_follow=True, artifacts=True, rerun=True,
                        upload_progress=True, resources=list(HONOURED_RESOURCES))

    def run_dir_for(self, run: RunRecord) -> str | None:
        return None  # the job's working directory exists only once the job does

    # ------------------------------------------------------------ client and errors

    def check_ready(self) -> None:
        unicore_credentials(self.identity)  # raises CredentialsMissing

    def _sync_client(self) -> Any:
        with self._client_lock:
            if self._client is not None and self._creds_version != MEMORY.version(self.identity):
                self._client = None  # credentials entered in the UI since: log in with them
            if self._client is None:
                self._creds_version = MEMORY.version(self.identity)
                from pyunicore.client import Client, Transport
                from pyunicore.credentials import BearerToken, UsernamePassword

                creds = unicore_credentials(self.identity)
                if creds.method == "basic":
                    assert creds.username and creds.password is not None
                    credential: Any = UsernamePassword(creds.username, creds.password.reveal())
                else:
                    assert creds.token is not None
                    credential = BearerToken(creds.token.reveal())
                transport = Transport(credential, verify=True, timeout=self.http_timeout)
                try:
                    self._client = Client(transport, self.url)
                except httpx.TransportError as exc:
                    raise BackendUnavailable(
                        f"UNICORE ({self.url}) cannot be reached ({type(exc).__name__})") from None
                except Exception as exc:
                    who = f"user {creds.username!r}" if creds.username else "the bearer token"
                    if type(exc).__name__ == "AuthenticationFailedException" or _status_of(exc) in (401, 403):
                        raise RemoteError(
                            f"UNICORE at {self.url} refused the credentials of {who} "
                            f"({_describe(exc)}): check MANTIK_UNICORE_USERNAME / MANTIK_UNICORE_PASSWORD "
                            "(or HPCML_UNICORE_TOKEN), or enter them again in the lab"
                        ) from None
                    code = _status_of(exc)
                    if code is not None and (code >= 500 or code == 429):
                        raise BackendUnavailable(f"UNICORE ({self.url}) answered {_describe(exc)}") from None
                    raise RemoteError(f"UNICORE at {self.url}: {_describe(exc)}") from None
            return self._client

    def _translate(self, what: str, exc: Exception, idempotent: bool) -> Exception | None:
        """None: retry; an exception: give up with it."""
        if isinstance(exc, (HpcmlError, CredentialsMissing)):
            return exc
        if isinstance(exc, httpx.TransportError):
            if not idempotent and not isinstance(exc, httpx.ConnectError):
                return _Ambiguous(BackendUnavailable(
                    f"UNICORE ({self.url}) dropped the connection ({type(exc).__name__}) while {what}"))
            return None
        code = _status_of(exc)
        if code is None:
            return RemoteError(f"UNICORE: unexpected error while {what}: {type(exc).__name__}")
        if code in (401, 403):
            with self._client_lock:
                self._client = None  # credentials may have changed: log in again next time
            return RemoteError(f"UNICORE refused the request while {what} ({_describe(exc)})")
        if code == 404:
            return NotFound(f"UNICORE: not found while {what}")
        if code == 429 or code >= 500:
            if not idempotent:
                return _Ambiguous(BackendUnavailable(f"UNICORE ({self.url}) answered HTTP {code} while {what}"))
            return None
        return RemoteError(f"UNICORE rejected the request while {what} ({_describe(exc)})")

    def _call_sync(self, what: str, fn: Callable[[], Any], idempotent: bool = True,
                   retries: int | None = None) -> Any:
        attempts = 1 + ((self.retries if retries is None else retries) if idempotent else 0)
        last: Exception | None = None
        for i in range(attempts):
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - translated below
                err = self._translate(what, exc, idempotent)
                if err is not None:
                    raise err from None
                last = exc
            if i < attempts - 1:
                time.sleep(self.retry_backoff[min(i, len(self.retry_backoff) - 1)])
        raise BackendUnavailable(
            f"UNICORE ({self.url}) cannot be reached or fails ({_describe(last)}) while {what}")

    async def _call(self, what: str, fn: Callable[[], Any], idempotent: bool = True) -> Any:
        return await asyncio.to_thread(self._call_sync, what, fn, idempotent)

    def _job_url(self, job_id: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9-]+", job_id or ""):
            raise UserInputError(Problem(f"invalid UNICORE job id {job_id!r}"))
        return f"{self.url}/jobs/{job_id}"

    def _storage_url(self, job_id: str) -> str:
        url = self._storages.get(job_id)
        if url is None:
            client = self._sync_client()
            props = client.transport.get(url=self._job_url(job_id), params={"fields": "_links"})
            url = props["_links"]["workingDirectory"]["href"]
            self._storages[job_id] = url
        return url

    # ------------------------------------------------------------ prepare and submit

    async def prepare(
        self,
        run: RunRecord,
        snapshot: Snapshot,
        extra_files: dict[str, bytes] | None = None,
        progress: ProgressCallback | None = None,
    ) -> str:
        extras = dict(extra_files or {})
        for key in extras:
            run_relpath(key.rstrip("/"))
        self._pending[run.id] = (snapshot, extras, progress)
        await asyncio.to_thread(self._sync_client)  # fail early on credentials
        return "."

    async def submit(self, run: RunRecord, job: JobSpec) -> tuple[str, JobStatus]:
        pending = self._pending.pop(run.id, None)
        if pending is None:
            raise UserInputError(Problem(f"run {run.id} was not prepared by this process"))
        snapshot, extras, progress = pending
        desc = job_description(run.id, job)
        script = job_script(job).encode()
        job_id = await asyncio.to_thread(self._submit_sync, run, desc, snapshot, extras, script, progress)
        return job_id, JobStatus(RunState.QUEUED)

    def _submit_sync(self, run: RunRecord, desc: dict[str, Any], snapshot: Snapshot,
                     extras: dict[str, bytes], script: bytes, progress: ProgressCallback | None) -> str:
        from pyunicore.client import Job

        client = self._sync_client()
        transport = client.transport
        try:
            resp = self._call_sync("submitting the job",
                                   lambda: transport.post(url=client.links["jobs"], json=desc), idempotent=False)
            job_url = resp.headers["Location"]
            resp.close()
        except _Ambiguous:
            found = self._find_sync(run.id)
            if found is None:
                resp = self._call_sync("submitting the job",
                                       lambda: transport.post(url=client.links["jobs"], json=desc), idempotent=False)
                job_url = resp.headers["Location"]
            else:
                job_url = self._job_url(found)
        job_id = job_url.rstrip("/").rsplit("/", 1)[-1]
        try:
            self._stage_in_and_start(Job(transport, job_url), job_id, snapshot, extras, script, progress)
        except Exception as exc:
            # The job exists but cannot be started: remove it rather than leave the run hanging.
            try:
                self._call_sync("removing the unstarted job", lambda: transport.delete(url=job_url).close())
            except Exception:  # noqa: BLE001 - best effort
                log.warning("could not remove UNICORE job %s after a failed submission", job_id)
            raise RemoteError(f"submission failed after the UNICORE job was created ({exc}); "
                              "the job was removed") from None
        return job_id

    def _stage_in_and_start(self, job: Any, job_id: str, snapshot: Snapshot, extras: dict[str, bytes],
                            script: bytes, progress: ProgressCallback | None) -> None:
        from pyunicore.client import Storage

        transport = job.transport
        retries = self.submit_retries
        storage_url = self._call_sync("opening the working directory", lambda: job.links["workingDirectory"],
                                      retries=retries)
        self._storages[job_id] = storage_url

        items: list[tuple[str, Callable[[], Any], int]] = []
        for f in snapshot.files:
            path = snapshot.object_path(f)
            items.append((f.relpath, lambda p=path: p.read_bytes(), f.size))
        for key, data in sorted(extras.items()):
            if not key.endswith("/"):
                items.append((key, lambda d=data: d, len(data)))
        items.append((JOB_SCRIPT, lambda: script, len(script)))
        dirs = sorted(k.rstrip("/") for k in extras if k.endswith("/"))
        total = sum(size for _, _, size in items)
        sent = 0
        lock = threading.Lock()
        if progress:
            progress(0, total)

        def put(item: tuple[str, Callable[[], Any], int]) -> None:
            nonlocal sent
            rel, data, size = item
            storage = Storage(transport, storage_url)
            self._call_sync(f"uploading {rel}", lambda: storage.put(data(), rel), retries=retries)
            with lock:
                sent += size
                if progress:
                    progress(sent, total)

        with concurrent.futures.ThreadPoolExecutor(self.upload_threads) as pool:
            list(pool.map(put, items))
        storage = Storage(transport, storage_url)
        for d in dirs:  # empty directories the offline MLflow store needs
            self._call_sync(f"creating {d}", lambda d=d: storage.mkdir(d), retries=retries)
        # start is idempotent (a started job ignores it): safe to retry
        self._call_sync("starting the job",
                        lambda: transport.post(url=job.links["action:start"], json={}).close(), retries=retries)

    def _find_sync(self, run_id: str) -> str | None:
        client = self._sync_client()
        urls = self._call_sync("listing jobs", lambda: client.transport.get(
            url=client.links["jobs"], params={"tags": f"hpcml-run-{run_id}"})["jobs"])
        return urls[0].rstrip("/").rsplit("/", 1)[-1] if urls else None

    async def find_submitted(self, run: RunRecord) -> str | None:
        return await asyncio.to_thread(self._find_sync, run.id)

    # ------------------------------------------------------------ poll

    async def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        if not jobs:
            return {}
        order = sorted(jobs, key=lambda r: self._last.get(r.job_id, (0.0, None))[0])
        due, rest = order[: self.max_status_requests], order[self.max_status_requests:]
        try:
            fresh = await asyncio.to_thread(self._poll_sync, [r.job_id for r in due])
        except BackendUnavailable:
            raise
        except HpcmlError as exc:  # auth trouble: the jobs may run on
            raise BackendUnavailable(str(exc)) from None
        now = time.monotonic()
        out: dict[str, JobStatus] = {}
        for job_id, status in fresh.items():
            self._last[job_id] = (now, status)
            out[job_id] = status
        for ref in rest:
            cached = self._last.get(ref.job_id)
            if cached:
                out[ref.job_id] = cached[1]
        return out

    def _poll_sync(self, job_ids: list[str]) -> dict[str, JobStatus]:
        client = self._sync_client()

        def one(job_id: str) -> tuple[str, JobStatus | None]:
            try:
                props = self._call_sync("reading the job status", lambda: client.transport.get(
                    url=self._job_url(job_id), params={"fields": "status,statusMessage,exitCode"}))
            except NotFound:
                return job_id, None  # the job was deleted: the engine records UNKNOWN
            return job_id, unicore_state(props)

        with concurrent.futures.ThreadPoolExecutor(min(8, max(1, len(job_ids)))) as pool:
            results = list(pool.map(one, job_ids))
        return {k: v for k, v in results if v is not None}

    # ------------------------------------------------------------ files

    def _file_url(self, run: RunRecord, relpath: str) -> str | None:
        if not run.backend_job_id:
            return None
        storage = self._call_sync("opening the working directory", lambda: self._storage_url(run.backend_job_id))
        rel = run_relpath(relpath)
        return f"{storage}/files/{rel}" if rel else f"{storage}/files"

    async def read(self, run: RunRecord, relpath: str, offset: int, max_bytes: int) -> Chunk:
        if offset < 0 or max_bytes < 0:
            raise UserInputError(Problem("offset and max_bytes must not be negative"))
        return await asyncio.to_thread(self._read_sync, run, relpath, offset, max_bytes)

    def _read_sync(self, run: RunRecord, relpath: str, offset: int, max_bytes: int) -> Chunk:
        url = self._file_url(run, relpath)
        if url is None:
            return Chunk(b"", offset, offset, None)
        client = self._sync_client()
        if max_bytes == 0:
            try:
                props = self._call_sync(f"reading {relpath}", lambda: client.transport.get(url=url))
            except NotFound:
                return Chunk(b"", offset, offset, None)
            return Chunk(b"", offset, offset, int(props.get("size") or 0))

        def ranged() -> tuple[int, bytes, str | None]:
            headers = {"Accept": "application/octet-stream", "Range": f"bytes={offset}-{offset + max_bytes - 1}"}
            with client.transport.get_stream(url=url, headers=headers) as resp:
                if resp.status_code >= 500 or resp.status_code == 429:
                    raise httpx.HTTPError(f"{resp.status_code} Server Error: range read failed for url: {url}")
                if resp.status_code in (401, 403):
                    raise httpx.HTTPError(f"{resp.status_code} Server Error: access denied for url: {url}")
                body = resp.read() if resp.status_code in (200, 206) else b""
                return resp.status_code, body, resp.headers.get("Content-Range")

        try:
            status, body, content_range = self._call_sync(f"reading {relpath}", ranged)
        except NotFound:
            return Chunk(b"", offset, offset, None)
        if status == 404:
            return Chunk(b"", offset, offset, None)
        total = _total_of(content_range)
        if status == 416:
            return Chunk(b"", offset, offset, total if total is not None else offset)
        if status == 200:  # the server ignored the range: the whole file came
            total = len(body)
            body = body[offset: offset + max_bytes]
        return Chunk(body, offset, offset + len(body), total if total is not None else offset + len(body))

    async def list_files(self, run: RunRecord, relpath: str = "") -> list[FileInfo]:
        return await asyncio.to_thread(self._list_sync, run, relpath)

    def _list_sync(self, run: RunRecord, relpath: str) -> list[FileInfo]:
        if not run.backend_job_id:
            raise NotFound("the job has not been submitted yet")
        client = self._sync_client()
        storage = self._call_sync("opening the working directory", lambda: self._storage_url(run.backend_job_id))
        root = run_relpath(relpath)
        out: list[FileInfo] = []
        todo = [root]
        while todo:
            d = todo.pop()
            url = f"{storage}/files/{d}" if d else f"{storage}/files"
            try:
                props = self._call_sync(f"listing {d or 'the run directory'}",
                                        lambda url=url: client.transport.get(url=url))
            except NotFound:
                if d == root:
                    raise NotFound(f"no such directory in the run directory: {relpath}") from None
                continue
            if not props.get("isDirectory", True) and d == root:
                raise UserInputError(Problem(f"not a directory: {relpath}"))
            for name, meta in (props.get("content") or {}).items():
                full = name.strip("/")
                rel = full[len(root) + 1:] if root and full.startswith(root + "/") else full
                is_dir = bool(meta.get("isDirectory"))
                out.append(FileInfo(path=rel, is_dir=is_dir, size=None if is_dir else _int(meta.get("size")),
                                    mtime=_mtime(meta.get("lastAccessed"))))
                if is_dir:
                    todo.append(full)
        return sorted(out, key=lambda f: f.path)

    async def fetch(self, run: RunRecord, relpath: str, dest: Path) -> None:
        await asyncio.to_thread(self._fetch_sync, run, relpath, Path(dest))

    def _fetch_sync(self, run: RunRecord, relpath: str, dest: Path) -> None:
        url = self._file_url(run, relpath)
        if url is None:
            raise NotFound("the job has not been submitted yet")
        client = self._sync_client()
        dest.parent.mkdir(parents=True, exist_ok=True)

        def download() -> int:
            with client.transport.get_stream(url=url, headers={"Accept": "application/octet-stream"}) as resp:
                if resp.status_code >= 500 or resp.status_code in (401, 403, 429):
                    raise httpx.HTTPError(f"{resp.status_code} Server Error: download failed for url: {url}")
                if resp.status_code != 200:
                    return resp.status_code
                with open(dest, "wb") as f:
                    for part in resp.iter_bytes(1 << 16):
                        f.write(part)
                return 200

        if self._call_sync(f"downloading {relpath}", download) != 200:
            raise NotFound(f"no such file in the run directory: {relpath}")

    async def cancel(self, run: RunRecord) -> None:
        if not run.backend_job_id:
            return
        url = self._job_url(run.backend_job_id)

        def abort() -> None:
            c = self._sync_client()
            c.transport.post(url=f"{url}/actions/abort", json={}).close()

        try:
            await self._call("cancelling the job", abort)
        except NotFound:
            pass


def _status_of(exc: Exception | None) -> int | None:
    if exc is None:
        return None
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code
    m = _ERROR_RE.match(str(exc))
    return int(m.group(1)) if m else None


def _describe(exc: Exception | None) -> str:
    if exc is None:
        return "no answer"
    m = _ERROR_RE.match(str(exc))
    if m:
        return f"HTTP {m.group(1)}: {m.group(2)[:200]}"
    if isinstance(exc, httpx.TransportError):
        return type(exc).__name__
    return type(exc).__name__


def _total_of(content_range: str | None) -> int | None:
    if not content_range or "/" not in content_range:
        return None
    tail = content_range.rsplit("/", 1)[1].strip()
    return int(tail) if tail.isdigit() else None
