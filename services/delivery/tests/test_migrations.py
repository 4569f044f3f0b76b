"""The hand-written migration creates exactly the models' tables and its downgrade removes them."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from podbrief.settings import DatabaseSettings
from podbrief.storage.db import create_engine, migrate
from podbrief_delivery.app import MIGRATIONS
from podbrief_delivery.models import Base
from pydantic import SecretStr

pytestmark = pytest.mark.unit


async def test_upgrade_matches_models_and_downgrade_drops_everything(tmp_path: Path) -> None:
    engine = create_engine(DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path}/m.db")))

    async def tables() -> dict[str, set[str]]:
        async with engine.connect() as conn:

            def inspect(sync: sa.Connection) -> dict[str, set[str]]:
                ins = sa.inspect(sync)
                return {
                    t: {c["name"] for c in ins.get_columns(t)}
                    for t in ins.get_table_names()
                    if t.startswith("delivery_")
                }

            return await conn.run_sync(inspect)

    try:
        await migrate(engine, MIGRATIONS, "delivery")
        got = await tables()
        want = {t.name: {c.name for c in t.columns} for t in Base.metadata.sorted_tables}
        assert got == want
        await migrate(engine, MIGRATIONS, "delivery", "base")
        assert await tables() == {}
        await migrate(engine, MIGRATIONS, "delivery")
        assert set(await tables()) == set(want)
    finally:
        await engine.dispose()
