"""A Redis outage is waited out: no chunk fails because the broker was briefly gone."""

from __future__ import annotations

import time

from redis_server import free_port, start_redis
from test_distributed import _start_worker_process, _wait_ready, chunk, new_session

from scribe.distributed import RemoteTranscriber
from scribe.pipeline import Pipeline, PipelineOptions


def test_a_broker_restart_fails_no_chunk_and_duplicates_none(storage, tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    redis = start_redis(tmp_path, port)
    worker = _start_worker_process(url, "0.2-0.4")
    _wait_ready(worker)
    # Few attempts and quick backoff: before, each send during the outage burned one.
    remote = RemoteTranscriber(url, backend="rec", model="rec-1", timeout=8.0, broker_wait=60.0)
    pipe = Pipeline(storage, remote, audio_dir=tmp_path / "audio",
                    options=PipelineOptions(max_concurrency=4, max_attempts=3, retry_base_seconds=0.05,
                                            retry_max_seconds=0.2)).start()
    sid = new_session(storage)
    try:
        for seq in range(6):
            pipe.submit(chunk(sid, seq))
        deadline = time.monotonic() + 30
        while storage.chunk_counts(sid)["done"] < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        redis.terminate()  # the broker goes away (its queue with it: no persistence)
        redis.wait(10)
        for seq in range(6, 12):  # sent while the broker is down
            pipe.submit(chunk(sid, seq))
        time.sleep(4.0)
        assert storage.chunk_counts(sid)["failed"] == 0
        redis = start_redis(tmp_path, port)
        assert pipe.wait_idle(120)
        assert storage.chunk_counts(sid) == {"pending": 0, "processing": 0, "done": 12, "failed": 0}
        assert [(s.seq, s.idx) for s in storage.list_segments(sid)] == [(n, 0) for n in range(12)]
    finally:
        pipe.stop()
        remote.close()
        for proc in (worker, redis):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
