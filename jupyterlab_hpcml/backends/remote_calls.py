"""The remote API policy of the HTTP backends (FirecREST, UNICORE), written once.

A backend wraps each client call in :func:`call_sync` (a worker thread) or :func:`call_async`
and gives a *judge*: a function that says what one failure means (a :class:`Verdict`). The
policy around it is the same for every service:

* **Idempotent calls** (reads, listings, uploads to a fixed name, ``start``) are retried on
  dropped connections, timeouts and the server's own trouble (408, 424, 5xx), ``retries``
  times with the ``backoff`` pauses; then the last failure is raised (``BackendUnavailable``:
  runs become UNKNOWN, never FAILED).
* **Non-idempotent calls** (a submission) are never sent twice blindly: a failure after the
  request may have reached the server raises :class:`Ambiguous`, and
  :func:`submit_looked_up` looks for the result (a job with the run's tag or name) before
  sending it again. A refused connection (``ConnectError``) reached nobody: retried.
* **429**: where the client hands us ``Retry-After``, it is waited for (at most
  ``max_429_retries`` times, each at most ``max_retry_after`` s); a longer wait pauses every
  request of that connection (:class:`RateGate`) until it is over. Where the client drops the
  header (pyunicore), a 429 counts as the server's trouble.
* **401**: once more after the judge refreshed the credentials (an expired token or session;
  the server did nothing); a second 401 is the user's to fix.
* **Error translation**: :func:`judge_status` and :func:`judge_transport` turn an HTTP status
  or a transport error into the engine's errors with a message naming the service, the
  operation and the server's own words — never a credential (the judges see no request
  headers, and messages are cut to 300 characters).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Generic, Literal, TypeVar

import httpx

from ..core.errors import BackendUnavailable, HpcmlError, NotFound

T = TypeVar("T")
MESSAGE_LIMIT = 300  # characters of a server's error text quoted to the user


class RemoteError(HpcmlError):
    """The service refused a request for a reason retrying will not fix."""

    status = 502


class Ambiguous(Exception):
    """A non-idempotent request failed after it may have reached the server: look its
    result up before sending it again (:func:`submit_looked_up`)."""

    def __init__(self, error: BackendUnavailable):
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 2  # extra attempts of idempotent calls after transient failures
    backoff: tuple[float, ...] = (0.3, 1.0, 2.0)  # pause before the 1st, 2nd, ... retry
    max_429_retries: int = 3
    max_retry_after: float = 30.0  # longer Retry-After: pause the connection, give up now

    def pause(self, retry: int) -> float:
        return self.backoff[min(retry, len(self.backoff) - 1)] if self.backoff else 0.0


@dataclass(frozen=True)
class Verdict:
    """What one failure means.

    ``retry``: transient, send again while attempts are left, else raise ``error``;
    ``raise``: raise ``error`` now; ``relogin``: the judge refreshed the credentials, send
    again once (then raise ``error``); ``wait``: a 429 asking for ``delay`` seconds."""

    action: Literal["retry", "raise", "relogin", "wait"]
    error: BaseException
    delay: float = 0.0


class RateGate:
    """A connection's pause after a long Retry-After: no request before it is over."""

    def __init__(self) -> None:
        self.until = 0.0

    def remaining(self) -> float:
        return self.until - time.monotonic()

    def close_for(self, seconds: float) -> None:
        self.until = max(self.until, time.monotonic() + seconds)


@dataclass(frozen=True)
class Service:
    """Who answers: for messages (``where``: the URL, and the machine if any)."""

    name: str
    where: str

    def unavailable(self, what: str, detail: str) -> BackendUnavailable:
        return BackendUnavailable(f"{self.name} ({self.where}) {detail} while {what}")


class Attempts:
    """The retry state of one call: :meth:`after` takes each failure's verdict and gives the
    pause before the next attempt, or raises what the caller gets."""

    def __init__(self, service: Service, what: str, policy: RetryPolicy, idempotent: bool,
                 gate: RateGate | None = None):
        self.service, self.what, self.policy, self.gate = service, what, policy, gate
        self.left = policy.retries if idempotent else 0
        self.idempotent = idempotent
        self.retried = self.waited = 0
        self.relogged = False

    def check_gate(self) -> None:
        wait = self.gate.remaining() if self.gate else 0.0
        if wait > 0:
            raise self.service.unavailable(
                self.what, f"is rate limiting requests (retry after {wait:.0f} s)")

    def after(self, verdict: Verdict) -> float:
        if verdict.action == "relogin" and not self.relogged:
            self.relogged = True
            return 0.0
        if verdict.action == "wait":
            policy = self.policy
            if self.waited < policy.max_429_retries and verdict.delay <= policy.max_retry_after:
                self.waited += 1
                return verdict.delay
            if self.gate:
                self.gate.close_for(verdict.delay)
            limit = f"rate limiting requests (retry after {verdict.delay:.0f} s)"
            if not self.idempotent:  # a 429 was not carried out: nothing happened
                raise RemoteError(f"{self.service.name} is {limit}: nothing was done "
                                  f"while {self.what}") from None
            raise self.service.unavailable(self.what, f"is {limit}") from None
        if verdict.action == "retry" and self.left > 0:
            self.left -= 1
            self.retried += 1
            return self.policy.pause(self.retried - 1)
        raise verdict.error from None


Judge = Callable[[BaseException], Verdict]


def call_sync(fn: Callable[[], T], judge: Judge, attempts: Attempts) -> T:
    """``fn()`` under the policy (blocking: run it in a worker thread)."""
    while True:
        attempts.check_gate()
        try:
            return fn()
        except Exception as exc:  # judged below
            pause = attempts.after(judge(exc))
        time.sleep(pause)


async def call_async(fn: Callable[[], Awaitable[T]], judge: Judge, attempts: Attempts) -> T:
    """``await fn()`` under the policy."""
    while True:
        attempts.check_gate()
        try:
            return await fn()
        except Exception as exc:  # judged below
            pause = attempts.after(judge(exc))
        await asyncio.sleep(pause)


@dataclass
class Submitted(Generic[T]):
    value: T
    ambiguous: bool  # an answer was lost on the way: leftovers of it may exist


async def submit_looked_up(send: Callable[[], Awaitable[T]],
                           look_up: Callable[[], Awaitable[T | None]],
                           tries: int = 2) -> Submitted[T]:
    """Send a non-idempotent request; when its answer is lost (:class:`Ambiguous`), look for
    its result (``look_up``; None: not there) before sending it again, ``tries`` times in
    all. The last ambiguity raises its ``BackendUnavailable``: the run stays UNKNOWN and the
    engine asks the backend to find the job later."""
    for attempt in range(tries):
        try:
            return Submitted(await send(), attempt > 0)
        except Ambiguous as amb:
            found = await look_up()
            if found is not None:
                return Submitted(found, True)
            if attempt == tries - 1:
                raise amb.error from None
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- translation


def judge_status(service: Service, what: str, code: int, message: str, idempotent: bool,
                 retry_after: float | None = None) -> Verdict:
    """An HTTP error status → the engine's error, and whether to send the request again."""
    message = message[:MESSAGE_LIMIT]
    if code in (401, 403):
        refused = RemoteError(f"{service.name} refused the request while {what} "
                              f"(HTTP {code}: {message})")
        return Verdict("relogin" if code == 401 else "raise", refused)
    if code == 404:
        return Verdict("raise", NotFound(f"{service.name}: {message} (while {what})"))
    if code == 429 and retry_after is not None:
        return Verdict("wait", service.unavailable(what, "is rate limiting requests"), retry_after)
    if code in (408, 424, 429) or code >= 500:
        # The server's command timed out (408), its connection to the cluster failed (424),
        # it is overloaded (429) or failed (5xx): for a submission nobody knows what happened.
        err = service.unavailable(what, f"answered HTTP {code} ({message})")
        return Verdict("retry", err) if idempotent else Verdict("raise", Ambiguous(err))
    return Verdict("raise", RemoteError(f"{service.name} rejected the request while {what} "
                                        f"(HTTP {code}: {message})"))


def judge_transport(service: Service, what: str, exc: httpx.TransportError,
                    idempotent: bool) -> Verdict:
    """A refused, dropped or timed-out connection. Only a refused one surely reached nobody."""
    name = type(exc).__name__
    if not idempotent and not isinstance(exc, httpx.ConnectError):
        why = f"dropped the connection or did not answer in time ({name})"
        return Verdict("raise", Ambiguous(service.unavailable(what, why)))
    return Verdict("retry", service.unavailable(what, f"cannot be reached ({name})"))


def retry_after(headers: httpx.Headers | None, default: float = 10.0) -> float:
    """Seconds a 429 asks to wait: delta-seconds or an HTTP date (``default`` when absent)."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return default
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return default
