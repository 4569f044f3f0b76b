"""Every service's migrations, on SQLite and on PostgreSQL: upgrade to head gives exactly the models' schema
(tables, columns, types, nullability, indexes, unique constraints, foreign keys, as Alembic's autogenerate sees
it), a row written through the models fits, downgrade to base removes every table the service owns, and upgrade
works again."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from podbrief.settings import DatabaseSettings
from podbrief.storage.db import create_engine, migrate
from podbrief_testing.postgres import create_database_async, drop_database
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).parent))
from dbtools import (
    SERVICES,
    insert_one_row_per_table,
    metadata,
    migrations_dir,
    table_names,
)

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/migrations.db"
        name = None
    else:
        pg_url = request.getfixturevalue("pg_url")
        name = f"mig_{unique}"
        url = await create_database_async(pg_url, name)
    eng = create_engine(DatabaseSettings(url=SecretStr(url)))
    try:
        yield eng
    finally:
        await eng.dispose()
        if name is not None:
            await drop_database(request.getfixturevalue("pg_url"), name)


def owned(diff: Any, md: sa.MetaData) -> bool:
    """Whether a diff is about this service's tables: in a shared database, other services' tables, indexes and
    version tables show up as "remove_*" and are not this service's drift."""
    if isinstance(diff, list):
        return any(owned(d, md) for d in diff)
    obj = diff[1]
    table = obj if isinstance(obj, sa.Table) else getattr(obj, "table", None)
    if table is not None:
        return table.name in md.tables
    # Column diffs: (kind, schema, table name, ...)
    return not (len(diff) > 2 and isinstance(diff[2], str)) or diff[2] in md.tables


async def drift(engine: AsyncEngine, md: sa.MetaData) -> list[Any]:
    async with engine.connect() as conn:

        def compare(sync: sa.Connection) -> list[Any]:
            ctx = MigrationContext.configure(sync, opts={"compare_type": True, "compare_server_default": True})
            # Other services' tables and version tables in a shared database are not this service's drift.
            return [d for d in compare_metadata(ctx, md) if owned(d, md)]

        return await conn.run_sync(compare)


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_match_models_and_go_down_and_up(engine: AsyncEngine, service: str) -> None:
    md = metadata(service)
    version_table = f"alembic_version_{service}"

    await migrate(engine, migrations_dir(service), service)
    assert await drift(engine, md) == []
    assert await table_names(engine) == set(md.tables) | {version_table}
    await insert_one_row_per_table(engine, md)

    # Down with data in the tables: everything the service owns goes, the version table stays, empty.
    await migrate(engine, migrations_dir(service), service, "base")
    assert await table_names(engine) == {version_table}
    async with engine.connect() as conn:
        assert (await conn.execute(sa.text(f"SELECT count(*) FROM {version_table}"))).scalar_one() == 0

    await migrate(engine, migrations_dir(service), service)
    assert await drift(engine, md) == []
    await insert_one_row_per_table(engine, md)


async def test_five_services_share_one_database_and_migrate_independently(engine: AsyncEngine) -> None:
    for service in SERVICES:
        await migrate(engine, migrations_dir(service), service)
    everything = set().union(*(set(metadata(s).tables) | {f"alembic_version_{s}"} for s in SERVICES))
    assert await table_names(engine) == everything

    # One service going back to base leaves every other service's tables and version alone.
    await migrate(engine, migrations_dir("extraction"), "extraction", "base")
    assert await table_names(engine) == everything - set(metadata("extraction").tables)
    for service in SERVICES:
        if service != "extraction":
            assert await drift(engine, metadata(service)) == []
    await migrate(engine, migrations_dir("extraction"), "extraction")
    assert await drift(engine, metadata("extraction")) == []


@pytest.mark.parametrize("service", SERVICES)
async def test_the_status_queries_run_on_the_migrated_schema(engine: AsyncEngine, service: str) -> None:
    """`podbrief status` and `GET /v1/status` read each store with these queries, on SQLite and PostgreSQL."""
    import importlib

    await migrate(engine, migrations_dir(service), service)
    empty = await importlib.import_module(f"podbrief_{service}.status").stage_status(engine)
    assert all(n == 0 for n in empty.episodes.values()) and empty.failures == {}
    await insert_one_row_per_table(engine, metadata(service))
    status = await importlib.import_module(f"podbrief_{service}.status").stage_status(engine)
    assert sum(status.episodes.values()) >= 1, status
