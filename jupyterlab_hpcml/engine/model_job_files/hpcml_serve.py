"""Serve the MLflow model in ./model with MLflow's scoring server (written by jupyterlab-hpcml).

Binds a free port itself (no race with other jobs on the node), loads the model, then
writes .hpcml/service.json, where it listens, for the lab to find, and serves until it is
stopped. Needs mlflow (and uvicorn, which MLflow's scoring server runs on) in the job's
environment.
"""
import argparse
import json
import os
import socket
from pathlib import Path

SERVICE_FILE = Path(".hpcml/service.json")


def announce(host: str, port: int) -> None:
    tmp = SERVICE_FILE.with_name(f".service.{os.getpid()}.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps({"host": host, "port": port, "pid": os.getpid()}))
    os.replace(tmp, SERVICE_FILE)  # the lab never reads a half-written file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="model")
    parser.add_argument("--bind", default="0.0.0.0", help="127.0.0.1: this machine only")
    args = parser.parse_args()

    import uvicorn
    from mlflow.pyfunc import load_model, scoring_server

    app = scoring_server.init(load_model(args.model))
    # IPPROTO_TCP named: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto
    # says TCP; with 0 every kept-alive request waited ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.bind, 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    # Reached from the cluster's login node by the node's name (a tunnel's far end).
    host = args.bind if args.bind.startswith("127.") else socket.gethostname()
    print(f"serving {args.model} on {host}:{port}", flush=True)
    announce(host, port)
    uvicorn.Server(uvicorn.Config(app, log_level="info")).run(sockets=[sock])


if __name__ == "__main__":
    main()
