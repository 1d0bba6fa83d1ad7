"""README tells the truth: its lists are checked against the code, in both directions.

Every CLI command has its own `### \\`name\\`` section naming each of its flags, every setting's
environment variable has exactly one row in the settings table, and every route the app serves
has its `METHOD /path` written out; README names no command, variable or route that does not
exist. The lists come from the code (the argparse parser, `Settings`' variables, the routes the
server mounts), so a new command, flag, setting or route without README text fails here.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from scribe.cli import build_parser
from scribe.config import ENV_VARS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "WEBSOCKET")


def section(text: str, heading: str) -> str:
    """The text under `heading` (a whole heading line) up to the next heading of its level or above."""
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(heading + "\n") + len(heading) + 1
    stop = re.compile(rf"^#{{1,{level}}} ", re.M).search(text, start)
    return text[start:stop.start() if stop else len(text)]


# -- the CLI ---------------------------------------------------------------------------
def cli_commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def long_flags(parser: argparse.ArgumentParser) -> list[str]:
    return [flag for action in parser._actions for flag in action.option_strings
            if flag.startswith("--") and flag != "--help"]


@pytest.mark.parametrize("command", sorted(cli_commands()))
def test_every_cli_command_has_a_section_naming_each_flag(command: str) -> None:
    heading = f"### `{command}`"
    assert heading + "\n" in README, f"README has no {heading} section under Command line"
    text = section(README, heading)
    missing = [f for f in long_flags(cli_commands()[command]) if not re.search(rf"{f}(?![\w-])", text)]
    assert not missing, f"README's {heading} section does not mention {', '.join(missing)}"


def test_readme_names_only_commands_that_exist() -> None:
    named = set(re.findall(r"python -m scribe ([a-z][\w-]*)", README))
    named |= set(re.findall(r"^### `([a-z][\w-]*)`$", section(README, "## Command line"), re.M))
    assert named - set(cli_commands()) == set(), "README names commands the CLI does not have"


# -- the settings -----------------------------------------------------------------------
def settings_table_variables() -> list[str]:
    rows = [line for line in section(README, "## Settings").splitlines() if line.startswith("| `")]
    return [var for row in rows for var in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])]


def script_variables() -> set[str]:
    """Variables the shell scripts read (e.g. where start.sh serves), not Settings fields."""
    found: set[str] = set()
    for script in (ROOT / "scripts").glob("*.sh"):
        found |= set(re.findall(r"\$\{(SCRIBE_[A-Z0-9_]+)", script.read_text(encoding="utf-8")))
    return found


def test_every_setting_has_exactly_one_row_in_the_settings_table() -> None:
    listed = settings_table_variables()
    missing = sorted(set(ENV_VARS.values()) - set(listed))
    twice = sorted({v for v in listed if listed.count(v) > 1})
    assert not missing, f"README's settings table leaves out {', '.join(missing)}"
    assert not twice, f"README's settings table lists {', '.join(twice)} more than once"


def test_readme_names_only_variables_that_exist() -> None:
    named = set(re.findall(r"\b((?:SCRIBE|GEMINI)_[A-Z0-9_]*[A-Z0-9])\b", README))
    unknown = named - set(ENV_VARS.values()) - script_variables()
    assert not unknown, f"README names variables nothing reads: {', '.join(sorted(unknown))}"


# -- the routes -------------------------------------------------------------------------
def served_routes() -> set[str]:
    """`METHOD /path` for every route the app process mounts beside the UI."""
    from scribe.server import AppServer

    found: set[str] = set()
    for route in AppServer(lambda: None).routes():
        found |= routes_of(route, "")
    return found


def routes_of(route: BaseRoute, prefix: str) -> set[str]:
    if isinstance(route, Mount) and isinstance(route.app, FastAPI):
        return fastapi_routes(route.app, prefix + route.path)
    if isinstance(route, Mount):
        return {r for child in route.routes for r in routes_of(child, prefix + route.path)}
    if isinstance(route, WebSocketRoute):
        return {f"WEBSOCKET {prefix}{route.path}"}
    methods = sorted(set(getattr(route, "methods", None) or ()) - {"HEAD", "OPTIONS"})
    return {f"{m} {prefix}{route.path}" for m in methods}  # type: ignore[attr-defined]


def fastapi_routes(app: FastAPI, prefix: str) -> set[str]:
    """Its OpenAPI operations, and what it serves outside the schema (docs pages, sockets, mounts)."""
    found = {f"{method.upper()} {prefix}{path}" for path, item in app.openapi()["paths"].items()
             for method in item if method.upper() in METHODS}
    for route in app.routes:
        if isinstance(route, (Mount, WebSocketRoute, Route)) and not _is_docs_asset(route):
            found |= routes_of(route, prefix)
    return found


def _is_docs_asset(route: BaseRoute) -> bool:
    """The docs page's own files and OAuth helper, not an endpoint of ours."""
    if isinstance(route, Mount):
        return isinstance(route.app, StaticFiles)
    return getattr(route, "path", "").endswith("/oauth2-redirect")


def readme_routes() -> set[str]:
    spans = re.findall(rf"`((?:{'|'.join(METHODS)}) /[^`\s?]*)", README)
    return {_same_params(s) for s in spans}


def _same_params(route: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", route)


def test_every_route_is_in_readme() -> None:
    missing = sorted(r for r in served_routes() if _same_params(r) not in readme_routes())
    assert not missing, f"README does not document {', '.join(missing)}"


def test_readme_names_only_routes_that_exist() -> None:
    served = {_same_params(r) for r in served_routes()}
    assert readme_routes() - served == set(), "README documents routes the app does not serve"


# -- one voice ----------------------------------------------------------------------------
def test_each_feature_is_described_once() -> None:
    features = re.findall(r"^- \*\*([^*]+)\*\*", section(README, "## What you get"), re.M)
    assert features, "README's What you get lists no features"
    assert len(features) == len(set(features)), f"a feature is described twice: {features}"
    headings = re.findall(r"^#+ .*$", README, re.M)
    assert len(headings) == len(set(headings)), "README has a heading twice"


def test_no_paragraph_starts_mid_sentence() -> None:
    """A paragraph that starts in lower case is a fragment left over from an edit."""
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    for block in re.split(r"\n\s*\n", prose):
        first = block.lstrip("\n")
        if first and not first.startswith((" ", "|", "-", "!", "#", "`", "*", "[", "<")):
            assert not first[0].islower(), f"README paragraph starts mid-sentence: {first[:80]!r}"
