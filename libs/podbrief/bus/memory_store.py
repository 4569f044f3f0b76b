"""The in-process bus kept in a file (SQLite) between processes, the way a broker keeps its logs: the embedded
`podbrief run` resumes what an earlier run left in flight, keeps its dead letters for `podbrief dlq`, and a
replayed dead letter waits there for the next run.

- Records are appended, offsets committed by consumer groups are replaced, both in one transaction per save.
- Records every group that reads their topic has committed are deleted on save (a topic nobody reads, such as
  a DLQ, keeps everything); a log reloaded without them keeps its offsets (`memory.Log`).
- One process at a time: the store holds an exclusive lock on `<file>.lock` from load to close, and a second
  process is refused with a message naming the file.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from podbrief.bus.base import Record, TopicPartition

if TYPE_CHECKING:
    from podbrief.bus.memory import MemoryTransport

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
    key BLOB, value BLOB NOT NULL, headers TEXT NOT NULL, timestamp_ms INTEGER,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE TABLE IF NOT EXISTS topics (topic TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS committed (
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
);
CREATE TABLE IF NOT EXISTS subscriptions (grp TEXT NOT NULL, topic TEXT NOT NULL, PRIMARY KEY (grp, topic));
"""


class StoreBusyError(RuntimeError):
    """Another process has the store open."""


def _headers_out(headers: tuple[tuple[str, bytes], ...]) -> str:
    return json.dumps([[k, base64.b64encode(v).decode()] for k, v in headers])


def _headers_in(raw: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, base64.b64decode(v)) for k, v in json.loads(raw))


@dataclass
class _Snapshot:
    """What one save writes, taken on the event loop so the bus can keep moving while the file is written."""

    topics: list[str]
    records: list[Record]
    ends: dict[TopicPartition, int]
    committed: dict[str, dict[TopicPartition, int]]
    subscriptions: dict[str, set[str]]
    partitions: int


class MemoryStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: IO[str] | None = None
        self._saved: dict[TopicPartition, int] = {}  # records of each partition already in the file
        self._save_lock = asyncio.Lock()

    # Locking -----------------------------------------------------------------------------------------------
    def _acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = (self.path.parent / (self.path.name + ".lock")).open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            lock.close()
            raise StoreBusyError(
                f"the embedded bus {self.path} is in use by {holder}; wait for it to finish (one podbrief run, "
                "podbrief dlq or podbrief status at a time per data directory)"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"process {os.getpid()}")
        lock.flush()
        self._lock = lock

    def check_free(self) -> None:
        """StoreBusyError if another process has the store open now."""
        self._acquire()
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path)
        conn.executescript(SCHEMA)
        return conn

    # Load ----------------------------------------------------------------------------------------------------
    async def load(self, transport: MemoryTransport) -> None:
        """Lock the store and fill `transport` (not started yet) with what it holds."""
        self._acquire()
        try:
            await asyncio.to_thread(self._load, transport)
        except BaseException:
            self._release()
            raise

    def _load(self, transport: MemoryTransport) -> None:
        from podbrief.bus.memory import _Group

        with self._connect() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name = 'partitions'").fetchone()
            if row is not None:
                # The layout of the stored logs depends on it; a different setting cannot apply to them.
                transport.partitions = int(row[0])
            for (topic,) in conn.execute("SELECT topic FROM topics ORDER BY topic"):
                transport._log(topic)
            for topic, partition, end in conn.execute(
                'SELECT topic, partition, max("offset") + 1 FROM records GROUP BY topic, partition'
            ):
                transport._log(topic)[partition].extend([None] * end)
                self._saved[(topic, partition)] = end
            for topic, partition, offset, key, value, headers, ts in conn.execute(
                'SELECT topic, partition, "offset", key, value, headers, timestamp_ms FROM records'
            ):
                transport._log(topic)[partition][offset] = Record(
                    topic, partition, offset, key, value, _headers_in(headers), ts
                )
            for grp, topic, partition, offset in conn.execute('SELECT grp, topic, partition, "offset" FROM committed'):
                group = transport._groups.setdefault(grp, _Group())
                group.committed[(topic, partition)] = offset
                # A log whose records were all consumed and deleted still ends where it ended.
                log = transport._log(topic)[partition]
                if len(log) < offset:
                    log.extend([None] * (offset - len(log)))
                    self._saved[(topic, partition)] = offset
            for grp, topic in conn.execute("SELECT grp, topic FROM subscriptions"):
                transport._groups.setdefault(grp, _Group()).topics.add(topic)

    # Save ----------------------------------------------------------------------------------------------------
    def _snapshot(self, transport: MemoryTransport) -> _Snapshot:
        records: list[Record] = []
        ends: dict[TopicPartition, int] = {}
        for topic, parts in transport._logs.items():
            for p, log in enumerate(parts):
                start = self._saved.get((topic, p), 0)
                records.extend(r for r in log[start:] if r is not None)
                ends[(topic, p)] = len(log)
        return _Snapshot(
            topics=list(transport._logs),
            records=records,
            ends=ends,
            committed={name: dict(g.committed) for name, g in transport._groups.items()},
            subscriptions={name: set(g.topics) for name, g in transport._groups.items()},
            partitions=transport.partitions,
        )

    def _write(self, snap: _Snapshot) -> None:
        with self._connect() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('partitions', ?)", (str(snap.partitions),))
            conn.executemany("INSERT OR IGNORE INTO topics (topic) VALUES (?)", [(t,) for t in snap.topics])
            conn.executemany(
                'INSERT OR IGNORE INTO records (topic, partition, "offset", key, value, headers, timestamp_ms) '
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (r.topic, r.partition, r.offset, r.key, r.value, _headers_out(r.headers), r.timestamp_ms)
                    for r in snap.records
                ],
            )
            conn.executemany(
                'INSERT OR REPLACE INTO committed (grp, topic, partition, "offset") VALUES (?, ?, ?, ?)',
                [(g, t, p, off) for g, offsets in snap.committed.items() for (t, p), off in offsets.items()],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO subscriptions (grp, topic) VALUES (?, ?)",
                [(g, t) for g, topics in snap.subscriptions.items() for t in topics],
            )
            # What every reader of a topic has committed is of no more use to anyone.
            for (topic, p), _end in snap.ends.items():
                readers = [g for g, topics in snap.subscriptions.items() if topic in topics]
                if not readers:
                    continue
                floor = min(snap.committed.get(g, {}).get((topic, p), 0) for g in readers)
                if floor:
                    conn.execute(
                        'DELETE FROM records WHERE topic = ? AND partition = ? AND "offset" < ?', (topic, p, floor)
                    )
        self._saved.update(snap.ends)

    async def save(self, transport: MemoryTransport) -> None:
        if self._lock is None:
            raise RuntimeError("the store is not loaded")
        async with self._save_lock:
            await asyncio.to_thread(self._write, self._snapshot(transport))

    async def close(self, transport: MemoryTransport) -> None:
        """Save and unlock."""
        try:
            await self.save(transport)
        finally:
            self._release()
