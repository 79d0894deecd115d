"""Redaction of a backend config before it is stored with a run or shown: values under
secret-looking keys and passwords inside URLs become ``***``."""
from __future__ import annotations

import copy
import re
from typing import Any

_SECRET_FRAGMENTS = ("password", "passwd", "passphrase", "secret", "apikey", "api_key",
                     "privatekey", "private_key")
_NOT_SECRET_SUFFIXES = {"url", "uri", "file", "path", "dir", "endpoint"}
_URL_CREDENTIALS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]+:)[^@\s/]+@")


def is_secret_key(name: str) -> bool:
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", name)]
    if words and words[-1] in _NOT_SECRET_SUFFIXES:  # TokenUrl, IdentityFile: where, not what
        return False
    lowered = name.lower()
    return any(f in lowered for f in _SECRET_FRAGMENTS) or "token" in words or "tokens" in words


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: ("***" if v is not None and is_secret_key(str(k)) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _URL_CREDENTIALS.sub(r"\1***@", value)  # https://user:pw@host
    return copy.deepcopy(value)
