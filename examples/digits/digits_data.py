"""Data and tracking helpers shared by train.py and evaluate.py."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

# The split is fixed, independent of the training seed, so that evaluate.py
# scores every model on the same held-out test images that no training run saw.
SPLIT_SEED = 1234
TEST_FRACTION = 0.2
VAL_FRACTION = 0.2  # of what remains after the test split


def load_data() -> tuple[np.ndarray, np.ndarray]:
    """The digits: from the staged dataset (datasets.yaml: $HPCML_DATA_DIGITS_CSV, part-NN.csv
    files of pixels + label) when the run has it, else scikit-learn's bundled copy."""
    folder = os.environ.get("HPCML_DATA_DIGITS_CSV")
    if not folder:
        return load_digits(return_X_y=True)
    parts = sorted(Path(folder).glob("part-*.csv"))
    if not parts:
        raise SystemExit(f"no part-*.csv files in {folder}")
    table = np.concatenate([np.loadtxt(p, delimiter=",", skiprows=1, ndmin=2) for p in parts])
    print(f"data: {len(table)} rows from {folder}", flush=True)
    return table[:, :-1], table[:, -1].astype(int)


def load_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Return {"train": (X, y), "val": (X, y), "test": (X, y)}; X is raw pixels 0..16."""
    X, y = load_data()
    X = X.astype(np.float64)
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y
    )
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=VAL_FRACTION, random_state=SPLIT_SEED, stratify=y_rest
    )
    return {"train": (X_train, y_train), "val": (X_val, y_val), "test": (X_test, y_test)}


def log_params_once(params: dict) -> None:
    """Log params onto the active run, skipping ones it already has.

    A launcher (`mlflow run`, jupyterlab-hpcml) may already have recorded the entry
    point's parameters on this run, as the user typed them ("1e-2"). MLflow refuses
    to change a logged param, so re-logging the parsed value ("0.01") would fail.
    """
    import mlflow

    run = mlflow.active_run()
    existing = mlflow.get_run(run.info.run_id).data.params if run else {}
    new = {k: v for k, v in params.items() if k not in existing}
    if new:
        mlflow.log_params(new)


def confusion_text(cm: np.ndarray, labels) -> str:
    """A fixed-width confusion matrix: rows are true labels, columns predictions."""
    width = max(4, len(str(int(cm.max()))) + 1)
    head = "true\\pred" + "".join(f"{label:>{width}}" for label in labels)
    # zip without strict=: the job may run on a cluster Python older than 3.10.
    pairs = zip(labels, cm)  # noqa: B905
    rows = [f"{label:>9}" + "".join(f"{n:>{width}}" for n in row) for label, row in pairs]
    return "\n".join([head, *rows]) + "\n"
