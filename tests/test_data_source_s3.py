"""s3:// datasets from a real S3-compatible server on loopback (moto's server mode):
mirrored once, an unchanged object not downloaded again, a changed one downloaded alone,
a deleted one gone from the copy, errors named."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server")

from jupyterlab_hpcml.core.errors import UserInputError  # noqa: E402
from jupyterlab_hpcml.engine.data_sources import s3  # noqa: E402


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                             "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "moto did not start"
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def client(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(name, value)
    c = boto3.client("s3")
    c.create_bucket(Bucket="data")
    for key in ("digits/a.csv", "digits/sub/b.csv", "digits/c.csv", "other/x.csv"):
        c.put_object(Bucket="data", Key=key, Body=f"{key}\n".encode())
    return c


def gets(client: Any) -> list[str]:
    """The keys the client downloads from now on (botocore's own event hooks)."""
    keys: list[str] = []
    client.meta.events.register("before-parameter-build.s3.GetObject",
                                lambda params, **kw: keys.append(params["Key"]))
    return keys


def test_mirror_then_only_what_changed(client: Any, tmp_path: Path) -> None:
    downloaded = gets(client)
    tree = s3.fetch("s3://data/digits", tmp_path / "cache", client)
    files = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
    assert files == ["a.csv", "c.csv", "sub/b.csv"]
    assert (tree / "sub" / "b.csv").read_text() == "digits/sub/b.csv\n"
    assert len(downloaded) == 3

    downloaded.clear()
    assert s3.fetch("s3://data/digits", tmp_path / "cache", client) == tree
    assert downloaded == []

    client.put_object(Bucket="data", Key="digits/a.csv", Body=b"changed\n")
    client.delete_object(Bucket="data", Key="digits/c.csv")
    s3.fetch("s3://data/digits/", tmp_path / "cache2", client)  # a new copy: all of it
    downloaded.clear()
    s3.fetch("s3://data/digits", tmp_path / "cache", client)
    assert downloaded == ["digits/a.csv"]
    assert (tree / "a.csv").read_text() == "changed\n" and not (tree / "c.csv").exists()


def test_errors_are_named(client: Any, tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="NoSuchBucket"):
        s3.fetch("s3://nope/x", tmp_path / "cache", client)
    with pytest.raises(UserInputError, match="no objects under this prefix"):
        s3.fetch("s3://data/empty/", tmp_path / "cache", client)
    with pytest.raises(UserInputError, match="s3://bucket/prefix"):
        s3.split("s3:///x")
