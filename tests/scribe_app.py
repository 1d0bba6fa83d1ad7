"""The tests' name for the app launcher, which lives in the shared harness (benchmarks/tools.py)."""

from benchmarks.tools import MODEL_VARIABLES, ROOT, ScribeApp, free_port, get_json

__all__ = ["MODEL_VARIABLES", "ROOT", "ScribeApp", "free_port", "get_json"]
