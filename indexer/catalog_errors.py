"""The catalog's errors, apart from the catalog so that opening its engine (indexer/engine.py) can raise them."""

from __future__ import annotations

# The backend's error for a database that cannot be used right now (disk full or read-only, locked, I/O):
# callers that turn it into a DataDirError name it through the catalog, not through SQLAlchemy.
from sqlalchemy.exc import OperationalError as CatalogBackendError

__all__ = ["CatalogBackendError", "CatalogDamaged", "CatalogError", "DataDirError"]


class CatalogError(RuntimeError):
    """The catalog cannot be used as asked; the message says what to do."""


class DataDirError(CatalogError):
    """The data dir cannot be written (read-only, full, permissions); nothing indexed is lost."""


class CatalogDamaged(CatalogError):
    """The catalog file is not a readable database (truncated, zeroed, overwritten)."""

    def __init__(self, where: str, reason: str):
        super().__init__(
            f"catalog {where} is damaged: {reason}; restore it from a backup or move it "
            "away and re-index (the index files and thumbnails are rebuilt from it)"
        )
