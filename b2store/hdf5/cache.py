"""Index caches: in memory (per process) and as sidecar files keyed by the HDF5 file's identity.

Contract: a cached :class:`~b2store.hdf5.index.FileIndex` is reused only when the key matches
exactly: the file's URL, size and modification stamp (for a local file its mtime, inode and
ctime, which a rewrite that restores the mtime still changes; else the mtime, ETag or
Last-Modified the target filesystem reports) plus every option that changes the view (Zarr
format, unsupported policy, external links). A file whose target reports no modification stamp
is never cached (neither on disk nor in memory). The index also records the stamps of the other
files it was built from (virtual dataset sources, followed external links); the filesystem
rebuilds it when one of those has changed.

Sidecar files are ``.npz`` archives written atomically (temp file + rename) and read with
``allow_pickle=False``: a damaged or foreign file is ignored and rebuilt, never trusted.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import tempfile
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from b2store.hdf5.index import ChunkTable, FileIndex

__all__ = [
    "FORMAT",
    "MemoryCache",
    "default_cache_dir",
    "has_sidecar",
    "load_sidecar",
    "save_sidecar",
]

#: Sidecar format; 6: local files (and their sources) are also keyed by inode and ctime; 7:
#: compound attributes always skipped, a _FillValue outside an integer dtype never the fill; 8:
#: contiguous data split along the first axis whose trailing block fits (not always axis 0); 9:
#: rows of several-row contiguous data split evenly or kept whole (no short chunk per row); 10:
#: datasets with fill time "never" fill with zeros (what h5py reads), not their fill value;
#: NUL-terminated fixed-length strings decode through b2store_hdf5 with ``nullterm``; external
#: links and VDS sources of http(s)/s3/... files resolve (indexes without them are stale); 11:
#: v2 views serve fill chunks where zarr's null fill_value does not read as zeros (zarr 3.1
#: fills structured dtypes with b"0" in bytes fields).
FORMAT = "b2store-hdf5-index-13"


class MemoryCache:
    """A small thread-safe LRU of indexes shared by all filesystem instances of a process."""

    def __init__(self, maxsize: int = 64) -> None:
        self._lock = threading.Lock()
        self._data: OrderedDict[str, FileIndex] = OrderedDict()
        self.maxsize = maxsize

    def get(self, key: str) -> FileIndex | None:
        with self._lock:
            idx = self._data.get(key)
            if idx is not None:
                self._data.move_to_end(key)
            return idx

    def put(self, key: str, index: FileIndex) -> None:
        with self._lock:
            self._data[key] = index
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def default_cache_dir() -> Path:
    """``hdf5-index/`` below b2store's cache folder: ``$B2STORE_CACHE``, ``~/.cache/b2store``."""
    from b2store._paths import cache_home

    return cache_home() / "hdf5-index"


def _sidecar(folder: Path, key: str) -> Path:
    return folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".npz")


def has_sidecar(folder: Path, key: str) -> bool:
    """Whether a sidecar file for ``key`` exists under ``folder`` (valid or not)."""
    return _sidecar(folder, key).is_file()


#: Folders a sidecar could not be written to in this process: not tried again (each attempt
#: serialises the whole index first, on every open of a file already indexed in memory).
_UNWRITABLE: set[Path] = set()


def save_sidecar(folder: Path, key: str, index: FileIndex) -> None:
    """Write ``index`` under ``folder`` for ``key`` (errors are ignored: the cache is optional;
    a folder that fails once is not tried again by this process)."""
    if folder in _UNWRITABLE:
        return
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    tables = []
    for i, t in enumerate(index.tables.values()):
        for name in ("lin", "offsets", "sizes", "masks"):
            arrays[f"t{i}_{name}"] = getattr(t, name)
        if t.url_index is not None:
            arrays[f"t{i}_url_index"] = t.url_index
        tables.append(
            {
                "path": t.path,
                "url": t.url,
                "urls": list(t.urls),
                "shape": list(t.shape),
                "chunks": list(t.chunks),
                "grid": list(t.grid),
                "inline": {str(k): base64.b64encode(v).decode() for k, v in t.inline.items()},
                "fill_chunk": None
                if t.fill_chunk is None
                else base64.b64encode(t.fill_chunk).decode(),
                "pad_to": t.pad_to,
                "masked": t.masked,
                "zero_skip": t.zero_skip,
            }
        )
    header = {
        "format": FORMAT,
        "key": key,
        "zarr_format": index.zarr_format,
        "meta": {k: v.decode() for k, v in index.meta.items()},
        "tables": tables,
        "notes": list(index.notes),
        "sources": [list(s) for s in index.sources],
    }
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    tmp = None
    # A sidecar is an optimisation: failing to write one (disk full, read-only) is not an error.
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, _sidecar(folder, key))
        tmp = None
    except OSError:
        _UNWRITABLE.add(folder)
        return
    finally:
        if tmp is not None:  # never leave a half-written temporary file behind
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def load_sidecar(folder: Path, key: str) -> FileIndex | None:
    """The index stored for ``key``, or None when absent, stale or unreadable."""
    path = _sidecar(folder, key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(z["header"].tobytes().decode())
            if header.get("format") != FORMAT or header.get("key") != key:
                return None
            tables = {}
            for i, t in enumerate(header["tables"]):
                tables[t["path"]] = ChunkTable(
                    path=t["path"],
                    url=t["url"],
                    shape=tuple(t["shape"]),
                    chunks=tuple(t["chunks"]),
                    grid=tuple(t["grid"]),
                    lin=z[f"t{i}_lin"].astype(np.int64),
                    offsets=z[f"t{i}_offsets"].astype(np.uint64),
                    sizes=z[f"t{i}_sizes"].astype(np.uint64),
                    masks=z[f"t{i}_masks"].astype(np.uint32),
                    inline={int(k): base64.b64decode(v) for k, v in t["inline"].items()},
                    fill_chunk=None
                    if t["fill_chunk"] is None
                    else base64.b64decode(t["fill_chunk"]),
                    pad_to=int(t["pad_to"]),
                    masked=bool(t["masked"]),
                    zero_skip=bool(t["zero_skip"]),
                    urls=tuple(t["urls"]),
                    url_index=z[f"t{i}_url_index"].astype(np.uint16)
                    if f"t{i}_url_index" in z.files
                    else None,
                )
            return FileIndex(
                zarr_format=int(header["zarr_format"]),
                meta={k: v.encode() for k, v in header["meta"].items()},
                tables=tables,
                notes=tuple(header["notes"]),
                sources=tuple((str(u), str(st)) for u, st in header["sources"]),
            )
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        EOFError,
        zipfile.BadZipFile,
        json.JSONDecodeError,
    ):
        return None  # damaged (truncated, bit flips) or foreign: rebuilt by the caller
