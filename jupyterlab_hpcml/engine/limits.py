"""Size limits on what a request may make the server read, keep or hand to MLflow.

One place for every limit (documented in docs/security.md, "Limits", and as maxLength /
413 answers in docs/openapi.yaml). The request models (``engine/requests.py``) and the
handlers (``handlers/base.py``) enforce them; MLflow's own limits
(``mlflow/utils/validation.py``, its SQL store's column sizes) set the names' lengths, so
a request MLflow would refuse half-way through a submission is refused before anything
is created.
"""
from __future__ import annotations

# --- HTTP requests
MAX_BODY_BYTES = 1 << 20
MAX_INVOCATION_BYTES = 16 << 20  # a scoring request passed on to a deployment
MAX_INPUT_EXAMPLE_BYTES = 1 << 20  # a model's saved input example shown in a version
"""A JSON request body. The largest legitimate one (a submission with many parameters
or a config section) is a few KiB."""
MAX_JSON_DEPTH = 32
"""Nesting of arrays/objects in a body: deeper JSON overflows recursive code (pydantic,
deepcopy, jsonschema) long before it means anything."""
MAX_QUERY_INT = (1 << 63) - 1
"""Any integer query argument: SQLite integers are 64-bit."""

# --- names and values (MLflow's limits)
MAX_RUN_NAME_LENGTH = 250
"""MLflow's ``runs.name`` column is VARCHAR(250)."""
MAX_EXPERIMENT_NAME_LENGTH = 500
"""MLflow's MAX_EXPERIMENT_NAME_LENGTH."""
MAX_PARAM_NAME_LENGTH = 250
"""MLflow's MAX_ENTITY_KEY_LENGTH (param, metric and tag keys)."""
MAX_PARAM_VALUE_LENGTH = 6000
"""MLflow's MAX_PARAM_VAL_LENGTH."""
MAX_PARAMETERS = 200
"""Parameters of one submission (an MLproject entry point rarely declares 20)."""
MAX_ENTRY_POINT_LENGTH = 250
MAX_OVERRIDES = 200
"""Items in a submission's ``overrides`` list (``Key.Path=value`` strings)."""
MAX_OVERRIDE_LENGTH = 10_000
"""One override string (an Environment variable value can be long, not a novel)."""

# --- paths and files
MAX_PATH_LENGTH = 4096
"""A path in a request (Linux PATH_MAX)."""
MAX_PATH_COMPONENT_BYTES = 255
"""One component of a path, in UTF-8 bytes (Linux NAME_MAX)."""
MAX_CONFIG_BYTES = 1 << 20
"""A backend config file: larger files are data, not configs. Discovery skips them,
loading one by name refuses it without reading it."""
