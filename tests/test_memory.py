"""The process's allocator settings and what the load test holds while it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "ONEDNN_PRIMITIVE_CACHE_CAPACITY")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip()


def test_malloc_arenas_are_limited_unless_the_user_chose():
    code = "from scribe.memory import limit_malloc_arenas; print(limit_malloc_arenas())"
    assert _run(code) == "True"  # glibc here: mallopt accepted the limit
    assert _run(code, MALLOC_ARENA_MAX="4") == "False"  # the user's setting wins


def test_the_cli_and_the_app_server_tune_memory_before_their_threads_start():
    main = (ROOT / "scribe" / "__main__.py").read_text()
    assert main.index("tune_memory()") < main.index("main()")
    code = ("import scribe.memory as m, scribe.server as s; calls = []; "
            "m.tune_memory = s.tune_memory = lambda: calls.append(1); "
            "srv = s.AppServer.__new__(s.AppServer); "
            "srv._load_hooks = lambda: (_ for _ in ()).throw(ImportError('stop here')); "
            "srv._problem = None; srv.start(); print(len(calls))")
    assert _run(code) == "1"


def test_freed_heap_memory_goes_back_to_the_system():
    """Freed blocks stay in glibc's heap (RSS unchanged) until they are trimmed."""
    code = ("import psutil; from scribe.memory import return_freed_memory; p = psutil.Process(); "
            "blocks = [bytes(2048) for _ in range(60_000)]; keep = blocks[-1]; del blocks; "  # 120 MB of heap
            "held = p.memory_info().rss; trimmed = return_freed_memory(); "
            "print(trimmed, (held - p.memory_info().rss) // 2**20)")
    trimmed, returned_mb = _run(code, MALLOC_ARENA_MAX="2").split()
    assert trimmed == "True" and int(returned_mb) > 60


def test_usage_tells_live_blocks_from_the_free_space_kept():
    """Blocks in use count as in use; once freed, as free space the heap keeps until trimmed."""
    code = ("import json; from scribe.memory import usage; before = usage(); "
            "blocks = [bytes(2048) for _ in range(30_000)]; held = usage(); keep = blocks[-1]; del blocks; "
            "print(json.dumps([before, held, usage()]))")
    before, held, freed = json.loads(_run(code, MALLOC_ARENA_MAX="2"))
    assert held["malloc_in_use_mb"] - before["malloc_in_use_mb"] > 55  # 60 MB of blocks
    assert held["rss_mb"] - before["rss_mb"] > 55 and held["python_blocks"] - before["python_blocks"] >= 30_000
    assert freed["malloc_in_use_mb"] - before["malloc_in_use_mb"] < 5
    assert freed["malloc_free_mb"] > 5  # the top of the heap went back at once; the rest stays free in it


def test_the_trimming_thread_starts_once_per_process():
    code = ("import threading; from scribe.memory import keep_returning_freed_memory as k; "
            "print(k(0.01), k(0.01), sum(t.name == 'scribe-malloc-trim' for t in threading.enumerate()))")
    assert _run(code) == "True True 1"


def test_the_kernel_cache_is_bounded_unless_the_user_chose():
    code = "import os, scribe; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])"
    assert _run(code) == "16"
    assert _run(code, ONEDNN_PRIMITIVE_CACHE_CAPACITY="1024") == "1024"


def test_the_load_test_does_not_carry_pandas_while_it_runs():
    assert _run("import sys, scribe.bench; print('pandas' in sys.modules)") == "False"
