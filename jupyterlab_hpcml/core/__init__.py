"""The bottom layer: value types that the engine and the backends both speak.

Run states and job status, the errors, connection identity, the code snapshot's
manifest and the files of a run directory. Nothing here imports from ``engine/``,
``backends/`` or a face (``tests/test_import_graph.py`` checks it), so either side can
depend on it without depending on the other.
"""
