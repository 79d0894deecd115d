"""Credentials go only where they were entered for (security finding 3 of issue 9).

Through the real Jupyter server with the extension, the real pyfirecrest/pyunicore clients
and the loopback FirecREST/UNICORE test servers: a client secret entered for config A
(token endpoint X) is never posted to the token endpoint Y of config B with the same API
URL and machine; a second loopback endpoint records everything it receives. ``http://``
URLs off loopback are refused when a config is loaded; the answers say where a stored
secret goes and never show it.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import tornado.web
import yaml

from jupyterlab_hpcml.backends.firecrest import FirecrestBackend
from jupyterlab_hpcml.core.errors import UserInputError
from jupyterlab_hpcml.engine.config import load_backend_config

from .servers._common import ServerThread
from .servers.firecrest_server import FirecrestServer
from .servers.unicore_server import UnicoreServer

CLIENT_ID = "hpcml-test-client"
CANARY = "canary-fc-3c9e41d7-secret"  # the client secret entered for config A
ENV_VARS = (
    "HPCML_FIRECREST_CLIENT_ID", "HPCML_FIRECREST_CLIENT_SECRET", "MANTIK_FIRECREST_CLIENT_ID",
    "MANTIK_FIRECREST_CLIENT_SECRET", "FIRECREST_CLIENT_ID", "FIRECREST_CLIENT_SECRET",
    "HPCML_FIRECREST_API_KEY", "HPCML_FIRECREST_TOKEN_COMMAND", "HPCML_UNICORE_USERNAME",
    "HPCML_UNICORE_PASSWORD", "MANTIK_UNICORE_USERNAME", "MANTIK_UNICORE_PASSWORD",
    "HPCML_UNICORE_TOKEN", "HPCML_CREDENTIAL_URLS",
)


class Recorder:
    """A loopback HTTP endpoint that records every request (method, path, headers, body)
    and refuses it as an OIDC token endpoint would refuse unknown clients."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        recorder = self

        class Handler(tornado.web.RequestHandler):
            def prepare(self) -> None:
                with recorder._lock:
                    recorder.requests.append({
                        "method": self.request.method, "path": self.request.path,
                        "headers": dict(self.request.headers),
                        "body": self.request.body.decode("utf-8", "replace")})
                self.set_status(401)
                self.finish({"error": "invalid_client"})

        self._thread = ServerThread(lambda: tornado.web.Application([(r"/.*", Handler)]))

    def start(self) -> Recorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._thread.stop()

    @property
    def url(self) -> str:
        return self._thread.url

    def seen(self) -> str:
        """Everything received, as one text to search for secrets."""
        with self._lock:
            return json.dumps(self.requests)


@pytest.fixture
def no_env_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def firecrest(tmp_path: Path, no_env_credentials):
    server = FirecrestServer(tmp_path / "cluster", clients={CLIENT_ID: CANARY}).start()
    yield server
    server.stop()


@pytest.fixture
def recorder():
    endpoint = Recorder().start()
    yield endpoint
    endpoint.stop()


def fc_config(api_url: str, token_url: str) -> dict[str, Any]:
    return {"Firecrest": {"ApiUrl": api_url, "TokenUrl": token_url, "Machine": "cluster"},
            "Resources": {"Queue": "normal", "Runtime": "10m"}}


@pytest.fixture
def two_configs(toy_project: Path, firecrest: FirecrestServer, recorder: Recorder) -> Path:
    """a.yaml: the FirecREST server and its token endpoint X; b.yaml: the same API URL and
    machine with another token endpoint Y (the recorder)."""
    (toy_project / "a.yaml").write_text(
        yaml.safe_dump(fc_config(firecrest.url, firecrest.token_url)))
    (toy_project / "b.yaml").write_text(
        yaml.safe_dump(fc_config(firecrest.url, f"{recorder.url}/realms/x/token")))
    return toy_project


def body(config: str) -> dict[str, Any]:
    return {"project": "toy", "backend_config": config, "parameters": {"steps": 1}}


async def test_secret_stored_for_one_token_url_is_never_posted_to_another(
    api, two_configs, firecrest, recorder, lab_credentials, log_records
):
    token_y = f"{recorder.url}/realms/x/token"
    status, stored = await api("PUT", "credentials", {
        "project": "toy", "backend_config": "a.yaml",
        "values": {"client_id": CLIENT_ID, "client_secret": CANARY}})
    assert status == 200, stored
    assert stored["token_url"] == firecrest.token_url == stored["secret_sent_to"]
    assert stored["api_url"] == firecrest.url

    # Config B names the same API URL and machine, but another token endpoint: asked again.
    status, missing = await api("POST", "runs", body("b.yaml"))
    assert status == 400, missing
    assert missing["reason"] == "credentials_missing"
    assert missing["connection"] != stored["connection"]
    assert missing["token_url"] == token_y and missing["api_url"] == firecrest.url
    assert f"belong to the token endpoint {firecrest.token_url}" in missing["message"]
    assert f"are not sent to {token_y}" in missing["message"]
    assert recorder.requests == []

    # Config A works with its own token endpoint ...
    status, run = await api("POST", "runs", body("a.yaml"))
    assert status == 201, run
    assert firecrest.state.tokens.issued >= 1
    # ... and B still does not get its secret, nor A's backend.
    status, missing = await api("POST", "runs", body("b.yaml"))
    assert status == 400 and missing["reason"] == "credentials_missing", missing
    assert recorder.requests == []

    status, listing = await api("GET", "credentials")
    assert status == 200 and listing == {"connections": [stored]}
    assert CANARY not in json.dumps(listing) + json.dumps(stored) + json.dumps(missing)

    # Credentials entered for B go to B's endpoint, and only they do.
    status, answer = await api("PUT", "credentials", {
        "project": "toy", "backend_config": "b.yaml",
        "values": {"client_id": "b-client", "client_secret": "b-secret-for-y"}})
    assert status == 200 and answer["secret_sent_to"] == token_y
    await api("POST", "runs", body("b.yaml"))  # Y refuses it; the run fails, which is fine
    assert "b-secret-for-y" in recorder.seen()
    assert CANARY not in recorder.seen()
    assert CANARY not in "\n".join(log_records)


async def test_environment_credentials_can_be_pinned_to_endpoints(
    api, two_configs, firecrest, recorder, monkeypatch
):
    monkeypatch.setenv("MANTIK_FIRECREST_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("MANTIK_FIRECREST_CLIENT_SECRET", CANARY)
    monkeypatch.setenv("HPCML_CREDENTIAL_URLS", f"{firecrest.url} {firecrest.token_url}")
    status, missing = await api("POST", "runs", body("b.yaml"))
    assert status == 400 and missing["reason"] == "credentials_missing", missing
    assert "is not in HPCML_CREDENTIAL_URLS" in missing["message"]
    assert recorder.requests == []
    status, run = await api("POST", "runs", body("a.yaml"))
    assert status == 201, run


@pytest.mark.parametrize("key, url", [
    ("Firecrest.TokenUrl", "http://auth.example.org/realms/x/token"),
    ("Firecrest.ApiUrl", "http://firecrest.example.org"),
    ("Firecrest.TokenUrl", "http://127.0.0.1.nip.io/token"),
    ("Firecrest.TokenUrl", "http://localhost.example.org/token"),
    ("Firecrest.TokenUrl", "http://10.0.0.1/token"),
    ("UnicoreApiUrl", "http://unicore.example.org:8080/SITE/rest/core"),
])
async def test_http_urls_off_loopback_are_refused_at_load(
    api, toy_project, firecrest, lab_credentials, key, url
):
    if key == "UnicoreApiUrl":
        data: dict[str, Any] = {"UnicoreApiUrl": url, "Resources": {"Queue": "batch"}}
    else:
        data = fc_config(firecrest.url, firecrest.token_url)
        data["Firecrest"][key.split(".")[1]] = url
    (toy_project / "insecure.yaml").write_text(yaml.safe_dump(data))

    for method, path, payload in (
        ("POST", "runs", body("insecure.yaml")),
        ("PUT", "credentials", {"project": "toy", "backend_config": "insecure.yaml",
                                "values": {"client_id": CLIENT_ID, "client_secret": CANARY}}),
    ):
        status, answer = await api(method, path, payload)
        assert status == 400, answer
        (problem,) = answer["problems"]
        assert problem["key"] == key and problem["file"].endswith("insecure.yaml")
        assert problem["message"].startswith(f"must be an https:// URL, got {url!r}")
        assert "loopback" in problem["message"]
    assert lab_credentials.known() == []  # nothing was stored

    # The sidebar lists the config with the same problem.
    status, project = await api("GET", "project", path="toy")
    (entry,) = [c for c in project["backend_configs"] if c["path"] == "insecure.yaml"]
    assert entry["problems"][0]["key"] == key


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/token", "http://127.8.9.10/token", "http://[::1]:8000/token",
    "http://localhost:8000/token", "http://LOCALHOST/token", "https://auth.example.org/token",
])
def test_loopback_http_and_https_are_accepted(tmp_path: Path, url: str) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(fc_config("https://firecrest.example.org", url)))
    cfg = load_backend_config(path)
    assert cfg.identity.token_url == url and f"token={url}" in cfg.connection_name


def test_url_with_user_and_password_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "userinfo.yaml"
    path.write_text(yaml.safe_dump(fc_config("https://me:pw@firecrest.example.org", "https://a/t")))
    with pytest.raises(UserInputError) as err:
        load_backend_config(path)
    assert err.value.problems[0].key == "Firecrest.ApiUrl"
    assert "must not contain a user name or password" in err.value.problems[0].message


def test_backend_from_a_stored_http_config_does_not_hand_out_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_env_credentials
) -> None:
    # A run record stored before the rule still names an http:// token endpoint.
    monkeypatch.setenv("MANTIK_FIRECREST_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("MANTIK_FIRECREST_CLIENT_SECRET", CANARY)
    stored = fc_config("https://fc.example.org", "http://auth.example.org/t")
    backend = FirecrestBackend(stored, tmp_path)
    with pytest.raises(UserInputError) as err:
        backend.check_ready()
    assert "credentials are not sent to" in str(err.value) and CANARY not in str(err.value)


# ---------------------------------------------------------------- UNICORE


@pytest.fixture
def unicore(tmp_path: Path, no_env_credentials):
    server = UnicoreServer(tmp_path / "unicore", users={"demouser": CANARY}).start()
    yield server
    server.stop()


async def test_unicore_password_goes_only_to_the_site_it_was_entered_for(
    api, toy_project, unicore, recorder, lab_credentials
):
    res = {"Queue": "batch", "Runtime": "10m", "Account": "proj1"}
    (toy_project / "site.yaml").write_text(yaml.safe_dump({"UnicoreApiUrl": unicore.base_url,
                                                            "Resources": res}))
    other = f"{recorder.url}/OTHER/rest/core"
    (toy_project / "other.yaml").write_text(
        yaml.safe_dump({"UnicoreApiUrl": other, "Resources": res}))
    status, stored = await api("PUT", "credentials", {
        "project": "toy", "backend_config": "site.yaml",
        "values": {"username": "demouser", "password": CANARY}})
    assert status == 200, stored
    assert stored["api_url"] == unicore.base_url.rstrip("/") == stored["secret_sent_to"]
    assert "token_url" not in stored

    status, missing = await api("POST", "runs", body("other.yaml"))
    assert status == 400 and missing["reason"] == "credentials_missing", missing
    assert missing["api_url"] == other and "token_url" not in missing
    assert recorder.requests == []
    status, listing = await api("GET", "credentials")
    assert listing == {"connections": [stored]} and CANARY not in json.dumps(listing)
