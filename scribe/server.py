"""The app process: the Runtime built once at server start, the API beside the UI, the webhook.

`streamlit run app.py` serves app.py's `st.App` with uvicorn; its lifespan is
`AppServer.lifespan`: before the first request it builds the Runtime for the environment's
settings (opening the database recovers unfinished chunks and marks recordings a dead process
left behind), starts the webhook sender, and at shutdown stops them. The pages get the very
same Runtime: app.py hands this class the pages' own cached builder, so there is one DuckDB
connection and one queue per process whoever asks first.

Streamlit-free: app.py passes in the builder and the few facts that come from Streamlit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Mapping

from scribe.api import ApiContext, ApiError, create_api
from scribe.config import Settings
from scribe.errors import ScribeError
from scribe.guard import MediaGate, Site, SiteGuard
from scribe.memory import tune_memory
from scribe.runtime import Runtime
from scribe.webhook import Webhook

log = logging.getLogger(__name__)

RuntimeBuilder = Callable[[str | None, str | None], Runtime]
"""(backend, model) -> the shared Runtime for that choice (None, None: the environment's)."""

_current: "AppServer | None" = None


def adopt(runtime: Runtime) -> Runtime:
    """Hand a newly built Runtime to the running server (its webhook listens to it)."""
    if _current is not None:
        _current.adopt(runtime)
    return runtime


@dataclass(frozen=True)
class ServerHooks:
    """What start-up takes from the UI side (pages/_shared.py)."""

    settings: Callable[[], Settings]
    """The environment's settings; raises SettingsError on a bad value."""
    build_runtime: RuntimeBuilder
    public_url: Callable[[], str]
    """This server's own base URL (links in webhook events when SCRIBE_PUBLIC_URL is unset)."""
    addresses: Callable[[], list[str]] = list
    """The names the server binds and is reached at (Streamlit's server.address and
    browser.serverAddress): Hosts it answers besides loopback, IP addresses and SCRIBE_PUBLIC_URL."""
    accept_site: Callable[[Site], None] = lambda _site: None
    """Tell Streamlit's own WebSocket check the origins SiteGuard accepts."""
    live_registry: Callable[[], Any] | None = None
    """The process's `capture.LiveRegistry`, shared with the browser recorder (the realtime socket's)."""
    sign_in_configured: Callable[[], bool] = lambda: False
    """`[auth]` is in .streamlit/secrets.toml: team mode."""
    listen_address: Callable[[], str | None] = lambda: "127.0.0.1"
    """The address the server listens on (None or empty: every address)."""
    signed_in_email: Callable[[str], str | None] = lambda _cookie: None
    """The email a request's `Cookie` header proves signed in (Streamlit's signed sign-in cookie), or None."""


def startup_refusal(address: str | None, sign_in: bool, allow_anonymous: bool) -> str | None:
    """The one line that stops a server which would show everyone's meetings to its network:
    listening beyond this machine with no sign-in configured and no explicit opt-out."""
    from scribe.guard import is_loopback

    if sign_in or allow_anonymous or is_loopback(address):
        return None
    where = address or "every address"
    return (f"Scribe refuses to listen on {where} without sign-in: add an [auth] section to "
            ".streamlit/secrets.toml (see .streamlit/secrets.toml.example and README, Serving a team), "
            "listen on 127.0.0.1, or set SCRIBE_ALLOW_ANONYMOUS=true to open it to everyone on the network")


class AppServer:
    """One per app process: owns start-up and shutdown around the Streamlit server.

    `load_hooks` is called at start, not at import: the UI side it imports must load inside the
    running Streamlit server (custom components register themselves with it).
    """

    def __init__(self, load_hooks: Callable[[], ServerHooks]) -> None:
        self._load_hooks = load_hooks
        self._hooks: ServerHooks | None = None
        self._sign_in: bool | None = None
        self.settings: Settings | None = None
        self.runtime: Runtime | None = None
        self.webhook: Webhook | None = None
        self._problem = "Scribe is starting"
        self._adopted: list[Runtime] = []
        self._lock = threading.Lock()
        self._site = Site()

    # -- what app.py hands to st.App --------------------------------------------
    def middleware(self) -> list[Any]:
        """The Host/Origin check in front of every request, UI WebSocket and API alike; then, in
        team mode, the sign-in check in front of Streamlit's media URLs."""
        from starlette.middleware import Middleware

        return [Middleware(SiteGuard, site=self.site), Middleware(MediaGate, problem=self.media_problem)]

    def site(self) -> Site:
        """Who this server answers (loopback and IP addresses only until start-up read the settings)."""
        return self._site

    def routes(self) -> list[Any]:
        from starlette.routing import Mount

        context = ApiContext(runtime=self.current_runtime, runtime_for=self.runtime_for,
                             token=self.token, live_sessions=self.live_sessions, team_mode=self.team_mode)
        from scribe.openai_api import create_openai_api
        from scribe.realtime import RealtimeEndpoint

        realtime = RealtimeEndpoint(context, self.live_registry)
        return [Mount("/api", app=create_api(context)),
                Mount("/v1", app=create_openai_api(context, realtime=realtime.serve))]

    @asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        await asyncio.to_thread(self.start)
        try:
            yield
        finally:
            await asyncio.to_thread(self.stop)

    def media_problem(self, headers: Mapping[str, str]) -> str | None:
        """Why a request for a media URL is refused, or None. Team mode: the browser's sign-in
        cookie must be valid (Streamlit's signature, not signed out) and name a person the entry
        rules admit. Local mode: nothing to check; before start-up has read the settings: refused."""
        if self._sign_in is None or self._hooks is None or self.settings is None:
            return self._problem  # not started (no page has made a media URL yet): fail closed
        if not self._sign_in:
            return None
        email = self._hooks.signed_in_email(headers.get("cookie", ""))
        if email is None:
            return "sign in to Scribe first: media links open only in a signed-in browser"
        return self.settings.entry_rules.refusal(email)

    # -- start-up and shutdown ----------------------------------------------------
    def start(self) -> None:
        """Build the Runtime and start the webhook; a failure is kept and answered as 503."""
        global _current
        _current = self
        tune_memory()  # before the pipeline's threads start
        try:
            self._hooks = hooks = self._load_hooks()
            self.settings = settings = hooks.settings()
            self._sign_in = hooks.sign_in_configured()  # read once: Streamlit reads [auth] at start too
            refusal = startup_refusal(hooks.listen_address(), self._sign_in, settings.allow_anonymous)
            if refusal:  # before the first request is served; nothing is open yet
                print(refusal, file=sys.stderr, flush=True)
                os._exit(2)  # a raise here would bury the line under uvicorn's traceback
            self._site = Site.from_addresses(settings.public_url, hooks.addresses())
            hooks.accept_site(self._site)
            self.runtime = hooks.build_runtime(None, None)
        except (ScribeError, ImportError) as exc:  # what a page would show as "cannot start"
            self._problem = f"Scribe cannot start: {exc}"
            log.error("%s", self._problem)
            return
        if settings.webhook_url:
            self.webhook = Webhook(self.runtime.storage, settings.webhook_url,
                                   links_base=settings.public_url or hooks.public_url(),
                                   retry_seconds=settings.webhook_retry_seconds,
                                   max_attempts=settings.webhook_max_attempts)
            with self._lock:
                for runtime in [self.runtime, *self._adopted]:
                    self.webhook.watch(runtime)
            self.webhook.start()
        log.info("Scribe ready: %s backend, database %s, API at /api (%s)", self.runtime.transcriber.name,
                 self.runtime.storage.path, "token required" if settings.api_token else "this machine only")

    def stop(self) -> None:
        """Stop the webhook, then every Runtime (workers finish their chunk; DuckDB closes)."""
        global _current
        if self.webhook is not None:
            self.webhook.stop()
        with self._lock:
            runtimes = list({id(r): r for r in [self.runtime, *self._adopted] if r is not None}.values())
        for runtime in runtimes:
            try:
                runtime.close()
            except Exception:  # shutting down: report and carry on with the others
                log.exception("closing a runtime failed")
        _current = None

    def adopt(self, runtime: Runtime) -> None:
        with self._lock:
            if all(r is not runtime for r in self._adopted):
                self._adopted.append(runtime)
                log.info("runtime %d in this process: %s backend (%s) on %s", len(self._adopted),
                         runtime.transcriber.name, runtime.transcriber.model, runtime.storage.path)
        if self.webhook is not None:
            self.webhook.watch(runtime)

    # -- what the API asks ----------------------------------------------------------
    def current_runtime(self) -> Runtime:
        if self.runtime is None:
            raise ApiError(503, self._problem)
        return self.runtime

    def runtime_for(self, backend: str | None, model: str | None) -> Runtime:
        """The Runtime for a caller's choice: a known backend and a model by registry name only."""
        from scribe import backends
        from scribe.models import choosable

        runtime = self.current_runtime()
        if not backend and not model:
            return runtime
        if backend and backend not in backends.names():
            raise ApiError(400, f"unknown backend {backend[:40]!r}: use one of {', '.join(backends.names())}")
        settings = runtime.settings
        name = backend or settings.backend
        if model:
            model = choosable(name, model, (settings.whisper_model, settings.final_model,
                                            settings.partial_model, settings.gemini_model))
        assert self._hooks is not None  # set by start(), before any request
        return self._hooks.build_runtime(backend, model)

    def live_sessions(self) -> int:
        """Sessions recording now: recordings a dead process left were marked at start-up."""
        return self.current_runtime().storage.count_sessions(statuses=["recording"])

    def live_registry(self) -> Any:
        """The live captures of this process (browser recordings and realtime sockets)."""
        self.current_runtime()
        if self._hooks is None or self._hooks.live_registry is None:
            raise ApiError(503, "live audio is not available in this process")
        return self._hooks.live_registry()

    def team_mode(self) -> bool:
        """Sign-in configured: the API serves no caller without a token."""
        if self._sign_in is None:  # not started: fail closed
            raise ApiError(503, self._problem)
        return self._sign_in

    def token(self) -> str | None:
        if self.settings is None:  # fail closed: unreadable settings never open the API
            raise ApiError(503, self._problem)
        return self.settings.api_token
