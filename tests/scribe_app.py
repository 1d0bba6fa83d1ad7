"""A real `streamlit run app.py` for the API, CLI, webhook and browser tests and the live
benchmark: free port on 127.0.0.1, its own data folder, the stub backend unless told otherwise,
stopped by pid."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
MODEL_VARIABLES = ("SCRIBE_WHISPER_MODEL", "SCRIBE_FINAL_MODEL", "SCRIBE_PARTIAL_MODEL")
"""Passed on from the caller by default: under pytest, the tests' models (conftest)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ScribeApp:
    """The app with none of the caller's SCRIBE_/GEMINI_ variables but those named in `inherit`
    (the models): the stub backend (no speech check) unless `stub=False`, which leaves every
    other setting at its default; `extra_env` on top."""

    def __init__(self, data_dir: Path, log_path: Path, *, stub: bool = True,
                 inherit: tuple[str, ...] = MODEL_VARIABLES, port: int | None = None, **extra_env: str) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = port or free_port()
        env = {k: v for k, v in os.environ.items()
               if k in inherit or not k.startswith(("SCRIBE_", "GEMINI_"))}
        env.update({"SCRIBE_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "SCRIBE_LOG_LEVEL": "INFO"})
        if stub:
            env.update({"SCRIBE_BACKEND": "stub", "SCRIBE_SKIP_SILENCE": "false"})
        env.update(extra_env)
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(self.port)],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready(90)
        except BaseException:
            self.stop()  # never leave a server behind when a test cannot use it
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "scribe.duckdb"

    def _wait_ready(self, timeout: float) -> None:
        """Until /api/health answers: the lifespan (Runtime built) has run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code in (401, 403, 503):  # served: not to us, or not started
                    return
                time.sleep(0.3)
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"app not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: re.Pattern, timeout: float, count: int = 1) -> list[re.Match]:
        """The first `count` log lines matching `pattern`, waiting up to `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = list(pattern.finditer(self.log()))
            if len(found) >= count:
                return found[:count]
            time.sleep(0.5)
        raise AssertionError(f"no log line matching {pattern.pattern!r}:\n{self.log()[-3000:]}")

    def db(self) -> duckdb.DuckDBPyConnection:
        """The app's database, read-only, once the app has stopped (one process per file)."""
        assert self.proc.poll() is not None, "read the DB only after the app stopped"
        return duckdb.connect(str(self.db_path), read_only=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def get_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
