"""Where a dataset's files come from, fetched to this machine when they are not local:
one module per kind of source (``https``; ``s3`` and ``dvc`` to come)."""
