"""What a hostile web page or client sends, over real sockets: Streamlit's own WebSocket protocol
(`/_stcore/stream`, BackMsg out, ForwardMsg in) with any Host and Origin, raw HTTP requests with
forged headers and oversized or slow bodies, and a local sink that records outbound connections
(set as HTTP(S)_PROXY)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect


class Refused(Exception):
    """The server would not open the WebSocket (HTTP status, or a close before any message)."""


@dataclass
class StreamlitSocket:
    """A WebSocket to the app's `/_stcore/stream` as a page served from `origin` opens it, with
    `host` in the Host header (a DNS-rebinding page's name reaches the same socket)."""

    port: int
    host: str = "127.0.0.1"
    """Host header: a name (the port is added) or `name:port` as it is."""
    origin: str | None = None
    messages: list[ForwardMsg] = field(default_factory=list)

    def __post_init__(self) -> None:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            authority = self.host if ":" in self.host else f"{self.host}:{self.port}"
            self._ws = connect(f"ws://{authority}/_stcore/stream", sock=raw, origin=self.origin,
                               subprotocols=["streamlit"], open_timeout=10, close_timeout=2,
                               max_size=None)
        except InvalidStatus as exc:
            raw.close()
            raise Refused(f"HTTP {exc.response.status_code}") from None
        except (ConnectionClosed, OSError) as exc:
            raw.close()
            raise Refused(str(exc)) from None

    def send(self, message: BackMsg) -> None:
        self._ws.send(message.SerializeToString())

    def rerun(self, page: str = "", query: str = "") -> None:
        """What a browser sends to run a page: `rerun_script` with the page's URL name."""
        self.send(BackMsg(rerun_script=ClientState(page_name=page, query_string=query)))

    def clear_cache(self) -> None:
        """The toolbar's "Clear cache" (hidden by `toolbarMode`, still accepted by the server)."""
        self.send(BackMsg(clear_cache=True))

    def read_until_finished(self, timeout: float = 60) -> str:
        """Messages until a run finishes; returns everything received so far as text."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self._ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            except ConnectionClosed as exc:
                if not self.messages:
                    raise Refused(f"closed before any message: {exc}") from None
                break
            message = ForwardMsg()
            message.ParseFromString(data)
            self.messages.append(message)
            if message.WhichOneof("type") == "script_finished":
                return self.text()
        return self.text()

    def text(self) -> str:
        return "\n".join(str(m) for m in self.messages)

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> "StreamlitSocket":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def raw_request(port: int, head: bytes, body: bytes = b"", timeout: float = 30) -> tuple[int, bytes]:
    """Send `head` (+`body`) as they are and return (status, response bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head + body)
        return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """(status, head and body) of one response: the body as far as its Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _content_length(data):
        try:
            piece = sock.recv(65536)
        except OSError:
            break
        if not piece:
            break
        data += piece
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data


def _content_length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return int(value)
    return 0


class ProxySink:
    """A local listener to set as HTTP_PROXY/HTTPS_PROXY: records each connection attempt's first
    line (`CONNECT host:443 ...` or `GET http://...`) and answers 403 so nothing goes further."""

    def __init__(self) -> None:
        self.attempts: list[str] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(2)
                try:
                    first = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
                except OSError:
                    first = "(no request line)"
                self.attempts.append(first)
                try:
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()
