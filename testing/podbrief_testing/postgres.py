"""PostgreSQL as a test sees it: a fresh database per test on the shared server."""

from __future__ import annotations


async def create_database_async(pg_url: str, name: str) -> str:
    """CREATE DATABASE `name` on the server of `pg_url` (postgresql+asyncpg://...) and return its URL."""
    import asyncpg

    conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return pg_url.rsplit("/", 1)[0] + "/" + name


def create_database(pg_url: str, name: str) -> str:
    """`create_database_async` for a caller outside an event loop."""
    import asyncio

    return asyncio.run(create_database_async(pg_url, name))


async def drop_database(pg_url: str, name: str, *, attempts: int = 40, pause_s: float = 0.25) -> None:
    """DROP DATABASE `name` on the server of `pg_url`, ending the connections left to it.

    `WITH (FORCE)` terminates the other sessions on the database, and refuses (InsufficientPrivilegeError) when
    one of them is a process the test's role may not signal: an autovacuum worker, which PostgreSQL starts on a
    database after heavy DDL (migrating five services' schemas is enough). Such a worker is done within moments,
    so the drop is tried again, `attempts` times `pause_s` apart, before the error is raised."""
    import asyncio

    import asyncpg

    conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for attempt in range(attempts):
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                return
            except (asyncpg.InsufficientPrivilegeError, asyncpg.ObjectInUseError):
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(pause_s)
    finally:
        await conn.close()
