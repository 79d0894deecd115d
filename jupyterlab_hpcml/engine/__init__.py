"""The backend-neutral engine: projects, configs, snapshots, runs, store, tracking.

Imports nothing from tornado or JupyterLab, so the server, the CLI and kernels share it.
"""
