"""Whole-chunk reads of b2store's xarray engines (``"b2h5"``, ``"caterva2"``): Blosc2 chunks
decoded straight into dask's task results, without zarr's codec pipeline and its copy.

Contract
--------
:func:`whole_chunk_wrapper` returns, for a Zarr array whose only codec is ``b2store.b2nd``
(every Blosc2 dataset of an HDF5 file's b2h5 view, every ``.b2nd`` dataset of a Caterva2
server), a drop-in replacement of xarray's ``ZarrArrayWrapper`` (a subclass: vectorized,
orthogonal and async indexing are its own), and ``None`` for any other array (which keeps
xarray's wrapper). :class:`WholeChunkStore` wraps xarray's ``ZarrStore`` of a group so that
every such variable gets one; the engines open datasets through it.

A basic selection made of whole chunks (a dask task of ``chunks={}``, or of chunks that are
multiples of the stored chunks; chunks at the array's edge end at the edge) reads each chunk's
bytes from the store's filesystem (``cat_file`` of its key, or ``_cat_file`` on zarr's event
loop for an async filesystem: the same bytes, requests, caches, checks and errors as zarr's
reads) and decodes them with the array's own codec object
(:meth:`~b2store.codecs.zarr3.B2ndCodec.decode_chunk`). One chunk is returned as decoded (a
compact copy when it is cropped at the edge), several are decoded on a shared pool of threads (one
per core: a read without dask, or a dask task of several chunks, uses every core as zarr's
pipeline does) and placed in one new array. A missing key (an unallocated or all-zero chunk)
reads as the array's ``fill_value``, as zarr reads it. A chunk that does not decode raises
:class:`~b2store.errors.CodecError` naming the file or URL and the key (zarr's pipeline names
neither; for b2h5, also the file that holds the chunk where that is another one: a virtual
dataset's source, an external link's target). Every other selection goes through zarr
unchanged.

Why: with one dask task per chunk, zarr decodes each chunk into a buffer of its own and copies
it into the task's output on its one event-loop thread; that serial copy was the largest cost
between a dask read and the decompress-only ceiling (docs/benchmarks.md).
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any

import numpy as np
from xarray.backends.common import AbstractDataStore
from xarray.backends.zarr import ZarrArrayWrapper

from b2store._cores import usable_cores
from b2store.errors import CodecError

__all__ = [
    "ZARR_ENGINE_PARAMETERS",
    "WholeChunkStore",
    "open_read_only_group",
    "store_filesystem",
    "whole_chunk_wrapper",
]

#: The ``open_dataset`` parameters b2store's engines share with xarray's zarr engine (each adds
#: its own after these).
ZARR_ENGINE_PARAMETERS = (
    "filename_or_obj",
    "mask_and_scale",
    "decode_times",
    "concat_characters",
    "decode_coords",
    "drop_variables",
    "use_cftime",
    "decode_timedelta",
    "group",
    "mode",
    "consolidated",
    "storage_options",
    "zarr_format",
)

#: dtype kinds read here; others (records, strings) go through zarr.
_KINDS = "biufc"

_POOL_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None


def _forget_pool() -> None:
    """In a forked child: the parent's pool threads do not exist here, and its lock may have
    been held by one of them at the fork."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _pool() -> ThreadPoolExecutor:
    """The process's decode pool, one thread per usable core (made again after a fork)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(usable_cores(), thread_name_prefix="b2store-whole-chunks")
        return _POOL


def _run_all(jobs: list[Callable[[], None]]) -> None:
    """Run *jobs* on the pool (in this thread when there is one job or one core); the first
    error is raised once the jobs already started have ended, the rest are cancelled."""
    if len(jobs) == 1 or usable_cores() == 1:
        for job in jobs:
            job()
        return
    futures: list[Future[None]] = [_pool().submit(job) for job in jobs]
    _, pending = wait(futures, return_when=FIRST_EXCEPTION)
    for f in pending:
        f.cancel()
    wait(pending)  # those already running end before the caller sees the error
    for f in futures:  # in submission order: the same error on every run
        exc = None if f.cancelled() else f.exception()
        if exc is not None:
            raise exc


def store_filesystem(store: Any) -> Any:
    """The fsspec filesystem under xarray's ZarrStore *store* (the synchronous one that zarr
    wraps, where it wraps one), or None for a store of another kind."""
    try:
        fs = store.zarr_group.store.fs
    except AttributeError:
        return None
    return getattr(fs, "sync_fs", fs)


def open_read_only_group(
    url: str,
    *,
    group: str | None,
    consolidated: bool | None,
    storage_options: dict[str, Any],
    zarr_format: int | None,
    cache_members: bool,
) -> Any:
    """xarray's ``ZarrStore`` of *group* of the Zarr store at *url*, opened read-only as
    xarray's zarr engine opens it (the engines then wrap it in a :class:`WholeChunkStore`)."""
    from xarray.backends.zarr import ZarrStore

    return ZarrStore.open_group(
        url,
        group=group,
        mode="r",
        consolidated=consolidated,
        consolidate_on_close=False,
        storage_options=storage_options,
        use_zarr_fill_value_as_mask=None,  # as ZarrBackendEntrypoint does (pydata/xarray#10269)
        zarr_format=zarr_format,
        cache_members=cache_members,
    )


class WholeChunkStore(AbstractDataStore):
    """xarray's read-only ``ZarrStore`` of a group whose Blosc2 variables read whole chunks
    without zarr's pipeline (:func:`whole_chunk_wrapper`); everything else is the store's.

    The chunks are read through *fs*, the filesystem under *store* (:func:`store_filesystem`);
    ``None`` reads every variable through zarr.
    """

    def __init__(self, store: Any, *, fs: Any) -> None:
        self._store = store
        self._fs = fs

    def load(self) -> tuple[Any, Any]:
        from xarray.core.utils import FrozenDict

        loaded, attributes = self._store.load()
        variables = {name: self._whole_chunk_reads(name, var) for name, var in loaded.items()}
        return FrozenDict(variables), attributes

    def _whole_chunk_reads(self, name: str, var: Any) -> Any:
        """*var* reading whole Blosc2 chunks without zarr's pipeline where it can, else itself."""
        from xarray import Variable
        from xarray.core.indexing import LazilyIndexedArray

        members = getattr(self._store, "members", None)
        if self._fs is None or not isinstance(members, Mapping) or name not in members:
            return var
        wrapper = whole_chunk_wrapper(members[name], self._fs)
        if wrapper is None:
            return var
        return Variable(var.dims, LazilyIndexedArray(wrapper), var.attrs, var.encoding)

    def get_encoding(self) -> dict[str, Any]:
        return dict(self._store.get_encoding())

    def close(self) -> None:
        self._store.close()


def whole_chunk_wrapper(zarr_array: Any, fs: Any) -> ZarrArrayWrapper | None:
    """A :class:`WholeChunkArrayWrapper` of *zarr_array* read through the fsspec filesystem
    *fs* (the one zarr reads it through), or ``None``.

    ``None`` unless *zarr_array* is a Zarr v3 array with a regular chunk grid, a numeric or
    bool dtype and ``b2store.b2nd`` as its only codec.
    """
    from b2store.codecs.zarr3 import B2ndCodec

    try:
        meta = zarr_array.metadata
        codecs = tuple(meta.codecs)
        chunks = tuple(int(c) for c in zarr_array.chunks)
        dtype = np.dtype(zarr_array.dtype)
        root = str(getattr(zarr_array.store, "path", "") or "")
    except (AttributeError, TypeError, ValueError, NotImplementedError):
        return None
    if (
        meta.zarr_format != 3
        or fs is None
        or len(codecs) != 1
        or not isinstance(codecs[0], B2ndCodec)
        or dtype.kind not in _KINDS
        or not zarr_array.shape
        or 0 in chunks
    ):
        return None
    prefix = "/".join(p.strip("/") for p in (root, str(zarr_array.path)) if p.strip("/"))
    return WholeChunkArrayWrapper(zarr_array, fs, prefix, codecs[0], chunks)


class WholeChunkArrayWrapper(ZarrArrayWrapper):
    """xarray's ``ZarrArrayWrapper`` whose whole-chunk basic selections skip zarr's pipeline."""

    __slots__ = ("_chunks", "_codec", "_fill", "_fs", "_prefix")

    def __init__(
        self,
        zarr_array: Any,
        fs: Any,
        prefix: str,
        codec: Any,
        chunks: tuple[int, ...],
    ) -> None:
        super().__init__(zarr_array)  # sets self.dtype: the numeric dtype, native byte order
        self._fs = fs
        self._prefix = prefix
        self._codec = codec
        self._chunks = chunks
        self._fill = np.asarray(zarr_array.fill_value, dtype=self.dtype)

    def _getitem(self, key: Any) -> Any:
        grid = self._whole_chunks(key)
        if grid is None:
            return super()._getitem(key)
        starts, counts, shape = grid
        if math.prod(counts) == 1:
            return self._read(starts)
        out = np.empty(shape, self.dtype)

        def place(offsets: tuple[int, ...]) -> None:
            coords = tuple(s + o for s, o in zip(starts, offsets, strict=True))
            block = self._read(coords)
            where = tuple(
                slice(o * c, o * c + n)
                for o, c, n in zip(offsets, self._chunks, block.shape, strict=True)
            )
            out[where] = block

        _run_all([functools.partial(place, offsets) for offsets in np.ndindex(*counts)])
        return out

    def _whole_chunks(
        self, key: Any
    ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None:
        """(first chunk's coordinates, chunks per dimension, the selection's shape) if *key* is
        made of whole chunks (ending at the array's edge where it does), else None."""
        if not isinstance(key, tuple) or len(key) != len(self.shape):
            return None
        starts, counts, shape = [], [], []
        for k, size, c in zip(key, self.shape, self._chunks, strict=True):
            if not isinstance(k, slice) or k.step not in (None, 1):
                return None
            a, b, _ = k.indices(size)
            if b <= a or a % c or (b % c and b != size):
                return None
            starts.append(a // c)
            counts.append(-(-(b - a) // c))
            shape.append(b - a)
        return tuple(starts), tuple(counts), tuple(shape)

    def _cat(self, path: str) -> Any:
        """The stored bytes of key *path*, as zarr would read them."""
        if getattr(self._fs, "async_impl", False):  # on zarr's loop, where zarr reads it
            from zarr.core.sync import sync

            return sync(self._fs._cat_file(path))
        return self._fs.cat_file(path)

    def _where(self, path: str) -> str:
        """Which file or URL and key *path* is (b2h5 also names a VDS source or link target)."""
        where = getattr(self._fs, "chunk_where", None)
        if where is not None:
            return str(where(path))
        return f"{self._fs.unstrip_protocol(path)}"

    def _read(self, coords: tuple[int, ...]) -> np.ndarray:
        """Chunk *coords*, cropped at the array's edge: decoded, or the fill where missing."""
        meta = self._array.metadata
        key = meta.chunk_key_encoding.encode_chunk_key(coords)
        crop = tuple(
            min(c, size - i * c)
            for i, c, size in zip(coords, self._chunks, self.shape, strict=True)
        )
        path = f"{self._prefix}/{key}" if self._prefix else key
        try:
            raw = self._cat(path)
        except FileNotFoundError:
            return np.full(crop, self._fill, self.dtype)
        try:
            arr = self._codec.decode_chunk(raw, shape=self._chunks, dtype=self.dtype)
        except CodecError as err:  # zarr's pipeline cannot say which chunk failed; here we can
            raise CodecError(f"{self._where(path)}: {err}") from err
        if crop != self._chunks:  # a compact copy: a view would keep the whole chunk alive
            arr = arr[tuple(slice(0, n) for n in crop)].copy()
        return arr
