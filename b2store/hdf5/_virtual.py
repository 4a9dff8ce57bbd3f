"""Virtual datasets (H5D_VIRTUAL) mapped onto the chunks of their sources, where exact.

Contract: :func:`map_virtual` reads a virtual dataset's mappings and its sources' chunk indexes
(``chunk_iter``; metadata only, no chunk data) and returns :class:`VirtualChunks`: the chunk
table rows of the virtual dataset's Zarr view, each naming the file that holds it. It maps
"plain" virtual datasets only: every mapping puts a whole source dataset into one block of the
virtual dataset (the block may add or drop axes of length 1: 2-D frames stacked into a 3-D
array, unless Blosc2 chunks carry the source's n-D chunk shape), no two blocks overlap (HDF5
gives the later mapping's values there, even its fill), and either

* every source is chunked (same dtype, chunk shape, filters, string padding and fill value for
  all), each block starts on a chunk boundary, and a source's partial edge chunks only lie on
  the virtual dataset's own edge; or
* every source is contiguous and uncompressed (Lima and Bliss write these), each block spans
  all the axes after the first: the view's chunks are whole steps along the first axis (one or
  more frames), so that every chunk is one byte range of one source.

Mappings that select nothing are ignored (a virtual dataset with none left reads as all fill).
Soft and external links on a source's path are followed link by link (Eiger and Diamond
masters map ``"."``'s ``/entry/data/data_000001``, an external link to a data file); every file
other than the dataset's own is opened through the caller's ``open_external``, so it resolves as
HDF5 resolves it and the view reads each chunk from the file that holds it. ``%%`` in source
names is HDF5's escape of ``%``. Where ``HDF5_VDS_PREFIX`` or ``HDF5_EXT_PREFIX`` would make
HDF5 read another (local) file than b2store, that is an error: b2store does not search them.
Anything else raises the caller's ``fail(why)`` exception.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import h5py
import numpy as np

from b2store.hdf5 import metadata as md
from b2store.hdf5._chunk_rows import ChunkCollector
from b2store.hdf5._dtypes import nullterm_ranges, plain_dtype, stored_layout_issue
from b2store.hdf5._external import OpenExternal
from b2store.hdf5._fills import is_same_fill
from b2store.hdf5._links import check_env_prefix, follow_path

__all__ = ["VirtualChunks", "map_virtual"]

#: HDF5 filter id of Blosc2 (hdf5plugin), whose n-D chunks are b2nd frames of the chunk's shape
BLOSC2_FILTER = 32026

#: Largest chunk (bytes) made of several steps of contiguous sources, as index.py's
#: ``CONTIGUOUS_CHUNK_BYTES`` for contiguous datasets; one step is one chunk however large.
CONTIGUOUS_SOURCE_CHUNK_BYTES = 4 * 2**20


@dataclass(frozen=True, kw_only=True)
class VirtualChunks:
    """Where the chunks of a virtual dataset live: its sources' chunks, on its chunk grid.

    ``rows`` are (sorted linear chunk index, byte offset, byte size, filter mask), as in
    ``ChunkTable``; ``url_index`` gives the file of each row in ``urls``. ``dcpl`` is the
    sources' creation property list when they have filters (all sources share them), else None.
    """

    chunks: tuple[int, ...]
    dcpl: Any
    nullterm: tuple[tuple[int, int], ...]
    rows: tuple[np.ndarray[Any, Any], ...]
    urls: tuple[str, ...]
    url_index: np.ndarray[Any, np.dtype[np.uint16]]


@dataclass(frozen=True)
class _Placed:
    """A ``StoreInfo`` with its chunk offset in the virtual dataset's axes."""

    chunk_offset: tuple[int, ...]
    byte_offset: int
    size: int
    filter_mask: int


@dataclass(frozen=True)
class _Source:
    """One mapping: a whole source dataset in the block ``start``/``block`` of the view."""

    start: tuple[int, ...]
    block: tuple[int, ...]
    src: h5py.Dataset
    url: str
    name: str
    #: the virtual axis of each source axis (None: a length-1 axis the block drops)
    axes: tuple[int | None, ...] = ()


def _unescape(name: str) -> str:
    """A source file or dataset name as HDF5 opens it: ``%%`` stands for ``%`` (HDF5 refuses
    other ``%`` sequences in the names of mappings that are not unlimited)."""
    return name.replace("%%", "%")


def _axes(src_shape: tuple[int, ...], block: tuple[int, ...]) -> tuple[int | None, ...] | None:
    """The virtual axis of each source axis when the block holds the source's points in the
    same C order (equal shapes, or equal once the axes of length 1 are left out), else None."""
    if src_shape == block:
        return tuple(range(len(block)))
    src_axes = [i for i, n in enumerate(src_shape) if n != 1]
    v_axes = [j for j, n in enumerate(block) if n != 1]
    if [src_shape[i] for i in src_axes] != [block[j] for j in v_axes]:
        return None
    where: list[int | None] = [None] * len(src_shape)
    for i, j in zip(src_axes, v_axes, strict=True):
        where[i] = j
    return tuple(where)


def _placing(
    infos: ChunkCollector, axes: tuple[int | None, ...], ndim: int
) -> Callable[[Any], None]:
    """A ``chunk_iter`` callback giving ``infos`` each chunk at its offset in the virtual
    dataset's axes (``axes``: see :class:`_Source`)."""

    def place(info: Any) -> None:
        off = [0] * ndim
        for i, j in enumerate(axes):
            if j is not None:
                off[j] = info.chunk_offset[i]
        infos(_Placed(tuple(off), info.byte_offset, info.size, info.filter_mask))

    return place


def _overlap(boxes: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> bool:
    """Whether two of the (start, block) boxes share a point (a sweep along the axis where
    their starts differ most: stacked blocks are compared with their neighbours only)."""
    if len(boxes) < 2 or not boxes[0][0]:
        return len(boxes) > 1
    lo = np.array([b[0] for b in boxes], dtype=np.int64)
    hi = lo + np.array([b[1] for b in boxes], dtype=np.int64)
    axis = int(np.argmax([len(np.unique(lo[:, a])) for a in range(lo.shape[1])]))
    order = np.argsort(lo[:, axis], kind="stable")
    lo, hi = lo[order], hi[order]
    ends = np.searchsorted(lo[:, axis], hi[:, axis], side="left")
    for i, end in enumerate(ends):
        if end > i + 1:
            rest = slice(i + 1, int(end))
            if np.any(np.all((lo[rest] < hi[i]) & (hi[rest] > lo[i]), axis=1)):
                return True
    return False


def _fill_chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Chunks of about ``CONTIGUOUS_SOURCE_CHUNK_BYTES`` for a view that is all fill."""
    chunks = [max(1, n) for n in shape]
    for axis in range(len(shape)):
        trailing = math.prod(chunks[axis + 1 :]) * itemsize
        if trailing * chunks[axis] <= CONTIGUOUS_SOURCE_CHUNK_BYTES:
            break
        chunks[axis] = max(1, min(chunks[axis], CONTIGUOUS_SOURCE_CHUNK_BYTES // trailing))
        if chunks[axis] > 1 or axis == len(shape) - 1:
            break
    return tuple(chunks)


def map_virtual(
    ds: h5py.Dataset,
    *,
    url: str,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    fill: Any,
    open_external: OpenExternal | None,
    fail: Callable[[str], Exception],
) -> VirtualChunks:
    """The chunks of virtual dataset ``ds`` (of file ``url``, seen as ``shape`` and ``dtype``
    with fill ``fill``), or ``fail(why)`` raised when they cannot be mapped exactly."""
    shape = tuple(shape)
    sources: list[_Source] = []
    own_root: Any = None
    for m in ds.virtual_sources():
        vsel = m.vspace
        if vsel.get_select_type() == h5py.h5s.SEL_NONE:
            continue  # maps no point (h5py's ``layout[0:0] = ...``)
        if vsel.get_select_type() == h5py.h5s.SEL_ALL:
            # h5py's ``layout[...] = source``: one block covering the whole virtual dataset
            start, count, block = (0,) * len(shape), (1,) * len(shape), shape
        elif vsel.get_select_type() != h5py.h5s.SEL_HYPERSLABS or not vsel.is_regular_hyperslab():
            raise fail("a mapping is not one regular block")
        else:
            start, _stride, count, block = vsel.get_regular_hyperslab()
        if h5py.h5s.UNLIMITED in (*count, *block):
            raise fail("a mapping is unlimited: it grows with its source")
        if 0 in (*count, *block):
            continue  # maps no point (a block in a virtual dataset of length 0)
        if any(c != 1 for c in count):
            raise fail("a mapping repeats a block")
        file_name, dset_name = _unescape(m.file_name), _unescape(m.dset_name)
        what = f"source {file_name}:{dset_name}"
        if m.src_space.get_select_type() != h5py.h5s.SEL_ALL and not (
            m.src_space.get_select_type() == h5py.h5s.SEL_HYPERSLABS
            and m.src_space.get_select_npoints() == m.src_space.get_simple_extent_npoints()
        ):
            raise fail(f"{what} is used in part")
        try:
            if file_name == ".":
                if own_root is None:
                    own_root = ds.file["/"]
                src_root, src_url = own_root, url
            elif open_external is None:
                raise fail("no opener for source files")
            else:
                check_env_prefix("HDF5_VDS_PREFIX", url, file_name)
                src_file, src_url = open_external(url, file_name)
                src_root = src_file["/"]
            src, src_url = follow_path(src_root, src_url, dset_name, open_external, 0)
        except (OSError, KeyError, ValueError) as exc:
            raise fail(f"{what} does not resolve: {exc}") from exc
        if not isinstance(src, h5py.Dataset):
            raise fail(f"{what} is not a dataset")
        sources.append(_Source(tuple(start), tuple(block), src, src_url, what, ()))
    if _overlap([(s.start, s.block) for s in sources]):
        raise fail("sources overlap: HDF5 reads the later mapping there, even where unwritten")
    if not sources:
        empty = np.zeros(0, dtype=np.int64)
        return VirtualChunks(
            chunks=_fill_chunks(shape, dtype.itemsize),
            dcpl=None,
            nullterm=(),
            rows=(empty, empty.astype(np.uint64), empty.astype(np.uint64), empty.astype(np.uint32)),
            urls=(),
            url_index=np.zeros(0, dtype=np.uint16),
        )
    nullterm: tuple[tuple[int, int], ...] | None = None
    for i, s in enumerate(sources):
        axes = _axes(tuple(s.src.shape), s.block)
        if plain_dtype(s.src.dtype) != dtype or axes is None:
            raise fail(f"{s.name} differs in dtype or shape")
        s = sources[i] = replace(s, axes=axes)
        if s.src.is_virtual:
            raise fail(f"{s.name} is itself a virtual dataset")
        # HDF5 reads a source's strings by the source's type (its padding decides)
        src_nullterm = nullterm_ranges(s.src.id.get_type())
        if nullterm is not None and src_nullterm != nullterm:
            raise fail("sources differ in string padding")
        nullterm = src_nullterm
        if stored_layout_issue(s.src.id.get_type(), dtype) is not None:
            raise fail(f"{s.name} stores a type HDF5 converts")
    if all(s.src.chunks is None for s in sources):
        found = _contiguous_sources(sources, shape, dtype, fill, fail)
    else:
        found = _chunked_sources(sources, shape, dtype, fill, fail)
    chunks, dcpl, rows, urls = found
    if rows:
        lin = np.concatenate([r[0] for r in rows])
        order = np.argsort(lin, kind="stable")
        lin = lin[order]
        if np.any(np.diff(lin) == 0):
            raise fail("sources overlap")
        offsets, sizes, masks, url_index = (
            np.concatenate([r[i] for r in rows])[order] for i in (1, 2, 3, 4)
        )
    else:
        lin = np.zeros(0, dtype=np.int64)
        offsets = sizes = np.zeros(0, dtype=np.uint64)
        masks, url_index = np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.uint16)
    return VirtualChunks(
        chunks=chunks,
        dcpl=dcpl,
        nullterm=nullterm or (),
        rows=(lin, offsets, sizes, masks),
        urls=tuple(urls),
        url_index=url_index,
    )


def _url_number(urls: dict[str, int], url: str, fail: Callable[[str], Exception]) -> int:
    """The number of file ``url`` among ``urls`` (in order of first use), added if new."""
    at = urls.setdefault(url, len(urls))
    if at > np.iinfo(np.uint16).max:
        raise fail(f"sources in more than {np.iinfo(np.uint16).max + 1} files")
    return at


_Found = tuple[tuple[int, ...], Any, list[tuple[np.ndarray[Any, Any], ...]], list[str]]


def _chunked_sources(
    sources: list[_Source],
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    fill: Any,
    fail: Callable[[str], Exception],
) -> _Found:
    """(chunks, dcpl with filters or None, rows per source with url index, urls) of chunked
    sources."""
    chunks: tuple[int, ...] | None = None
    pipeline: Any = None
    src_dcpl: Any = None
    rows: list[tuple[np.ndarray[Any, Any], ...]] = []
    urls: dict[str, int] = {}
    for s in sources:
        src = s.src
        if src.chunks is None:
            raise fail(f"{s.name} is not a chunked dataset (the other sources are)")
        placed = [1] * len(shape)
        for i, j in enumerate(s.axes):
            if j is not None:
                placed[j] = src.chunks[i]
            elif src.chunks[i] != 1:  # rows of chunks the block leaves out
                raise fail(f"{s.name} has chunks longer than its axis {i} of length 1")
        sdcpl = src.id.get_create_plist()
        src_pipe = [sdcpl.get_filter(i)[:3] for i in range(sdcpl.get_nfilters())]
        blosc2 = any(f[0] == BLOSC2_FILTER for f in src_pipe)
        if blosc2 and len(src.shape) != len(shape) and len(src.shape) > 1:
            # b2nd frames carry their chunk shape, which the Zarr v3 codec checks
            raise fail(f"{s.name} has Blosc2 chunks of another rank than the virtual dataset")
        if chunks is None:
            chunks, pipeline, src_dcpl = tuple(placed), src_pipe, sdcpl
        elif tuple(placed) != chunks or src_pipe != pipeline:
            raise fail("sources differ in chunk shape or filters")
        for axis, (st, b, c, n) in enumerate(zip(s.start, s.block, chunks, shape, strict=True)):
            if st % c or (b % c and st + b != n):
                raise fail(f"a block is not aligned with the chunks along axis {axis}")
        infos = ChunkCollector()
        if s.axes == tuple(range(len(shape))):
            src.id.chunk_iter(infos)
        else:
            src.id.chunk_iter(_placing(infos, s.axes, len(shape)))
        src_grid = math.prod(-(-n // c) for n, c in zip(src.shape, src.chunks, strict=True))
        if len(infos) < src_grid and not is_same_fill(md.fill_value(src), fill, dtype):
            raise fail(f"{s.name} has unwritten chunks and another fill value")
        if not infos:
            continue
        at = _url_number(urls, s.url, fail)
        grid = tuple(-(-n // c) for n, c in zip(shape, chunks, strict=True))
        try:
            src_rows = infos.rows(chunks, grid, start=s.start)
        except ValueError as exc:  # HDF5 never lists one: a damaged chunk index
            raise fail(f"{s.name} lists a chunk outside its grid") from exc
        rows.append((*src_rows, np.full(len(infos), at, dtype=np.uint16)))
    assert chunks is not None
    return chunks, src_dcpl if pipeline else None, rows, list(urls)


def _contiguous_sources(
    sources: list[_Source],
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    fill: Any,
    fail: Callable[[str], Exception],
) -> _Found:
    """(chunks, None, rows per source with url index, urls) of contiguous sources stacked
    along the first axis: chunks of ``k`` steps, ``k`` dividing every block's start and length
    and the first axis, so that every chunk is whole and one byte range of one source."""
    if not shape:
        raise fail("a scalar virtual dataset")
    step = math.prod(shape[1:]) * dtype.itemsize
    g = shape[0]
    for s in sources:
        dcpl = s.src.id.get_create_plist()
        if dcpl.get_layout() != h5py.h5d.CONTIGUOUS or dcpl.get_external_count() > 0:
            raise fail(f"{s.name} is neither chunked nor contiguous in its file")
        if s.start[1:] != (0,) * (len(shape) - 1) or s.block[1:] != shape[1:]:
            raise fail(f"{s.name} is contiguous and does not span the axes after the first")
        g = math.gcd(g, s.start[0], s.block[0])
    most = max(1, CONTIGUOUS_SOURCE_CHUNK_BYTES // max(1, step))
    divisors = (d for i in range(1, math.isqrt(g) + 1) if g % i == 0 for d in (i, g // i))
    k = max((d for d in divisors if d <= most), default=1)
    chunks = (k, *(max(1, n) for n in shape[1:]))
    rows: list[tuple[np.ndarray[Any, Any], ...]] = []
    urls: dict[str, int] = {}
    for s in sources:
        src, nbytes = s.src, s.block[0] * step
        offset = src.id.get_offset()
        if offset is None:  # never written: HDF5 reads the source's fill value
            if not is_same_fill(md.fill_value(src), fill, dtype):
                raise fail(f"{s.name} was never written and has another fill value")
            continue
        if src.id.get_storage_size() < nbytes:
            raise fail(f"{s.name} stores fewer bytes than its shape needs (damaged file?)")
        at = _url_number(urls, s.url, fail)
        n = s.block[0] // k
        j = np.arange(n, dtype=np.int64)
        rows.append(
            (
                s.start[0] // k + j,
                np.uint64(offset) + j.astype(np.uint64) * np.uint64(k * step),
                np.full(n, k * step, dtype=np.uint64),
                np.zeros(n, dtype=np.uint32),
                np.full(n, at, dtype=np.uint16),
            )
        )
    return chunks, None, rows, list(urls)
