"""ProxyJump against the real loopback sshd (the jump host is the same sshd as the target;
the target is named ``localhost`` and the jump host ``127.0.0.1`` to tell them apart).

HOME points to an empty folder and the SSH agent is off, so the only key and known_hosts
are the ones configured: a jump connection opened with asyncssh's defaults
(~/.ssh/config, ~/.ssh/known_hosts, ~/.ssh/id_*) would fail or trust the wrong file.
Needs the test cluster; skips without it."""
from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncssh
import pytest

from jupyterlab_hpcml.backends.ssh.connection import SSHConnection, SSHError

from .slurm_cluster import slurm, ssh_section  # noqa: F401 - fixture

WRONG_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh3bS5w2c0y0mSxkK8rK6xXJ9o0d8vQkQ2m5oq2c3aB"


def _host_key(s: dict[str, str]) -> str:
    """'ssh-ed25519 AAAA...' of the test sshd, from the cluster's known_hosts."""
    line = Path(s["HPCML_TEST_SSH_KNOWN_HOSTS"]).read_text().split("\n")[0]
    return line.split(None, 1)[1].strip()


@pytest.fixture
def env(slurm, tmp_path, monkeypatch):  # noqa: F811
    """Isolated HOME, no agent; ``known(*lines)`` writes HPCML_SSH_KNOWN_HOSTS."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    port, key = slurm["HPCML_TEST_SSH_PORT"], _host_key(slurm)
    jump_line, target_line = f"[127.0.0.1]:{port} {key}\n", f"[localhost]:{port} {key}\n"

    def known(*lines: str) -> Path:
        path = tmp_path / "known_hosts"
        path.write_text("".join(lines))
        monkeypatch.setenv("HPCML_SSH_KNOWN_HOSTS", str(path))
        return path

    known(jump_line, target_line)
    return {"s": slurm, "home": home, "known": known, "jump_line": jump_line,
            "target_line": target_line, "jump": f"{slurm['HPCML_TEST_SSH_USER']}@127.0.0.1:{port}"}


@pytest.fixture
def dials(monkeypatch):
    """Every asyncssh.connect made by connection.py: (host, port, username, tunnel, conn)."""
    real = asyncssh.connect
    calls: list[dict] = []

    async def spy(host="", port=(), *, options=None, **kwargs):
        # the options as connect() makes them (its tunnel=() default replaces the options' one)
        kwargs = {"tunnel": (), **kwargs}
        opts = asyncssh.SSHClientConnectionOptions(options, host=host, port=port, **kwargs)
        call = {"host": opts.host, "port": opts.port, "user": opts.username, "tunnel": opts.tunnel}
        calls.append(call)
        call["conn"] = await real(host, port, options=options, **kwargs)
        return call["conn"]

    monkeypatch.setattr(asyncssh, "connect", spy)
    return calls


def _target(env, **extra) -> dict:
    return {**ssh_section(env["s"]), "Hostname": "localhost", **extra}


@pytest.mark.parametrize("hops", [1, 2])
async def test_proxyjump_uses_the_configured_key_and_known_hosts(env, dials, hops):
    conn = SSHConnection(_target(env, ProxyJump=",".join([env["jump"]] * hops)))
    res = await conn.run("id -un; echo $SSH_CONNECTION")
    assert res.exit_status == 0 and res.out.split()[0] == env["s"]["HPCML_TEST_SSH_USER"], res
    await conn.run("true")
    assert conn.stats.connects == 1  # one connection (with its jumps) for every call

    # The jump host(s) first, each through the previous one, then the target through the last.
    port = int(env["s"]["HPCML_TEST_SSH_PORT"])
    assert [(c["host"], c["port"], c["user"]) for c in dials] == \
        [("127.0.0.1", port, "hpcml-test")] * hops + [("localhost", port, "hpcml-test")]
    assert dials[0]["tunnel"] in ((), None)
    for prev, call in zip(dials, dials[1:], strict=False):
        assert call["tunnel"] is prev["conn"]
    assert not any(c["conn"].is_closed() for c in dials)
    # The server saw the target session come from sshd's forwarding socket, not from ours.
    assert int(res.out.split()[2]) != dials[0]["conn"].get_extra_info("sockname")[1]

    # A dropped connection takes its jumps along; the next command reconnects through new ones.
    first = list(dials)
    conn._drop()
    await asyncio.sleep(0.1)
    assert all(c["conn"].is_closed() for c in first)
    assert (await conn.run("id -un")).out.strip() == env["s"]["HPCML_TEST_SSH_USER"]
    assert conn.stats.connects == 2 and len(dials) == 2 * len(first)
    assert dials[-1]["tunnel"] is dials[-2]["conn"]
    await conn.close()
    assert all(c["conn"].is_closed() for c in dials)  # closing the connection closes its jumps


async def test_untrusted_jump_host_key_is_a_clear_error(env, dials):
    # ~/.ssh holds the right key and host key: a jump made with asyncssh's defaults would
    # use them and connect. Only the configured known_hosts counts, and it lacks the jump host.
    ssh_dir = env["home"] / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    (ssh_dir / "known_hosts").write_text(env["jump_line"] + env["target_line"])
    shutil.copy(env["s"]["HPCML_TEST_SSH_KEY"], ssh_dir / "id_ed25519")
    (ssh_dir / "id_ed25519").chmod(0o600)

    env["known"](env["target_line"])
    with pytest.raises(SSHError, match=r"host key of the jump host .*127\.0\.0\.1.* not trusted"):
        await SSHConnection(_target(env, ProxyJump=env["jump"])).run("true")
    assert [c["host"] for c in dials] == ["127.0.0.1"]  # refused at the jump host

    env["known"](env["jump_line"].split()[0] + " " + WRONG_KEY + "\n", env["target_line"])
    with pytest.raises(SSHError, match="host key of the jump host .* is not trusted"):
        await SSHConnection(_target(env, ProxyJump=env["jump"])).run("true")

    # The jump host is trusted, the target is not: the error names the target.
    env["known"](env["jump_line"])
    with pytest.raises(SSHError, match=r"host key of hpcml-test@localhost:\d+ is not trusted"):
        await SSHConnection(_target(env, ProxyJump=env["jump"])).run("true")
    assert [c["host"] for c in dials[-2:]] == ["127.0.0.1", "localhost"]
    await asyncio.wait_for(dials[-2]["conn"].wait_closed(), 5)  # the failed attempt closed its jump


async def test_jump_host_errors_name_the_jump_host(env):
    # sshd only lets hpcml-test in: the jump host refuses "nobody"; the target is not reached.
    target = _target(env, ProxyJump=f"nobody@127.0.0.1:{env['s']['HPCML_TEST_SSH_PORT']}")
    refused = r"SSH authentication to the jump host nobody@127\.0\.0\.1:\d+ failed"
    with pytest.raises(SSHError, match=refused):
        await SSHConnection(target).run("true")
    with pytest.raises(SSHError, match="cannot read the ProxyJump host"):
        await SSHConnection(_target(env, ProxyJump="a@b:c:d")).run("true")
    # "none" (as for ssh -J none): a direct connection; the server sees our socket's port.
    conn = SSHConnection(_target(env, ProxyJump="none"))
    res = await conn.run("echo $SSH_CONNECTION")
    assert int(res.out.split()[1]) == (await conn.connection()).get_extra_info("sockname")[1]
    await conn.close()


def _write_config(env, tmp_path, text: str, monkeypatch) -> None:
    s = env["s"]
    path = tmp_path / "ssh_config"
    path.write_text(text.format(port=s["HPCML_TEST_SSH_PORT"], user=s["HPCML_TEST_SSH_USER"],
                                key=s["HPCML_TEST_SSH_KEY"], known=tmp_path / "known_hosts"))
    monkeypatch.setenv("HPCML_SSH_CONFIG", str(path))
    monkeypatch.delenv("HPCML_SSH_KNOWN_HOSTS")  # UserKnownHostsFile comes from the config


ALIASES = """\
Host hpcml-target
  HostName localhost
  ProxyJump hpcml-jump
Host hpcml-jump
  HostName 127.0.0.1
Host hpcml-bastion
  HostName 127.0.0.1
Host *
  ProxyJump hpcml-bastion
  Port {port}
  User {user}
  IdentityFile {key}
  UserKnownHostsFile {known}
"""


async def test_proxyjump_from_an_ssh_config_alias(env, dials, tmp_path, monkeypatch):
    # The target's alias jumps via an alias that itself jumps via a third one (from
    # ``Host *``, which the third one skips as it names itself, as with ssh): the config
    # (HPCML_SSH_CONFIG, not ~/.ssh/config) resolves every hop.
    _write_config(env, tmp_path, ALIASES, monkeypatch)
    conn = SSHConnection({"Hostname": "hpcml-target"})
    res = await conn.run("id -un")
    assert res.out.strip() == env["s"]["HPCML_TEST_SSH_USER"]
    assert conn.stats.connects == 1
    assert [c["host"] for c in dials] == ["127.0.0.1", "127.0.0.1", "localhost"]
    for prev, call in zip(dials, dials[1:], strict=False):
        assert call["tunnel"] is prev["conn"]
    await conn.close()
    assert all(c["conn"].is_closed() for c in dials)

    # SSH.ProxyJump "none" wins over the alias's ProxyJump: a direct connection.
    del dials[:]
    conn = SSHConnection({"Hostname": "hpcml-target", "ProxyJump": "none"})
    assert (await conn.run("true")).exit_status == 0
    assert [(c["host"], c["tunnel"]) for c in dials] == [("localhost", None)]
    await conn.close()


async def test_proxyjump_loop_in_ssh_config_is_a_clear_error(env, dials, tmp_path, monkeypatch):
    _write_config(env, tmp_path, "Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n"
                  "Host *\n  HostName 127.0.0.1\n", monkeypatch)
    with pytest.raises(SSHError, match="ProxyJump loop on the way to a: b -> a -> b"):
        await SSHConnection({"Hostname": "a"}).run("true")
    assert dials == []  # found before connecting anywhere
