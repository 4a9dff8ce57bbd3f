"""Process-wide state of b2h5's chunk reads, shared by every ``HDF5FileSystem`` of the process.

Contract
--------
* ``_FDS`` (:class:`_DescriptorPool`): at most 128 idle read-only descriptors of local files,
  keyed by path and indexed inode, so many open stores do not run out of descriptors.
* ``_BLOCKS`` (:class:`_BlockCache`): one LRU of at most ``READAHEAD_BLOCKS`` read-ahead blocks
  of remote files; concurrent readers of a block wait for one fetch.
* :func:`_shared_handle`: a lock per target filesystem whose open files share one file object
  (fsspec's ``tar::``, also under caching layers), else a no-op.
* One ``_FDS`` and one ``_BLOCKS`` per process (never rebound: importing them by name is
  safe); a forked child starts them and the handle locks afresh (``os.register_at_fork``
  hooks, registered once at import).
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections import OrderedDict
from typing import Any

import fsspec

#: Blocks kept by all filesystems of a process together (each kept 16 of its own: 8 MiB per
#: file, 8 GiB for an ``open_mfdataset`` of a thousand remote files).
READAHEAD_BLOCKS = 64

_HANDLE_LOCKS: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
_HANDLE_GUARD = threading.Lock()


def _shared_handle(fs: Any) -> contextlib.AbstractContextManager[Any]:
    """A lock for a target filesystem whose open files share one file object, else a no-op.

    fsspec's tar:: opens every member on the archive's one file object, and each read seeks it
    then reads: reads in several threads (zarr's) got each other's bytes, silently.
    """
    from fsspec.implementations.tar import TarFileSystem

    layer: Any = fs
    for _ in range(8):  # also under caching layers (simplecache::tar://: concurrent downloads)
        if isinstance(layer, TarFileSystem):
            with _HANDLE_GUARD:
                return _HANDLE_LOCKS.setdefault(layer, threading.Lock())
        layer = _wrapped(layer)
        if layer is None:
            break
    return contextlib.nullcontext()


def _wrapped(fs: Any) -> fsspec.AbstractFileSystem | None:
    """The filesystem a caching layer (simplecache::, blockcache::, filecache::) wraps, or
    None when ``fs`` wraps none."""
    inner = getattr(fs, "fs", None)
    return inner if isinstance(inner, fsspec.AbstractFileSystem) and inner is not fs else None


class _DescriptorPool:
    """Read-only descriptors of local files, shared by every filesystem of the process.

    Each filesystem used to keep its own descriptor until it was garbage-collected, so
    ``xr.open_mfdataset`` over a few hundred files (one store each) ran out of descriptors
    (``OSError: [Errno 24] Too many open files``; macOS allows 256 by default). At most
    ``maxsize`` idle descriptors stay open (least recently used closed first); one in use by
    a read is never closed. Keyed by path and the inode the index was built from, so a
    descriptor never serves another version of a replaced file.
    """

    def __init__(self, maxsize: int = 128) -> None:
        self.maxsize = maxsize
        self._lock = threading.Lock()
        self._open: OrderedDict[tuple[str, int | None], list[int]] = OrderedDict()  # [fd, users]

    def acquire(self, url: str, ino: int | None, opener: Any) -> int:
        """A descriptor of ``url`` (opened by ``opener(url)`` if none is open); pair with
        :meth:`release`."""
        key = (url, ino)
        with self._lock:
            entry = self._open.get(key)
            if entry is not None:
                entry[1] += 1
                self._open.move_to_end(key)
                return entry[0]
        fd = opener(url)
        with self._lock:
            entry = self._open.get(key)
            if entry is None:
                # an idle descriptor of another file once at this path (replaced since) would
                # keep that file's disk space until 128 other files pushed it out
                for k in [k for k, (_, users) in self._open.items() if k[0] == url and not users]:
                    with contextlib.suppress(OSError):
                        os.close(self._open.pop(k)[0])
                self._open[key] = [fd, 1]
                self._trim()
                return fd
            entry[1] += 1
        os.close(fd)  # another thread opened it meanwhile
        return entry[0]

    def release(self, url: str, ino: int | None) -> None:
        with self._lock:
            entry = self._open.get((url, ino))
            if entry is not None:
                entry[1] -= 1
            self._trim()

    def _trim(self) -> None:
        excess = len(self._open) - self.maxsize
        if excess <= 0:
            return
        for key in [k for k, (_, users) in self._open.items() if not users][:excess]:
            with contextlib.suppress(OSError):
                os.close(self._open.pop(key)[0])

    def clear(self) -> None:
        """Close every idle descriptor."""
        with self._lock:
            for key in [k for k, (_, users) in self._open.items() if not users]:
                with contextlib.suppress(OSError):
                    os.close(self._open.pop(key)[0])

    def _after_fork(self) -> None:
        # the child has copies of the parent's descriptors and maybe a lock held by a thread
        # that does not exist here: start afresh
        self._lock = threading.Lock()
        for fd, _ in self._open.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._open = OrderedDict()


class _BlockCache:
    """Read-ahead blocks of remote files: one LRU for the whole process, at most ``maxsize``
    blocks; concurrent readers of one block wait for a single fetch."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._lock = threading.Lock()
        self._data: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()
        self._fetching: dict[tuple[str, str, int], threading.Lock] = {}

    def get(self, key: tuple[str, str, int], fetch: Any) -> bytes:
        with self._lock:
            data = self._data.get(key)
            if data is not None:
                self._data.move_to_end(key)
                return data
            lock = self._fetching.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                data = self._data.get(key)
            if data is not None:
                return data
            try:
                data = fetch()
                with self._lock:
                    self._data[key] = data
                    while len(self._data) > self.maxsize:
                        self._data.popitem(last=False)
            finally:
                with self._lock:
                    self._fetching.pop(key, None)
        return data

    def nbytes(self) -> int:
        with self._lock:
            return sum(len(b) for b in self._data.values())

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._fetching = {}


def _after_fork() -> None:
    """Start the forked child's handle locks afresh (one may have been held at the fork)."""
    global _HANDLE_GUARD
    _HANDLE_GUARD = threading.Lock()


_FDS = _DescriptorPool()
_BLOCKS = _BlockCache(READAHEAD_BLOCKS)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_FDS._after_fork)
    os.register_at_fork(after_in_child=_BLOCKS._after_fork)
    os.register_at_fork(after_in_child=_after_fork)
