"""Slurm knowledge written once (backends/slurm_common.py) and the exit-code file every
backend reads (backends/exitrecord.py): every state, exit codes with signals, and the
file's edge cases. Pure functions: no cluster needed."""
from __future__ import annotations

import pytest

from jupyterlab_hpcml.backends.exitrecord import (
    EXIT_FILE,
    ExitRecord,
    exit_code,
    exit_file,
    exit_message,
    parse_exit_record,
    record_status,
    signal_name,
)
from jupyterlab_hpcml.backends.firecrest import slurm_job, slurm_state
from jupyterlab_hpcml.backends.slurm_common import (
    JOB_ID,
    SHORT_STATES,
    STATE_MAP,
    SlurmJob,
    array_state,
    array_task,
    cancel_moot,
    index_jobs,
    job_status,
    map_state,
    slurm_transient,
)
from jupyterlab_hpcml.core.states import RunState

# Every state squeue/sacct document (slurm/src/common/slurm_protocol_defs.c job_state_string).
EXPECTED = {
    "PENDING": RunState.QUEUED, "CONFIGURING": RunState.QUEUED, "REQUEUED": RunState.QUEUED,
    "REQUEUE_HOLD": RunState.QUEUED, "REQUEUE_FED": RunState.QUEUED,
    "RESV_DEL_HOLD": RunState.QUEUED, "RESIZING": RunState.RUNNING, "RUNNING": RunState.RUNNING,
    "COMPLETING": RunState.RUNNING, "SIGNALING": RunState.RUNNING, "STAGE_OUT": RunState.RUNNING,
    "SUSPENDED": RunState.RUNNING, "STOPPED": RunState.RUNNING, "COMPLETED": RunState.FINISHED,
    "FAILED": RunState.FAILED, "CANCELLED": RunState.CANCELLED, "TIMEOUT": RunState.TIMEOUT,
    "DEADLINE": RunState.TIMEOUT, "OUT_OF_MEMORY": RunState.FAILED, "NODE_FAIL": RunState.FAILED,
    "PREEMPTED": RunState.FAILED, "BOOT_FAIL": RunState.FAILED, "REVOKED": RunState.FAILED,
    "SPECIAL_EXIT": RunState.FAILED, "LAUNCH_FAILED": RunState.FAILED,
}


@pytest.mark.parametrize("word,state", sorted(EXPECTED.items()))
def test_every_slurm_state(word, state):
    assert map_state(word)[0] == state
    assert map_state(word.lower() + "+")[0] == state  # sacct marks requeued jobs with "+"


def test_the_table_is_the_whole_list_and_short_codes_agree():
    assert set(STATE_MAP) == set(EXPECTED)
    for short, word in SHORT_STATES.items():
        assert map_state(short) == map_state(word), short
    state, message = map_state("SOMETHING_NEW")
    assert state == RunState.UNKNOWN and "SOMETHING_NEW" in (message or "")
    assert map_state("")[0] == RunState.UNKNOWN


def test_state_messages():
    assert map_state("CANCELLED by 1001") == (RunState.CANCELLED, "cancelled by 1001")
    assert map_state("CANCELLED+") == (RunState.CANCELLED, "cancelled")
    assert map_state("PENDING", "ReqNodeNotAvail")[1] == "pending: ReqNodeNotAvail"
    assert map_state("PENDING", "Priority")[1] is None  # the usual wait says nothing


# ------------------------------------------------------------ exit codes with signals


@pytest.mark.parametrize("code,sig,expected", [
    (0, None, 0), (3, 0, 3), (0, 9, 137), ("0", "9", 137), (0, "SIGKILL", 137), (0, "TERM", 143),
    (1, 9, 1),  # the program's own code wins over the signal that stopped the rest
    (None, None, None), ("", "", None), ("garbage", None, None), (None, 15, 143),
])
def test_exit_code_with_signals(code, sig, expected):
    assert exit_code(code, sig) == expected


def test_exit_message_reads_the_signal_back_from_the_code():
    assert exit_message(3) == "exit code 3"
    assert exit_message(137) == "exit code 137 (killed by SIGKILL)"
    assert exit_message(143) == "exit code 143 (killed by SIGTERM)"
    assert exit_message(255) == "exit code 255"  # beyond any signal: a plain code
    assert signal_name(9) == signal_name("9") == signal_name('"SIGKILL"') == "SIGKILL"
    assert signal_name(None) is None and signal_name(0) is None and signal_name("null") is None


def test_sacct_and_firecrest_spellings_are_one_job():
    """sacct says "0:9"; FirecREST says exitCode 0 + interruptSignal 9 (or, from other
    versions, exitCode "0:9" or slurmrestd's return_code dict): the same status."""
    sacct = job_status(SlurmJob.from_sacct("FAILED", "0:9"))
    models = [
        {"status": {"state": "FAILED", "exitCode": 0, "interruptSignal": 9}},
        {"status": {"state": "FAILED", "exitCode": "0:9", "interruptSignal": None}},
        {"status": {"state": ["FAILED"], "exitCode": 0, "interruptSignal": "9"}},
    ]
    for model in models:
        assert slurm_state(model) == sacct, model
    assert (sacct.state, sacct.exit_code, sacct.message) == (
        RunState.FAILED, 137, "exit code 137 (killed by SIGKILL)")
    assert slurm_job({"status": {"state": "FAILED", "exitCode": {"return_code": {"number": 2}}}}) \
        == SlurmJob("FAILED", None, 2, None)
    assert slurm_state({"status": {}}).state == RunState.UNKNOWN


# ------------------------------------------------------------ how a job ended


def status(state: str, exit_field: str = "0:0", record: ExitRecord | None = None, reason=None):
    s = job_status(SlurmJob.from_sacct(state, exit_field, reason), record)
    return s.state, s.exit_code, s.message


def test_job_status_rules():
    assert status("RUNNING") == (RunState.RUNNING, None, None)
    assert status("PENDING", reason="QOSMaxJobsPerUserLimit") == (
        RunState.QUEUED, None, "pending: QOSMaxJobsPerUserLimit")
    assert status("COMPLETED") == (RunState.FINISHED, 0, None)
    # Slurm's word on success, the program's on its code: a non-zero code is a failure.
    assert status("COMPLETED", "0:0", ExitRecord(3)) == (RunState.FAILED, 3, "exit code 3")
    assert status("FAILED", "3:0") == (RunState.FAILED, 3, "exit code 3")
    assert status("FAILED", "0:9") == (RunState.FAILED, 137, "exit code 137 (killed by SIGKILL)")
    # The program killed by SIGKILL, the script lived on and exited with its code.
    assert status("FAILED", "137:0", ExitRecord(137, "SIGKILL")) == (
        RunState.FAILED, 137, "exit code 137 (killed by SIGKILL)")
    assert status("NODE_FAIL") == (RunState.FAILED, None, "node failure")
    assert status("FAILED") == (RunState.FAILED, None, "Slurm: FAILED")
    assert status("OUT_OF_MEMORY", "0:9") == (
        RunState.FAILED, 137, "out of memory; exit code 137 (killed by SIGKILL)")
    assert status("CANCELLED by 1000", "0:15", ExitRecord(143, "SIGTERM")) == (
        RunState.CANCELLED, 143, "cancelled by 1000")
    assert status("TIMEOUT", "0:15") == (RunState.TIMEOUT, 143, "runtime limit reached")
    # An unreadable file does not hide Slurm's code.
    assert status("FAILED", "4:0", ExitRecord(None)) == (RunState.FAILED, 4, "exit code 4")


def test_a_requeued_job_is_not_read_by_an_earlier_runs_record():
    # An admin's requeue ended run 0 by SIGTERM (its record says so); slurmd then refused
    # to start run 1 ("Job credential revoked"), which wrote nothing: Slurm's word counts.
    refused = SlurmJob("FAILED", "NonZeroExitCode", 1, restarts=1)
    st = job_status(refused, ExitRecord(143, "SIGTERM", restart=0))
    assert (st.state, st.exit_code, st.restarts) == (RunState.FAILED, 1, 1)
    assert st.message == "restart 1 recorded no exit code; exit code 1"
    # Run 1's own record, and records without a count (older scripts, other backends).
    done = SlurmJob("COMPLETED", None, 0, restarts=1)
    assert job_status(done, ExitRecord(0, restart=1)).state == RunState.FINISHED
    assert job_status(done, ExitRecord(3, restart=1)).exit_code == 3
    assert job_status(done, ExitRecord(3)).exit_code == 3


def test_a_job_slurm_forgot_ends_as_its_file_says():
    assert job_status(None, ExitRecord(0)).state == RunState.FINISHED
    gone = job_status(None, ExitRecord(137, "SIGKILL"))
    assert (gone.state, gone.exit_code, gone.message) == (
        RunState.FAILED, 137, "exit code 137 (killed by SIGKILL)")
    assert job_status(None, ExitRecord(143, "SIGTERM", timeout=True)).state == RunState.TIMEOUT
    assert job_status(None, ExitRecord(None)).message == "unreadable exit code file"
    assert job_status(None, None).state == RunState.FAILED  # accounting asked: no record at all
    unsure = job_status(None, None, forgotten=RunState.UNKNOWN)  # accounting off
    assert unsure.state == RunState.UNKNOWN and "recorded no exit code" in (unsure.message or "")


# ------------------------------------------------------------ the exit-code file


@pytest.mark.parametrize(
    "data,expected",
    [
        (None, None),  # missing
        (b"", None),
        (b"  \n", None),  # empty: not written yet
        (b"garbage", ExitRecord(None)),
        (b"{not json", ExitRecord(None)),  # there, unreadable
        (b"137", ExitRecord(137)),
        (b"137\n", ExitRecord(137)),
        ("0", ExitRecord(0)),  # bare codes
        (b"[1, 2]", ExitRecord(None)),
        (b"null", ExitRecord(None)),
        (b'{"exit_code": 3, "timeout": false, "signal": null, "ended_at": 1}', ExitRecord(3)),
        (b'{"exit_code": 143, "timeout": false, "signal": "SIGTERM"}', ExitRecord(143, "SIGTERM")),
        (b'{"exit_code": "137", "signal": 9}', ExitRecord(137, "SIGKILL")),
        (b'{"exit_code": 143, "timeout": true}', ExitRecord(143, None, True)),
        (b'{"exit_code": 143, "signal": "SIGTERM", "restart": 2}',
         ExitRecord(143, "SIGTERM", False, 2)),
        (b'{"exit_code": true}', ExitRecord(None)),
        (b'{"signal": "SIGTERM"}', ExitRecord(None, "SIGTERM")),
        ('{"exit_code": 1, "note": "\u00fc"}'.encode(), ExitRecord(1)),
        (b"\xff\xfe", ExitRecord(None)),
    ],
)
def test_exit_file_parsing(data, expected):
    assert parse_exit_record(data) == expected


def test_record_status_for_each_kind_of_file():
    assert record_status(None, missing="gone").message == "gone"
    assert record_status(parse_exit_record(b"137"), missing="-").exit_code == 137
    assert record_status(parse_exit_record(b"garbage"), missing="-").state == RunState.FAILED


def test_one_name_and_array_elements():
    assert EXIT_FILE == ".hpcml/exit_code"
    assert exit_file() == EXIT_FILE and exit_file(4) == ".hpcml/exit_code.4"
    assert array_task("123_4") == ("123", 4) and array_task("123") == ("123", None)
    assert all(JOB_ID.fullmatch(j) for j in ("123", "123_4", "123+1"))
    assert not JOB_ID.fullmatch("123; rm -rf ~")
    assert array_state(["COMPLETED", "RUNNING"]) == "RUNNING"
    assert array_state(["COMPLETED", "FAILED", "CANCELLED by 1"]) == "CANCELLED"
    assert array_state(["COMPLETED", "CD"]) == "COMPLETED"
    assert array_state(["PD", "CD"]) == "PENDING"



def test_a_run_that_is_a_whole_array_is_found_under_the_arrays_id():
    listed = [("41", SlurmJob("RUNNING")), ("42_1", SlurmJob("COMPLETED", code=0)),
              ("42_2", SlurmJob("FAILED", code=3)), ("42_3", SlurmJob("COMPLETED", code=0))]
    jobs = index_jobs(listed)
    assert jobs["42_2"] == SlurmJob("FAILED", code=3)  # an element, as Slurm said
    assert job_status(jobs["42"]).exit_code == 3 and jobs["42"].state == "FAILED"
    assert job_status(jobs["41"]).state == RunState.RUNNING
    running = index_jobs([("7_0", SlurmJob("COMPLETED", code=0)), ("7_1", SlurmJob("R"))])
    assert job_status(running["7"]).state == RunState.RUNNING


def test_what_slurm_commands_answer():
    assert cancel_moot("scancel: error: Kill job error on job id 5: "
                       "Job/step already completing or completed")
    assert cancel_moot("Invalid job id specified")
    assert not cancel_moot("Access/permission denied")
    assert slurm_transient("sbatch: error: Batch job submission failed: "
                           "Socket timed out on send/recv")
    assert slurm_transient("unable to contact SLURM CONTROLLER (connect failure)")
    assert not slurm_transient("Invalid partition name specified")
