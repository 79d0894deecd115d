"""`hpcml deploy MODEL_URI | deploy stop NAME | deploy ls` and `hpcml predict MODEL_URI`:
serve a registered model version, and score an input with one as a batch run.

Every command calls the Engine facade only.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import cli_args, run_text
from .core.errors import Problem, UserInputError
from .run_text import fmt_time

if TYPE_CHECKING:
    from .engine.models import DeploymentRecord
    from .engine.service import Engine

LIST_HEADER = ("NAME", "STATE", "MODEL", "VERSION", "BACKEND", "REPLICAS", "CREATED")
WAIT_POLL_SECONDS = 1.0


def _target(args: argparse.Namespace) -> dict[str, Any]:
    """``project`` and ``backend_config`` of a request: a config is relative to the
    project when one is given, else to the current folder."""
    if args.project:
        project = str(Path(args.project).expanduser().resolve())
        return {"project": project, "backend_config": args.backend_config}
    config = cli_args.config_path(args.backend_config, Path.cwd())
    return {"project": None, "backend_config": config}


def _print(dep: DeploymentRecord, as_json: bool) -> None:
    if as_json:
        print(json.dumps(dep.model_dump(mode="json"), indent=2))
    else:
        why = f" ({dep.message})" if dep.message else ""
        print(f"deployment {dep.name}: {dep.state}{why}", file=sys.stderr)


async def cmd_deploy(args: argparse.Namespace) -> int:
    action, rest = args.target[0], args.target[1:]
    if action in ("stop", "ls"):
        if (action == "stop") != bool(rest) or len(rest) > 1:
            raise UserInputError(Problem("usage: hpcml deploy stop NAME | hpcml deploy ls"))
        return await (_stop(args, rest[0]) if action == "stop" else _ls(args))
    if rest:
        raise UserInputError(Problem(f"unexpected arguments: {' '.join(rest)}"))
    from .engine.requests import DeployRequest

    req = DeployRequest(model_uri=action, name=args.name, replicas=args.replicas,
                        overrides=cli_args.sets(args.set), **_target(args))
    engine = cli_args.engine(args)
    try:
        dep = await engine.deploy(req)
        if not args.json:
            print(f"deploying {dep.model_name} version {dep.model_version} as {dep.name} on "
                  f"{dep.backend} (runs {', '.join(dep.run_ids)})", file=sys.stderr)
        if args.wait:
            dep = await _until_settled(engine, dep.name, args.timeout)
        _print(dep, args.json)
        if not args.json and dep.state == "READY":
            print(f"call it through the lab: POST /hpcml/api/deployments/{dep.name}/invocations"
                  f", or from Python: hpcml.deployment({dep.name!r}).predict(df)",
                  file=sys.stderr)
        return 0 if dep.state in ("READY", "STARTING") else 1
    finally:
        await engine.close()


async def _until_settled(engine: Engine, name: str, timeout: float) -> DeploymentRecord:
    engine.start()  # polls the serving jobs while this process waits
    deadline = time.monotonic() + timeout
    while True:
        dep = await engine.get_deployment(name, refresh=True)
        if dep.state != "STARTING" or time.monotonic() > deadline:
            return dep
        await asyncio.sleep(WAIT_POLL_SECONDS)


async def _stop(args: argparse.Namespace, name: str) -> int:
    _print(await cli_args.with_engine(args, lambda e: e.stop_deployment(name)), args.json)
    return 0


async def _ls(args: argparse.Namespace) -> int:
    deps = await cli_args.with_engine(args, lambda e: e.list_deployments())
    if args.json:
        print(json.dumps([d.model_dump(mode="json") for d in deps], indent=2))
    else:
        print(run_text.table(((d.name, d.state, d.model_name, d.model_version, d.backend,
                               str(d.replicas), fmt_time(d.created_at)) for d in deps),
                             LIST_HEADER))
    return 0


async def cmd_predict(args: argparse.Namespace) -> int:
    from .engine.requests import PredictRequest

    target = _target(args)
    if target["project"] is None and Path("MLproject").is_file():
        target["project"] = str(Path.cwd())  # --input may name one of its datasets
    req = PredictRequest(model_uri=args.model_uri, input=args.input, output=args.output,
                         drop_columns=args.drop or [], run_name=args.run_name,
                         overrides=cli_args.sets(args.set), **target)
    engine = cli_args.engine(args)
    try:
        run = await engine.predict(req)
        print(f"submitted prediction run {run.id} on {run.backend}: {run.state.value}",
              file=sys.stderr)
        if args.wait:
            run = await cli_args.wait_run(engine, run, WAIT_POLL_SECONDS)
            print(f"run {run.id} {run.state.value}; predictions: artifacts "
                  f"predictions/{args.output} of MLflow run {run.mlflow_run_id}", file=sys.stderr)
        print(json.dumps(run.model_dump(mode="json"), indent=2) if args.json else run.id)
        return 0 if not args.wait or run.state.value == "FINISHED" else 1
    finally:
        await engine.close()


def _target_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--backend-config", help="backend config file (default: local)")
    p.add_argument("--project", help="the project the config belongs to (then relative to it)")
    p.add_argument("--set", action="append", metavar="Section.Key=value",
                   help="override the config, e.g. Resources.GPUsPerNode=1")
    p.add_argument("--json", action="store_true")


def add_deploy_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "deploy", help="serve a registered model: deploy MODEL_URI | deploy stop NAME | "
                       "deploy ls",
        description="Serve a registered model version (models:/NAME/VERSION or "
                    "models:/NAME@ALIAS) with MLflow's scoring server as a job on the "
                    "config's target; `deploy stop NAME` stops it, `deploy ls` lists them.")
    p.add_argument("target", nargs="+", metavar="MODEL_URI | stop NAME | ls")
    p.add_argument("--name", help="the deployment's name (default: from the model's name)")
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--no-wait", dest="wait", action="store_false",
                   help="return once submitted, not once READY")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for READY")
    _target_options(p)
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("predict", help="score an input with a registered model, as a run")
    p.add_argument("model_uri", metavar="MODEL_URI")
    p.add_argument("--input", required=True,
                   help="a dataset of the project (datasets.yaml), or a file or folder")
    p.add_argument("--output", default="predictions.csv",
                   help="the predictions' file name (artifact predictions/NAME)")
    p.add_argument("--drop", action="append", metavar="COLUMN",
                   help="leave this input column out (e.g. label); repeatable")
    p.add_argument("--run-name")
    p.add_argument("--wait", action="store_true", help="wait for the run to end")
    _target_options(p)
    p.set_defaults(func=cmd_predict)
