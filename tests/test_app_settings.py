"""Server settings given as traitlets reach the engine and the kernels the server starts."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .conftest import TERMINAL, wait_for_state


@pytest.fixture
def traitlet_data(tmp_path: Path) -> Path:
    return tmp_path / "traitlet-data"


@pytest.fixture
def jp_server_config(hpcml_data: Path, traitlet_data: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"jupyterlab_hpcml": True}},
        "HpcmlApp": {"poll_interval": 0.2, "data_dir": str(traitlet_data),
                     "default_backend": "local.yaml"},
    }


async def test_traitlets_set_the_store_and_the_kernels_environment(api, toy_project, traitlet_data,
                                                                   hpcml_data):
    status, run = await api("POST", "runs", {"project": "toy", "parameters": {"steps": 1}})
    assert status == 201, run
    assert run["config_path"].endswith("local.yaml")  # default_backend
    assert (await wait_for_state(api, run["id"], TERMINAL))["state"] == "FINISHED"
    assert (traitlet_data / "runs.sqlite").exists()
    assert not (hpcml_data / "runs.sqlite").exists()
    # Kernels inherit the server's environment, so the magics use the same store.
    assert os.environ["HPCML_DATA_DIR"] == str(traitlet_data.resolve())
