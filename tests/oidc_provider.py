"""A real OpenID Connect provider for the sign-in tests: the PyPI package `oidc-provider-mock`
run as its own process on 127.0.0.1 (a free port), with predefined people, stopped by its pid.

`secrets_toml` writes the `[auth]` section Streamlit's st.login reads, pointing at it."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from scribe_app import free_port


class OidcProvider:
    def __init__(self, people: dict[str, dict[str, str]], log_path: Path) -> None:
        """`people`: sub -> claims (email, name); each is a button on the provider's form."""
        self.port = free_port()
        args = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(self.port)]
        for sub, claims in people.items():
            args += ["--user-claims", json.dumps({"sub": sub, **claims})]
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready(30)
        except BaseException:
            self.stop()
            raise

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("oidc-provider-mock exited early")
            try:
                with urllib.request.urlopen(f"{self.issuer}/.well-known/openid-configuration", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("oidc-provider-mock did not answer")

    def secrets_toml(self, app_url: str) -> str:
        return "\n".join([
            "[auth]",
            f'redirect_uri = "{app_url}/oauth2callback"',
            f'cookie_secret = "{secrets.token_urlsafe(32)}"',
            'client_id = "scribe-tests"',
            f'client_secret = "{secrets.token_urlsafe(16)}"',
            f'server_metadata_url = "{self.issuer}/.well-known/openid-configuration"',
            'client_kwargs = { scope = "openid email profile" }',
            ""])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()
