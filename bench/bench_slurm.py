"""Slurm-over-SSH benchmarks against the local test cluster; prints figures, asserts nothing.

1. submit latency: the extension's submission (engine: snapshot, MLflow run, incremental
   upload, script, sbatch) and the backend alone (prepare + submit), next to
   ``sbatch`` run over the same already open SSH connection (median of N);
2. re-submitting a 5,000-file project after a one-file change: bytes and time, next to
   uploading the whole project as a tar.gz (Mantik's way) over the same connection;
3. poll cycle with 1, 100 and 1,000 active jobs: scheduler commands and server CPU time.

Needs ``sudo scripts/test-cluster-start.sh``. Run: ``.venv/bin/python bench/bench_slurm.py``.
"""
from __future__ import annotations

import asyncio
import io
import os
import shlex
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.slurm_cluster import backend_config, cluster_settings, skip_reason  # noqa: E402

N_SUBMIT = 10


def mib(n: float) -> str:
    return f"{n / (1 << 20):.2f} MiB" if n >= 1 << 20 else f"{n / 1024:.1f} KiB"


async def main() -> None:
    reason = skip_reason()
    if reason:
        print(f"skipped: {reason}")
        return
    s = cluster_settings()
    assert s
    os.environ["HPCML_SSH_KNOWN_HOSTS"] = s["HPCML_TEST_SSH_KNOWN_HOSTS"]
    tmp = Path(tempfile.mkdtemp(prefix="hpcml-bench-slurm-"))
    os.environ["HPCML_DATA_DIR"] = str(tmp / "data")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/data/mlflow.db"
    import yaml

    from jupyterlab_hpcml.backends.base import JobRef
    from jupyterlab_hpcml.backends.ssh.slurm import SlurmBackend
    from jupyterlab_hpcml.engine import snapshot as snapshot_mod
    from jupyterlab_hpcml.engine.requests import SubmitRequest
    from jupyterlab_hpcml.engine.service import Engine

    SlurmBackend.backoff_start = SlurmBackend.backoff_max = 0.0
    engine = Engine(data_dir=tmp / "data")
    try:
        # ---------------------------------------------------------------- 1. submit latency
        small = tmp / "small"
        shutil.copytree(REPO / "tests" / "projects" / "toy", small)
        (small / "slurm.yaml").write_text(yaml.safe_dump(backend_config(s)))
        req = SubmitRequest(project=str(small), backend_config="slurm.yaml", entry_point="fail",
                            parameters={"code": 0})
        first = await engine.runs.submit(req)  # connects, uploads the helper and the code
        backend = engine.registry.for_run(first)
        conn = backend.conn
        run_dir = first.run_dir
        ext, raw, backend_only = [], [], []
        for _ in range(N_SUBMIT):
            t = time.perf_counter()
            run = await engine.runs.submit(req)
            ext.append(time.perf_counter() - t)
            assert run.backend_job_id, run
            t = time.perf_counter()
            res = await conn.run(f"cd {shlex.quote(run_dir)} && sbatch --parsable .hpcml/job.sbatch")
            raw.append(time.perf_counter() - t)
            assert res.exit_status == 0, res.err
        snap = await asyncio.to_thread(snapshot_mod.take_snapshot, small, engine.runs.object_dir,
                                       engine.runs.manifest_dir)
        for _ in range(N_SUBMIT):
            run = await engine.runs.submit(req)  # a record to prepare/submit again
            spec = engine.runs._job_spec(run, engine.runs._load_config(small, "slurm.yaml", []))
            rec = run.model_copy(update={"id": run.id + "b", "run_dir": None})
            t = time.perf_counter()
            rec.run_dir = await backend.prepare(rec, snap, {})
            await backend.submit(rec, spec)
            backend_only.append(time.perf_counter() - t)
        m_ext, m_raw, m_be = (statistics.median(x) for x in (ext, raw, backend_only))
        print("1. submit latency (median of %d, warm connection, code already on the cluster)" % N_SUBMIT)
        print(f"   ssh sbatch on the open connection : {m_raw * 1000:7.1f} ms")
        print(f"   backend prepare+submit            : {m_be * 1000:7.1f} ms  ({m_be / m_raw:.2f}x)")
        print(f"   extension submit (engine, total)  : {m_ext * 1000:7.1f} ms  ({m_ext / m_raw:.2f}x)"
              "  [includes snapshot + MLflow run creation]")
        await conn.run("scancel -u $USER")

        # ---------------------------------------------------------------- 2. 5,000-file project
        big = tmp / "big"
        shutil.copytree(REPO / "tests" / "projects" / "toy", big)
        (big / "slurm.yaml").write_text(yaml.safe_dump(backend_config(s)))
        salt = os.urandom(4).hex()
        for i in range(5000):
            d = big / "src" / f"pkg{i // 100}"
            d.mkdir(parents=True, exist_ok=True)
            # ~1 KiB of source-like text that compresses about as well as real code does
            (d / f"mod{i}.py").write_text(f"# {salt} {i}\n" + "".join(
                f"value_{j} = {os.urandom(6).hex()!r}  # step {j}\n" for j in range(22)))
        total = sum(p.stat().st_size for p in big.rglob("*") if p.is_file())
        from jupyterlab_hpcml.engine.models import RunRecord

        def record(run_id: str) -> RunRecord:
            return RunRecord(id=run_id, name="b", project_path=str(big), project_name="big",
                             entry_point="main", command="true", backend="ssh")

        async def prepare(run_id: str):
            sn = await asyncio.to_thread(snapshot_mod.take_snapshot, big, engine.runs.object_dir,
                                         engine.runs.manifest_dir)
            before = conn.stats.command_bytes
            t = time.perf_counter()
            await backend.prepare(record(run_id), sn, {})
            return time.perf_counter() - t, backend.last_upload, conn.stats.command_bytes - before

        t_full, up_full, cb_full = await prepare(f"big{salt}a")
        (big / "src" / "pkg7" / "mod700.py").write_text(f"x = {salt!r}\n")
        t_one, up_one, cb_one = await prepare(f"big{salt}b")

        buf = io.BytesIO()
        t = time.perf_counter()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(big, arcname="big")
        data = buf.getvalue()
        target = f"/tmp/hpcml-bench-{salt}.tgz"
        res = await conn.run(f"cat > {target} && mkdir -p {target}.d && tar xzf {target} -C {target}.d "
                             f"&& rm -rf {target} {target}.d", input=data, timeout=600)
        t_tar = time.perf_counter() - t
        assert res.exit_status == 0, res.err
        print(f"2. 5,000-file project ({mib(total)}): bytes sent / time")
        print(f"   first submission (content-addressed): {mib(up_full.uploaded_bytes + cb_full):>11} "
              f"/ {t_full:6.2f} s  ({up_full.uploaded_files} files)")
        print(f"   after a one-file change             : {mib(up_one.uploaded_bytes + cb_one):>11} "
              f"/ {t_one:6.2f} s  ({up_one.uploaded_files} file of {up_one.uploaded_bytes} B "
              f"+ {up_one.manifest_bytes} B manifest delta)")
        print(f"   full tar.gz upload (Mantik's way)   : {mib(len(data)):>11} / {t_tar:6.2f} s  (+ unpack)")

        # ---------------------------------------------------------------- 3. poll cycle
        res = await conn.run("sbatch --parsable --hold --array=0-999 -p debug -o /dev/null --wrap 'true'")
        array = res.out.strip().split(";")[0]
        assert res.exit_status == 0 and array, res.err
        print("3. one poll cycle (held jobs, so all stay active)")
        try:
            for n in (1, 100, 1000):
                refs = [JobRef(f"r{i}", f"{array}_{i}", f"/nonexistent/{i}") for i in range(n)]
                cmds, cpu, wall = [], [], []
                for _ in range(5):
                    backend._next_poll = 0.0
                    before = sum(conn.stats.commands.values())
                    c0, w0 = time.process_time(), time.perf_counter()
                    statuses = await backend.poll(refs)
                    cpu.append(time.process_time() - c0)
                    wall.append(time.perf_counter() - w0)
                    cmds.append(sum(conn.stats.commands.values()) - before)
                    assert len(statuses) == n
                print(f"   {n:5d} active jobs: {statistics.median(cmds):.0f} scheduler command(s), "
                      f"server CPU {statistics.median(cpu) * 1000:6.1f} ms, wall {statistics.median(wall) * 1000:6.1f} ms")
        finally:
            await conn.run(f"scancel {array}")
            await conn.run("scancel -u $USER")
    finally:
        await engine.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
