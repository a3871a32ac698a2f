"""Persistence for siyu: SQLModel tables, the functions that change them, migrations.

This package imports nothing from ``bot``, ``handlers`` or ``flows``: it is the bottom layer.
"""
from storage.engine import Database, DatabaseURLError

__all__ = ["Database", "DatabaseURLError"]
