"""Datasets on the real test cluster (Slurm over SSH) at the engine level: a 200-file
dataset folder staged once into the cluster's data store, the job reading it at its path
and through HPCML_DATA_<NAME>; a second run sends no data bytes; after one file changed,
a third sends only that file, sees the new content, and MLflow shows another digest; https
and s3 sources staged; a dataset mapped to a cluster path used in place, and one mapped to
nothing failing the run before any job. Skips without the cluster."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.requests import SubmitRequest
from jupyterlab_hpcml.engine.service import Engine

from . import data_projects
from .data_projects import add_dataset, add_remote_sources, archive, folder_digest
from .slurm_cluster import backend_config, make_project, slurm, ssh_cmd  # noqa: F401 - fixture
from .test_data_source_https import Server, server  # noqa: F401 - fixture
from .test_data_source_s3 import client, endpoint  # noqa: F401 - fixtures


@pytest.fixture
def engine(hpcml_data: Path, slurm: dict[str, str]) -> Engine:  # noqa: F811
    return Engine(data_dir=hpcml_data, poll_interval=0.2)


@pytest.fixture
def project(tmp_path: Path, slurm: dict[str, str]) -> Path:  # noqa: F811
    root = make_project(tmp_path / "toy", slurm)
    (root / "MLproject").write_text(
        "name: datatoy\nentry_points:\n  main:\n    command: python read.py\n")
    # A salt per test: nothing of this data is in the cluster's store yet.
    add_dataset(root, salt=f"{time.time_ns()}-")
    return root


async def run_to_end(engine: Engine, project: Path) -> tuple[str, dict[str, str]]:
    return await data_projects.run_to_end(engine, project, backend_config="slurm.yaml",
                                          timeout=180)


async def test_staged_once_then_only_the_changed_file(engine: Engine, project: Path) -> None:
    data = project / "data" / "digits"
    total = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    first_id, seen = await run_to_end(engine, project)
    assert seen["declared"] == seen["env"] == folder_digest(data) and seen["abs"] == "True"
    (use,) = (await engine.get(first_id)).datasets
    assert (use.files, use.size, use.sent_files, use.sent_bytes) == (200, total, 200, total)
    assert use.location and "/datasets/" in use.location

    second_id, seen2 = await run_to_end(engine, project)
    (use2,) = (await engine.get(second_id)).datasets
    assert (use2.digest, use2.sent_files, use2.sent_bytes) == (use.digest, 0, 0)
    assert seen2["declared"] == seen["declared"]

    changed = data / "part-005.csv"
    changed.write_text(f"changed {time.time_ns()}\n")
    third_id, seen3 = await run_to_end(engine, project)
    (use3,) = (await engine.get(third_id)).datasets
    assert use3.digest != use.digest
    assert (use3.sent_files, use3.sent_bytes) == (1, changed.stat().st_size)
    assert seen3["declared"] == folder_digest(data) != seen["declared"]

    mlflow = MlflowClient(engine.tracking_uri)
    digests = [mlflow.get_run((await engine.get(r)).mlflow_run_id).inputs.dataset_inputs[0]
               .dataset.digest for r in (first_id, third_id)]
    assert digests == [use.digest[:32], use3.digest[:32]]
    # The run's file listing shows the data link, not the data behind it.
    run = await engine.get(third_id)
    files = await engine.registry.for_run(run).list_files(run.job_ref())
    assert not any(f.path.startswith("data/digits/") for f in files)
    await engine.close()


async def test_https_and_s3_sources_stage_to_the_cluster(
        engine: Engine, project: Path, server: Server, client: object,  # noqa: F811
) -> None:
    add_remote_sources(project, server.root, server.url, client)  # type: ignore[attr-defined]
    run_id, seen = await run_to_end(engine, project)
    assert (seen["web"], seen["bucket"]) == ("3,4", "x")
    run = await engine.get(run_id)
    assert [(u.name, u.files) for u in run.datasets] == [("web", 1), ("bucket", 1)]
    await engine.close()


async def test_a_cluster_path_is_used_in_place_and_a_missing_one_fails(
        engine: Engine, project: Path, slurm: dict[str, str], tmp_path: Path,  # noqa: F811
) -> None:
    shared = f"/tmp/hpcml-shared-{time.time_ns()}"
    ssh_cmd(slurm, f"mkdir -p {shared}/sub && echo 1 > {shared}/a.csv && "
                   f"echo 22 > {shared}/sub/b.csv")
    try:
        cfg = backend_config(slurm, Data={"digits-csv": shared})
        (project / "slurm.yaml").write_text(yaml.safe_dump(cfg))
        (project / "read.py").write_text(
            "import os\nprint('b', open('data/digits/sub/b.csv').read().strip())\n"
            "print('env', os.environ['HPCML_DATA_DIGITS_CSV'])\n")
        run_id, seen = await run_to_end(engine, project)
        assert seen["b"] == "22"
        (use,) = (await engine.get(run_id)).datasets
        assert (use.version, use.location, use.files, use.size, use.sent_bytes) == \
            ("listing", shared, 2, 5, 0)

        cfg["Data"] = {"digits-csv": shared + "-missing"}
        (project / "slurm.yaml").write_text(yaml.safe_dump(cfg))
        failed = await engine.submit(SubmitRequest(project=str(project),
                                                   backend_config="slurm.yaml"))
        assert failed.state == RunState.FAILED and failed.backend_job_id is None
        assert shared + "-missing" in (failed.state_history[-1].message or "")
    finally:
        ssh_cmd(slurm, f"rm -rf {shared}")
        await engine.close()


async def test_the_cluster_fetches_an_https_source_itself(
        engine: Engine, project: Path, server: Server, slurm: dict[str, str],  # noqa: F811
        tmp_path: Path) -> None:
    """``DataFetch: cluster``: the login node downloads the archive (nothing of it passes
    through the lab's machine), with the digest this machine computes; a second run
    downloads nothing (conditional GET); where the cluster cannot fetch it, this machine
    does and sends it."""
    salt = str(time.time_ns()).encode()  # contents the cluster's store has not seen
    (server.root / "set.tar.gz").write_bytes(  # type: ignore[attr-defined]
        archive({"a.csv": salt + b"\n", "sub/b.csv": b"3,4\n" + salt}))
    (project / "datasets.yaml").write_text(
        f"datasets:\n  web:\n    source: {server.url}/set.tar.gz\n")
    (project / "read.py").write_text(
        "print('b', open('data/web/sub/b.csv').read().splitlines()[0])\n")
    cfg = backend_config(slurm, DataFetch="cluster")
    (project / "slurm.yaml").write_text(yaml.safe_dump(cfg))

    # Where the cluster does not trust the server's certificate, this machine fetches it.
    fallback_id, seen = await run_to_end(engine, project)
    fallback = await engine.get(fallback_id)
    assert seen["b"] == "3,4" and fallback.datasets[0].sent_files == 2
    assert any("could not fetch it" in n and "fetched here" in n for n in fallback.notes)
    await engine.remove_data_version(project, "slurm.yaml", fallback.datasets[0].digest)

    # The cluster user's shell trusts it (OpenSSL reads SSL_CERT_FILE; bash runs ~/.bashrc
    # for ssh commands, before Debian's "not interactive: return").
    cert = Path("/tmp") / f"hpcml-test-ca-{time.time_ns()}.pem"
    cert.write_bytes(Path(os.environ["SSL_CERT_FILE"]).read_bytes())
    cert.chmod(0o644)
    ssh_cmd(slurm, f"cp ~/.bashrc ~/.bashrc.hpcml-test && "
                   f"{{ echo 'export SSL_CERT_FILE={cert}'; cat ~/.bashrc.hpcml-test; }} "
                   f"> ~/.bashrc")
    try:
        server.gets.clear()
        first_id, seen = await run_to_end(engine, project)
        (use,) = (await engine.get(first_id)).datasets
        assert seen["b"] == "3,4"
        assert (use.digest, use.files, use.sent_bytes) == (fallback.datasets[0].digest, 2, 0)
        assert any("fetched by the target itself" in n for n in
                   (await engine.get(first_id)).notes)
        assert len(server.gets) == 1 and server.gets[0].endswith(" None")  # a plain GET
        second_id, _seen = await run_to_end(engine, project)
        assert (await engine.get(second_id)).datasets[0].digest == use.digest
        assert len(server.gets) == 2 and not server.gets[1].endswith(" None")  # conditional
    finally:
        ssh_cmd(slurm, "mv ~/.bashrc.hpcml-test ~/.bashrc")
        cert.unlink()
        await engine.close()
