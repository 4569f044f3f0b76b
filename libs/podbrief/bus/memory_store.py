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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from podbrief.bus.base import Record, TopicPartition

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
class Snapshot:
    """The bus as the store holds it: on save, what changed since the last save (records past `saved`, taken
    on the event loop so the bus keeps moving while the file is written); on load, all of it."""

    partitions: int | None
    topics: list[str] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)  # on load: what is left of each log
    ends: dict[TopicPartition, int] = field(default_factory=dict)  # where each log ends
    committed: dict[str, dict[TopicPartition, int]] = field(default_factory=dict)
    subscriptions: dict[str, set[str]] = field(default_factory=dict)  # the topics each group reads


class MemoryStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: IO[str] | None = None
        self.saved: dict[TopicPartition, int] = {}  # where each log ended when last written to the file
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
    async def load(self) -> Snapshot:
        """Lock the store and read what it holds."""
        self._acquire()
        try:
            return await asyncio.to_thread(self._load)
        except BaseException:
            self._release()
            raise

    def _load(self) -> Snapshot:
        with self._connect() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name = 'partitions'").fetchone()
            snap = Snapshot(partitions=int(row[0]) if row is not None else None)
            snap.topics = [t for (t,) in conn.execute("SELECT topic FROM topics ORDER BY topic")]
            for topic, partition, offset, key, value, headers, ts in conn.execute(
                'SELECT topic, partition, "offset", key, value, headers, timestamp_ms FROM records '
                'ORDER BY topic, partition, "offset"'
            ):
                snap.records.append(Record(topic, partition, offset, key, value, _headers_in(headers), ts))
                snap.ends[(topic, partition)] = offset + 1
            for grp, topic, partition, offset in conn.execute('SELECT grp, topic, partition, "offset" FROM committed'):
                snap.committed.setdefault(grp, {})[(topic, partition)] = offset
                # A log whose records were all consumed and deleted still ends where it ended.
                snap.ends[(topic, partition)] = max(snap.ends.get((topic, partition), 0), offset)
            for grp, topic in conn.execute("SELECT grp, topic FROM subscriptions"):
                snap.subscriptions.setdefault(grp, set()).add(topic)
        self.saved = dict(snap.ends)
        return snap

    # Save ----------------------------------------------------------------------------------------------------
    def _write(self, snap: Snapshot) -> None:
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
            for topic, p in snap.ends:
                readers = [g for g, topics in snap.subscriptions.items() if topic in topics]
                if not readers:
                    continue
                floor = min(snap.committed.get(g, {}).get((topic, p), 0) for g in readers)
                if floor:
                    conn.execute(
                        'DELETE FROM records WHERE topic = ? AND partition = ? AND "offset" < ?', (topic, p, floor)
                    )
        self.saved.update(snap.ends)

    async def save(self, take: Callable[[Mapping[TopicPartition, int]], Snapshot]) -> None:
        """Write what changed: `take(saved)` snapshots the bus past the offsets already in the file."""
        if self._lock is None:
            raise RuntimeError("the store is not loaded")
        async with self._save_lock:
            snap = take(dict(self.saved))
            await asyncio.to_thread(self._write, snap)

    async def close(self, take: Callable[[Mapping[TopicPartition, int]], Snapshot]) -> None:
        """Save and unlock."""
        try:
            await self.save(take)
        finally:
            self._release()
