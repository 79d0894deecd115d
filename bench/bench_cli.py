"""CLI start-up benchmark: wall time of short ``hpcml`` commands as a user runs them (a new
process each), on an empty data dir; prints figures, asserts nothing.

Commands: ``hpcml --help`` (the parser only), ``hpcml runs`` (the engine opened, the run
store read), ``hpcml schedule list`` and ``hpcml models ls`` (MLflow's registry). Median,
min and max of N runs each, plus the same ``hpcml runs`` with jsonschema's optional IRI
checker imported, as it was before the CLI went without it.

Run: ``.venv/bin/python bench/bench_cli.py`` (``--repeats N``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = [["--help"], ["runs"], ["schedule", "list"], ["models", "ls"]]
# The same `hpcml runs`, the IRI checker imported first (what every command paid before).
WITH_IRI = ("import rfc3987_syntax, sys; from jupyterlab_hpcml.cli import main; "
            "sys.exit(main(['runs']))")


def timed(argv: list[str], env: dict[str, str], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "HPCML_DATA_DIR": data}
        rows = [(" ".join(["hpcml", *c]), timed([sys.executable, "-m", "jupyterlab_hpcml.cli",
                                                  *c], env, args.repeats)) for c in COMMANDS]
        rows.append(("hpcml runs, IRI checker imported",
                     timed([sys.executable, "-c", WITH_IRI], env, args.repeats)))
    print(f"{'command':40} {'median':>8} {'min':>8} {'max':>8}   ({args.repeats} runs)")
    for name, times in rows:
        print(f"{name:40} {statistics.median(times):7.2f}s {min(times):7.2f}s "
              f"{max(times):7.2f}s")


if __name__ == "__main__":
    main()
