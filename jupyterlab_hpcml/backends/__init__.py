"""Compute backends. ``registry.py`` maps a backend config to its backend class."""
