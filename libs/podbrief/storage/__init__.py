"""Storage: SQLAlchemy async engines (SQLite embedded, PostgreSQL in production), per-service Alembic
migrations, and the Qdrant client factory."""

from podbrief.storage.db import Base, create_engine, migrate, session_factory
from podbrief.storage.vectors import make_qdrant_client

__all__ = ["Base", "create_engine", "make_qdrant_client", "migrate", "session_factory"]
