"""What a local job inherits from the Jupyter server's environment (docs/security.md,
"What a job sees").

A local job runs as the lab's user, like a command typed in the lab's terminal, so it
keeps the user's ordinary environment (PATH, HOME, locale, conda/venv, CUDA, proxies,
the user's own variables). What it does not get are the server's credentials and
plumbing: the lab's own token, JupyterHub's API token, the FirecREST/UNICORE credentials
the server uses, cloud keys, and anything whose name says it is a secret. The engine
then adds what the job needs (``JobSpec.env``: the MLflow run to continue, and the
tracking credentials in direct mode only) and the config's ``Environment.Variables``,
which may set any name, dropped ones included, on purpose.
"""
from __future__ import annotations

from collections.abc import Mapping

# Any "_"-separated word of the name (upper-cased) that marks a secret:
# GITHUB_TOKEN, HF_TOKEN, JUPYTER_TOKEN, DB_PASSWORD, CLIENT_SECRET, GOOGLE_CREDENTIALS…
SECRET_WORDS = frozenset({
    "TOKEN", "TOKENS", "SECRET", "SECRETS", "PASSWORD", "PASSWD", "PASSPHRASE",
    "CREDENTIAL", "CREDENTIALS", "APIKEY", "COOKIE", "COOKIES",
})
# A last word that marks a key: OPENAI_API_KEY, AWS_SECRET_ACCESS_KEY, SSH_PRIVATE_KEY.
SECRET_LAST_WORDS = frozenset({"KEY", "KEYS"})
# Whole families: cloud credentials, the Jupyter/JupyterHub server's own variables, the
# credentials of the HTTP-API backends (backends/credentials.py) and Mantik's.
DROPPED_PREFIXES = (
    "AWS_", "AZURE_",
    "JPY_", "JUPYTERHUB_",
    "HPCML_FIRECREST_", "HPCML_UNICORE_", "HPCML_CREDENTIAL", "FIRECREST_", "UNICORE_", "MANTIK_",
)
# The engine sets these for the job (the run to continue, where to log it); a value left
# in the server's environment must not compete. The MLflow tracking credentials come only
# through JobSpec.env, in direct mode (engine.tracking.job_tracking_env).
DROPPED_NAMES = frozenset({
    "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_CLIENT_CERT_PATH", "MLFLOW_TRACKING_AWS_SIGV4",
    "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME",
})


def is_dropped(name: str) -> bool:
    """True when a variable of the server's environment must not reach a local job."""
    upper = name.upper()
    if upper in DROPPED_NAMES or upper.startswith(DROPPED_PREFIXES):
        return True
    words = [w for w in upper.split("_") if w]
    return bool(words) and (
        any(w in SECRET_WORDS for w in words) or words[-1] in SECRET_LAST_WORDS
    )


def inherited_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of the server's environment a local job starts from."""
    return {k: v for k, v in environ.items() if not is_dropped(k)}
