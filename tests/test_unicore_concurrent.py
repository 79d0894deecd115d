"""Several UNICORE submissions of the same code at once (a sweep's children, submitted with
bounded concurrency): the code goes into the HOME object store once, not once per job, and
the store is left clean. The real pyunicore against the loopback UNICORE/X, jobs executed."""
from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from . import test_unicore_upload as upload
from .conftest import TERMINAL, submit_run, wait_for_state
from .servers.unicore_server import UnicoreServer
from .test_unicore_upload import HOME_PUT, RENAME, expect_output, project_files, store

# The same loopback server and project as the upload tests.
unicore = upload.unicore
project = upload.project

JOBS = 4


async def submit_together(api, n: int) -> list[dict]:
    status, _ = await api("GET", "experiments")  # MLflow opened before the submissions
    assert status == 200
    runs = await asyncio.gather(*(
        submit_run(api, backend_config="unicore.yaml", entry_point="check", run_name=f"c{i}")
        for i in range(n)))
    return [await wait_for_state(api, r["id"], TERMINAL, timeout=120) for r in runs]


def contents(project: Path) -> set[str]:
    return {hashlib.sha256(Path(project, f).read_bytes()).hexdigest()
            for f in project_files(project)}


async def test_concurrent_submissions_upload_the_code_once(api, project, unicore: UnicoreServer):
    wanted = contents(project)
    runs = await submit_together(api, JOBS)
    assert [r["state"] for r in runs] == ["FINISHED"] * JOBS, runs
    assert len({r["backend_job_id"] for r in runs}) == JOBS
    for run in runs:
        job = unicore.state.jobs[run["backend_job_id"]]
        expect_output(project, (job.workdir / ".hpcml" / "stdout.log").read_text()
                      .strip().splitlines())
    # Each content sent and stored once, whatever the interleaving of the four submissions.
    assert unicore.state.requests[HOME_PUT] == len(wanted)
    assert unicore.state.requests[RENAME] == len(wanted)
    assert {p.name for p in store(unicore).iterdir() if p.is_file()} == wanted
    assert not any((store(unicore) / ".incoming").iterdir())

    # And again, with the store already full: nothing of the code travels.
    unicore.state.reset_counts()
    runs = await submit_together(api, JOBS)
    assert [r["state"] for r in runs] == ["FINISHED"] * JOBS, runs
    assert unicore.state.requests[HOME_PUT] == 0 and unicore.state.requests[RENAME] == 0


def test_a_failed_upload_leaves_nothing_and_the_waiting_one_sends_it(
        unicore: UnicoreServer, tmp_path: Path) -> None:
    """Two submissions want the same content: the second waits for the first's upload; that
    one fails (its temporary file removed), so the second sends the content itself."""
    import threading
    import time

    from jupyterlab_hpcml.backends.cas_upload import SharedUploads
    from jupyterlab_hpcml.backends.unicore import UnicoreBackend
    from jupyterlab_hpcml.core.errors import HpcmlError

    backend = UnicoreBackend({"UnicoreApiUrl": unicore.base_url}, tmp_path)
    home = backend._object_store()
    assert home is not None
    source = tmp_path / "blob"
    source.write_bytes(b"x" * 50_000)
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    shared = SharedUploads()
    listed_at = shared.listing_started()
    unicore.state.reset_counts()
    faults = unicore.state.faults
    faults.add("delay", path=r"/storages/HOME/files/", method="PUT", arg=1.0)  # to queue up
    faults.add("500", path=r"/storages/HOME/actions/rename$", method="POST")

    outcome: dict[str, object] = {}

    def submit(name: str) -> None:
        try:
            outcome[name] = shared.put(home, sha, source, listed_at)
        except HpcmlError as exc:
            outcome[name] = exc

    first = threading.Thread(target=submit, args=("first",))
    first.start()
    time.sleep(0.3)  # the first one's upload is under way
    second = threading.Thread(target=submit, args=("second",))
    second.start()
    first.join(30), second.join(30)
    assert isinstance(outcome["first"], HpcmlError), outcome
    assert outcome["second"] is True
    assert (store(unicore) / sha).read_bytes() == source.read_bytes()
    assert not any((store(unicore) / ".incoming").iterdir())  # the failed one's part removed
    counts = dict(unicore.state.requests)
    assert counts[HOME_PUT] == 2 and counts[RENAME] == 2, counts
    assert all(rule.hits == rule.times for rule in faults.rules)
    # Stored since the listing: a third asks for nothing more.
    assert shared.put(home, sha, source, listed_at) is False
    assert unicore.state.requests[HOME_PUT] == 2
