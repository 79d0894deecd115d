"""Pieces shared by the protocol-faithful test servers (FirecREST, UNICORE).

* :class:`ServerThread` runs a tornado application on 127.0.0.1 (random port) in a
  thread with its own event loop, so blocking clients (pyunicore) and async ones
  (pyfirecrest, the Jupyter server under test) both reach it.
* :class:`Faults` injects HTTP 500 / 429 answers, dropped connections and delays,
  matched by method and path, a given number of times.
* :class:`TokenIssuer` is an OIDC token endpoint for the client-credentials grant
  with short-lived opaque tokens (to exercise refresh).
* :class:`LocalJob` executes a job for real as a local process group: its own
  stdout/stderr files, a wall-time limit, cancel with SIGTERM then SIGKILL.

Standard library + tornado only: the tests need nothing from ../shared.
"""
from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

VENV_BIN = os.path.dirname(sys.executable)


def job_base_env(home: Path, user: str) -> dict[str, str]:
    """A login-like environment for jobs: not the test process's (no MLFLOW_* leaking in)."""
    return {
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "USER": user,
        "LOGNAME": user,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
    }


# ---------------------------------------------------------------- faults


@dataclass
class FaultRule:
    kind: str  # "500" | "429" | "drop" | "delay" | "hang" | "slow" | "401"
    method: str | None
    path_re: re.Pattern[str]
    times: int
    arg: float = 0.0  # delay seconds / Retry-After
    hits: int = 0
    query_re: re.Pattern[str] | None = None  # also match the query string (e.g. one file's path)


class Faults:
    """``faults.add("500", path=r"/compute/.*/jobs$", times=2)``; consumed in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rules: list[FaultRule] = []
        self.fired: Counter[str] = Counter()

    def add(self, kind: str, path: str = ".*", method: str | None = None, times: int = 1,
            arg: float = 0.0, query: str | None = None) -> FaultRule:
        rule = FaultRule(kind, method.upper() if method else None, re.compile(path), times, arg,
                         query_re=re.compile(query) if query else None)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def take(self, method: str, path: str, query: str = "") -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.hits >= rule.times:
                    continue
                if rule.method and rule.method != method:
                    continue
                if rule.query_re and not rule.query_re.search(query):
                    continue
                if rule.path_re.search(path):
                    rule.hits += 1
                    self.fired[rule.kind] += 1
                    return rule
        return None


class FaultyHandler(tornado.web.RequestHandler):
    """Base handler: request counting and fault injection before any real work."""

    state: Any  # set by the application's settings

    def initialize(self, state: Any) -> None:
        self.state = state

    def error_body(self, status: int, message: str) -> dict[str, Any]:  # per protocol
        return {"message": message}

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(self.error_body(status, message))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        msg = getattr(exc, "log_message", None) or self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(self.error_body(status_code, str(msg)))

    def prepare(self) -> Awaitable[None] | None:
        self.state.count(self.request.method, self.request.path, len(self.request.body or b""))
        rule = self.state.faults.take(self.request.method, self.request.path,
                                      urllib.parse.unquote(self.request.query))
        if rule is None:
            return None
        if rule.kind == "hang":
            # Accepted, then no answer for ``arg`` seconds and the connection closed (a stuck
            # back end): the client's own timeout ends the wait. Asynchronous, unlike "delay",
            # so the server keeps answering other requests meanwhile. Subclasses that override
            # prepare must return this awaitable for tornado to wait on it.
            return self._hang(rule.arg)
        if rule.kind == "slow":
            # Carried out after ``arg`` seconds (non-blocking): with a client timeout below it, the
            # work happens after the client gave up (and maybe after it looked for the result).
            return asyncio.sleep(rule.arg)
        if rule.kind == "drop":
            stream = self.request.connection.detach()
            stream.close()
            self._finished = True  # tornado then skips the handler method
            return
        if rule.kind == "delay":
            time.sleep(rule.arg)
            return
        if rule.kind == "429":
            self.set_header("Retry-After", str(int(rule.arg)))
            self.fail(429, "Too many requests")
            return
        if rule.kind == "401":
            self.fail(401, "token expired")
            return
        self.fail(500, "injected internal server error")
        return None

    async def _hang(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.request.connection.detach().close()
        self._finished = True  # tornado then skips the handler method


class CountingState:
    """Request counters every server state has."""

    def __init__(self) -> None:
        self._count_lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.bytes_in: Counter[str] = Counter()  # request body bytes per route

    def count(self, method: str, path: str, nbytes: int = 0) -> None:
        with self._count_lock:
            route = f"{method} {self.route_name(path)}"
            self.requests[route] += 1
            self.bytes_in[route] += nbytes

    def route_name(self, path: str) -> str:
        return path

    def reset_counts(self) -> None:
        with self._count_lock:
            self.requests.clear()
            self.bytes_in.clear()

    def total_requests(self) -> int:
        with self._count_lock:
            return sum(self.requests.values())


# ---------------------------------------------------------------- OIDC


class TokenIssuer:
    """Client-credentials grant: ``POST <token url>`` form → opaque bearer token with a lifetime."""

    def __init__(self, clients: dict[str, str], lifetime: float = 300.0):
        self.clients = dict(clients)
        self.lifetime = lifetime
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()
        self.issued = 0

    def issue(self, client_id: str, client_secret: str) -> tuple[str, float] | None:
        if not client_id or self.clients.get(client_id) != client_secret:
            return None
        token = "tok-" + secrets.token_hex(16)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.lifetime
            self.issued += 1
        return token, self.lifetime

    def valid(self, token: str) -> bool:
        with self._lock:
            exp = self._tokens.get(token)
        return exp is not None and time.monotonic() < exp

    def expire_all(self) -> None:
        with self._lock:
            self._tokens.clear()


class TokenHandler(FaultyHandler):
    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": "server_error", "error_description": message}

    def post(self) -> None:
        grant = self.get_body_argument("grant_type", "")
        cid = self.get_body_argument("client_id", "")
        secret = self.get_body_argument("client_secret", "")
        auth = self.request.headers.get("Authorization", "")
        if auth.startswith("Basic "):  # client_secret_basic
            import base64

            cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        self.set_header("Content-Type", "application/json")
        if grant != "client_credentials":
            self.set_status(400)
            self.finish({"error": "unsupported_grant_type"})
            return
        issued = self.state.tokens.issue(cid, secret)
        if issued is None:
            self.set_status(401)
            self.finish(
                {"error": "invalid_client", "error_description": "Invalid client credentials"}
            )
            return
        token, lifetime = issued
        self.finish({"access_token": token, "token_type": "Bearer", "expires_in": lifetime,
                     "scope": "openid"})


# ---------------------------------------------------------------- server thread


class ServerThread:
    """A tornado app on 127.0.0.1:<random port> in a daemon thread with its own loop."""

    def __init__(self, make_app: Callable[[], tornado.web.Application]):
        self._make_app = make_app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: tornado.httpserver.HTTPServer | None = None
        self._ready = threading.Event()
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True, name="test-http-server")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("test server did not start")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]

        async def setup() -> None:
            self._server = tornado.httpserver.HTTPServer(
                self._make_app(), max_buffer_size=512 << 20
            )
            self._server.add_sockets(sockets)

        loop.run_until_complete(setup())
        self._ready.set()
        loop.run_forever()
        loop.close()

    def stop(self) -> None:
        loop = self._loop
        if loop is None or not loop.is_running():
            return

        def _stop() -> None:
            if self._server:
                self._server.stop()
            loop.stop()

        loop.call_soon_threadsafe(_stop)
        self._thread.join(10)


# ---------------------------------------------------------------- local job execution


@dataclass
class LocalJob:
    """One job run for real as a local process group."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    stdout: Path
    stderr: Path
    time_limit: float | None = None  # seconds
    append: bool = True
    kill_grace: float = 5.0
    start_delay: float = 0.0  # stay "queued" this long
    state: str = "PENDING"  # PENDING → RUNNING → COMPLETED | FAILED | CANCELLED | TIMEOUT
    exit_code: int | None = None
    signal: int | None = None
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    cancelled: bool = False
    timed_out: bool = False
    on_end: Callable[[LocalJob], None] | None = None
    _proc: subprocess.Popen[bytes] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> LocalJob:
        threading.Thread(target=self._run, daemon=True, name="test-job").start()
        return self

    def _run(self) -> None:
        if self.start_delay:
            deadline = time.monotonic() + self.start_delay
            while time.monotonic() < deadline and not self.cancelled:
                time.sleep(0.05)
        with self._lock:
            if self.cancelled:
                self._finish("CANCELLED", 0, None)
                return
            try:
                self.stdout.parent.mkdir(parents=True, exist_ok=True)
                self.stderr.parent.mkdir(parents=True, exist_ok=True)
                mode = "ab" if self.append else "wb"
                with open(self.stdout, mode) as out, open(self.stderr, mode) as err:
                    self._proc = subprocess.Popen(
                        self.argv, cwd=self.cwd, env=self.env, stdout=out, stderr=err,
                        stdin=subprocess.DEVNULL, start_new_session=True,
                    )
            except OSError as exc:
                self._finish("FAILED", 1, None, note=str(exc))
                return
            self.started = time.time()
            self.state = "RUNNING"
        proc = self._proc
        try:
            rc = proc.wait(timeout=self.time_limit)
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self._signal_group(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=self.kill_grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                rc = proc.wait()
        sig = -rc if rc < 0 else None
        code = 128 + sig if sig else rc
        if self.timed_out:
            self._finish("TIMEOUT", code, sig)
        elif self.cancelled:
            self._finish("CANCELLED", code, sig)
        else:
            self._finish("COMPLETED" if code == 0 else "FAILED", code, sig)

    def _finish(self, state: str, code: int, sig: int | None, note: str | None = None) -> None:
        self.exit_code, self.signal, self.ended = code, sig, time.time()
        self.state = state
        if self.on_end:
            self.on_end(self)

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            if self._proc is None or self._proc.poll() is not None:
                return
        self._signal_group(signal.SIGTERM)

        def later() -> None:
            time.sleep(self.kill_grace)
            if self._proc and self._proc.poll() is None:
                self._signal_group(signal.SIGKILL)

        threading.Thread(target=later, daemon=True).start()

    def reap_group(self, grace: float) -> None:
        """Like a batch system ending a job: wait up to ``grace`` s until no process of the
        group is left (the job's shell may be gone while its children still write), then
        SIGKILL what remains."""
        if self._proc is None:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(self._proc.pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.05)
        self._signal_group(signal.SIGKILL)

    @property
    def done(self) -> bool:
        return self.state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")

    def kill(self) -> None:
        """Test teardown: stop whatever still runs."""
        self.cancelled = True
        self._signal_group(signal.SIGKILL)
