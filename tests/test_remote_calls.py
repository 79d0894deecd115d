"""The remote API policy (backends/remote_calls.py) over real HTTP: httpx against the loopback
UNICORE/X server with injected faults (500, 429 + Retry-After, 401, dropped connections), and
a closed port."""
from __future__ import annotations

import asyncio
import time
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest

from jupyterlab_hpcml.backends.remote_calls import (
    Ambiguous,
    Attempts,
    RateGate,
    RemoteError,
    RetryPolicy,
    Service,
    Verdict,
    call_async,
    call_sync,
    judge_status,
    judge_transport,
    retry_after,
    submit_looked_up,
)
from jupyterlab_hpcml.core.errors import BackendUnavailable, NotFound

from .servers.unicore_server import UnicoreServer

USER, PASSWORD = "policy-user", "canary-policy-6c1e99"
FAST = RetryPolicy(retries=2, backoff=(0.01,), max_429_retries=2, max_retry_after=1.5)


@pytest.fixture
def server(tmp_path: Path):
    with UnicoreServer(tmp_path / "uc", users={USER: PASSWORD}) as s:
        yield s


@pytest.fixture
def http():
    with httpx.Client(auth=(USER, PASSWORD), timeout=2.0) as client:
        yield client


def judge_for(service: Service, what: str, idempotent: bool, relogins: list[int] | None = None):
    def judge(exc: BaseException) -> Verdict:
        if isinstance(exc, httpx.TransportError):
            return judge_transport(service, what, exc, idempotent)
        if isinstance(exc, httpx.HTTPStatusError):
            resp = exc.response
            if resp.status_code == 401 and relogins is not None:
                relogins.append(1)
            words = resp.json().get("errorMessage") if resp.content else resp.reason_phrase
            delay = retry_after(resp.headers) if resp.status_code == 429 else None
            return judge_status(service, what, resp.status_code, words, idempotent, delay)
        return Verdict("raise", exc)

    return judge


def call(server, http, path="/jobs", method="GET", idempotent=True, policy=FAST, gate=None,
         relogins=None):
    service = Service("UNICORE", server.base_url)
    attempts = Attempts(service, "listing jobs", policy, idempotent, gate)
    url = f"{server.base_url}{path}"

    def fn() -> httpx.Response:
        return http.request(method, url, json={"Executable": "true"}).raise_for_status()

    return call_sync(fn, judge_for(service, "listing jobs", idempotent, relogins), attempts)


def test_idempotent_calls_are_retried_then_give_up_unavailable(server, http):
    server.state.faults.add("500", path=r"/jobs$", times=2)
    assert call(server, http).status_code == 200
    assert server.state.requests["GET /jobs"] == 3
    server.state.faults.add("500", path=r"/jobs$", times=3)
    with pytest.raises(BackendUnavailable) as err:
        call(server, http)
    text = str(err.value)
    assert "UNICORE (" in text and "answered HTTP 500 (injected internal server error)" in text
    assert "while listing jobs" in text and PASSWORD not in text


def test_a_submission_is_never_sent_twice_blindly(server, http):
    server.state.faults.add("500", path=r"/jobs$", method="POST")
    with pytest.raises(Ambiguous) as err:
        call(server, http, method="POST", idempotent=False)
    assert isinstance(err.value.error, BackendUnavailable)
    server.state.faults.add("drop", path=r"/jobs$", method="POST")
    with pytest.raises(Ambiguous, match="dropped the connection"):
        call(server, http, method="POST", idempotent=False)
    assert server.state.requests["POST /jobs"] == 2 and not server.state.jobs


def test_a_refused_connection_reached_nobody_and_is_retried(http):
    service = Service("UNICORE", "http://127.0.0.1:9")
    tries: list[int] = []

    def fn() -> httpx.Response:
        tries.append(1)
        return http.post("http://127.0.0.1:9/jobs")

    with pytest.raises(BackendUnavailable, match=r"cannot be reached \(ConnectError\)"):
        call_sync(fn, judge_for(service, "submitting", False),
                  Attempts(service, "submitting", FAST, idempotent=False))
    assert len(tries) == 1  # a submission gets no retries of its own: submit_looked_up decides
    tries.clear()
    with pytest.raises(BackendUnavailable):
        call_sync(fn, judge_for(service, "listing", True), Attempts(service, "listing", FAST, True))
    assert len(tries) == 3


def test_retry_after_is_waited_for_and_a_long_one_pauses_the_connection(server, http):
    server.state.faults.add("429", path=r"/jobs$", arg=1)
    t0 = time.monotonic()
    assert call(server, http, method="POST", idempotent=False).status_code == 201
    assert time.monotonic() - t0 >= 1.0  # a 429 was not carried out: sent again after the wait
    assert len(server.state.jobs) == 1

    gate = RateGate()
    server.state.faults.add("429", path=r"/jobs$", arg=30)
    with pytest.raises(RemoteError, match="rate limiting requests .* nothing was done"):
        call(server, http, method="POST", idempotent=False, gate=gate)
    before = server.state.total_requests()
    with pytest.raises(BackendUnavailable, match=r"rate limiting requests \(retry after 30 s\)"):
        call(server, http, gate=gate)
    assert server.state.total_requests() == before  # no request while the pause lasts


def test_one_relogin_after_401_then_the_users_to_fix(server, http):
    relogins: list[int] = []
    server.state.faults.add("401", path=r"/jobs$")
    assert call(server, http, relogins=relogins).status_code == 200
    assert relogins == [1]
    relogins.clear()
    server.state.faults.add("401", path=r"/jobs$", times=2)
    with pytest.raises(RemoteError, match=r"refused the request while listing jobs \(HTTP 401"):
        call(server, http, relogins=relogins)
    assert relogins == [1, 1] and server.state.requests["GET /jobs"] == 4


def test_not_found_and_rejected_carry_the_servers_words(server, http):
    with pytest.raises(NotFound, match=r"UNICORE: .*Job .* not found \(while listing jobs\)"):
        call(server, http, path="/jobs/00000000-0000-0000-0000-000000000000")
    with pytest.raises(RemoteError, match=r"rejected the request .* \(HTTP 400: Parameters"):
        call(server, http, path="/storages/HOME/actions/rename", method="POST")


async def test_an_ambiguous_submission_is_looked_up_before_it_is_sent_again():
    unavailable = BackendUnavailable("lost")
    sends: list[int] = []
    found: list[str | None] = [None]

    async def send() -> str:
        sends.append(1)
        if len(sends) == 1:
            raise Ambiguous(unavailable)
        return "job-2"

    async def look_up() -> str | None:
        return found[0]

    done = await submit_looked_up(send, look_up)
    assert (done.value, done.ambiguous, len(sends)) == ("job-2", True, 2)
    sends.clear()
    found[0] = "job-1"
    done = await submit_looked_up(send, look_up)
    assert (done.value, done.ambiguous, len(sends)) == ("job-1", True, 1)

    async def always_lost() -> str:
        raise Ambiguous(unavailable)

    found[0] = None
    with pytest.raises(BackendUnavailable, match="lost"):
        await submit_looked_up(always_lost, look_up)


async def test_async_calls_follow_the_same_policy(server):
    service = Service("UNICORE", server.base_url)
    server.state.faults.add("500", path=r"/jobs$", times=2)
    async with httpx.AsyncClient(auth=(USER, PASSWORD)) as client:
        async def fn() -> httpx.Response:
            return (await client.get(f"{server.base_url}/jobs")).raise_for_status()

        t0 = time.monotonic()
        other = asyncio.create_task(asyncio.sleep(0.01))
        resp = await call_async(fn, judge_for(service, "listing", True),
                                Attempts(service, "listing", FAST, True))
        await other
    assert resp.status_code == 200 and time.monotonic() - t0 < 2


def test_retry_after_parsing():
    assert retry_after(httpx.Headers({"Retry-After": "7"})) == 7.0
    later = formatdate(time.time() + 20, usegmt=True)
    assert 15 < retry_after(httpx.Headers({"Retry-After": later})) <= 20
    assert retry_after(httpx.Headers({"Retry-After": "soon"})) == 10.0
    assert retry_after(None, default=3.0) == 3.0
