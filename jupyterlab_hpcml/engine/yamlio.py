"""The YAML helpers moved to ``core/yamlio.py`` (backends use them too); the engine's
modules import them from here as before."""
from ..core.yamlio import SafeDumper, SafeLoader, compose, safe_dump, safe_load

__all__ = ["SafeDumper", "SafeLoader", "compose", "safe_dump", "safe_load"]
