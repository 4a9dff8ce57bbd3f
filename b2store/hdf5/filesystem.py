"""``HDF5FileSystem`` (protocol ``b2h5``): one HDF5 file presented as a read-only Zarr store.

Contract
--------
* The HDF5 file lives on any fsspec filesystem (the *target*). At construction it is opened once
  with h5py (local path, or an fsspec file object for remote targets) and indexed by
  :func:`b2store.hdf5.index.build_index`; h5py is then closed and never used again.
* Metadata keys (Zarr v3 by default, v2 with ``zarr_format=2``, consolidated) and chunk keys are
  answered from the index. A chunk key reads the chunk's raw bytes from the target with
  ``cat_file(url, start, end)``; unallocated chunks raise :class:`FileNotFoundError` (zarr fills
  them), and so do Blosc2 chunks that are special ZERO frames when the fill value is 0.
* ``cat`` of many keys coalesces neighbouring byte ranges into one ranged read each.
* Pickling carries the constructor arguments (fsspec's default) and the version of the file
  indexed. An unpickled copy (a dask worker's) indexes the file at its first use (rebuilt, or
  from the memory or sidecar cache, ``index_cache``), not at unpickling (distributed's
  scheduler unpickles every graph), and refuses to read a file replaced since the original
  indexed it: the copy serves the original's zarr metadata. The index is immutable, so one
  instance is safe to share between threads.
* Local files are read through a process-wide pool of at most 128 idle descriptors and remote
  ones through a process-wide LRU of read-ahead blocks: many open stores (``open_mfdataset``)
  do not run out of descriptors or hold memory per store.

This module holds the class (index loading and file versions, chunk serving, ``cat``
coalescing, listing); its process-wide helpers are private siblings: ``_options`` (argument
and target-path checks), ``_target_errors`` (what a failing target raises), ``_io_pools``
(descriptor pool, read-ahead block cache, shared-handle locks) and ``_build_guards`` (the
index build lock and garbage-collector pause).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import itertools
import os
import threading
import urllib.parse
import warnings
from pathlib import Path
from typing import Any, Literal

import fsspec
import numpy as np
from fsspec.core import has_magic
from fsspec.implementations.memory import MemoryFile

from b2store._chunk_origins import note_chunk
from b2store._readonly import ReadOnlyAsyncFileSystem
from b2store._zarrmeta import RenderedMeta
from b2store.errors import (
    AccessRefusedError,
    CodecError,
    NotRandomAccessError,
    TransferError,
    UnsupportedHDF5FeatureError,
)
from b2store.hdf5 import _build_guards
from b2store.hdf5 import cache as _cache
from b2store.hdf5._external import external_candidates
from b2store.hdf5._io_pools import _BLOCKS, _FDS, _shared_handle, _wrapped
from b2store.hdf5._io_pools import READAHEAD_BLOCKS as READAHEAD_BLOCKS
from b2store.hdf5._options import (
    _check_options,
    _check_regular_file,
    _check_view_options,
    _rfc8089_path,
)
from b2store.hdf5._target_errors import (
    _MISSING,
    _cause,
    _changed,
    _check_http_answer,
    _check_range,
    _CheckedFile,
    _gone,
    _http_status,
    _no_range_is_oserror,
    _replaced,
    _scrub,
    _target_error,
    _version_stamp,
)
from b2store.hdf5.index import (
    ChunkTable,
    FileIndex,
    build_index,
    open_local_file,
)

#: The error classes are b2store.errors' (also importable from here, where they were first).
__all__ = ["AccessRefusedError", "HDF5FileSystem", "NotRandomAccessError", "TransferError"]

_MEMORY = _cache.MemoryCache()
_INSTANCES = itertools.count()


#: Largest gap (bytes) between two chunks merged into one ranged read by :meth:`cat`.
MAX_GAP = 64 * 1024
#: Largest merged ranged read.
MAX_BLOCK = 64 * 2**20
#: Remote chunks up to this size are served from cached READAHEAD_BLOCK-byte aligned blocks.
READAHEAD_CHUNK = 64 * 1024
READAHEAD_BLOCK = 512 * 1024
# READAHEAD_BLOCKS, the size of the process-wide block cache, is _io_pools' (imported above)
#: Local chunks up to this size are read on the event loop (a pread), larger ones in a thread.
INLINE_READ = 2**20
#: Most chunk keys the v2 view lists for a dataset whose unallocated chunks it serves as fill
#: chunks (listing them all takes memory and time per key; beyond this listing raises).
MAX_LISTED_FILL_KEYS = 10**7


#: Most ranged HTTP requests in flight at once for one ``cat`` of many keys.
HTTP_CONCURRENCY = 32


def _is_http(fs: Any) -> bool:
    """Whether ``fs`` is fsspec's (aiohttp) HTTP filesystem, whose ranged reads b2h5 makes
    itself to check the answers (see :meth:`HDF5FileSystem._http_ranges`)."""
    return type(fs).__module__ == "fsspec.implementations.http" and all(
        hasattr(fs, a) for a in ("set_session", "encode_url", "kwargs", "loop")
    )


def _is_s3(fs: Any) -> bool:
    """Whether ``fs`` is s3fs' filesystem, whose ranged reads b2h5 makes itself to check
    them against the object's ``ETag`` (see :meth:`HDF5FileSystem._s3_ranges`)."""
    return type(fs).__module__.split(".")[0] == "s3fs" and all(
        hasattr(fs, a) for a in ("_call_s3", "split_path", "loop")
    )


def _gather_bounded(fs: Any, one: Any, reqs: list[tuple[Any, ...]]) -> list[Any]:
    """``await one(*q)`` for every ``q`` of ``reqs`` on async filesystem ``fs``'s event loop, at
    most :data:`HTTP_CONCURRENCY` at once: the results in order, or the exception each raised."""

    async def run() -> list[Any]:
        limit = asyncio.Semaphore(HTTP_CONCURRENCY)

        async def bounded(q: tuple[Any, ...]) -> Any:
            async with limit:
                return await one(*q)

        return await asyncio.gather(*(bounded(q) for q in reqs), return_exceptions=True)

    return list(fsspec.asyn.sync(fs.loop, run))


async def _read_upto(response: Any, n: int) -> bytes:
    """At most ``n`` bytes of an aiohttp response's body (a server ignoring ``Range`` sends
    the whole file: reading one byte more than asked is enough to tell)."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        part = await response.content.read(min(n - got, 2**20))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


#: Keys of a target's ``info()`` identifying a file's version, most trusted first. HTTP servers
#: without ETag or Last-Modified may send Content-MD5 or Digest; ``CRC`` is a zip member's,
#: ``created`` fsspec's memory filesystem's (a new one at each write).
_STAMPS = (
    "mtime",
    "ETag",
    "LastModified",
    "Last-Modified",
    "last_modified",
    "etag",
    "Content-MD5",
    "Digest",
    "CRC",
    "created",
)


def _storage_options() -> list[str]:
    """b2h5's own options: its constructor's keywords, less ``fo`` (the file, given as the URL)
    and ``file_version`` (set by pickling)."""
    params = inspect.signature(HDF5FileSystem.__init__).parameters
    return [p for p in params if p not in ("self", "fo", "kwargs", "file_version")]


def _local_identity(path: str) -> tuple[int, str]:
    """(size, stamp) of a local file: mtime, inode and ctime.

    mtime alone misses a rewrite that restores it (``cp -p``, ``rsync -t``, ``os.utime``); such
    a rewrite either makes a new inode (write + rename) or changes the ctime, which users
    cannot set.
    """
    st = os.stat(path)
    return st.st_size, f"mtime_ns={st.st_mtime_ns}|ino={st.st_ino}|ctime_ns={st.st_ctime_ns}"


def _stamp_field(stamp: str, name: str) -> str | None:
    """Field ``name`` of a ``"a=1|b=2"`` stamp (as :func:`_local_identity` writes them)."""
    for part in stamp.split("|"):
        key, _, value = part.partition("=")
        if key == name:
            return value
    return None


def _is_index(text: str) -> bool:
    """Whether ``text`` is a chunk coordinate as zarr writes it (``int()`` also takes ``"01"``,
    ``" 1"``, ``"+1"`` and ``"1_0"``)."""
    return text.isascii() and text.isdigit() and str(int(text)) == text


class HDF5FileSystem(ReadOnlyAsyncFileSystem):
    """An HDF5 file as a read-only Zarr store (fsspec protocol ``b2h5``).

    Parameters
    ----------
    fo
        Path or URL of the HDF5 file (``/data/f.h5``, ``file:///data/f.h5``, ``http://...``).
    target_protocol, target_options
        Protocol (overrides the one in ``fo``) and options of the filesystem holding the file.
    zarr_format
        3 (default) or 2: the metadata presented.
    unsupported
        ``"raise"`` (default), ``"warn"`` or ``"skip"``: what to do with datasets b2store cannot
        present (see :class:`b2store.errors.UnsupportedHDF5FeatureError`).
    follow_external_links
        Also present the targets of external links (default False).
    index_cache
        None (memory only), ``"auto"`` (sidecar files under ``~/.cache/b2store/hdf5-index``) or
        a folder path for the sidecar files.
    check_version
        True (default): a remote file is identified by its size and version (``ETag``,
        ``Last-Modified``, ``mtime``), and every read over HTTP or S3 is checked to be of the
        version indexed. False: by its size alone, for servers that give one file several
        versions (a load balancer in front of servers with their own copies); the index of
        such a file is then never cached (each new instance indexes the file again) and a
        file rewritten with the same size is not noticed. Local files are always checked.
    file_version
        Set by pickling: the version (size, modification stamp) of the file the pickled
        instance had indexed. Not used to open the file; it makes dask's tokens, which pickle
        the store, differ between versions of a rewritten file.

    Notes
    -----
    Picklable (by constructor arguments) and thread-safe (the index is immutable; reads go to
    the target filesystem). Selected for ``b2h5::`` URLs through the ``fsspec.specs`` entry
    point.
    """

    protocol = "b2h5"
    root_marker = ""
    #: No fsspec instance cache: a cached instance would keep serving the index of a file that
    #: has since been rewritten. Each instance stats the file and reuses the process-wide index
    #: cache (keyed by size and mtime, plus inode and ctime for local files), which costs well
    #: under a millisecond.
    cachable = False

    def __init__(
        self,
        fo: str = "",
        *,
        target_protocol: str | None = None,
        target_options: dict[str, Any] | None = None,
        zarr_format: int = 3,
        unsupported: Literal["raise", "warn", "skip"] = "raise",
        follow_external_links: bool = False,
        index_cache: str | Path | None = None,
        check_version: bool = True,
        file_version: str | None = None,
        **kwargs: Any,
    ) -> None:
        _check_options(kwargs, fo, target_protocol, target_options, accepted=_storage_options())
        super().__init__(**kwargs)
        _check_view_options(
            fo,
            zarr_format=zarr_format,
            unsupported=unsupported,
            follow_external_links=follow_external_links,
            index_cache=index_cache,
            check_version=check_version,
        )
        if not isinstance(fo, str | Path) or not str(fo):
            raise TypeError(
                f"Expected the HDF5 file's path or URL as fo. Got {fo!r} instead. In a URL the "
                "file follows '::' ('b2h5::/data/f.h5', 'b2h5::http://host/f.h5'; a key inside "
                "it goes before: 'b2h5://group/zarr.json::/data/f.h5'), not 'b2h5:///data/f.h5'."
            )
        opts = dict(target_options or {})
        self._target_pid = os.getpid()
        if target_protocol is not None:
            self._target = fsspec.filesystem(target_protocol, **opts)
            self.url: str = self._target._strip_protocol(str(fo))
        else:
            self._target, self.url = fsspec.core.url_to_fs(str(fo), **opts)
        self.zarr_format = zarr_format
        self.unsupported = unsupported
        self.follow_external_links = follow_external_links
        self.index_cache = index_cache
        self.check_version = bool(check_version)
        self._version = self._stamp = ""
        #: the size of the file indexed, as its target reported it (None when it did not)
        self._size: int | None = None
        self._dirs: dict[str, set[str]] | None = None
        self._local = self._is_local()
        if self._local and (target_protocol is not None or str(fo).startswith("file:")):
            # a file: URL (fsspec strips "file://" of a chained b2h5::file://... before b2h5
            # sees it); a plain path is a file name, "%20" and all
            self.url = _rfc8089_path(self.url)
        self._load_lock = threading.Lock()
        self._replaced = False
        #: fields of the indexed files' stamps, by (file, field) (see _indexed_field)
        self._stamp_fields: dict[tuple[str, str], int | None] = {}
        # set by unpickling: the version of the file the original instance indexed
        self._origin = file_version
        self._index: FileIndex | None = None
        if file_version is None:
            self._index = self._load_index()
            for note in self._index.warnings:
                # at each open (each new instance), also of an index from a cache: a dataset
                # left out with unsupported="warn", or a group reached through too many links,
                # is no silent gap the second time a file is opened in a process
                warnings.warn(note, UserWarning, stacklevel=3)
        # else an unpickled copy: the file is indexed at its first use. dask's distributed
        # scheduler unpickles every task graph, and indexed every file in it (an
        # open_mfdataset over thousands of files) only to pickle it again for the workers;
        # a file deleted in the meantime failed the whole graph with a misleading "Error
        # during deserialization of the task graph" instead of a clear error at read time
        if not hasattr(self, "_scope"):  # set by _load_index for a file with a known version
            self._scope = f"instance-{next(_INSTANCES)}"

    @property
    def target_fs(self) -> fsspec.AbstractFileSystem:
        """The filesystem holding the file (made anew in a forked child).

        A forked child (``multiprocessing``'s "fork", ``os.fork``) cannot use the parent's
        HTTP/S3 filesystem: its session and event loop belong to threads that do not exist
        there (fsspec raised "RuntimeError: This class is not fork-safe" at the first chunk
        read of an array opened before the fork). The child makes its own from the same
        arguments, as unpickling does.
        """
        if self._target_pid != os.getpid():
            self._after_fork()
        return self._target

    def _after_fork(self) -> None:
        """Make this instance usable in a forked child: its own target filesystem and a fresh
        index lock (held at the fork by a thread that does not exist in the child)."""
        target = self._target
        # Any error: the constructor is the target filesystem's (aiohttp, botocore, gcsfs...
        # raise their own types). The parent's instance is kept: local and memory filesystems
        # work in the child, the others raise fsspec's own error at their first use there.
        with contextlib.suppress(Exception):
            target = type(target)(*target.storage_args, **target.storage_options)
        self._load_lock = threading.Lock()
        self._target, self._target_pid = target, os.getpid()

    # -- index --------------------------------------------------------------------------------
    @property
    def index(self) -> FileIndex:
        """The file's index (an unpickled copy builds or loads it at its first use)."""
        idx = self._index
        if idx is None:
            if self._target_pid != os.getpid():
                self._after_fork()
            with self._load_lock:
                if self._index is None:
                    self._index = self._load_origin()
                idx = self._index
        return idx

    def _load_origin(self) -> FileIndex:
        """The index of an unpickled copy, checked to be of the file the original indexed.

        The copy serves a zarr array whose metadata (shape, dtype, codecs) is the original's:
        a file deleted since raises an OSError (a FileNotFoundError would read as missing
        chunks, filled with the fill value), and a local file replaced by another one raises
        at the first chunk read, as in the original (see :meth:`_is_replaced`).
        """
        try:
            idx = self._load_index()
        except FileNotFoundError as exc:
            raise _gone(self.url, exc) from exc
        self._replaced = self._is_replaced(self._origin)
        return idx

    def __reduce__(self) -> Any:
        """Pickle by constructor arguments, with a local file's path made absolute.

        dask workers may run in another working directory, where a relative ``fo`` would name
        another file (or none). ``file_version`` records the file's version: dask names arrays
        by a hash of their pickled store, and two versions of a rewritten file must not share
        names (a cluster would serve the data it holds for the old one). A relative
        ``index_cache`` folder is made absolute too (workers would write and look for sidecar
        files in their own working directories).
        """
        fn, (cls, args, kwargs) = super().__reduce__()
        if self._local:
            if args:
                args = (self.url, *args[1:])
            else:
                kwargs = {**kwargs, "fo": self.url}
        folder = self._cache_dir()
        if folder is not None and self.index_cache != "auto":
            kwargs = {**kwargs, "index_cache": str(folder.absolute())}
        return fn, (cls, args, {**kwargs, "file_version": self._origin or self._version})

    def __dask_tokenize__(self) -> Any:
        """The file (target filesystem and URL), the view options and the version indexed; not
        fsspec's token, which also holds ``file_version`` after unpickling (a pickle round trip
        must keep the token). The target filesystem counts by its class and options: fsspec's
        ``_fs_token`` also hashes the creating thread and process, so a store built in zarr's I/O
        thread, a worker's copy or another process had another token (another dask name)."""
        target = self.target_fs
        return (
            type(self).__name__,
            f"{type(target).__module__}.{type(target).__qualname__}",
            target.storage_args,
            target.storage_options,
            self.url,
            self.zarr_format,
            self.unsupported,
            self.follow_external_links,
            self._origin or self._version,
        )

    def _is_local(self) -> bool:
        protocols = self.target_fs.protocol
        protocols = (protocols,) if isinstance(protocols, str) else tuple(protocols)
        return "file" in protocols or "local" in protocols

    def _identity(self, url: str) -> tuple[int | None, str | None]:
        """(size, modification stamp) of a target file; FileNotFoundError when it is missing."""
        if self._is_local():
            return _local_identity(url)
        try:
            info = self.target_fs.info(url)
        except Exception:
            # fsspec's caching layers (blockcache::, filecache::) answer info() by listing the
            # parent folder, which HTTP servers without directory pages refuse (404, or 403 as
            # nginx, Apache and S3 websites answer): ask the filesystem they wrap
            inner = _wrapped(self.target_fs)
            if inner is None:
                raise
            info = inner.info(url)
        if not self.check_version:
            return info.get("size"), None
        for name in _STAMPS:
            value = info.get(name)
            if value is None or (name == "mtime" and not value):
                continue  # mtime 0: a reproducible archive's member, no version at all
            return info.get("size"), f"{name}={value}"
        return info.get("size"), None

    def _source_stamp(self, url: str) -> str:
        """What identifies a source file of the index now ("missing" when it is gone)."""
        try:
            size, stamp = self._identity(url)
        except (FileNotFoundError, OSError):
            return "missing"
        return f"size={size}|{stamp}"

    def _sources_current(self, idx: FileIndex) -> bool:
        return all(self._source_stamp(u) == st for u, st in idx.sources)

    def _named(self, url: str) -> str:
        """``url`` as errors at open name it: with its scheme where the target strips it (an
        object store's ``bucket/key``: "HDF5 file not found: bucket/key" did not say where,
        and the hint for credentials could not name the ``storage_options`` key to use)."""
        fs = self.target_fs
        if self._local or "://" in url or _wrapped(fs) is not None or self._container()[0]:
            return url
        try:
            return str(fs.unstrip_protocol(url))
        except Exception:  # any target's own code: only a message's wording depends on it
            return url

    def _cache_key(self) -> tuple[str, bool]:
        try:
            size, stamp = self._identity(self.url)
        except Exception as exc:
            err = _target_error(self._named(self.url), exc, self._local)
            if err is not None:
                raise err from _cause(exc)
            if not isinstance(exc, FileNotFoundError):
                raise
            hint = ""
            pattern = self.url
            if pattern.startswith(("http://", "https://")):
                pattern = urllib.parse.urlsplit(pattern).path  # "?" starts the query there
            if has_magic(pattern):  # xr.open_mfdataset("b2h5::/data/*.h5", engine="zarr")
                hint = (
                    " (b2h5 presents one HDF5 file, it does not expand patterns: list the "
                    "files first, e.g. xr.open_mfdataset([f'b2h5::{p}' for p in "
                    "sorted(glob.glob(pattern))], engine='zarr'))"
                )
            shown = _scrub(self._named(self.url))
            raise FileNotFoundError(f"HDF5 file not found: {shown}{hint}") from None
        # a folder or named pipe given as the file is refused by _open_h5 (no index of it is
        # ever cached, so it always gets there)
        self._stamp = str(stamp)
        self._size = size if isinstance(size, int) else None
        protos = self.target_fs.protocol
        proto = protos if isinstance(protos, str) else protos[0]
        parts = [
            proto,
            self.url,
            f"size={size}",
            str(stamp),
            f"zarr={self.zarr_format}",
            f"unsupported={self.unsupported}",
            f"ext={self.follow_external_links}",
        ]
        container, known = self._container()
        if container:
            parts.append(container)
        return "|".join(parts), stamp is not None and known

    def _container(self) -> tuple[str, bool]:
        """(what the target's paths are relative to, whether that is identifiable).

        An archive (``zip::``, ``tar::``) names a member by its path inside it and a ``dir::``
        filesystem by its path below its root: members of the same name, size and stamp in
        two archives (reproducible tar archives give every member mtime 0) must not share an
        index. A local archive's own version is part of it; an archive given as a file object
        cannot be identified, so its members are not cached.
        """
        opts = getattr(self.target_fs, "storage_options", None) or {}
        where = {n: opts[n] for n in ("fo", "path") if n in opts}
        if not where:
            return "", True
        if not all(isinstance(v, str) for v in where.values()):
            return "", False
        parts = [f"{n}={v}" for n, v in sorted(where.items())]
        fo, inner = where.get("fo"), opts.get("target_protocol")
        if isinstance(fo, str) and inner in (None, "file", "local") and "://" not in fo:
            with contextlib.suppress(OSError):
                parts.append(_local_identity(fo)[1])
        return "in(" + "|".join(parts) + ")", True

    def _cache_dir(self) -> Path | None:
        if self.index_cache is None:
            return None
        if self.index_cache == "auto":
            return _cache.default_cache_dir()
        return Path(self.index_cache).expanduser()  # "~/..." made a folder named "~"

    def _load_index(self) -> FileIndex:
        """The file's index from the memory cache, the sidecar cache or built anew.

        A file whose target reports no version stamp is indexed anew by each instance: its
        size alone does not tell a rewritten file from the one indexed before.
        """
        key, stable = self._cache_key()
        self._version = key
        # read-ahead blocks are shared by the instances that see the same version of the file;
        # a file without a version stamp keeps them to this instance
        self._scope = key if stable else f"instance-{next(_INSTANCES)}"
        idx = _MEMORY.get(key) if stable else None
        folder = self._cache_dir() if stable else None
        if idx is not None and self._sources_current(idx):
            if folder is not None and not _cache.has_sidecar(folder, key):
                # indexed earlier in this process without a sidecar folder: write it now, so
                # that dask workers and later processes find it (docs/dask.md)
                _cache.save_sidecar(folder, key, idx, shared=self._world_readable())
            return idx
        idx = None
        if folder is not None:
            idx = _cache.load_sidecar(folder, key)
            if idx is not None and not self._sources_current(idx):
                idx = None  # a virtual dataset's source or a linked file changed: rebuild
        if idx is None:
            with _build_guards._gc_paused():
                idx = self._build()
            if folder is not None:
                _cache.save_sidecar(folder, key, idx, shared=self._world_readable())
        if stable:
            _MEMORY.put(key, idx)
        return idx

    def _world_readable(self) -> bool:
        """Whether every user may read the indexed file (local files and the files they link
        to or map): only then is its sidecar readable by others (see ``save_sidecar``)."""
        if not self._local:
            return False  # a remote file may need credentials
        try:
            return bool(os.stat(self.url).st_mode & 0o004)
        except OSError:
            return False

    def _open_h5(self, url: str, failures: list[BaseException] | None = None) -> Any:
        """(h5py file, target file object or None) of ``url``; a remote file's failed reads
        are recorded in ``failures`` (see :class:`_CheckedFile`)."""
        import h5py

        with contextlib.suppress(ImportError):
            import hdf5plugin  # noqa: F401  (filters h5py may need for compact/vlen reads)
        local = self._is_local()
        if local:
            _check_regular_file(url)  # also of external links and VDS sources
        try:
            if local:
                return open_local_file(url), None
            with _shared_handle(self.target_fs):  # simplecache::tar:// downloads at open
                try:
                    fh = self.target_fs.open(url, "rb", block_size=2**20, cache_type="readahead")
                except TypeError:
                    # a caching layer (fsspec's blockcache::) sets its own cache type, and
                    # later reads of the file must use the block size it was first opened
                    # with: its own
                    fh = self.target_fs.open(url, "rb")
            if getattr(fh, "size", 0) is None:
                # fsspec streams a file whose server reports no size or refuses ranges; h5py
                # failed with a bare "ValueError: Cannot seek streaming HTTP file"
                with contextlib.suppress(Exception):
                    fh.close()
                raise NotRandomAccessError(
                    f"{_scrub(url)}: the server reports no size for the file (no Content-Length) "
                    "or refuses range requests (Accept-Ranges: none), so the HDF5 file cannot be "
                    "read at its offsets (a block_size of 0 in the target's options does this "
                    "too). Download it first: b2h5::simplecache::<url>."
                )
            cache = getattr(fh, "cache", None)
            if cache is not None and _is_http(self.target_fs) and callable(cache.fetcher):
                # h5py's reads at open, checked as chunk reads are (_http_ranges)
                fs, size = self.target_fs, getattr(fh, "size", None)
                stamp = self._stamp if url == self.url else None

                def fetch(start: int, end: int) -> bytes:
                    (data,) = self._http_ranges(fs, [(url, start, end, size, stamp)])
                    if isinstance(data, BaseException):
                        raise data
                    return bytes(data)

                cache.fetcher = fetch
            if failures is not None:
                fh = _CheckedFile(fh, url, failures, _shared_handle(self.target_fs))
            try:
                return h5py.File(fh, "r"), fh
            except BaseException:
                with contextlib.suppress(Exception):
                    fh.close()
                raise
        except NotRandomAccessError:
            raise
        except FileNotFoundError as exc:
            err = _target_error(url, exc, self._is_local())
            if err is not None:
                raise err from _cause(exc)
            # an external link or a virtual dataset's source naming a missing file (the main
            # file's existence is checked first): not "truncated or not HDF5"
            raise FileNotFoundError(f"HDF5 file not found: {_scrub(url)}") from exc
        except (AccessRefusedError, TransferError):
            raise  # a failed read of the file (_CheckedFile), not a file that is no HDF5
        except OSError as exc:
            err = _target_error(url, exc, self._is_local())
            if err is None and failures:
                # h5py's own OSError at open drops the failed read (a timeout said "not a
                # readable HDF5 file (); check that it is complete")
                first = failures[0]
                if isinstance(first, AccessRefusedError | TransferError):
                    err = first
                else:
                    err = _target_error(url, first, self._is_local())
                if err is None and isinstance(first, OSError) and not isinstance(first, _MISSING):
                    err = first  # ours: a changed file, another range than asked (_http_ranges)
            if err is not None:
                raise err from _cause(exc)
            if isinstance(exc, PermissionError):
                raise  # the OS's "Permission denied", naming the file: not truncated, not "no HDF5"
            if self._head(url, 4) in (b"CDF\x01", b"CDF\x02", b"CDF\x05"):
                raise OSError(
                    f"{_scrub(url)} is a netCDF-3 (classic format) file, not HDF5: b2h5 reads "
                    "netCDF-4/HDF5 files only. Open it with xarray.open_dataset, or convert it "
                    "(nccopy -k netCDF-4)."
                ) from exc
            if "unable to lock file" in str(exc):
                raise OSError(
                    f"{_scrub(url)} is open for writing in another process ({exc}); read it once "
                    "the writer has closed it, or have the writer use SWMR mode (h5py: "
                    "libver='latest', f.swmr_mode = True) to read it while it writes"
                ) from exc
            if "marked open for writing" in str(exc):
                raise  # open_local_file's advice
            head = self._head(url, 4096)
            if (
                "multi driver" in str(exc)
                or "family" in str(exc)
                # the driver-info block of a family's first member or a split file's metadata
                or b"NCSAfami" in head
                or b"NCSAmult" in head
            ):
                parts = (
                    "and not one member of an HDF5 file split over several files (h5py's "
                    "driver='family', 'split' or 'multi'): b2h5 cannot read those; join the "
                    "members into one file first (h5repart for families, or copy with h5py)"
                )
            else:
                parts = "and really HDF5"
            raise OSError(
                f"{_scrub(url)} is not a readable HDF5 file ({exc}); check that it is complete "
                f"(not truncated) {parts}"
            ) from exc
        except Exception as exc:
            err = _target_error(url, exc, self._is_local())
            if err is None:
                raise
            raise err from _cause(exc)

    def _head(self, url: str, n: int) -> bytes:
        """The first ``n`` bytes of a target file (b"" when they cannot be read)."""
        try:
            with _shared_handle(self.target_fs):
                return bytes(self.target_fs.cat_file(url, start=0, end=n))[:n]
        except Exception:  # only used to word an error message
            return b""

    def _build(self) -> FileIndex:
        opened: list[Any] = []
        failures: list[BaseException] = []  # failed reads of remote files (_CheckedFile)
        externals: set[str] = set()

        def open_external(base: str, filename: str) -> tuple[Any, str]:
            candidates = external_candidates(base, filename)
            for i, target in enumerate(candidates):
                externals.add(target)  # also when missing: the index is rebuilt once it appears
                try:
                    f, fh = self._open_h5(target, failures)
                except (FileNotFoundError, AccessRefusedError) as exc:
                    # S3 answers 403 for a missing key to those who may not list the bucket
                    if i + 1 < len(candidates):
                        continue
                    if not isinstance(exc, FileNotFoundError):
                        failures.append(exc)
                    raise
                except (TransferError, NotRandomAccessError) as exc:
                    # a failed transfer is no missing file: the indexer would take it for a
                    # link that does not resolve
                    failures.append(exc)
                    raise
                opened.append((f, fh))
                return f, target
            raise AssertionError("unreachable")

        try:
            f, fh = self._open_h5(self.url, failures)
            opened.append((f, fh))
            with _build_guards._BUILD_LOCK, _no_range_is_oserror(self.url, self._local):
                try:
                    idx = build_index(
                        f,
                        url=self.url,
                        zarr_format=self.zarr_format,
                        unsupported=self.unsupported,
                        follow_external_links=self.follow_external_links,
                        open_external=open_external,
                    )
                except Exception as exc:
                    if not failures or exc is failures[0]:
                        raise
                    raise failures[0] from _cause(exc)
                if failures:  # a failed read the indexer took for a property of the file
                    raise failures[0]
            others = {t.url for t in idx.tables.values()} | externals
            others.update(u for t in idx.tables.values() for u in t.urls)
            others.discard(self.url)
            stamps = tuple(sorted((u, self._source_stamp(u)) for u in others))
            return dataclasses.replace(idx, sources=stamps)
        finally:
            failures.clear()  # each holds a traceback of this frame: no cycle for the GC
            for f2, fh2 in opened:
                f2.close()
                if fh2 is not None:
                    # fsspec's blockcache:: over a local file closes it, then fails setting
                    # LocalFileOpener's read-only ``closed``: the open failed after indexing
                    with contextlib.suppress(AttributeError):
                        fh2.close()

    @property
    def notes(self) -> tuple[str, ...]:
        """What the index left out (skipped attributes, links, unsupported datasets)."""
        return self.index.notes

    # -- paths --------------------------------------------------------------------------------
    @classmethod
    def _strip_protocol(cls, path: str | list[str]) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        # only the ``b2h5://`` URL form carries the protocol: fsspec splits ``::`` chains before
        # a key reaches the filesystem, and an HDF5 name may start with "b2h5::" (stripping it
        # read another node's keys: missing chunks, filled silently)
        return str(path).removeprefix("b2h5://").strip("/")

    def _locate(self, path: str) -> tuple[ChunkTable, int]:
        """(table, linear chunk index) of a chunk key; FileNotFoundError when not a chunk key."""
        tables = self.index.tables
        if self.zarr_format == 3:
            parts = path.split("/")
            for i in range(len(parts) - 1, -1, -1):
                if parts[i] != "c":
                    continue
                prefix = "/".join(parts[:i])
                table = tables.get(prefix)
                if table is None or len(parts) - i - 1 != len(table.grid):
                    continue
                return table, self._linear(table, parts[i + 1 :], path)
        else:
            prefix, _, name = path.rpartition("/")
            table = tables.get(prefix)
            if table is not None:
                coords = name.split(".") if table.grid else ([] if name == "0" else ["x"])
                return table, self._linear(table, coords, path)
        raise FileNotFoundError(path)

    @staticmethod
    def _linear(table: ChunkTable, parts: list[str], path: str) -> int:
        """Linear chunk index of a key's coordinates (only as zarr writes them: other spellings
        are never listed, so they must not exist either)."""
        if not all(_is_index(p) for p in parts):
            raise FileNotFoundError(path)
        try:
            return table.linear(tuple(int(p) for p in parts))
        except ValueError:
            raise FileNotFoundError(path) from None

    # -- reading ------------------------------------------------------------------------------
    def _finish(self, table: ChunkTable, row: int, raw: bytes, path: str) -> bytes:
        size = int(table.sizes[row])
        if len(raw) != size:
            raise OSError(
                f"{_scrub(table.url_of(row))}: chunk {path!r} is truncated: read {len(raw)} of "
                f"{size} bytes at offset {int(table.offsets[row])} (is the HDF5 file complete?)"
            )
        if table.zero_skip:
            from b2store.codecs._blosc2frame import frame_special

            try:
                special = frame_special(raw)
            except CodecError as err:  # a corrupt frame fails here, before any decoder
                raise CodecError(f"{self._chunk_where(table, row, path)}: {err}") from None
            if special == 1:
                raise FileNotFoundError(path)
        if table.masked:
            from b2store.hdf5.filters import frame_chunk

            raw = frame_chunk(raw, int(table.masks[row]))
        elif table.pad_to and len(raw) < table.pad_to:
            raw = raw + bytes(table.pad_to - len(raw))
        return raw

    def chunk_where(self, path: str) -> str:
        """``<file>: chunk '<key>'`` for a message about chunk key *path*, with ``(stored in
        <file>)`` when another file holds its bytes (a virtual dataset's source, an external
        link's target): the view's own file has no such chunk to look at."""
        try:
            table, lin = self._locate(path)
        except FileNotFoundError:
            return f"{_scrub(self.url)}: chunk {path!r}"
        return self._chunk_where(table, table.find(lin), path)

    def _chunk_where(self, table: ChunkTable, row: int, path: str) -> str:
        """:meth:`chunk_where` of row *row* of *table* (``-1``: no stored chunk), saying so
        when the local file was changed since it was indexed (rewritten in place, as
        ``h5py.File(path, "w")`` does: same inode, chunks elsewhere)."""
        where = f"{_scrub(self.url)}: chunk {path!r}"
        held = table.url_of(row) if row >= 0 else self.url
        if held != self.url:
            where = f"{where} (stored in {_scrub(held)})"
        if self._local and self._stamp and self._changed_locally(held):
            where += f" (the file {_scrub(held)} has changed since b2h5 indexed it: open it again)"
        return where

    def _changed_locally(self, url: str) -> bool:
        """Whether local file *url* has another size or mtime than when it was indexed (asked
        on error paths only)."""
        now = self._source_stamp(url)
        if now == "missing":
            return False  # a file gone says so itself when read
        if url == self.url:
            then = f"size={self._size}|{self._stamp}"
        else:
            then = dict(self.index.sources).get(url, "")
        return any(
            _stamp_field(then, f) not in (None, "None", _stamp_field(now, f))
            for f in ("size", "mtime_ns")
        )

    def _chunk(self, path: str) -> bytes:
        table, lin = self._locate(path)
        row = table.find(lin)
        if row < 0:
            if lin in table.inline:
                return table.inline[lin]
            if table.fill_chunk is not None:
                return table.fill_chunk
            raise FileNotFoundError(path)
        raw = self._read(table.url_of(row), int(table.offsets[row]), int(table.sizes[row]))
        # noted: a codec that cannot decode these bytes names the file and key (zarr does not)
        return note_chunk(self._finish(table, row, raw, path), self, path)

    def _read(self, url: str, start: int, size: int) -> bytes:
        """``size`` bytes at ``start`` of the target file (one ``pread`` for local files).

        A target file that has gone since the index was built raises :class:`OSError`, never
        :class:`FileNotFoundError`: zarr takes that for an unwritten chunk and fills it.
        """
        if self._replaced and url == self.url:
            raise _replaced(url)
        try:
            return self._read_target(url, start, size)
        except _MISSING as exc:
            raise _gone(url, exc) from _cause(exc)
        except Exception as exc:
            err = _target_error(url, exc, self._is_local())
            if err is None:
                raise
            raise err from _cause(exc)

    def _read_target(self, url: str, start: int, size: int) -> bytes:
        if not self._local:
            if size <= READAHEAD_CHUNK:
                return self._read_ahead(url, start, size)
            return self._remote_range(url, start, start + size)
        ino = self._indexed_inode(url)
        fd = _FDS.acquire(url, ino, lambda u: self._open_indexed(u, ino))
        try:
            if not hasattr(os, "pread"):  # Windows: no shared-offset-free read; open per call
                with open(url, "rb") as fh:
                    fh.seek(start)
                    return fh.read(size)
            return os.pread(fd, size, start)
        finally:
            _FDS.release(url, ino)

    def _indexed_field(self, url: str, name: str) -> int | None:
        """Integer field ``name`` (``ino``, ``size``) of the stamp target file ``url`` had when
        it was indexed (None when unknown); parsed once per file and field: this runs for
        every chunk read."""
        fields = self._stamp_fields
        if (url, name) not in fields:
            stamp = self._stamp if url == self.url else dict(self.index.sources).get(url, "")
            value = _stamp_field(stamp, name)
            fields[url, name] = int(value) if value is not None and value.isdigit() else None
        return fields[url, name]

    def _indexed_inode(self, url: str) -> int | None:
        """The inode local file ``url`` had when it was indexed (None when unknown)."""
        return self._indexed_field(url, "ino")

    def _is_replaced(self, version: str | None) -> bool:
        """Whether the file a pickled instance indexed (its ``file_version``) has been replaced
        by another one at its path (a dask worker's copy then indexed the other file, and
        read it for a zarr array whose shape, dtype and codecs are the old file's).

        Local files: another inode with the same size and mtime is taken for a copy of the
        same file (a worker node's staged copy, ``rsync -t``); SWMR appends keep the inode.
        Remote files: any change of size or version stamp (ETag, Last-Modified).
        """
        if not version:
            return False
        if not self._local:  # size and ETag / Last-Modified (a remote file has no inode)
            return version != self._version
        head = f"{self.url}|"
        if head not in version:
            return False
        then = version.split(head, 1)[1]
        ino = _stamp_field(then, "ino")
        if ino is None or ino == _stamp_field(self._stamp, "ino"):
            return False
        now = self._version.split(head, 1)[-1]
        return any(_stamp_field(then, f) != _stamp_field(now, f) for f in ("size", "mtime_ns"))

    @staticmethod
    def _open_indexed(url: str, ino: int | None) -> int:
        """A descriptor of local file ``url``, checked to be the file that was indexed.

        Descriptors are opened at the first chunk read. A file replaced by another one in
        the meantime (written elsewhere and renamed over it, as ``rsync`` and atomic writers
        do) has its chunks elsewhere: reading it with this index gave wrong values silently.
        So did a dask worker's copy of the filesystem, which indexes the file anew, for a
        zarr array whose metadata (shape, dtype, codecs) was read from the old file.
        """
        fd = os.open(url, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        if ino is not None and os.fstat(fd).st_ino != ino:
            os.close(fd)
            raise _replaced(url)
        return fd

    def _remote_range(self, url: str, start: int, end: int) -> bytes:
        """Bytes ``start:end`` of a remote target file (fewer at its end)."""
        (data,) = self._remote_ranges([url], [start], [end])
        if isinstance(data, BaseException):
            raise data
        return self._check_short(url, start, end, _check_range(url, start, end, data))

    def _remote_ranges(self, urls: list[str], starts: list[int], ends: list[int]) -> list[Any]:
        """Bytes ``start:end`` of remote target files, or the exception each read raised;
        over HTTP checked to be the ranges asked of the files as indexed."""
        fs = self.target_fs
        checked = self._http_ranges if _is_http(fs) else self._s3_ranges if _is_s3(fs) else None
        if checked is not None:
            reqs = [
                (u, s, e, *self._expected(u)) for u, s, e in zip(urls, starts, ends, strict=True)
            ]
            return checked(fs, reqs)
        with _shared_handle(fs):
            return list(fs.cat_ranges(urls, starts, ends, on_error="return"))

    def _expected(self, url: str) -> tuple[int | None, str | None]:
        """(size, version stamp) target file ``url`` had when it was indexed (None: unknown)."""
        if url == self.url:
            return self._size, self._stamp or None
        sources = dict(self._index.sources) if self._index is not None else {}
        return self._indexed_field(url, "size") if url in sources else None, sources.get(url)

    @staticmethod
    def _http_ranges(
        fs: Any, reqs: list[tuple[str, int, int, int | None, str | None]]
    ) -> list[Any]:
        """Ranged GETs ``(url, start, end, size, stamp)`` over fsspec's HTTP filesystem ``fs``:
        the bytes of each, or the exception it raised.

        fsspec's ``cat_file`` returns any body: a 206 for another range than asked, or the
        chunks of a file rewritten on the server since it was indexed, read as wrong values
        silently. Each answer's status, ``Content-Range``, ``ETag`` and ``Last-Modified`` are
        checked (:func:`_check_http_answer`) at no extra request; ``Accept-Encoding:
        identity`` keeps byte ranges of the file itself (not of a compressed encoding).
        """

        async def one(url: str, start: int, end: int, size: int | None, stamp: str | None) -> bytes:
            kw = dict(fs.kwargs)
            headers = dict(kw.pop("headers", None) or {})
            headers["Range"] = f"bytes={start}-{end - 1}"
            headers["Accept-Encoding"] = "identity"
            session = await fs.set_session()
            async with session.get(fs.encode_url(url), headers=headers, **kw) as r:
                if r.status in (404, 410):  # 410 Gone: as fsspec's own reads take it
                    raise FileNotFoundError(url)
                if r.status != 416:
                    r.raise_for_status()
                data = await _read_upto(r, end - start + 1) if r.status != 416 else b""
                return _check_http_answer(url, start, end, r.status, r.headers, data, size, stamp)

        return _gather_bounded(fs, one, reqs)

    @staticmethod
    def _s3_ranges(fs: Any, reqs: list[tuple[str, int, int, int | None, str | None]]) -> list[Any]:
        """Ranged ``GetObject`` calls ``(url, start, end, size, stamp)`` over s3fs' filesystem
        ``fs``: the bytes of each, or the exception it raised.

        s3fs' ``cat_file`` reads whatever the object holds now: an object overwritten after it
        was indexed gave the new object's bytes at the old chunk offsets (wrong values, or the
        new file's values under the old metadata), silently. Each request carries ``If-Match``
        with the ``ETag`` indexed (unless s3fs is told the server ignores it,
        ``local_expiry_check``), and each answer's ``ETag`` and ``Content-Range`` are checked
        as over HTTP (:func:`_check_http_answer`).
        """

        async def one(url: str, start: int, end: int, size: int | None, stamp: str | None) -> bytes:
            if end <= start:
                return b""
            bucket, key, version = fs.split_path(url)
            kw: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": f"bytes={start}-{end - 1}"}
            if version:
                kw["VersionId"] = version
            expected = _version_stamp(stamp)
            server_checks = not getattr(fs, "local_expiry_check", False)
            if expected is not None and expected[0] == "ETag" and server_checks:
                kw["IfMatch"] = expected[1]
            refused: int | None = None  # 412 (If-Match failed) or 416 (range past the end)
            try:
                resp = await fs._call_s3("get_object", **kw)
            except Exception as exc:
                refused, _ = _http_status(exc)
                if refused not in (412, 416) or (refused == 412 and expected is None):
                    raise
            if refused == 412 and expected is not None:  # raised out of the handler: not
                raise _changed(  # chained to the 412
                    url,
                    f"ETag {expected[1]} when indexed, another one now",
                    version_header=True,
                )
            if refused == 416:
                return _check_http_answer(url, start, end, 416, {}, b"", size, stamp)
            try:
                data = await resp["Body"].read()
            finally:
                resp["Body"].close()
            status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode", 206)
            headers = {"ETag": resp.get("ETag") or ""}
            if resp.get("ContentRange"):
                headers["Content-Range"] = resp["ContentRange"]
            return _check_http_answer(url, start, end, status, headers, data, size, stamp)

        return _gather_bounded(fs, one, reqs)

    def _file_size(self, url: str) -> int | None:
        """The size target file ``url`` had when it was indexed (None when unknown)."""
        return self._size if url == self.url else self._indexed_field(url, "size")

    def _check_short(self, url: str, start: int, end: int, data: bytes) -> bytes:
        """``data``, after checking that a ranged read gave every byte the file has there.

        A body cut short without the client noticing (no ``Content-Length``: chunked or
        close-delimited answers, proxies) gave a short read-ahead block, which was cached:
        every chunk in its missing part then failed as "truncated (is the HDF5 file
        complete?)" until the block left the cache, also once the network was fine again.
        """
        size = self._file_size(url)
        want = end - start if size is None else min(end, size) - start
        if size is not None and len(data) < want:
            raise TransferError(
                f"{_scrub(url)}: asked for bytes {start}-{start + want - 1} ({want} bytes), got "
                f"{len(data)}: the connection was cut, or the file is shorter than the "
                f"{size} bytes it had when b2h5 indexed it. Try again; if the file changed, "
                "open it again."
            )
        return data

    def _read_ahead(self, url: str, start: int, size: int) -> bytes:
        """Small remote chunks come from aligned READAHEAD_BLOCK blocks, fetched once each.

        Neighbouring small chunks (many-chunk datasets, netCDF coordinates) then cost one
        ranged request per block instead of one per chunk. Concurrent readers of one block
        wait for a single fetch; a small LRU keeps the last blocks.
        """
        first, last = start // READAHEAD_BLOCK, (start + size - 1) // READAHEAD_BLOCK
        parts = [self._block(url, b) for b in range(first, last + 1)]
        blob = parts[0] if len(parts) == 1 else b"".join(parts)
        a = start - first * READAHEAD_BLOCK
        return blob[a : a + size]

    def _block(self, url: str, index: int) -> bytes:
        start = index * READAHEAD_BLOCK
        return _BLOCKS.get(
            (self._scope, url, index),
            lambda: self._remote_range(url, start, start + READAHEAD_BLOCK),
        )

    def _chunk_range(self, path: str, start: int | None, end: int | None) -> bytes:
        """``chunk[start:end]`` of a chunk key, reading only that byte range when possible.

        Plain stored chunks (no filter-mask reframing, no zero padding) are read with one
        ``pread`` (or ranged request) of just the range; zarr's partial decoding asks for the
        frame header, the block-start table and the touched blocks this way. A Blosc2 chunk
        that is a special ZERO frame stays a missing key whatever range is asked for.
        """
        table, lin = self._locate(path)
        return self._range_of(path, table, table.find(lin), start, end)

    def _range_of(
        self, path: str, table: ChunkTable, row: int, start: int | None, end: int | None
    ) -> bytes:
        """:meth:`_chunk_range` once the key's table and row are known."""
        if row < 0 or table.masked or table.pad_to:
            return self._chunk(path)[start:end]
        size = int(table.sizes[row])
        a, b, _ = slice(start, end).indices(size)
        if b <= a:
            return b""
        url, offset = table.url_of(row), int(table.offsets[row])
        raw = self._read(url, offset + a, b - a)
        if len(raw) != b - a:
            raise OSError(
                f"{_scrub(url)}: chunk {path!r} is truncated: read {len(raw)} of {b - a} bytes "
                f"at offset {offset + a} (is the HDF5 file complete?)"
            )
        if table.zero_skip and a == 0:
            # a range starting at 0 is how readers begin: answer "missing" for ZERO frames as
            # a whole read would (later ranges of such a tiny frame are its real bytes anyway)
            from b2store.codecs._blosc2frame import frame_special

            with contextlib.suppress(CodecError):  # undecidable prefix: the decoder checks
                if frame_special(raw) == 1:
                    raise FileNotFoundError(path)
        return raw

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        """Bytes of one metadata or chunk key (optionally a slice of them).

        A slice of a stored chunk reads only those bytes from the target (see
        :meth:`_chunk_range`).
        """
        path = self._strip_protocol(path)
        data = self.index.meta.get(path)
        if data is None:
            if start is not None or end is not None:
                return self._chunk_range(path, start, end)
            data = self._chunk(path)
        if start is None and end is None:
            return data
        return data[start:end]

    async def _indexed(self) -> FileIndex:
        """:attr:`index`, built (by an unpickled copy) in a thread: not on the event loop,
        zarr's single I/O thread, where it stalled every other store's reads meanwhile."""
        if self._index is not None:
            return self._index
        return await asyncio.to_thread(lambda: self.index)

    async def _cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        await self._indexed()
        sp = self._strip_protocol(path)
        if sp in self.index.meta:
            if self._meta_size(sp) > INLINE_READ:
                # a group's consolidated document is assembled at request (the root's holds
                # every node's metadata): not on the event loop, zarr's single I/O thread
                return await asyncio.to_thread(self.cat_file, sp, start, end)
            return self.cat_file(sp, start, end)
        table, lin = self._locate(sp)
        row = table.find(lin)
        if row < 0:
            return self.cat_file(sp, start, end)
        nbytes = int(table.sizes[row])
        if (start is not None or end is not None) and not (table.masked or table.pad_to):
            a, b, _ = slice(start, end).indices(nbytes)
            nbytes = max(b - a, 0)
        if self._local and nbytes <= INLINE_READ:
            return self.cat_file(sp, start, end)
        return await asyncio.to_thread(self.cat_file, sp, start, end)

    async def _cat_ranges(
        self,
        paths: list[str],
        starts: list[int | None] | int | None,
        ends: list[int | None] | int | None,
        max_gap: int | None = None,
        on_error: str = "return",
        **kwargs: Any,
    ) -> list[Any]:
        """Several byte ranges of keys in one call (zarr's ``get_partial_values``).

        Local files: one ``pread`` per range, on the event loop when small, else in one thread.
        ``max_gap`` is in fsspec's signature and not used: ranges are not merged, each is read
        by itself (small remote ones through the read-ahead block cache, which serves ranges
        near each other from one request).
        """
        await self._indexed()
        n = len(paths)
        starts_l = starts if isinstance(starts, list) else [starts] * n
        ends_l = ends if isinstance(ends, list) else [ends] * n
        if len(starts_l) != n or len(ends_l) != n:
            raise ValueError(
                f"Expected as many starts and ends as paths ({n}). "
                f"Got {len(starts_l)} and {len(ends_l)} instead."
            )

        def run() -> list[Any]:
            out: list[Any] = []
            located: dict[str, tuple[ChunkTable, int]] = {}  # zarr asks many ranges of one key
            for p, a, b in zip(paths, starts_l, ends_l, strict=True):
                try:
                    sp = self._strip_protocol(p)
                    if sp in self.index.meta or (a is None and b is None):
                        out.append(self.cat_file(sp, a, b))
                        continue
                    if sp not in located:
                        table, lin = self._locate(sp)
                        located[sp] = (table, table.find(lin))
                    out.append(self._range_of(sp, *located[sp], a, b))
                except Exception as exc:
                    if on_error != "return":
                        raise
                    out.append(exc)
            return out

        total: int | None = 0
        for a, b in zip(starts_l, ends_l, strict=True):
            if a is None or b is None or not 0 <= a <= b or total is None:
                total = None
            else:
                total += b - a
        if self._local and total is not None and total <= INLINE_READ:
            return run()
        return await asyncio.to_thread(run)

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        await self._indexed()
        return self.info(path, **kwargs)

    async def _ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        await self._indexed()
        return self.ls(path, detail=detail, **kwargs)

    async def _du(
        self, path: str, total: bool = True, maxdepth: int | None = None, **kwargs: Any
    ) -> Any:
        """As fsspec's, with the sizes ``find(detail=True)`` lists (not an info() per key)."""
        kwargs.pop("detail", None)
        found = await self._find(path, maxdepth=maxdepth, detail=True, **kwargs)
        sizes = {self._strip_protocol(n): info["size"] for n, info in found.items()}
        return sum(sizes.values()) if total else sizes

    async def _exists(self, path: str, **kwargs: Any) -> bool:
        await self._indexed()
        try:
            self.info(path)
        except FileNotFoundError:
            return False
        return True

    async def _cat(
        self, path: Any, recursive: bool = False, on_error: str = "raise", **kwargs: Any
    ) -> Any:
        return await asyncio.to_thread(self.cat, path, recursive, on_error, **kwargs)

    def cat(
        self, path: str | list[str], recursive: bool = False, on_error: str = "raise", **kwargs: Any
    ) -> Any:
        """Many keys at once: neighbouring chunk byte ranges are read with one ranged request.

        As fsspec's: a glob pattern (``*``, ``?``, ``[``) or ``recursive`` expands ``path``
        and gives a dict, as a list of keys does; one plain key gives its bytes. A key that
        exists is taken literally even if it looks like a pattern (HDF5 names may hold ``[``).
        """
        single = isinstance(path, str) and not recursive
        if single and (not has_magic(path) or self.exists(path)):
            return self.cat_file(str(path))
        expand = recursive or isinstance(path, str)
        paths = self.expand_path(path, recursive=recursive) if expand else list(path)
        out: dict[str, Any] = {}
        reads: list[tuple[str, ChunkTable, int]] = []
        for p in paths:
            sp = self._strip_protocol(p)
            try:
                if sp in self.index.meta:
                    out[p] = self.index.meta[sp]
                    continue
                table, lin = self._locate(sp)
                row = table.find(lin)
                if row < 0:
                    out[p] = self._chunk(sp)
                else:
                    reads.append((p, table, row))
            except Exception as exc:
                if on_error == "raise":
                    raise
                if on_error != "omit":
                    out[p] = exc
        reads.sort(key=lambda r: (r[1].url_of(r[2]), int(r[1].offsets[r[2]])))
        groups: list[list[tuple[str, ChunkTable, int]]] = []
        for r in reads:
            if groups:
                last = groups[-1][-1]
                g_start = int(groups[-1][0][1].offsets[groups[-1][0][2]])
                l_end = int(last[1].offsets[last[2]]) + int(last[1].sizes[last[2]])
                r_start = int(r[1].offsets[r[2]])
                r_end = r_start + int(r[1].sizes[r[2]])
                if (
                    last[1].url_of(last[2]) == r[1].url_of(r[2])
                    and 0 <= r_start - l_end <= MAX_GAP
                    and r_end - g_start <= MAX_BLOCK
                ):
                    groups[-1].append(r)
                    continue
            groups.append([r])
        if groups:
            urls = [g[0][1].url_of(g[0][2]) for g in groups]
            starts = [int(g[0][1].offsets[g[0][2]]) for g in groups]
            ends = [int(g[-1][1].offsets[g[-1][2]]) + int(g[-1][1].sizes[g[-1][2]]) for g in groups]
            blobs: list[Any] = []
            if self._local:
                # through the descriptors checked to be of the indexed file (a path names the
                # file that replaced it): one pread per range
                for url, s0, e0 in zip(urls, starts, ends, strict=True):
                    try:
                        blobs.append(self._read(url, s0, e0 - s0))
                    except Exception as exc:
                        blobs.append(exc)
            elif self._replaced and self.url in urls:
                blobs = [_replaced(u) if u == self.url else None for u in urls]
                rest = [i for i, b in enumerate(blobs) if b is None]
                got = self._remote_ranges(
                    [urls[i] for i in rest], [starts[i] for i in rest], [ends[i] for i in rest]
                )
                for i, b in zip(rest, got, strict=True):
                    blobs[i] = b
            else:
                blobs = self._remote_ranges(urls, starts, ends)
            for g, url, s0, e0, blob in zip(groups, urls, starts, ends, blobs, strict=True):
                whole: bytes | Exception
                try:
                    if isinstance(blob, _MISSING):
                        raise _gone(url, blob) from blob
                    if isinstance(blob, BaseException):
                        raise _target_error(url, blob, self._local) or blob
                    whole = self._check_short(url, s0, e0, _check_range(url, s0, e0, blob))
                except Exception as exc:  # every key of the range fails alike
                    whole = exc
                for p, table, row in g:
                    try:
                        if isinstance(whole, Exception):
                            raise whole
                        a = int(table.offsets[row]) - s0
                        piece = whole[a : a + int(table.sizes[row])]
                        out[p] = self._finish(table, row, piece, self._strip_protocol(p))
                    except Exception as exc:
                        if on_error == "raise":
                            raise
                        if on_error != "omit":
                            out[p] = exc
        return out

    # -- listing ------------------------------------------------------------------------------
    def _directories(self) -> dict[str, set[str]]:
        if self._dirs is None:
            dirs: dict[str, set[str]] = {"": set()}
            for key in self.index.meta:
                parts = key.split("/")
                for i in range(len(parts)):
                    parent = "/".join(parts[:i])
                    dirs.setdefault(parent, set()).add("/".join(parts[: i + 1]))
            for prefix, table in self.index.tables.items():
                base = f"{prefix}/c" if self.zarr_format == 3 else prefix
                if self.zarr_format == 3 and table.grid:
                    dirs.setdefault(prefix, set()).add(base)
                    dirs.setdefault(base, set())
                elif self.zarr_format == 3 and table.stored_lins.size:
                    dirs.setdefault(prefix, set()).add(base)  # a scalar's one chunk: a file
            self._dirs = dirs
        return self._dirs

    def _chunk_children(self, path: str) -> list[str] | None:
        """Children of a directory inside an array's chunk area, or None if it is none.

        The array is looked up by name (not by scanning every table: ``find`` over a file
        with thousands of datasets asks this for every directory).
        """
        if self.zarr_format == 2:
            return None  # a v2 array's chunk keys sit beside its .zarray (ls lists them)
        tables = self.index.tables
        parts = path.split("/")
        for i, part in enumerate(parts):
            table = tables.get("/".join(parts[:i])) if part == "c" else None
            if table is not None:
                return self._grid_children(table, path, parts[i + 1 :])
        return None

    def _v2_chunk_lins(self, table: ChunkTable, path: str) -> np.ndarray[Any, Any]:
        """Linear indices of the chunk keys a v2 array lists: its allocated and inline chunks
        and, where the view serves fill chunks for the unallocated ones (HDF5 fill value not
        zero, no ``_FillValue``), every chunk of the grid, so that a copy (``fs.get``) reads
        what the view reads. Arrays without fill chunks list what they did."""
        if table.fill_chunk is None:
            return table.stored_lins
        if table.nchunks > MAX_LISTED_FILL_KEYS:
            raise UnsupportedHDF5FeatureError(
                f"{_scrub(self.url)}: dataset {'/' + path!r} has {table.nchunks} chunks, too many "
                "to list in the Zarr v2 view, which serves a fill chunk for each unallocated one "
                "(its HDF5 fill value is not zero and it has no _FillValue): list or copy the "
                "Zarr v3 view (zarr_format=3, fill_value = the HDF5 fill), which lists the "
                "allocated chunks only"
            )
        return np.arange(table.nchunks, dtype=np.int64)

    @staticmethod
    def _v2_chunk_keys(table: ChunkTable, path: str, lins: np.ndarray[Any, Any]) -> list[str]:
        """The chunk keys of a v2 array at linear indices ``lins`` (:meth:`_v2_chunk_lins`)."""
        base = f"{path}/" if path else ""
        if not table.grid:
            return [f"{base}0"] if lins.size else []
        form = base + ".".join(["{}"] * len(table.grid))
        if lins.size == table.nchunks:  # every chunk: the grid in C order, without numpy
            return [form.format(*c) for c in itertools.product(*map(range, table.grid))]
        coords = np.stack(np.unravel_index(lins, table.grid), axis=-1)
        return [form.format(*c) for c in coords.tolist()]

    @classmethod
    def _v2_chunk_sizes(cls, table: ChunkTable, lins: np.ndarray[Any, Any]) -> list[int]:
        """What :meth:`info` says of the chunk keys at linear indices ``lins`` (without a call
        per key)."""
        fill = len(table.fill_chunk) if table.fill_chunk is not None else 0
        sizes = np.full(lins.size, fill, dtype=np.int64)
        if table.lin.size:
            served = cls._served_sizes(table, table.sizes.astype(np.int64))
            sizes[np.searchsorted(lins, table.lin)] = served
        for lin, data in table.inline.items():
            if table.find(int(lin)) < 0:  # as info(): an allocated chunk's row wins
                sizes[int(np.searchsorted(lins, int(lin)))] = len(data)
        return [int(x) for x in sizes.tolist()]

    @staticmethod
    def _grid_children(table: ChunkTable, path: str, done: list[str]) -> list[str] | None:
        """Next chunk-key components below ``path`` (``done``: the coordinates in it).

        The chunks below a coordinate prefix are one run of the sorted linear indices: found
        by bisection and read alone (a scan of every chunk for each directory made ``ls`` of a
        500 x 500 chunk grid's ``c/`` take a minute, and ``find`` of it hang).
        """
        grid = table.grid
        if not grid or not all(_is_index(x) for x in done) or len(done) >= len(grid):
            return None
        head = [int(x) for x in done]
        if any(c >= g for c, g in zip(head, grid, strict=False)):
            return None
        k = len(head)
        inner = int(np.prod(grid[k + 1 :], dtype=object))  # chunks per step of axis k
        span = inner * grid[k]  # chunks below the prefix
        base = 0
        for c, g in zip(head, grid, strict=False):
            base = base * g + c
        base *= span
        lins = table.stored_lins
        lo, hi = np.searchsorted(lins, [base, base + span])
        nxt = np.unique((lins[lo:hi] - base) // inner) if inner > 1 else lins[lo:hi] - base
        return [f"{path}/{int(c)}" for c in nxt.tolist()]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """Size and type of a metadata key, chunk key or directory."""
        path = self._strip_protocol(path)
        if path in self.index.meta:
            return {"name": path, "size": self._meta_size(path), "type": "file"}
        if path in self._directories():
            return {"name": path, "size": 0, "type": "directory"}
        try:
            table, lin = self._locate(path)
        except FileNotFoundError:
            kids = self._chunk_children(path)
            if kids:
                return {"name": path, "size": 0, "type": "directory"}
            raise
        row = table.find(lin)
        if row >= 0:
            return {"name": path, "size": self._served_size(table, row), "type": "file"}
        if lin in table.inline:
            return {"name": path, "size": len(table.inline[lin]), "type": "file"}
        if table.fill_chunk is not None:
            return {"name": path, "size": len(table.fill_chunk), "type": "file"}
        raise FileNotFoundError(path)

    def _meta_size(self, key: str) -> int:
        """Length of metadata key ``key`` (a group's consolidated document is not assembled
        for it: ``find`` and ``ls`` size every group's)."""
        meta = self.index.meta
        return meta.size(key) if isinstance(meta, RenderedMeta) else len(meta[key])

    @classmethod
    def _served_size(cls, table: ChunkTable, row: int) -> int:
        """Length of what :meth:`cat_file` serves for a stored chunk (see :meth:`_finish`)."""
        return int(cls._served_sizes(table, int(table.sizes[row])))

    @staticmethod
    def _served_sizes(table: ChunkTable, sizes: Any) -> Any:
        """:meth:`_served_size` of stored sizes ``sizes`` (an int or an int64 array): masked
        chunks carry the mask header, others are padded to ``pad_to``."""
        if table.masked:
            from b2store.codecs.hdf5_pipeline import MASK_HEADER_SIZE

            return sizes + MASK_HEADER_SIZE
        return np.maximum(sizes, table.pad_to)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """Children of a group, array or chunk directory (or the key itself).

        Names are root-relative keys, with a leading ``/`` when ``path`` has one: zarr's
        ``FsspecStore.list_dir`` (store path ``""``) lists ``"/<group>"`` and strips
        ``"/<group>/"`` from each name; without the slash it took the full keys for the
        children's names and found no member in any nested group (Zarr v2, unconsolidated).
        """
        raw = str(path).removeprefix("b2h5://")
        lead = "/" if raw.startswith("/") else ""
        path = self._strip_protocol(path)
        dirs = self._directories()
        names: list[str] = sorted(dirs.get(path, set()))
        table = self.index.tables.get(path) if self.zarr_format == 2 else None
        if table is not None:
            # a v2 array: its metadata keys, then its chunk keys (which may be millions: listed
            # and sized from the chunk table with numpy, without a call of info() per key)
            lins = self._v2_chunk_lins(table, path)
            keys = self._v2_chunk_keys(table, path, lins)
            if not detail:
                return [lead + n for n in names + keys]
            entries = [{**self.info(n), "name": lead + n} for n in names]
            sizes = self._v2_chunk_sizes(table, lins)
            return entries + [
                {"name": lead + k, "size": n, "type": "file"}
                for k, n in zip(keys, sizes, strict=True)
            ]
        chunk_kids = self._chunk_children(path)
        if chunk_kids:
            names = sorted(set(names) | set(chunk_kids))
        if not names:
            if path in dirs:
                return []
            names = [self.info(path)["name"]]
        if not detail:
            return [lead + n for n in names]
        return [{**self.info(n), "name": lead + n} for n in names]

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if "r" not in mode or any(c in mode for c in "wa+"):
            raise self._read_only(f"open (mode {mode!r})", path)
        try:
            data = self.cat_file(path)
        except FileNotFoundError:
            # fsspec.open("b2h5::f.h5") opens the store's root: the bare FileNotFoundError('')
            # named nothing (zarr reads keys through cat_file, whose misses stay cheap)
            key = self._strip_protocol(path)
            if self.isdir(key):
                raise IsADirectoryError(
                    f"{key or '/'!r} is a group or array of the Zarr view of {_scrub(self.url)}, "
                    "not a key: open the file with zarr or xarray (xr.open_zarr('b2h5::<file>')), "
                    "or read a key under it ('zarr.json')"
                ) from None
            if self.exists(key):
                raise  # listed but read as missing (an all-zero Blosc2 chunk): zarr fills it
            raise FileNotFoundError(
                f"No key {key!r} in the Zarr view of {_scrub(self.url)}"
            ) from None
        return MemoryFile(None, path, data)

    # -- read-only: the write operations come from ReadOnlyAsyncFileSystem ------------------
    def _read_only(self, what: str, path: Any) -> PermissionError:
        """The error of every write operation (zarr ``mode="w"``/``"a"``, ``to_zarr``, rm)."""
        key = self._strip_protocol(str(path))
        node, _, name = key.rpartition("/")
        hint = ""
        if name in ("zarr.json", ".zarray", ".zgroup", ".zattrs") and key not in self.index.meta:
            # zarr.open(url, path=...) without mode= is mode "a": a node missing from the file
            # (a misspelt path) is created, and only this error told the user, about a write
            hint = (
                f" There is no node {node or '/'!r} in the file: zarr.open, open_array and "
                "open_group without mode= create missing nodes (their default mode is 'a'); "
                "pass mode='r' to read."
            )
        return PermissionError(
            f"b2h5 is read-only: cannot {what} {path!r} (in the Zarr view of {_scrub(self.url)}). "
            "Copy it elsewhere to modify it: fs.get('', 'copy.zarr', recursive=True), or "
            f"ds.to_zarr('copy.zarr') of the xarray dataset (zarr 3 has no copy_store).{hint}"
        )

    def ukey(self, path: str) -> str:
        """A key identifying ``path`` inside this file's current version."""
        self.index  # noqa: B018  (an unpickled copy learns the version when it indexes the file)
        return fsspec.utils.tokenize(self._version, self._strip_protocol(path))
