"""Atomic file writes for b2store's caches, and the removal of what killed writers left.

Contract: :func:`atomic_write` writes to a new temporary file next to the target (a random
name starting with the caller's prefix and ending in ``.tmp``, created with ``O_EXCL``, so no
other writer's file is ever reused), then ``os.replace``-s it onto the target: readers see the
old file, the complete new one, or none. On any error the temporary file is removed and the
error raised. A writer killed before its rename leaves its temporary file:
:func:`is_stale_temp` tells those older than :data:`STALE_TEMP_SECONDS` (the callers remove
them as they walk their folders, :func:`remove_stale_temps` for one folder).

Permissions: a ``private`` file is created readable by its owner only (mode 0600); else as
the umask allows (0666 minus the umask). Each cache says which of its files are private.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "STALE_TEMP_SECONDS",
    "TEMP_SUFFIX",
    "atomic_write",
    "is_stale_temp",
    "remove_stale_temps",
]

#: A temporary file older than this was left by a writer that died (a killed dask worker).
STALE_TEMP_SECONDS = 3600.0
#: Suffix of every temporary file :func:`atomic_write` creates.
TEMP_SUFFIX = ".tmp"


def _create_temp(folder: Path, prefix: str, private: bool) -> tuple[int, Path]:
    """A new temporary file in ``folder`` (descriptor, path), never an existing one."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = folder / f"{prefix}{secrets.token_hex(8)}{TEMP_SUFFIX}"
        with contextlib.suppress(FileExistsError):
            return os.open(tmp, flags, 0o600 if private else 0o666), tmp
    raise FileExistsError(f"{folder}: no free temporary file name (prefix {prefix!r})")


@contextlib.contextmanager
def atomic_write(target: Path, *, prefix: str, private: bool) -> Iterator[BinaryIO]:
    """A binary file to write, put in place at ``target`` when the ``with`` block ends.

    Parameters
    ----------
    target
        The file to (re)place; its folder must exist.
    prefix
        Name prefix of the temporary file (see :func:`is_stale_temp`).
    private
        Create the file readable by its owner only (mode 0600), whatever the umask.

    Raises
    ------
    OSError
        When the temporary file cannot be created, written or renamed (it is removed first).
    """
    fd, tmp = _create_temp(target.parent, prefix, private)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def is_stale_temp(name: str, mtime: float, prefix: str, now: float | None = None) -> bool:
    """Whether a file named ``name``, modified at ``mtime``, is a temporary file of ``prefix``
    left by a writer killed more than :data:`STALE_TEMP_SECONDS` ago."""
    if not name.startswith(prefix):
        return False
    return (time.time() if now is None else now) - mtime > STALE_TEMP_SECONDS


def remove_stale_temps(folder: Path, prefix: str) -> None:
    """Remove the stale temporary files of ``prefix`` directly in ``folder`` (errors ignored:
    another process may remove them first)."""
    now = time.time()
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(OSError):
                    if is_stale_temp(entry.name, entry.stat().st_mtime, prefix, now):
                        os.unlink(entry.path)
