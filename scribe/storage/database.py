"""The connection `Storage` is built on: a cursor per thread, serialised write
transactions, small query helpers, and the schema migrations applied on open."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator, Sequence

import duckdb

from scribe.errors import ScribeError
from scribe.storage.migrations import MIGRATIONS

MEMORY_LIMIT_MB = 128
"""DuckDB's memory for a database file. DuckDB keeps the blocks it read or wrote until its
bound needs the room, so with its own bound (80 % of RAM) a server's memory grows with its
database. A checkpoint must also hold every value over 4 KB of a table's row group at once;
no table keeps many such values (voice windows are stored in small pieces), so this bound
leaves it the room (BENCHMARKS.md, "DuckDB's memory with a long history")."""


class ReadThrough:
    """Reads shared by many callers: a key's value is read again only when its `mark` moved or
    the last read is older than `max_age_s`; the newest `entries` keys are kept. The mark a
    caller passes is taken before the read, so a read that raced a change is kept under the
    old mark and read again by the next caller."""

    def __init__(self, max_age_s: float, entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self._entries = entries
        self._clock = clock
        self._lock = threading.Lock()
        self._read: OrderedDict[Hashable, tuple[object, float, Any]] = OrderedDict()
        self.reads = 0
        """Database reads so far (for tests and benchmarks)."""

    def _read_through(self, key: Hashable, mark: object, load: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._read.get(key)
            if hit is not None and hit[0] == mark and self._clock() - hit[1] < self.max_age_s:
                self._read.move_to_end(key)
                return hit[2]
        at = self._clock()
        value = load()
        with self._lock:
            self.reads += 1
            self._read[key] = (mark, at, value)
            self._read.move_to_end(key)
            while len(self._read) > self._entries:
                self._read.popitem(last=False)
        return value


class KeptReads(ReadThrough):
    """Small reads asked for far more often than their rows change, kept until a write that
    may change them calls `changed()`: the process is its database file's only writer (every
    other program reaches the data through its API), so a kept read is never stale."""

    def __init__(self, entries: int = 512) -> None:
        super().__init__(math.inf, entries)
        self._writes = 0

    def get(self, key: Hashable, read: Callable[[], Any]) -> Any:
        return self._read_through(key, self._writes, read)

    def changed(self) -> None:
        """After a committed write to the rows the kept reads come from."""
        with self._lock:
            self._writes += 1


class Database:
    """One DuckDB file: the base every table's queries build on."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        """A file's DuckDB memory is bounded at `MEMORY_LIMIT_MB` once its migrations ran (a
        migration may rewrite a whole table); an in-memory database keeps DuckDB's own bound,
        as it has nowhere to evict its blocks to."""
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(self.path)
        except duckdb.Error as exc:
            raise ScribeError(f"cannot open database {self.path}: {exc}") from None
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._decode_inputs = KeptReads()
        """A session's vocabulary and decode options (`VocabularyQueries`): the partial lane
        reads both before each decode of every live session."""
        self.migrate()
        if self.path != ":memory:":
            self._con.execute(f"SET memory_limit = '{MEMORY_LIMIT_MB}MB'")

    def close(self) -> None:
        self._con.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor (DuckDB connections are not shared across threads)."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._local.cursor = self._con.cursor()
        return cur

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Serialised write transaction: commits on success, rolls back on error."""
        with self._write_lock:
            cur = self.cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return dict_rows(self.cursor().execute(sql, params))

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.cursor().execute(sql, params).fetchone()
        return row[0] if row else None

    def migrate(self) -> int:
        """Apply pending migrations in order; return the schema version."""
        with self.transaction() as cur:
            cur.execute("""CREATE TABLE IF NOT EXISTS schema_version (
                version INTEGER PRIMARY KEY, name VARCHAR, applied_at DOUBLE)""")
            current = cur.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
            for version, (name, migration) in enumerate(MIGRATIONS, start=1):
                if version > current:
                    migration(cur)
                    cur.execute("INSERT INTO schema_version VALUES (?, ?, ?)", [version, name, time.time()])
        return len(MIGRATIONS)

    def memory_mb(self) -> float:
        """What DuckDB holds in memory: its buffer pool (the table blocks it read or wrote and
        keeps until `memory_limit` needs the room) and the work of queries in flight."""
        return round(float(self._scalar("SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()"))
                     / 2**20, 1)

    def schema_version(self) -> int:
        return int(self._scalar("SELECT max(version) FROM schema_version"))


def _in_clause(column: str, values: Sequence[Any]) -> str:
    return f"{column} IN ({', '.join('?' * len(values))})"


def _filters(members: Sequence[tuple[str, Sequence[Any]]], time_column: str, since: float | None,
             until: float | None) -> tuple[list[str], list[Any]]:
    """WHERE clauses (and their parameters) for `column IN (...)` lists and a time range."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, values in members:
        if values:
            clauses.append(_in_clause(column, values))
            params.extend(values)
    for op, bound in ((">=", since), ("<", until)):
        if bound is not None:
            clauses.append(f"{time_column} {op} ?")
            params.append(bound)
    return clauses, params


def dict_rows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The rows of an executed query as dicts by column name."""
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]
