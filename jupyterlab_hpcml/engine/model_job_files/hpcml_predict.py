"""Score an input with the MLflow model in ./model and log the predictions as an artifact
of this run (written by jupyterlab-hpcml).

The input is the run's dataset ``input`` ($HPCML_DATA_INPUT): one file, or a folder whose
.csv / .parquet / .json files are read in name order. Each file's rows are scored, and
``outputs/<output>`` (CSV: the input's columns are not repeated; one row per input row,
with ``source`` and ``row`` saying where it came from) is logged under ``predictions/``.
``--drop`` leaves columns out of what the model sees (e.g. the label of test data).
"""
import argparse
import os
from pathlib import Path

READERS = {".csv": "read_csv", ".parquet": "read_parquet", ".json": "read_json"}


def input_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in READERS)
    if not found:
        raise SystemExit(f"no .csv, .parquet or .json file in {path}")
    return found


def as_model_input(model, frame):
    """``frame`` as the model takes it: a model whose signature is one tensor gets an array
    of that dtype (MLflow does not cast a file's integers to a float tensor itself)."""
    schema = model.metadata.get_input_schema()
    if schema is not None and schema.is_tensor_spec() and len(schema.inputs) == 1:
        return frame.to_numpy(dtype=schema.inputs[0].type)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="model")
    parser.add_argument("--output", default="predictions.csv")
    parser.add_argument("--drop", default="", help="columns to leave out, e.g. label")
    args = parser.parse_args()

    import mlflow
    import pandas as pd

    root = Path(os.environ["HPCML_DATA_INPUT"])
    model = mlflow.pyfunc.load_model(args.model)
    drop = [c.strip() for c in args.drop.split(",") if c.strip()]
    parts = []
    for path in input_files(root):
        frame = getattr(pd, READERS.get(path.suffix, "read_csv"))(path)
        frame = frame.drop(columns=[c for c in drop if c in frame.columns])
        scored = pd.DataFrame(model.predict(as_model_input(model, frame)))
        if scored.shape[1] == 1:
            scored.columns = ["prediction"]
        scored.insert(0, "row", range(len(frame)))
        scored.insert(0, "source", path.relative_to(root).as_posix() if path != root else path.name)
        parts.append(scored)
        print(f"scored {len(frame)} rows of {path.name}", flush=True)
    out = Path("outputs") / args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    result = pd.concat(parts, ignore_index=True)
    result.to_csv(out, index=False)
    mlflow.log_metric("rows_scored", len(result))
    mlflow.log_artifact(str(out), artifact_path="predictions")
    print(f"wrote {len(result)} predictions to {out}", flush=True)


if __name__ == "__main__":
    main()
