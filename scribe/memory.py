"""How the process asks glibc's allocator to keep its memory.

glibc gives threads that allocate at the same time separate arenas, up to eight
per core, and memory freed in an arena stays with that arena. Scribe runs many
threads that each allocate audio blocks of a few hundred kilobytes (media and
feeder threads, writers, workers), so with the default the process kept about
100 MB more at the same load (`bench --sessions 100 --minutes 2 --fast`,
BENCHMARKS.md). Two arenas cost no throughput there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8
"""mallopt's parameter number for the arena limit (glibc malloc.h)."""
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas, unless MALLOC_ARENA_MAX already set them (the user's
    choice wins). Call it before the pipeline's threads start. False where the C library
    is not glibc (nothing changes there)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    return bool(mallopt is not None and mallopt(M_ARENA_MAX, arenas) == 1)
