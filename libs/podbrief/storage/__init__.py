"""Storage: SQLAlchemy async engines (SQLite embedded, PostgreSQL in production) and per-service Alembic
migrations. The vector stores (Qdrant Edge embedded, a Qdrant server through qdrant-client) live in
`podbrief.storage.vectors`, imported only where vectors are used, since both engines are slow to import."""

from podbrief.storage.db import Base, create_engine, migrate, session_factory

__all__ = ["Base", "create_engine", "migrate", "session_factory"]
