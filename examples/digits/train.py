"""Train a small MLP on scikit-learn's digits, one epoch at a time, logging to MLflow.

Under jupyterlab-hpcml (or `mlflow run`) the run already exists and MLFLOW_RUN_ID is
set, so `mlflow.start_run()` continues it. Run by hand (`python train.py`) it starts
a new run in the default tracking store.

Checkpoint and resume: when HPCML_CHECKPOINT_DIR is set (jupyterlab-hpcml sets it for
every job: a directory that survives a requeue), each epoch ends with a checkpoint there,
and a start finds it and goes on with the next epoch, logging into the same MLflow run.
SIGUSR2 (sent by Slurm before a time limit or preemption, when `Resources.Requeue` is on)
or SIGTERM then stops the job at the end of the current epoch, checkpoint written, with
exit code 99, so that the job can be requeued. Without HPCML_CHECKPOINT_DIR nothing of
this happens.
"""

from __future__ import annotations

import argparse
import os
import pickle
import signal
import sys
import time
from pathlib import Path

import numpy as np

CHECKPOINT = "digits-checkpoint.pkl"
STOPPED = 99  # exit code after a checkpoint on request: "requeue me"
# What must match for a checkpoint to be resumed (--epochs may grow: train longer).
RESUME_KEYS = ("learning_rate", "hidden", "alpha", "batch_size", "seed")


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


class StopRequest:
    """Set by SIGUSR2/SIGTERM: end after the current epoch's checkpoint."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def install(self) -> None:
        for sig in (signal.SIGUSR2, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        self.signal = signal.Signals(signum).name
        say(f"received {self.signal}: stopping after this epoch's checkpoint")

    def sleep(self, seconds: float) -> None:
        """time.sleep, cut short by a stop request."""
        end = time.monotonic() + seconds
        while self.signal is None and time.monotonic() < end:
            time.sleep(min(0.05, end - time.monotonic()))


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomically: a reader (or the next start) never finds half a checkpoint."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path, settings: dict) -> dict | None:
    """The checkpoint of this training (our own file, in the run's own directory), or None."""
    if not path.exists():
        return None
    with open(path, "rb") as f:
        state = pickle.load(f)  # noqa: S301 - written by this script for this run
    made_with = state.get("settings", {})
    differ = [k for k in RESUME_KEYS if made_with.get(k) != settings.get(k)]
    if differ:
        raise SystemExit(f"the checkpoint {path} was made with other {', '.join(differ)}: "
                         "remove it or use another HPCML_CHECKPOINT_DIR")
    return state


def logged_steps(run_id: str, metric: str) -> set[int]:
    from mlflow.tracking import MlflowClient

    return {m.step for m in MlflowClient().get_metric_history(run_id, metric)}


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
    settings = {k: getattr(args, k) for k in RESUME_KEYS}

    ckpt_dir = os.environ.get("HPCML_CHECKPOINT_DIR")
    ckpt_path = Path(ckpt_dir) / CHECKPOINT if ckpt_dir else None
    stop = StopRequest()
    resumed = None
    if ckpt_path is not None:
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        stop.install()
        resumed = load_checkpoint(ckpt_path, settings)
    start_epoch = 1
    if resumed is not None:
        scaler, mlp = resumed["scaler"], resumed["mlp"]
        Xs_train, Xs_val = scaler.transform(X_train), scaler.transform(X_val)
        rng.bit_generator.state = resumed["rng"]
        start_epoch = resumed["epoch"] + 1
        say(f"resuming after epoch {resumed['epoch']} from {ckpt_path} "
            f"(restart {os.environ.get('HPCML_RESTART_COUNT', '?')})")

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
        if resumed is not None:
            val_acc = resumed["metrics"]["val_accuracy"]
            # The checkpoint is written before its epoch's metrics are logged: a stop in
            # between leaves them to log now (exactly once either way).
            if resumed["epoch"] not in logged_steps(run_id, "val_accuracy"):
                mlflow.log_metrics(resumed["metrics"], step=resumed["epoch"])
        for epoch in range(start_epoch, args.epochs + 1):
            order = rng.permutation(len(y_train))
            mlp.partial_fit(Xs_train[order], y_train[order], classes=classes)
            train_proba = mlp.predict_proba(Xs_train)
            train_loss = log_loss(y_train, train_proba, labels=classes)
            train_acc = accuracy_score(y_train, classes[train_proba.argmax(axis=1)])
            val_acc = accuracy_score(y_val, mlp.predict(Xs_val))
            metrics = {"train_loss": train_loss, "train_accuracy": train_acc,
                       "val_accuracy": val_acc}
            if ckpt_path is not None:
                save_checkpoint(ckpt_path, {
                    "epoch": epoch, "scaler": scaler, "mlp": mlp, "rng": rng.bit_generator.state,
                    "metrics": metrics, "settings": settings})
            mlflow.log_metrics(metrics, step=epoch)
            say(f"epoch {epoch:>3}/{args.epochs}  train_loss={train_loss:.4f}  "
                f"train_accuracy={train_acc:.4f}  val_accuracy={val_acc:.4f}")
            if stop.signal is None and args.epoch_delay:
                stop.sleep(args.epoch_delay)
            if stop.signal is not None and epoch < args.epochs:
                say(f"stopped after epoch {epoch} ({stop.signal}); checkpoint in {ckpt_path}")
                # This attempt ends here; a requeued job resumes the same run (RUNNING again).
                mlflow.end_run(status="KILLED")
                return STOPPED

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
            # Saved as the serving payload (serving_input_example.json): the lab's
            # "Try it" panel starts from it.
            input_example=X_val[:3],
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
