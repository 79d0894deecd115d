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

Switches: ``state.faults`` (500/429/dropped connection/delay), ``state.tokens``
(OIDC client-credentials endpoint at ``/auth/token``, token lifetime), ``state.queue_delay``.
"""
from __future__ import annotations

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

API_VERSION = "2.5.6"
OPS_SIZE_LIMIT = 5 * 1024 * 1024
USER, UID, GROUP, GID = "testuser", 1000, "users", 100


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

    def state(self) -> str:
        if self.state_override:
            return self.state_override
        assert self.run is not None
        if self.run.state == "CANCELLED":
            return f"CANCELLED by {UID}"
        return self.run.state

    def model(self, system: str) -> dict[str, Any]:
        run = self.run
        exit_code = self.exit_override if run is None else run.exit_code
        start = int(run.started) if run and run.started else None
        end = int(run.ended) if run and run.ended else None
        elapsed = (end or int(time.time())) - start if start else 0
        return {
            "jobId": self.job_id,
            "name": self.name,
            "status": {
                "state": self.state(),
                "stateReason": "None" if self.state() != "PENDING" else "Priority",
                "exitCode": exit_code if exit_code is not None else 0,
                "interruptSignal": run.signal if run else None,
            },
            "time": {"elapsed": elapsed, "start": start, "end": end, "suspended": 0,
                     "limit": self.time_limit},
            "account": self.account,
            "allocationNodes": 1,
            "cluster": system,
            "group": GROUP,
            "nodes": "nid000001",
            "partition": self.partition,
            "priority": 1,
            "killRequestUser": USER if run and run.cancelled else None,
            "user": USER,
            "workingDirectory": self.working_dir,
            "tasks": [],
        }


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

    def kill_all(self) -> None:
        for job in self.jobs.values():
            if job.run and not job.run.done:
                job.run.kill()


# ---------------------------------------------------------------- handlers


class Base(FaultyHandler):
    state: FirecrestState
    auth_required = True

    def set_default_headers(self) -> None:
        self.set_header("f7t-appversion", API_VERSION)

    def prepare(self) -> None:
        super().prepare()
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
        self.reply({"user": {"id": str(UID), "name": USER}, "group": {"id": str(GID), "name": GROUP},
                    "groups": [{"id": str(GID), "name": GROUP}],
                    "accounts": [{"name": "proj", "default": True}]})


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


class JobsHandler(Base):
    def get(self, system: str) -> None:
        self.check_system(system)
        with self.state.lock:
            jobs = list(self.state.jobs.values())
        self.reply({"jobs": [j.model(system) for j in jobs]})

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
        wd = self.state.path(workdir)
        if not wd.is_dir():
            raise tornado.web.HTTPError(400, log_message=f"sbatch: error: chdir to {workdir} failed: No such file or directory")
        opts = sbatch_options(script)
        job_id = self.state.new_id()
        chdir = self.state.path(opts["chdir"]) if opts.get("chdir") else wd

        def out_path(key: str, default: str) -> Path:
            v = pick(spec, "standardOutput" if key == "output" else "standardError") or opts.get(key) or default
            v = v.replace("%j", job_id)
            return self.state.path(v if v.startswith("/") else str(chdir / v))

        stdout = out_path("output", f"slurm-{job_id}.out")
        stderr = out_path("error", str(stdout))
        env_field = spec.get("env") or {}
        if isinstance(env_field, list):
            env_field = dict(e.split("=", 1) for e in env_field if "=" in e)
        name = spec.get("name") or opts.get("job-name") or "sbatch"
        limit = slurm_minutes(opts["time"]) if opts.get("time") else None
        env = job_base_env(self.state.home / USER, USER)
        env.update({str(k): str(v) for k, v in env_field.items()})
        env.update({"SLURM_JOB_ID": job_id, "SLURM_JOB_NAME": name, "SLURM_SUBMIT_DIR": str(wd),
                    "SLURM_CLUSTER_NAME": system})
        spool = self.state.root / ".slurmd"
        spool.mkdir(exist_ok=True)
        script_file = spool / f"job{job_id}.sh"
        script_file.write_text(script)
        run = LocalJob(
            argv=["bash", str(script_file)], cwd=chdir, env=env, stdout=stdout, stderr=stderr,
            time_limit=limit * 60 if limit else None,
            append=opts.get("open-mode") == "append", start_delay=self.state.queue_delay,
        )
        job = Job(job_id, name, str(wd), run, partition=pick(spec, "partition") or opts.get("partition") or "normal",
                  account=pick(spec, "account") or opts.get("account"), time_limit=limit)
        with self.state.lock:
            self.state.jobs[job_id] = job
        run.start()
        self.reply({"jobId": job_id}, 201)


class JobHandler(Base):
    def get(self, system: str, job_id: str) -> None:
        self.check_system(system)
        job = self.state.jobs.get(job_id)
        if job is None:
            raise tornado.web.HTTPError(404, log_message=f"Job not found: {job_id}")
        self.reply({"jobs": [job.model(system)]})

    def delete(self, system: str, job_id: str) -> None:
        self.check_system(system)
        job = self.state.jobs.get(job_id)
        if job is None:
            raise tornado.web.HTTPError(404, log_message=f"Job not found: {job_id}")
        if job.run and not job.run.done:
            job.run.cancel()
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


class OpsGetHandler(Base):
    def get(self, system: str, op: str) -> None:
        self.check_system(system)
        raw = self.get_query_argument("path")
        p = self.state.path(raw)
        if not p.exists() and not p.is_symlink():
            raise no_such(f"{op}: cannot access '{raw}'")
        getattr(self, f"op_{op}")(raw, p)

    def op_ls(self, raw: str, p: Path) -> None:
        hidden, recursive = self.flag("showHidden"), self.flag("recursive")
        if not p.is_dir():
            self.reply({"output": [file_model(p, raw)]})
            return
        out: list[dict[str, Any]] = []

        def walk(d: Path, prefix: str) -> None:
            for child in sorted(d.iterdir()):
                if child.name.startswith(".") and not hidden:
                    continue
                out.append(file_model(child, prefix + child.name))
                if recursive and child.is_dir() and not child.is_symlink():
                    walk(child, prefix + child.name + "/")

        walk(p, "")
        self.reply({"output": out})

    def op_stat(self, raw: str, p: Path) -> None:
        st = p.stat() if self.flag("dereference") else p.lstat()
        self.reply({"output": {"mode": st.st_mode, "ino": st.st_ino, "dev": st.st_dev, "nlink": st.st_nlink,
                               "uid": UID, "gid": GID, "size": st.st_size, "atime": int(st.st_atime),
                               "ctime": int(st.st_ctime), "mtime": int(st.st_mtime)}})

    def _file(self, p: Path) -> bytes:
        if p.is_dir():
            raise tornado.web.HTTPError(400, log_message=f"{p}: Is a directory")
        return p.read_bytes()

    def op_view(self, raw: str, p: Path) -> None:
        size = int(self.get_query_argument("size", str(OPS_SIZE_LIMIT)))
        offset = int(self.get_query_argument("offset", "0"))
        if offset < 0:
            raise tornado.web.HTTPError(400, log_message="`offset` value must be an integer value equal or greater than 0")
        if size <= 0:
            raise tornado.web.HTTPError(400, log_message="`size` value must be an integer value greater than 0")
        if size > OPS_SIZE_LIMIT:
            raise tornado.web.HTTPError(400, log_message=f"`size` value must be less than {OPS_SIZE_LIMIT} bytes")
        with open(p, "rb") as f:
            f.seek(offset)
            data = f.read(size)
        self.reply({"output": data.decode("utf-8", errors="replace")})

    def _bytes_lines(self) -> tuple[int | None, int | None]:
        b, n = self.get_query_argument("bytes", None), self.get_query_argument("lines", None)
        if b and n:
            raise tornado.web.HTTPError(400, log_message="Only one of `bytes` or `lines` can be specified.")
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
        end = (nbytes if nbytes is not None else (nlines or 10)) * (-1 if skip else 1)
        self.reply({"output": {"content": out.decode("utf-8", errors="replace"),
                               "contentType": "bytes" if nbytes else "lines",
                               "startPosition": 0, "endPosition": end}})

    def op_tail(self, raw: str, p: Path) -> None:
        nbytes, nlines = self._bytes_lines()
        data, skip = self._file(p), self.flag("skipHeading")
        if nbytes is not None:  # tail -c N / tail -c +N
            out = data[max(nbytes - 1, 0):] if skip else (data[-nbytes:] if nbytes else b"")
        else:
            lines = data.splitlines(keepends=True)
            n = 10 if nlines is None else nlines
            out = b"".join(lines[max(n - 1, 0):] if skip else (lines[-n:] if n else []))
        start = (nbytes if nbytes is not None else (nlines or 10)) * (1 if skip else -1)
        self.reply({"output": {"content": out.decode("utf-8", errors="replace"),
                               "contentType": "bytes" if nbytes else "lines",
                               "startPosition": start, "endPosition": -1}})

    def op_checksum(self, raw: str, p: Path) -> None:
        self.reply({"output": {"algorithm": "SHA-256", "checksum": hashlib.sha256(self._file(p)).hexdigest()}})

    def op_download(self, raw: str, p: Path) -> None:
        data = self._file(p)
        if len(data) > OPS_SIZE_LIMIT:
            raise tornado.web.HTTPError(413, log_message="File is too large for direct download")
        self.set_header("Content-Type", "application/octet-stream")
        self.finish(data)

    def op_file(self, raw: str, p: Path) -> None:
        self.reply({"output": "directory" if p.is_dir() else "ASCII text"})


class UploadHandler(Base):
    def post(self, system: str) -> None:
        self.check_system(system)
        directory = self.state.path(self.get_query_argument("path"))
        files = self.request.files.get("file")
        if not files:
            raise tornado.web.HTTPError(422, log_message="field 'file' is required")
        f = files[0]
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
        raw = pick(body, "sourcePath", "source_path", "path")
        p = self.state.path(raw)
        parent = bool(body.get("parent"))
        try:
            p.mkdir(parents=parent, exist_ok=parent)
        except FileNotFoundError:
            raise no_such(f"mkdir: cannot create directory '{raw}'") from None
        except FileExistsError:
            raise tornado.web.HTTPError(400, log_message=f"mkdir: cannot create directory '{raw}': File exists") from None
        self.reply({"output": file_model(p, raw)}, 201)


class ExtractHandler(Base):
    def post(self, system: str) -> None:
        self.check_system(system)
        body = self.body()
        src = self.state.path(pick(body, "sourcePath", "source_path", "path"))
        dst = self.state.path(pick(body, "targetPath", "target_path"))
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
        p = self.state.path(self.get_query_argument("path"))
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
    job = Job(job_id, name, str(logs), None, partition="xfer", transfer=True, state_override="PENDING")
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
            raise tornado.web.HTTPError(400, log_message=f"transfer method {method!r} is not available")
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
        self.reply({
            "transferJob": transfer_info(self.state, staged.job),
            "transferDirectives": {"transferMethod": "s3",
                                   "downloadUrl": f"{self.state.base_url}/s3/{staged.id}/object?X-Amz-Signature=test"},
        }, 201)


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
    return tornado.web.Application([
        (r"/auth/token", OIDCHandler, a),
        (r"/status/systems", SystemsHandler, a),
        (rf"/status/{sysp}/userinfo", UserInfoHandler, a),
        (rf"/compute/{sysp}/jobs", JobsHandler, a),
        (rf"/compute/{sysp}/jobs/([A-Za-z0-9]+)", JobHandler, a),
        (rf"/filesystem/{sysp}/ops/(ls|stat|view|head|tail|checksum|download|file)", OpsGetHandler, a),
        (rf"/filesystem/{sysp}/ops/upload", UploadHandler, a),
        (rf"/filesystem/{sysp}/ops/mkdir", MkdirHandler, a),
        (rf"/filesystem/{sysp}/ops/extract", ExtractHandler, a),
        (rf"/filesystem/{sysp}/ops/rm", RmHandler, a),
        (rf"/filesystem/{sysp}/transfer/upload", TransferUploadHandler, a),
        (rf"/filesystem/{sysp}/transfer/download", TransferDownloadHandler, a),
        (r"/s3/([0-9a-f]+)/part/(\d+)", S3Handler, a),
        (r"/s3/([0-9a-f]+)/complete", S3Handler, a),
        (r"/s3/([0-9a-f]+)/object", S3Handler, a),
    ])


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
