"""Making a rename survive a crash: after writing a file under a temporary name, fsyncing it
and renaming it into place, the folder itself is fsynced so the new name is on disk too."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Flush `folder`'s entries (the names renamed into it) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
