"""The tests' name for the fake microphone, which lives in the shared harness (benchmarks/tools.py)."""

from benchmarks.tools import CHROMIUM, FAKE_RATE, chromium_args, write_wav_48k

__all__ = ["CHROMIUM", "FAKE_RATE", "chromium_args", "write_wav_48k"]
