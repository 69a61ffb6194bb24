"""The job store: SQLite (the default, `sqlite.py`) or PostgreSQL (`postgres.py`)
behind one contract (`base.Store`); `Store(target)` picks by the target."""

from bot.engine.store.base import COLUMNS, Store, Usage, is_postgres_url, store_for, write_job
from bot.engine.store.migrations import MIGRATIONS, SCHEMA_VERSION, Dialects
from bot.engine.store.sql import Connection

__all__ = [
    "COLUMNS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Connection",
    "Dialects",
    "Store",
    "Usage",
    "is_postgres_url",
    "store_for",
    "write_job",
]
