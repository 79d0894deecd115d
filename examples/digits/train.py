"""Train a small MLP on scikit-learn's digits, one epoch at a time, logging to MLflow.

Under jupyterlab-hpcml (or `mlflow run`) the run already exists and MLFLOW_RUN_ID is
set, so `mlflow.start_run()` continues it. Run by hand (`python train.py`) it starts
a new run in the default tracking store.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--learning-rate", type=float, default=0.01, help="Adam step size")
    p.add_argument("--epochs", type=int, default=10, help="passes over the training split")
    p.add_argument("--hidden", type=int, default=64, help="units in the hidden layer")
    p.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epoch-delay", type=float, default=0.0,
                   help="seconds to sleep after each epoch, to watch a run live")
    p.add_argument("--run-label", default="", help="free text, stored as the run tag run_label")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error("--epochs must be at least 1")
    if args.hidden < 1 or args.batch_size < 1:
        p.error("--hidden and --batch-size must be at least 1")
    if args.learning_rate <= 0 or args.alpha < 0 or args.epoch_delay < 0:
        p.error("--learning-rate must be > 0; --alpha and --epoch-delay >= 0")
    return args


def pinned_requirements() -> list[str]:
    """The packages the logged model needs, at the versions that trained it."""
    from importlib.metadata import version

    return [f"{dist}=={version(dist)}" for dist in ("scikit-learn", "numpy", "scipy", "skops")]


def say(msg: str) -> None:
    print(msg, flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.monotonic()

    import mlflow
    import mlflow.sklearn
    from digits_data import confusion_text, load_splits, log_params_once
    from mlflow.models import infer_signature
    from sklearn.metrics import accuracy_score, confusion_matrix, log_loss
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    splits = load_splits()
    X_train, y_train = splits["train"]
    X_val, y_val = splits["val"]
    classes = np.unique(np.concatenate([y_train, y_val]))

    scaler = StandardScaler().fit(X_train)
    Xs_train, Xs_val = scaler.transform(X_train), scaler.transform(X_val)
    mlp = MLPClassifier(
        hidden_layer_sizes=(args.hidden,),
        learning_rate_init=args.learning_rate,
        alpha=args.alpha,
        batch_size=args.batch_size,
        random_state=args.seed,
    )
    # partial_fit does one pass over the data it is given, in shuffled minibatches.
    # Shuffle ourselves too so each epoch sees a different order.
    rng = np.random.default_rng(args.seed)

    with mlflow.start_run() as run:
        run_id = run.info.run_id
        say(f"mlflow run {run_id} (experiment {run.info.experiment_id}) "
            f"at {mlflow.get_tracking_uri()}")
        say(f"data: {len(y_train)} train / {len(y_val)} val images, {X_train.shape[1]} pixels, "
            f"{len(classes)} classes")
        log_params_once({
            "learning_rate": args.learning_rate,
            "epochs": args.epochs,
            "hidden": args.hidden,
            "alpha": args.alpha,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "epoch_delay": args.epoch_delay,
            "run_label": args.run_label,
        })
        if args.run_label:
            mlflow.set_tag("run_label", args.run_label)

        val_acc = 0.0
        for epoch in range(1, args.epochs + 1):
            order = rng.permutation(len(y_train))
            mlp.partial_fit(Xs_train[order], y_train[order], classes=classes)
            train_proba = mlp.predict_proba(Xs_train)
            train_loss = log_loss(y_train, train_proba, labels=classes)
            train_acc = accuracy_score(y_train, classes[train_proba.argmax(axis=1)])
            val_acc = accuracy_score(y_val, mlp.predict(Xs_val))
            mlflow.log_metrics(
                {"train_loss": train_loss, "train_accuracy": train_acc, "val_accuracy": val_acc},
                step=epoch,
            )
            say(f"epoch {epoch:>3}/{args.epochs}  train_loss={train_loss:.4f}  "
                f"train_accuracy={train_acc:.4f}  val_accuracy={val_acc:.4f}")
            if args.epoch_delay:
                time.sleep(args.epoch_delay)

        # The logged model takes raw pixel values (0..16); scaling is part of it.
        model = Pipeline([("scale", scaler), ("mlp", mlp)])
        val_pred = model.predict(X_val)
        cm = confusion_matrix(y_val, val_pred, labels=classes)
        labels = [int(c) for c in classes]
        mlflow.log_dict({"labels": labels, "rows": "true", "columns": "predicted",
                         "matrix": cm.tolist()}, "confusion_matrix.json")
        mlflow.log_text(confusion_text(cm, labels), "confusion_matrix.txt")

        mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X_val[:5], val_pred[:5]),
            # MLflow saves sklearn models with skops, which only loads allow-listed
            # types; an MLP trained with partial_fit keeps its Adam optimizer state.
            skops_trusted_types=["sklearn.neural_network._stochastic_optimizers.AdamOptimizer"],
            # Pinning what this process runs with skips MLflow's requirement inference,
            # which re-imports the model in a subprocess (seconds, on a busy login node more).
            pip_requirements=pinned_requirements(),
        )
        mlflow.log_metric("training_seconds", time.monotonic() - t0)
        say(f"done: val_accuracy={val_acc:.4f}; model at runs:/{run_id}/model "
            f"({time.monotonic() - t0:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
