"""A protocol-faithful UNICORE/X (10.x core REST API) test server, for the calls pyunicore and
our backend make.

As published (core API + components, plus the action endpoints the files omit):
``GET {base}/`` server/client properties with ``_links`` (role ``anonymous`` without
credentials, 401 with wrong ones); ``/jobs`` list (``tags`` filter, ``offset``/``num``) and
submit (201 + ``Location``); ``/jobs/{id}`` properties (``fields`` filter), ``DELETE``;
``POST /jobs/{id}/actions/{start|abort|restart}`` with ``{}``; ``/jobs/{id}/details``,
``/submitted``; the job's working directory as storage ``/storages/{id}-uspace`` with
``files/{path}``: JSON properties (directories list ``content``), octet-stream download
honouring ``Range`` (206 + ``Content-Range``; 416 past the end), ``PUT`` upload creating
parent directories, ``POST`` mkdir, ``DELETE``. Errors are ``{"errorMessage": ...}``.
Basic (username/password) and bearer-token authentication.

Jobs EXECUTE for real as local processes in the job's working directory: READY (waiting
for the client's stage-in and ``start``) → STAGINGIN → QUEUED → RUNNING → STAGINGOUT →
SUCCESSFUL / FAILED (non-zero exit code unless ``IgnoreNonZeroExitCode``; aborted jobs end
FAILED; ``Resources.Runtime`` enforced). The user pre-command runs "on the login node"
(before queueing) or in the job script, as ``RunUserPrecommandOnLoginNode`` says; likewise
the post-command. ``Environment`` reaches the process environment only (not written to disk).
"""
from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import tornado.web

from ._common import CountingState, Faults, FaultyHandler, LocalJob, ServerThread, job_base_env

SITE = "TEST-SITE"


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


def _truthy(v: Any) -> bool:
    return str(v).lower() == "true"


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


class UnicoreState(CountingState):
    def __init__(self, root: Path, users: dict[str, str] | None = None, tokens: tuple[str, ...] = ()):
        super().__init__()
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.users = dict(users or {})
        self.tokens = set(tokens)
        self.faults = Faults()
        self.jobs: dict[str, UJob] = {}
        self.lock = threading.Lock()
        self.base = ""  # {url}/{SITE}/rest/core, set at start
        self.queue_delay = 0.0
        self.submitted_descriptions: list[dict[str, Any]] = []

    def route_name(self, path: str) -> str:
        path = re.sub(rf"^/{SITE}/rest/core", "", path) or "/"
        path = re.sub(r"/jobs/[0-9a-f-]{36}", "/jobs/{id}", path)
        path = re.sub(r"/storages/[0-9a-f-]{36}-uspace/files/.*", "/storages/{id}/files/{path}", path)
        return re.sub(r"/storages/[0-9a-f-]{36}-uspace", "/storages/{id}", path)

    def kill_all(self) -> None:
        for job in self.jobs.values():
            if job.run and not job.run.done:
                job.run.kill()


class Base(FaultyHandler):
    state: UnicoreState

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"errorMessage": message, "status": status}

    def prepare(self) -> None:
        super().prepare()
        if self._finished:
            return
        self.user = self.authenticate()
        if self.user is None and not getattr(self, "anonymous_ok", False):
            self.fail(401 if self.request.headers.get("Authorization") else 403,
                      "Authentication failed" if self.request.headers.get("Authorization") else "Access denied")

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

    def prepare(self) -> None:
        FaultyHandler.prepare(self)
        if self._finished:
            return
        self.user = self.authenticate()
        if self.user is None and self.request.headers.get("Authorization"):
            self.fail(401, "Authentication failed")

    def get(self) -> None:
        role = "user" if self.user else "anonymous"
        self.reply({
            "client": {"dn": f"UID={self.user or 'anonymous'}", "role": {"selected": role, "availableRoles": [role]},
                       "xlogin": {"UID": self.user, "availableUIDs": [self.user] if self.user else []},
                       "authenticationMethod": "PASSWORD" if self.user else "NONE"},
            "server": {"version": "10.2.0", "externalConnector": "ok"},
            "_links": {k: self.link(f"/{k}") for k in ("jobs", "storages", "factories", "transfers", "sites")},
        })


class JobsHandler(Base):
    def get(self) -> None:
        tags = [t for t in self.get_query_argument("tags", "").split(",") if t]
        offset = int(self.get_query_argument("offset", "0"))
        num = int(self.get_query_argument("num", "200"))
        with self.state.lock:
            jobs = [j for j in self.state.jobs.values() if j.owner == self.user
                    and all(t in j.tags for t in tags)]
        jobs.sort(key=lambda j: j.submitted)
        urls = [f"{self.state.base}/jobs/{j.id}" for j in jobs[offset:offset + num]]
        self.reply({"jobs": urls, "_links": {"self": self.link("/jobs")}})

    def post(self) -> None:
        try:
            desc = json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(400, log_message="Job description is not valid JSON") from None
        if not isinstance(desc, dict) or not desc.get("Executable"):
            raise tornado.web.HTTPError(400, log_message="Job description must specify 'Executable'")
        self.state.submitted_descriptions.append(desc)
        job_id = str(uuid.uuid4())
        workdir = self.state.root / "jobs" / job_id
        workdir.mkdir(parents=True)
        job = UJob(job_id, desc, workdir, self.user or "", tags=[str(t) for t in desc.get("Tags") or []])
        job.log.append(f"{_iso(time.time())}: Created with ID {job_id}")
        with self.state.lock:
            self.state.jobs[job_id] = job
        if not _truthy(desc.get("haveClientStageIn")):
            launch(self.state, job)
        self.set_header("Location", f"{self.state.base}/jobs/{job_id}")
        self.set_status(201)
        self.finish()


def launch(state: UnicoreState, job: UJob) -> None:
    """After the client's start: stage-in, user pre-command on the login node, then the job."""
    job.status = "STAGINGIN"
    desc = job.description
    env = job_base_env(state.root / "home" / job.owner, job.owner)
    env["UC_WORKING_DIRECTORY"] = str(job.workdir)
    environment = desc.get("Environment") or {}
    if isinstance(environment, list):
        environment = dict(e.split("=", 1) for e in environment if "=" in e)
    env.update({str(k): str(v) for k, v in environment.items()})
    env.update({str(k): str(v) for k, v in (desc.get("Parameters") or {}).items()})
    stdout = job.workdir / str(desc.get("Stdout") or "stdout")
    stderr = job.workdir / str(desc.get("Stderr") or "stderr")

    pre, post = desc.get("User precommand"), desc.get("User postcommand")
    pre_login = pre and _truthy(desc.get("RunUserPrecommandOnLoginNode", "true"))
    post_login = post and _truthy(desc.get("RunUserPostcommandOnLoginNode", "true"))
    lines = ["#!/bin/bash", f"cd {shlex.quote(str(job.workdir))}"]
    if pre and not pre_login:
        lines.append(f"{pre} || exit $?")
    cmd = " ".join([str(desc["Executable"]), *[str(a) for a in desc.get("Arguments") or []]])
    lines.append(cmd)
    lines.append("__uc_rc=$?")
    if post and not post_login:
        lines.append(post)
    lines.append("exit $__uc_rc")
    script = job.workdir / "UNICORE_Job.sh"
    script.write_text("\n".join(lines) + "\n")

    def on_end(run: LocalJob) -> None:
        job.status = "STAGINGOUT"
        if post_login:
            subprocess.run(["bash", "-c", str(post)], cwd=job.workdir, env=env, check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        job.exit_code = run.exit_code
        if job.aborted:
            job.status, job.status_message = "FAILED", "Job was aborted by the user."
        elif run.timed_out:
            job.status = "FAILED"
            job.status_message = "Job was terminated by the batch system: TIMEOUT (wall time limit reached)."
        elif run.exit_code and not _truthy(desc.get("IgnoreNonZeroExitCode")):
            job.status, job.status_message = "FAILED", f"User application exited with non-zero exit code: <{run.exit_code}>"
        else:
            job.status, job.status_message = "SUCCESSFUL", ""
        job.log.append(f"{_iso(time.time())}: Job {job.status}")

    def start() -> None:
        if pre_login:
            res = subprocess.run(["bash", "-c", str(pre)], cwd=job.workdir, env=env, check=False,
                                 capture_output=True)
            if res.returncode != 0:
                job.status = "FAILED"
                job.status_message = f"User precommand failed with exit code {res.returncode}"
                return
        res_spec = desc.get("Resources") or {}
        job.run = LocalJob(argv=["bash", str(script)], cwd=job.workdir, env=env, stdout=stdout, stderr=stderr,
                           time_limit=runtime_seconds(res_spec.get("Runtime")), append=True,
                           start_delay=state.queue_delay, on_end=on_end)
        job.status = "QUEUED"
        job.run.start()

    threading.Thread(target=start, daemon=True).start()


class JobHandler(Base):
    def properties(self, job: UJob) -> dict[str, Any]:
        if job.run is not None and job.run.state == "RUNNING" and job.status == "QUEUED":
            job.status = "RUNNING"
        elif job.run is not None and job.run.state == "PENDING" and job.status not in ("FAILED",):
            job.status = "QUEUED"
        jid = job.id
        res = job.description.get("Resources") or {}
        return {
            "status": job.status,
            "statusMessage": job.status_message,
            "submissionTime": _iso(job.submitted),
            "jobType": str(job.description.get("Job type") or "BATCH").upper(),
            "name": job.description.get("Name") or "UNICORE_Job",
            "batchSystemID": f"{1000 + abs(hash(jid)) % 100000}" if job.run else "N/A",
            "exitCode": str(job.exit_code) if job.exit_code is not None else None,
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

    def get(self, job_id: str, sub: str | None = None) -> None:
        job = self.job(job_id)
        if sub == "details":
            self.reply({"BatchSystemID": self.properties(job)["batchSystemID"], "JobState": job.status})
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
        elif action == "abort":
            job.aborted = True
            if job.run and not job.run.done:
                job.run.cancel()
            elif job.status in ("READY", "STAGINGIN", "QUEUED"):
                job.status, job.status_message = "FAILED", "Job was aborted by the user."
        elif action == "restart":
            raise tornado.web.HTTPError(400, log_message="restart is not supported by this test server")
        else:
            raise tornado.web.HTTPError(404, log_message=f"no action {action}")
        self.reply({})


class StorageHandler(Base):
    def storage(self, sid: str) -> Path:
        job = self.job(sid[: -len("-uspace")])
        return job.workdir

    def get(self, sid: str) -> None:
        root = self.storage(sid)
        self.reply({"mountPoint": str(root), "resourceStatus": "READY", "umask": "77",
                    "filesystemDescription": "Job working directory", "owner": self.user,
                    "_links": {"self": self.link(f"/storages/{sid}"), "files": self.link(f"/storages/{sid}/files")}})


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
        return {"size": st.st_size, "isDirectory": p.is_dir(), "owner": self.user, "group": "users",
                "permissions": ("r" if os.access(p, os.R_OK) else "-") + ("w" if os.access(p, os.W_OK) else "-")
                + ("x" if os.access(p, os.X_OK) else "-"),
                "lastAccessed": _iso(st.st_mtime)}

    def get(self, sid: str, path: str = "") -> None:
        root, target = self.resolve(sid, path)
        if not target.exists():
            raise tornado.web.HTTPError(404, log_message=f"File {path} not found")
        accept = self.request.headers.get("Accept", "application/json")
        if "application/octet-stream" in accept and target.is_file():
            self.send_bytes(target)
            return
        props = self.stat_entry(target)
        props["metadata"] = {}
        if target.is_dir():
            props["content"] = {
                "/" + str(c.relative_to(root)) + ("/" if c.is_dir() else ""): self.stat_entry(c)
                for c in sorted(target.iterdir())
            }
        props["_links"] = {"self": self.link(f"/storages/{sid}/files/{path}"),
                           "parentStorage": self.link(f"/storages/{sid}")}
        self.reply(props)

    def send_bytes(self, target: Path) -> None:
        size = target.stat().st_size
        rng = self.request.headers.get("Range")
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Accept-Ranges", "bytes")
        if not rng:
            self.finish(target.read_bytes())
            return
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
        if not m:
            raise tornado.web.HTTPError(400, log_message=f"bad Range {rng!r}")
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        if start >= size:
            self.set_status(416)
            self.set_header("Content-Range", f"bytes */{size}")
            self.finish()
            return
        with open(target, "rb") as f:
            f.seek(start)
            data = f.read(end - start + 1)
        self.set_status(206)
        self.set_header("Content-Range", f"bytes {start}-{start + len(data) - 1}/{size}")
        self.finish(data)

    def put(self, sid: str, path: str = "") -> None:
        _, target = self.resolve(sid, path)
        if "application/json" in self.request.headers.get("Content-Type", ""):
            self.set_status(204)  # metadata update: accepted, not stored here
            self.finish()
            return
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
    return tornado.web.Application([
        (rf"{b}/?", RootHandler, a),
        (rf"{b}/jobs", JobsHandler, a),
        (rf"{b}/jobs/{uid}", JobHandler, a),
        (rf"{b}/jobs/{uid}/(details|submitted)", JobHandler, a),
        (rf"{b}/jobs/{uid}/actions/(start|abort|restart)", ActionHandler, a),
        (rf"{b}/storages/({uid[1:-1]}-uspace)", StorageHandler, a),
        (rf"{b}/storages/({uid[1:-1]}-uspace)/files/?(.*)", FilesHandler, a),
    ])


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
