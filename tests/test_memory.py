"""The process's allocator settings and what the load test holds while it runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip()


def test_malloc_arenas_are_limited_unless_the_user_chose():
    code = "from scribe.memory import limit_malloc_arenas; print(limit_malloc_arenas())"
    assert _run(code) == "True"  # glibc here: mallopt accepted the limit
    assert _run(code, MALLOC_ARENA_MAX="4") == "False"  # the user's setting wins


def test_the_cli_and_the_app_server_limit_the_arenas_before_their_threads_start():
    main = (ROOT / "scribe" / "__main__.py").read_text()
    assert main.index("limit_malloc_arenas()") < main.index("main()")
    code = ("import scribe.memory as m, scribe.server as s; calls = []; "
            "m.limit_malloc_arenas = s.limit_malloc_arenas = lambda: calls.append(1) or True; "
            "srv = s.AppServer.__new__(s.AppServer); "
            "srv._load_hooks = lambda: (_ for _ in ()).throw(ImportError('stop here')); "
            "srv._problem = None; srv.start(); print(len(calls))")
    assert _run(code) == "1"


def test_the_load_test_does_not_carry_pandas_while_it_runs():
    assert _run("import sys, scribe.bench; print('pandas' in sys.modules)") == "False"
