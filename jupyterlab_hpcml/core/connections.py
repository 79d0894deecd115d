"""Connection identity: which remote system a backend config talks to, and where its
secrets travel.

:func:`connection_identity` is the one place that decides it. The config (run records,
the UI), the backend registry (one backend per connection), the backends and the
credentials store (credentials are kept per identity) all call it, so that a secret
entered for one config is never sent to a token endpoint or API another config names.

The identity holds every field that decides where a secret goes:

* FirecREST: API URL, OIDC token URL (the client secret is posted there), machine;
* UNICORE: the site's API URL (user name/password or bearer token go there);
* Slurm over SSH: user, host, port and jump hosts (the SSH agent signs for each);
* local (and any other kind): the kind alone.

:func:`endpoint_problems` refuses URLs that would carry a secret in clear text: only
``https://`` is accepted, ``http://`` only on loopback (127.0.0.0/8, ::1, localhost).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Config keys holding a URL that receives a secret, as key paths.
ENDPOINT_KEYS: tuple[tuple[str, ...], ...] = (
    ("UnicoreApiUrl",),
    ("Firecrest", "ApiUrl"),
    ("Firecrest", "TokenUrl"),
)


@dataclass(frozen=True)
class ConnectionIdentity:
    """Equal identities (``key``) share one backend and one set of stored credentials."""

    kind: str
    key: tuple[str, ...]  # exact fields, compared as a tuple (no string joining to fool)
    name: str = field(compare=False)  # for people, run records and poll groups
    api_url: str | None = field(default=None, compare=False)
    token_url: str | None = field(default=None, compare=False)

    def secret_destination(self, fields: list[str] | set[str] | tuple[str, ...]) -> str | None:
        """The URL the secret among ``fields`` is sent to: a FirecREST client secret to
        the token endpoint, everything else (API key, password, token) to the API."""
        if "client_secret" in fields and self.token_url:
            return self.token_url
        return self.api_url

    def endpoints(self) -> dict[str, str]:
        """The URLs secrets of this connection go to (for answers and dialogs)."""
        out = {"api_url": self.api_url, "token_url": self.token_url}
        return {k: v for k, v in out.items() if v}


def connection_identity(kind: str, data: Mapping[str, Any]) -> ConnectionIdentity:
    """The identity of the connection a backend config (``data``, as written) describes.

    Tolerates missing fields (an empty config gives a nameless identity), so backends
    built for their feature list need no full config.
    """
    if kind == "firecrest":
        fc = _section(data, "Firecrest")
        # The token URL exactly as posted to; API URLs without a trailing "/", as used.
        api, token = _url(fc.get("ApiUrl")), str(fc.get("TokenUrl") or "")
        machine = str(fc.get("Machine") or "")
        return ConnectionIdentity(
            kind, (kind, api, token, machine), f"firecrest:{api}#{machine} token={token}",
            api_url=api, token_url=token,
        )
    if kind == "unicore":
        api = _url(data.get("UnicoreApiUrl"))
        return ConnectionIdentity(kind, (kind, api), f"unicore:{api}", api_url=api)
    if kind == "ssh":
        ssh = _section(data, "SSH")
        user, host = str(ssh.get("User") or ""), str(ssh.get("Hostname") or "")
        port = str(int(ssh.get("Port") or 22))
        jump = str(ssh.get("ProxyJump") or "")
        name = f"ssh:{user + '@' if user else ''}{host}:{port}" + (f" via {jump}" if jump else "")
        return ConnectionIdentity(kind, (kind, user, host, port, jump), name)
    return ConnectionIdentity(kind, (kind,), kind)


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def _url(value: Any) -> str:
    return str(value or "").strip().rstrip("/")


# ------------------------------------------------------------ secure endpoints


def is_loopback_host(host: str | None) -> bool:
    """127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) or the name ``localhost``."""
    if not host:
        return False
    host = host.lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def url_problem(url: str) -> str | None:
    """Why ``url`` must not receive a secret, or None. Only https:// — or http:// to a
    loopback host (test servers, SSH tunnels) — and no user name/password in the URL."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return None  # not a URL at all: the schema's pattern says so
    if parts.username is not None or parts.password is not None:
        return "must not contain a user name or password: credentials never go in the config file"
    scheme = parts.scheme.lower()
    if scheme == "https" or (scheme == "http" and is_loopback_host(host)):
        return None
    if scheme == "http":
        return (f"must be an https:// URL, got {url!r}: http:// would send credentials "
                "unencrypted (http:// is accepted only for a loopback host: 127.0.0.1, ::1, "
                "localhost)")
    return None  # other schemes fail the schema's pattern


def endpoint_problems(data: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """(key path, message) for each URL in a backend config that must not carry a secret."""
    found = []
    for path in ENDPOINT_KEYS:
        value: Any = data
        for part in path:
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, str):
            message = url_problem(value)
            if message:
                found.append((path, message))
    return found


def insecure_endpoint(identity: ConnectionIdentity) -> str | None:
    """The first URL of ``identity`` that must not receive a secret, with why, or None
    (a last check before credentials leave, for configs stored before the rule)."""
    for url in (identity.token_url, identity.api_url):
        if url:
            message = url_problem(url)
            if message:
                return message
    return None
