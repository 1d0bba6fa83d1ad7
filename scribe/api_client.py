"""A client for a running Scribe app's API (`/api`), used by the CLI while the app holds the database.

Every failure becomes a ScribeError with one line a person can act on: the API's own
`{"error": ...}` message (the same text the library raises locally), or what stands between
the CLI and the app (nothing answers, wrong token, another database).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from scribe.errors import ScribeError

LOCK_ERROR = re.compile(r"Could not set lock on file \"?(?P<file>[^\"]+?)\"?:.*?Conflicting lock is held in "
                        r"(?P<exe>.+?) \(PID (?P<pid>\d+)\)", re.S)


class ApiUnreachableError(ScribeError):
    """No Scribe app answers at the URL, or it refuses this client."""


class ApiRequestError(ScribeError):
    """The app answered with an error; the message is the API's `error` text."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def lock_holder(message: str) -> str | None:
    """`PID N (command line)` of the process holding a DuckDB file, from DuckDB's lock error."""
    match = LOCK_ERROR.search(message)
    if match is None:
        return None
    pid = int(match["pid"])
    return f"PID {pid} ({_command_line(pid) or match['exe']})"


def _command_line(pid: int, width: int = 80) -> str | None:
    try:
        import psutil

        words = psutil.Process(pid).cmdline()
    except Exception:  # gone, or not ours to inspect: the executable from the message will do
        return None
    text = " ".join(" ".join(Path(words[0]).name if i == 0 else w for i, w in enumerate(words)).split())
    return text if len(text) <= width else text[:width - 3] + "..."


class ApiClient:
    """Thin calls over httpx2; paths are relative to `<base_url>/api`."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 60.0) -> None:
        import httpx2

        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx2.Client(base_url=f"{self.base_url}/api", headers=headers, timeout=timeout,
                                   follow_redirects=False)
        self._errors = (httpx2.HTTPError,)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any):
        """The response of a 2xx answer; ApiRequestError with the API's message otherwise."""
        try:
            response = self._http.request(method, path, **kwargs)
        except self._errors as exc:
            raise ApiUnreachableError(f"no answer from {self.base_url} ({_short(exc)})") from None
        if response.status_code >= 400:
            raise ApiRequestError(_error_text(response), response.status_code)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    # -- endpoints -----------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self.json("GET", "/health")

    def sessions(self, *, limit: int, offset: int = 0) -> dict[str, Any]:
        return self.json("GET", "/sessions", params={"limit": limit, "offset": offset})

    def session(self, session_id: str) -> dict[str, Any]:
        return self.json("GET", f"/sessions/{_quote(session_id)}")

    def transcript(self, session_id: str, fmt: str, transcript: str | None = None) -> str:
        params = {"format": fmt, **({"transcript": transcript} if transcript else {})}
        return self.request("GET", f"/sessions/{_quote(session_id)}/transcript", params=params).content.decode("utf-8")

    def search(self, query: str, *, limit: int, offset: int) -> dict[str, Any]:
        return self.json("GET", "/search", params={"q": query, "limit": limit, "offset": offset})

    def upload(self, path: Path, fields: dict[str, Any]) -> dict[str, Any]:
        data = {k: str(v) for k, v in fields.items() if v is not None}
        with open(path, "rb") as handle:
            return self.json("POST", "/transcriptions", files={"file": (path.name, handle)}, data=data)

    def summarize(self, session_id: str, *, backend: str, transcript: str | None) -> dict[str, Any]:
        return self.json("POST", f"/sessions/{_quote(session_id)}/summary",
                         json={"backend": backend, "transcript": transcript})

    def delete(self, session_id: str, *, force: bool) -> dict[str, Any]:
        return self.json("DELETE", f"/sessions/{_quote(session_id)}", params={"force": str(force).lower()})

    def retry(self, session_id: str, *, backend: str | None = None, model: str | None = None) -> dict[str, Any]:
        body = {k: v for k, v in (("backend", backend), ("model", model)) if v}
        return self.json("POST", f"/sessions/{_quote(session_id)}/retry", json=body or None)

    def speakers(self, session_id: str) -> dict[str, Any]:
        return self.json("GET", f"/sessions/{_quote(session_id)}/speakers")

    def rename_speaker(self, session_id: str, speaker_id: int, name: str) -> dict[str, Any]:
        return self.json("PATCH", f"/sessions/{_quote(session_id)}/speakers/{speaker_id}", json={"name": name})

    def merge_speakers(self, session_id: str, keep: int, drop: int) -> dict[str, Any]:
        return self.json("POST", f"/sessions/{_quote(session_id)}/speakers/merge",
                         json={"keep": keep, "drop": drop})

    def split_speaker(self, session_id: str, speaker_id: int) -> dict[str, Any]:
        return self.json("POST", f"/sessions/{_quote(session_id)}/speakers/{speaker_id}/split")

    def relabel_speakers(self, session_id: str, count: int | None) -> dict[str, Any]:
        """Cluster the whole recording again with `count` voices (None: estimate)."""
        return self.json("POST", f"/sessions/{_quote(session_id)}/speakers/relabel", json={"speakers": count})

    def save_lab_run(self, run: dict[str, Any]) -> None:
        """`Storage.save_lab_run` through the app (lets the lab's eval store its runs)."""
        self.json("POST", "/lab/runs", json=run)


def _quote(part: str) -> str:
    from urllib.parse import quote

    return quote(part, safe="")


def _error_text(response) -> str:
    try:
        message = response.json().get("error")
    except Exception:  # not our JSON: some other server answered
        message = None
    return message or f"HTTP {response.status_code} from {response.request.url.copy_with(query=None)}"


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:120]
