"""The harness that drives the real app from outside, shared by the tests, the benchmarks and the
README's screenshot tool: a real `streamlit run app.py` on a free 127.0.0.1 port with its own data
folder, stopped by pid (`ScribeApp`), and headless Chromium with a WAV as its microphone
(`chromium_args`, `write_wav_48k`). Nothing here imports the tests."""

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

import av
import duckdb
import numpy as np

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
            # Imported here: benchmarks that import an older checkout's scribe (--root) use
            # this module's other parts, and that checkout may have no registry.
            from scribe import backends

            env.update({"SCRIBE_BACKEND": backends.STAND_IN, "SCRIBE_SKIP_SILENCE": "false"})
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


# -- a WAV as Chromium's microphone ----------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
FAKE_RATE = 48_000


def write_wav_48k(pcm16k: np.ndarray, path: Path) -> None:
    """16 kHz float audio upsampled with PyAV's resampler, written as 48 kHz 16-bit PCM WAV."""
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=FAKE_RATE, layout="mono")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=FAKE_RATE)
        frame = av.AudioFrame.from_ndarray(pcm16k.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = 16_000
        for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(chunk):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def chromium_args(wav: Path, *extra: str) -> list[str]:
    """Headless, nothing fetched from the network, and `wav` played once as the microphone
    (permission granted without a prompt); `extra` flags after those."""
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop", *extra]
