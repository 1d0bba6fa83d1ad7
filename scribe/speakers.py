"""Who spoke when: a GE2E voice encoder in numpy, windows over speech, clustering.

The encoder is resemblyzer's `pretrained.pt` (3-layer LSTM over 40 power-mel
bands, linear 256 -> 256, ReLU, L2 norm). The package is installed without its
dependencies (`pip install --no-deps resemblyzer`) and never imported, because
importing it needs torch and librosa: the file is read as data by a restricted
unpickler that only rebuilds float tensors, after its SHA-256 and every
tensor's shape have been checked.

Flow: audio -> Silero speech spans -> windows of at most 1.6 s inside each span
-> one embedding per window -> spherical k-means -> a speaker per 10 ms frame of
speech -> each transcript segment takes the speaker it overlaps most.

Everything here is pure computation on the caller's thread (numpy only); the
live labelling thread and the database live in `scribe/diarization.py`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import pickle
import struct
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from threadpoolctl import ThreadpoolController

from scribe.audio import SAMPLE_RATE
from scribe.core import PackedWindows
from scribe.errors import SpeakerModelError

WEIGHTS_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"
"""resemblyzer 0.1.4's pretrained.pt; any other file is refused."""

HIDDEN = 256
N_MELS = 40
EXPECTED_SHAPES: dict[str, tuple[int, ...]] = {
    **{f"lstm.weight_ih_l{n}": (4 * HIDDEN, N_MELS if n == 0 else HIDDEN) for n in range(3)},
    **{f"lstm.weight_hh_l{n}": (4 * HIDDEN, HIDDEN) for n in range(3)},
    **{f"lstm.bias_ih_l{n}": (4 * HIDDEN,) for n in range(3)},
    **{f"lstm.bias_hh_l{n}": (4 * HIDDEN,) for n in range(3)},
    "linear.weight": (HIDDEN, HIDDEN),
    "linear.bias": (HIDDEN,),
}

FRAME_MS = 10
WINDOW_FRAMES = 160
"""1.6 s: the length the encoder was trained on."""
STEP_FRAMES = 75
"""A window every 0.75 s inside a speech span."""
MIN_WINDOW_FRAMES = 50
"""Speech shorter than 0.5 s gives no window of its own (its frames take a neighbour's label)."""
TARGET_DBFS = -30.0
"""Every window is scaled to this level first: power-mel embeddings move with loudness."""


# -- the weights --------------------------------------------------------------------

def weights_path() -> Path:
    """Where resemblyzer's pretrained.pt is installed, found without importing the package."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise SpeakerModelError("speaker labels need the resemblyzer package: "
                                "pip install --no-deps resemblyzer==0.1.4")
    return Path(list(spec.submodule_search_locations)[0]) / "pretrained.pt"


class _Storage:
    """A legacy torch storage: its key, element count and (later) its bytes."""

    def __init__(self, key: str, size: int) -> None:
        self.key, self.size, self.data = key, size, b""


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, shape: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.shape, self.stride = storage, offset, tuple(shape), tuple(stride)


class _FloatStorageType:
    """Stands in for `torch.FloatStorage`: only ever used as a marker in persistent ids."""


def _rebuild_tensor_v2(storage, offset, shape, stride, requires_grad=False, hooks=None, *rest):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("tensor without a storage")
    return _Tensor(storage, int(offset), shape, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds float tensors and ordered dicts; any other global is refused."""

    ALLOWED = {("collections", "OrderedDict"): OrderedDict,
               ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
               ("torch", "FloatStorage"): _FloatStorageType}

    def __init__(self, file, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"
                and pid[1] is _FloatStorageType):
            raise pickle.UnpicklingError(f"refused persistent id {pid!r:.80}")
        key, size = str(pid[2]), int(pid[4])
        return self._storages.setdefault(key, _Storage(key, size))


def _read_legacy_checkpoint(blob: bytes) -> dict:
    """The legacy (pre-zip) torch format: magic, protocol, sys info, the object, storage
    keys, then each storage as an int64 element count followed by little-endian data."""
    file = io.BytesIO(blob)
    storages: dict[str, _Storage] = {}
    header = [_RestrictedUnpickler(file, storages).load() for _ in range(3)]
    if header[0] != 0x1950A86A20F9469CFC6C or header[1] != 1001 or not header[2].get("little_endian"):
        raise SpeakerModelError("speaker model file is not a little-endian legacy torch checkpoint")
    checkpoint = _RestrictedUnpickler(file, storages).load()
    keys = _RestrictedUnpickler(file, storages).load()
    for key in keys:
        (count,) = struct.unpack("<q", file.read(8))
        storage = storages.get(key)
        if storage is None or count != storage.size:
            raise SpeakerModelError(f"speaker model storage {key} does not match its header")
        storage.data = file.read(4 * count)
    return checkpoint


def _as_array(tensor: _Tensor) -> np.ndarray:
    flat = np.frombuffer(tensor.storage.data, dtype="<f4")
    last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride))
    if tensor.offset < 0 or min(tensor.stride, default=0) < 0 or last >= flat.size:
        raise SpeakerModelError(f"speaker model tensor reaches outside its storage {tensor.storage.key}")
    itemsize = flat.itemsize
    view = np.lib.stride_tricks.as_strided(flat[tensor.offset:], shape=tensor.shape,
                                           strides=[s * itemsize for s in tensor.stride])
    return np.array(view, dtype=np.float32)


def load_weights(path: Path | None = None) -> dict[str, np.ndarray]:
    """The encoder's tensors as float32 arrays; SpeakerModelError for a missing, tampered or
    unexpected file."""
    path = path or weights_path()
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise SpeakerModelError(f"cannot read the speaker model {path}: {exc}") from None
    digest = hashlib.sha256(blob).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise SpeakerModelError(f"speaker model {path} has SHA-256 {digest[:12]}..., "
                                "not resemblyzer 0.1.4's pretrained.pt; refusing to load it")
    try:
        checkpoint = _read_legacy_checkpoint(blob)
    except (pickle.UnpicklingError, EOFError, struct.error, ValueError) as exc:
        raise SpeakerModelError(f"speaker model {path} is not readable: {exc}") from None
    state = checkpoint.get("model_state") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise SpeakerModelError(f"speaker model {path} has no model_state")
    weights = {}
    for name, shape in EXPECTED_SHAPES.items():
        tensor = state.get(name)
        if not isinstance(tensor, _Tensor) or tensor.shape != shape:
            raise SpeakerModelError(f"speaker model tensor {name} is missing or not {shape}")
        weights[name] = _as_array(tensor)
    return weights


# -- the front end: power mel (librosa's defaults, in numpy) ---------------------------------

N_FFT = 400
HOP = 160
MEL_BLOCK_FRAMES = 6000
"""One minute of frames per FFT block (~20 MB of spectrum), whatever the audio length."""


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_part = hz >= 1000.0
    mel[log_part] = 15.0 + np.log(hz[log_part] / 1000.0) / (np.log(6.4) / 27.0)
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * (200.0 / 3)
    log_part = mel >= 15.0
    hz[log_part] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[log_part] - 15.0))
    return hz


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """(40, 201) Slaney-normalised triangular filters over 0-8 kHz, as librosa builds them."""
    fft_hz = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    mel_hz = _mel_to_hz(np.linspace(_hz_to_mel(np.array([0.0]))[0],
                                    _hz_to_mel(np.array([SAMPLE_RATE / 2]))[0], N_MELS + 2))
    widths = np.diff(mel_hz)
    ramps = mel_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    filters = np.maximum(0, np.minimum(lower, upper))
    filters *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]
    return filters.astype(np.float32)


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def mel_frames(audio: np.ndarray) -> np.ndarray:
    """(n_frames, 40) power mel, 25 ms Hann window every 10 ms, centred (reflect padding)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.size < N_FFT // 2 + 1:
        audio = np.pad(audio, (0, N_FFT // 2 + 1 - audio.size))
    padded = np.pad(audio, N_FFT // 2, mode="reflect")
    n_frames = 1 + (padded.size - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(padded, shape=(n_frames, N_FFT),
                                             strides=(padded.strides[0] * HOP, padded.strides[0]))
    out = np.empty((n_frames, N_MELS), np.float32)
    for start in range(0, n_frames, MEL_BLOCK_FRAMES):  # bounded memory on long audio
        block = frames[start:start + MEL_BLOCK_FRAMES]
        power = np.abs(np.fft.rfft(block * _hann(), axis=1)) ** 2
        out[start:start + len(block)] = power.astype(np.float32) @ mel_filters().T
    return out


# -- the encoder ---------------------------------------------------------------------

def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # no overflow warnings, same values


@lru_cache(maxsize=1)
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


class VoiceEncoder:
    """The GE2E LSTM forward pass in numpy (PyTorch gate order i, f, g, o). Thread-safe."""

    def __init__(self, weights: dict[str, np.ndarray] | None = None) -> None:
        w = weights or load_weights()
        self._layers = [(w[f"lstm.weight_ih_l{n}"].T.copy(), w[f"lstm.weight_hh_l{n}"].T.copy(),
                         w[f"lstm.bias_ih_l{n}"] + w[f"lstm.bias_hh_l{n}"]) for n in range(3)]
        self._linear = (w["linear.weight"].T.copy(), w["linear.bias"])

    def embed(self, mels: np.ndarray, lengths: Sequence[int] | None = None) -> np.ndarray:
        """(batch, frames, 40) mel windows -> (batch, 256) unit vectors.

        `lengths` lets shorter windows share a batch: each is read at its own last frame
        (the LSTM is causal, so the padding after it changes nothing).
        """
        batch, steps, _ = mels.shape
        ends = np.asarray(lengths if lengths is not None else [steps] * batch) - 1
        sequence = mels.astype(np.float32)
        # The recurrence is 160 small matmuls per layer: BLAS threads cost 5x the CPU of one.
        with _blas().limit(limits=1, user_api="blas"):
            for w_ih, w_hh, bias in self._layers:
                sequence = self._layer(sequence, w_ih, w_hh, bias)
        last = sequence[np.arange(batch), ends]
        raw = np.maximum(last @ self._linear[0] + self._linear[1], 0.0)
        return raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-9)

    @staticmethod
    def _layer(inputs: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, bias: np.ndarray) -> np.ndarray:
        batch, steps, _ = inputs.shape
        projected = inputs @ w_ih + bias  # every step's input part at once
        h = np.zeros((batch, HIDDEN), np.float32)
        c = np.zeros((batch, HIDDEN), np.float32)
        out = np.empty((batch, steps, HIDDEN), np.float32)
        for t in range(steps):
            gates = projected[:, t] + h @ w_hh
            i, f, g, o = np.split(gates, 4, axis=1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
            out[:, t] = h
        return out


@lru_cache(maxsize=1)
def shared_encoder() -> VoiceEncoder:
    """One encoder per process (1.4 M parameters, loaded and checked once)."""
    return VoiceEncoder()


def model_available() -> bool:
    """True if the speaker model can be loaded (package installed, file intact)."""
    try:
        shared_encoder()
    except SpeakerModelError:
        return False
    return True


# -- windows over speech ---------------------------------------------------------------

@dataclass
class Windows:
    """Embeddings of windows over speech, and which 10 ms frames each window speaks for."""

    embeddings: np.ndarray  # (n, 256)
    spans: list[tuple[int, int]]  # frame range [start, end) of each window
    speech: np.ndarray  # bool per 10 ms frame
    offset_ms: int = 0

    def __len__(self) -> int:
        return len(self.spans)

    @property
    def seconds(self) -> np.ndarray:
        return np.array([(e - s) * FRAME_MS / 1000 for s, e in self.spans])


def pack_windows(windows: Windows) -> PackedWindows:
    """The windows as plain values to store or send (embeddings exact, the mask as runs)."""
    return PackedWindows(offset_ms=int(windows.offset_ms), frames=int(windows.speech.size),
                         speech=_runs(windows.speech), spans=[int(f) for span in windows.spans for f in span],
                         embeddings=np.asarray(windows.embeddings, dtype="<f4").tobytes())


def unpack_windows(packed: PackedWindows) -> Windows:
    """The windows `pack_windows` packed, equal to the ones measured."""
    embeddings = np.frombuffer(packed.embeddings, dtype="<f4").reshape(-1, HIDDEN).astype(np.float32)
    spans = list(zip(packed.spans[::2], packed.spans[1::2]))
    if len(spans) != len(embeddings):
        raise ValueError(f"{len(spans)} window spans for {len(embeddings)} embeddings")
    speech = np.zeros(packed.frames, dtype=bool)
    for start, end in zip(packed.speech[::2], packed.speech[1::2]):
        speech[start:end] = True
    return Windows(embeddings, spans, speech, packed.offset_ms)


def _runs(mask: np.ndarray) -> list[int]:
    """A boolean mask as its runs of True, flat: [start, end, start, end, ...]."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return [int(e) for e in edges]


def join_windows(parts: Sequence[Windows], n_frames: int) -> Windows:
    """Windows of consecutive pieces (each with its own `offset_ms`) on one timeline from 0."""
    speech = np.zeros(n_frames, dtype=bool)
    spans, embeddings = [], []
    for part in parts:
        first = part.offset_ms // FRAME_MS
        take = min(part.speech.size, max(0, n_frames - first))
        speech[first:first + take] = part.speech[:take]
        spans += [(s + first, e + first) for s, e in part.spans]
        embeddings.append(part.embeddings)
    stacked = np.concatenate(embeddings) if embeddings else np.zeros((0, HIDDEN), np.float32)
    return Windows(stacked, spans, speech, 0)


def speech_spans(audio: np.ndarray) -> list[tuple[int, int]]:
    """Speech as [start, end) 10 ms frames, from the project's Silero VAD."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(threshold=0.5, min_speech_duration_ms=250, min_silence_duration_ms=300,
                         speech_pad_ms=30)
    stamps = get_speech_timestamps(np.ascontiguousarray(audio, dtype=np.float32), options,
                                   sampling_rate=SAMPLE_RATE)
    per_frame = SAMPLE_RATE * FRAME_MS // 1000
    return [(s["start"] // per_frame, -(-s["end"] // per_frame)) for s in stamps]


def window_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Windows inside each speech span: one if it is short, else 1.6 s every 0.75 s with the
    last one flush with the span's end. Never across a pause, where turns usually change."""
    windows = []
    for start, end in spans:
        length = end - start
        if length < MIN_WINDOW_FRAMES:
            continue
        if length <= WINDOW_FRAMES:
            windows.append((start, end))
            continue
        starts = list(range(start, end - WINDOW_FRAMES + 1, STEP_FRAMES))
        if starts[-1] != end - WINDOW_FRAMES:
            starts.append(end - WINDOW_FRAMES)
        windows += [(s, s + WINDOW_FRAMES) for s in starts]
    return windows


def embed_windows(audio: np.ndarray, encoder: VoiceEncoder | None = None, *, offset_ms: int = 0,
                  spans: list[tuple[int, int]] | None = None) -> Windows:
    """Embed every window over the speech in `audio` (spans from Silero VAD unless given)."""
    encoder = encoder or shared_encoder()
    n_frames = len(audio) * 1000 // SAMPLE_RATE // FRAME_MS
    speech = np.zeros(n_frames, dtype=bool)
    spans = speech_spans(audio) if spans is None else spans
    for start, end in spans:
        speech[start:min(end, n_frames)] = True
    windows = [(s, min(e, n_frames)) for s, e in window_spans(spans) if min(e, n_frames) - s > 0]
    if not windows:
        return Windows(np.zeros((0, HIDDEN), np.float32), [], speech, offset_ms)
    mel = mel_frames(audio)
    batch = np.zeros((len(windows), WINDOW_FRAMES, N_MELS), np.float32)
    for n, (start, end) in enumerate(windows):
        batch[n, :end - start] = mel[start:end] * _level_gain(audio, start, end)
    embeddings = encoder.embed(batch, [end - start for start, end in windows])
    return Windows(embeddings, windows, speech, offset_ms)


def _level_gain(audio: np.ndarray, start: int, end: int) -> float:
    """Power gain bringing the window to TARGET_DBFS, louder or quieter."""
    per_frame = SAMPLE_RATE * FRAME_MS // 1000
    piece = audio[start * per_frame:end * per_frame]
    rms = float(np.sqrt(np.mean(np.square(piece, dtype=np.float64)))) if piece.size else 0.0
    if rms < 1e-6:
        return 1.0
    return float((10 ** (TARGET_DBFS / 20) / rms) ** 2)


# -- clustering ----------------------------------------------------------------------

def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


def mean_voice(embeddings: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """The unit mean of window embeddings, each weighted by its length."""
    return _unit((np.asarray(embeddings, np.float64) * np.asarray(seconds, np.float64)[:, None]).sum(axis=0))


def spherical_kmeans(x: np.ndarray, k: int, *, weights: np.ndarray | None = None, restarts: int = 20,
                     iterations: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cluster unit vectors by cosine: (labels, unit centroids). k-means++ starts, best of
    `restarts` by total similarity. Not agglomerative: average linkage splits single outlier
    windows off as speakers."""
    _score, labels, centroids = max(kmeans_runs(x, k, weights=weights, restarts=restarts,
                                                iterations=iterations, seed=seed), key=lambda run: run[0])
    return labels, centroids


def kmeans_runs(x: np.ndarray, k: int, *, weights: np.ndarray | None = None, restarts: int = 20,
                iterations: int = 50, seed: int = 0) -> Iterator[tuple[float, np.ndarray, np.ndarray]]:
    """Every start's (total weighted similarity, labels, unit centroids)."""
    x = _unit(np.asarray(x, dtype=np.float64))
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    k = max(1, min(k, len(x)))
    rng = np.random.default_rng(seed)
    for _ in range(restarts):
        centroids = _kmeans_pp(x, k, rng)
        labels = np.full(len(x), -1)
        for _ in range(iterations):
            new = np.argmax(x @ centroids.T, axis=1)
            if np.array_equal(new, labels):
                break
            labels = new
            centroids = _centroids(x, w, labels, k, centroids)
        yield float(np.sum(w * np.max(x @ centroids.T, axis=1))), labels, centroids


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centroids = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        distance = np.clip(1.0 - np.max(x @ np.array(centroids).T, axis=1), 0, None)
        total = distance.sum()
        pick = rng.choice(len(x), p=distance / total) if total > 0 else rng.integers(len(x))
        centroids.append(x[pick])
    return np.array(centroids)


def _centroids(x: np.ndarray, w: np.ndarray, labels: np.ndarray, k: int, old: np.ndarray) -> np.ndarray:
    centroids = old.copy()
    for c in range(k):
        members = labels == c
        if members.any():
            centroids[c] = _unit((w[members, None] * x[members]).sum(axis=0))
    return centroids


SAME_VOICE_CENTROIDS = 0.87
"""Two cluster centroids this similar are one voice split in two (different espeak-ng voices'
centroids stay below 0.85, one voice split scores above 0.90; tuned on the tuning set)."""


MIN_SPEAKER_SHARE = 0.04
"""An estimated speaker holds at least this share of the speech: windows straddling a turn
change without a pause otherwise form a "voice" of their own. (A given count has no floor.)"""


def cluster(x: np.ndarray, n_speakers: int | None, *, max_speakers: int = 8,
            weights: np.ndarray | None = None) -> np.ndarray:
    """Labels 0..k-1 for each embedding, k given or estimated: the most clusters whose
    centroids are all distinct voices (a silhouette or eigengap undercounted on the tuning set)."""
    if len(x) == 0:
        return np.zeros(0, dtype=int)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    if n_speakers:  # the count is given: the tightest start, unless it splits one voice in two
        runs = list(kmeans_runs(x, n_speakers, weights=w))  # where another start finds people
        tightest = max(runs, key=lambda run: run[0])
        clear = [run for run in runs if _apart(run[2], CLEARLY_DIFFERENT)]
        return (tightest if _apart(tightest[2]) or not clear else max(clear, key=lambda run: run[0]))[1]

    def distinct(run: tuple[float, np.ndarray, np.ndarray], limit: float) -> bool:
        _score, labels, centroids = run
        smallest = min(w[labels == c].sum() for c in range(len(centroids)))
        return _apart(centroids, limit) and smallest >= MIN_SPEAKER_SHARE * w.sum()

    best = np.zeros(len(x), dtype=int)
    for k in range(2, min(max_speakers, len(x)) + 1):
        runs = list(kmeans_runs(x, k, weights=w))
        tightest = max(runs, key=lambda run: run[0])
        # The tightest clustering may split a long speaker in two where a short, clearly
        # different voice (a few seconds of another person) is the real next speaker.
        clear = [run for run in runs if distinct(run, CLEARLY_DIFFERENT)]
        if distinct(tightest, SAME_VOICE_CENTROIDS):
            best = tightest[1]
        elif clear:
            best = max(clear, key=lambda run: run[0])[1]
        else:
            break
    return best


CLEARLY_DIFFERENT = 0.75
"""Centroids this far apart are two people even when k-means liked another split better
(real voices: a reader against another person 0.48-0.77; one real voice split in two 0.80-0.91)."""


def _apart(centroids: np.ndarray, limit: float = SAME_VOICE_CENTROIDS) -> bool:
    """No two centroids as similar as `limit` (by default: one voice split in two)."""
    if len(centroids) < 2:
        return True
    similarity = centroids @ centroids.T
    np.fill_diagonal(similarity, -1.0)
    return bool(similarity.max() < limit)


# -- frames and segments -------------------------------------------------------------

def frame_labels(windows: Windows, labels: np.ndarray) -> np.ndarray:
    """A speaker per 10 ms frame: each speech frame takes the window centred nearest to it
    (-1 for non-speech frames and when there are no windows)."""
    out = np.full(windows.speech.size, -1, dtype=int)
    if not len(windows):
        return out
    centres = np.array([(s + e) / 2 for s, e in windows.spans])
    frames = np.flatnonzero(windows.speech)
    order = np.argsort(centres)
    pos = np.searchsorted(centres[order], frames)
    left = order[np.clip(pos - 1, 0, len(order) - 1)]
    right = order[np.clip(pos, 0, len(order) - 1)]
    nearer = np.where(np.abs(centres[left] - frames) <= np.abs(centres[right] - frames), left, right)
    out[frames] = np.asarray(labels)[nearer]
    return out


def speaker_for_span(labels: np.ndarray, start_ms: int, end_ms: int, *, offset_ms: int = 0,
                     reach_ms: int = 2000) -> int | None:
    """The speaker with most frames in [start, end); else the nearest labelled frame within
    `reach_ms`; else None."""
    lo = max(0, (start_ms - offset_ms) // FRAME_MS)
    hi = min(labels.size, max(lo + 1, -(-(end_ms - offset_ms) // FRAME_MS)))
    inside = labels[lo:hi]
    inside = inside[inside >= 0]
    if inside.size:
        return int(np.bincount(inside).argmax())
    reach = reach_ms // FRAME_MS
    near_lo, near_hi = max(0, lo - reach), min(labels.size, hi + reach)
    labelled = np.flatnonzero(labels[near_lo:near_hi] >= 0) + near_lo
    if not labelled.size:
        return None
    middle = (lo + hi) / 2
    return int(labels[labelled[np.argmin(np.abs(labelled - middle))]])


def diarize(audio: np.ndarray, n_speakers: int | None = None, *, max_speakers: int = 8,
            encoder: VoiceEncoder | None = None) -> tuple[Windows, np.ndarray]:
    """Whole-recording diarization: (windows, speaker per window, numbered by first turn)."""
    windows = embed_windows(audio, encoder)
    return windows, label_windows(windows, n_speakers, max_speakers=max_speakers)


def label_windows(windows: Windows, n_speakers: int | None, *, max_speakers: int = 8) -> np.ndarray:
    """A speaker per window (0..k-1, numbered by first turn), k given or estimated."""
    labels = cluster(windows.embeddings, n_speakers, max_speakers=max_speakers, weights=windows.seconds)
    return number_by_appearance(labels)


def number_by_appearance(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 0, 1, 2... in the order they first occur (Speaker 1 speaks first)."""
    mapping: dict[int, int] = {}
    for label in labels:
        mapping.setdefault(int(label), len(mapping))
    return np.array([mapping[int(label)] for label in labels], dtype=int)


# -- live: windows against the session's running centroids ----------------------------------

NEW_SPEAKER_SIMILARITY = 0.80
"""A live window less similar than this to every known voice starts a new speaker (same voice
scores ~0.85-0.9 against its centroid; 0.75 merged voices, 0.85 split them on the tuning set)."""


def assign_online(embeddings: np.ndarray, seconds: np.ndarray, centroids: list[np.ndarray],
                  weights: list[float], *, max_speakers: int,
                  threshold: float = NEW_SPEAKER_SIMILARITY) -> list[int]:
    """Label windows in time order against running centroids (updated in place); a window
    far from every centroid opens a new one while fewer than `max_speakers` exist.
    Returns each window's centroid index."""
    labels = []
    for vector, secs in zip(_unit(np.asarray(embeddings, dtype=np.float64)), seconds):
        sims = [float(vector @ c) for c in centroids]
        best = int(np.argmax(sims)) if sims else -1
        if best < 0 or (sims[best] < threshold and len(centroids) < max_speakers):
            centroids.append(vector.copy())
            weights.append(float(secs))
            labels.append(len(centroids) - 1)
            continue
        total = weights[best] + float(secs)
        centroids[best] = _unit(centroids[best] * weights[best] + vector * float(secs))
        weights[best] = total
        labels.append(best)
    return labels
