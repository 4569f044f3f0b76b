"""Database helpers for the integration tests: a PostgreSQL database per test on the shared server, every row of
every table as comparable values, and one full row per table written through a service's models."""

from __future__ import annotations

import importlib
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

SERVICES = ("ingest", "transcription", "extraction", "clustering", "delivery")
REPO = Path(__file__).resolve().parents[2]


def metadata(service: str) -> sa.MetaData:
    md: sa.MetaData = importlib.import_module(f"podbrief_{service}.models").Base.metadata
    return md


def migrations_dir(service: str) -> Path:
    return REPO / "services" / service / "migrations"


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names()))


async def all_rows(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted, with the values as the driver returns them."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as conn:
        md = sa.MetaData()
        await conn.run_sync(lambda sync: md.reflect(sync))
        for table in md.sorted_tables:
            rows = (await conn.execute(sa.select(table))).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def as_utc(value: Any) -> Any:
    # SQLite has no time zones: an aware datetime comes back naive (the services treat it as UTC).
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def sample_value(column: sa.Column[Any], parents: dict[str, Any]) -> Any:
    for fk in column.foreign_keys:
        return parents[fk.target_fullname]
    kind = column.type
    if isinstance(kind, sa.Uuid):
        return uuid.uuid4()
    if isinstance(kind, sa.DateTime):
        return datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)
    if isinstance(kind, sa.Date):
        return date(2026, 11, 29)
    if isinstance(kind, sa.Boolean):
        return True
    if isinstance(kind, sa.Integer):
        return 7
    if isinstance(kind, sa.Float):
        return 0.1
    if isinstance(kind, sa.JSON):
        return {"k": ["v", 1, 0.5, None], "ü": "ñ"}
    if isinstance(kind, sa.LargeBinary):
        return b"\x00\x01\xffvector"
    if isinstance(kind, sa.String):
        return "é-" + uuid.uuid4().hex[: (kind.length or 40) - 2]
    raise AssertionError(f"no sample value for {column} of type {kind!r}")


async def insert_one_row_per_table(engine: AsyncEngine, md: sa.MetaData) -> dict[str, dict[str, Any]]:
    """A full row (every column set, foreign keys pointing at the parent row) in every table, in FK order; read
    back and compared."""
    parents: dict[str, Any] = {}
    rows: dict[str, dict[str, Any]] = {}
    async with engine.begin() as conn:
        for table in md.sorted_tables:
            row = {c.name: sample_value(c, parents) for c in table.columns}
            await conn.execute(table.insert().values(**row))
            parents.update({f"{table.name}.{k}": v for k, v in row.items()})
            rows[table.name] = row
    async with engine.connect() as conn:
        for table in md.sorted_tables:
            key = [c == rows[table.name][c.name] for c in table.primary_key]
            got = (await conn.execute(sa.select(table).where(*key))).mappings().one()
            assert {k: as_utc(v) for k, v in got.items()} == rows[table.name], table.name
    return rows
