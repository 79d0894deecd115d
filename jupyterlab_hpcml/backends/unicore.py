"""The UNICORE backend: jobs through a site's UNICORE/X REST API with ``pyunicore``.

Config (Mantik's format, unchanged): ``UnicoreApiUrl: https://.../SITE/rest/core`` plus
``Resources`` (``Account`` → the job's ``Project``) and ``Environment``. Credentials from
:mod:`.credentials` (``MANTIK_UNICORE_USERNAME``/``_PASSWORD``, or a bearer token).

pyunicore's asyncio client has known bugs (``Client.get_jobs`` and ``Job.bss_details``
fail on coroutines), so the synchronous client runs in worker threads
(``asyncio.to_thread``); every call has an explicit timeout, idempotent calls are retried
on 5xx/429 and dropped connections, any call once more after a 401 with a fresh login, and
failures become the engine's errors.

* **Submit** (Mantik's flow): create the job with ``haveClientStageIn`` (it waits in
  READY), upload the project into its working directory with one ``PUT files/<path>``
  per file, relative paths kept (nested folders intact), plus ``.hpcml/job.sh``,
  ``.hpcml/env.sh`` and (secrets only) ``.hpcml/secrets.env``, then ``POST actions/start``.
  The job description: ``Executable``/``Arguments`` (bash ``.hpcml/job.sh``), ``Resources``
  (Queue, Runtime, Nodes, CPUsPerNode, TotalCPUs, GPUsPerNode, Memory, Reservation,
  NodeConstraints, QoS), ``Project``, ``Job type``, ``User precommand`` / ``User
  postcommand`` with ``RunUserPre/PostcommandOnLoginNode`` for the login-node commands,
  ``Stdout``/``Stderr`` = ``.hpcml/{stdout,stderr}.log``, ``Tags``.
* **Environment** never goes into the description's ``Environment``: UNICORE/X writes it into
  the generated job script as ``KEY="value"; export KEY`` (unescaped: ``"``, ``$``, backticks
  and newlines become shell code) after the TSI replaced ``$HOME``/``$USER`` in the text, and
  it keeps the description (``/jobs/{id}/submitted``). Variables and the job's public
  environment travel in ``.hpcml/env.sh`` (``export K='v'``, shell-quoted), sourced by
  ``job.sh`` and in front of the login-node commands; secrets (the tracking token) in
  ``.hpcml/secrets.env``, made ``rw-------`` with UNICORE's file-permission call, sourced by
  ``job.sh`` and deleted when the job ends (and on cancel).
* **Run directory**: the job's working directory (a UNICORE storage). It is only known
  once the job exists, after ``prepare``; so ``prepare`` returns ``.`` (the job's working
  directory seen from the job: offline tracking paths are relative) and every file
  access goes through the job's ``workingDirectory`` link (``backend_job_id`` = job UUID).
* **Poll**: UNICORE has no bulk status call (the job list returns URLs only), so each
  active job costs one ``GET /jobs/{id}?fields=status,statusMessage,exitCode``; at most
  ``max_status_requests`` per cycle (round-robin, oldest first, in parallel), the rest
  keep their last known state until their turn. A job that failed answers UNKNOWN alone.
  An ended FAILED job is judged once more (see :meth:`UnicoreBackend._ended`): UNICORE has no
  timeout state — a wall-time kill is "Job did not complete normally on BSS…" or "User
  application exited with non-zero exit code: <143>".
* **Files**: a file's size comes from its JSON properties (ranged reads answer 206 WITHOUT
  ``Content-Range``, and a range starting past the end makes a TSI-backed server loop), then
  an HTTP ``Range`` read of what exists; listings page with ``offset``/``num``; streamed
  downloads; **cancel**: ``actions/abort`` (the job ends FAILED; the engine records CANCELLED
  because it asked).
* **Data** (``unicore_data.py``): dataset versions in HOME beside the code's objects, only
  missing contents sent (hashed as sent); the first job that reads a version builds its tree on
  the site and ``job.sh`` links each dataset's path to it.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import json
import logging
import math
import re
import secrets
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote

import httpx

from ..core.config_models import UnicoreConfig
from ..core.errors import (
    BackendUnavailable,
    Conflict,
    HpcmlError,
    NotFound,
    Problem,
    Unsupported,
    UserInputError,
)
from ..core.files import META_DIR, Chunk, FileInfo, run_relpath
from ..core.job import (
    DataProgress,
    DataVersion,
    JobContext,
    JobRef,
    PreparedJob,
    StagedData,
    StagedVersion,
    Submission,
    TargetListing,
)
from ..core.snapshots import ProgressCallback, Snapshot, SnapshotFile
from ..core.states import JobStatus, RunState
from .base import Backend, Features, JobSpec
from .batchscript import (
    apptainer_command,
    command_list,
    exit_record_function,
    module_lines,
    secrets_file_content,
    split_env,
    venv_lines,
)
from .cas_upload import Progress, SharedUploads, file_mode, plan_upload, upload_missing
from .credentials import MEMORY, CredentialsMissing, unicore_credentials
from .exitrecord import EXIT_FILE, ExitRecord, parse_exit_record
from .remote_calls import (
    Ambiguous,
    Attempts,
    RemoteError,
    RetryPolicy,
    Service,
    Verdict,
    call_sync,
    judge_status,
    judge_transport,
    submit_looked_up,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

JOB_SCRIPT = f"{META_DIR}/job.sh"
ENV_FILE = f"{META_DIR}/env.sh"  # Variables + the job's public environment, shell-quoted
SECRETS_FILE = f"{META_DIR}/secrets.env"  # rw------- , deleted by job.sh at the end
HONOURED_RESOURCES = ("Queue", "Runtime", "Nodes", "TotalCPUs", "CPUsPerNode", "GPUsPerNode",
                      "MemoryPerNode", "Reservation", "NodeConstraints", "QoS", "Account")
_SIMPLE_RESOURCES = ("Queue", "Nodes", "CPUsPerNode", "TotalCPUs", "GPUsPerNode", "Reservation",
                     "NodeConstraints", "QoS")
LOGIN_QUEUES = {"login", "on_login_node"}
_ERROR_RE = re.compile(r"^(\d{3}) Server Error: (.*) for url: ", re.S)
# UNICORE/X caps one listing (SMSBaseImpl.MAX_LS_RESULTS); asking for more per page never helps.
LIST_PAGE = 10_000
# What batch systems call a wall-time kill, as the TSI reports it ("get job details": Slurm's
# `scontrol show job` as JSON; PBS/LSF texts), in /details or the job log.
_BSS_TIMEOUT_RE = re.compile(
    r'"?JobState"?\s*[=:]\s*"?TIMEOUT|Reason"?\s*[=:]\s*"?TimeLimit|TERM_RUNLIMIT|walltime[^"\n]{0,40}exceeded',
    re.I)
STORE_DIR = ".hpcml/objects"  # in the HOME storage: code contents by sha256, kept across runs
_SHA256 = re.compile(r"[0-9a-f]{64}")
_URI_PATH = re.compile(r"/[A-Za-z0-9._~/+-]*")  # a mount point usable in a file:// URL as is
_STAGING = ("CREATED", "STAGINGIN")  # UNICORE copies the job's Imports in
_UNSTARTED = ("CREATED", "STAGINGIN", "READY")  # we start a job only once it is READY
ABORTED_MESSAGE = "Job aborted."  # DefaultProcessor: USER_ABORTED "Job aborted."
_OCTETS = {"Accept": "application/octet-stream"}


def unicore_state(props: dict[str, Any]) -> JobStatus:
    """UNICORE job properties → JobStatus (an aborted job is FAILED; the engine makes it
    CANCELLED when a cancel was requested). UNICORE has no TIMEOUT: see
    ``UnicoreBackend._ended``."""
    status = str(props.get("status") or "UNDEFINED").upper()
    message = props.get("statusMessage") or None
    code = _int(props.get("exitCode"))
    if status in ("CREATED", "UNDEFINED", "READY", "STAGINGIN", "QUEUED"):
        note = f"UNICORE: {status}" if status != "QUEUED" else None
        return JobStatus(RunState.QUEUED, None, note)
    if status in ("RUNNING", "STAGINGOUT"):
        return JobStatus(RunState.RUNNING)
    if status == "SUCCESSFUL":
        if code:
            return JobStatus(RunState.FAILED, code, f"exit code {code}")
        return JobStatus(RunState.FINISHED, 0 if code is None else code)
    if status == "FAILED":
        text = str(message or "")
        return JobStatus(RunState.FAILED, code, f"UNICORE: {text}" if text else "UNICORE: FAILED")
    return JobStatus(RunState.UNKNOWN, code, f"unrecognised UNICORE status {status!r}")


def judge_end(status: JobStatus, record: ExitRecord | None, details: str | None) -> JobStatus:
    """A FAILED job's final state from what else is known: ``record`` = the job's own
    ``.hpcml/exit_code`` (None: missing), ``details`` = the batch system's report (the job log's
    "Detailed job information…" or ``/details``; None: unavailable).

    TIMEOUT only on the batch system's word (JobState TIMEOUT): a SIGTERM seen by the job is
    also what a cancel, a preemption or a node failure sends, and the limit UNICORE applies is
    not the one asked for (the Slurm TSI floors Runtime to whole minutes, sites clamp it)."""
    code = status.exit_code
    if record is not None and record.readable:
        code = record.exit_code  # ours: also there when UNICORE's wrapper was killed
    if details and _BSS_TIMEOUT_RE.search(details):
        return JobStatus(RunState.TIMEOUT, code, "wall-time limit reached (the batch system "
                         f"ended the job: TIMEOUT); {status.message or 'UNICORE: FAILED'}")
    message = status.message
    if record is not None and record.signal:
        message = f"{message}; the job received {record.signal}"
    return JobStatus(RunState.FAILED, code, message)


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


def job_files(job: JobSpec) -> dict[str, bytes]:
    """``.hpcml/env.sh`` (Variables + public job environment) and, when there are secrets,
    ``.hpcml/secrets.env``: ``export K='v'`` lines, so values arrive verbatim."""
    public, secret = split_env(job.env)
    given = (job.environment or {}).get("Variables") or {}
    variables = {str(k): _env_value(v) for k, v in given.items()}
    files = {ENV_FILE: secrets_file_content({**public, **variables})}
    if secret:
        files[SECRETS_FILE] = secrets_file_content(secret)
    return files


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def job_script(job: JobSpec, secrets: bool = False, data: Sequence[str] = ()) -> str:
    """``.hpcml/job.sh``: modules, venv, environment, the datasets laid out (``data``: the
    lines of ``unicore_data.data_lines``), compute-node pre/post commands, the command, the
    exit record (``.hpcml/exit_code``: code and the signal that stopped the job)."""
    env = job.environment or {}
    q = shlex.quote
    out = [
        "#!/bin/bash",
        f"# jupyterlab-hpcml run {job.run_id}: generated, do not edit",
        'export HPCML_RUN_DIR="$PWD"',
        "mkdir -p .hpcml",
        "__hpcml_signal=null",
        exit_record_function(".hpcml", f"rm -f {SECRETS_FILE}" if secrets else "").rstrip("\n"),
        '__hpcml_fail() { echo "hpcml: $2" >&2; __hpcml_record "$1"; exit "$1"; }',
        "trap '__hpcml_signal=\"\\\"SIGTERM\\\"\"; __hpcml_record 143; exit 143' TERM",
        "trap '__hpcml_signal=\"\\\"SIGINT\\\"\"; __hpcml_record 130; exit 130' INT",
    ]
    out += module_lines(env.get("Modules") or [])
    if env.get("Python"):
        out += venv_lines(env["Python"])
    out.append(f". ./{ENV_FILE} || __hpcml_fail 1 {q('cannot read ' + ENV_FILE)}")
    if secrets:
        out.append(f"[ -r {SECRETS_FILE} ] && . ./{SECRETS_FILE} || echo 'hpcml: the secrets "
                   "file is missing: the job runs without credentials' >&2")
    out.append('export PYTHONUNBUFFERED="${PYTHONUNBUFFERED:-1}"')
    out += data
    for cmd in command_list(env.get("PreRunCommandOnComputeNode")):
        out.append(f"bash -c {q(cmd)} || __hpcml_fail $? {q('pre-run command failed: ' + cmd)}")
    apptainer = env.get("Apptainer") if isinstance(env.get("Apptainer"), dict) else None
    if apptainer:
        main = apptainer_command(apptainer, str(apptainer.get("Path")), job.command)
    else:
        main = f"bash -c {q(job.command)}"
    out.append("date +%s > .hpcml/started")
    out.append(f"{main} &")
    out.append('__hpcml_child=$!')
    for sig, name in (("TERM", "SIGTERM"), ("INT", "SIGINT")):
        out.append(f"trap '__hpcml_signal=\"\\\"{name}\\\"\"; "
                   f"kill -TERM \"$__hpcml_child\" 2>/dev/null' {sig}")
    out.append('wait "$__hpcml_child"; __hpcml_rc=$?')
    out.append('while kill -0 "$__hpcml_child" 2>/dev/null; do '
               'wait "$__hpcml_child"; __hpcml_rc=$?; done')
    for cmd in command_list(env.get("PostRunCommandOnComputeNode")):
        out.append(f"bash -c {q(cmd)} || echo {q('hpcml: post-run command failed: ' + cmd)} >&2")
    out.append('__hpcml_record "$__hpcml_rc"')
    out.append('exit "$__hpcml_rc"')
    return "\n".join(out) + "\n"


def _with_env(commands: list[str], joiner: str) -> str:
    """Login-node commands, after sourcing the job's environment (UNICORE runs them in the
    working directory)."""
    return f". ./{ENV_FILE} && {{ {joiner.join(commands)}; }}"


def job_description(run_id: str, job: JobSpec) -> dict[str, Any]:
    """The UNICORE job description (Mantik's mapping, login-node commands as user pre/post
    commands). No ``Environment``: see the module docstring."""
    env = job.environment or {}
    res = job.resources or {}
    resources: dict[str, Any] = {
        k: res[k] for k in _SIMPLE_RESOURCES if res.get(k) not in (None, "")}
    if res.get("Runtime"):
        # The TSI floors Runtime to whole minutes (Slurm --time in minutes, at least 1): round
        # up here so a job never gets less than asked for.
        resources["Runtime"] = str(max(1, math.ceil(float(res["Runtime"]) / 60)) * 60)  # seconds
    if res.get("MemoryPerNode"):
        resources["Memory"] = f"{int(res['MemoryPerNode'])}M"
    on_login = str(res.get("Queue") or "").lower() in LOGIN_QUEUES
    desc: dict[str, Any] = {
        "Name": job.job_name,
        "Executable": "bash",
        "Arguments": [JOB_SCRIPT],
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
        desc["User precommand"] = _with_env(pre, " && ")
        desc["RunUserPrecommandOnLoginNode"] = True
    post = command_list(env.get("PostRunCommandOnLoginNode"))
    if post:
        desc["User postcommand"] = _with_env(post, " ; ")
        desc["RunUserPostcommandOnLoginNode"] = True
    return desc


@dataclass(frozen=True)
class UnicorePrepared(PreparedJob[UnicoreConfig]):
    """What ``submit`` uploads into the job's working directory once the job exists."""

    snapshot: Snapshot
    extras: dict[str, bytes]
    progress: ProgressCallback | None
    data: tuple[str, ...] = ()  # job.sh lines laying out ctx.data (unicore_data.data_lines)


class UnicoreBackend(Backend[UnicoreConfig]):
    kind = "unicore"
    config_model = UnicoreConfig
    http_timeout = 30.0
    retries = 2  # extra attempts of idempotent calls after 5xx / dropped connections
    retry_backoff = (0.3, 1.0, 2.0)
    submit_retries = 5  # the job exists: try harder before giving up on it
    max_status_requests = 32  # per poll cycle
    upload_threads = 4
    stage_in_timeout = 300.0  # UNICORE copying the code from HOME into the job's directory
    list_page = LIST_PAGE  # entries asked for per listing request

    def __init__(self, config: UnicoreConfig | Mapping[str, Any] | None, data_dir: Path):
        super().__init__(config, data_dir)
        self.url = self.config.api_url.rstrip("/")
        self._client: Any = None
        self._creds_version = 0  # MEMORY.version of the credentials the client was made with
        self._client_lock = threading.Lock()
        self._storages: dict[str, str] = {}  # job id → working-directory storage URL
        self._last: dict[str, tuple[float, JobStatus]] = {}  # job id → (checked at, status)
        self._staging: set[str] = set()  # jobs this process is uploading to (READY on purpose)
        self._judged: dict[str, JobStatus] = {}  # ended FAILED jobs, judged once (see _ended)
        self._home: _HomeStore | bool | None = None  # object store (False: none, None: unknown)
        self._home_lock = threading.Lock()  # concurrent submissions open HOME once
        self._uploads = SharedUploads()  # into HOME: one upload per content, however many jobs
        self._storage_mounts: dict[str, str] | None = None  # storage URL → mount point

    def supported_features(self) -> Features:
        return Features(cancel=True, logs=True, log_follow=True, artifacts=True, rerun=True,
                        upload_progress=True, resources=list(HONOURED_RESOURCES),
                        data_staging=True)  # no services/tunnel (UNICORE's port forwarding unused)

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
                    refused = (type(exc).__name__ == "AuthenticationFailedException"
                               or _status_of(exc) in (401, 403))
                    if refused:
                        raise RemoteError(
                            f"UNICORE at {self.url} refused the credentials of {who} "
                            f"({_describe(exc)}): check MANTIK_UNICORE_USERNAME / "
                            "MANTIK_UNICORE_PASSWORD "
                            "(or HPCML_UNICORE_TOKEN), or enter them again in the lab"
                        ) from None
                    code = _status_of(exc)
                    if code is not None and (code >= 500 or code == 429):
                        raise BackendUnavailable(
                            f"UNICORE ({self.url}) answered {_describe(exc)}") from None
                    raise RemoteError(f"UNICORE at {self.url}: {_describe(exc)}") from None
            return self._client

    def _judge(self, what: str, idempotent: bool) -> Callable[[BaseException], Verdict]:
        """What a failure of pyunicore means (:mod:`.remote_calls` does the rest)."""
        service = Service("UNICORE", self.url)

        def judge(exc: BaseException) -> Verdict:
            if isinstance(exc, (HpcmlError, CredentialsMissing)):
                return Verdict("raise", exc)
            if isinstance(exc, httpx.TransportError):
                return judge_transport(service, what, exc, idempotent)
            code = _status_of(exc) if isinstance(exc, Exception) else None
            if code is None:
                return Verdict("raise", RemoteError(
                    f"UNICORE: unexpected error while {what}: {type(exc).__name__}"))
            if code in (401, 403):
                with self._client_lock:
                    self._client = None  # credentials may have changed: log in again next time
            # pyunicore drops a 429's Retry-After: it waits like a 5xx.
            return judge_status(service, what, code, _server_words(exc), idempotent)

        return judge

    def _call_sync(self, what: str, fn: Callable[[], T], idempotent: bool = True,
                   retries: int | None = None) -> T:
        """``fn`` under the remote API policy. ``fn`` must take the client from
        ``self._transport()`` on each call: after a 401 (an expired token or session; the
        server did nothing) it runs once more with a fresh login."""
        policy = RetryPolicy(self.retries if retries is None else retries,
                             tuple(self.retry_backoff))
        attempts = Attempts(Service("UNICORE", self.url), what, policy, idempotent)
        return call_sync(fn, self._judge(what, idempotent), attempts)

    async def _call(self, what: str, fn: Callable[[], Any], idempotent: bool = True) -> Any:
        return await asyncio.to_thread(self._call_sync, what, fn, idempotent)

    def _transport(self) -> Any:
        return self._sync_client().transport

    def _request(self, method: str, url: str, **kwargs: Any) -> Callable[[], Any]:
        """One call of pyunicore's transport for :meth:`_call_sync` (the client is taken at each
        attempt: after a re-login it is a new one)."""
        return lambda: getattr(self._transport(), method)(url=url, **kwargs)

    def _job_url(self, job_id: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9-]+", job_id or ""):
            raise UserInputError(Problem(f"invalid UNICORE job id {job_id!r}"))
        return f"{self.url}/jobs/{job_id}"

    def _storage_url(self, job_id: str) -> str:
        url = self._storages.get(job_id)
        if url is None:
            props = self._transport().get(url=self._job_url(job_id), params={"fields": "_links"})
            url = props["_links"]["workingDirectory"]["href"]
            self._storages[job_id] = url
        return url

    def _job_file_url(self, job_id: str, relpath: str) -> str:
        storage = self._call_sync("opening the working directory",
                                  lambda: self._storage_url(job_id))
        rel = run_relpath(relpath)
        # UNICORE URL-decodes the path (SMSBaseImpl.makeSMSLocal): '#', '?', '%' in names are safe.
        return f"{storage}/files/{quote(rel)}" if rel else f"{storage}/files"

    # ------------------------------------------------------------ prepare and submit

    async def prepare(
        self,
        ctx: JobContext[UnicoreConfig],
        snapshot: Snapshot,
        extra_files: Mapping[str, bytes] | None = None,
        progress: ProgressCallback | None = None,
    ) -> UnicorePrepared:
        """Nothing travels yet: the job's working directory exists only once the job
        does (``submit`` creates the job, uploads into it, then starts it). The run
        directory is "." for the job, and unknown to the engine beforehand."""
        from .unicore_data import data_lines  # it imports this module

        extras = dict(extra_files or {})
        for key in extras:
            run_relpath(key.rstrip("/"))
        data = tuple(data_lines(ctx.data))  # bad dataset paths refused before the job exists
        await asyncio.to_thread(self._sync_client)  # fail early on credentials
        return UnicorePrepared(ctx, ".", snapshot, extras, progress, data)

    async def submit(self, prepared: PreparedJob[UnicoreConfig]) -> Submission:
        if not isinstance(prepared, UnicorePrepared):
            raise UserInputError(Problem(
                f"run {prepared.ctx.run_id} was not prepared by this backend"))
        run_id = prepared.ctx.run_id
        job = JobSpec.from_context(prepared.ctx)
        desc = job_description(run_id, job)
        files = job_files(job)
        files[JOB_SCRIPT] = job_script(job, secrets=SECRETS_FILE in files,
                                       data=prepared.data).encode()
        job_id = await self._submit_job(run_id, desc, prepared.snapshot, prepared.extras, files,
                                        prepared.progress)
        return Submission(job_id, JobStatus(RunState.QUEUED))

    def _create(self, desc: dict[str, Any]) -> str:
        def post() -> str:
            resp = self._transport().post(url=self._sync_client().links["jobs"], json=desc)
            resp.close()
            return str(resp.headers["Location"])

        return self._call_sync("submitting the job", post, idempotent=False)

    def _adopt(self, run_id: str) -> str | None:
        """After a creation whose answer was lost: the job it made, if any (by its tag)."""
        found = self._tagged_jobs(run_id)
        return self._job_url(found[0][0]) if found else None

    def _object_store(self) -> _HomeStore | None:
        """The user's HOME storage as the object store of the runs' code (None: the site has
        none, or its mount point cannot stand in a ``file://`` URL: every file then goes into
        the job's directory, every time)."""
        with self._home_lock:
            return self._open_object_store()

    def _open_object_store(self) -> _HomeStore | None:
        if self._home is None:
            try:
                props = self._call_sync("opening the HOME storage", lambda: self._transport().get(
                    url=f"{self.url}/storages/HOME"))
            except NotFound:
                props = {}
            links = props.get("_links") or {}
            mount = str(props.get("mountPoint") or "")
            rename = (links.get("action:rename") or {}).get("href")
            if rename and _URI_PATH.fullmatch(mount):
                url = (links.get("self") or {}).get("href") or f"{self.url}/storages/HOME"
                self._home = _HomeStore(self, url, mount, rename)
            else:
                log.info("UNICORE %s: no usable HOME storage: code is uploaded with each job",
                         self.url)
                self._home = False
        return self._home if isinstance(self._home, _HomeStore) else None

    async def _submit_job(self, run_id: str, desc: dict[str, Any], snapshot: Snapshot,
                          extras: dict[str, bytes], files: dict[str, bytes],
                          progress: ProgressCallback | None) -> str:
        """The code contents HOME lacks into it, the job created with the code staged in from
        there (``Imports``), the per-run files uploaded into its directory, the job started."""
        store = await asyncio.to_thread(self._object_store)
        per_run = {k: v for k, v in {**extras, **files}.items() if not k.endswith("/")}
        dirs = sorted(k.rstrip("/") for k in extras if k.endswith("/"))
        listed_at = self._uploads.listing_started()
        plan = plan_upload(snapshot, await asyncio.to_thread(store.present)) if store else None
        code = [] if store else list(snapshot.files)  # without a store: each file, each time
        code_bytes = plan.missing_bytes if plan else snapshot.total_bytes
        meter = Progress(progress, code_bytes + sum(len(v) for v in per_run.values()))
        if store and plan:
            # Concurrent submissions of this code (a sweep) share the uploads: each once.
            await asyncio.to_thread(upload_missing, store, plan, meter, self.upload_threads,
                                    self._uploads, listed_at)
            desc = {**desc, "Imports": store.imports(snapshot)}
        submitted = await submit_looked_up(lambda: asyncio.to_thread(self._create, desc),
                                           lambda: asyncio.to_thread(self._adopt, run_id))
        job_url = submitted.value
        job_id = job_url.rstrip("/").rsplit("/", 1)[-1]
        self._staging.add(job_id)
        try:
            await asyncio.to_thread(self._stage_in_and_start, job_id, snapshot, code, per_run,
                                    dirs, meter, store is not None)
        except Exception as exc:  # the job is removed, the error raised
            await asyncio.to_thread(self._abandon, job_id, job_url, exc)
        finally:
            self._staging.discard(job_id)
        if submitted.ambiguous:
            await asyncio.to_thread(self._drop_unstarted, run_id, job_id)
        return job_id

    def _abandon(self, job_id: str, job_url: str, exc: Exception) -> NoReturn:
        """The job exists but may not have started: remove it rather than leave the run
        hanging."""
        try:
            self._call_sync("removing the unstarted job",
                            lambda: self._transport().delete(url=job_url).close())
        except Exception:  # we cannot tell whether it runs: find_submitted decides
            log.warning("could not remove UNICORE job %s after a failed submission", job_id)
            raise BackendUnavailable(f"submission of UNICORE job {job_id} did not complete "
                                     f"({exc}) and the job could not be removed") from None
        raise RemoteError(f"submission failed after the UNICORE job was created ({exc}); "
                          "the job was removed") from None

    def _chmod(self, storage_url: str, rel: str, perms: str, retries: int) -> None:
        """Files.modify (PUT with JSON): the answer says per item "OK" or "FAILED: …"."""
        url = f"{storage_url}/files/{quote(rel)}"
        reply = self._call_sync(f"setting the permissions of {rel}", lambda: self._transport().put(
            url=url, json={"permissions": perms}), retries=retries)
        answer = reply.json() if reply.content else {}
        reply.close()
        if answer.get("permissions") != "OK":
            raise RemoteError(f"UNICORE could not set the permissions of {rel}: "
                              f"{answer.get('permissions')}")

    def _await_stage_in(self, job_id: str, retries: int) -> None:
        """Until UNICORE has copied the code in (STAGINGIN → READY; a failed import ends the job
        FAILED "Staging in failed. Reason: …")."""
        url, deadline, pause = self._job_url(job_id), time.monotonic() + self.stage_in_timeout, 0.05
        while True:
            props = self._call_sync("waiting for the code to be staged in", lambda: self._transport(
                ).get(url=url, params={"fields": "status,statusMessage"}), retries=retries)
            status = str(props.get("status") or "").upper()
            if status not in _STAGING:
                break
            if time.monotonic() > deadline:
                raise BackendUnavailable(f"UNICORE did not stage the code in within "
                                         f"{self.stage_in_timeout:.0f} s")
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
        if status == "FAILED":
            raise RemoteError(f"UNICORE could not copy the code into the job's directory: "
                              f"{props.get('statusMessage')}")

    def _stage_in_and_start(self, job_id: str, snapshot: Snapshot, code: list[SnapshotFile],
                            per_run: dict[str, bytes], dirs: list[str], meter: Progress,
                            staged: bool) -> None:
        """Upload ``code`` (the files not staged in by UNICORE) and the per-run files, one
        ``PUT files/<path>`` each (nested folders kept), then start the job."""
        retries = self.submit_retries
        storage_url = self._call_sync("opening the working directory",
                                      lambda: self._storage_url(job_id), retries=retries)

        def put(rel: str, data: Callable[[], Any], size: int) -> None:
            url = f"{storage_url}/files/{quote(rel)}"
            headers = {"Content-Type": "application/octet-stream"}
            self._call_sync(f"uploading {rel}", lambda: self._transport().put(
                url=url, headers=headers, content=data()).close(), retries=retries)
            meter.add(size)

        def content(path: Path) -> Callable[[], bytes]:
            return path.read_bytes

        items: list[tuple[str, Callable[[], Any], int]] = [
            (f.relpath, content(snapshot.object_path(f)), f.size) for f in code]
        items += [(k, functools.partial(bytes, d), len(d)) for k, d in sorted(per_run.items())
                  if k != SECRETS_FILE]
        if SECRETS_FILE in per_run:
            secret = per_run[SECRETS_FILE]
            put(SECRETS_FILE, lambda: secret, len(secret))
            self._chmod(storage_url, SECRETS_FILE, "rw-------", retries)
        with concurrent.futures.ThreadPoolExecutor(self.upload_threads) as pool:
            list(pool.map(lambda item: put(*item), items))
        for d in dirs:  # empty directories the offline MLflow store needs
            url = f"{storage_url}/files/{quote(d)}"
            self._call_sync(f"creating {d}", self._request("post", url, json={}), retries=retries)
        if staged:
            self._await_stage_in(job_id, retries)
        for f in snapshot.files:  # copies and uploads get the umask's mode: executables back
            if file_mode(f) & 0o111:
                self._chmod(storage_url, f.relpath, _perms(file_mode(f)), retries)
        # start is idempotent (a started job ignores it): safe to retry
        start = f"{self._job_url(job_id)}/actions/start"
        self._call_sync("starting the job", lambda: self._transport().post(
            url=start, json={}).close(), retries=retries)

    def _tagged_jobs(self, run_id: str) -> list[tuple[str, str]]:
        """(job id, status) of the jobs tagged for this run, oldest first."""
        urls = self._call_sync("listing jobs", lambda: self._transport().get(
            url=self._sync_client().links["jobs"], params={"tags": f"hpcml-run-{run_id}"})["jobs"])
        out = []
        for url in urls:
            job_id = url.rstrip("/").rsplit("/", 1)[-1]
            try:
                props = self._call_sync("reading the job status", self._request(
                    "get", self._job_url(job_id), params={"fields": "status"}))
            except NotFound:
                continue
            out.append((job_id, str(props.get("status") or "")))
        return out

    def _drop_unstarted(self, run_id: str, keep: str | None) -> None:
        """Remove jobs of this run that were created but never started (READY, or still staging
        in: waiting for our upload and start, they would never run): leftovers of an
        interrupted or repeated submission."""
        try:
            for job_id, status in self._tagged_jobs(run_id):
                if job_id != keep and status in _UNSTARTED and job_id not in self._staging:
                    url = self._job_url(job_id)
                    self._call_sync("removing an unstarted job", self._request("delete", url))
        except HpcmlError as exc:
            log.warning("could not remove unstarted UNICORE jobs of run %s: %s", run_id, exc)

    def _find_sync(self, run_id: str) -> str | None:
        started = [job_id for job_id, status in self._tagged_jobs(run_id)
                   if status not in _UNSTARTED or job_id in self._staging]
        # A READY job was never started (the submitter died before `start`): nothing runs, so
        # the run FAILS ("submission interrupted") and the job is removed.
        self._drop_unstarted(run_id, keep=started[0] if started else None)
        return started[0] if started else None

    async def find_submitted(self, ctx: JobContext[UnicoreConfig]) -> str | None:
        return await asyncio.to_thread(self._find_sync, ctx.run_id)

    # ------------------------------------------------------------ data (unicore_data.py)

    def _data_store(self) -> Any:
        from .unicore_data import UnicoreDataStore  # it imports this module

        home = self._object_store()
        if home is None:
            raise Unsupported(f"UNICORE at {self.url} has no HOME storage this backend can "
                              "use: datasets cannot be staged there")
        return UnicoreDataStore(self, home, self._uploads, self.upload_threads)

    async def stage_data(self, versions: Sequence[DataVersion],
                         progress: DataProgress | None = None) -> list[StagedData]:
        return await asyncio.to_thread(
            lambda: list(self._data_store().stage(versions, progress)))

    async def target_listing(self, path: str) -> TargetListing:
        from .unicore_data import listing

        return await asyncio.to_thread(lambda: listing(self, self._mounts(), path))

    async def staged_versions(self) -> list[StagedVersion]:
        return await asyncio.to_thread(lambda: list(self._data_store().staged()))

    async def remove_staged(self, digest: str) -> bool:
        return await asyncio.to_thread(lambda: bool(self._data_store().remove(digest)))

    def _mounts(self) -> dict[str, str]:
        """storage URL → mount point, of the user's storages (job directories left out)."""
        if self._storage_mounts is None:
            urls = self._call_sync("listing the storages", self._request(
                "get", f"{self.url}/storages")).get("storages") or []
            mounts = {}
            for url in urls:
                try:
                    props = self._call_sync("reading a storage", self._request("get", url))
                except NotFound:
                    continue
                if props.get("mountPoint"):
                    mounts[str(url).rstrip("/")] = str(props["mountPoint"])
            self._storage_mounts = mounts
        return self._storage_mounts

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
            if status.state != RunState.UNKNOWN:
                self._last[job_id] = (now, status)
            out[job_id] = status
        for ref in rest:
            cached = self._last.get(ref.job_id)
            if cached:
                out[ref.job_id] = cached[1]
        return out

    def _poll_sync(self, job_ids: list[str]) -> dict[str, JobStatus]:
        self._sync_client()

        def one(job_id: str) -> tuple[str, JobStatus | HpcmlError | None]:
            try:
                props = self._call_sync("reading the job status", lambda: self._transport().get(
                    url=self._job_url(job_id), params={"fields": "status,statusMessage,exitCode"}))
                status = unicore_state(props)
                aborted = props.get("statusMessage") == ABORTED_MESSAGE
                if status.state == RunState.FAILED and not aborted:
                    # Judged once: the engine may poll an ended job again (its final sync retried).
                    judged = self._judged.get(job_id)
                    if judged is None:
                        judged = self._judged[job_id] = self._ended(job_id, status)
                    status = judged
            except NotFound:
                return job_id, None  # the job was deleted: the engine records UNKNOWN
            except HpcmlError as exc:  # this job only: the others are still known
                return job_id, exc
            return job_id, status

        with concurrent.futures.ThreadPoolExecutor(min(8, max(1, len(job_ids)))) as pool:
            results = list(pool.map(one, job_ids))
        failures = [v for _, v in results if isinstance(v, HpcmlError)]
        if failures and len(failures) == len(results):
            raise BackendUnavailable(str(failures[0]))
        return {k: (JobStatus(RunState.UNKNOWN, message=str(v)) if isinstance(v, HpcmlError) else v)
                for k, v in results if v is not None}

    def _ended(self, job_id: str, status: JobStatus) -> JobStatus:
        """A FAILED job, judged once more (see :func:`judge_end`): the batch system's report
        from the job log (UNICORE logs it when the job left no exit code, which is what a
        wall-time kill does), the job's own ``.hpcml/exit_code``, and — when the job was
        signalled or left no record — ``/details`` while the batch system still knows the job.
        Trouble reading any of these raises: the job stays as it was until the next poll."""
        props = self._call_sync("reading the job log", lambda: self._transport().get(
            url=self._job_url(job_id), params={"fields": "log"}))
        details = "\n".join(str(line) for line in props.get("log") or []
                            if "information from batch system" in str(line)) or None
        record = parse_exit_record(self._small_file(job_id, EXIT_FILE))
        said = bool(details and _BSS_TIMEOUT_RE.search(details))
        if not said and (record is None or record.signal):
            url = f"{self._job_url(job_id)}/details"
            try:
                answer = self._call_sync("reading the batch system's details",
                                         lambda: self._transport().get(url=url))
                details = json.dumps(answer)
            except HpcmlError:
                pass  # the batch system forgot the job (Slurm's MinJobAge) or is not Slurm
        return judge_end(status, record, details)

    def _small_file(self, job_id: str, relpath: str) -> bytes | None:
        url = self._job_file_url(job_id, relpath)

        def get() -> bytes | None:
            with self._transport().get_stream(url=url, headers=_OCTETS) as resp:
                _raise_for(resp, url)
                return resp.read() if resp.status_code == 200 else None

        return self._call_sync(f"reading {relpath}", get)

    # ------------------------------------------------------------ files

    def _file_url(self, ref: JobRef, relpath: str) -> str | None:
        if not ref.job_id:
            return None
        return self._job_file_url(ref.job_id, relpath)

    async def read(self, ref: JobRef, relpath: str, offset: int, max_bytes: int) -> Chunk:
        if offset < 0 or max_bytes < 0:
            raise UserInputError(Problem("offset and max_bytes must not be negative"))
        return await asyncio.to_thread(self._read_sync, ref, relpath, offset, max_bytes)

    def _read_sync(self, ref: JobRef, relpath: str, offset: int, max_bytes: int) -> Chunk:
        url = self._file_url(ref, relpath)
        if url is None:
            return Chunk(b"", offset, offset, None)
        # The size from the file's properties: a ranged read answers 206 without Content-Range,
        # and must never start past the end (UNICORE/X's skip loop never ends on a TSI storage).
        try:
            props = self._call_sync(f"reading {relpath}", lambda: self._transport().get(url=url))
        except NotFound:
            return Chunk(b"", offset, offset, None)
        if props.get("isDirectory"):
            raise UserInputError(Problem(f"not a file: {relpath}"))
        size = _int(props.get("size")) or 0
        if max_bytes == 0 or offset >= size:
            return Chunk(b"", offset, offset, size)
        last = min(offset + max_bytes, size) - 1

        def ranged() -> tuple[int, bytes]:
            headers = {"Accept": "application/octet-stream", "Range": f"bytes={offset}-{last}"}
            with self._transport().get_stream(url=url, headers=headers) as resp:
                _raise_for(resp, url)
                return resp.status_code, resp.read() if resp.status_code in (200, 206) else b""

        try:
            status, body = self._call_sync(f"reading {relpath}", ranged)
        except NotFound:
            return Chunk(b"", offset, offset, None)
        if status == 200:  # the server ignored the range: the whole file came
            body = body[offset:]
        body = body[:max_bytes]
        return Chunk(body, offset, offset + len(body), max(size, offset + len(body)))

    async def list_files(self, ref: JobRef, relpath: str = "") -> list[FileInfo]:
        return await asyncio.to_thread(self._list_sync, ref, relpath)

    def _list_sync(self, ref: JobRef, relpath: str) -> list[FileInfo]:
        if not ref.job_id:
            raise NotFound("the job has not been submitted yet")
        job_id = ref.job_id
        root = run_relpath(relpath)
        out: list[FileInfo] = []
        todo = [root]
        while todo:
            d = todo.pop()
            url = self._job_file_url(job_id, d)
            try:
                entries = self._list_dir(url, d)
            except NotFound:
                if d == root:
                    raise NotFound(f"no such directory in the run directory: {relpath}") from None
                continue
            if entries is None:
                if d == root:
                    raise UserInputError(Problem(f"not a directory: {relpath}"))
                continue
            for name, meta in entries.items():
                full = name.strip("/")
                rel = full[len(root) + 1:] if root and full.startswith(root + "/") else full
                is_dir = bool(meta.get("isDirectory"))
                size = None if is_dir else _int(meta.get("size"))
                out.append(FileInfo(path=rel, is_dir=is_dir, size=size,
                                    mtime=_mtime(meta.get("lastAccessed"))))
                if is_dir:
                    todo.append(full)
        return sorted(out, key=lambda f: f.path)

    def _list_dir(self, url: str, name: str) -> dict[str, Any] | None:
        """All entries of one directory (None: not a directory). UNICORE answers at most
        ``num`` entries from ``offset`` (the top level: at most 10,000, offset ignored) and
        always adds a ``next`` link, so pages are asked for until one is short or brings
        nothing new."""
        entries: dict[str, Any] = {}
        offset = 0
        while True:
            params = {"offset": offset, "num": self.list_page}
            props = self._call_sync(f"listing {name or 'the run directory'}",
                                    self._request("get", url, params=params))
            if not props.get("isDirectory", True):
                return None
            page = props.get("content") or {}
            new = {k: v for k, v in page.items() if k not in entries}
            entries.update(new)
            if len(page) < self.list_page:
                return entries
            if not new:
                where = name or "the run directory's top level"
                log.warning("UNICORE lists at most %d entries of %s (offset ignored): "
                            "listing incomplete", len(page), where)
                return entries
            offset += len(page)

    async def fetch(self, ref: JobRef, relpath: str, dest: Path) -> None:
        await asyncio.to_thread(self._fetch_sync, ref, relpath, Path(dest))

    def _fetch_sync(self, ref: JobRef, relpath: str, dest: Path) -> None:
        url = self._file_url(ref, relpath)
        if url is None:
            raise NotFound("the job has not been submitted yet")
        dest.parent.mkdir(parents=True, exist_ok=True)

        def download() -> int:
            with self._transport().get_stream(url=url, headers=_OCTETS) as resp:
                _raise_for(resp, url)
                if resp.status_code != 200:
                    return int(resp.status_code)
                with open(dest, "wb") as f:
                    for part in resp.iter_bytes(1 << 16):
                        f.write(part)
                return 200

        status = self._call_sync(f"downloading {relpath}", download)
        if status == 406:  # Files.download: a directory is "not acceptable" as octet-stream
            raise UserInputError(Problem(f"not a file: {relpath}"))
        if status != 200:
            raise NotFound(f"no such file in the run directory: {relpath}")

    async def cancel(self, ref: JobRef) -> None:
        if not ref.job_id:
            return
        job_id = ref.job_id
        url = self._job_url(job_id)
        try:
            await self._call("cancelling the job", lambda: self._transport().post(
                url=f"{url}/actions/abort", json={}).close())
        except NotFound:
            return
        # A job aborted before it ran never deletes its secrets file itself.
        try:
            secrets_url = await asyncio.to_thread(self._job_file_url, job_id, SECRETS_FILE)
            await self._call("removing the secrets file",
                             lambda: self._transport().delete(url=secrets_url).close())
        except HpcmlError:
            pass  # none (no secrets, or the job removed it), or the server is busy: it stays 0600


def _raise_for(resp: httpx.Response, url: str) -> None:
    """get_stream does not check the status: raise as pyunicore's checked calls do."""
    code = resp.status_code
    if code >= 500 or code in (401, 403, 429):
        raise httpx.HTTPError(f"{code} Server Error: {resp.reason_phrase} for url: {url}")


class _HomeStore:
    """The user's HOME storage as the runs' object store, ``~/.hpcml/objects/<sha256>``
    (:class:`.cas_upload.ObjectStore`); UNICORE copies from it into each job's directory
    through the job's ``Imports`` (``file://<mountPoint>/.hpcml/objects/<sha256>``: a copy on
    the cluster, before the job is READY)."""

    def __init__(self, backend: UnicoreBackend, url: str, mount: str, rename_url: str):
        self.backend, self.url, self.mount, self.rename_url = backend, url, mount, rename_url

    def _file_url(self, rel: str) -> str:
        return f"{self.url}/files/{quote(rel)}"

    def present(self) -> dict[str, int | None]:
        try:
            entries = self.backend._list_dir(self._file_url(STORE_DIR), STORE_DIR) or {}
        except NotFound:  # a new store
            return {}
        out: dict[str, int | None] = {}
        for name, meta in entries.items():
            leaf = name.rstrip("/").rsplit("/", 1)[-1]
            if not meta.get("isDirectory") and _SHA256.fullmatch(leaf):
                out[leaf] = _int(meta.get("size"))
        return out

    def put(self, sha256: str, source: Path) -> None:
        """Upload under a temporary name, then rename: a listed object is always whole, and
        is the content its name says (hashed as sent: a file changed since it was hashed is
        refused, nothing stored)."""
        content = _HashedFile(source)
        size = source.stat().st_size

        def verify() -> None:
            if content.sha256 != sha256:
                raise Conflict(f"{source} changed since it was hashed: not stored (try again)")

        self._put_atomic(f"{STORE_DIR}/{sha256}", content, size, sha256[:12], verify)

    def put_bytes(self, rel: str, data: bytes) -> None:
        """A small file (a manifest) written whole or not at all."""
        self._put_atomic(rel, data, len(data), rel.rsplit("/", 1)[-1][:16], lambda: None)

    def _put_atomic(self, final: str, content: Any, size: int, what: str,
                    verify: Callable[[], None]) -> None:
        b = self.backend
        # Beside its final place: the upload makes the folders, the rename stays in one.
        part = f"{final.rsplit('/', 1)[0]}/.incoming/{what}.{secrets.token_hex(4)}"
        url = self._file_url(part)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        try:
            b._call_sync(f"uploading {what}", lambda: b._transport().put(
                url=url, headers=headers, content=content).close(), retries=b.submit_retries)
            verify()
            try:
                b._call_sync(f"storing {what}", lambda: b._transport().post(
                    url=self.rename_url, json={"from": part, "to": final}).close(),
                    idempotent=False)
            except Ambiguous as amb:
                # The rename is the TSI's `mv -f`: sent again after its answer was lost, it
                # fails (HTTP 500, the source is gone) although it was done. Look instead.
                if self._size(final) != size:
                    raise amb.error from None
        except Exception:
            self._drop(part)  # no half upload left in .incoming
            raise

    def read(self, rel: str) -> bytes | None:
        """A small file of the storage (None: not there)."""
        b, url = self.backend, self._file_url(rel)

        def get() -> bytes | None:
            with b._transport().get_stream(url=url, headers=_OCTETS) as resp:
                _raise_for(resp, url)
                return resp.read() if resp.status_code == 200 else None

        return b._call_sync(f"reading {rel}", get)

    def delete(self, rel: str) -> None:
        """Remove a file or a folder with all in it (already gone: fine)."""
        b = self.backend
        try:
            url = self._file_url(rel)
            b._call_sync(f"removing {rel}", lambda: b._transport().delete(url=url).close())
        except NotFound:
            pass

    def _drop(self, rel: str) -> None:
        """Best effort: remove a temporary upload (already gone after a rename: fine)."""
        b = self.backend
        try:
            b._call_sync("removing an unfinished upload", lambda: b._transport().delete(
                url=self._file_url(rel)).close(), retries=0)
        except Exception:  # noqa: BLE001 - the next upload uses a new name anyway
            log.info("UNICORE %s: could not remove %s", b.url, rel)

    def _size(self, rel: str) -> int | None:
        b = self.backend
        try:
            props = b._call_sync("checking stored code", lambda: b._transport().get(
                url=self._file_url(rel)), retries=b.submit_retries)
        except NotFound:
            return None
        return _int(props.get("size"))

    def imports(self, snapshot: Snapshot) -> list[dict[str, str]]:
        root = f"{self.mount.rstrip('/')}/{STORE_DIR}"
        return [{"From": f"file://{root}/{f.sha256}", "To": f.relpath} for f in snapshot.files]


class _HashedFile:
    """A file's bytes for an upload body, read in blocks and hashed on the way (each
    iteration reads it again: a retried request sends it whole again)."""

    def __init__(self, path: Path):
        self.path, self.sha256 = path, ""

    def __iter__(self) -> Iterator[bytes]:
        self.sha256, h = "", hashlib.sha256()  # set only once the whole file was read
        with open(self.path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
                yield block
        self.sha256 = h.hexdigest()


def _perms(mode: int) -> str:
    return "".join(c if mode & (1 << (8 - i)) else "-" for i, c in enumerate("rwxrwxrwx"))


def _server_words(exc: BaseException) -> str:
    """The server's own message from pyunicore's "<code> Server Error: <message> for url: …"."""
    m = _ERROR_RE.match(str(exc))
    return m.group(2) if m else type(exc).__name__


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
