"""Credentials for the HTTP-API backends (FirecREST, UNICORE): from the environment or memory.

Nothing here is ever written to disk, a run record, a log or a response:

* values are wrapped in :class:`Secret`, whose ``repr``/``str`` is ``***``;
* the in-memory store (:data:`MEMORY`) holds what a user typed once in the UI, per
  connection identity (:mod:`..core.connections`: for FirecREST the API URL, the
  token URL and the machine), for the life of the server process only, so a secret
  only ever goes to the endpoints of the config it was entered for;
* credentials are never handed out for an ``http://`` URL off loopback;
* environment variable names follow Mantik where Mantik has one, so an existing
  Mantik setup works unchanged:

==============================  ==================================================
FirecREST client credentials    ``HPCML_FIRECREST_CLIENT_ID`` / ``_CLIENT_SECRET``,
                                ``MANTIK_FIRECREST_CLIENT_ID`` / ``_CLIENT_SECRET``,
                                ``FIRECREST_CLIENT_ID`` / ``FIRECREST_CLIENT_SECRET``
FirecREST API key               ``HPCML_FIRECREST_API_KEY`` (header ``X-API-Key``)
FirecREST token command         ``HPCML_FIRECREST_TOKEN_COMMAND`` (stdout = bearer token)
UNICORE user name / password    ``HPCML_UNICORE_USERNAME`` / ``_PASSWORD``,
                                ``MANTIK_UNICORE_USERNAME`` / ``_PASSWORD``
UNICORE bearer (OIDC) token     ``HPCML_UNICORE_TOKEN``
==============================  ==================================================

The first complete set found wins (memory before environment, HPCML before MANTIK).
Environment credentials go to whatever endpoint the config in use names, unless
``HPCML_CREDENTIAL_URLS`` lists the only URLs they may go to.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from ..core.connections import ConnectionIdentity, insecure_endpoint
from ..core.errors import Problem, UserInputError


class Secret:
    """A string that never shows itself: ``repr``, ``str`` and f-strings give ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = str(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


# Per backend kind, the alternative complete sets of fields a user may enter in the UI.
FIELDS: dict[str, list[list[str]]] = {
    "firecrest": [["client_id", "client_secret"], ["api_key"]],
    "unicore": [["username", "password"], ["token"]],
}


class CredentialsMissing(UserInputError):
    """No credentials for a connection: the message says which variables to set, and
    ``details`` tells the UI what to ask for (kind, connection, field sets) and where the
    secret would be sent (``api_url``, and ``token_url`` for FirecREST)."""

    def __init__(self, problem: Problem, *, identity: ConnectionIdentity):
        super().__init__(problem)
        self.details = {"reason": "credentials_missing", "kind": identity.kind,
                        "connection": identity.name, "fields": FIELDS[identity.kind],
                        **identity.endpoints()}


def _secure(identity: ConnectionIdentity) -> None:
    """Refuse to hand out credentials for a URL that would carry them in clear text: the
    config check catches this at load; this catches configs stored before that rule."""
    message = insecure_endpoint(identity)
    if message:
        raise UserInputError(
            Problem(f"credentials are not sent to {identity.name}: the URL {message}"))


def _elsewhere(identity: ConnectionIdentity) -> str:
    """A note when the lab holds credentials for the same API but another token endpoint:
    they are not sent here, so the user is asked again."""
    others = sorted({i.token_url or "" for i, _ in MEMORY.entries() if i != identity
                     and i.kind == identity.kind and i.api_url == identity.api_url})
    if identity.kind != "firecrest" or not others:
        return ""
    return (f". Credentials entered in the lab for {identity.api_url} belong to the token endpoint "
            f"{', '.join(others)} and are not sent to {identity.token_url}")


def checked_values(kind: str, values: Any) -> dict[str, str]:
    """Exactly one complete set of ``FIELDS[kind]`` with non-empty strings, or UserInputError."""
    if kind not in FIELDS:
        raise UserInputError(
            Problem(f"a {kind} backend takes no credentials", key="backend_config"))
    if not isinstance(values, dict):
        raise UserInputError(Problem("must be an object of field names to values", key="values"))
    sets = FIELDS[kind]
    known = {f for s in sets for f in s}
    problems = [Problem(f"unknown field; expected one of: {', '.join(' + '.join(s) for s in sets)}",
                        key=f"values.{k}") for k in values if k not in known]
    given = {k: v for k, v in values.items() if k in known}
    problems += [Problem("must be a non-empty string", key=f"values.{k}")
                 for k, v in given.items() if not isinstance(v, str) or not v.strip()]
    if not problems and sorted(given) not in [sorted(s) for s in sets]:
        problems.append(Problem(
            f"give exactly one of: {'; '.join(' + '.join(s) for s in sets)}", key="values"))
    if problems:
        raise UserInputError(problems)
    return {k: str(v).strip() if k in ("client_id", "username") else str(v)
            for k, v in given.items()}


# ---------------------------------------------------------------- in-memory store


class MemoryStore:
    """Credentials typed in the UI, per connection identity; process memory only.

    Kept per :class:`~..core.connections.ConnectionIdentity` (for FirecREST: API URL,
    token URL and machine), so credentials entered for one config are never handed to
    a config that would send them to another token endpoint or API.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[ConnectionIdentity, dict[str, Secret | str]] = {}
        self._versions: dict[ConnectionIdentity, int] = {}

    def set(self, identity: ConnectionIdentity, values: dict[str, Any]) -> None:
        clean = {k: (Secret(v) if _is_secret_field(k) else str(v)) for k, v in values.items() if v}
        with self._lock:
            self._data[identity] = clean
            self._versions[identity] = self._versions.get(identity, 0) + 1

    def version(self, identity: ConnectionIdentity) -> int:
        """Changes whenever the connection's credentials are set or forgotten: a backend
        holding a client made with older ones makes a new client."""
        with self._lock:
            return self._versions.get(identity, 0)

    def get(self, identity: ConnectionIdentity) -> dict[str, Secret | str]:
        with self._lock:
            return dict(self._data.get(identity, {}))

    def forget(self, connection: ConnectionIdentity | str) -> None:
        """Forget one identity's credentials, or, given a name, those of every identity
        of that name."""
        with self._lock:
            for identity in [i for i in self._data if connection in (i, i.name)]:
                del self._data[identity]
                self._versions[identity] = self._versions.get(identity, 0) + 1

    def known(self) -> list[str]:
        """Names of the connections with credentials in memory."""
        with self._lock:
            return sorted({i.name for i in self._data})

    def entries(self) -> list[tuple[ConnectionIdentity, list[str]]]:
        """Each identity with credentials in memory and the names of its fields (no values)."""
        with self._lock:
            return sorted(((i, sorted(v)) for i, v in self._data.items()), key=lambda e: e[0].name)


MEMORY = MemoryStore()


def describe(identity: ConnectionIdentity, fields: list[str]) -> dict[str, Any]:
    """What the lab is told about stored credentials: the connection, the field names and
    where the secret goes (``secret_sent_to``), never a value."""
    return {"connection": identity.name, "kind": identity.kind, "fields": sorted(fields),
            **identity.endpoints(), "secret_sent_to": identity.secret_destination(fields)}


def _is_secret_field(name: str) -> bool:
    return name in ("client_secret", "password", "token", "api_key")


def _env(*names: str) -> tuple[str, str] | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return name, value
    return None


# ---------------------------------------------------------------- FirecREST


@dataclass(frozen=True)
class FirecrestCredentials:
    method: str  # "client_credentials" | "api_key" | "token_command"
    client_id: str | None = None
    client_secret: Secret | None = None
    api_key: Secret | None = None
    token_command: Secret | None = None
    source: str = ""  # where they came from, for messages ("MANTIK_FIRECREST_CLIENT_ID", "memory")


FIRECREST_ID_VARS = (
    "HPCML_FIRECREST_CLIENT_ID", "MANTIK_FIRECREST_CLIENT_ID", "FIRECREST_CLIENT_ID",
)
FIRECREST_SECRET_VARS = (
    "HPCML_FIRECREST_CLIENT_SECRET", "MANTIK_FIRECREST_CLIENT_SECRET", "FIRECREST_CLIENT_SECRET",
)


def firecrest_credentials(identity: ConnectionIdentity) -> FirecrestCredentials:
    """The credentials for this FirecREST connection: those entered in the lab for exactly
    this identity (API URL, token URL, machine), else the environment's."""
    _secure(identity)
    mem = MEMORY.get(identity)
    if mem.get("client_id") and mem.get("client_secret"):
        return FirecrestCredentials("client_credentials", str(mem["client_id"]),
                                    _as_secret(mem["client_secret"]), source="memory")
    if mem.get("api_key"):
        return FirecrestCredentials("api_key", api_key=_as_secret(mem["api_key"]), source="memory")
    pinned = _env_refused(identity)
    if not pinned:
        for id_var, secret_var in zip(FIRECREST_ID_VARS, FIRECREST_SECRET_VARS, strict=True):
            cid, secret = os.environ.get(id_var), os.environ.get(secret_var)
            if cid and secret:
                return FirecrestCredentials("client_credentials", cid, Secret(secret),
                                            source=id_var)
        found = _env("HPCML_FIRECREST_API_KEY")
        if found:
            return FirecrestCredentials("api_key", api_key=Secret(found[1]), source=found[0])
        found = _env("HPCML_FIRECREST_TOKEN_COMMAND")
        if found:
            return FirecrestCredentials("token_command", token_command=Secret(found[1]),
                                        source=found[0])
    raise CredentialsMissing(Problem(
        "no FirecREST credentials: set MANTIK_FIRECREST_CLIENT_ID and "
        "MANTIK_FIRECREST_CLIENT_SECRET (or HPCML_FIRECREST_CLIENT_ID/_SECRET, "
        "HPCML_FIRECREST_API_KEY, HPCML_FIRECREST_TOKEN_COMMAND) in the environment of the "
        "Jupyter server, or enter them in the UI" + pinned + _elsewhere(identity),
        key="Firecrest",
    ), identity=identity)


# ---------------------------------------------------------------- UNICORE


@dataclass(frozen=True)
class UnicoreCredentials:
    method: str  # "basic" | "bearer"
    username: str | None = None
    password: Secret | None = None
    token: Secret | None = None
    source: str = ""


UNICORE_USER_VARS = ("HPCML_UNICORE_USERNAME", "MANTIK_UNICORE_USERNAME")
UNICORE_PASSWORD_VARS = ("HPCML_UNICORE_PASSWORD", "MANTIK_UNICORE_PASSWORD")


def unicore_credentials(identity: ConnectionIdentity) -> UnicoreCredentials:
    """The credentials for this UNICORE site: those entered in the lab for exactly this
    API URL, else the environment's."""
    _secure(identity)
    mem = MEMORY.get(identity)
    if mem.get("username") and mem.get("password"):
        return UnicoreCredentials("basic", str(mem["username"]), _as_secret(mem["password"]),
                                  source="memory")
    if mem.get("token"):
        return UnicoreCredentials("bearer", token=_as_secret(mem["token"]), source="memory")
    pinned = _env_refused(identity)
    if not pinned:
        for user_var, pw_var in zip(UNICORE_USER_VARS, UNICORE_PASSWORD_VARS, strict=True):
            user, pw = os.environ.get(user_var), os.environ.get(pw_var)
            if user and pw:
                return UnicoreCredentials("basic", user, Secret(pw), source=user_var)
        found = _env("HPCML_UNICORE_TOKEN")
        if found:
            return UnicoreCredentials("bearer", token=Secret(found[1]), source=found[0])
    raise CredentialsMissing(Problem(
        "no UNICORE credentials: set MANTIK_UNICORE_USERNAME and MANTIK_UNICORE_PASSWORD "
        "(or HPCML_UNICORE_USERNAME/_PASSWORD, or HPCML_UNICORE_TOKEN for a bearer token) in the "
        "environment of the Jupyter server, or enter them in the UI" + pinned,
        key="UnicoreApiUrl",
    ), identity=identity)


# ---------------------------------------------------------------- environment pin

CREDENTIAL_URLS_VAR = "HPCML_CREDENTIAL_URLS"


def _env_refused(identity: ConnectionIdentity) -> str:
    """Why the environment's credentials are not used for ``identity`` ("" if they are).

    With ``HPCML_CREDENTIAL_URLS`` (URLs separated by spaces or commas) set, credentials
    from the environment go only to those token endpoints and APIs, whatever URL a
    project's config names; unset, they go to any (https) endpoint, as with Mantik.
    """
    listed = os.environ.get(CREDENTIAL_URLS_VAR, "").replace(",", " ").split()
    allowed = {u.rstrip("/") for u in listed}
    if not allowed:
        return ""
    outside = [u for u in identity.endpoints().values() if u.rstrip("/") not in allowed]
    if not outside:
        return ""
    return (f". The environment's credentials are not used: {', '.join(outside)} "
            f"{'is' if len(outside) == 1 else 'are'} not in {CREDENTIAL_URLS_VAR}")


def _as_secret(value: Secret | str) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


# ---------------------------------------------------------------- OIDC client credentials


class AuthenticationError(Exception):
    """The identity provider or API refused our credentials (not a network fault)."""


class TokenEndpointUnavailable(Exception):
    """The token endpoint could not be reached or answered 5xx: try again later."""


class AsyncClientCredentialsAuth:
    """OIDC client-credentials tokens with an awaitable ``auth_headers()`` for ``AsyncFirecrest``.

    pyfirecrest's ``ClientCredentialsAuth`` refreshes with a blocking ``requests`` call
    on the event loop; this one uses ``httpx.AsyncClient`` with a timeout, refreshes a
    little before expiry, and lets only one refresh run at a time.
    """

    def __init__(self, client_id: str, client_secret: Secret, token_url: str,
                 timeout: float = 15.0, min_remaining: float = 10.0):
        self.client_id = client_id
        self._secret = client_secret
        self.token_url = token_url
        self.timeout = timeout
        self.min_remaining = min_remaining
        self._token: Secret | None = None
        self._expires_at = 0.0
        self._lock: asyncio.Lock | None = None
        self.refreshes = 0  # how many tokens were fetched (tests, bench)

    def __repr__(self) -> str:
        return (f"AsyncClientCredentialsAuth(client_id={self.client_id!r}, "
                f"token_url={self.token_url!r})")

    def invalidate(self) -> None:
        self._token = None
        self._expires_at = 0.0

    def _valid(self) -> bool:
        return self._token is not None and time.monotonic() < self._expires_at - self.min_remaining

    async def get_access_token(self) -> str:
        if self._valid():
            assert self._token is not None
            return self._token.reveal()
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._valid():
                await self._refresh()
        assert self._token is not None
        return self._token.reveal()

    async def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.get_access_token()}"}

    async def _refresh(self) -> None:
        data = {"grant_type": "client_credentials", "client_id": self.client_id,
                "client_secret": self._secret.reveal()}
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                resp = await http.post(self.token_url, data=data)
        except httpx.HTTPError as exc:
            raise TokenEndpointUnavailable(
                f"the OIDC token endpoint {self.token_url} cannot be reached ({type(exc).__name__})"
            ) from None
        if resp.status_code in (400, 401, 403):
            raise AuthenticationError(
                f"the OIDC token endpoint {self.token_url} refused the client credentials of "
                f"client id {self.client_id!r} (HTTP {resp.status_code}{_oidc_error(resp)}): "
                "check MANTIK_FIRECREST_CLIENT_ID / MANTIK_FIRECREST_CLIENT_SECRET"
            )
        if resp.status_code >= 300:
            raise TokenEndpointUnavailable(
                f"the OIDC token endpoint {self.token_url} answered HTTP {resp.status_code}"
            )
        try:
            body = resp.json()
            token = body["access_token"]
            lifetime = float(body.get("expires_in") or 300)
        except (ValueError, KeyError, TypeError):
            raise TokenEndpointUnavailable(
                f"the OIDC token endpoint {self.token_url} answered without an access token"
            ) from None
        self._token = Secret(token)
        self._expires_at = time.monotonic() + lifetime
        self.refreshes += 1


def _oidc_error(resp: httpx.Response) -> str:
    try:
        err = resp.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return f" {err}" if isinstance(err, str) and len(err) < 80 else ""


class AsyncTokenCommandAuth:
    """A bearer token printed by a command (e.g. an OIDC agent), run without blocking the loop."""

    def __init__(self, command: Secret, cache_seconds: float = 60.0):
        self._command = command
        self.cache_seconds = cache_seconds
        self._token: Secret | None = None
        self._at = 0.0

    def __repr__(self) -> str:
        return "AsyncTokenCommandAuth(command='***')"

    def invalidate(self) -> None:
        self._token = None

    async def auth_headers(self) -> dict[str, str]:
        if self._token is None or time.monotonic() - self._at > self.cache_seconds:
            proc = await asyncio.create_subprocess_shell(
                self._command.reveal(), stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            out, _ = await proc.communicate()
            token = out.decode().strip()
            if proc.returncode != 0 or not token:
                raise AuthenticationError(
                    "the token command (HPCML_FIRECREST_TOKEN_COMMAND) failed with exit code "
                    f"{proc.returncode}" if proc.returncode
                    else "the token command (HPCML_FIRECREST_TOKEN_COMMAND) printed no token"
                )
            self._token, self._at = Secret(token), time.monotonic()
        return {"Authorization": f"Bearer {self._token.reveal()}"}


class ApiKeyHeaderAuth:
    def __init__(self, api_key: Secret, header: str = "X-API-Key"):
        self._key = api_key
        self.header = header

    def __repr__(self) -> str:
        return f"ApiKeyHeaderAuth(header={self.header!r}, api_key='***')"

    def invalidate(self) -> None:
        pass

    def auth_headers(self) -> dict[str, str]:
        return {self.header: self._key.reveal()}
