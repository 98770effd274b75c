"""State on disk private to its owner: directories 0700 and files 0600, whatever the umask.

Every file the local stack writes (databases and their WAL files, tokens, kubeconfigs, TLS
keys, logs, job variables) may hold a secret, so each writer goes through these helpers
rather than the process umask; the stack also starts its children with PRIVATE_UMASK, so
files that tools create on their own (ansible-runner's artifacts, ansible-rulebook's) are
private too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600
# SQLite creates these beside a database, copying the database file's mode.
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) and make it 0700, also if it already existed."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    path.chmod(DIR_MODE)
    return path


def _open(path: Path, flags: int) -> int:
    descriptor = os.open(path, flags | os.O_CREAT, FILE_MODE)
    # O_CREAT's mode applies to new files only; an older, wider file is narrowed here.
    os.fchmod(descriptor, FILE_MODE)
    return descriptor


def write_private(path: Path, data: str | bytes) -> None:
    """Replace the contents of `path` (mode 0600) with `data`."""
    descriptor = _open(path, os.O_WRONLY | os.O_TRUNC)
    if isinstance(data, str):
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(data)
    else:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)


def open_private_log(path: Path) -> TextIO:
    """`path` opened for appending text, mode 0600."""
    return os.fdopen(_open(path, os.O_WRONLY | os.O_APPEND), "a", encoding="utf-8")


def private_sqlite(path: Path) -> Path:
    """Make the database file 0600 before SQLite opens it, so the WAL and shared-memory files
    SQLite creates beside it get 0600 too; companions left by an earlier run are narrowed."""
    os.close(_open(path, os.O_RDWR))
    for suffix in _SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.chmod(FILE_MODE)
    return path
