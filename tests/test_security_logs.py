"""A log chunk's JSON answer stays within the asked size whatever the bytes (issue 9, finding 7).

Control bytes, invalid UTF-8 and astral characters each take 6 to 12 bytes in JSON:
a 4 MiB read of such bytes used to answer about 24 MiB. The job here writes them for
real, and the log is followed through the real server as the lab's viewer does.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import TERMINAL, submit_run, wait_for_state

MiB = 1 << 20
ENVELOPE = 512  # the answer's other fields

NOISY = '''\
import sys
out = sys.stdout.buffer
out.write(b"\\x01" * 1_500_000)              # 6 bytes each in JSON
out.write(b"\\xff" * 500_000)                # invalid UTF-8: one U+FFFD each
out.write("\\U0001F680".encode() * 200_000)  # 12 bytes each in JSON (a surrogate pair)
out.write(b"plain text line\\n" * 10_000)
out.write(b"END\\n")
'''
SIZE = 1_500_000 + 500_000 + 4 * 200_000 + 16 * 10_000 + 4


@pytest.fixture
def noisy_project(jp_root_dir: Path) -> Path:
    project = jp_root_dir / "noisy"
    project.mkdir()
    (project / "MLproject").write_text(
        "name: noisy\nentry_points:\n  main:\n    command: python noisy.py\n")
    (project / "noisy.py").write_text(NOISY)
    return project


async def follow(jp_fetch, run_id: str, max_bytes: int) -> tuple[str, list[int]]:
    """The whole log read chunk by chunk from its next_offset; the size of each answer."""
    text, sizes, offset = "", [], 0
    while True:
        resp = await jp_fetch("hpcml", "api", "runs", run_id, "logs", "stdout",
                              params={"offset": offset, "max_bytes": max_bytes},
                              request_timeout=120)  # a loaded machine; not a speed check
        sizes.append(len(resp.body))
        chunk = json.loads(resp.body)
        assert chunk["offset"] == offset and chunk["size"] == SIZE
        if chunk["next_offset"] == offset:
            assert offset == SIZE and not chunk["data"]
            return text, sizes
        text += chunk["data"]
        offset = chunk["next_offset"]


@pytest.mark.parametrize("max_bytes", [4 * MiB, 256 * 1024])
async def test_log_answers_stay_within_max_bytes_and_lose_nothing(
        api, jp_fetch, noisy_project, max_bytes):
    run = await submit_run(api, project="noisy")
    run = await wait_for_state(api, run["id"], TERMINAL)
    assert run["state"] == "FINISHED", run
    text, sizes = await follow(jp_fetch, run["id"], max_bytes)
    assert max(sizes) <= max_bytes + ENVELOPE, sizes
    # Every byte arrived once, in order: invalid bytes as one U+FFFD each.
    assert text.count("\x01") == 1_500_000
    assert text.count("\ufffd") == 500_000
    assert text.count("\U0001F680") == 200_000
    assert text.count("plain text line\n") == 10_000 and text.endswith("END\n")
    assert len(text) == 1_500_000 + 500_000 + 200_000 + 16 * 10_000 + 4
    assert text.index("\ufffd") == 1_500_000 and text.index("\U0001F680") == 2_000_000
