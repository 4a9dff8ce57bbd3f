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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import itertools
import os
import stat
import threading
import urllib.parse
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import fsspec
import numpy as np
from fsspec.core import has_magic
from fsspec.implementations.memory import MemoryFile

from b2store._readonly import ReadOnlyAsyncFileSystem
from b2store.errors import (
    AccessRefusedError,
    NotRandomAccessError,
    TransferError,
    UnsupportedHDF5FeatureError,
)
from b2store.hdf5 import cache as _cache
from b2store.hdf5.index import (
    ALIAS_CAP_NOTE,
    ChunkTable,
    FileIndex,
    build_index,
    external_candidates,
    open_local_file,
)

#: The error classes are b2store.errors' (also importable from here, where they were first).
__all__ = ["AccessRefusedError", "HDF5FileSystem", "NotRandomAccessError", "TransferError"]

_MEMORY = _cache.MemoryCache()
_BUILD_LOCK = threading.Lock()
_GC_LOCK = threading.Lock()
_gc_pauses = 0  # builds running with the cyclic garbage collector paused (see _gc_paused)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while an index is built (nested across threads).

    h5py holds its global lock while it reads a remote file through a Python file object, and
    such a read waits for fsspec's event-loop thread. A garbage collection that runs on that
    thread (or any other the read waits for) and frees an h5py object in a reference cycle,
    the process's or the user's, needs h5py's lock: the read never returns (a deadlock seen in
    the tests). Reference counting still frees everything else; collection resumes after.
    """
    global _gc_pauses
    with _GC_LOCK:
        if _gc_pauses == 0 and not gc.isenabled():
            paused = False  # the application keeps it off: leave it so
        else:
            paused = True
            _gc_pauses += 1
            gc.disable()
    try:
        yield
    finally:
        if paused:
            with _GC_LOCK:
                _gc_pauses -= 1
                if _gc_pauses == 0:
                    gc.enable()


#: Largest gap (bytes) between two chunks merged into one ranged read by :meth:`cat`.
MAX_GAP = 64 * 1024
#: Largest merged ranged read.
MAX_BLOCK = 64 * 2**20
#: Remote chunks up to this size are served from cached READAHEAD_BLOCK-byte aligned blocks.
READAHEAD_CHUNK = 64 * 1024
READAHEAD_BLOCK = 512 * 1024
#: Blocks kept by all filesystems of a process together (each kept 16 of its own: 8 MiB per
#: file, 8 GiB for an ``open_mfdataset`` of a thousand remote files).
READAHEAD_BLOCKS = 64
#: Local chunks up to this size are read on the event loop (a pread), larger ones in a thread.
INLINE_READ = 2**20
#: Most chunk keys the v2 view lists for a dataset whose unallocated chunks it serves as fill
#: chunks (listing them all takes memory and time per key; beyond this listing raises).
MAX_LISTED_FILL_KEYS = 10**7


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

#: What zarr takes for "no such key" (and fills with the fill value).
_MISSING = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


def _gone(url: str, exc: BaseException) -> OSError:
    """The error for a target file that is missing at read time (not a missing-key error)."""
    return OSError(
        f"{url}: the HDF5 file cannot be read any more ({type(exc).__name__}: {exc}); it was "
        "moved, deleted or replaced after b2h5 indexed it. Open it again."
    )


#: Top-level modules of the HTTP/cloud clients under fsspec's remote filesystems: their errors
#: are failures to reach the file (aiohttp's are not even OSErrors), not properties of it.
_TRANSPORT_MODULES = frozenset(
    {"aiohttp", "requests", "urllib3", "httpx", "httpcore", "botocore", "aiobotocore"}
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _http_status(exc: BaseException) -> tuple[int | None, BaseException]:
    """The HTTP status of an error or of one it came from, and that error (fsspec's HTTP
    filesystem turns every failed HEAD/GET of ``info()`` into a bare FileNotFoundError raised
    from it)."""
    for e in _chain(exc):
        status = getattr(e, "status", None)
        response = getattr(e, "response", None)
        if status is None and isinstance(response, dict):  # botocore's ClientError
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        elif status is None:
            status = getattr(response, "status_code", None)  # requests, httpx
        if isinstance(status, int) and 100 <= status < 600:
            return status, e
    return None, exc


def _options_hint(url: str) -> str:
    """``storage_options={...}`` giving the target of ``url`` its options: under the URL's
    own scheme, the only key fsspec routes to it (``"http"`` is ignored for an https URL)."""
    if "://" not in url:
        return "storage_options={<the URL's scheme, as written>: {...}}"
    scheme = url.split("://", 1)[0]
    opts = "{'headers': {'Authorization': ...}}" if scheme in ("http", "https") else "{...}"
    return f"storage_options={{{scheme!r}: {opts}}}"


def _target_error(url: str, exc: BaseException, local: bool = False) -> OSError | None:
    """The error to raise for a failure of the target's transport (``None``: not one).

    A 403 (an expired presigned URL), a 500 or a cut connection said "HDF5 file not found" at
    open, and at chunk reads raised the HTTP client's own exceptions (aiohttp's have no builtin
    base and, for a dropped body, no URL). A 404/410 stays a missing file.
    """
    if local or isinstance(exc, AccessRefusedError | TransferError):
        return None  # no transport; or already says so, naming the file that failed
    status, cause = _http_status(exc)
    if status is None and isinstance(exc, PermissionError) and exc.filename is None:
        status = 403  # s3fs, gcsfs, ...: their own PermissionError (the OS's names its file)
    if status in (404, 410):
        return None
    if status in (401, 403):
        return AccessRefusedError(
            f"{url}: the server refused access to the HDF5 file (HTTP {status}). Give "
            "credentials in the target's options (xr.open_zarr('b2h5::<url>', "
            f"{_options_hint(url)}), or "
            "fsspec.filesystem('b2h5', fo=<url>, target_options={...})); for a signed URL "
            "(S3 presigned, SAS token) make a new one: it may have expired."
        )
    if status is not None and status >= 400:
        return TransferError(
            f"{url}: the server answered HTTP {status} when reading the HDF5 file ({cause}). "
            "Check the URL and the server, then try again."
        )
    for e in _chain(exc):
        if isinstance(e, TimeoutError):
            # fsspec's HTTP filesystem waits up to aiohttp's default 5 minutes; its answer was
            # a bare TimeoutError() naming nothing, and at open "not a readable HDF5 file"
            what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            return TransferError(
                f"{url}: reading the HDF5 file timed out ({what}). Check the network and the "
                "server, then try again. The wait is the target's option (for HTTP: "
                "target_options={'client_kwargs': {'timeout': aiohttp.ClientTimeout(total=...)}})."
            )
        if isinstance(e, ValueError) and not isinstance(e, OSError):
            # aiohttp's InvalidURL: a path that is no URL (a candidate), no transfer (its
            # certificate failure is a ValueError too, and an OSError: "file not found")
            continue
        if type(e).__module__.split(".")[0] in _TRANSPORT_MODULES:
            return TransferError(
                f"{url}: reading the HDF5 file failed: the connection failed or was cut "
                f"({type(e).__name__}: {e}). Check the network and the server, then try again."
            )
    return None


def _replaced(url: str) -> OSError:
    """The error for a target file replaced by another one (or, remote, changed) since it
    was indexed."""
    return OSError(
        f"{url}: the HDF5 file was replaced by another file after b2h5 indexed it, so its "
        "chunks are not where the index says. Open it again."
    )


#: What to say of a server that ignores HTTP ``Range`` (when reading chunks or indexing).
_NO_RANGE = (
    "the server ignores HTTP range requests, which b2h5 needs to read the file's metadata and "
    "chunks at their offsets. Serve the file from a server that supports them, or download it "
    "first (b2h5::simplecache::<url>)."
)


def _check_range(url: str, start: int, end: int, data: Any) -> bytes:
    """``data`` as bytes, after checking that it is no longer than the range ``start:end``.

    A server that ignores ``Range`` headers (Python's ``http.server``) answers a ranged GET
    with the whole file: taken as the range, it gave wrong chunk bytes silently.
    """
    data = bytes(data)
    if len(data) > end - start:
        raise OSError(
            f"{url}: asked for bytes {start}-{end - 1} ({end - start} bytes), got {len(data)}: "
            f"{_NO_RANGE}"
        )
    return data


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


class _CheckedFile:
    """A remote target file as h5py reads it at open: a short read raises, and every failed
    read is recorded in ``failures``.

    h5py fills what a read did not return with zeros, and fsspec's HTTP file returns what the
    server sent: a body cut short without the client noticing (no ``Content-Length``) gave
    zeros for the values read at open (types HDF5 converts, variable-length strings),
    silently. The indexer takes some OSErrors for a property of the file (a link that does
    not resolve becomes a note), so :meth:`HDF5FileSystem._build` raises what was recorded.
    """

    def __init__(self, fh: Any, url: str, failures: list[BaseException], lock: Any = None) -> None:
        self._fh = fh
        self._lock = lock or contextlib.nullcontext()
        self._url = url
        self._failures = failures
        size = getattr(fh, "size", None)
        if not isinstance(size, int):  # a local file (simplecache::): its length
            here = fh.tell()
            size = fh.seek(0, 2)
            fh.seek(here)
        self._size = int(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def read(self, n: int = -1) -> bytes:
        pos = self._fh.tell()
        try:
            with self._lock:
                data = self._fh.read(n)
            self._check(pos, n, len(data))
        except Exception as exc:
            self._failures.append(exc)
            raise
        return data

    def readinto(self, buf: Any) -> int:
        pos = self._fh.tell()
        try:
            with self._lock:
                got = self._fh.readinto(buf)
            self._check(pos, memoryview(buf).nbytes, got)
        except Exception as exc:
            self._failures.append(exc)
            raise
        return int(got)

    def _check(self, pos: int, asked: int, got: int) -> None:
        size = self._size
        want = size - pos if asked is None or asked < 0 else min(asked, size - pos)
        if got < want:
            raise TransferError(
                f"{self._url}: read {got} of {want} bytes at offset {pos} while indexing the "
                "HDF5 file: the connection was cut. Try again."
            )


@contextlib.contextmanager
def _no_range_is_oserror(url: str, local: bool) -> Any:
    """Turn fsspec's ValueError for an HTTP server that ignores ``Range`` (raised when h5py
    reads past the first block while indexing) into an ``OSError`` naming the file, and so the
    transport's errors (:func:`_target_error`)."""
    try:
        yield
    except ValueError as exc:
        if "support range requests" not in str(exc):
            raise
        raise OSError(f"{url}: {_NO_RANGE}") from exc
    except Exception as exc:
        err = _target_error(url, exc, local)
        if err is None:
            raise
        raise err from exc


def _local_identity(path: str) -> tuple[int, str]:
    """(size, stamp) of a local file: mtime, inode and ctime.

    mtime alone misses a rewrite that restores it (``cp -p``, ``rsync -t``, ``os.utime``); such
    a rewrite either makes a new inode (write + rename) or changes the ctime, which users
    cannot set.
    """
    st = os.stat(path)
    return st.st_size, f"mtime_ns={st.st_mtime_ns}|ino={st.st_ino}|ctime_ns={st.st_ctime_ns}"


def _rfc8089_path(path: str) -> str:
    """The local file a ``file:`` URL names, read as RFC 8089 does, when fsspec's literal
    reading of it (``path``) does not exist.

    ``Path.as_uri()`` percent-encodes spaces and non-ASCII names and ``file://localhost/``
    names the local host; fsspec kept ``%20`` and made ``localhost/...`` a path relative to the
    working directory ("HDF5 file not found"). A file whose name really holds ``%20`` is
    still found first.
    """
    if os.path.exists(path):
        return path
    cand = path
    host = os.path.join(os.getcwd(), "localhost") + "/"
    if os.sep == "/" and cand.startswith(host):
        cand = "/" + cand[len(host) :]
    if "%" in cand and "%2f" not in cand.lower():  # no "/" inside a name: no such file
        cand = urllib.parse.unquote(cand)
    return cand if cand != path and os.path.exists(cand) else path


def _stamp_field(stamp: str, name: str) -> str | None:
    """Field ``name`` of a ``"a=1|b=2"`` stamp (as :func:`_local_identity` writes them)."""
    for part in stamp.split("|"):
        key, _, value = part.partition("=")
        if key == name:
            return value
    return None


def _check_index_cache(value: Any) -> None:
    """Reject ``index_cache`` values that are not None, ``"auto"`` or a folder.

    ``""`` used to mean the current folder (sidecar files written wherever the process runs)
    and ``True`` failed later with a bare TypeError.
    """
    if value is None:
        return
    if not isinstance(value, str | os.PathLike):
        raise TypeError(
            f"Expected index_cache None, 'auto' or a folder path. Got {value!r} instead."
        )
    if isinstance(value, str) and not value.strip():
        raise ValueError(
            "Expected index_cache None (memory only), 'auto' or a folder path. Got an empty "
            "string instead (use '.' for the current folder)."
        )
    if value == "auto":
        return
    # an existing file (index_cache="index.npz") cached nothing, silently: sidecar writes are
    # best effort (a folder that cannot be made or written, such as a read-only shared one,
    # is skipped)
    folder = Path(value).expanduser()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(
            f"Expected index_cache None, 'auto' or a folder path. Got {str(value)!r}, which "
            "is a file: give a folder for the sidecar index files."
        )


#: the options fsspec itself gives every filesystem (AbstractFileSystem, AsyncFileSystem, its
#: DirCache, the instance cache); zarr passes ``asynchronous=True``
_FSSPEC_OPTIONS = frozenset(
    {
        "asynchronous",
        "loop",
        "batch_size",
        "skip_instance_cache",
        "use_listings_cache",
        "listings_expiry_time",
        "max_paths",
    }
)


def _implementation(protocol: str) -> str | None:
    """The dotted class name of an fsspec protocol's filesystem (``None``: unknown)."""
    from fsspec.registry import known_implementations, registry

    if protocol in known_implementations:  # as written there: s3 and s3a both "s3fs.S3..."
        return str(known_implementations[protocol]["class"])
    cls = registry.get(protocol)
    return None if cls is None else f"{cls.__module__}.{cls.__qualname__}"


def _target_protocols(
    fo: Any, target_protocol: str | None, target_options: dict[str, Any] | None
) -> list[str]:
    """The protocols of the filesystems under b2h5, as fsspec routes options to them: the
    schemes of a chained URL as written (``https``, ``s3a``; a plain path is ``file``)."""
    from fsspec.core import split_protocol

    if target_protocol is None:
        return [split_protocol(bit)[0] or "file" for bit in str(fo).split("::")]
    out = [target_protocol]
    opts = target_options
    while isinstance(opts, dict) and isinstance(opts.get("target_protocol"), str):
        out.append(opts["target_protocol"])  # simplecache::https://...
        opts = opts.get("target_options")
    return out


def _check_options(
    kwargs: dict[str, Any],
    fo: Any,
    target_protocol: str | None = None,
    target_options: dict[str, Any] | None = None,
) -> None:
    """Refuse options b2h5 does not know. fsspec hands a chained URL's options that are not
    under a protocol name to its first filesystem, b2h5: the target's options given that way
    (``storage_options={"anon": True}`` for ``b2h5::s3://...``) or a misspelt option
    (``zarr_fromat``) were ignored silently (the v3 view, no credentials). So were options
    under another name of the target's protocol (``"http"`` for a ``b2h5::https://`` URL, or
    ``"s3"`` for ``s3a://``): fsspec routes only those under the URL's own scheme."""
    from fsspec.registry import known_implementations, registry

    url = str(fo)
    chain = _target_protocols(fo, target_protocol, target_options)
    scheme = chain[0]
    if "://" not in url and scheme != "file":
        url = f"{scheme}://{url}"
    by_impl = {_implementation(p): p for p in reversed(chain)}
    by_impl.pop(None, None)
    # options under the name of a protocol that is not in this URL's chain (one
    # storage_options for local and remote files) are fsspec's to route, not b2h5's
    protocols = set(known_implementations) | set(registry)
    for k in sorted(kwargs):
        if k in _FSSPEC_OPTIONS or k not in protocols or not isinstance(kwargs[k], dict):
            continue
        routed = by_impl.get(_implementation(k))
        if routed is None:
            continue
        if routed != k:
            raise TypeError(
                f"b2h5 got options under {k!r} for {url!r}, but fsspec gives the filesystem "
                f"holding the file only the options under its URL's own scheme, {routed!r} "
                f"(the same filesystem as {k!r}): they would be ignored. Give them as "
                f"storage_options={{{routed!r}: {{...}}}}."
            )
        raise TypeError(
            f"b2h5 got options under {k!r} for {url!r}, which fsspec did not route to the "
            "filesystem holding the file (no chained URL): they would be ignored. Give them "
            f"as target_options (fsspec.filesystem('b2h5', fo=..., target_options={{...}})) "
            f"or use a chained URL ('b2h5::{routed}://...' with "
            f"storage_options={{{routed!r}: {{...}}}})."
        )
    unknown = sorted(
        k
        for k in kwargs
        if k not in _FSSPEC_OPTIONS and not (k in protocols and isinstance(kwargs[k], dict))
    )
    if not unknown:
        return
    raise TypeError(
        f"b2h5 got unknown option(s) {', '.join(map(repr, unknown))} for {url!r}. b2h5 takes "
        "zarr_format, unsupported, follow_external_links, index_cache, target_protocol and "
        "target_options; options of the filesystem holding the file go under its protocol "
        f"name (storage_options={{{scheme!r}: {{...}}}} with a 'b2h5::{scheme}://...' URL) or "
        f"in target_options (fsspec.filesystem('b2h5', fo=..., target_options={{...}}))."
    )


def _check_regular_file(url: str) -> None:
    """Refuse a local path that is no file: a folder said "not a readable HDF5 file ...;
    check that it is complete (not truncated)", and a named pipe (FIFO) hung the open
    forever, waiting for a writer."""
    try:
        mode = os.stat(url).st_mode
    except OSError:
        return  # the open says what is wrong
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(
            f"{url} is a folder, not an HDF5 file: name the file inside it "
            "('b2h5::<folder>/<file>.h5'); a Zarr store folder opens without b2h5 "
            "(xr.open_zarr('<folder>'))"
        )
    if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
        kind = "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "not a regular file"
        raise OSError(
            f"{url} is {kind}, not an HDF5 file: b2h5 reads chunks at their offsets, "
            "so it needs a file it can seek in (write the stream to a file first)"
        )


def _is_index(text: str) -> bool:
    """Whether ``text`` is a chunk coordinate as zarr writes it (``int()`` also takes ``"01"``,
    ``" 1"``, ``"+1"`` and ``"1_0"``)."""
    return text.isascii() and text.isdigit() and str(int(text)) == text


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
    """Start the forked child's build locks and garbage-collector pause afresh.

    A fork while another thread of the parent built an index copied its held locks (the child's
    first index build waited for ever for a thread that does not exist there) and its paused
    collector (off for the child's whole life).
    """
    global _BUILD_LOCK, _GC_LOCK, _HANDLE_GUARD, _gc_pauses
    _BUILD_LOCK = threading.Lock()
    _HANDLE_GUARD = threading.Lock()
    _GC_LOCK = threading.Lock()
    if _gc_pauses:
        _gc_pauses = 0
        gc.enable()


_FDS = _DescriptorPool()
_BLOCKS = _BlockCache(READAHEAD_BLOCKS)
_INSTANCES = itertools.count()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_FDS._after_fork)
    os.register_at_fork(after_in_child=_BLOCKS._after_fork)
    os.register_at_fork(after_in_child=_after_fork)


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
        file_version: str | None = None,
        **kwargs: Any,
    ) -> None:
        _check_options(kwargs, fo, target_protocol, target_options)
        super().__init__(**kwargs)
        if not isinstance(follow_external_links, bool | np.bool_):
            raise TypeError(
                "Expected follow_external_links True or False. Got "
                f"{follow_external_links!r} instead."
            )
        if zarr_format not in (2, 3):
            raise ValueError(f"Expected zarr_format 2 or 3. Got {zarr_format!r} instead.")
        if unsupported not in ("raise", "warn", "skip"):
            raise ValueError(
                f"Expected unsupported 'raise', 'warn' or 'skip'. Got {unsupported!r} instead."
            )
        _check_index_cache(index_cache)
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
            for note in self._index.notes:
                if ALIAS_CAP_NOTE in note:
                    # at each open, also of an index from a cache: a group left out
                    # (reached through too many links) is no silent gap
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

    def _cache_key(self) -> tuple[str, bool]:
        try:
            size, stamp = self._identity(self.url)
        except Exception as exc:
            err = _target_error(self.url, exc, self._local)
            if err is not None:
                raise err from exc
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
            raise FileNotFoundError(f"HDF5 file not found: {self.url}{hint}") from None
        if self._local:
            _check_regular_file(self.url)
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
            with _gc_paused():
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
                    f"{url}: the server reports no size for the file (no Content-Length) or "
                    "refuses range requests (Accept-Ranges: none), so the HDF5 file cannot be "
                    "read at its offsets (a block_size of 0 in the target's options does this "
                    "too). Download it first: b2h5::simplecache::<url>."
                )
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
                raise err from exc
            # an external link or a virtual dataset's source naming a missing file (the main
            # file's existence is checked first): not "truncated or not HDF5"
            raise FileNotFoundError(f"HDF5 file not found: {url}") from exc
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
            if err is not None:
                raise err from exc
            if isinstance(exc, PermissionError):
                raise  # the OS's "Permission denied", naming the file: not truncated, not "no HDF5"
            if self._head(url, 4) in (b"CDF\x01", b"CDF\x02", b"CDF\x05"):
                raise OSError(
                    f"{url} is a netCDF-3 (classic format) file, not HDF5: b2h5 reads "
                    "netCDF-4/HDF5 files only. Open it with xarray.open_dataset, or convert it "
                    "(nccopy -k netCDF-4)."
                ) from exc
            if "unable to lock file" in str(exc):
                raise OSError(
                    f"{url} is open for writing in another process ({exc}); read it once the "
                    "writer has closed it, or have the writer use SWMR mode (h5py: "
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
                f"{url} is not a readable HDF5 file ({exc}); check that it is complete "
                f"(not truncated) {parts}"
            ) from exc
        except Exception as exc:
            err = _target_error(url, exc, self._is_local())
            if err is None:
                raise
            raise err from exc

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
            with _BUILD_LOCK, _no_range_is_oserror(self.url, self._local):
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
                    raise failures[0] from exc
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
                f"{table.url_of(row)}: chunk {path!r} is truncated: read {len(raw)} of {size} "
                f"bytes at offset {int(table.offsets[row])} (is the HDF5 file complete?)"
            )
        if table.zero_skip:
            from b2store.codecs._blosc2frame import frame_special

            if frame_special(raw) == 1:
                raise FileNotFoundError(path)
        if table.masked:
            from b2store.hdf5.filters import frame_chunk

            raw = frame_chunk(raw, int(table.masks[row]))
        elif table.pad_to and len(raw) < table.pad_to:
            raw = raw + bytes(table.pad_to - len(raw))
        return raw

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
        return self._finish(table, row, raw, path)

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
            raise _gone(url, exc) from exc
        except Exception as exc:
            err = _target_error(url, exc, self._is_local())
            if err is None:
                raise
            raise err from exc

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
        with _shared_handle(self.target_fs):
            data = self.target_fs.cat_file(url, start=start, end=end)
        return self._check_short(url, start, end, _check_range(url, start, end, data))

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
                f"{url}: asked for bytes {start}-{start + want - 1} ({want} bytes), got "
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
                f"{url}: chunk {path!r} is truncated: read {len(raw)} of {b - a} bytes at offset "
                f"{offset + a} (is the HDF5 file complete?)"
            )
        if table.zero_skip and a == 0:
            # a range starting at 0 is how readers begin: answer "missing" for ZERO frames as
            # a whole read would (later ranges of such a tiny frame are its real bytes anyway)
            from b2store.codecs._blosc2frame import frame_special
            from b2store.errors import CodecError

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
                with _shared_handle(self.target_fs):
                    got = self.target_fs.cat_ranges(
                        [urls[i] for i in rest],
                        [starts[i] for i in rest],
                        [ends[i] for i in rest],
                        on_error="return",
                    )
                for i, b in zip(rest, got, strict=True):
                    blobs[i] = b
            else:
                with _shared_handle(self.target_fs):
                    blobs = self.target_fs.cat_ranges(urls, starts, ends, on_error="return")
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
                elif self.zarr_format == 3 and table.coords().shape[0]:
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
            return np.union1d(
                table.lin, np.fromiter(table.inline, dtype=np.int64, count=len(table.inline))
            )
        if table.nchunks > MAX_LISTED_FILL_KEYS:
            raise UnsupportedHDF5FeatureError(
                f"{self.url}: dataset {'/' + path!r} has {table.nchunks} chunks, too many to "
                "list in the Zarr v2 view, which serves a fill chunk for each unallocated one "
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
        """Next chunk-key components below ``path`` (``done``: the coordinates in it)."""
        if not table.grid or not all(_is_index(x) for x in done) or len(done) >= len(table.grid):
            return None
        head = [int(x) for x in done]
        coords = table.coords()
        sel = coords[np.all(coords[:, : len(head)] == head, axis=1)] if head else coords
        nxt = sorted({int(c) for c in sel[:, len(head)]})
        return [f"{path}/{c}" for c in nxt]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """Size and type of a metadata key, chunk key or directory."""
        path = self._strip_protocol(path)
        if path in self.index.meta:
            return {"name": path, "size": len(self.index.meta[path]), "type": "file"}
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
                    f"{key or '/'!r} is a group or array of the Zarr view of {self.url}, not "
                    "a key: open the file with zarr or xarray (xr.open_zarr('b2h5::<file>')), "
                    "or read a key under it ('zarr.json')"
                ) from None
            if self.exists(key):
                raise  # listed but read as missing (an all-zero Blosc2 chunk): zarr fills it
            raise FileNotFoundError(f"No key {key!r} in the Zarr view of {self.url}") from None
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
            f"b2h5 is read-only: cannot {what} {path!r} (in the Zarr view of {self.url}). "
            "Copy it elsewhere to modify it: fs.get('', 'copy.zarr', recursive=True), or "
            f"ds.to_zarr('copy.zarr') of the xarray dataset (zarr 3 has no copy_store).{hint}"
        )

    def ukey(self, path: str) -> str:
        """A key identifying ``path`` inside this file's current version."""
        self.index  # noqa: B018  (an unpickled copy learns the version when it indexes the file)
        return fsspec.utils.tokenize(self._version, self._strip_protocol(path))
