"""Resources + Environment → a Slurm batch script (shared by the SSH and FirecREST backends).

``render_batch_script(job, run_dir, ...)`` is a pure function: no I/O, same inputs → same
text. The script it returns

* requests resources with ``#SBATCH`` lines (Queue → ``--partition``, Runtime →
  ``--time``, Nodes, TotalCPUs → ``--ntasks``, CPUsPerNode, GPUsPerNode →
  ``--gpus-per-node``, MemoryPerNode → ``--mem``, Reservation, NodeConstraints →
  ``--constraint``, QoS → ``--qos``, Account → ``--account``) and writes stdout/stderr
  to ``<run_dir>/.hpcml/{stdout,stderr}.log`` (appending, so a requeue keeps both runs);
* loads ``Modules``, activates the ``Python`` venv, exports ``Variables`` and the job's
  non-secret environment (``shlex.quote``: values never become shell code);
* reads secrets (e.g. ``MLFLOW_TRACKING_TOKEN``) from a separate file readable only by
  the user (``secrets_file``; write it with :func:`secrets_file_content`), so that they
  appear neither in the script, nor in ``scontrol show job``, nor in the logs;
* runs the pre-run commands on the compute node (a failing one stops the job with a
  clear message), the command (inside ``srun apptainer run <Options> <image>`` when
  ``Environment.Apptainer`` is set), then the post-run commands;
* records the program's exit code in ``<run_dir>/.hpcml/exit_code`` as JSON, like the
  local runner: ``{"exit_code": 0, "timeout": false, "signal": null, "ended_at": ...}``,
  so the final state is right even when Slurm accounting is off. The writer
  (:func:`exit_record_function`) is the one every generated job script uses (UNICORE's
  too); :mod:`.exitrecord` reads it for every backend, :mod:`.slurm_common` weighs it
  against Slurm's word.

Job arrays (``array="0-9%2"``): ``--array``, one log pair per element
(``.hpcml/stdout.<task>.log``, ``%a`` in the ``#SBATCH`` lines) and one exit-code file per
element (``.hpcml/exit_code.<task>``); the element ids are ``<job id>_<task>``.

Login-node pre/post commands are not part of the script: the backend runs them over
its own channel before submitting / after the job ended.

Typical use (any backend that can write files next to the run directory)::

    public, secret = split_env(job.env)
    secrets_path = f"{secrets_dir}/{job.run_id}.env" if secret else None
    script = render_batch_script(job, run_dir, secrets_file=secrets_path)
    # upload script to f"{run_dir}/{SCRIPT_NAME}" and, if secret,
    # secrets_file_content(secret) to secrets_path with mode 0600; then sbatch.
"""
from __future__ import annotations

import math
import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..core.errors import Problem, UserInputError
from ..core.files import META_DIR
from ..core.job import ArrayTask, RequeuePolicy
from .exitrecord import EXIT_FILE

SCRIPT_NAME = f"{META_DIR}/job.sbatch"  # where backends keep the script (viewable with the run)
TASKS_DIR = f"{META_DIR}/tasks"  # an array's per-task files (task_files)
# Resources keys of the requeue policy (honoured where the backend passes ``requeue``).
REQUEUE_RESOURCES = ("Requeue", "MaxRequeues", "RequeueSignalSeconds")

# Names whose values must never be written into the script (see tracking.SECRET_ENV_VARS).
_SECRET_NAME_RE = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY|CREDENTIAL|PRIVATE_?KEY", re.I)
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What may appear in an #SBATCH value: sbatch splits these lines itself, not the shell.
_SBATCH_VALUE_RE = re.compile(r"[^\s'\"\\#]+")
# Resources key → sbatch option (values checked against _SBATCH_VALUE_RE).
_SIMPLE_OPTIONS = {
    "Queue": "--partition",
    "Nodes": "--nodes",
    "TotalCPUs": "--ntasks",
    "GPUsPerNode": "--gpus-per-node",
    "Reservation": "--reservation",
    "NodeConstraints": "--constraint",
    "QoS": "--qos",
    "Account": "--account",
}
HONOURED_RESOURCES = (
    "Queue", "Runtime", "Nodes", "TotalCPUs", "CPUsPerNode", "GPUsPerNode", "MemoryPerNode",
    "Reservation", "NodeConstraints", "QoS", "Account",
)


class JobLike(Protocol):
    """What the renderer reads of a :class:`~jupyterlab_hpcml.backends.base.JobSpec`."""

    run_id: str
    command: str
    env: dict[str, str]
    resources: dict[str, Any]  # normalised: Runtime in seconds, MemoryPerNode in MiB
    environment: dict[str, Any]  # normalised backend config "Environment" section
    job_name: str


# ---------------------------------------------------------------------- helpers


def is_secret_env(name: str) -> bool:
    """Whether an environment variable of ``JobSpec.env`` must stay out of the script."""
    return bool(_SECRET_NAME_RE.search(name))


def split_env(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(public, secret) parts of ``JobSpec.env``."""
    public = {k: v for k, v in env.items() if not is_secret_env(k)}
    secret = {k: v for k, v in env.items() if is_secret_env(k)}
    return public, secret


def secrets_file_content(secret: Mapping[str, str]) -> bytes:
    """The file the script sources for its secrets (upload it with mode 0600)."""
    lines = [f"export {_env_name(k)}={shlex.quote(str(v))}\n" for k, v in secret.items()]
    return "".join(lines).encode()


def slurm_time(seconds: int | float) -> str:
    """Seconds → ``[D-]HH:MM:SS`` (what ``--time`` accepts; Slurm rounds up to minutes)."""
    total = max(1, math.ceil(float(seconds)))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


def job_name(name: str, run_id: str | None = None) -> str:
    """A Slurm job name made of safe characters (project names may hold anything)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "hpcml"
    return safe[:100]


def _env_name(name: str) -> str:
    if not _ENV_NAME_RE.fullmatch(name):
        raise UserInputError(Problem(f"{name!r} is not a valid environment variable name",
                                     key=f"Environment.Variables.{name}"))
    return name


def _sbatch_value(key: str, value: Any) -> str:
    text = str(value)
    if isinstance(value, bool) or not _SBATCH_VALUE_RE.fullmatch(text):
        raise UserInputError(Problem(
            f"must be a single word without spaces, quotes, backslashes or '#', got {text!r}",
            key=f"Resources.{key}",
        ))
    return text


def command_list(value: Any) -> list[str]:
    """A Pre/Post*Command config value (string or list) as a list of commands."""
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if str(v).strip()]
    return [str(value)]


def _path_expr(path: str) -> str:
    """A cluster path as a shell word: ``~/x`` and ``$HOME/x`` expand, nothing else does."""
    if path == "~":
        return '"$HOME"'
    for prefix in ("~/", "$HOME/", "${HOME}/"):
        if path.startswith(prefix):
            return '"$HOME"/' + shlex.quote(path[len(prefix):])
    return shlex.quote(path)


def module_lines(modules: Sequence[Any]) -> list[str]:
    """``module load`` lines for ``Environment.Modules``; a failing load stops the job."""
    lines = []
    for m in modules:
        failed = shlex.quote(f"module load {m} failed")
        lines.append(f"module load {shlex.quote(str(m))} || __hpcml_fail 1 {failed}")
    return lines


def apptainer_command(
    apptainer: Mapping[str, Any], image: str, command: str, launcher: str = "",
    command_expr: str | None = None,
) -> str:
    """``[launcher] apptainer run <Options> <image> bash -c <command>`` for
    ``Environment.Apptainer`` (``image``: its path on the cluster; ``~/`` expands).
    ``command_expr``: a shell word that yields the command when the line runs (an array
    task's ``"$(cat <its .cmd file>)"``), used instead of ``command``."""
    words = [launcher] if launcher else []
    words += ["apptainer", "run", *(shlex.quote(o) for o in _options(apptainer.get("Options")))]
    words += [_path_expr(image), "bash", "-c", command_expr or shlex.quote(command)]
    return " ".join(words)


def venv_lines(python: Any) -> list[str]:
    """Shell lines that activate ``Environment.Python`` (a venv, or its ``bin/python``;
    ``~/`` expands on the cluster) or stop the job with ``__hpcml_fail`` and a clear message."""
    venv = str(python)
    if venv.endswith(("/bin/python", "/bin/python3")):
        venv = venv.rsplit("/bin/", 1)[0]
    expr = _path_expr(venv)
    msg = shlex.quote(f"Environment.Python: no virtual environment at {venv} (no bin/activate)")
    return [f"[ -f {expr}/bin/activate ] || __hpcml_fail 1 {msg}",
            f"VIRTUAL_ENV_DISABLE_PROMPT=1 . {expr}/bin/activate"]


def sbatch_options(resources: Mapping[str, Any]) -> list[str]:
    """``--option=value`` strings for the Resources section (no run-dir specific options)."""
    opts: list[str] = []
    for key, option in _SIMPLE_OPTIONS.items():
        if resources.get(key) not in (None, ""):
            opts.append(f"{option}={_sbatch_value(key, resources[key])}")
    if resources.get("Runtime"):
        opts.append(f"--time={slurm_time(resources['Runtime'])}")
    if resources.get("CPUsPerNode"):
        cpus = _sbatch_value("CPUsPerNode", resources["CPUsPerNode"])
        # With TotalCPUs the tasks are spread CPUsPerNode per node; without it the
        # program is one task per node that gets CPUsPerNode CPUs.
        if resources.get("TotalCPUs"):
            opts.append(f"--ntasks-per-node={cpus}")
        else:
            opts.append(f"--cpus-per-task={cpus}")
    if resources.get("MemoryPerNode"):
        opts.append(f"--mem={_sbatch_value('MemoryPerNode', int(resources['MemoryPerNode']))}M")
    return opts


# ---------------------------------------------------------------------- the script


def exit_record_function(meta_dir: str, cleanup: str = "") -> str:
    """The shell function ``__hpcml_record <exit code>`` that writes the exit-code file
    (:mod:`.exitrecord`) atomically into ``meta_dir`` (a shell word: ``.hpcml``,
    ``"$__hpcml_meta"``), then runs ``cleanup``. The one writer of every job script.

    It reads ``$__hpcml_signal`` (JSON: ``null`` or ``"\\"SIGTERM\\""``, the signal the
    script received); a code above 128 without one names the signal that killed the
    program, as the local runner does. An array element writes ``exit_code.<task>``
    (``$__hpcml_task``: its global index, set by the array script; unset elsewhere)."""
    name = posixpath.basename(EXIT_FILE)
    return f"""__hpcml_record() {{  # <exit code>: the exit-code file, written atomically
  local sig="$__hpcml_signal" tmp={meta_dir}/.{name}.$$
  local dest={meta_dir}/{name}${{__hpcml_task:+.$__hpcml_task}}
  if [ "$sig" = null ] && [ "$1" -gt 128 ] && [ "$1" -le 192 ]; then
    sig=$(kill -l "$(( $1 - 128 ))" 2>/dev/null) && sig="\\"SIG${{sig#SIG}}\\"" || sig=null
  fi
  printf '{_RECORD_FORMAT}' "$1" "$sig" "$(date +%s)" "${{SLURM_JOB_ID:-}}" \
    "${{SLURM_RESTART_COUNT:-0}}" > "$tmp" &&
    mv -f "$tmp" "$dest"{cleanup and f"; {cleanup}"}
}}
"""


# The exit-code file's line (printf format: code, signal as JSON, end time, Slurm job id,
# Slurm's restart count).
_RECORD_FORMAT = ('{"exit_code": %d, "timeout": false, "signal": %s, "ended_at": %s, '
                  '"slurm_job_id": "%s", "restart": %d}\\n')

_PRELUDE = r"""set -u
__hpcml_meta="$HPCML_RUN_DIR/.hpcml"
__hpcml_signal=null
__hpcml_child=""
__hpcml_group=""  # the program's own process group (requeue mode): signalled as a whole
__hpcml_log() { printf 'hpcml: %s\n' "$*" >&2; }
__HPCML_RECORD
__hpcml_finish() {  # <exit code>
  __hpcml_record "$1"
  __HPCML_CLEANUP
  exit "$1"
}
__hpcml_on_signal() {
  if [ "$__hpcml_signal" = null ]; then
    __hpcml_signal="\"SIG$1\""
    __hpcml_log "received SIG$1, stopping the job"
  fi
  if [ -n "$__hpcml_group" ]; then kill -TERM -- "-$__hpcml_group" 2>/dev/null
  elif [ -n "$__hpcml_child" ]; then kill -TERM "$__hpcml_child" 2>/dev/null; fi
}
trap '__hpcml_on_signal TERM' TERM
trap '__hpcml_on_signal INT' INT
trap '__hpcml_on_signal HUP' HUP
__hpcml_run() {  # <shell command>: one step, in the background so a signal is handled at once
  bash -c "$1" </dev/null &
  __hpcml_child=$!
  local rc=0
  wait "$__hpcml_child" || rc=$?
  while [ "$rc" -gt 128 ] && kill -0 "$__hpcml_child" 2>/dev/null; do
    rc=0; wait "$__hpcml_child" || rc=$?   # interrupted by our trap: wait for the real end
  done
  __hpcml_child=""
  return "$rc"
}
__hpcml_fail() {  # <exit code> <message>: a setup step failed
  __hpcml_log "$2"
  __hpcml_finish "$1"
}
cd "$HPCML_RUN_DIR" || { echo "hpcml: cannot enter the run directory $HPCML_RUN_DIR" >&2; exit 1; }
"""

_MODULE_INIT = r"""if ! type module >/dev/null 2>&1; then
  for __hpcml_init in /etc/profile.d/lmod.sh /usr/share/lmod/lmod/init/bash \
      /etc/profile.d/modules.sh /usr/share/modules/init/bash; do
    if [ -f "$__hpcml_init" ]; then . "$__hpcml_init"; break; fi
  done
fi
type module >/dev/null 2>&1 ||
  __hpcml_fail 1 "Environment.Modules: no module command on the compute node"
"""

_MLFLOW_CHECK = r"""__hpcml_py=$(command -v python || command -v python3 || true)
if [ -z "$__hpcml_py" ]; then
  __hpcml_log "no python on PATH: nothing will be tracked in MLflow" \
    "(set Environment.Python to a venv with mlflow)"
elif ! "$__hpcml_py" 2>/dev/null -c \
    'import importlib.util, sys; sys.exit(importlib.util.find_spec("mlflow") is None)'; then
  __hpcml_log "mlflow is not installed in the job's Python ($__hpcml_py): the run works" \
    "but nothing is tracked in MLflow (install mlflow into Environment.Python)"
fi
"""


def render_batch_script(
    job: JobLike,
    run_dir: str,
    *,
    secrets_file: str | None = None,
    apptainer_image: str | None = None,
    extra_sbatch: Sequence[str] = (),
    array: str | None = None,
    array_offset: int | None = None,
    requeue: RequeuePolicy | None = None,
) -> str:
    """The batch script for ``job`` running in ``run_dir`` (an absolute path on the cluster).

    ``secrets_file``: absolute path of the 0600 file with the secret part of ``job.env``
    (required when there is one; see :func:`split_env`). ``apptainer_image``: where the
    image is on the cluster (default: ``Environment.Apptainer.Path``, relative paths from
    the run directory). ``extra_sbatch``: more ``--option=value`` strings (e.g. a comment).

    ``array``: make it a job array (sbatch ``--array``, e.g. ``"0-9%2"``).

    * With ``array_offset`` (an int): a sweep's array. Element ``$SLURM_ARRAY_TASK_ID``
      runs TASK ``array_offset + $SLURM_ARRAY_TASK_ID`` (the global index: a sweep split
      into several arrays keeps one numbering): its logs ``.hpcml/stdout.<task>.log``
      (:func:`log_file`; Slurm's own ``--output`` goes to ``.hpcml/array.%A_%a.log``), its
      environment ``.hpcml/tasks/<task>.env`` sourced after ``job.env``'s public part, its
      command ``.hpcml/tasks/<task>.cmd`` run instead of ``job.command``, its exit-code
      file ``.hpcml/exit_code.<task>``. Write the task files with :func:`task_files`. The
      secrets file is shared by all tasks; the last task to end removes it.
    * Without: every element runs ``job.command`` (it sees ``$SLURM_ARRAY_TASK_ID``), task
      = element index, logs through ``%a``.

    ``requeue``: survive the time limit and preemption (:class:`RequeuePolicy`): Slurm
    sends SIGUSR2 ``signal_before_end`` seconds before the limit; the script passes it on
    to the program's process group, waits for the program to end (it checkpoints to
    ``$HPCML_CHECKPOINT_DIR``), and requeues the job (``scontrol requeue``) without
    recording an end, at most ``max_requeues`` times (``$HPCML_RESTART_COUNT``, from
    ``$SLURM_RESTART_COUNT``). Once no requeue is left, SIGUSR2 is not passed on: the
    program runs on and may still finish before the limit.

    Raises ``UserInputError`` for values that cannot be put safely into ``#SBATCH`` lines.
    """
    if not run_dir.startswith("/") or not _SBATCH_VALUE_RE.fullmatch(run_dir):
        raise UserInputError(Problem(
            "the run directory on the cluster must be an absolute path without spaces or "
            f"quotes: {run_dir!r}",
            key="SSH.WorkDir",
        ))
    tasks = array_offset is not None
    if tasks and not array:
        raise ValueError("array_offset needs array")
    if tasks and (isinstance(array_offset, bool) or not isinstance(array_offset, int)
                  or array_offset < 0):
        raise ValueError(f"array_offset must be an int >= 0, got {array_offset!r}")
    public, secret = split_env(job.env)
    if secret and not secrets_file:
        raise ValueError("job.env holds secrets: pass secrets_file (they never go into the script)")
    env = job.environment or {}
    res = job.resources or {}
    out: list[str] = ["#!/bin/bash", f"# jupyterlab-hpcml run {job.run_id}: generated, do not edit"]

    if tasks:  # Slurm's own log of each element (the task's logs are redirected below)
        logs = [f"--output={run_dir}/{META_DIR}/array.%A_%a.log",
                f"--error={run_dir}/{META_DIR}/array.%A_%a.log"]
    else:
        logs = [f"--output={run_dir}/{log_file('stdout', '%a' if array else None)}",
                f"--error={run_dir}/{log_file('stderr', '%a' if array else None)}"]
    sbatch = [
        f"--job-name={job_name(job.job_name)}",
        f"--chdir={run_dir}",
        *logs,
        "--open-mode=append",
        *([f"--array={_array_spec(array)}"] if array else []),
        *(_requeue_options(requeue) if requeue else []),
        *sbatch_options(res),
        *extra_sbatch,
    ]
    out += [f"#SBATCH {opt}" for opt in sbatch]
    out.append("")
    out.append(f"export HPCML_RUN_DIR={shlex.quote(run_dir)}")
    cleanup = f"rm -f {shlex.quote(secrets_file)}" if secrets_file else ":"
    if secrets_file and tasks:
        cleanup = "__hpcml_last_task_cleanup"  # shared by the tasks: the last one removes it
    if secrets_file and requeue:
        # An end by a signal may be a requeue (Slurm's or an admin's): the next start needs it.
        cleanup = f'[ "$__hpcml_signal" != null ] || {cleanup}'
    record = exit_record_function('"$__hpcml_meta"').rstrip("\n")
    prelude = _PRELUDE.replace("__HPCML_RECORD", record)
    out.append(prelude.replace("__HPCML_CLEANUP", cleanup).rstrip("\n"))
    if tasks:
        out.append(_ARRAY_TASK.replace("__HPCML_OFFSET", str(array_offset)).replace(
            "__HPCML_CLEANUP_FUNCTION", _SECRETS_CLEANUP.rstrip("\n")).replace(
            "__HPCML_SECRETS", shlex.quote(secrets_file or "")).rstrip("\n"))
    elif array:
        out.append('__hpcml_task="${SLURM_ARRAY_TASK_ID:-}"  # this element\'s exit-code file')
    if requeue:
        out.append(_REQUEUE.replace("__HPCML_MAX", str(int(requeue.max_requeues))).rstrip("\n"))

    modules = [str(m) for m in env.get("Modules") or []]
    if modules:
        out.append("# Environment.Modules")
        out.append(_MODULE_INIT.rstrip("\n"))
        out += module_lines(modules)

    if env.get("Python"):
        out.append("# Environment.Python")
        out += venv_lines(env["Python"])

    variables = {str(k): v for k, v in (env.get("Variables") or {}).items()}
    if variables or public:
        out.append("# Environment.Variables and the job's tracking environment")
    if tasks:  # the task's own environment (its MLflow run...) over the shared one
        for name, value in public.items():
            out.append(f"export {_env_name(name)}={shlex.quote(_env_value(value))}")
        out.append(_task_file_check("env"))
        out.append(r'. "$HPCML_TASK_DIR/$__hpcml_task.env"')
        public = {}
    for name, value in {**public, **variables}.items():
        out.append(f"export {_env_name(name)}={shlex.quote(_env_value(value))}")
    if requeue:  # after the job's env: the scheduler's count wins over the engine's 0
        out.append('export HPCML_RESTART_COUNT="${SLURM_RESTART_COUNT:-0}"')
    out.append('export PYTHONUNBUFFERED="${PYTHONUNBUFFERED:-1}"')
    if secrets_file:
        q = shlex.quote(secrets_file)
        out.append("# secrets (tracking token): from a file only the user can read")
        out.append(f"if [ -r {q} ]; then . {q}; else __hpcml_log 'the secrets file is missing: "
                   "the job runs without credentials'; fi")

    apptainer = env.get("Apptainer") if isinstance(env.get("Apptainer"), dict) else None
    if not apptainer:
        out.append(_MLFLOW_CHECK.rstrip("\n"))

    pre = command_list(env.get("PreRunCommandOnComputeNode"))
    for cmd in pre:
        msg = f"pre-run command failed with exit code $__hpcml_rc: {cmd}"
        out.append(f"__hpcml_rc=0; __hpcml_run {shlex.quote(cmd)} || __hpcml_rc=$?")
        out.append(
            f'if [ "$__hpcml_rc" -ne 0 ]; then [ "$__hpcml_signal" = null ] && '
            f'__hpcml_log "{_dq(msg)}"; __hpcml_finish "$__hpcml_rc"; fi'
        )

    # The task's command is read from its file when the step runs: one bash -c reads it,
    # nothing re-interprets it (parameter values stay words).
    task_cmd = '"$(cat "$HPCML_TASK_DIR/$HPCML_TASK_INDEX.cmd")"'
    if apptainer:
        image = apptainer_image or str(apptainer.get("Path"))
        step = shlex.quote(apptainer_command(apptainer, image, job.command, launcher="srun",
                                             command_expr=task_cmd if tasks else None))
    else:
        step = task_cmd if tasks else shlex.quote(job.command)
    if tasks:
        out.append(_task_file_check("cmd"))
    out.append('[ "$__hpcml_signal" = null ] || __hpcml_finish 143')
    started = '"$__hpcml_meta/started.$__hpcml_task"' if tasks else '"$__hpcml_meta/started"'
    out.append(f"date +%s > {started}")
    if requeue:
        out.append(f"__hpcml_rc=0; __hpcml_run_program {step} || __hpcml_rc=$?")
        out.append("__hpcml_requeue_if_asked")
    else:
        out.append(f"__hpcml_rc=0; __hpcml_run {step} || __hpcml_rc=$?")

    post = command_list(env.get("PostRunCommandOnComputeNode"))
    if post:
        out.append("# post-run commands: after success and failure, not after a cancel/timeout")
        out.append('if [ "$__hpcml_signal" = null ]; then')
        for cmd in post:
            msg = f"post-run command failed with exit code $__hpcml_prc: {cmd}"
            out.append(f"  __hpcml_prc=0; __hpcml_run {shlex.quote(cmd)} || __hpcml_prc=$?")
            out.append(f'  [ "$__hpcml_prc" -eq 0 ] || __hpcml_log "{_dq(msg)}"')
        out.append("fi")
    out.append('__hpcml_finish "$__hpcml_rc"')
    return "\n".join(out) + "\n"


# A sweep's array element: its task (global index), its own logs from here on, the task
# files' directory. The shared secrets file goes when every task has recorded its end.
_ARRAY_TASK = r"""# job array: this element's task (global index = offset + index in this array)
[ -n "${SLURM_ARRAY_TASK_ID:-}" ] ||
  { echo "hpcml: not started as a job array element" >&2; exit 1; }
__hpcml_task=$(( __HPCML_OFFSET + SLURM_ARRAY_TASK_ID ))
export HPCML_TASK_INDEX="$__hpcml_task" HPCML_TASK_DIR="$__hpcml_meta/tasks"
exec >>"$__hpcml_meta/stdout.$__hpcml_task.log" 2>>"$__hpcml_meta/stderr.$__hpcml_task.log"
__HPCML_CLEANUP_FUNCTION
__hpcml_last_task_cleanup() { __hpcml_secrets_cleanup "$__hpcml_meta" __HPCML_SECRETS; }
"""

# The sweep's shared secrets file goes once no task may still need it: Slurm lists none of
# the sweep's elements as pending or running except ones that have recorded their end (a
# task cancelled before it started never does, nor leaves a trace). Without Slurm's word
# (squeue failed, no ``array_ids`` yet): once every task has an exit-code file. Used by the
# array script at each task's end and by ``tasks/cleanup.sh`` (run after a cancel).
_SECRETS_CLEANUP = r"""__hpcml_secrets_cleanup() {  # <meta dir> <secrets file>
  local meta="$1" f n=0 ended=0 ids="" off id el st
  [ -e "$2" ] || return 0
  local -A first=()
  if [ -r "$meta/__HPCML_ARRAYS" ]; then
    while read -r off id; do
      [ -n "${id:-}" ] && first[$id]=$off && ids="$ids${ids:+,}$id"
    done < "$meta/__HPCML_ARRAYS"
  fi
  if [ -n "$ids" ] && el=$(squeue -h -r -j "$ids" -o '%i %T' 2>/dev/null); then
    while read -r id st; do
      [ -n "${id:-}" ] || continue
      case "$st" in
        RUNNING) ;;
        PENDING|CONFIGURING|SUSPENDED|REQUEUED|REQUEUE_HOLD|REQUEUE_FED|RESIZING) return 0 ;;
        *) continue ;;
      esac
      off=${first[${id%%_*}]:-}; id=${id#*_}
      case "$off" in ''|*[!0-9]*) return 0 ;; esac
      case "$id" in ''|*[!0-9]*) return 0 ;; esac
      [ -e "$meta/exit_code.$(( off + id ))" ] || return 0  # still running its task
    done <<< "$el"
  else
    for f in "$meta"/tasks/*.cmd; do [ -e "$f" ] && n=$((n + 1)); done
    for f in "$meta"/exit_code.*; do [ -e "$f" ] && ended=$((ended + 1)); done
    [ "$ended" -ge "$n" ] || return 0
  fi
  rm -f "$2"
}
""".replace("__HPCML_ARRAYS", "array_ids")
ARRAYS_FILE = f"{META_DIR}/array_ids"  # a sweep's job arrays: "<offset> <array id>" lines
CLEANUP_SCRIPT = f"{TASKS_DIR}/cleanup.sh"  # removes the shared secrets file when unneeded

# Requeue mode: the program runs in its own process group (setsid) so that SIGUSR2 reaches
# all of it; the script waits for the whole group (the checkpoint being written), then
# requeues itself instead of recording an end. A restart removes the previous run's
# exit-code file (an admin's requeue ends that run by SIGTERM, which records one).
_REQUEUE = r"""# Resources.Requeue: SIGUSR2 before the time limit → checkpoint → scontrol requeue
__hpcml_requeue_max=__HPCML_MAX
__hpcml_usr2=""
__hpcml_ended=""  # the program has ended by itself: a late SIGUSR2 requeues nothing
__hpcml_restarts="${SLURM_RESTART_COUNT:-0}"
[ "$__hpcml_restarts" -gt 0 ] && rm -f "$__hpcml_meta/exit_code${__hpcml_task:+.$__hpcml_task}"
__hpcml_on_usr2() {
  if [ "$__hpcml_restarts" -ge "$__hpcml_requeue_max" ]; then
    __hpcml_log "received SIGUSR2 (time limit near); no requeue left ($__hpcml_restarts of" \
      "$__hpcml_requeue_max done): the program runs on"
    return 0
  fi
  [ -z "$__hpcml_usr2" ] && [ -z "$__hpcml_ended" ] || return 0
  __hpcml_usr2=1
  __hpcml_log "received SIGUSR2 (time limit or preemption near): the program checkpoints," \
    "then the job is requeued"
  [ -n "$__hpcml_group" ] && kill -USR2 -- "-$__hpcml_group" 2>/dev/null
  return 0
}
trap '__hpcml_on_usr2' USR2
__hpcml_run_program() {  # <shell command>: in its own process group, USR2 passed to all of it
  if [ -n "$__hpcml_usr2" ]; then return 0; fi  # asked to stop before it started
  if command -v setsid >/dev/null 2>&1; then
    setsid bash -c "$1" </dev/null &
    __hpcml_group=$!
  else
    bash -c "$1" </dev/null &
  fi
  __hpcml_child=$!
  local rc=0
  wait "$__hpcml_child" || rc=$?
  while [ "$rc" -gt 128 ] && kill -0 "$__hpcml_child" 2>/dev/null; do
    rc=0; wait "$__hpcml_child" || rc=$?   # interrupted by our trap: wait for the real end
  done
  [ -n "$__hpcml_usr2" ] || __hpcml_ended=1
  if [ -n "$__hpcml_usr2" ] && [ -n "$__hpcml_group" ]; then
    while kill -0 -- "-$__hpcml_group" 2>/dev/null; do sleep 1; done  # its last writes
  fi
  __hpcml_child="" __hpcml_group=""
  return "$rc"
}
__hpcml_requeue_if_asked() {
  [ -n "$__hpcml_usr2" ] && [ "$__hpcml_signal" = null ] || return 0
  local id="${SLURM_JOB_ID:-}"
  [ -n "${SLURM_ARRAY_JOB_ID:-}" ] && id="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
  __hpcml_log "the program ended (exit code $__hpcml_rc): requeueing job $id" \
    "(restart $((__hpcml_restarts + 1)) of at most $__hpcml_requeue_max)"
  if scontrol requeue "$id"; then
    exit 0  # no end recorded: the job runs again (Slurm ends this run now)
  fi
  __hpcml_log "scontrol requeue $id failed: the run ends here"
}
"""


def _task_file_check(ext: str) -> str:
    path = f"$HPCML_TASK_DIR/$__hpcml_task.{ext}"
    return f'[ -r "{path}" ] || __hpcml_fail 1 "task $__hpcml_task: {path} is missing"'


def _requeue_options(policy: RequeuePolicy) -> list[str]:
    seconds = int(policy.signal_before_end)
    if seconds < 1 or int(policy.max_requeues) < 0:
        raise UserInputError(Problem(
            "RequeueSignalSeconds must be at least 1 and MaxRequeues not negative",
            key="Resources.RequeueSignalSeconds"))
    return ["--requeue", f"--signal=B:USR2@{seconds}"]


def task_files(tasks: Sequence[ArrayTask], secrets_file: str | None = None) -> dict[str, bytes]:
    """The per-task files of a sweep's array in its shared run directory (relative path →
    content): ``.hpcml/tasks/<i>.env`` (``export``s of the task's PUBLIC env, each value
    shell-quoted; the secret part is the same for all tasks and goes to the one secrets
    file), ``.hpcml/tasks/<i>.cmd`` (its command, run by ``bash -c`` as it is), and
    ``.hpcml/tasks/params.tsv`` (index, run id, run name, command: for people).

    ``secrets_file``: the sweep's shared secrets file; then also ``.hpcml/tasks/cleanup.sh``,
    which removes it when no task may still need it: run it after cancelling tasks (a task
    cancelled before it started never runs the script that would). It reads the arrays'
    ids from ``.hpcml/array_ids`` ("<offset> <array id>" lines): write that after sbatch."""
    files: dict[str, bytes] = {}
    rows = ["index\trun_id\trun_name\tcommand"]
    seen: set[int] = set()
    for task in tasks:
        i = task.index
        if isinstance(i, bool) or not isinstance(i, int) or i < 0 or i in seen:
            raise ValueError(f"array task indexes must be distinct ints >= 0, got {i!r}")
        seen.add(i)
        ctx = task.context
        public, _ = split_env(ctx.env)
        files[f"{TASKS_DIR}/{i}.env"] = "".join(
            f"export {_env_name(k)}={shlex.quote(_env_value(v))}\n"
            for k, v in public.items()).encode()
        files[f"{TASKS_DIR}/{i}.cmd"] = ctx.command.encode()
        rows.append("\t".join(_tsv(x) for x in (str(i), ctx.run_id, ctx.run_name, ctx.command)))
    files[f"{TASKS_DIR}/params.tsv"] = ("\n".join(rows) + "\n").encode()
    if secrets_file:
        files[CLEANUP_SCRIPT] = (
            f"{_SECRETS_CLEANUP}__hpcml_secrets_cleanup \"${{0%/tasks/cleanup.sh}}\" "
            f"{shlex.quote(secrets_file)}\n").encode()
    return files


def _tsv(text: str) -> str:
    return re.sub(r"[\t\r\n]+", " ", text)


def log_file(stream: str, task: int | str | None = None) -> str:
    """Where the job's ``stream`` ("stdout"/"stderr") goes in the run directory:
    ``.hpcml/stdout.log``, for an array element ``.hpcml/stdout.<task>.log`` (``%a`` in
    the ``#SBATCH`` line: Slurm puts in the element's index)."""
    return f"{META_DIR}/{stream}.log" if task in (None, "") else f"{META_DIR}/{stream}.{task}.log"


_ARRAY_RE = re.compile(r"[0-9]+(-[0-9]+(:[0-9]+)?)?(,[0-9]+(-[0-9]+(:[0-9]+)?)?)*(%[0-9]+)?")


def _array_spec(array: str) -> str:
    if not _ARRAY_RE.fullmatch(array):
        raise UserInputError(Problem(f"not a Slurm array range (like 0-9 or 1,3,5%2): {array!r}"))
    return array


def _dq(text: str) -> str:
    """Text for inside double quotes, keeping only the ``$__hpcml_*rc`` references live."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
    return escaped.replace("\\$__hpcml_rc", "$__hpcml_rc").replace("\\$__hpcml_prc", "$__hpcml_prc")


def _options(value: Any) -> list[str]:
    """Apptainer Options: each list item is one option, possibly with its argument
    (``-B /data:/data``), split like a shell would split it."""
    items = [value] if isinstance(value, str) else list(value or [])
    out: list[str] = []
    for item in items:
        out.extend(shlex.split(str(item)))
    return out


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
