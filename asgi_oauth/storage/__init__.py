"""Storage backends: the ``Storage`` protocol, ``MemoryStorage`` and ``SQLiteStorage``."""

from .base import Storage
from .memory import MemoryStorage
from .sqlite import SQLiteStorage

__all__ = ["MemoryStorage", "SQLiteStorage", "Storage"]
