"""Dataset staging benchmark against the local test cluster; prints figures, asserts nothing.

A 1 GiB dataset of 1,000 files (1 MiB each, random) staged to the test cluster through the
engine (Slurm over SSH: hashing, plan, upload of what the cluster lacks, the version's tree)
three times: the first time, again unchanged, and after one file changed — bytes sent and
time — next to ``rsync -a`` and ``scp -r`` of the same folder to the same cluster with the
ssh client. A fourth round stages the unchanged data from a new engine (the file hashes
come from the hash cache on disk, as for a new server process).

Needs ``sudo scripts/test-cluster-start.sh``. Run: ``.venv/bin/python bench/bench_data.py``
(``--files N --file-mib M`` for another size).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.slurm_cluster import backend_config, cluster_settings, skip_reason  # noqa: E402

MIB = 1 << 20


def make_dataset(folder: Path, files: int, file_mib: int) -> None:
    for i in range(files):
        sub = folder / f"shard-{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"part-{i:04d}.bin").write_bytes(os.urandom(file_mib * MIB))


def ssh_base(s: dict[str, str]) -> list[str]:
    return ["ssh", "-F", s["HPCML_TEST_SSH_CONFIG"], "-o", "BatchMode=yes"]


def remote(s: dict[str, str], command: str) -> None:
    subprocess.run([*ssh_base(s), "hpcml-test-cluster", command], check=True,
                   capture_output=True, timeout=600)


def rsync(s: dict[str, str], folder: Path, dest: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    out = subprocess.run(
        ["rsync", "-a", "--stats", "-e", " ".join(ssh_base(s)), f"{folder}/",
         f"hpcml-test-cluster:{dest}/"], check=True, capture_output=True, text=True).stdout
    seconds = time.perf_counter() - t0
    sent = re.search(r"Total bytes sent: ([\d,.]+)", out)
    return seconds, int(sent.group(1).replace(",", "").replace(".", "")) if sent else -1


def scp(s: dict[str, str], folder: Path, dest: str, total: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    subprocess.run(["scp", "-q", "-r", "-F", s["HPCML_TEST_SSH_CONFIG"], "-o", "BatchMode=yes",
                    str(folder), f"hpcml-test-cluster:{dest}"], check=True, capture_output=True)
    return time.perf_counter() - t0, total  # scp sends every byte every time


def line(what: str, seconds: float, sent: int) -> str:
    return f"  {what:<34} {seconds:7.2f} s  {sent / MIB:9.1f} MiB sent"


STAGED: set[str] = set()  # versions this bench staged: removed at the end


async def stage(data_dir: Path, project: Path) -> tuple[float, int, int]:
    from jupyterlab_hpcml.engine.service import Engine

    engine = Engine(data_dir=data_dir)
    try:
        t0 = time.perf_counter()
        (use,) = await engine.stage_data(project, "slurm.yaml")
        STAGED.add(use.digest)
        return time.perf_counter() - t0, use.sent_bytes, use.sent_files
    finally:
        await engine.close()


async def remove_staged(data_dir: Path, project: Path) -> None:
    from jupyterlab_hpcml.engine.service import Engine

    engine = Engine(data_dir=data_dir)
    try:
        for digest in STAGED:
            await engine.remove_data_version(project, "slurm.yaml", digest)
    finally:
        await engine.close()


async def main(files: int, file_mib: int) -> None:
    reason = skip_reason()
    if reason:
        print(f"skipped: {reason}")
        return
    s = cluster_settings()
    assert s is not None
    os.environ["HPCML_SSH_KNOWN_HOSTS"] = s["HPCML_TEST_SSH_KNOWN_HOSTS"]
    tmp = Path(tempfile.mkdtemp(prefix="bench-data-"))
    tag = f"bench-data-{os.getpid()}"
    try:
        project = tmp / "project"
        data = project / "data" / "set"
        project.mkdir()
        (project / "MLproject").write_text(
            "name: bench\nentry_points:\n  main:\n    command: \"python -c 'pass'\"\n")
        (project / "datasets.yaml").write_text("datasets:\n  set:\n    source: data/set\n")
        (project / "slurm.yaml").write_text(yaml.safe_dump(backend_config(s)))
        t0 = time.perf_counter()
        make_dataset(data, files, file_mib)
        total = files * file_mib * MIB
        print(f"dataset: {files} files, {total / MIB:.0f} MiB, made in "
              f"{time.perf_counter() - t0:.1f} s")
        changed = data / "shard-3" / "part-0003.bin"

        print("hpcml (engine.stage_data, Slurm over SSH):")
        data_dir = tmp / "hpcml-data"
        first = await stage(data_dir, project)
        print(line("first time", first[0], first[1]) + f" ({first[2]} files)")
        again = await stage(data_dir, project)
        print(line("again, unchanged", again[0], again[1]) + f" ({again[2]} files)")
        changed.write_bytes(os.urandom(file_mib * MIB))
        os.utime(changed, (time.time() - 10, time.time() - 10))  # not "racy": hash remembered
        one = await stage(data_dir, project)
        print(line("one file changed", one[0], one[1]) + f" ({one[2]} files)")
        fresh = await stage(data_dir, project)
        print(line("unchanged, new engine", fresh[0], fresh[1]) + f" ({fresh[2]} files)")
        await remove_staged(data_dir, project)

        dest = f"/tmp/{tag}"
        remote(s, f"rm -rf {dest} {dest}-scp && mkdir -p {dest}")
        print("rsync -a (same folder, same cluster):")
        print(line("first time", *rsync(s, data, dest)))
        print(line("again, unchanged", *rsync(s, data, dest)))
        changed.write_bytes(os.urandom(file_mib * MIB))
        print(line("one file changed", *rsync(s, data, dest)))
        print("scp -r:")
        print(line("every time", *scp(s, data, f"{dest}-scp", total)))
        remote(s, f"rm -rf {dest} {dest}-scp")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--file-mib", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.files, args.file_mib))
