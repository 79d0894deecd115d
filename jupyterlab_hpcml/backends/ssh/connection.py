"""One long-lived SSH connection per cluster, shared by every run and every call.

* Opened on first use, reopened transparently after a drop (commands that are safe to
  repeat are retried once on a fresh connection); keepalives detect a dead peer.
* ``~/.ssh/config`` applies as for ``ssh``: a Hostname that is an alias brings its
  HostName, Port, User, IdentityFile, ProxyJump and UserKnownHostsFile; values in the
  backend config win. Keys come from the SSH agent or the identity files.
* Host keys are checked against known_hosts; an unknown or changed key is an error
  with a clear message, never accepted silently (``UserKnownHostsFile none`` too).
* ProxyJump (``SSH.ProxyJump`` or the alias's): the jump hosts are connected here, with
  the same config, keys and known_hosts as the cluster (see ``_open``).
* ``HPCML_SSH_CONFIG`` / ``HPCML_SSH_KNOWN_HOSTS`` (paths, ``os.pathsep``-separated)
  replace ``~/.ssh/config`` / ``~/.ssh/known_hosts``, e.g. for tests.

The command channel count is bounded (sshd's MaxSessions is 10 by default); SFTP uses
one persistent session. Everything is async: nothing here blocks the event loop.

Every command line is bounded (``MAX_COMMAND_BYTES``): sshd hands it to the login shell as
one argument, which Linux caps at 128 KiB ("Argument list too long"), and sshd drops the
whole connection on an SSH packet over 256 KiB ("Bad packet length"). Long lists go on
stdin, which streams. A command that was running when the connection dropped twice is
*poisoned*: it is not sent again unchanged for a while (``CommandPoisoned``), so a command
that kills the connection cannot do so on every reconnect; callers split their batch.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import posixpath
import re
import shlex
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from ...core.errors import BackendUnavailable, HpcmlError

log = logging.getLogger(__name__)

T = TypeVar("T")

CONNECT_TIMEOUT = 20.0
# asyncssh's ciphers, AES-GCM first: its chacha20-poly1305 makes a cipher context per packet
# in Python (about 3x the CPU time per uploaded byte), while AES-GCM runs in OpenSSL with
# AES-NI. The server still picks the first one it supports, so every default remains.
ENCRYPTION_ALGS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
                   "chacha20-poly1305@openssh.com", "aes256-ctr", "aes192-ctr", "aes128-ctr")
COMMAND_TIMEOUT = 120.0
MAX_CHANNELS = 6  # concurrent exec channels on the one connection
# The command line as sent (PATH export and csh base64 included): well below Linux's
# 128 KiB for one argument.
MAX_COMMAND_BYTES = 96 * 1024
POISON_STRIKES = 2  # drops while a command ran before it is not sent again unchanged
POISON_SECONDS = 600.0
_DROPS = (asyncssh.ConnectionLost, asyncssh.DisconnectError, asyncssh.ChannelOpenError,
          BrokenPipeError, ConnectionError, EOFError)


class SSHError(HpcmlError):
    """A definite SSH problem the user must fix (host key, authentication, config)."""

    status = 502


class ConnectionLost(BackendUnavailable):
    """The connection dropped while a command ran: it may or may not have taken effect."""


class CommandPoisoned(BackendUnavailable):
    """Not sent: this exact command was running each time the connection dropped lately."""


class CommandTooLong(HpcmlError):
    """A command line over ``MAX_COMMAND_BYTES`` (a caller must send its data on stdin)."""

    status = 400


@dataclass
class Result:
    exit_status: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", errors="replace").strip()


@dataclass
class Stats:
    """What travelled over the connection (the bench and the tests read these)."""

    connects: int = 0
    commands: Counter[str] = field(default_factory=Counter)  # first word of each command → count
    upload_bytes: int = 0  # file content sent by SFTP
    command_bytes: int = 0  # command lines + stdin sent
    largest_command: int = 0  # the longest command line sent (bytes)
    drops: int = 0  # connections lost while a command ran

    def snapshot(self) -> dict[str, Any]:
        return {"connects": self.connects, "commands": dict(self.commands),
                "upload_bytes": self.upload_bytes, "command_bytes": self.command_bytes,
                "largest_command": self.largest_command, "drops": self.drops}


def _paths_from_env(name: str) -> list[str] | None:
    value = os.environ.get(name)
    return [p for p in value.split(os.pathsep) if p] if value else None


class SSHConnection:
    """The shared connection to one cluster described by a backend config's ``SSH`` section."""

    def __init__(self, ssh: dict[str, Any]):
        self.ssh = dict(ssh or {})
        self.host = str(self.ssh.get("Hostname") or "")
        self.stats = Stats()
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = asyncio.Lock()
        self._sftp_lock = asyncio.Lock()
        self._channels = asyncio.Semaphore(MAX_CHANNELS)
        self.login_env: dict[str, str] = {}  # the login shell's environment (PATH, HOME, SCRATCH)
        self._closed = False
        self._dialing = ""  # the host being connected (the cluster or a jump host), for errors
        # sha256 of (command line, stdin) → (drops while it ran, poisoned until); bounded.
        self._strikes: dict[bytes, tuple[int, float]] = {}

    # ------------------------------------------------------------------ connecting

    @property
    def label(self) -> str:
        port = self.ssh.get("Port")
        user = self.ssh.get("User")
        return f"{user + '@' if user else ''}{self.host}{':' + str(port) if port else ''}"

    def _options(self, jump: str | None = None) -> asyncssh.SSHClientConnectionOptions:
        """The options for the cluster or, with ``jump`` ("[user@]host[:port]" or an alias),
        for a jump host on the way: the same config files, keys and known_hosts, but its own
        user and port (from ``jump`` or its Host entry, as with ``ssh -J``)."""
        kwargs: dict[str, Any] = {
            "connect_timeout": CONNECT_TIMEOUT,
            "keepalive_interval": 15,
            "keepalive_count_max": 3,
            "encryption_algs": ENCRYPTION_ALGS,
        }
        config = _paths_from_env("HPCML_SSH_CONFIG")
        if config is not None:
            kwargs["config"] = config
        host = self.host
        if jump is not None:
            host, port, user = _split_jump(jump)
            if port:
                kwargs["port"] = port
            if user:
                kwargs["username"] = user
        else:
            if self.ssh.get("Port"):
                kwargs["port"] = int(self.ssh["Port"])
            if self.ssh.get("User"):
                kwargs["username"] = str(self.ssh["User"])
            if self.ssh.get("ProxyJump"):  # only read by _open, which connects the jump hosts
                spec = str(self.ssh["ProxyJump"])
                kwargs["tunnel"] = None if spec.lower() == "none" else spec  # as ssh -J none
        if self.ssh.get("IdentityFile"):
            kwargs["client_keys"] = [str(Path(str(self.ssh["IdentityFile"])).expanduser())]
        known = _paths_from_env("HPCML_SSH_KNOWN_HOSTS")
        if known is not None:
            # A missing file means "no trusted keys" (every key is rejected), as for ssh.
            kwargs["known_hosts"] = [p for p in known if os.path.isfile(p)] or b""
        options = asyncssh.SSHClientConnectionOptions(host=host, **kwargs)
        if options.known_hosts is None:  # "UserKnownHostsFile none" would accept any key
            options = asyncssh.SSHClientConnectionOptions(
                options, known_hosts=str(Path("~/.ssh/known_hosts").expanduser())
            )
        return options

    async def connection(self) -> asyncssh.SSHClientConnection:
        """The open connection, (re)connecting if needed."""
        conn = self._conn
        if conn is not None and not conn.is_closed():
            return conn
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            if self._closed:
                raise BackendUnavailable(f"the connection to {self.label} was closed")
            self._sftp = None
            conn = await self._connect()
            self.stats.connects += 1
            if not self.login_env:
                # Before the connection is shared: callers that find it open (the fast
                # path above, no lock) read login_env at once (e.g. the base directory).
                try:
                    await self._load_login_env(conn)
                except BaseException:
                    conn.close()
                    raise
            self._conn = conn
            return conn

    async def _open(self, options: asyncssh.SSHClientConnectionOptions, host: str, *,
                    tunnel: asyncssh.SSHClientConnection | None = None,
                    via: tuple[str, ...] = ()) -> asyncssh.SSHClientConnection:
        """``asyncssh.connect`` through the ProxyJump hosts in ``options.tunnel``, if any.

        Why not let asyncssh do it: given a string, ``asyncssh.connect`` opens the jump hosts
        with its defaults only (~/.ssh/config, ~/.ssh/known_hosts, default keys, no keepalive),
        not with our IdentityFile, HPCML_SSH_CONFIG/_KNOWN_HOSTS or the "UserKnownHostsFile
        none" guard; and its ``tunnel=()`` default even drops the one in ``options`` (so
        SSH.ProxyJump was silently ignored). So each hop is connected here with ``_options(hop)``
        and handed on as a connection object; ``tunnel=None`` means a direct connection."""
        jumps = options.tunnel if tunnel is None and isinstance(options.tunnel, str) else ""
        if jumps and "," not in jumps and _split_jump(jumps)[0] == host:
            jumps = ""  # e.g. "Host * / ProxyJump gw" read for gw itself: ssh skips it too
        try:
            for hop in filter(None, jumps.split(",")):
                if hop in via or len(via) > 8:
                    chain = " -> ".join((*via, hop))
                    raise SSHError(f"ProxyJump loop on the way to {self.label}: {chain}")
                hop_options = await asyncio.to_thread(self._options, hop)
                tunnel = await self._open(hop_options, _split_jump(hop)[0], tunnel=tunnel,
                                          via=(*via, hop))
            self._dialing = f"the jump host {via[-1]}" if via else self.label  # for errors
            conn = await asyncssh.connect(host, options=options, tunnel=tunnel)
        except BaseException:
            if tunnel is not None:
                tunnel.close()  # closes the hops before it too (set_tunnel below)
            raise
        if tunnel is not None:
            conn.set_tunnel(tunnel)  # closing conn (or losing it) closes its jump connection
        return conn

    async def _connect(self) -> asyncssh.SSHClientConnection:
        if not self.host:
            raise SSHError("SSH.Hostname is missing")
        self._dialing = self.label
        try:
            options = await asyncio.to_thread(self._options)  # reads ~/.ssh/config and key files
            return await self._open(options, self.host)
        except asyncssh.HostKeyNotVerifiable as exc:
            raise SSHError(
                f"the host key of {self._dialing} is not trusted: it is missing from known_hosts "
                f"or differs from the key recorded there ({exc.reason}). Never accept it blindly: "
                "check its fingerprint with the cluster's documentation or admins, then connect "
                "once with `ssh` to record it (or remove the stale line with `ssh-keygen -R`)."
            ) from None
        except asyncssh.PermissionDenied as exc:
            raise SSHError(
                f"SSH authentication to {self._dialing} failed ({exc.reason}): load your key into "
                "the SSH agent or set SSH.IdentityFile (passwords are not supported)"
            ) from None
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            raise SSHError(f"cannot use the SSH key for {self._dialing}: {exc}") from None
        except (OSError, asyncio.TimeoutError, asyncssh.Error) as exc:
            raise BackendUnavailable(
                f"cannot reach {self._dialing} over SSH: {_why(exc)}") from None
        except ValueError as exc:  # bad config values (asyncssh validates them)
            raise SSHError(f"SSH settings for {self._dialing}: {exc}") from None

    async def _load_login_env(self, conn: asyncssh.SSHClientConnection) -> None:
        """PATH, HOME, SCRATCH... as a login shell sets them (Slurm tools may only be on
        the login PATH). One command per connection."""
        marker = "__HPCML_ENV__"
        try:
            res = await conn.run(f"bash -lc 'printf {marker}; env -0' </dev/null",
                                 check=False, encoding=None, timeout=COMMAND_TIMEOUT)
        except (asyncio.TimeoutError, *_DROPS) as exc:
            raise BackendUnavailable(
                f"lost the connection to {self.label}: {_why(exc)}") from None
        out = _raw(res.stdout)
        env: dict[str, str] = {}
        if marker.encode() in out:
            for item in out.split(marker.encode(), 1)[1].split(b"\0"):
                key, eq, value = item.decode("utf-8", errors="replace").partition("=")
                if eq:
                    env[key] = value
        self.login_env = env

    async def sftp(self) -> asyncssh.SFTPClient:
        conn = await self.connection()
        async with self._sftp_lock:
            if self._sftp is None or self._sftp_conn is not conn:
                try:
                    self._sftp = await conn.start_sftp_client()
                except (asyncio.TimeoutError, *_DROPS) as exc:
                    self._drop()
                    raise ConnectionLost(
                        f"lost the connection to {self.label}: {_why(exc)}") from None
                except asyncssh.Error as exc:
                    raise SSHError(f"SFTP is not available on {self.label}: {exc}") from None
                self._sftp_conn = conn
            return self._sftp

    _sftp_conn: asyncssh.SSHClientConnection | None = None

    def _drop(self) -> None:
        """Forget a connection that failed; the next call reconnects."""
        conn, self._conn, self._sftp = self._conn, None, None
        if conn is not None:
            conn.abort()

    # ------------------------------------------------------------------ commands

    def _command_line(self, command: str) -> str:
        path = self.login_env.get("PATH")
        line = f"export PATH={shlex.quote(path)}; {command}" if path else command
        shell = posixpath.basename(self.login_env.get("SHELL") or "sh")
        if shell in POSIX_SHELLS:
            return line
        # sshd hands the command to the login shell; csh/tcsh/fish cannot read POSIX shell
        # (nor newlines in quotes), so /bin/sh gets it, base64-encoded to survive their quoting.
        encoded = base64.b64encode(line.encode()).decode()
        return f"exec /bin/sh -c 'eval \"$(printf %s {encoded} | base64 -d)\"'"

    async def run(self, command: str, *, input: bytes | None = None,
                  timeout: float = COMMAND_TIMEOUT, retry: bool = True,
                  name: str | None = None) -> Result:
        """Run a shell command on the login node. ``retry``: the command is safe to repeat
        after a dropped connection (once, unless it is poisoned by then). Raises
        BackendUnavailable when the cluster is unreachable (ConnectionLost: dropped while the
        command ran; CommandPoisoned: not sent, see the module doc), CommandTooLong."""
        label = name or command.split(None, 1)[0]
        self.stats.commands[label] += 1
        attempts = 2 if retry else 1
        key: bytes | None = None
        for attempt in range(attempts):
            conn = await self.connection()
            line = self._command_line(command)
            if len(line) > MAX_COMMAND_BYTES:
                raise CommandTooLong(f"{label}: a command of {len(line)} bytes is too long for a "
                                     f"command line on {self.label} (at most {MAX_COMMAND_BYTES})")
            if key is None:
                key = hashlib.sha256(line.encode() + b"\0" + (input or b"")).digest()
            self._check_poison(key, label)
            self.stats.command_bytes += len(line) + len(input or b"")
            self.stats.largest_command = max(self.stats.largest_command, len(line))
            try:
                async with self._channels:
                    res = await conn.run(line, input=input, check=False, encoding=None,
                                         timeout=timeout)
                if res.exit_status is None and res.exit_signal is None:
                    # The channel closed without an exit status: the connection went away
                    # under the command (asyncssh reports no error then), not a failure of it.
                    raise ConnectionError("the channel closed without an exit status")
            except asyncssh.TimeoutError as exc:
                raise BackendUnavailable(
                    f"{label} on {self.label} timed out after {timeout:.0f} s") from exc
            except _DROPS as exc:
                self._drop()
                self.stats.drops += 1
                self._strike(key)
                if attempt + 1 < attempts:
                    log.info("SSH connection to %s dropped during %s (%s), reconnecting",
                             self.label, label, _why(exc))
                    continue
                raise ConnectionLost(f"lost the connection to {self.label}: {_why(exc)}") from None
            self._strikes.pop(key, None)  # it went through: earlier drops were not its doing
            status = res.exit_status if res.exit_status is not None else 128 + 15
            if res.exit_signal:
                status = 128 + 15
            return Result(status, _raw(res.stdout), _raw(res.stderr))
        raise AssertionError("unreachable")

    def _strike(self, key: bytes) -> None:
        strikes, _ = self._strikes.pop(key, (0, 0.0))
        strikes += 1
        until = time.monotonic() + POISON_SECONDS if strikes >= POISON_STRIKES else 0.0
        self._strikes[key] = (strikes, until)
        while len(self._strikes) > 256:  # oldest first (dicts keep insertion order)
            self._strikes.pop(next(iter(self._strikes)))

    def _check_poison(self, key: bytes, label: str) -> None:
        strikes, until = self._strikes.get(key, (0, 0.0))
        if strikes < POISON_STRIKES:
            return
        if time.monotonic() >= until:
            self._strikes[key] = (POISON_STRIKES - 1, 0.0)  # one more chance after the pause
            return
        raise CommandPoisoned(f"{label} was not sent to {self.label} again: the connection dropped "
                              f"{strikes} times while this exact command ran")

    async def sftp_call(self, fn: Callable[[asyncssh.SFTPClient], Awaitable[T]], *,
                        retry: bool = True) -> T:
        """``await fn(sftp)`` with one retry on a fresh connection after a drop."""
        attempts = 2 if retry else 1
        for attempt in range(attempts):
            try:
                return await fn(await self.sftp())
            except (ConnectionLost, *_DROPS) as exc:  # (a connection found dead on the way too)
                self._drop()
                if attempt + 1 < attempts:
                    continue
                raise ConnectionLost(f"lost the connection to {self.label}: {_why(exc)}") from None
        raise AssertionError("unreachable")

    async def close(self) -> None:
        self._closed = True
        conn, sftp, self._conn, self._sftp = self._conn, self._sftp, None, None
        if sftp is not None:
            sftp.exit()
            try:
                await asyncio.wait_for(sftp.wait_closed(), 5)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - closing anyway
                pass
        if conn is not None:
            conn.close()
            try:
                await asyncio.wait_for(conn.wait_closed(), 5)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - closing anyway
                pass


# Login shells that read the POSIX shell commands we send as they are.
POSIX_SHELLS = frozenset({"sh", "bash", "rbash", "dash", "ash", "ksh", "ksh93", "mksh", "lksh",
                          "pdksh", "zsh", "yash", "busybox"})


def _split_jump(spec: str) -> tuple[str, int | None, str | None]:
    """``[user@]host[:port]`` of a ProxyJump hop (``[v6]`` and ``ssh://`` as ssh reads them)
    -> host, port, user."""
    m = re.fullmatch(r"(?:ssh://)?(?:(.+)@)?(\[[^\]]+\]|[^:@/\[]+)(?::(\d+))?/?", spec.strip())
    if not m:
        raise SSHError(f"cannot read the ProxyJump host {spec!r}: expected [user@]host[:port]")
    user, host, port = m.groups()
    return host.strip("[]"), int(port) if port else None, user


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.strip()


def _raw(data: bytes | str | None) -> bytes:
    """A command's output: bytes, as run with ``encoding=None`` (asyncssh's types allow str)."""
    if isinstance(data, str):
        return data.encode()
    return bytes(data or b"")


def now() -> float:
    return time.monotonic()
