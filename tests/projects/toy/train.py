"""Tiny training stand-in: logs a param, per-step metrics and an artifact to MLflow."""
import argparse
import os
import time

import mlflow

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int)
p.add_argument("--lr", type=float)
p.add_argument("--label")
p.add_argument("--delay", type=float, default=0.0)
a = p.parse_args()
with mlflow.start_run():
    for step in range(a.steps):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        print(f"step {step} loss {1.0 / (step + 1):.3f}", flush=True)
        time.sleep(a.delay)
    os.makedirs("outputs", exist_ok=True)
    with open("outputs/result.txt", "w") as f:
        f.write(f"label={a.label}\n")
    mlflow.log_artifact("outputs/result.txt")
print("SECRET_TOKEN_SET" if os.environ.get("MLFLOW_TRACKING_TOKEN") else "no token")
