"""Index caches: in memory (per process) and as sidecar files keyed by the HDF5 file's identity.

Contract: a cached :class:`~b2store.hdf5.index.FileIndex` is reused only when the key matches
exactly: the file's URL, size and modification stamp (for a local file its mtime, inode and
ctime, which a rewrite that restores the mtime still changes; else the mtime, ETag or
Last-Modified the target filesystem reports) plus every option that changes the view (Zarr
format, unsupported policy, external links). A file whose target reports no modification stamp
is never cached (neither on disk nor in memory). The index also records the stamps of the other
files it was built from (virtual dataset sources, followed external links); the filesystem
rebuilds it when one of those has changed.

Sidecar files are ``.npz`` (zip) archives written atomically (temp file + rename): a JSON
header, ``.npy`` arrays read without pickle and the inlined chunks as raw bytes. Every member is
read to its end, where zipfile checks its CRC-32: a damaged, foreign or older file is ignored and
rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from b2store._atomic import atomic_write, remove_stale_temps
from b2store._zarrmeta import RenderedMeta
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
#: fills structured dtypes with b"0" in bytes fields); 14: inlined chunks stored as binary
#: (``inline.bin``) instead of base64 in the JSON header, every member read to its end; 15:
#: variable-length string attributes and attribute names that are no UTF-8 read with U+FFFD
#: (not lone surrogates, nor a ``"b'...'"`` key); 16: groups reached again through hard links
#: are presented whole or not at all (15's bound could cut one); compounds with fields out of
#: offset order repacked by field name (were cast by position); 17: the notes to warn about at
#: each open (``FileIndex.warnings``) are stored; 18: an unsigned variable's v3 ``_FillValue`` with
#: ``_Unsigned="false"`` published as its signed item (xarray could not open it); 19: that
#: item computed in native byte order (18 byte-swapped it for big-endian variables); 20:
#: ``FileIndex.xarray_hints`` stored (the xarray engine's attribute types and unlimited dims);
#: 21: each node's own metadata document, not every group's consolidated one (quadratic in depth);
#: 22: attributes holding variable-length sequences of a non-native byte order carry the file's
#: values (h5py reads ``>u8`` [1, 2] as [2**56, 2**57]); 23: links crossing an external link
#: (soft links through one, external links through another; VDS sources behind links) are
#: followed link by link or left out (22 served another file's offsets), VDS of contiguous
#: sources and frames of lower rank are served, overlapping VDS mappings refused.
FORMAT = "b2store-hdf5-index-23"


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


def _nbytes(value: bytes) -> int:
    return memoryview(value).nbytes


#: Name prefix of sidecar temporary files: only these are ever removed (a user's index_cache
#: folder may hold other programs' files).
_TEMP_PREFIX = "b2store-sidecar-"


def save_sidecar(folder: Path, key: str, index: FileIndex, *, shared: bool = False) -> None:
    """Write ``index`` under ``folder`` for ``key`` (errors are ignored: the cache is optional;
    a folder that fails once is not tried again by this process).

    The archive holds ``header.json`` (everything but the bulk data), one ``.npy`` member per
    chunk-table array and ``inline.bin``: the inlined chunks and fill chunks of every table,
    back to back, written and read as they are (no text encoding, no copy of the whole).
    """
    if folder in _UNWRITABLE:
        return
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    tables = []
    blob: list[tuple[int, int, bytes]] = []  # (table, linear index or -1 for the fill, bytes)
    for i, t in enumerate(index.tables.values()):
        for name in ("lin", "offsets", "sizes", "masks"):
            arrays[f"t{i}_{name}"] = getattr(t, name)
        if t.url_index is not None:
            arrays[f"t{i}_url_index"] = t.url_index
        blob += [(i, int(k), v) for k, v in t.inline.items()]
        if t.fill_chunk is not None:
            blob.append((i, -1, t.fill_chunk))
        tables.append(
            {
                "path": t.path,
                "url": t.url,
                "urls": list(t.urls),
                "shape": [int(n) for n in t.shape],
                "chunks": [int(n) for n in t.chunks],
                "grid": [int(n) for n in t.grid],
                "rows": int(t.lin.size),
                "url_index": t.url_index is not None,
                "pad_to": int(t.pad_to),
                "masked": bool(t.masked),
                "zero_skip": bool(t.zero_skip),
            }
        )
    # the largest first: each is then read in one piece, without copying (see _read_inline)
    blob.sort(key=lambda e: -_nbytes(e[2]))
    header = {
        "format": FORMAT,
        "key": key,
        "zarr_format": index.zarr_format,
        # each node's own document once (the groups' consolidated ones are assembled from
        # them: storing those held a node once per enclosing group, quadratic in depth)
        "meta": _meta_parts(index.meta),
        "tables": tables,
        "inline": [[i, k, _nbytes(v)] for i, k, v in blob],
        "notes": list(index.notes),
        "warnings": list(index.warnings),
        "sources": [list(s) for s in index.sources],
        "xarray_hints": index.xarray_hints,
    }
    # A sidecar is an optimisation: failing to write one (disk full, read-only) is not an error.
    # It holds a file's metadata and inlined data: it is readable by others (as the umask
    # allows) only when the source file is readable by everyone (``shared``); then other users
    # of a shared cache folder (dask workers running as another user) read it instead of
    # re-indexing the file at every open. A half-written temporary file is never left behind.
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = _sidecar(folder, key)
        with (
            atomic_write(target, prefix=_TEMP_PREFIX, private=not shared) as fh,
            zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf,
        ):
            zf.writestr("header.json", json.dumps(header))
            for name, arr in arrays.items():
                with zf.open(name + ".npy", "w", force_zip64=True) as out:
                    np.lib.format.write_array(out, np.ascontiguousarray(arr), allow_pickle=False)
            with zf.open("inline.bin", "w", force_zip64=True) as out:
                for _, _, value in blob:
                    out.write(memoryview(value).cast("B"))
        remove_stale_temps(folder, _TEMP_PREFIX)
    except OSError:
        _UNWRITABLE.add(folder)
        return


def _meta_parts(meta: Any) -> dict[str, Any]:
    """What a sidecar stores of an index's metadata keys (see :func:`_meta_from_parts`)."""
    if not isinstance(meta, RenderedMeta):  # an index built by hand: every key consolidated
        meta = RenderedMeta(0, dict(meta), {}, [])
    zarr_format, own, groups, entries = meta.parts()
    return {
        "zarr_format": zarr_format,
        "own": {k: v.decode() for k, v in own.items()},
        "groups": groups,
        "entries": entries,
    }


def _meta_from_parts(doc: dict[str, Any]) -> RenderedMeta:
    own = {str(k): str(v).encode() for k, v in doc["own"].items()}
    groups = {str(k): str(v) for k, v in doc["groups"].items()}
    entries = [str(e) for e in doc["entries"]]
    if entries != sorted(entries) or not set(groups) <= set(own):
        raise _Damaged("meta")
    return RenderedMeta(int(doc["zarr_format"]), own, groups, entries)


class _Damaged(ValueError):
    """A sidecar that is not what this version wrote: read as a miss."""


def _read_array(zf: zipfile.ZipFile, name: str, rows: int, dtype: str) -> np.ndarray[Any, Any]:
    """Member ``name`` (a 1-d integer ``.npy`` of ``rows`` items) as ``dtype``.

    The shape in the ``.npy`` header is checked before reading, and the member is read to its
    end, where zipfile checks its CRC-32: a flipped bit in the shape read the array short, and
    a short read skipped the CRC check.
    """
    with zf.open(name + ".npy") as fp:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, stored = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, stored = np.lib.format.read_array_header_2_0(fp)
        else:
            raise _Damaged(name)
        if shape != (rows,) or stored.kind not in "iu" or fortran:
            raise _Damaged(name)
        nbytes = rows * stored.itemsize
        data = fp.read(nbytes)
        if len(data) != nbytes or fp.read(1):
            raise _Damaged(name)
    return np.frombuffer(data, dtype=stored).astype(dtype)


def _read_inline(
    zf: zipfile.ZipFile, entries: list[list[int]], ntables: int
) -> list[tuple[dict[int, bytes], bytes | None]]:
    """The inlined chunks and fill chunk of each table, from ``inline.bin``.

    Each entry is read as one ``bytes`` of its own (peak memory: the entry, not the whole
    member); the member is read to its end, so its CRC-32 is checked.
    """
    out: list[tuple[dict[int, bytes], bytes | None]] = [({}, None) for _ in range(ntables)]
    with zf.open("inline.bin") as fp:
        for i, k, size in entries:
            i, k, size = int(i), int(k), int(size)
            if not 0 <= i < ntables or k < -1 or size < 0:
                raise _Damaged("inline.bin")
            value = fp.read(size)
            if len(value) != size:
                raise _Damaged("inline.bin")
            if k == -1:
                out[i] = (out[i][0], value)
            else:
                out[i][0][k] = value
        if fp.read(1):
            raise _Damaged("inline.bin")
    return out


def load_sidecar(folder: Path, key: str) -> FileIndex | None:
    """The index stored for ``key``, or None when absent, stale or unreadable.

    Any failure to read it is a miss (the caller rebuilds the index): besides OSError and
    ValueError, zipfile raises NotImplementedError, RuntimeError or struct.error for flipped
    bits in its headers, which crashed the open.
    """
    path = _sidecar(folder, key)
    if not path.is_file():
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            with zf.open("header.json") as fp:
                header = json.loads(fp.read())  # read to the end: CRC-checked
            if header.get("format") != FORMAT or header.get("key") != key:
                return None
            specs = header["tables"]
            inline = _read_inline(zf, header["inline"], len(specs))
            tables = {}
            for i, t in enumerate(specs):
                rows = int(t["rows"])
                tables[t["path"]] = ChunkTable(
                    path=t["path"],
                    url=t["url"],
                    shape=tuple(int(n) for n in t["shape"]),
                    chunks=tuple(int(n) for n in t["chunks"]),
                    grid=tuple(int(n) for n in t["grid"]),
                    lin=_read_array(zf, f"t{i}_lin", rows, "int64"),
                    offsets=_read_array(zf, f"t{i}_offsets", rows, "uint64"),
                    sizes=_read_array(zf, f"t{i}_sizes", rows, "uint64"),
                    masks=_read_array(zf, f"t{i}_masks", rows, "uint32"),
                    inline=inline[i][0],
                    fill_chunk=inline[i][1],
                    pad_to=int(t["pad_to"]),
                    masked=bool(t["masked"]),
                    zero_skip=bool(t["zero_skip"]),
                    urls=tuple(t["urls"]),
                    url_index=_read_array(zf, f"t{i}_url_index", rows, "uint16")
                    if t["url_index"]
                    else None,
                )
            return FileIndex(
                zarr_format=int(header["zarr_format"]),
                meta=_meta_from_parts(header["meta"]),
                tables=tables,
                notes=tuple(header["notes"]),
                warnings=tuple(header["warnings"]),
                sources=tuple((str(u), str(st)) for u, st in header["sources"]),
                xarray_hints=header.get("xarray_hints"),
            )
    except Exception:  # damaged, truncated or foreign: rebuilt by the caller
        return None
