"""`hpcml models register|ls|show|alias`: MLflow's model registry from the command line.

Every command calls the Engine facade only.
"""
from __future__ import annotations

import argparse
import json

from . import cli_args, run_text
from .run_text import fmt_time

LIST_HEADER = ("NAME", "ALIASES", "UPDATED", "DESCRIPTION")
VERSION_HEADER = ("VERSION", "ALIASES", "RUN", "SOURCE", "CREATED")


def _aliases(aliases: dict[str, str] | list[str]) -> str:
    if isinstance(aliases, dict):
        return ", ".join(f"{a}→v{v}" for a, v in sorted(aliases.items())) or "-"
    return ", ".join(sorted(aliases)) or "-"


async def cmd_register(args: argparse.Namespace) -> int:
    version = await cli_args.with_engine(args, lambda e: e.register_model(
        args.run, args.name, path=args.path, alias=args.alias, description=args.description))
    if args.json:
        print(json.dumps(version.model_dump(mode="json"), indent=2))
    else:
        print(f"registered {version.name} version {version.version} from {version.source}"
              + (f" as {', '.join(version.aliases)}" if version.aliases else ""))
    return 0


async def cmd_ls(args: argparse.Namespace) -> int:
    models = await cli_args.with_engine(args, lambda e: e.list_models())
    if args.json:
        print(json.dumps([m.model_dump(mode="json") for m in models], indent=2))
        return 0
    print(run_text.table(((m.name, _aliases(m.aliases), fmt_time(m.updated_at),
                           m.description or "") for m in models), LIST_HEADER))
    return 0


async def cmd_show(args: argparse.Namespace) -> int:
    model = await cli_args.with_engine(args, lambda e: e.get_model(args.name))
    if args.json:
        print(json.dumps(model.model_dump(mode="json"), indent=2))
        return 0
    print(f"{model.name}: {model.description or ''}".rstrip(": "))
    print(run_text.table(((v.version, _aliases(v.aliases), v.mlflow_run_id or "-", v.source,
                           fmt_time(v.created_at)) for v in model.versions), VERSION_HEADER))
    return 0


async def cmd_alias(args: argparse.Namespace) -> int:
    version = await cli_args.with_engine(args, lambda e: e.set_model_alias(args.name, args.alias,
                                                                   args.version))
    print(f"{version.name}@{args.alias} → version {version.version}")
    return 0


def add_models_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = sub.add_parser("models", help="registered models: register a run's model, "
                                           "list, show, set aliases")
    cmds = models.add_subparsers(dest="models_command", required=True)
    p = cmds.add_parser("register", help="register a run's logged model as a new version")
    p.add_argument("run", help="run id or a unique prefix of it")
    p.add_argument("--name", required=True, help="the registered model's name")
    p.add_argument("--path", default="model", help="the model's name in the run (default: model)")
    p.add_argument("--alias", help="also point this alias at the new version, e.g. champion")
    p.add_argument("--description")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_register)
    p = cmds.add_parser("ls", help="registered models and their aliases")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ls)
    p = cmds.add_parser("show", help="a model's versions, newest first")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)
    p = cmds.add_parser("alias", help="point an alias at a version (moved from where it was)")
    p.add_argument("name")
    p.add_argument("alias")
    p.add_argument("version")
    p.set_defaults(func=cmd_alias)
