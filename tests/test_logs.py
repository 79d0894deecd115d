"""Log chunks never split a UTF-8 character, except at the very end of a finished log."""
from __future__ import annotations

from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.logs import complete_utf8_prefix, to_chunk
from jupyterlab_hpcml.engine.models import RunRecord

TEXT = "loss ≈ 0.5 — ok ✓ 🚀\n".encode()


def run(state: RunState) -> RunRecord:
    return RunRecord(id="r1", name="n", project_path="/p", project_name="p", entry_point="main",
                     command="c", backend="local", state=state)


def test_prefix_stops_before_a_split_character() -> None:
    for cut in range(len(TEXT) + 1):
        keep = complete_utf8_prefix(TEXT[:cut])
        assert keep <= cut
        TEXT[:keep].decode("utf-8")  # never raises
        assert cut - keep < 4


def test_chunks_of_any_size_reassemble_the_text() -> None:
    for size in range(1, 9):
        offset, out = 0, ""
        while offset < len(TEXT):
            data = TEXT[offset:offset + size]
            chunk = to_chunk(run(RunState.RUNNING), "stdout", data, offset, len(TEXT))
            if chunk.next_offset == offset:  # a character longer than the chunk: ask for more
                data = TEXT[offset:offset + 4]
                chunk = to_chunk(run(RunState.RUNNING), "stdout", data, offset, len(TEXT))
            out += chunk.data
            offset = chunk.next_offset
        assert out == TEXT.decode()


def test_a_finished_log_gives_out_its_last_bytes() -> None:
    broken = TEXT[:-3]  # ends inside the rocket emoji
    running = to_chunk(run(RunState.RUNNING), "stderr", broken, 0, len(broken))
    assert running.next_offset < len(broken) and running.running
    done = to_chunk(run(RunState.FAILED), "stderr", broken, 0, len(broken))
    assert done.next_offset == len(broken) and done.data.endswith("\ufffd") and not done.running
