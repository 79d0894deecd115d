"""tinyqueue: an example jupyterlab-hpcml backend — a batch queue of local processes.

Jobs wait in a queue directory (QUEUED) until one of ``MaxParallel`` slots is free, then
run as a process group in their own run directory (RUNNING), and end FINISHED, FAILED
(exit code, 128+n when killed by signal n), CANCELLED or TIMEOUT. A small dispatcher
process starts them; everything it and the backend know is in files, so a restarted lab,
the CLI or a kernel follows the same jobs. See docs/backends.md of jupyterlab-hpcml.
"""
