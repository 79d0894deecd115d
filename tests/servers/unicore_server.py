"""A protocol-faithful UNICORE/X (10.x core REST API) test server, for the calls pyunicore and
our backend make.

As published (core API + components, plus the action endpoints the files omit):
``GET {base}/`` server/client properties with ``_links`` (role ``anonymous`` without
credentials, 401 with wrong ones); ``/jobs`` list (``tags`` filter, ``offset``/``num``) and
submit (201 + ``Location``); ``/jobs/{id}`` properties (``fields`` filter), ``DELETE``;
``POST /jobs/{id}/actions/{start|abort|restart}`` with ``{}``; ``/jobs/{id}/details`` (the
batch system's view, Slurm-style), ``/submitted`` (the job description as stored); the job's
working directory as storage ``/storages/{id}-uspace`` with ``files/{path}``. Errors are
``{"errorMessage": ...}``. Basic (username/password) and bearer-token authentication.

Where the published spec is silent, behaviour follows the UNICORE/X and TSI sources
(UNICORE-EU/unicorex ``uas-core/.../rest/Files.java``, ``Jobs.java``,
``xnjs/.../tsi/remote/{Execution,TSIMessages}.java``, ``xnjs/.../JobProcessor.java``,
UNICORE-EU/tsi ``lib/BSSCommon.py``, ``lib/Utils.py``, ``slurm/BSS.py``); each point is
quoted at the code that imitates it:

* ranged reads answer 206 with no ``Content-Range`` (the size is in the file's JSON
  properties); a directory asked for as ``application/octet-stream`` is 406;
* directory listings: the top level at most 10,000 entries, ``offset``/``num`` ignored;
  other directories ``offset``/``num`` (default 50,000), with a ``next`` link always;
* ``Environment`` becomes ``KEY="value"; export KEY`` lines of the generated job script,
  after the TSI replaced ``$HOME``/``$USER``/``$LOGNAME`` in the whole script text;
* the exit code comes from ``UNICORE_SCRIPT_EXIT_CODE``, written by the generated script
  after the executable; missing → "Job did not complete normally on BSS…", which is what a
  wall-time kill (SIGTERM to every process of the job) produces; the batch system's details
  (``JobState`` TIMEOUT) go into the job log then and answer ``/details`` until the batch
  system forgets the job;
* ``Resources.Runtime`` (seconds) is floored to whole minutes (minimum 1), as the Slurm TSI
  passes ``--time`` in minutes.

Storages and stage-in, as UNICORE/X does them (``Storages.java``, ``SMSBaseImpl.java``,
``Files.java``, xnjs ``JobProcessor.java``, ``io/impl/{DefaultTransferCreator,FileCopy,Link}.java``,
``tsi/remote/RemoteTSI.java``; use ``ServicesBase``/``RESTRendererBase``):

* ``GET /storages`` lists the user's storages (job directories only with ``filter=all``);
  ``/storages/HOME`` is the user's home, kept across jobs, with its absolute ``mountPoint``
  (ending in ``/``) and the ``action:copy``/``action:rename`` links;
* ``POST /storages/{id}/actions/{copy|rename}`` with ``{"from", "to"}`` (paths within that
  storage): the TSI's ``cp``/``mv -f``; answered 204 without body; a missing parameter is
  400; a failure of the command (e.g. the source does not exist, which is what a rename sent
  again after its answer was lost meets) is 500 ``"Error handling action: 'rename': …"``;
* a file or directory that does not exist is 404 WITHOUT a JSON body (``throw new
  WebApplicationException(404)`` / ``Response.status(404).build()``);
* ``Imports`` of a job description are staged in right after the job is created, before
  READY (``JobProcessor.handleCreated``: status STAGINGIN): ``file:///abs/path`` is a copy on
  the cluster (``FileCopy``: ``cp`` into ``<workdir>/<To>``, parent directories created, the
  mode from the umask, not the source's), ``link:/abs/path`` a symbolic link, ``inline://``
  the ``Data``; a failed import ends the job FAILED "Staging in failed. Reason: …". A
  ``start`` during stage-in is remembered (``AUTO_SUBMIT``): the job goes on once staged.

Jobs EXECUTE for real as local processes in the job's working directory: READY (waiting
for the client's stage-in and ``start``) → STAGINGIN → QUEUED → RUNNING → STAGINGOUT →
SUCCESSFUL / FAILED. Switches for tests: ``state.faults`` (500, 429 + Retry-After, 401,
dropped connections, hangs; per method and path, so per step: create ``POST /jobs$``,
upload ``PUT /files/``, start ``/actions/start``, poll ``GET /jobs/{id}``, read
``GET /files/``, cancel ``/actions/abort``), ``state.seconds_per_minute`` (the batch
system's clock for wall-time limits), ``state.wrapper_survives_term`` (the other wall-time
outcome: "User application exited with non-zero exit code"), ``state.details_ttl`` (how
long the batch system still knows an ended job, Slurm's MinJobAge).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import tornado.web

from ._common import CountingState, Faults, FaultyHandler, LocalJob, ServerThread, job_base_env

SITE = "TEST-SITE"
# SMSBaseImpl.MAX_LS_RESULTS = 10000: "the maximum number of results to return in a single
# getListing() operation"; Files.list() for the storage root: `return list("/", 0,
# SMSBaseImpl.MAX_LS_RESULTS);` (offset and num are ignored there).
MAX_LS_RESULTS = 10_000
# Files.list(path, ...): `@QueryParam("num") @DefaultValue("50000") int num`.
DEFAULT_LS_NUM = 50_000
EXIT_CODE_FILE = "UNICORE_SCRIPT_EXIT_CODE"  # ExecutionContext.getExitCodeFileName()
NOT_COMPLETED = (
    "Job did not complete normally on BSS, please check standard error file and job log "
    "for more information."
)


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S%z") if ts else None


def runtime_seconds(value: Any) -> float | None:
    if value in (None, ""):
        return None
    text = str(value).strip().lower()
    m = re.fullmatch(r"([0-9.]+)\s*(s|sec|min|m|h|d)?", text)
    if not m:
        return None
    mult = {None: 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    return float(m.group(1)) * mult


def slurm_minutes(seconds: float) -> int:
    # tsi slurm/BSS.py: "wall time. Convert to minutes, as accepted by SLURM (minimum 1 min)"
    #   time_in_minutes = max(int(req_time / 60), 1)
    return max(int(seconds / 60), 1)


def _truthy(v: Any) -> bool:
    return str(v).lower() == "true"


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class UJob:
    id: str
    description: dict[str, Any]
    workdir: Path
    owner: str
    status: str = "READY"
    status_message: str = ""
    exit_code: int | None = None
    submitted: float = field(default_factory=time.time)
    run: LocalJob | None = None
    log: list[str] = field(default_factory=list)
    aborted: bool = False
    tags: list[str] = field(default_factory=list)
    bss_id: str | None = None
    bss_state: str | None = None  # Slurm's JobState once the job ran
    bss_ended: float | None = None
    limit_minutes: int | None = None
    autostart: bool = False  # `start` arrived during stage-in (AUTO_SUBMIT)


class UnicoreState(CountingState):
    def __init__(
        self, root: Path, users: dict[str, str] | None = None, tokens: tuple[str, ...] = ()
    ):
        super().__init__()
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.users = dict(users or {})
        self.tokens = set(tokens)
        self.faults = Faults()
        # Requests carried out whose answer is lost on the way back (the connection drops
        # after the work): `lost_answers.add("drop", path=..., method=...)`.
        self.lost_answers = Faults()
        self.jobs: dict[str, UJob] = {}
        self.lock = threading.Lock()
        self.base = ""  # {url}/{SITE}/rest/core, set at start
        self.queue_delay = 0.0
        self.submitted_descriptions: list[dict[str, Any]] = []
        self.seconds_per_minute = 60.0  # the batch system's minute (tests may shorten it)
        self.kill_wait = 5.0  # Slurm's KillWait: SIGTERM, then SIGKILL after this long
        self.wrapper_survives_term = False
        self.details_ttl = 300.0  # Slurm's MinJobAge: scontrol forgets an ended job after it
        self.ranges_past_end = 0  # ranged reads starting beyond the end (see send_bytes)
        self.max_ls_results = MAX_LS_RESULTS
        self.default_ls_num = DEFAULT_LS_NUM
        self._next_bss_id = 4000
        self.stage_in_delay = 0.0  # seconds per import (a TSI command each on a real server)
        self.home_storage = True  # False: a site without the HOME storage (404)
        self.uploads: list[tuple[str, str]] = []  # (storage id, path) of each file upload

    def home(self, user: str) -> Path:
        path = self.root / "home" / user
        path.mkdir(parents=True, exist_ok=True)
        return path

    def bss_id(self) -> str:
        with self.lock:
            self._next_bss_id += 1
            return str(self._next_bss_id)

    def route_name(self, path: str) -> str:
        path = re.sub(rf"^/{SITE}/rest/core", "", path) or "/"
        path = re.sub(r"/jobs/[0-9a-f-]{36}", "/jobs/{id}", path)
        path = re.sub(r"/storages/HOME/files/.*", "/storages/HOME/files/{path}", path)
        path = re.sub(
            r"/storages/[0-9a-f-]{36}-uspace/files/.*", "/storages/{id}/files/{path}", path
        )
        return re.sub(r"/storages/[0-9a-f-]{36}-uspace", "/storages/{id}", path)

    def kill_all(self) -> None:
        for job in self.jobs.values():
            if job.run and not job.run.done:
                job.run.kill()


class Base(FaultyHandler):
    state: UnicoreState

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"errorMessage": message, "status": status}

    def prepare(self) -> Awaitable[None] | None:
        hang = super().prepare()
        if hang is not None or self._finished:
            return hang
        self.user = self.authenticate()
        if self.user is None and not getattr(self, "anonymous_ok", False):
            self.fail(
                401 if self.request.headers.get("Authorization") else 403,
                "Authentication failed"
                if self.request.headers.get("Authorization")
                else "Access denied",
            )
        return None

    def authenticate(self) -> str | None:
        auth = self.request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return None
            return user if self.state.users.get(user) == pw and pw else None
        if auth.startswith("Bearer "):
            return "tokenuser" if auth[7:] in self.state.tokens else None
        return None

    def finish(self, chunk: Any = None) -> Any:
        if (
            not self._finished
            and self.get_status() < 400
            and self.state.lost_answers.take(self.request.method, self.request.path)
        ):
            self.request.connection.detach().close()  # the work is done, the answer never arrives
            self._finished = True
            return None
        return super().finish(chunk)

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def link(self, path: str, description: str = "") -> dict[str, str]:
        return {"href": f"{self.state.base}{path}", "description": description}

    def job(self, job_id: str) -> UJob:
        job = self.state.jobs.get(job_id)
        if job is None or job.owner != self.user:
            raise tornado.web.HTTPError(404, log_message=f"Job {job_id} not found")
        return job


class RootHandler(Base):
    anonymous_ok = True

    def prepare(self) -> Awaitable[None] | None:
        hang = FaultyHandler.prepare(self)
        if hang is not None or self._finished:
            return hang
        self.user = self.authenticate()
        if self.user is None and self.request.headers.get("Authorization"):
            self.fail(401, "Authentication failed")
        return None

    def get(self) -> None:
        role = "user" if self.user else "anonymous"
        self.reply(
            {
                "client": {
                    "dn": f"UID={self.user or 'anonymous'}",
                    "role": {"selected": role, "availableRoles": [role]},
                    "xlogin": {"UID": self.user, "availableUIDs": [self.user] if self.user else []},
                    "authenticationMethod": "PASSWORD" if self.user else "NONE",
                },
                "server": {"version": "10.2.0", "externalConnector": "ok"},
                "_links": {
                    k: self.link(f"/{k}")
                    for k in ("jobs", "storages", "factories", "transfers", "sites")
                },
            }
        )


class JobsHandler(Base):
    def get(self) -> None:
        tags = [t for t in self.get_query_argument("tags", "").split(",") if t]
        offset = int(self.get_query_argument("offset", "0"))
        num = int(self.get_query_argument("num", "200"))
        with self.state.lock:
            jobs = [
                j
                for j in self.state.jobs.values()
                if j.owner == self.user and all(t in j.tags for t in tags)
            ]
        jobs.sort(key=lambda j: j.submitted)
        urls = [f"{self.state.base}/jobs/{j.id}" for j in jobs[offset : offset + num]]
        self.reply({"jobs": urls, "_links": {"self": self.link("/jobs")}})

    def post(self) -> None:
        try:
            desc = json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(
                400, log_message="Job description is not valid JSON"
            ) from None
        if not isinstance(desc, dict) or not desc.get("Executable"):
            raise tornado.web.HTTPError(
                400, log_message="Job description must specify 'Executable'"
            )
        self.state.submitted_descriptions.append(desc)
        job_id = str(uuid.uuid4())
        workdir = self.state.root / "jobs" / job_id
        workdir.mkdir(parents=True)
        job = UJob(
            job_id, desc, workdir, self.user or "", tags=[str(t) for t in desc.get("Tags") or []]
        )
        job.log.append(f"{_iso(time.time())}: Created with ID {job_id}")
        with self.state.lock:
            self.state.jobs[job_id] = job
        if desc.get("Imports"):
            job.status = "STAGINGIN"
            threading.Thread(target=stage_in, args=(self.state, job), daemon=True).start()
        elif not _truthy(desc.get("haveClientStageIn")):
            launch(self.state, job)
        self.set_header("Location", f"{self.state.base}/jobs/{job_id}")
        self.set_status(201)
        self.finish()


def _import_one(state: UnicoreState, job: UJob, spec: dict[str, Any]) -> None:
    """One entry of ``Imports`` (DefaultTransferCreator.createFileImport by the URI scheme)."""
    source, to = str(spec.get("From") or ""), str(spec.get("To") or "")
    target = Path(os.path.normpath(job.workdir / to))
    if not to or job.workdir not in target.parents:
        raise OSError(f"Invalid target filename {to}")
    scheme, _, rest = source.partition(":")
    if scheme == "inline":
        target.parent.mkdir(parents=True, exist_ok=True)
        data = spec.get("Data")
        target.write_text("\n".join(data) if isinstance(data, list) else str(data or ""))
        return
    # FileCopy uses `source.getRawPath()` (not URL-decoded); Link the scheme-specific part.
    path = rest[2:] if scheme == "file" and rest.startswith("//") else rest
    if scheme not in ("file", "link") or not path.startswith("/"):
        raise OSError(f"Unsupported protocol or URL: {source}")
    if state.root not in Path(os.path.normpath(path)).parents:  # the test machine's files only
        raise OSError(f"Permission denied: {path}")
    # FileCopy.createParentDirectories: `tsi.mkdir(parent)`; then tsi.cp(s, t) (a new file:
    # the mode from the umask, not the source's) or tsi.link (`ln -s`).
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if scheme == "file":
            shutil.copyfile(path, target)
        else:
            target.symlink_to(path)
    except OSError as exc:
        what = "copy" if scheme == "file" else "link"
        raise OSError(f"Could not {what} {path}->{target}: {exc.strerror}: {path}") from None


def stage_in(state: UnicoreState, job: UJob) -> None:
    """JobProcessor.handleCreated → handleStagingIn: the imports, then READY (or on at once when
    the client already said start, or never will: no haveClientStageIn)."""
    try:
        for spec in job.description.get("Imports") or []:
            time.sleep(state.stage_in_delay)
            _import_one(state, job, spec if isinstance(spec, dict) else {})
    except OSError as exc:
        # `setToDoneAndFailed("Staging in failed. Reason: "+res.getErrorMessage())`
        job.status, job.status_message = "FAILED", f"Staging in failed. Reason: {exc}"
        job.log.append(f"{_iso(time.time())}: {job.status_message}")
        return
    job.log.append(f"{_iso(time.time())}: Status set to READY.")
    if job.autostart or not _truthy(job.description.get("haveClientStageIn")):
        launch(state, job)
    else:
        job.status = "READY"


def tsi_script(job: UJob, home: Path, body: list[str]) -> str:
    """The script UNICORE/X sends the TSI, as the TSI writes it to ``UNICORE_Job_<id>``.

    TSIMessages.appendEnvironment: "Appends the environment to the commands argument in the
    'key="value"; export key' format" — `f.format("%s=\"%s\"; export %s\n", key,
    env.getValue(), key)`: values are NOT escaped, so `"`, `$`, backticks and newlines in them
    are shell code. Then `PATH=$PATH:. ; export PATH`, `UC_WORKING_DIRECTORY="…"`,
    `cd ${UC_WORKING_DIRECTORY}`. And before writing the file the TSI runs
    Utils.expand_variables on the whole message: "Expands $HOME and $USER into the values
    from the current environment" (plain text replacement, $LOGNAME too)."""
    lines = []
    environment = job.description.get("Environment") or {}
    if isinstance(environment, list):
        environment = dict(e.split("=", 1) for e in environment if "=" in e)
    for key, value in {**environment, **(job.description.get("Parameters") or {})}.items():
        lines.append(f'{key}="{value}"; export {key}')
    lines.append("PATH=$PATH:. ; export PATH")
    lines.append(f'UC_WORKING_DIRECTORY="{job.workdir}"; export UC_WORKING_DIRECTORY')
    lines.append(f'UC_OUTPUT_DIRECTORY="{job.workdir}"; export UC_OUTPUT_DIRECTORY')
    lines.append("cd ${UC_WORKING_DIRECTORY}")
    text = "#!/bin/bash\n" + "\n".join(lines + body) + "\n"
    return (
        text.replace("$HOME", str(home)).replace("$LOGNAME", job.owner).replace("$USER", job.owner)
    )


def write_tsi_script(job: UJob, text: str) -> Path:
    # tsi lib/BSSCommon.py: `userjob_file_name = "UNICORE_Job_%s" % submit_id`, written into
    # the job's working directory (USPACE_DIR) and run from there.
    path = job.workdir / f"UNICORE_Job_{secrets.token_hex(4)}"
    path.write_text(text)
    path.chmod(0o770)
    return path


def launch(state: UnicoreState, job: UJob) -> None:
    """After the client's start: stage-in, user pre-command on the login node, then the job."""
    job.status = "STAGINGIN"
    desc = job.description
    home = state.home(job.owner)
    env = job_base_env(home, job.owner)  # the login environment; Environment goes via the script
    stdout = job.workdir / str(desc.get("Stdout") or "stdout")
    stderr = job.workdir / str(desc.get("Stderr") or "stderr")

    pre, post = desc.get("User precommand"), desc.get("User postcommand")
    # JSONParser: `app.setUserPreCommandOnLoginNode(
    #     job.optBoolean("RunUserPrecommandOnLoginNode", true))`
    pre_login = pre and _truthy(desc.get("RunUserPrecommandOnLoginNode", "true"))
    post_login = post and _truthy(desc.get("RunUserPostcommandOnLoginNode", "true"))
    body: list[str] = []
    if pre and not pre_login:
        body += ["# user defined pre-command", str(pre)]
    # TSIMessages.insertExecutable: executable + " " + each argument (unquoted), then
    # `echo $? > ${UC_OUTPUT_DIRECTORY}/<exit code file>`.
    body.append(" ".join([str(desc["Executable"]), *[str(a) for a in desc.get("Arguments") or []]]))
    body.append(f"echo $? > ${{UC_OUTPUT_DIRECTORY}}/{EXIT_CODE_FILE}")
    if post and not post_login:
        body += ["# user defined post-command", str(post)]
    if state.wrapper_survives_term:
        # A wrapper that outlives the batch system's SIGTERM (a handler, not an ignored signal,
        # so the job's own processes can still trap it): the exit code file is then written.
        body.insert(0, "trap 'true' TERM")
    script = write_tsi_script(job, tsi_script(job, home, body))
    res_spec = desc.get("Resources") or {}
    runtime = runtime_seconds(res_spec.get("Runtime"))
    if runtime is not None:
        job.limit_minutes = slurm_minutes(runtime)

    def login_command(command: str) -> int:
        # JobProcessor.setupPreCommand/setupPostCommand: a sub-action in the working directory
        # with `cmd.env.putAll(action.getExecutionContext().getEnvironment())`.
        text = tsi_script(job, home, [command])
        return subprocess.run(
            ["bash", "-c", text],
            cwd=job.workdir,
            env=env,
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ).returncode

    def on_end(run: LocalJob) -> None:
        job.status = "STAGINGOUT"
        if run.timed_out:
            # The batch system signals every process of the job and removes it once none is
            # left (or after KillWait, with SIGKILL).
            run.reap_group(state.kill_wait)
        job.bss_state = (
            "TIMEOUT"
            if run.timed_out
            else "CANCELLED"
            if job.aborted
            else "COMPLETED"
            if run.exit_code == 0
            else "FAILED"
        )
        job.bss_ended = time.time()
        if post_login:
            login_command(str(post))
        exit_file = job.workdir / EXIT_CODE_FILE
        code = None
        try:
            code = int(exit_file.read_text().strip())
        except (OSError, ValueError):
            pass
        job.exit_code = code
        if job.aborted:
            # DefaultProcessor: `new ActionResult(ActionResult.USER_ABORTED, "Job aborted.")`
            job.status, job.status_message = "FAILED", "Job aborted."
        elif code is None:
            # Execution.handleCompleted, no exit code after the grace period:
            #   job.addLogTrace("Detailed job information from batch system: "+details);
            #   job.fail("Job did not complete normally on BSS, please check standard error
            #             file and job log for more information.");
            job.log.append(
                f"{_iso(time.time())}: Detailed job information from batch system: "
                + json.dumps(bss_details(state, job))
            )
            job.status, job.status_message = "FAILED", NOT_COMPLETED
        elif code and not _truthy(desc.get("IgnoreNonZeroExitCode")):
            # JobProcessor.checkMainExecutionSuccess
            job.status = "FAILED"
            job.status_message = (
                f"User application exited with non-zero exit code: <{code}>. More "
                "information might be available in the job's working directory "
                f"'{job.workdir}'"
            )
        else:
            job.status, job.status_message = "SUCCESSFUL", ""
        job.log.append(f"{_iso(time.time())}: Job {job.status}")

    def start() -> None:
        if pre_login:
            rc = login_command(str(pre))
            if rc != 0:
                job.status = "FAILED"
                job.status_message = f"Pre-command(s) failed: [Exit code {rc}]"
                return
        limit = job.limit_minutes * state.seconds_per_minute if job.limit_minutes else None
        job.bss_id = state.bss_id()
        job.run = LocalJob(
            argv=["bash", str(script)],
            cwd=job.workdir,
            env=env,
            stdout=stdout,
            stderr=stderr,
            time_limit=limit,
            append=True,
            kill_grace=state.kill_wait,
            start_delay=state.queue_delay,
            on_end=on_end,
        )
        job.status = "QUEUED"
        job.run.start()

    threading.Thread(target=start, daemon=True).start()


def bss_details(state: UnicoreState, job: UJob) -> dict[str, Any]:
    """What the Slurm TSI answers for "get job details": `scontrol show jobid <id>` split into
    key=value pairs (lib/BSSCommon.py parse_job_details)."""
    run = job.run
    elapsed = ((run.ended or time.time()) - run.started) if run and run.started else 0
    sig = run.signal if run and run.signal else 0
    code = run.exit_code if run and run.exit_code is not None and not sig else 0
    state_name = job.bss_state or ("RUNNING" if run and run.state == "RUNNING" else "PENDING")
    return {
        "JobId": job.bss_id,
        "JobName": str(job.description.get("Name") or "UNICORE_Job"),
        "JobState": state_name,
        "Reason": "TimeLimit" if state_name == "TIMEOUT" else "None",
        "ExitCode": f"{code}:{sig}",
        "RunTime": _clock(elapsed),
        "TimeLimit": _clock(job.limit_minutes * 60) if job.limit_minutes else "UNLIMITED",
        "Partition": str((job.description.get("Resources") or {}).get("Queue") or "batch"),
        "WorkDir": str(job.workdir),
    }


class JobHandler(Base):
    def properties(self, job: UJob) -> dict[str, Any]:
        if job.run is not None and job.run.state == "RUNNING" and job.status == "QUEUED":
            job.status = "RUNNING"
        elif job.run is not None and job.run.state == "PENDING" and job.status not in ("FAILED",):
            job.status = "QUEUED"
        jid = job.id
        res = job.description.get("Resources") or {}
        props: dict[str, Any] = {
            "status": job.status,
            "statusMessage": job.status_message,
            "submissionTime": _iso(job.submitted),
            "jobType": str(job.description.get("Job type") or "BATCH").upper(),
            "name": job.description.get("Name") or "UNICORE_Job",
            "batchSystemID": job.bss_id or "N/A",
            "queue": res.get("Queue") or "batch",
            "log": list(job.log),
            "owner": job.owner,
            "tags": job.tags,
            "acl": [],
            "consumedTime": {"total": "0"},
            "_links": {
                "self": self.link(f"/jobs/{jid}"),
                "action:start": self.link(f"/jobs/{jid}/actions/start"),
                "action:abort": self.link(f"/jobs/{jid}/actions/abort"),
                "action:restart": self.link(f"/jobs/{jid}/actions/restart"),
                "workingDirectory": self.link(f"/storages/{jid}-uspace", "Working directory"),
                "details": self.link(f"/jobs/{jid}/details"),
                "submitted": self.link(f"/jobs/{jid}/submitted"),
                "parentTSS": self.link(f"/sites/{SITE}"),
            },
        }
        # Jobs.renderStatus: `if(exitCode!=null){ o.put("exitCode", String.valueOf(...)); }`
        if job.exit_code is not None:
            props["exitCode"] = str(job.exit_code)
        return props

    def get(self, job_id: str, sub: str | None = None) -> None:
        job = self.job(job_id)
        if sub == "details":
            # Jobs.details → Execution.getBSSJobDetails: asks the TSI (scontrol) every time; once
            # the batch system has forgotten the job that fails ("Could not get job details").
            if job.bss_id is None:
                self.reply({"rawDetailsData": "N/A"})
            elif job.bss_ended is not None and time.time() - job.bss_ended > self.state.details_ttl:
                self.fail(
                    500,
                    "Could not get job details: slurm_load_jobs error: Invalid job id specified",
                )
            else:
                self.reply(bss_details(self.state, job))
            return
        if sub == "submitted":
            self.reply(job.description)
            return
        props = self.properties(job)
        fields = [f for f in self.get_query_argument("fields", "").split(",") if f]
        if fields:
            props = {k: v for k, v in props.items() if k in fields}
        self.reply(props)

    def delete(self, job_id: str, sub: str | None = None) -> None:
        job = self.job(job_id)
        if job.run and not job.run.done:
            job.aborted = True
            job.run.cancel()
        with self.state.lock:
            self.state.jobs.pop(job_id, None)
        shutil.rmtree(job.workdir, ignore_errors=True)
        self.set_status(204)
        self.finish()


class ActionHandler(Base):
    def post(self, job_id: str, action: str) -> None:
        job = self.job(job_id)
        try:
            json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(400, log_message="action body must be JSON") from None
        if action == "start":
            if job.status == "READY":
                launch(self.state, job)
            elif job.status == "STAGINGIN":
                job.autostart = True
        elif action == "abort":
            job.aborted = True
            if job.run and not job.run.done:
                job.run.cancel()
            elif job.status in ("READY", "STAGINGIN", "QUEUED"):
                job.status, job.status_message = "FAILED", "Job aborted."
        elif action == "restart":
            raise tornado.web.HTTPError(
                400, log_message="restart is not supported by this test server"
            )
        else:
            raise tornado.web.HTTPError(404, log_message=f"no action {action}")
        self.reply({})


class StoragesHandler(Base):
    def get(self) -> None:
        # Storages.createFilter: without filter=all, job directories ("-uspace") are left out.
        sids = ["HOME"] if self.state.home_storage else []
        if self.get_query_argument("filter", "") == "all":
            with self.state.lock:
                sids += [f"{j.id}-uspace" for j in self.state.jobs.values() if j.owner == self.user]
        self.reply({"storages": [f"{self.state.base}/storages/{s}" for s in sids],
                    "_links": {"self": self.link("/storages")}})


class StorageHandler(Base):
    def storage(self, sid: str) -> Path:
        if sid == "HOME":
            if not self.state.home_storage:
                raise tornado.web.HTTPError(404, log_message="Storage HOME not found")
            return self.state.home(self.user or "")
        job = self.job(sid[: -len("-uspace")])
        return job.workdir

    def get(self, sid: str) -> None:
        root = self.storage(sid)
        links = {
            "self": self.link(f"/storages/{sid}"),
            "files": self.link(f"/storages/{sid}/files"),
            "action:copy": self.link(
                f"/storages/{sid}/actions/copy", "Copy file 'from' to file 'to'."),
            "action:rename": self.link(
                f"/storages/{sid}/actions/rename", "Rename file 'from' to file 'to'."),
        }
        self.reply(
            {
                # SMSBaseImpl.getStorageRoot: "It is assumed to end with the file separator."
                "mountPoint": f"{root}/",
                "resourceStatus": "READY",
                "umask": "77",
                "filesystemDescription": "Job working directory" if sid != "HOME" else "Home",
                "owner": self.user,
                "_links": links,
            }
        )


class StorageActionHandler(Base):
    """Storages.doHandleAction: copy and rename with 'from' and 'to', through the TSI (`cp`,
    `mv -f` on the paths made absolute under the storage root)."""

    def post(self, sid: str, action: str) -> None:
        root = StorageHandler.storage(self, sid)  # type: ignore[arg-type]
        try:
            spec = json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(400, log_message="action body must be JSON") from None
        source, target = spec.get("from"), spec.get("to")
        if source is None or target is None:
            raise tornado.web.HTTPError(400, log_message="Parameters 'from' and 'to' are required.")
        paths = []
        for p in (source, target):
            full = Path(os.path.normpath(f"{root}/{str(p).lstrip('/')}"))
            if full != root and root not in full.parents:
                raise tornado.web.HTTPError(403, log_message="Access denied")
            paths.append(str(full))
        src, dst = paths
        if os.path.isdir(dst):  # cp/mv into an existing directory
            dst = os.path.join(dst, os.path.basename(src))
        try:
            if action == "rename":
                os.replace(src, dst)  # mv -f
            elif os.path.isdir(src):
                shutil.copytree(src, dst)  # cp -r
            else:
                shutil.copyfile(src, dst)
        except OSError as exc:
            # ServicesBase.handleAction: handleError("Error handling action: '"+action+"'", ex)
            # with the TSI's "Command failed" (cp/mv's own message) as the cause.
            tool = "mv" if action == "rename" else "cp"
            self.fail(500, f"Error handling action: '{action}': TSI command failed: {tool}: "
                      f"cannot stat '{src}': {exc.strerror}")
            return
        self.set_status(204)  # `reply==null ? Response.noContent()`
        self.finish()


_PERMISSION_RE = re.compile(r"[r-][w-][x-][r-][w-][x-][r-][w-][x-]")
_MODE_BITS = (0o400, 0o200, 0o100, 0o040, 0o020, 0o010, 0o004, 0o002, 0o001)


class FilesHandler(Base):
    def resolve(self, sid: str, path: str) -> tuple[Path, Path]:
        root = StorageHandler.storage(self, sid)  # type: ignore[arg-type]
        rel = Path(os.path.normpath("/" + (path or ""))).relative_to("/")
        target = (root / rel) if str(rel) != "." else root
        if root != target and root not in target.parents:
            raise tornado.web.HTTPError(403, log_message="Access denied")
        return root, target

    def stat_entry(self, p: Path) -> dict[str, Any]:
        st = p.stat()
        mode = st.st_mode
        perms = "".join(
            c if mode & bit else "-" for c, bit in zip("rwxrwxrwx", _MODE_BITS, strict=True)
        )
        return {
            "size": st.st_size,
            "isDirectory": p.is_dir(),
            "owner": self.user,
            "group": "users",
            "permissions": perms,
            "lastAccessed": _iso(st.st_mtime),
        }

    def not_found(self) -> None:
        # Files.getProperties: `throw new WebApplicationException(404)`, rethrown as is by
        # handleError; Files.download: `Response.status(404).build()`: no JSON body either way.
        self.set_status(404)
        self.finish()

    def get(self, sid: str, path: str = "") -> None:
        root, target = self.resolve(sid, path)
        if not target.exists() and not target.is_symlink():
            self.not_found()
            return
        accept = self.request.headers.get("Accept", "application/json")
        if "application/octet-stream" in accept and "application/json" not in accept:
            if target.is_dir():
                # Files.download: `if(isDirectory){ return Response.notAcceptable(
                #   VariantListBuilder.newInstance().mediaTypes(APPLICATION_JSON_TYPE)...) }`
                self.set_status(406)
                self.finish()
                return
            self.send_bytes(target)
            return
        props = self.stat_entry(target)
        props["metadata"] = {}
        links = {
            "self": self.link(f"/storages/{sid}/files/{path}"),
            "parentStorage": self.link(f"/storages/{sid}"),
        }
        if target.is_dir():
            children = sorted(target.iterdir())
            if not path.strip("/"):
                # Files.list() for the root: `return list("/", 0, SMSBaseImpl.MAX_LS_RESULTS);`
                offset, num = 0, self.state.max_ls_results
            else:
                offset = int(self.get_query_argument("offset", "0"))
                num = int(self.get_query_argument("num", str(self.state.default_ls_num)))
            page = children[offset : offset + num]
            props["content"] = {
                "/" + str(c.relative_to(root)) + ("/" if c.is_dir() else ""): self.stat_entry(c)
                for c in page
            }
            # Files.list: `ph.getLinks(offset, actualNum, offset+actualNum+500)` with
            # PagingHelper.getLinks adding "next" whenever offset+num < max: always here, so a
            # client cannot take a missing "next" as the end of the listing.
            base = f"/storages/{sid}/files"
            actual = len(page)
            links["next"] = self.link(
                f"{base}?offset={offset + actual}&num={min(actual, offset + 500)}"
            )
            if offset > 0:
                links["previous"] = self.link(
                    f"{base}?offset={max(offset - actual, 0)}&num={actual}"
                )
        else:
            # "let us tell the client that we support byte range for reading from a file"
            self.set_header("Accept-Ranges", "bytes")
        props["_links"] = links
        self.reply(props)

    def send_bytes(self, target: Path) -> None:
        """Files.download: the whole file (200), or with ``Range`` 206 and NO Content-Range
        header: `return Response.status(Status.PARTIAL_CONTENT).entity(is).type(mt).build();`.
        makeRangedStream parses "bytes=a-b", "bytes=a-", "bytes=-n"; anything else (also b < a)
        is `handleError(416, "Range header '…' cannot be parsed", …)`."""
        size = target.stat().st_size
        rng = self.request.headers.get("Range")
        self.set_header("Content-Type", "application/octet-stream")
        if not rng:
            self.finish(target.read_bytes())
            return
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
        if (
            not m
            or (not m.group(1) and not m.group(2))
            or (m.group(1) and m.group(2) and int(m.group(2)) < int(m.group(1)))
        ):
            self.fail(416, f"Range header '{rng}' cannot be parsed")
            return
        if not m.group(1):  # "bytes=-100": the last 100 bytes
            start, length = max(size - int(m.group(2)), 0), None
        else:
            start = int(m.group(1))
            length = int(m.group(2)) + 1 - start if m.group(2) else None
        if start > size:
            # `while(offset>0){ offset -= source.skip(offset); }`: on the TSI-backed stream
            # (BackedInputStream.skip returns 0 at the end) this never ends — the request hangs
            # on a real server with a remote TSI. A local file store answers 206 and no bytes,
            # as done here; the counter lets tests check that the client never asks.
            self.state.ranges_past_end += 1
        with open(target, "rb") as f:
            f.seek(start)
            data = f.read() if length is None else f.read(length)
        self.set_status(206)
        self.finish(data)

    def put(self, sid: str, path: str = "") -> None:
        _, target = self.resolve(sid, path)
        if "application/json" in self.request.headers.get("Content-Type", ""):
            # Files.modify: chmod with "permissions" (or "unixPermissions"); answers 200 with
            # what was done, e.g. {"permissions": "OK"}.
            if not target.exists():
                self.not_found()
                return
            try:
                spec = json.loads(self.request.body or b"{}")
            except ValueError:
                raise tornado.web.HTTPError(400, log_message="invalid JSON") from None
            reply: dict[str, str] = {}
            perms = spec.get("permissions") or spec.get("unixPermissions")
            if perms is not None:
                if _PERMISSION_RE.fullmatch(str(perms)):
                    mode = sum(
                        bit for c, bit in zip(str(perms), _MODE_BITS, strict=True) if c != "-"
                    )
                    target.chmod(mode)
                    reply["permissions"] = "OK"
                else:
                    reply["permissions"] = f"FAILED: invalid permissions {perms!r}"
            if "metadata" in spec:
                reply["metadata"] = "OK"
            self.reply(reply)
            return
        # Files.upload: createParentDirectories, then write (a 204 without body).
        self.state.uploads.append((sid, path))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.request.body)
        self.set_status(204)
        self.finish()

    def post(self, sid: str, path: str = "") -> None:
        _, target = self.resolve(sid, path)
        target.mkdir(parents=True, exist_ok=True)
        self.set_status(201)
        self.finish()

    def delete(self, sid: str, path: str = "") -> None:
        _, target = self.resolve(sid, path)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        else:
            raise tornado.web.HTTPError(404, log_message=f"File {path} not found")
        self.set_status(204)
        self.finish()


def make_app(state: UnicoreState) -> tornado.web.Application:
    a = {"state": state}
    b = f"/{SITE}/rest/core"
    uid = r"([0-9a-f-]{36})"
    sid = r"HOME|[0-9a-f-]{36}-uspace"
    return tornado.web.Application(
        [
            (rf"{b}/?", RootHandler, a),
            (rf"{b}/jobs", JobsHandler, a),
            (rf"{b}/jobs/{uid}", JobHandler, a),
            (rf"{b}/jobs/{uid}/(details|submitted)", JobHandler, a),
            (rf"{b}/jobs/{uid}/actions/(start|abort|restart)", ActionHandler, a),
            (rf"{b}/storages/?", StoragesHandler, a),
            (rf"{b}/storages/({sid})", StorageHandler, a),
            (rf"{b}/storages/({sid})/actions/(copy|rename)", StorageActionHandler, a),
            (rf"{b}/storages/({sid})/files/?(.*)", FilesHandler, a),
        ]
    )


class UnicoreServer:
    def __init__(self, root: Path, **kwargs: Any):
        self.state = UnicoreState(root, **kwargs)
        self._thread = ServerThread(lambda: make_app(self.state))

    def start(self) -> UnicoreServer:
        self._thread.start()
        self.state.base = self.base_url
        return self

    @property
    def base_url(self) -> str:
        return f"{self._thread.url}/{SITE}/rest/core"

    def stop(self) -> None:
        self.state.kill_all()
        self._thread.stop()

    def __enter__(self) -> UnicoreServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
