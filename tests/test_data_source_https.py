"""https:// datasets from a real HTTPS server on loopback (stdlib http.server behind TLS
with a self-signed certificate the client is told to trust): one file, archives unpacked
safely, not downloaded again when unchanged, and 404s named."""
from __future__ import annotations

import http.server
import io
import ssl
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from jupyterlab_hpcml.core.errors import UserInputError
from jupyterlab_hpcml.engine.data_sources import https

from .data_projects import archive


class Server:
    def __init__(self, root: Path, cert: Path, key: Path):
        self.gets: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.gets.append(f"{self.path} {self.headers.get('If-Modified-Since')}")
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(Handler, directory=str(root)))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this server only
    root = tmp_path / "www"
    root.mkdir()
    s = Server(root, cert, key)
    s.root = root  # type: ignore[attr-defined]
    yield s
    s.httpd.shutdown()


def test_one_file_then_not_again_when_unchanged(server: Server, tmp_path: Path) -> None:
    (server.root / "x.csv").write_text("1,2\n")  # type: ignore[attr-defined]
    got = https.fetch(f"{server.url}/x.csv", tmp_path / "cache")
    assert got.read_text() == "1,2\n"
    again = https.fetch(f"{server.url}/x.csv", tmp_path / "cache")
    assert again == got and again.read_text() == "1,2\n"
    # The second GET was conditional (the server answered 304: nothing came again).
    assert server.gets[0].endswith("None") and not server.gets[1].endswith("None")


def test_archives_unpack_inside_their_folder(server: Server, tmp_path: Path) -> None:
    root: Path = server.root  # type: ignore[attr-defined]
    (root / "d.tar.gz").write_bytes(archive({"a/1.csv": b"1\n", "b.csv": b"2\n"}))
    tree = https.fetch(f"{server.url}/d.tar.gz", tmp_path / "cache")
    assert sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.csv")) == [
        "a/1.csv", "b.csv"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../escape.txt", "no")
    (root / "evil.zip").write_bytes(buf.getvalue())
    with pytest.raises(UserInputError, match="leaves the folder"):
        https.fetch(f"{server.url}/evil.zip", tmp_path / "cache")
    (root / "evil.tar.gz").write_bytes(archive({"../escape.txt": b"no"}))
    with pytest.raises(UserInputError, match="not an archive it can unpack"):
        https.fetch(f"{server.url}/evil.tar.gz", tmp_path / "cache")
    assert not list(tmp_path.rglob("escape.txt"))


def test_errors_are_named(server: Server, tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="HTTP 404"):
        https.fetch(f"{server.url}/missing.csv", tmp_path / "cache")
    with pytest.raises(UserInputError, match="only https://"):
        https.fetch("http://example.org/x.csv", tmp_path / "cache")
