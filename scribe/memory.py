"""How the process asks glibc's allocator and oneDNN to keep their memory.

glibc gives threads that allocate at the same time separate arenas, up to eight
per core, and memory freed in an arena stays with that arena. Scribe runs many
threads that each allocate audio blocks of a few hundred kilobytes (media and
feeder threads, writers, workers), so with the default the process kept about
100 MB more at the same load (`bench --sessions 100 --minutes 2 --fast`,
BENCHMARKS.md). Two arenas cost no throughput there.

Whisper's buffers (megabytes each, a different size for every window length)
are freed into the heap and kept there: glibc raises its mmap threshold each
time such a buffer is freed, so later ones come from the heap, and a long run's
RSS grows with the free space left between them. A fixed threshold returns
every one to the system at once but costs page faults on each (about 50 % more
CPU per chunk, BENCHMARKS.md "Memory over a long run"); `malloc_trim` every
TRIM_SECONDS returns the free pages at that cost once per period instead.

oneDNN (inside CTranslate2) compiles and keeps a kernel, with its own copy of the
weights in its layout, for each input shape it meets, up to 1,024 of them; the
encoder meets one shape per window length and batch size. KERNEL_CACHE_SHAPES bounds
that; a shape compiled again costs about 8 ms against a 200 ms encoder pass.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
import time

M_ARENA_MAX = -8
"""mallopt's parameter number for the arena limit (glibc malloc.h)."""
ARENAS = 2
TRIM_SECONDS = 30.0
KERNEL_CACHE_SHAPES = 16
KERNEL_CACHE_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
"""oneDNN reads it when it first builds a kernel, so setting it at import is early enough."""

_trimmer: threading.Thread | None = None
_trimmer_lock = threading.Lock()


def _libc():
    name = ctypes.util.find_library("c")
    return None if name is None else ctypes.CDLL(name)


def limit_kernel_cache(shapes: int = KERNEL_CACHE_SHAPES) -> None:
    """Bound oneDNN's kernel cache, unless the environment already sets it (the user's choice
    wins). Call it before any model runs (`scribe/__init__` does)."""
    os.environ.setdefault(KERNEL_CACHE_VARIABLE, str(shapes))


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas, unless MALLOC_ARENA_MAX already set them (the user's
    choice wins). Call it before the pipeline's threads start. False where the C library
    is not glibc (nothing changes there)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    return bool(mallopt is not None and mallopt(M_ARENA_MAX, arenas) == 1)


def return_freed_memory() -> bool:
    """Give the heap's free pages back to the system (glibc's malloc_trim); False where the C
    library has none."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True


def keep_returning_freed_memory(every_s: float = TRIM_SECONDS) -> bool:
    """Start (once per process) a daemon thread that calls `return_freed_memory` every
    `every_s`; False where the C library cannot trim."""
    global _trimmer
    if getattr(_libc(), "malloc_trim", None) is None:
        return False
    with _trimmer_lock:
        if _trimmer is None:
            _trimmer = threading.Thread(target=_trim_forever, args=(every_s,), name="scribe-malloc-trim", daemon=True)
            _trimmer.start()
    return True


def _trim_forever(every_s: float) -> None:
    while True:  # a daemon thread: it ends with the process
        time.sleep(every_s)
        return_freed_memory()


class _MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (malloc.h, glibc 2.33+): every field a size_t."""
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def usage() -> dict[str, float | int | None]:
    """Where the process's memory is, for `/api/health`: the resident set; in glibc's
    allocator the bytes in use, the free space in its heaps (resident until `malloc_trim`
    returns its pages) and the large blocks it mapped on their own; the blocks in use of
    Python's own allocator. A long run's RSS growth needs them to tell live data from kept free
    space from memory outside malloc (Python's arenas, libraries' own pools). The allocator's
    figures are None where the C library is not glibc."""
    mib = 2**20
    found: dict[str, float | int | None] = {"rss_mb": _rss_mb(), "malloc_in_use_mb": None,
                                            "malloc_free_mb": None, "malloc_mapped_mb": None,
                                            "python_blocks": sys.getallocatedblocks()}
    mallinfo2 = getattr(_libc(), "mallinfo2", None)
    if mallinfo2 is not None:
        mallinfo2.restype = _MallInfo2
        info = mallinfo2()
        found.update(malloc_in_use_mb=round(info.uordblks / mib, 1), malloc_free_mb=round(info.fordblks / mib, 1),
                     malloc_mapped_mb=round(info.hblkhd / mib, 1))
    return found


def _rss_mb() -> float:
    import psutil  # only when asked: the CLI's start does not pay for it

    return round(psutil.Process().memory_info().rss / 2**20, 1)


def tune_memory() -> None:
    """What a long-running process (the app server, a worker, the CLI) does before its
    threads start: arenas capped, freed memory returned every TRIM_SECONDS."""
    limit_malloc_arenas()
    keep_returning_freed_memory()
