"""Size limits and bad input: every request the server cannot take is a 4xx JSON answer
with a message (never a 500), and nothing is created. Real server, real processes."""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from jupyterlab_hpcml.core.errors import UserInputError
from jupyterlab_hpcml.engine import limits
from jupyterlab_hpcml.engine.requests import RerunRequest, SubmitRequest

from .conftest import TERMINAL, TOY_PROJECT, submit_run, wait_for_state


async def raw_request(port: int, base_url: str, auth: dict[str, str], head: str,
                      body: bytes = b"") -> tuple[int, dict[str, str], Any]:
    """One HTTP/1.1 exchange over a socket: headers (and body) exactly as given. (The test
    asks for ``jp_fetch`` too: that starts the server listening on ``jp_http_port``.)"""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        auth_lines = "".join(f"{k}: {v}\r\n" for k, v in auth.items())
        method, path = head.split(" ", 1)
        request = (f"{method} {base_url.rstrip('/')}/hpcml/api/{path} HTTP/1.1\r\n"
                   f"Host: 127.0.0.1:{port}\r\n{auth_lines}")
        writer.write(request.encode() + body)
        await writer.drain()
        status_line, *lines = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                               ).decode().split("\r\n")
        headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines if line)}
        payload = await reader.readexactly(int(headers.get("content-length", 0)))
        return int(status_line.split()[1]), headers, json.loads(payload or b"null")
    finally:
        writer.close()


async def total_runs(api: Any) -> int:
    status, page = await api("GET", "runs", archived="true")
    assert status == 200
    return page["total"]


# ------------------------------------------------------------------ request bodies


async def test_body_over_the_limit_is_refused_before_it_is_read(jp_fetch, jp_http_port, jp_base_url,
                                                                 jp_auth_header, toy_project):
    # Headers announce 100 MB and no byte of it is sent: the 413 comes anyway.
    status, headers, answer = await raw_request(
        jp_http_port, jp_base_url, jp_auth_header, "POST runs",
        f"Content-Type: application/json\r\nContent-Length: {100 << 20}\r\n\r\n".encode(),
    )
    assert status == 413 and headers["content-type"] == "application/json"
    assert str(limits.MAX_BODY_BYTES) in answer["message"]


async def test_chunked_body_over_the_limit_is_413(jp_fetch, jp_http_port, jp_base_url,
                                                  jp_auth_header, toy_project, api):
    chunk = b"x" * (256 << 10)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5)) + b"0\r\n\r\n"
    status, _, answer = await raw_request(
        jp_http_port, jp_base_url, jp_auth_header, "POST runs",
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks,
    )
    assert status == 413 and "larger than" in answer["message"]
    assert await total_runs(api) == 0


async def test_body_under_the_limit_is_read(jp_fetch, toy_project):
    body = {"project": "toy", "padding": "x" * (limits.MAX_BODY_BYTES - 100)}
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("hpcml", "api", "runs", method="POST", body=json.dumps(body))
    answer = json.loads(err.value.response.body)
    assert err.value.code == 400 and answer["problems"][0]["key"] == "padding"


@pytest.mark.parametrize("body, words", [
    (b'{"project": "toy", "run_name": "\xff\xfe"}', "not UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
    (b'{"project": "toy", "overrides": ' + b"[" * 40 + b"]" * 40 + b"}", "nested deeper"),
    (b'{"project": "toy", "parameters": {"steps": ' + b"9" * 5000 + b"}}", "not JSON"),
    (b'{"project": "toy", "parameters": {"lr": NaN}}', "not a JSON number"),
    (b'{"project": "toy", "parameters": {"lr": 1e999}}', "out of range"),
])
async def test_bodies_json_cannot_carry_are_400(jp_fetch, api, toy_project, body, words):
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("hpcml", "api", "runs", method="POST", body=body)
    answer = json.loads(err.value.response.body)
    assert err.value.code == 400 and words in answer["message"], answer
    assert await total_runs(api) == 0


# ------------------------------------------------------------------ names and values


@pytest.mark.parametrize("extra, key", [
    ({"run_name": "r" * (limits.MAX_RUN_NAME_LENGTH + 1)}, "run_name"),
    ({"experiment_name": "e" * (limits.MAX_EXPERIMENT_NAME_LENGTH + 1)}, "experiment_name"),
    ({"parameters": {"label": "v" * (limits.MAX_PARAM_VALUE_LENGTH + 1)}}, "parameters.label"),
    ({"parameters": {f"p{i}": 1 for i in range(limits.MAX_PARAMETERS + 1)}}, "parameters"),
    ({"parameters": {"steps": True}}, "parameters.steps"),
    ({"overrides": ["Resources.Nodes=1"] * (limits.MAX_OVERRIDES + 1)}, "overrides"),
    ({"project": "to\x00y"}, "project"),
    ({"entry_point": "ma\x00in"}, "entry_point"),
    ({"backend_config": "n" * 300 + ".yaml"}, "backend_config"),
])
async def test_names_and_values_over_limits_are_400_and_nothing_is_created(
        api, toy_project, extra, key):
    status, answer = await api("POST", "runs", {"project": "toy", **extra})
    assert status == 400 and key in [p["key"] for p in answer["problems"]], answer
    assert await total_runs(api) == 0
    from mlflow.tracking import MlflowClient

    assert MlflowClient().search_runs([e.experiment_id for e in
                                       MlflowClient().search_experiments()]) == []


async def test_nul_anywhere_in_a_body_is_400_before_anything_starts(api, toy_project):
    # It used to make a run that failed to start ("embedded null byte" in its environment).
    overrides = {"Environment": {"Variables": {"B": "x\x00y"}}}
    status, answer = await api("POST", "runs", {"project": "toy", "entry_point": "fail",
                                                "overrides": overrides})
    assert status == 400, answer
    assert answer["problems"][0]["key"] == "overrides.Environment.Variables.B"
    assert await total_runs(api) == 0
    before = (toy_project / "local.yaml").read_text()
    status, answer = await api("POST", "project/config", {
        "project": "toy", "path": "local.yaml",
        "sections": {"Environment": {"Variables": {"A": "\x00"}}}})
    assert status == 400 and answer["problems"][0]["key"] == "sections.Environment.Variables.A"
    assert (toy_project / "local.yaml").read_text() == before


@pytest.mark.parametrize("method, path, body", [
    ("PUT", "credentials", {"project": "toy", "backend_config": "n" * 300 + ".yaml",
                            "values": {"token": "t"}}),
    ("POST", "project/config", {"project": "toy", "path": "n" * 300 + ".yaml",
                                "sections": {"Resources": None}}),
])
async def test_over_long_names_in_other_bodies_are_400(api, toy_project, method, path, body):
    status, answer = await api(method, path, body)
    assert status == 400 and "longer than 255 bytes" in answer["message"], answer


async def test_names_at_the_limits_are_taken(api, toy_project):
    run = await submit_run(api, entry_point="args", run_name="r" * limits.MAX_RUN_NAME_LENGTH,
                           experiment_name="e" * limits.MAX_EXPERIMENT_NAME_LENGTH,
                           parameters={"value": "v" * limits.MAX_PARAM_VALUE_LENGTH})
    run = await wait_for_state(api, run["id"], TERMINAL)
    assert run["state"] == "FINISHED" and len(run["name"]) == limits.MAX_RUN_NAME_LENGTH
    assert run["mlflow_experiment_name"] == "e" * limits.MAX_EXPERIMENT_NAME_LENGTH


async def test_rerun_body_is_strict(api, toy_project):
    run = await submit_run(api, entry_point="fail")
    status, answer = await api("POST", f"runs/{run['id']}/rerun", {"fresh_code": 0})
    assert status == 400 and answer["problems"][0]["key"] == "fresh_code"


def test_cli_and_python_api_get_the_same_limits_as_user_input_errors():
    with pytest.raises(UserInputError) as err:
        SubmitRequest(project="toy", run_name="r" * (limits.MAX_RUN_NAME_LENGTH + 1))
    assert [p.key for p in err.value.problems] == ["run_name"]
    with pytest.raises(UserInputError):
        RerunRequest(parameters={"lr": float("nan")})


# ------------------------------------------------------------------ query arguments and paths


@pytest.mark.parametrize("path, params, key", [
    ("runs", {"offset": str(2**63)}, "offset"),
    ("runs-view/rows", {"offset": str(2**63)}, "offset"),
    ("runs-view/rows", {"limit": "9" * 5000}, "limit"),
    ("experiments", {"limit": "1001"}, "limit"),
    ("runs", {"since": "nan"}, "since"),
    ("runs", {"state": "FAILED,"}, "state"),
    ("runs-view/histories", {"run": "abcd", "max_points": "1"}, "max_points"),
    ("runs-view/metrics", {"run": "ab/cd"}, "run"),
    ("project", {"path": "p" * 300}, "path"),
])
async def test_query_arguments_out_of_range_are_400(api, toy_project, path, params, key):
    status, answer = await api("GET", path, **params)
    assert status == 400 and answer["problems"][0]["key"] == key, answer


async def test_log_offset_far_beyond_the_end_is_an_empty_chunk(api, toy_project):
    run = await wait_for_state(api, (await submit_run(api, entry_point="fail"))["id"], TERMINAL)
    offset = 10**17  # below 2**63, beyond what lseek takes on common file systems
    status, chunk = await api("GET", f"runs/{run['id']}/logs/stdout", offset=offset)
    assert status == 200 and chunk["data"] == "" and chunk["next_offset"] == offset


async def test_unknown_api_paths_are_json_404(api):
    status, answer = await api("GET", "runs/not-an-id%C3%A9/logs/stdout")
    assert status == 404 and "no such API path" in answer["message"]
    status, answer = await api("GET", "no/such/thing")
    assert status == 404 and answer["problems"] == []


async def test_method_not_allowed_lists_the_allowed_ones(jp_fetch):
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("hpcml", "api", "runs", method="PUT", body="{}")
    assert err.value.code == 405
    assert set(err.value.response.headers["Allow"].split(", ")) >= {"GET", "POST"}


# ------------------------------------------------------------------ files


async def test_a_huge_file_named_as_config_is_refused_unread(api, toy_project):
    big = toy_project / "big.yaml"
    with big.open("wb") as f:  # sparse: 100 MB without using the disk
        f.truncate(100 << 20)
    status, answer = await api("POST", "runs", {"project": "toy", "backend_config": "big.yaml"})
    assert status == 400, answer
    assert f"larger than {limits.MAX_CONFIG_BYTES} bytes" in answer["message"]
    assert await total_runs(api) == 0


def test_cli_prints_a_limit_as_one_line_and_submits_nothing(tmp_path, hpcml_data):
    project = tmp_path / "toy"
    shutil.copytree(TOY_PROJECT, project)
    proc = subprocess.run(
        [sys.executable, "-m", "jupyterlab_hpcml.cli", "submit", str(project), "-e", "args",
         "-P", "value=x", "--run-name", "r" * (limits.MAX_RUN_NAME_LENGTH + 1)],
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("hpcml: run_name: ")
    assert str(limits.MAX_RUN_NAME_LENGTH) in proc.stderr
    assert not (hpcml_data / "runs").exists() or not any((hpcml_data / "runs").iterdir())
