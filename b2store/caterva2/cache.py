"""A persistent, size-limited, LRU chunk cache shared by threads and processes.

Contract
--------
* Layout: ``<root>/<dataset-id>/<version-id>/<chunk>.c2c``; ``dataset-id`` hashes the server URL and
  dataset path (the caller adds the reading user to the server part for ``@personal`` datasets),
  ``version-id`` the dataset's server-side version (ETag or mtime, plus a layout digest). Each
  entry is a 32-byte header (magic ``B2C2``, format version, payload length, CRC-32 of the
  payload, a 16-byte digest of the entry's own key: server, dataset, version and chunk) and the
  payload (the bytes as the server sent them, still compressed). The key digest makes a file
  moved or copied onto another entry's name (another chunk's, dataset's or server's) a miss:
  its length and CRC alone would check, and it would be served as that other chunk.
* Writes go to a unique temporary file in the same folder, then are ``os.replace``-d into place
  (:func:`b2store._atomic.atomic_write`): readers see a complete entry or none. An entry whose
  header, length or CRC does not check is deleted and reported as a miss, so a torn or corrupted
  file is never served. Temporary files left by killed writers are removed by
  :meth:`ChunkCache.evict` after an hour (it runs at the first write to the folder in a
  process, after each tenth of the limit written, and whenever the folder is over its limit).
* :meth:`ChunkCache.set_version` is called whenever a dataset's info is (re)read: other versions of
  that dataset are dropped. The Caterva2 API exposes no per-chunk version, so a changed dataset
  loses all its cached chunks (see docs/caterva2.md). :meth:`ChunkCache.superseded` tells a
  reader that another process has since seen another version (its own version's entries are
  gone, another's are there): the filesystem then re-checks the version before it caches (or
  serves) a chunk it fetched.
* An entry read with credentials (``private=True``) is created readable by its owner only
  (mode 0600), whatever the umask: data a login protects does not become readable by other
  users of the machine through the cache. Anonymous reads follow the umask.
* Only the cache's own folders (32 hex digits: dataset, then version) below ``root`` are
  walked, evicted from and cleared: other files in a folder given as ``root`` stay.
* A folder that cannot be created or written is not an error: reads go on without caching and
  one warning is logged per process and folder.
* The limit also bounds the number of entries, to ``size_limit // 4096`` (one filesystem
  block each, the least a file takes on disk): a chunk of a mostly empty array is a 32-byte
  special chunk, and by their bytes alone 10^5 such entries counted 6.4 MB while taking
  400 MiB of disk (a 2 GiB limit let a folder hold 33 million files, more inodes than a
  disk has).
* Recency is the entry's mtime (touched on every hit); when the bytes under ``root`` exceed
  ``size_limit`` (or the entries their bound) the least recently used entries go until the
  total is under 90 % of it (and of the bound; the entry just written stays when it alone
  fits the limit). A chunk larger than the limit is not stored (one warning per process and
  folder), but still counts as a write for the trimming, so a folder filled under a larger
  limit shrinks at the next miss.
* Every process keeps one running total per folder, shared by all its caches of that folder
  (each open store has a cache object of its own), which does not see the other processes'
  writes: a process also rescans the folder (and evicts if it is over) after each tenth of the
  limit it has written since its last scan. So N processes writing at once overshoot the limit
  by at most about N tenths of it (plus the entries being written); one process stays within
  the limit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

from b2store._atomic import atomic_write, is_stale_temp

__all__ = ["ChunkCache", "default_cache_dir"]

_MAGIC = b"B2C2"
_FORMAT = 2
# magic, format, pad, length, crc32, digest of the entry's key → 32 bytes
_HEADER = struct.Struct("<4sHxxII16s")
_SUFFIX = ".c2c"
#: the least disk space a file takes (a filesystem block): the limit allows ``limit // _BLOCK``
#: entries at most
_BLOCK = 4096
_TMP_PREFIX = ".tmp-"

logger = logging.getLogger(__name__)

#: (folder, limit) pairs already warned about chunks larger than the limit
_TOO_BIG_WARNED: set[tuple[str, int | None]] = set()
#: folders already warned about as unwritable
_UNWRITABLE_WARNED: set[str] = set()


def default_cache_dir() -> Path:
    """``caterva2/`` below b2store's cache folder: ``$B2STORE_CACHE``, ``~/.cache/b2store``."""
    from b2store._paths import cache_home

    return cache_home() / "caterva2"


@dataclasses.dataclass
class _Tally:
    """A process's running byte count of one cache folder (``None`` until its first scan) and
    the bytes written to it since the last scan."""

    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    total: int | None = None
    since_scan: int = 0
    entries: int = 0  # the entries counted in total


#: one tally per cache folder in this process: four stores open on one folder, each counting
#: only its own writes, held 1.24x the limit in one process
_TALLIES: dict[str, _Tally] = {}
_TALLIES_LOCK = threading.Lock()


def _reset_after_fork() -> None:
    """Fresh locks in a forked child (called by the filesystem's fork hook): a lock another
    thread held at the fork would never be released there."""
    global _TALLIES_LOCK
    _TALLIES_LOCK = threading.Lock()
    for tally in _TALLIES.values():
        tally.lock = threading.Lock()


def _tally_of(root: Path) -> _Tally:
    with _TALLIES_LOCK:
        return _TALLIES.setdefault(str(root), _Tally())


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _key_digest(server: str, path: str, version: str, key: str) -> bytes:
    """The 16 bytes in an entry's header that tie it to its key (see the module docstring)."""
    return hashlib.sha256("\n".join(("entry", server, path, version, key)).encode()).digest()[:16]


class ChunkCache:
    """Chunk bytes on local disk, keyed by (server, dataset, version, chunk).

    Parameters
    ----------
    root
        The cache folder (created if missing). Several caches, threads and processes may share it.
    size_limit
        Bytes kept at most (approximately, see the module docstring); ``None`` for no limit.

    Notes
    -----
    Thread-safe and process-safe (atomic renames; deletions tolerate races). Picklable by its
    constructor arguments.
    """

    def __init__(self, *, root: str | os.PathLike[str], size_limit: int | None = 2 * 2**30) -> None:
        if size_limit is not None and (not isinstance(size_limit, int) or size_limit <= 0):
            raise ValueError(
                f"Expected a positive integer number of bytes (or None) for cache_size_limit. "
                f"Got {size_limit!r} instead."
            )
        if not str(root).strip():
            # Path("") is the working directory: entries would litter it
            raise ValueError(
                "Expected a folder for cache_storage. Got an empty string instead; pass None to "
                "read without a cache."
            )
        # absolute, with ~ expanded: a pickled copy in a dask worker started in another folder
        # must use the same folder, and "~/cache" must not create a folder named "~"
        self.root = Path(root).expanduser().absolute()
        self.size_limit = size_limit
        #: the running total of the folder, shared by the process's caches of it (see _account)
        self._tally = _tally_of(self.root)
        self._known_versions: dict[str, str] = {}
        self._write_failed = False
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._warn_unwritable(exc)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return _rebuild, (str(self.root), self.size_limit)

    def __repr__(self) -> str:
        return f"ChunkCache(root={str(self.root)!r}, size_limit={self.size_limit})"

    # -- layout ------------------------------------------------------------------------------------

    def _dataset_dir(self, server: str, path: str) -> Path:
        return self.root / _digest(f"{server}\n{path}")

    def _entry(self, server: str, path: str, version: str, key: str) -> Path:
        return self._dataset_dir(server, path) / _digest(version) / f"{key}{_SUFFIX}"

    # -- versions ----------------------------------------------------------------------------------

    def set_version(self, server: str, path: str, version: str) -> None:
        """Record the current ``version`` of a dataset and drop the entries of any other version."""
        ds = self._dataset_dir(server, path)
        ident = f"{server}\n{path}"
        if self._known_versions.get(ident) == version:
            return
        keep = _digest(version)
        try:
            children = list(ds.iterdir()) if ds.is_dir() else []
        except OSError:  # an unreadable cache folder: nothing to drop
            children = []
        for child in children:
            if child.name != keep and _is_digest(child.name) and child.is_dir():
                freed, files = _dir_usage(child, levels=0)
                shutil.rmtree(child, ignore_errors=True)
                with self._tally.lock:
                    if self._tally.total is not None:
                        self._tally.total = max(0, self._tally.total - freed)
                        self._tally.entries = max(0, self._tally.entries - files)
        self._known_versions[ident] = version

    def superseded(self, server: str, path: str, version: str) -> bool:
        """Whether another version of the dataset has entries while ``version`` has none: a
        process that read the dataset at another version since dropped this one's (see
        :meth:`set_version`), so the dataset has probably changed on the server."""
        ds = self._dataset_dir(server, path)
        keep = _digest(version)
        try:
            names = [c.name for c in ds.iterdir()] if ds.is_dir() else []
        except OSError:
            return False
        return keep not in names and any(_is_digest(n) and n != keep for n in names)

    # -- entries -----------------------------------------------------------------------------------

    def get(self, server: str, path: str, version: str, key: str) -> bytes | None:
        """The cached bytes, or ``None`` on a miss (also for an entry that fails its checks)."""
        entry = self._entry(server, path, version, key)
        try:
            with open(entry, "rb") as f:
                header = f.read(_HEADER.size)
                payload = _check(header, f.read(), _key_digest(server, path, version, key))
        except OSError:  # missing (a miss), or unreadable
            return None
        if payload is None:
            with contextlib.suppress(OSError):
                entry.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(entry)  # recency for LRU
        return payload

    def put(
        self,
        server: str,
        path: str,
        version: str,
        key: str,
        payload: bytes,
        *,
        private: bool = False,
    ) -> None:
        """Store ``payload`` atomically (write a temporary file, then rename it into place);
        ``private``: readable by the owner only (data read with credentials)."""
        if self.size_limit is not None and len(payload) + _HEADER.size > self.size_limit:
            self._warn_too_big(len(payload))
            self._account(0)  # still trim a folder filled under a larger limit
            return
        entry = self._entry(server, path, version, key)
        header = _HEADER.pack(
            _MAGIC,
            _FORMAT,
            len(payload),
            zlib.crc32(payload),
            _key_digest(server, path, version, key),
        )
        for attempt in (1, 2):
            try:
                entry.parent.mkdir(parents=True, exist_ok=True)
                with atomic_write(entry, prefix=_TMP_PREFIX, private=private) as f:
                    f.write(header)
                    f.write(payload)
                break
            except OSError as exc:  # a cache that cannot be written must not fail the read
                if isinstance(exc, FileNotFoundError):
                    # another process dropped this dataset's folder (a new version, eviction)
                    # between mkdir and the rename: try once more, then skip this entry quietly
                    # (the once-per-cache warning is kept for folders that cannot be written)
                    if attempt == 1:
                        continue
                    return
                self._warn_unwritable(exc)
                return
        self._account(len(payload) + _HEADER.size, keep=str(entry))

    def _account(self, added: int, keep: str | None = None) -> None:
        """Add ``added`` bytes to the folder's running total (shared by this process's caches of
        it) and evict when it is over the limit. The process's first write to the folder scans
        it with :meth:`evict` (the total, and the stale temporary files of killed writers,
        which would otherwise be removed only once the folder is over its limit). So does
        every tenth of the limit written since the last scan: the running total counts this
        process's writes only, and N processes filling one folder, each under the limit by its
        own count, held up to N times the limit."""
        with self._tally.lock:
            first = self._tally.total is None
            # the first write starts the total at 0 so that other threads' first writes do not
            # scan too; the scan (outside the lock: a fork meanwhile must not inherit it held)
            # then sets the real total
            self._tally.total = 0 if self._tally.total is None else self._tally.total + added
            self._tally.entries += 1 if added else 0
            # an entry takes a block at least (see max_entries)
            self._tally.since_scan += max(added, _BLOCK) if added else 0
            over = self.size_limit is not None and (
                self._tally.total > self.size_limit or self._tally.entries > self.max_entries
            )
            rescan = self.size_limit is not None and self._tally.since_scan * 10 >= self.size_limit
            if first or over or rescan:
                self._tally.since_scan = 0
        if first or over or rescan:
            self.evict(keep)

    def _warn_too_big(self, nbytes: int) -> None:
        """Log once per process and folder that chunks larger than the limit are not cached."""
        key = (str(self.root), self.size_limit)
        if key not in _TOO_BIG_WARNED:
            _TOO_BIG_WARNED.add(key)
            logger.warning(
                "b2store: a Caterva2 chunk of %d bytes is larger than cache_size_limit=%d; "
                "such chunks are not cached. Raise cache_size_limit to cache them.",
                nbytes,
                self.size_limit,
            )

    def _warn_unwritable(self, exc: OSError) -> None:
        """Log once per process and folder that entries cannot be written (reads go on without
        caching): every open makes a cache object of its own, so once per object repeated the
        warning for each array of a read-only shared cache."""
        if not self._write_failed:
            self._write_failed = True
            if str(self.root) in _UNWRITABLE_WARNED:
                return
            _UNWRITABLE_WARNED.add(str(self.root))
            logger.warning(
                "b2store: cannot write the Caterva2 chunk cache in %s (%s); reading without "
                "caching. Pass a writable cache_storage folder, or cache_storage=None.",
                self.root,
                exc,
            )

    # -- size and eviction -------------------------------------------------------------------------

    @property
    def max_entries(self) -> int:
        """The entries kept at most: one per 4 KiB of the limit (at least one), the least disk
        space a file takes; no bound without a limit."""
        if self.size_limit is None:
            return 2**63
        return max(1, self.size_limit // _BLOCK)

    def size(self) -> int:
        """Bytes of all complete entries under the root."""
        return _dir_usage(self.root, levels=2)[0]

    def evict(self, keep: str | None = None) -> None:
        """Drop least recently used entries to 90 % of the limit; clean stale temp files.
        ``keep``: the path of an entry just written, kept if it alone fits the limit."""
        entries: list[tuple[float, int, str]] = []
        now = time.time()
        for full in _files(self.root, levels=2):
            name = os.path.basename(full)
            if not (name.startswith(_TMP_PREFIX) or name.endswith(_SUFFIX)):
                continue  # not the cache's: left alone
            try:
                st = os.stat(full)
            except OSError:
                continue
            if not name.startswith(_TMP_PREFIX):
                entries.append((st.st_mtime, st.st_size, full))
            elif is_stale_temp(name, st.st_mtime, _TMP_PREFIX, now):
                with contextlib.suppress(OSError):
                    os.unlink(full)
        total = sum(size for _t, size, _p in entries)
        count = len(entries)
        if self.size_limit is not None and (total > self.size_limit or count > self.max_entries):
            target = int(self.size_limit * 0.9)
            target_count = max(1, int(self.max_entries * 0.9))
            entries.sort()
            for _mtime, size, full in entries:
                if total <= target and count <= target_count:
                    break
                if full == keep and size <= self.size_limit:
                    # the entry just written: a limit of one chunk deleted each chunk right
                    # after writing it (down to 90 %), so such a cache never hit
                    continue
                with contextlib.suppress(OSError):
                    os.unlink(full)
                    total -= size
                    count -= 1
        with self._tally.lock:
            self._tally.total = total
            self._tally.entries = count

    def clear(self) -> None:
        """Remove every entry (the folder itself stays; a folder removed by hand is empty).
        Only the cache's own dataset folders go: anything else found there stays."""
        try:
            children = list(self.root.iterdir())
        except FileNotFoundError:
            children = []
        for child in children:
            if _is_digest(child.name) and child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
        with self._tally.lock:
            self._tally.total = 0
            self._tally.entries = 0
        self._known_versions.clear()


def _rebuild(root: str, size_limit: int | None) -> ChunkCache:
    return ChunkCache(root=root, size_limit=size_limit)


def _check(header: bytes, payload: bytes, key_digest: bytes) -> bytes | None:
    """``payload`` if ``header`` is ours, names the key ``key_digest`` stands for and its
    length and CRC-32 match, else ``None``."""
    if len(header) < _HEADER.size:
        return None
    magic, fmt, length, crc, digest = _HEADER.unpack(header)
    if magic != _MAGIC or fmt != _FORMAT or digest != key_digest:
        return None
    if length != len(payload) or zlib.crc32(payload) != crc:
        return None
    return payload


def _is_digest(name: str) -> bool:
    """Whether ``name`` is a folder name of the cache (:func:`_digest`)."""
    return len(name) == 32 and all(c in "0123456789abcdef" for c in name)


def _files(root: Path | str, levels: int) -> Iterator[str]:
    """The files ``levels`` cache folders below ``root`` (``<dataset>/<version>/`` for 2).

    Only folders named as the cache names them are entered: a cache_storage given as a folder
    that holds other things too (a home or project folder, /tmp) had all of it walked, and
    its ``*.c2c`` and old ``.tmp-*`` files deleted by the eviction; ``clear()`` emptied it.
    """
    base = os.fspath(root)
    for dirpath, dirs, files in os.walk(base):
        rel = os.path.relpath(dirpath, base)
        depth = 0 if rel == "." else rel.count(os.sep) + 1
        dirs[:] = [d for d in dirs if depth < levels and _is_digest(d)]
        if depth == levels:
            for name in files:
                yield os.path.join(dirpath, name)


def _dir_usage(root: Path | str, levels: int) -> tuple[int, int]:
    """Bytes and number of the complete entries ``levels`` cache folders below ``root``."""
    total = count = 0
    for full in _files(root, levels):
        if full.endswith(_SUFFIX):
            with contextlib.suppress(OSError):
                total += os.stat(full).st_size
                count += 1
    return total, count
