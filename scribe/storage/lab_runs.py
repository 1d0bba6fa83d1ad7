"""The `lab_runs` table: one row per chunking-lab policy run, grouped by experiment."""

from __future__ import annotations

import time
import uuid
from typing import Any

from scribe.identity import LOCAL_ID, Principal
from scribe.storage.database import Database


class LabRunQueries(Database):
    """Chunking-lab results."""

    LAB_RUN_FIELDS = ("id", "experiment", "created_at", "audio_label", "audio_seconds", "policy",
                      "backend", "model", "wer", "chunks", "mean_chunk_s", "latency_s",
                      "processing_s", "calls", "cost_usd", "words_lost", "words_duplicated",
                      "reference_words", "hypothesis")

    def save_lab_run(self, run: dict[str, Any], *, owner_id: str = LOCAL_ID) -> None:
        """Store one policy run (keys: LAB_RUN_FIELDS; `id` and `created_at` filled if missing)
        as `owner_id`'s."""
        row = {"id": uuid.uuid4().hex, "created_at": time.time(), **run}
        values = [row[name] for name in self.LAB_RUN_FIELDS] + [owner_id]
        with self.transaction() as cur:
            cur.execute(f"INSERT INTO lab_runs ({', '.join(self.LAB_RUN_FIELDS)}, owner_id) "
                        f"VALUES ({', '.join('?' * len(values))})", values)

    def list_lab_runs(self, *, limit: int = 200, experiment: str | None = None,
                      visible_to: Principal | None = None) -> list[dict[str, Any]]:
        """Newest first (runs of one experiment in the order they ran). A lab run is its
        runner's own: `visible_to` sees theirs, an administrator every run."""
        clauses, params = (["experiment = ?"], [experiment]) if experiment else ([], [])
        if visible_to is not None and not visible_to.is_admin:
            clauses.append("owner_id = ?")
            params.append(visible_to.user_id)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._rows(f"SELECT * FROM lab_runs {where} ORDER BY created_at DESC, id LIMIT ?",
                          [*params, limit])
        for row in rows:
            row.pop("owner_id", None)
        return rows
