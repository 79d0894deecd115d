"""Slurm over SSH: one long-lived asyncssh connection per cluster (``connection``),
content-addressed incremental code upload (``transfer``) and the backend (``slurm``)."""
