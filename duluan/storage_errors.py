"""Turning "the disk is full / read-only / not ours" into one clear message instead of a traceback.

The command line (and anything else that stops on such a failure) calls `storage_problem(exc)`: it
walks the exception chain and, if the root is a storage failure of the index, the app database
(SQLite) or any file under home, returns what failed, where, and how to fix it.
"""

from __future__ import annotations

import errno
import sqlite3

from sqlalchemy.exc import OperationalError as SqlAlchemyOperationalError

from index.tantivy_backend import IndexStorageError

_STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}
_SQLITE_STORAGE_MESSAGES = (
    "database or disk is full",
    "attempt to write a readonly database",
    "unable to open database file",
    "disk i/o error",
)
_FIX = "Free disk space or make the folder writable (check the mount and permissions), then rerun."


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def storage_problem(
    exc: BaseException, database: str = "duluan.db under home, or database_url"
) -> str | None:
    """A one-paragraph explanation if `exc` (or its cause) is a storage failure, else None."""
    for error in _chain(exc):
        if isinstance(error, IndexStorageError):
            return str(error)
        if isinstance(error, (sqlite3.OperationalError, SqlAlchemyOperationalError)):
            text = str(getattr(error, "orig", None) or error)
            if any(marker in text.lower() for marker in _SQLITE_STORAGE_MESSAGES):
                return (
                    f"The app database ({database}) cannot be written: {text}. SQLite rolled the failed "
                    f"transaction back, so the file stays consistent. {_FIX}"
                )
        if isinstance(error, OSError) and error.errno in _STORAGE_ERRNOS:
            where = f" {error.filename}" if error.filename else ""
            return f"Cannot write{where}: {error.strerror or error}. {_FIX}"
    return None
