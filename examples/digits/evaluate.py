"""Score a trained digits model on the held-out test split and log the result to MLflow.

The model URI can be runs:/<run_id>/model, models:/<name>/<version>, or a local path
(a plain path works when run by hand; through an MLproject `uri` parameter use file:///...).
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-uri", required=True,
                   help="runs:/<run_id>/model, models:/<name>/<version> or a path")
    args = p.parse_args(argv)

    import mlflow
    import mlflow.sklearn
    from digits_data import load_splits, log_params_once
    from sklearn.metrics import accuracy_score, classification_report, f1_score

    X_test, y_test = load_splits()["test"]

    with mlflow.start_run() as run:
        print(f"mlflow run {run.info.run_id}: evaluating {args.model_uri}", flush=True)
        log_params_once({"model_uri": args.model_uri})
        model = mlflow.sklearn.load_model(args.model_uri)
        pred = model.predict(X_test)
        acc = accuracy_score(y_test, pred)
        macro_f1 = f1_score(y_test, pred, average="macro")
        mlflow.log_metrics({"test_accuracy": acc, "test_macro_f1": macro_f1})
        mlflow.log_text(classification_report(y_test, pred, digits=4), "classification_report.txt")
        print(f"test images: {len(y_test)}  test_accuracy={acc:.4f}  test_macro_f1={macro_f1:.4f}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
