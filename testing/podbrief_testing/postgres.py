"""PostgreSQL as a test sees it: a fresh database per test on the shared server."""

from __future__ import annotations


def create_database(pg_url: str, name: str) -> str:
    """CREATE DATABASE `name` on the server of `pg_url` (postgresql+asyncpg://...) and return its URL."""
    import asyncio

    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return pg_url.rsplit("/", 1)[0] + "/" + name
