"""Storage: SQLAlchemy async engines (SQLite embedded, PostgreSQL in production) and per-service Alembic
migrations. The Qdrant client factory lives in `podbrief.storage.vectors` (imported only where vectors are used,
since qdrant-client is slow to import)."""

from podbrief.storage.db import Base, create_engine, migrate, session_factory

__all__ = ["Base", "create_engine", "migrate", "session_factory"]
