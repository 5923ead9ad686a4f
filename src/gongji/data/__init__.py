"""Bundled reference data and parameters."""
