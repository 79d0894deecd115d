"""An ``s3://bucket/prefix`` dataset, from AWS or any S3-compatible endpoint (boto3).

Every object under the prefix is mirrored into a cache folder (one per URI), keyed by the
part of its key after the prefix; an object whose ETag and size match the cached copy is
not downloaded again, and cached files no longer in the bucket are removed. Credentials
and the endpoint come from boto3's own chain (environment, ~/.aws, instance roles;
``AWS_ENDPOINT_URL`` for S3-compatible stores): nothing of them is stored by us.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath
from typing import Any

from ...core.errors import Problem, UserInputError


def _fail(uri: str, why: str) -> UserInputError:
    return UserInputError(Problem(f"{uri}: {why}", key="source"))


def split(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` → ("bucket", "a/b")."""
    rest = uri.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket or not uri.startswith("s3://"):
        raise _fail(uri, "an S3 URI is s3://bucket/prefix")
    return bucket, prefix


def fetch(uri: str, cache_dir: Path, client: Any = None) -> Path:
    """The dataset's local copy (a folder mirroring the prefix)."""
    import boto3
    import botocore.exceptions

    bucket, prefix = split(uri)
    s3 = client or boto3.client("s3")
    folder = cache_dir / hashlib.sha256(uri.encode()).hexdigest()[:32]
    tree, meta_file = folder / "tree", folder / "meta.json"
    tree.mkdir(parents=True, exist_ok=True)
    known: dict[str, list[Any]] = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    seen: dict[str, list[Any]] = {}
    base = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key: str = obj["Key"]
                rel = key[len(base):] if key.startswith(base) else PurePosixPath(key).name
                path = PurePosixPath(rel)
                if not rel or key.endswith("/"):
                    continue  # a "folder" marker
                if path.is_absolute() or ".." in path.parts:
                    raise _fail(uri, f"object {key!r} would land outside its folder")
                stamp = [obj["ETag"], obj["Size"]]
                target = tree / rel
                if known.get(rel) != stamp or not target.is_file():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    part = target.with_name(target.name + ".part")
                    s3.download_file(bucket, key, str(part))
                    part.replace(target)
                seen[rel] = stamp
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        raise _fail(uri, f"{error.get('Code', 'error')}: {error.get('Message', exc)}") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise _fail(uri, str(exc)) from None
    if not seen:
        raise _fail(uri, "no objects under this prefix")
    for rel in set(known) - set(seen):  # gone from the bucket: gone from the copy
        (tree / rel).unlink(missing_ok=True)
    meta_file.write_text(json.dumps(seen))
    return tree
