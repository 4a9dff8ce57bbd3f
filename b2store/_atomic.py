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
The umask is read without changing it (``/proc/self/status`` on Linux; elsewhere
``os.umask`` set-and-restore under a lock), so other threads' new files keep their modes.

For the command line's outputs, :func:`part_path` gives a new ``.<name>.<pid>.<random>.part``
file or folder beside the output, with the permissions the umask gives new files and folders
(not ``mkstemp``'s 0600), and removes it unless the caller moved it into place, also
when an interrupt lands inside its creation (before its name was known: the process's own
``.part`` names are then removed by their prefix).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "STALE_TEMP_SECONDS",
    "TEMP_SUFFIX",
    "atomic_write",
    "is_stale_temp",
    "part_path",
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


@contextlib.contextmanager
def part_path(folder: str, name: str, *, directory: bool = False) -> Iterator[str]:
    """A new file (or, with ``directory``, folder) ``.<name>.<pid>.<random>.part`` in
    ``folder``, to write an output into and ``os.replace`` onto ``folder/name``; whatever is
    left at that path when the block ends (an error, Ctrl-C, SIGTERM turned into an interrupt)
    is removed.

    ``tempfile.mkstemp`` creates the file before it returns its name: an interrupt in between
    left a ``.part`` file nobody knew of (seen once in ~60 SIGTERMs). The name carries this
    process's id, so such a file is found by its prefix and removed too.
    """
    prefix = f".{name}.{os.getpid()}."
    path: str | None = None
    try:
        if directory:
            path = tempfile.mkdtemp(dir=folder, prefix=prefix, suffix=".part")
        else:
            fd, path = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".part")
            os.close(fd)
        # the output's usual permissions (mkstemp creates 0600, mkdtemp 0700)
        os.chmod(path, (0o777 if directory else 0o666) & ~_umask())
        yield path
    finally:
        if path is None:
            with contextlib.suppress(OSError):
                left = [e for e in os.listdir(folder) if e.startswith(prefix)]
                for entry in left:
                    if entry.endswith(".part"):
                        _remove(os.path.join(folder, entry))
        elif os.path.lexists(path):
            _remove(path)


#: serialises the os.umask(0) / os.umask(mask) read where /proc cannot tell the umask
_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask, read without changing it where the system can tell it.

    ``os.umask`` only reads the umask by setting another one: a thread creating a file between
    ``os.umask(0)`` and ``os.umask(mask)`` got it with mode 0666/0777. Linux >= 4.7 shows the
    umask as the ``Umask:`` line of ``/proc/self/status``; elsewhere (or when that line is
    missing) the set-and-restore is done under a lock, which serialises b2store's own reads.
    """
    mask = _proc_umask()
    if mask is not None:
        return mask
    with _UMASK_LOCK:
        mask = os.umask(0o077)  # the strictest mask meanwhile: never a world-writable file
        os.umask(mask)
    return mask


def _proc_umask(status: str = "/proc/self/status") -> int | None:
    """The ``Umask:`` (octal) of ``status``, or ``None`` when it cannot be read."""
    try:
        with open(status, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split(":", 1)[1].strip(), 8)
    except (OSError, ValueError):
        return None
    return None


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)
