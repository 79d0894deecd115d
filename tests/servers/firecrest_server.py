"""A protocol-faithful FirecREST v2 test server (the endpoints our backend and pyfirecrest use).

Follows the published OpenAPI description (FirecREST v2, reports version 2.5.6 in the
``f7t-appversion`` header): JSON bodies and field names as specified (camelCase, and the
snake_case field names pyfirecrest sends, which the real server accepts too), errors as
``{"message": ...}``, bearer-token security on every endpoint, 201/204 where specified.

The "cluster" is a folder on this machine: absolute paths inside ``root`` are the
cluster's paths. Jobs EXECUTE for real as local process groups (``#SBATCH`` lines for
output/error/chdir/time/job-name honoured), so a job writes its logs and MLflow files
and ends in the state its program causes; cancel sends SIGTERM and reports
``CANCELLED by <uid>`` like ``sacct``. Large transfers go through an S3-like staging
area served by this same server (multipart upload with presigned part URLs, ETags,
complete; staged download), with a transfer job whose log says whether it worked.

Where the real server (eth-cscs/firecrest-v2, running shell commands over SSH) behaves in
a way a client must cope with, this server does the same; each such place quotes the real
server's behaviour in a comment ("Real FirecREST: ..."): sbatch/scancel failures as HTTP 500
with ``exit_status:N std_err:...``, ``ls --quoting-style=c`` names, ``view`` through ``dd``
(offsets in characters of the decoded text), the 5 MiB command-output limit (413), paths
pasted into ``'...'`` in shell commands, ``--export=ALL,K=V`` for the job environment, a
job killed by a signal as ``exitCode 0`` + ``interruptSignal``, the 24 h job-list window.

Job arrays (``#SBATCH --array=0-5%2``; FirecREST's API has no field for it) and
``#SBATCH --dependency=afterany:<id>`` run as Slurm 22.05 runs them (checked on the test
cluster): one job id for the array; each element, when a slot frees (at most ``%K``
running, the rest PENDING with reason JobArrayTaskLimit), gets a job id of its own as
``SLURM_JOB_ID`` (the last one to start keeps the array's id), with
``SLURM_ARRAY_JOB_ID``/``SLURM_ARRAY_TASK_ID``/``_COUNT``/``_MIN``/``_MAX``; ``%A``/``%a``
in file names; an index at or above ``state.max_array_size`` (MaxArraySize) refused with
Slurm's words. Real FirecREST lists jobs from sacct (an element as "719_3") merged with
squeue (a running element by its own id, "726"; the pending rest as ONE entry "719"), and
takes only ``[a-zA-Z0-9]+`` job ids in paths: GET/DELETE /jobs/719_3 is a 400, DELETE
/jobs/726 cancels that element only, DELETE /jobs/719 the whole array.

Switches: ``state.faults`` (500/429/dropped connection/delay/hang/401), ``state.late``
(answer after a delay, the request carried out: a client timeout that is not a failure),
``state.tokens`` (OIDC client-credentials endpoint at ``/auth/token``, token lifetime),
``state.queue_delay``, ``state.partitions``/``state.node_memory_mb``/``state.accounts``
(what sbatch accepts), ``state.job_list_window``/``state.purged`` (what Slurm still knows),
``state.max_array_size``, ``state.accounting_lag`` (sacct lists an element this long after
it started).
Records: ``state.command_lines`` (the shell commands the real server would have run on the
login node: what ``ps`` there shows), ``state.request_log`` (monotonic time, route).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import math
import os
import re
import shlex
import stat as stat_mod
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import tornado.web

from ._common import (
    CountingState,
    Faults,
    FaultyHandler,
    LocalJob,
    ServerThread,
    TokenHandler,
    TokenIssuer,
    job_base_env,
)
from .slurm_arrays import MAX_ARRAY_SIZE, InvalidArray, expand_filename, parse_array

API_VERSION = "2.5.6"
OPS_SIZE_LIMIT = 5 * 1024 * 1024
# Real FirecREST: `SSHClient.execute` reads at most `max_ops_file_size` bytes of a command's
# output; reaching it raises OutputLimitExceeded → HTTP 413 "Command output exceeded buffer limit."
OUTPUT_LIMIT = OPS_SIZE_LIMIT
JOB_LIST_WINDOW = 24 * 3600  # GET /jobs: sacct's default time window (`time_window=24h`)
USER, UID, GROUP, GID = "testuser", 1000, "users", 100


def job_model(system: str, job_id: str, name: str, working_dir: str, *, state: str,
              reason: str, exit_code: int | None, signal: int | None, start: float | None,
              end: float | None, limit: int | None, partition: str, account: str | None,
              kill_user: str | None) -> dict[str, Any]:
    """One entry of a job list, as the real server's ``SlurmJob`` model serialises it."""
    s = int(start) if start else None
    e = int(end) if end else None
    return {
        "jobId": job_id,
        "name": name,
        "status": {"state": state, "stateReason": reason,
                   "exitCode": exit_code if exit_code is not None else 0,
                   "interruptSignal": signal},
        "time": {"elapsed": (e or int(time.time())) - s if s else 0, "start": s, "end": e,
                 "suspended": 0, "limit": limit},
        "account": account,
        "allocationNodes": 1,
        "cluster": system,
        "group": GROUP,
        "nodes": "nid000001",
        "partition": partition,
        "priority": 1,
        "killRequestUser": kill_user,
        "user": USER,
        "workingDirectory": working_dir,
        "tasks": [],
    }


def run_exit(run: LocalJob) -> tuple[int | None, int | None]:
    """(exitCode, interruptSignal) of an ended process as the real server reports them.

    Real FirecREST: sacct's ExitCode "0:9" becomes exitCode 0, interruptSignal 9
    (`SlurmJob`: return_code / signal.id); the state is FAILED (CANCELLED after scancel)."""
    if run.signal:
        return 0, run.signal
    return run.exit_code, None


def run_state(run: LocalJob) -> str:
    return f"CANCELLED by {UID}" if run.state == "CANCELLED" else run.state


@dataclass
class ArrayTask:
    """One element of a job array. Slurm gives it a job id of its own when it starts
    (``SLURM_JOB_ID``: a new id; the last element to start takes the array's id)."""

    index: int
    raw_id: str | None = None
    run: LocalJob | None = None
    cancelled_at: float | None = None  # cancelled while still pending
    reason: str = "None"  # sacct's Reason: "JobArrayTaskLimit" once it waited for a slot

    @property
    def pending(self) -> bool:
        return self.run is None and self.cancelled_at is None

    @property
    def ended(self) -> float | None:
        return self.run.ended if self.run is not None else self.cancelled_at

    @property
    def live(self) -> bool:
        return self.run is not None and not self.run.done


@dataclass
class Job:
    job_id: str
    name: str
    working_dir: str
    run: LocalJob | None
    partition: str = "normal"
    account: str | None = None
    time_limit: int | None = None  # minutes
    transfer: bool = False
    state_override: str | None = None  # transfer jobs
    exit_override: int | None = None
    created: float = field(default_factory=time.time)
    # Job arrays (``#SBATCH --array``) and jobs that wait (``--dependency``, queue_delay):
    # started by the state's scheduler, not at submission.
    tasks: list[ArrayTask] | None = None
    throttle: int | None = None  # --array=...%K
    after_any: tuple[str, ...] = ()  # --dependency=afterany:<id>[:<id>...]
    launch: Any = None  # (raw id, task index | None) -> LocalJob, started by the scheduler
    eligible_at: float = 0.0  # time.monotonic() from which it may start (queue_delay)

    def state(self) -> str:
        if self.state_override:
            return self.state_override
        if self.tasks is not None:  # a summary for tests; the API lists the elements
            states = self.task_states()
            for word in ("RUNNING", "PENDING", "CANCELLED", "TIMEOUT", "FAILED"):
                if any(st.startswith(word) for st in states):
                    return word
            return "COMPLETED"
        if self.run is None:
            return "PENDING"
        return run_state(self.run)

    def task_states(self) -> list[str]:
        assert self.tasks is not None
        return ["PENDING" if t.pending else f"CANCELLED by {UID}" if t.run is None
                else run_state(t.run) for t in self.tasks]

    @property
    def ended(self) -> float | None:
        if self.tasks is not None:
            ends = [t.ended for t in self.tasks]
            return None if any(e is None for e in ends) else max(e or 0 for e in ends)
        if self.run is not None:
            return self.run.ended
        return self.created if self.state_override in ("COMPLETED", "FAILED") else None

    @property
    def done(self) -> bool:
        return self.ended is not None or self.state_override is not None and \
            self.state_override not in ("PENDING", "RUNNING")

    def pending_reason(self, state: FirecrestState) -> str:
        """squeue's Reason for what still waits."""
        if any(not state.job_done(d) for d in self.after_any):
            return "Dependency"
        if self.tasks is not None and self.throttle and \
                sum(t.live for t in self.tasks) >= self.throttle:
            return "JobArrayTaskLimit"
        return "Priority"

    def model(self, system: str, state: FirecrestState | None = None) -> dict[str, Any]:
        """``state``: for squeue's reason of a job that waits (e.g. "Dependency")."""
        run = self.run
        exit_code, signal = (self.exit_override, None) if run is None else run_exit(run)
        if run is not None and not run.done:
            exit_code, signal = None, None
        st = self.state()
        return job_model(
            system, self.job_id, self.name, self.working_dir, state=st,
            reason="None" if st != "PENDING" else
            self.pending_reason(state) if state else "Priority", exit_code=exit_code,
            signal=signal, start=run.started if run else None, end=run.ended if run else None,
            limit=self.time_limit, partition=self.partition, account=self.account,
            kill_user=USER if run and run.cancelled else None)

    def task_model(self, system: str, task: ArrayTask, job_id: str,
                   reason: str = "None") -> dict[str, Any]:
        run = task.run
        if run is None:
            state = "PENDING" if task.pending else f"CANCELLED by {UID}"
            code, sig = 0, None
        else:
            state = run_state(run)
            code, sig = run_exit(run) if run.done else (None, None)
        return job_model(
            system, job_id, self.name, self.working_dir, state=state, reason=reason,
            exit_code=code, signal=sig, start=run.started if run else None,
            end=task.ended, limit=self.time_limit, partition=self.partition,
            account=self.account,
            kill_user=USER if (run and run.cancelled) or task.cancelled_at else None)

    def sacct_entries(self, system: str, *, by_id: bool = False, window: float | None = None,
                      lag: float = 0.0) -> list[dict[str, Any]]:
        """What ``sacct`` lists of an array: one line per element that started or was
        cancelled, as "<array id>_<index>". Asked for by id (``sacct --jobs=<id>``), also the
        pending rest as "<array id>_[<indexes>]"; in the time window of ``GET /jobs``
        (``--starttime=now-24hours``) the pending rest is not listed.

        Seen on Slurm 22.05: ``sacct --jobs=733`` → 733_0 COMPLETED, 733_1 RUNNING,
        ``733_[1-3%1]`` PENDING; ``sacct --starttime=...`` → 733_0, 733_1 only."""
        assert self.tasks is not None
        now = time.time()
        out = []
        for t in self.tasks:
            if t.pending:
                continue
            if window is not None and t.ended is not None and now - t.ended > window:
                continue
            if t.run is not None and t.run.started and now - t.run.started < lag:
                continue  # not in the accounting database yet
            out.append(self.task_model(system, t, f"{self.job_id}_{t.index}", t.reason))
        rest = [t.index for t in self.tasks if t.pending]
        if by_id and rest:
            from .slurm_arrays import compact

            pending = ArrayTask(-1)
            out.append(self.task_model(system, pending,
                                       f"{self.job_id}_[{compact(rest, self.throttle)}]"))
        return out

    def squeue_entries(self, system: str, state: FirecrestState) -> list[dict[str, Any]]:
        """What ``squeue --Format=JobID,...`` lists of an array: each running element by its
        OWN job id, the pending rest as ONE line with the array's id.

        Seen on Slurm 22.05 (`--array=0-5%2`): ``719|PENDING|JobArrayTaskLimit`` (ArrayTaskID
        2-5%2), ``720|RUNNING`` (task 0), ``721|RUNNING`` (task 1)."""
        assert self.tasks is not None
        out = [self.task_model(system, t, str(t.raw_id)) for t in self.tasks if t.live]
        if any(t.pending for t in self.tasks):
            out.append(self.task_model(system, ArrayTask(-1), self.job_id,
                                       self.pending_reason(state)))
        return out


@dataclass
class Staged:
    """An object in the S3-like staging area."""

    id: str
    size: int
    target: str | None = None  # upload: where the transfer job puts it
    parts: dict[int, bytes] = field(default_factory=dict)
    data: bytes | None = None
    job: Job | None = None


class FirecrestState(CountingState):
    def __init__(self, root: Path, system: str = "cluster", clients: dict[str, str] | None = None,
                 token_lifetime: float = 300.0, api_keys: tuple[str, ...] = (),
                 max_part_size: int = 1024 * 1024):
        super().__init__()
        self.root = Path(root).resolve()
        self.system = system
        self.scratch = self.root / "scratch"
        self.home = self.root / "home"
        (self.scratch / USER).mkdir(parents=True, exist_ok=True)
        (self.home / USER).mkdir(parents=True, exist_ok=True)
        self.tokens = TokenIssuer(clients or {}, token_lifetime)
        self.api_keys = set(api_keys)
        self.faults = Faults()
        self.jobs: dict[str, Job] = {}
        self.staged: dict[str, Staged] = {}
        self.lock = threading.Lock()
        self._next_id = 1000
        self.max_part_size = max_part_size
        self.queue_delay = 0.0
        self.base_url = ""  # set when the server starts (presigned URLs point back here)
        self.submitted_bodies: list[dict[str, Any]] = []  # what POST /compute/.../jobs received
        self.late = Faults()  # kind "late": answer after `arg` seconds, the request carried out
        self.command_lines: list[str] = []  # shell commands run "on the login node"
        self.request_log: list[tuple[float, str]] = []  # (time.monotonic(), "METHOD route")
        self.fault_log: list[tuple[float, str, int]] = []  # injected answers: (time, route, status)
        self.partitions = {"normal", "debug"}
        self.accounts = {"proj"}
        self.node_memory_mb = 64 * 1024
        self.job_list_window = float(JOB_LIST_WINDOW)
        self.purged: set[str] = set()  # jobs Slurm forgot entirely (GET /jobs/{id} → 404)
        # slurm.conf's MaxArraySize: an array index at or above it is refused by sbatch.
        self.max_array_size = MAX_ARRAY_SIZE
        # slurmdbd's delay: an array element that started this recently is not in sacct yet
        # (seen on the test cluster: `sacct --jobs=731` empty 2 s after 731_0 started).
        self.accounting_lag = 0.0
        self._scheduler: threading.Thread | None = None
        self._started: set[int] = set()  # scheduled single jobs already started (id(run))
        self._stopping = False

    def route_name(self, path: str) -> str:
        path = re.sub(r"^/(compute|status|filesystem)/[^/]+/", r"/\1/{system}/", path)
        path = re.sub(r"/jobs/[^/]+$", "/jobs/{id}", path)
        return re.sub(r"^/s3/[^/]+/", "/s3/{id}/", path)

    def new_id(self) -> str:
        with self.lock:
            self._next_id += 1
            return str(self._next_id)

    def path(self, p: str | None) -> Path:
        """A cluster path → local path, refusing anything outside the cluster root."""
        if not p or not p.startswith("/"):
            raise tornado.web.HTTPError(400, log_message=f"path must be absolute: {p!r}")
        local = Path(os.path.normpath(p))
        if local != self.root and self.root not in local.parents:
            raise tornado.web.HTTPError(403, log_message=f"Permission denied: {p}")
        return local

    def run_command(self, line: str) -> None:
        with self.lock:
            self.command_lines.append(line)

    def shell_path(self, command: str, p: str) -> str:
        """What a command line built like the real server's hands the program as its path
        (``command`` holds ``{path}`` where the server writes ``'<path>'``).

        Real FirecREST pastes paths into single quotes unescaped (e.g. LsBaseCommand:
        ``ls ... -- '{self.target_path}'``, DdCommand: ``dd if='{self.target_path}' ...``),
        so a path with one ``'`` makes the login shell fail ("Unterminated quoted string",
        exit status 2), answered with HTTP 500 "Remote process failed with exit status:2
        ..."; with two, the shell drops the quotes and the command works on another path."""
        self.run_command(command.replace("{path}", f"'{p}'"))
        try:
            words = shlex.split(f"'{p}'")
        except ValueError:
            raise tornado.web.HTTPError(500, log_message=(
                "Remote process failed with exit status:2 and error message:"
                "sh: 1: Syntax error: Unterminated quoted string")) from None
        return words[0] if words else ""

    def kill_all(self) -> None:
        self._stopping = True
        for job in list(self.jobs.values()):
            for t in job.tasks or []:
                if t.pending:
                    t.cancelled_at = time.time()
                elif t.run is not None and not t.run.done:
                    t.run.kill()
            if job.run and not job.run.done:
                job.run.kill()

    # ------------------------------------------------------------ the scheduler

    def job_done(self, job_id: str) -> bool:
        """``afterany``: the job (every element of an array) has ended; a job Slurm does not
        know counts as ended (sbatch accepts the dependency and the job runs)."""
        job = self.jobs.get(job_id)
        return job is None or job.done

    def task_by_raw_id(self, job_id: str) -> tuple[Job, ArrayTask] | None:
        for job in self.jobs.values():
            for t in job.tasks or []:
                if t.raw_id == job_id:
                    return job, t
        return None

    def schedule_later(self, job: Job) -> None:
        """Hand ``job`` to the scheduler thread (started on first use)."""
        with self.lock:
            self.jobs[job.job_id] = job
            if self._scheduler is None:
                self._scheduler = threading.Thread(target=self._schedule_loop, daemon=True,
                                                   name="test-slurmctld")
                self._scheduler.start()

    def _schedule_loop(self) -> None:
        while not self._stopping:
            try:
                self.schedule()
            except Exception:  # noqa: BLE001 - a test server must keep scheduling
                import traceback

                traceback.print_exc()
            time.sleep(0.05)

    def schedule(self) -> None:
        """Start what may start: dependencies met (``afterany``), queue_delay over, at most
        ``%K`` elements of an array running at once, elements in index order."""
        now = time.monotonic()
        with self.lock:
            waiting = [j for j in self.jobs.values() if j.launch is not None and not j.done]
        for job in sorted(waiting, key=lambda j: int(j.job_id)):
            if now < job.eligible_at or not all(self.job_done(d) for d in job.after_any):
                continue
            if job.tasks is None:
                assert job.run is not None
                if self.claim_start(job.run):
                    job.run.start()
                continue
            with self.lock:
                pending = [t for t in job.tasks if t.pending]
                room = len(pending) if not job.throttle else \
                    job.throttle - sum(t.live for t in job.tasks)
                starting = pending[:max(room, 0)]
                for t in pending[len(starting):]:
                    t.reason = "JobArrayTaskLimit"  # (sacct keeps it after the start)
                for t in starting:
                    last = t is pending[-1]
                    # Slurm: an element gets a job id of its own when it starts, the last
                    # one to start keeps the array's (seen: 719_5 ran as job 719).
                    t.raw_id = job.job_id if last else self._take_id()
                    t.run = job.launch(t.raw_id, t.index)
            for t in starting:
                assert t.run is not None
                t.run.start()

    def claim_start(self, run: LocalJob) -> bool:
        """Whether the caller is the one to start ``run`` (scheduler or a cancel, once)."""
        with self.lock:
            if id(run) in self._started:
                return False
            self._started.add(id(run))
            return True

    def _take_id(self) -> str:  # under self.lock
        self._next_id += 1
        return str(self._next_id)


# ---------------------------------------------------------------- handlers


class Base(FaultyHandler):
    state: FirecrestState
    auth_required = True

    def set_default_headers(self) -> None:
        self.set_header("f7t-appversion", API_VERSION)

    def prepare(self) -> Any:
        route = f"{self.request.method} {self.state.route_name(self.request.path)}"
        with self.state.lock:
            self.state.request_log.append((time.monotonic(), route))
        pending = super().prepare()  # counting and injected faults ("hang" answers later)
        if self._finished:  # an injected fault answered
            with self.state.lock:
                self.state.fault_log.append((time.monotonic(), route, self.get_status()))
        late = None if self._finished else self.state.late.take(self.request.method,
                                                                 self.request.path)
        if pending is None and late is None:
            self._authenticate()
            return None

        async def later() -> None:
            if pending is not None:
                await pending
            if late is not None:
                await asyncio.sleep(late.arg)
            self._authenticate()

        return later()

    def _authenticate(self) -> None:
        if self._finished or not self.auth_required:
            return
        auth = self.request.headers.get("Authorization", "")
        key = self.request.headers.get("X-API-Key")
        if key and key in self.state.api_keys:
            return
        if auth.startswith("Bearer ") and self.state.tokens.valid(auth[7:]):
            return
        self.fail(401, "Invalid or expired authentication token" if auth else "Not authenticated")

    def check_system(self, system: str) -> None:
        if system != self.state.system:
            raise tornado.web.HTTPError(404, log_message=f"System '{system}' does not exist")

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(422, log_message="body is not JSON") from None
        if not isinstance(data, dict):
            raise tornado.web.HTTPError(422, log_message="body must be an object")
        return data

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def no_content(self) -> None:
        self.set_status(204)
        self.finish()

    def flag(self, name: str) -> bool:
        return self.get_query_argument(name, "false").lower() == "true"


def pick(d: dict[str, Any], *names: str) -> Any:
    """The first of the (alias, field-name) spellings present, as pydantic with
    ``populate_by_name`` accepts them."""
    for n in names:
        if d.get(n) is not None:
            return d[n]
    return None


def no_such(p: str) -> tornado.web.HTTPError:
    return tornado.web.HTTPError(404, log_message=f"{p}: No such file or directory")


class SystemsHandler(Base):
    def get(self) -> None:
        s = self.state
        self.reply({"systems": [{
            "name": s.system,
            "ssh": {"host": "localhost", "port": 22},
            "scheduler": {"type": "slurm", "version": "24.05.0", "apiUrl": None},
            "probing": {"interval": 60, "timeout": 10},
            "servicesHealth": [],
            "dataOperation": {"maxOpsFileSize": OPS_SIZE_LIMIT, "datatransferJobsDirectives": []},
            "fileSystems": [
                {"path": str(s.home), "dataType": "users", "defaultWorkDir": False},
                {"path": str(s.scratch), "dataType": "scratch", "defaultWorkDir": True},
            ],
        }]})


class UserInfoHandler(Base):
    def get(self, system: str) -> None:
        self.check_system(system)
        self.reply(
            {
                "user": {"id": str(UID), "name": USER},
                "group": {"id": str(GID), "name": GROUP},
                "groups": [{"id": str(GID), "name": GROUP}],
                "accounts": [{"name": "proj", "default": True}],
            }
        )


# ---------------------------------------------------------------- compute


def slurm_minutes(value: str) -> int | None:
    """--time value → minutes (Slurm formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S)."""
    days, _, rest = value.partition("-") if "-" in value else ("0", "", value)
    parts = [int(p) for p in rest.split(":")]
    d = int(days)
    if "-" in value:
        h, m, sec = (parts + [0, 0])[:3]
    elif len(parts) == 1:
        h, m, sec = 0, parts[0], 0
    elif len(parts) == 2:
        h, m, sec = 0, parts[0], parts[1]
    else:
        h, m, sec = parts
    return d * 1440 + h * 60 + m + math.ceil(sec / 60)


def sbatch_options(script: str) -> dict[str, str]:
    opts: dict[str, str] = {}
    for line in script.splitlines():
        if not line.startswith("#SBATCH"):
            continue
        for tok in shlex.split(line[len("#SBATCH"):]):
            if tok.startswith("--"):
                k, _, v = tok[2:].partition("=")
                opts[k] = v
    return opts


def slurm_error(command: str, exit_status: int, stderr: str) -> tornado.web.HTTPError:
    """Real FirecREST: a failing sbatch/scancel raises SlurmError(f"Unexpected Slurm command
    response. exit_status:{exit_status} std_err:{stderr}"), answered as HTTP 500."""
    return tornado.web.HTTPError(500, log_message=(
        f"Unexpected Slurm command response. exit_status:{exit_status} std_err:{stderr}"))


def sbatch_error(*lines: str) -> tornado.web.HTTPError:
    return slurm_error("sbatch", 1, "".join(f"sbatch: error: {ln}\n" for ln in lines))


def sbatch_export(value: str) -> dict[str, str]:
    """How sbatch reads ``--export=ALL,K=V,...``: split at commas outside quotes (Slurm's
    find_quote_token), quotes kept in the value; an unmatched quote runs to the end, so it
    swallows the variables after it. A value's comma starts a new (bogus) item."""
    items, cur, quote = [], "", None
    for ch in value:
        if quote:
            cur += ch
            quote = None if ch == quote else quote
        elif ch in "'\"":
            cur, quote = cur + ch, ch
        elif ch == ",":
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    env: dict[str, str] = {}
    for item in items:
        name, eq, val = item.partition("=")
        if eq and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            env[name] = val
    return env


def sbatch_command_line(spec: dict[str, Any], env: dict[str, str], workdir: str) -> str:
    """The command line the real server runs for a submission (SbatchCommand.get_command):
    the environment is on it, for anyone on the login node to see with ``ps``."""
    export = ",".join(f"{k}={v}" for k, v in env.items())
    cmd = ["sbatch", f"--export={shlex.quote(f'ALL,{export}')}", f"--chdir={shlex.quote(workdir)}"]
    for key in ("partition", "reservation", "account"):
        if pick(spec, key):
            cmd.append(f"--{key}={shlex.quote(str(pick(spec, key)))}")
    return " ".join(cmd)


def sbatch_memory_mb(value: str) -> int | None:
    m = re.fullmatch(r"(\d+)([KMGT]?)B?", value.strip().upper())
    if not m:
        return None
    factor = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[m.group(2)]
    return int(int(m.group(1)) * factor)


def merge_listings(*listings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Real FirecREST (SlurmCliClient.get_jobs/get_job): sacct's entries, then squeue's, in
    one dict by ``jobId``: a later entry replaces an earlier one only when it is PENDING.
    For an array that makes "719_0" (sacct) and "720" (squeue) two entries of one task."""
    jobs: dict[str, dict[str, Any]] = {}
    for listing in listings:
        for entry in listing:
            if entry["jobId"] not in jobs or entry["status"]["state"] == "PENDING":
                jobs[entry["jobId"]] = entry
    return list(jobs.values())


class JobsHandler(Base):
    def get(self, system: str) -> None:
        self.check_system(system)
        window = self.state.job_list_window
        now = time.time()
        with self.state.lock:
            known = [j for j in self.state.jobs.values() if j.job_id not in self.state.purged]
        # Real FirecREST: GET /jobs is sacct (time_window, default the last 24 h, for
        # ended jobs) + squeue (pending and running): older jobs are not listed.
        sacct: list[dict[str, Any]] = []
        squeue: list[dict[str, Any]] = []
        for j in known:
            if j.tasks is not None:
                sacct += j.sacct_entries(system, window=window, lag=self.state.accounting_lag)
                squeue += j.squeue_entries(system, self.state)
            elif j.ended is None or now - j.ended <= window:
                sacct.append(j.model(system, self.state))
        self.reply({"jobs": merge_listings(sacct, squeue)})

    def post(self, system: str) -> None:
        self.check_system(system)
        body = self.body()
        spec = body.get("job")
        if not isinstance(spec, dict):
            raise tornado.web.HTTPError(422, log_message="field 'job' is required")
        self.state.submitted_bodies.append(body)
        workdir = pick(spec, "workingDirectory", "working_directory")
        if not workdir:
            raise tornado.web.HTTPError(422, log_message="job.workingDirectory is required")
        script = spec.get("script")
        script_path = pick(spec, "scriptPath", "script_path")
        if script is None and script_path:
            script = self.state.path(script_path).read_text()
        if not script:
            raise tornado.web.HTTPError(422, log_message="job.script or job.scriptPath is required")
        env_field = spec.get("env") or {}
        if isinstance(env_field, list):
            env_field = dict(e.split("=", 1) for e in env_field if "=" in e)
        line = sbatch_command_line(spec, {str(k): str(v) for k, v in env_field.items()}, workdir)
        self.state.run_command(line)
        wd = self.state.path(workdir)
        if not wd.is_dir():
            raise sbatch_error(f"chdir to {workdir} failed: No such file or directory")
        if not script.startswith("#!"):
            raise sbatch_error("This does not look like a batch script.  The first",
                               "line must start with #! followed by the path to an interpreter.",
                               "For instance: #!/bin/sh")
        opts = sbatch_options(script)
        partition = pick(spec, "partition") or opts.get("partition") or "normal"
        account = pick(spec, "account") or opts.get("account")
        if partition not in self.state.partitions:
            raise sbatch_error("Batch job submission failed: Invalid partition name specified")
        if account and account not in self.state.accounts:
            raise sbatch_error("Batch job submission failed: Invalid account or account/partition "
                               "combination specified")
        mem = sbatch_memory_mb(opts["mem"]) if opts.get("mem") else None
        if mem is not None and mem > self.state.node_memory_mb:
            raise sbatch_error("Memory specification can not be satisfied",
                               "Batch job submission failed: "
                               "Requested node configuration is not available")
        array = None
        if opts.get("array"):
            try:
                array = parse_array(opts["array"], self.state.max_array_size)
            except InvalidArray as exc:
                raise sbatch_error(str(exc)) from None
        after_any: tuple[str, ...] = ()
        if opts.get("dependency"):
            kind, _, ids = opts["dependency"].partition(":")
            if kind != "afterany" or not all(x.isdigit() for x in ids.split(":")):
                raise sbatch_error("Batch job submission failed: Job dependency problem")
            after_any = tuple(ids.split(":"))
        job_id = self.state.new_id()
        chdir = self.state.path(opts["chdir"]) if opts.get("chdir") else wd
        name = spec.get("name") or opts.get("job-name") or "sbatch"
        limit = slurm_minutes(opts["time"]) if opts.get("time") else None
        base_env = job_base_env(self.state.home / USER, USER)
        # Real FirecREST: the env field reaches the job through that command line's --export.
        export = shlex.split(line)[1].removeprefix("--export=")
        base_env.update(sbatch_export(export.removeprefix("ALL,").removeprefix("ALL")))
        base_env.update({"SLURM_JOB_NAME": name, "SLURM_SUBMIT_DIR": str(wd),
                         "SLURM_CLUSTER_NAME": system})
        if array is not None:
            # Seen on Slurm 22.05 (task 3 of 719, --array=0-5%2): SLURM_JOB_ID=726 (its own),
            # SLURM_ARRAY_JOB_ID=719, SLURM_ARRAY_TASK_ID=3, COUNT=6, MIN=0, MAX=5.
            base_env.update({"SLURM_ARRAY_JOB_ID": job_id,
                             "SLURM_ARRAY_TASK_COUNT": str(len(array.indexes)),
                             "SLURM_ARRAY_TASK_MIN": str(array.indexes[0]),
                             "SLURM_ARRAY_TASK_MAX": str(array.indexes[-1])})
        spool = self.state.root / ".slurmd"
        spool.mkdir(exist_ok=True)
        script_file = spool / f"job{job_id}.sh"
        script_file.write_text(script)
        default_out = "slurm-%A_%a.out" if array is not None else "slurm-%j.out"

        def out_path(key: str, default: str, raw_id: str, task: int | None) -> Path:
            v = (
                pick(spec, "standardOutput" if key == "output" else "standardError")
                or opts.get(key)
                or default
            )
            v = expand_filename(v, job_id=raw_id, array_id=job_id if task is not None else None,
                                task=task, name=name, user=USER)
            return self.state.path(v if v.startswith("/") else str(chdir / v))

        def launch(raw_id: str, task: int | None, delay: float = 0.0) -> LocalJob:
            env = {**base_env, "SLURM_JOB_ID": raw_id}
            if task is not None:
                env["SLURM_ARRAY_TASK_ID"] = str(task)
            stdout = out_path("output", default_out, raw_id, task)
            err_default = pick(spec, "standardOutput") or opts.get("output") or default_out
            stderr = out_path("error", err_default, raw_id, task)
            return LocalJob(
                argv=["bash", str(script_file)], cwd=chdir, env=env, stdout=stdout,
                stderr=stderr, time_limit=limit * 60 if limit else None,
                append=opts.get("open-mode") == "append", start_delay=delay,
            )

        job = Job(job_id, name, str(wd), None, partition=partition, account=account,
                  time_limit=limit, after_any=after_any,
                  eligible_at=time.monotonic() + self.state.queue_delay)
        if array is None and not after_any:
            job.run = launch(job_id, None, self.state.queue_delay)
            with self.state.lock:
                self.state.jobs[job_id] = job
            job.run.start()
        else:
            if array is None:
                job.run = launch(job_id, None)
            else:
                job.tasks = [ArrayTask(i) for i in array.indexes]
                job.throttle = array.throttle
            job.launch = launch
            self.state.schedule_later(job)
        self.reply({"jobId": job_id}, 201)


JOB_ID_PATTERN = "^[a-zA-Z0-9]+$"


def job_id_refused(job_id: str) -> tornado.web.HTTPError:
    """Real FirecREST (compute/router.py): ``job_id: Path(pattern="^[a-zA-Z0-9]+$")`` on
    GET/DELETE /jobs/{job_id}, so an array element "719_3" never reaches Slurm: FastAPI's
    RequestValidationError, answered 400 with ``str(exc).capitalize()`` as the message."""
    err = {"type": "string_pattern_mismatch", "loc": ("path", "job_id"),
           "msg": f"String should match pattern '{JOB_ID_PATTERN}'", "input": job_id,
           "ctx": {"pattern": JOB_ID_PATTERN}}
    return tornado.web.HTTPError(400, log_message=f"1 validation error:\n  {err}\n".capitalize())


class JobHandler(Base):
    def get(self, system: str, job_id: str) -> None:
        self.check_system(system)
        if not re.fullmatch(JOB_ID_PATTERN[1:-1], job_id):
            raise job_id_refused(job_id)
        # Real FirecREST: `sacct --jobs=<id>` (no time window for a named job) + squeue; only a
        # job Slurm forgot entirely is 404 "Job not found.".
        job = self.state.jobs.get(job_id)
        found = self.state.task_by_raw_id(job_id)
        if job is not None and job.tasks is not None:
            # An array's id: every element (sacct) and the running ones by their own ids
            # plus the pending rest (squeue). Seen on 22.05: `sacct --jobs=733` lists
            # 733_0, 733_1 and 733_[1-3%1].
            lag = self.state.accounting_lag
            listed = merge_listings(job.sacct_entries(system, by_id=True, lag=lag),
                                    job.squeue_entries(system, self.state))
        elif found is not None and (job is None or job.tasks is None):
            # An element's own id: sacct names it "733_1", squeue by that id (while it runs).
            array, task = found
            started = task.run.started if task.run else None
            recorded = not started or time.time() - started >= self.state.accounting_lag
            listed = merge_listings(
                [array.task_model(system, task, f"{array.job_id}_{task.index}")] if recorded
                else [],
                [array.task_model(system, task, job_id)] if task.live else [])
        elif job is not None:
            listed = [job.model(system, self.state)]
        else:
            listed = []
        if not listed or job_id in self.state.purged:
            raise tornado.web.HTTPError(404, log_message="Job not found.")
        self.reply({"jobs": listed})

    def delete(self, system: str, job_id: str) -> None:
        self.check_system(system)
        if not re.fullmatch(JOB_ID_PATTERN[1:-1], job_id):
            raise job_id_refused(job_id)
        self.state.run_command(f"scancel --verbose {job_id}")
        job = self.state.jobs.get(job_id)
        found = self.state.task_by_raw_id(job_id)
        # Real FirecREST: `scancel --verbose <id>`; anything on stderr with "error:" is a
        # SlurmError → HTTP 500, never 404, for a job that ended or that Slurm never had.
        if (job is None and found is None) or job_id in self.state.purged:
            raise slurm_error("scancel", 1, f"scancel: error: Kill job error on job id {job_id}: "
                                            "Invalid job id specified\n")
        single: LocalJob | None = None
        if job is not None and job.tasks is not None:
            # scancel <array id>: every element still pending or running.
            targets = [t for t in job.tasks if t.pending or t.live]
        elif found is not None:
            # scancel <element's own id>: that element only (seen: scancel 726 → 719_3).
            targets = [found[1]] if found[1].live else []
        else:
            assert job is not None
            targets = []
            single = job.run if job.run is not None and not job.run.done else None
        if not targets and single is None:
            raise slurm_error("scancel", 0, f"scancel: Terminating job {job_id}\nscancel: "
                                            f"error: Kill job error on job id {job_id}: "
                                            "Job/step already completing or completed\n")
        if single is not None:
            assert job is not None
            single.cancel()
            if job.launch is not None and self.state.claim_start(single):
                single.start()  # still waiting for its dependency: it ends CANCELLED now
        with self.state.lock:
            for t in targets:
                if t.pending:
                    t.cancelled_at = time.time()
        for t in targets:
            if t.run is not None:
                t.run.cancel()
        self.no_content()


# ---------------------------------------------------------------- filesystem ops


def file_model(p: Path, name: str) -> dict[str, Any]:
    st = p.lstat()
    kind = "l" if stat_mod.S_ISLNK(st.st_mode) else "d" if stat_mod.S_ISDIR(st.st_mode) else "-"
    return {
        "name": name,
        "type": kind,
        "linkTarget": os.readlink(p) if kind == "l" else None,
        "user": USER,
        "group": GROUP,
        "permissions": stat_mod.filemode(st.st_mode)[1:],
        "lastModified": datetime.fromtimestamp(st.st_mtime).strftime("%Y-%m-%dT%H:%M:%S"),
        "size": str(st.st_size),
    }


def c_quote(name: str) -> str:
    r"""``ls --quoting-style=c`` in the C locale (what the real server's SSH commands get):
    ``"..."`` with ``\\``, ``\"``, ``\n``-style escapes and every other non-printable
    byte, UTF-8 included, as a three-digit octal escape (``ü`` → ``\303\274``)."""
    named = {0x07: "a", 0x08: "b", 0x09: "t", 0x0A: "n", 0x0B: "v", 0x0C: "f", 0x0D: "r",
             0x22: '"', 0x5C: "\\"}
    out = []
    for b in os.fsencode(name):
        if b in named:
            out.append("\\" + named[b])
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def ls_name(prefix_parts: list[str], name: str) -> str:
    r"""The ``name`` field the real server builds from ``ls -l -R --quoting-style=c`` output.

    Real FirecREST (LsBaseCommand.parse_output): a file's name goes through
    ``shlex.split`` (which undoes ``\\`` and ``\"`` only, leaving ``\303\274`` as text);
    a subdirectory's prefix is the folder header ``"./a/b":`` taken as it is (all escapes kept)."""
    prefix = "".join(c_quote(part)[1:-1] + "/" for part in prefix_parts)
    return prefix + shlex.split(c_quote(name))[0]


def readable(d: Path) -> bool:
    """Judged by the owner's mode bits: the tests may run as root, which reads anything."""
    try:
        mode = d.stat().st_mode
    except OSError:
        return False
    return bool(mode & stat_mod.S_IRUSR) and bool(mode & stat_mod.S_IXUSR)


def output_limit(size: int) -> None:
    if size >= OUTPUT_LIMIT:
        raise tornado.web.HTTPError(413, log_message="Command output exceeded buffer limit.")


def permission_denied(what: str) -> tornado.web.HTTPError:
    # Real FirecREST: "Permission denied" on stderr → 403 (BaseCommandErrorHandling).
    return tornado.web.HTTPError(403, log_message=(
        f"Remote process failed with exit status:2 and error message:{what}: Permission denied"))


_OP_COMMANDS = {
    "ls": "ls -l --quoting-style=c --time-style='+%Y-%m-%dT%H:%M:%S' -- {path}",
    "stat": "stat -c '%f %i %d %h %u %g %s %X %Y %Z' -- {path}",
    "view": "dd if={path} bs=SIZE skip=SKIP count=2",
    "head": "head -- {path}",
    "tail": "tail -- {path}",
    "checksum": "sha256sum -- {path}",
    "download": "base64 --wrap=0 -- {path}",
    "file": "file -b -- {path}",
}


class OpsGetHandler(Base):
    def get(self, system: str, op: str) -> None:
        self.check_system(system)
        raw = self.state.shell_path(_OP_COMMANDS[op], self.get_query_argument("path"))
        p = self.state.path(raw)
        if not p.exists() and not p.is_symlink():
            raise no_such(f"{op}: cannot access '{raw}'")
        getattr(self, f"op_{op}")(raw, p)

    def op_ls(self, raw: str, p: Path) -> None:
        hidden, recursive = self.flag("showHidden"), self.flag("recursive")
        if not p.is_dir():
            self.reply({"output": [file_model(p, shlex.split(c_quote(raw))[0])]})
            return
        out: list[dict[str, Any]] = []
        listed = 0

        def walk(d: Path, parts: list[str]) -> None:
            nonlocal listed
            if not readable(d):
                # Real FirecREST: `ls -R` exits non-zero on any unreadable subdirectory, and
                # "Permission denied" on stderr makes the WHOLE listing a 403.
                raise permission_denied(f"ls: cannot open directory '{d}'")
            for child in sorted(d.iterdir()):
                if child.name.startswith(".") and not hidden:
                    continue
                out.append(file_model(child, ls_name(parts, child.name)))
                listed += 90 + len(c_quote(child.name))  # about one `ls -l` line
                if recursive and child.is_dir() and not child.is_symlink():
                    walk(child, [*parts, child.name])

        walk(p, [])
        output_limit(listed)
        self.reply({"output": out})

    def op_stat(self, raw: str, p: Path) -> None:
        st = p.stat() if self.flag("dereference") else p.lstat()
        self.reply(
            {
                "output": {
                    "mode": st.st_mode,
                    "ino": st.st_ino,
                    "dev": st.st_dev,
                    "nlink": st.st_nlink,
                    "uid": UID,
                    "gid": GID,
                    "size": st.st_size,
                    "atime": int(st.st_atime),
                    "ctime": int(st.st_ctime),
                    "mtime": int(st.st_mtime),
                }
            }
        )

    def _file(self, p: Path) -> bytes:
        if p.is_dir():
            raise tornado.web.HTTPError(400, log_message=f"{p}: Is a directory")
        if not os.access(p, os.R_OK) or not p.stat().st_mode & stat_mod.S_IRUSR:
            raise permission_denied(f"cannot open '{p}' for reading")
        return p.read_bytes()

    def op_view(self, raw: str, p: Path) -> None:
        size = int(self.get_query_argument("size", str(OPS_SIZE_LIMIT)))
        offset = int(self.get_query_argument("offset", "0"))
        if offset < 0:
            raise tornado.web.HTTPError(
                400, log_message="`offset` value must be an integer value equal or greater than 0"
            )
        if size <= 0:
            raise tornado.web.HTTPError(
                400, log_message="`size` value must be an integer value greater than 0"
            )
        if size > OPS_SIZE_LIMIT:
            raise tornado.web.HTTPError(
                400, log_message=f"`size` value must be less than {OPS_SIZE_LIMIT} bytes"
            )
        # Real FirecREST (DdCommand): `dd bs=size skip=offset//size count=2`, the output
        # decoded as UTF-8 (errors="replace"), then `stdout[offset % size:][:size]`: the
        # block start is a byte offset, the rest of the offset and the size count
        # CHARACTERS of the decoded text. Two blocks of output at or above the 5 MiB
        # output limit are a 413.
        self._file(p)
        skip = offset // size
        with open(p, "rb") as f:
            f.seek(skip * size)
            data = f.read(2 * size)
        output_limit(len(data))
        i = offset % size
        self.reply({"output": data.decode("utf-8", errors="replace")[i: i + size]})

    def _bytes_lines(self) -> tuple[int | None, int | None]:
        b, n = self.get_query_argument("bytes", None), self.get_query_argument("lines", None)
        if b and n:
            raise tornado.web.HTTPError(
                400, log_message="Only one of `bytes` or `lines` can be specified."
            )
        return (int(b) if b else None), (int(n) if n else None)

    def op_head(self, raw: str, p: Path) -> None:
        nbytes, nlines = self._bytes_lines()
        data, skip = self._file(p), self.flag("skipTrailing")
        if nbytes is not None:
            out = data[: len(data) - nbytes] if skip else data[:nbytes]
        else:
            lines = data.splitlines(keepends=True)
            n = 10 if nlines is None else nlines
            out = b"".join(lines[: len(lines) - n] if skip else lines[:n])
        output_limit(len(out))
        end = (nbytes if nbytes is not None else (nlines or 10)) * (-1 if skip else 1)
        self.reply({"output": {"content": out.decode("utf-8", errors="replace"),
                               "contentType": "bytes" if nbytes else "lines",
                               "startPosition": 0, "endPosition": end}})

    def op_tail(self, raw: str, p: Path) -> None:
        nbytes, nlines = self._bytes_lines()
        data, skip = self._file(p), self.flag("skipHeading")
        if nbytes is not None:  # tail -c N / tail -c +N (byte semantics)
            out = data[max(nbytes - 1, 0):] if skip else (data[-nbytes:] if nbytes else b"")
        else:
            lines = data.splitlines(keepends=True)
            n = 10 if nlines is None else nlines
            out = b"".join(lines[max(n - 1, 0):] if skip else (lines[-n:] if n else []))
        output_limit(len(out))
        start = (nbytes if nbytes is not None else (nlines or 10)) * (1 if skip else -1)
        self.reply({"output": {"content": out.decode("utf-8", errors="replace"),
                               "contentType": "bytes" if nbytes else "lines",
                               "startPosition": start, "endPosition": -1}})

    def op_checksum(self, raw: str, p: Path) -> None:
        self.reply(
            {
                "output": {
                    "algorithm": "SHA-256",
                    "checksum": hashlib.sha256(self._file(p)).hexdigest(),
                }
            }
        )

    def op_download(self, raw: str, p: Path) -> None:
        data = self._file(p)
        # Real FirecREST: `base64 --wrap=0` through the same 5 MiB output limit (413 above
        # about 3.75 MiB of file), then "File to download is too large." above 5 MiB.
        output_limit(len(base64.b64encode(data)))
        if len(data) > OPS_SIZE_LIMIT:
            raise tornado.web.HTTPError(413, log_message="File to download is too large.")
        self.set_header("Content-Type", "application/octet-stream")
        self.finish(data)

    def op_file(self, raw: str, p: Path) -> None:
        self.reply({"output": "directory" if p.is_dir() else "ASCII text"})


class ChmodHandler(Base):
    def put(self, system: str) -> None:
        self.check_system(system)
        body = self.body()
        mode = str(body.get("mode") or "")
        raw = self.state.shell_path(f"chmod -v '{mode}' -- {{path}}", str(body.get("path") or ""))
        p = self.state.path(raw)
        if not re.fullmatch(r"[0-7]{3,4}", mode):
            raise tornado.web.HTTPError(500, log_message=(
                "Remote process failed with exit status:1 and error message:"
                f"chmod: invalid mode: '{mode}'"))
        if not p.exists():
            raise no_such(f"chmod: cannot access '{raw}'")
        p.chmod(int(mode, 8))
        self.reply({"output": file_model(p, raw)})


class UploadHandler(Base):
    def post(self, system: str) -> None:
        self.check_system(system)
        files = self.request.files.get("file")
        if not files:
            raise tornado.web.HTTPError(422, log_message="field 'file' is required")
        f = files[0]
        # Real FirecREST: `base64 -d > '{path}/{file.filename}'`, the content on stdin.
        directory = self.state.path(self.state.shell_path(
            "base64 -d > {path}", f"{self.get_query_argument('path')}/{f['filename']}")).parent
        if len(f["body"]) > OPS_SIZE_LIMIT:
            raise tornado.web.HTTPError(413, log_message="Uploaded file is too large.")
        if not directory.is_dir():
            raise no_such(str(directory))
        target = self.state.path(str(directory / f["filename"]))
        target.write_bytes(f["body"])
        self.no_content()


class MkdirHandler(Base):
    def post(self, system: str) -> None:
        self.check_system(system)
        body = self.body()
        parent = bool(body.get("parent"))
        raw = self.state.shell_path(f"mkdir {'-p ' if parent else ''}-- {{path}}",
                                    str(pick(body, "sourcePath", "source_path", "path") or ""))
        p = self.state.path(raw)
        try:
            p.mkdir(parents=parent, exist_ok=parent)
        except FileNotFoundError:
            raise no_such(f"mkdir: cannot create directory '{raw}'") from None
        except FileExistsError:
            raise tornado.web.HTTPError(
                400, log_message=f"mkdir: cannot create directory '{raw}': File exists"
            ) from None
        self.reply({"output": file_model(p, raw)}, 201)


class ExtractHandler(Base):
    def post(self, system: str) -> None:
        self.check_system(system)
        body = self.body()
        src = self.state.path(self.state.shell_path(
            "tar -xzf {path}", str(pick(body, "sourcePath", "source_path", "path") or "")))
        dst = self.state.path(self.state.shell_path(
            "tar -C {path}", str(pick(body, "targetPath", "target_path") or "")))
        compression = body.get("compression") or "gzip"
        if not src.is_file():
            raise no_such(str(src))
        if not dst.is_dir():
            raise no_such(str(dst))
        mode = {"gzip": "r:gz", "bzip2": "r:bz2", "xz": "r:xz", "none": "r:"}.get(compression)
        if mode is None:
            raise tornado.web.HTTPError(422, log_message=f"unknown compression {compression!r}")
        with tarfile.open(src, mode) as tar:
            tar.extractall(dst, filter="data")  # as tar does: relative paths only
        self.no_content()


class RmHandler(Base):
    def delete(self, system: str) -> None:
        self.check_system(system)
        raw = self.state.shell_path("rm -R -- {path}", self.get_query_argument("path"))
        p = self.state.path(raw)
        if p.is_dir() and not p.is_symlink():
            import shutil

            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
        else:
            raise no_such(str(p))
        self.no_content()


# ---------------------------------------------------------------- staged transfers (S3-like)


def transfer_job(state: FirecrestState, name: str) -> Job:
    job_id = state.new_id()
    logs = state.home / USER / ".f7t"
    logs.mkdir(parents=True, exist_ok=True)
    job = Job(
        job_id, name, str(logs), None, partition="xfer", transfer=True, state_override="PENDING"
    )
    with state.lock:
        state.jobs[job_id] = job
    return job


def transfer_info(state: FirecrestState, job: Job) -> dict[str, Any]:
    logs = Path(job.working_dir)
    return {"jobId": job.job_id, "system": state.system, "workingDirectory": job.working_dir,
            "logs": {"outputLog": str(logs / f"transfer-{job.job_id}.out"),
                     "errorLog": str(logs / f"transfer-{job.job_id}.err")}}


def finish_transfer(job: Job, ok: bool, message: str) -> None:
    logs = Path(job.working_dir)
    (logs / f"transfer-{job.job_id}.out").write_text(message + "\n" if ok else "")
    (logs / f"transfer-{job.job_id}.err").write_text("" if ok else message + "\n")
    job.state_override, job.exit_override = ("COMPLETED", 0) if ok else ("FAILED", 1)


class TransferUploadHandler(Base):
    def post(self, system: str) -> None:
        self.check_system(system)
        body = self.body()
        target = pick(body, "sourcePath", "source_path", "path")
        directives = pick(body, "transferDirectives", "transfer_directives") or {}
        method = pick(directives, "transferMethod", "transfer_method")
        size = pick(directives, "fileSize", "file_size")
        if method != "s3":
            raise tornado.web.HTTPError(
                400, log_message=f"transfer method {method!r} is not available"
            )
        if size is None:
            raise tornado.web.HTTPError(422, log_message="transferDirectives.fileSize is required")
        dest = self.state.path(target)
        if not dest.parent.is_dir():
            raise no_such(str(dest.parent))
        size = int(size)
        staged = Staged(uuid.uuid4().hex, size, target=str(dest))
        staged.job = transfer_job(self.state, "IngressFileTransfer")
        self.state.staged[staged.id] = staged
        part = self.state.max_part_size
        n = max(1, math.ceil(size / part))
        base = f"{self.state.base_url}/s3/{staged.id}"
        self.reply({
            "transferJob": transfer_info(self.state, staged.job),
            "transferDirectives": {
                "transferMethod": "s3",
                "partsUploadUrls": [f"{base}/part/{i + 1}?X-Amz-Signature=test" for i in range(n)],
                "completeUploadUrl": f"{base}/complete?X-Amz-Signature=test",
                "maxPartSize": part,
            },
        }, 201)


class TransferDownloadHandler(Base):
    def post(self, system: str) -> None:
        self.check_system(system)
        body = self.body()
        src = self.state.path(pick(body, "sourcePath", "source_path", "path"))
        directives = pick(body, "transferDirectives", "transfer_directives") or {}
        if pick(directives, "transferMethod", "transfer_method") not in ("s3", None):
            raise tornado.web.HTTPError(400, log_message="only s3 transfers are available")
        if not src.is_file():
            raise no_such(str(src))
        data = src.read_bytes()
        staged = Staged(uuid.uuid4().hex, len(data), data=data)
        staged.job = transfer_job(self.state, "OutgressFileTransfer")
        self.state.staged[staged.id] = staged
        finish_transfer(staged.job, True, f"File was successfully staged: {src}")
        self.reply(
            {
                "transferJob": transfer_info(self.state, staged.job),
                "transferDirectives": {
                    "transferMethod": "s3",
                    "downloadUrl": (
                        f"{self.state.base_url}/s3/{staged.id}/object?X-Amz-Signature=test"
                    ),
                },
            },
            201,
        )


class S3Handler(FaultyHandler):
    """The staging area: presigned URLs, so no bearer token (like S3)."""

    state: FirecrestState

    def error_body(self, status: int, message: str) -> Any:
        return {"message": message}

    def staged(self, sid: str) -> Staged:
        s = self.state.staged.get(sid)
        if s is None:
            raise tornado.web.HTTPError(404, log_message="NoSuchUpload")
        return s

    def put(self, sid: str, part: str) -> None:
        s = self.staged(sid)
        s.parts[int(part)] = self.request.body
        self.set_header("ETag", '"' + hashlib.md5(self.request.body).hexdigest() + '"')  # noqa: S324 - S3's ETag
        self.finish()

    def post(self, sid: str) -> None:
        s = self.staged(sid)
        listed = [int(n) for n in re.findall(rb"<PartNumber>(\d+)</PartNumber>", self.request.body)]
        if sorted(listed) != sorted(s.parts):
            raise tornado.web.HTTPError(400, log_message="InvalidPart")
        data = b"".join(s.parts[n] for n in sorted(listed))
        assert s.job is not None and s.target is not None
        if len(data) != s.size:
            finish_transfer(s.job, False, f"size mismatch: {len(data)} != {s.size}")
        else:
            Path(s.target).write_bytes(data)
            finish_transfer(s.job, True, f"File was successfully uploaded to {s.target}")
        self.finish()

    def get(self, sid: str) -> None:
        s = self.staged(sid)
        if s.data is None:
            raise tornado.web.HTTPError(404, log_message="NoSuchKey")
        self.set_header("Content-Type", "application/octet-stream")
        self.finish(s.data)


class OIDCHandler(TokenHandler):
    pass


def make_app(state: FirecrestState) -> tornado.web.Application:
    a = {"state": state}
    sysp = r"([^/]+)"
    return tornado.web.Application(
        [
            (r"/auth/token", OIDCHandler, a),
            (r"/status/systems", SystemsHandler, a),
            (rf"/status/{sysp}/userinfo", UserInfoHandler, a),
            (rf"/compute/{sysp}/jobs", JobsHandler, a),
            (rf"/compute/{sysp}/jobs/([^/]+)", JobHandler, a),  # the pattern: JobHandler
            (
                rf"/filesystem/{sysp}/ops/(ls|stat|view|head|tail|checksum|download|file)",
                OpsGetHandler,
                a,
            ),
            (rf"/filesystem/{sysp}/ops/upload", UploadHandler, a),
            (rf"/filesystem/{sysp}/ops/mkdir", MkdirHandler, a),
            (rf"/filesystem/{sysp}/ops/extract", ExtractHandler, a),
            (rf"/filesystem/{sysp}/ops/rm", RmHandler, a),
            (rf"/filesystem/{sysp}/ops/chmod", ChmodHandler, a),
            (rf"/filesystem/{sysp}/transfer/upload", TransferUploadHandler, a),
            (rf"/filesystem/{sysp}/transfer/download", TransferDownloadHandler, a),
            (r"/s3/([0-9a-f]+)/part/(\d+)", S3Handler, a),
            (r"/s3/([0-9a-f]+)/complete", S3Handler, a),
            (r"/s3/([0-9a-f]+)/object", S3Handler, a),
        ]
    )


class FirecrestServer:
    """``with FirecrestServer(tmp_path, clients={"id": "secret"}) as fc: fc.url ...``"""

    def __init__(self, root: Path, **kwargs: Any):
        self.state = FirecrestState(root, **kwargs)
        self._thread = ServerThread(lambda: make_app(self.state))

    def start(self) -> FirecrestServer:
        self._thread.start()
        self.state.base_url = self._thread.url
        return self

    @property
    def url(self) -> str:
        return self._thread.url

    @property
    def token_url(self) -> str:
        return f"{self._thread.url}/auth/token"

    def stop(self) -> None:
        self.state.kill_all()
        self._thread.stop()

    def __enter__(self) -> FirecrestServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _tar_of(files: dict[str, bytes]) -> bytes:  # handy in tests
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
