"""A base for b2store's read-only fsspec filesystems: every write refused with ``PermissionError``.

Contract: fsspec's defaults for the write operations raise a bare ``NotImplementedError`` (cp,
put, pipe) or silently do nothing (mkdir, makedirs, rmdir). Subclasses say in
:meth:`ReadOnlyAsyncFileSystem._read_only` what their store is and what to do instead; ``_open``
stays theirs (reading is what they implement). ``fs.get`` copies keys to local files through
their ``_cat_file``, ``_isdir`` and ``_exists``.
"""

from __future__ import annotations

import os
from typing import Any

from fsspec.asyn import AsyncFileSystem, get_loop
from fsspec.utils import isfilelike

__all__ = ["FSSPEC_OPTIONS", "ReadOnlyAsyncFileSystem"]

#: The options fsspec itself gives every filesystem (AbstractFileSystem, AsyncFileSystem, its
#: DirCache, the instance cache); zarr passes ``asynchronous=True``. Any other option b2store's
#: filesystems do not name is refused with a ``TypeError`` (a misspelt one would be ignored).
FSSPEC_OPTIONS = frozenset(
    {
        "asynchronous",
        "loop",
        "batch_size",
        "skip_instance_cache",
        "use_listings_cache",
        "listings_expiry_time",
        "max_paths",
        # fsspec.open(url, **kwargs) gives its file options to the filesystem's constructor
        # too; b2store's keys are read whole, so they change nothing
        "block_size",
        "cache_type",
        "cache_options",
    }
)


class ReadOnlyAsyncFileSystem(AsyncFileSystem):
    """An ``AsyncFileSystem`` whose write operations raise :meth:`_read_only`'s error.

    Usable in a forked child (``multiprocessing``'s "fork", ``os.fork``): fsspec's event-loop
    thread does not exist there, and fsspec refused any synchronous call of an instance made
    in the parent ("RuntimeError: This class is not fork-safe"), although the child gets a loop
    of its own. An instance on fsspec's shared loop moves to the child's; one given its own
    ``loop`` keeps fsspec's refusal.
    """

    def __init__(self, *args: Any, loop: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, loop=loop, **kwargs)
        self._shared_loop = loop is None

    @property
    def loop(self) -> Any:
        pid: int = self._pid  # type: ignore[has-type]
        if pid != os.getpid() and self._shared_loop and not self.asynchronous:
            self._loop = get_loop()  # the forked child's own fsspec loop thread
            self._pid = os.getpid()
        return super().loop

    async def _get_file(self, rpath: str, lpath: Any, **kwargs: Any) -> None:
        """Copy one key to a local file (``fs.get``: a local copy is a plain Zarr store).

        Directories become folders; a key that exists but reads as missing (an all-zero Blosc2
        chunk) is not written, so zarr fills it as it would here.
        """
        if await self._isdir(rpath):
            os.makedirs(lpath, exist_ok=True)
            return
        try:
            data = await self._cat_file(rpath)
        except FileNotFoundError:
            if not await self._exists(rpath):
                raise
            return
        if isfilelike(lpath):
            lpath.write(data)
            return
        with open(lpath, "wb") as fh:
            fh.write(data)

    def _read_only(self, what: str, path: Any) -> PermissionError:
        """The error for an attempt to ``what`` (e.g. "remove") ``path``."""
        raise NotImplementedError  # pragma: no cover - every subclass says its own

    async def _pipe_file(self, path: str, value: Any, *args: Any, **kwargs: Any) -> None:
        raise self._read_only("write", path)

    async def _put_file(self, lpath: str, rpath: str, *args: Any, **kwargs: Any) -> None:
        raise self._read_only("upload to", rpath)

    async def _cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        raise self._read_only("copy to", path2)

    async def _rm_file(self, path: str, **kwargs: Any) -> None:
        raise self._read_only("remove", path)

    async def _rm(self, path: Any, *args: Any, **kwargs: Any) -> None:
        raise self._read_only("remove", path)

    async def _mkdir(self, path: str, *args: Any, **kwargs: Any) -> None:
        raise self._read_only("create the directory", path)

    async def _makedirs(self, path: str, exist_ok: bool = False) -> None:
        if exist_ok and await self._isdir(path):
            return
        raise self._read_only("create the directory", path)

    def rmdir(self, path: str) -> None:
        raise self._read_only("remove the directory", path)
