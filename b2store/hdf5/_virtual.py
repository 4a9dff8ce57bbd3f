"""Virtual datasets (H5D_VIRTUAL) mapped onto the chunks of their sources, where exact.

Contract: :func:`map_virtual` reads a virtual dataset's mappings and its sources' chunk indexes
(``chunk_iter``; metadata only, no chunk data) and returns :class:`VirtualChunks`: the chunk
table rows of the virtual dataset's Zarr view, each naming the file that holds it. It maps
"plain" virtual datasets only: every mapping puts a whole chunked source dataset (same dtype,
chunk shape, filters, string padding and fill value for all sources) into one block of the
virtual dataset that starts on a chunk boundary, and a source's partial edge chunks only lie on
the virtual dataset's own edge. Anything else raises the caller's ``fail(why)`` exception.
Source files other than the dataset's own are opened through the caller's ``open_external``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from b2store.hdf5 import metadata as md
from b2store.hdf5._chunk_rows import ChunkCollector
from b2store.hdf5._dtypes import nullterm_ranges, plain_dtype, stored_layout_issue
from b2store.hdf5._external import OpenExternal
from b2store.hdf5._fills import is_same_fill

__all__ = ["VirtualChunks", "map_virtual"]


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
    chunks: tuple[int, ...] | None = None
    pipeline: Any = None
    nullterm: tuple[tuple[int, int], ...] | None = None
    rows: list[tuple[np.ndarray[Any, Any], ...]] = []
    urls: list[str] = []
    for m in ds.virtual_sources():
        vsel = m.vspace
        if vsel.get_select_type() == h5py.h5s.SEL_ALL:
            # h5py's ``layout[...] = source``: one block covering the whole virtual dataset
            start, count, block = (0,) * len(shape), (1,) * len(shape), shape
        elif vsel.get_select_type() != h5py.h5s.SEL_HYPERSLABS or not vsel.is_regular_hyperslab():
            raise fail("a mapping is not one regular block")
        else:
            start, _stride, count, block = vsel.get_regular_hyperslab()
        if h5py.h5s.UNLIMITED in (*count, *block):
            raise fail("a mapping is unlimited: it grows with its source")
        if any(c != 1 for c in count):
            raise fail("a mapping repeats a block")
        if m.src_space.get_select_type() != h5py.h5s.SEL_ALL and not (
            m.src_space.get_select_type() == h5py.h5s.SEL_HYPERSLABS
            and m.src_space.get_select_npoints() == m.src_space.get_simple_extent_npoints()
        ):
            raise fail(f"source {m.file_name}:{m.dset_name} is used in part")
        try:
            if m.file_name == ".":
                src_file, src_url = ds.file, url
            elif open_external is None:
                raise fail("no opener for source files")
            else:
                src_file, src_url = open_external(url, m.file_name)
            src = src_file[m.dset_name]
        except (OSError, KeyError, ValueError) as exc:
            raise fail(f"source {m.file_name}:{m.dset_name} does not resolve: {exc}") from exc
        if not isinstance(src, h5py.Dataset) or src.chunks is None or src.is_virtual:
            raise fail(f"source {m.file_name}:{m.dset_name} is not a chunked dataset")
        if plain_dtype(src.dtype) != dtype or tuple(src.shape) != tuple(block):
            raise fail(f"source {m.file_name}:{m.dset_name} differs in dtype or shape")
        sdcpl = src.id.get_create_plist()
        src_pipe = [sdcpl.get_filter(i)[:3] for i in range(sdcpl.get_nfilters())]
        if chunks is None:
            chunks, pipeline = tuple(src.chunks), src_pipe
            src_dcpl = sdcpl
        elif tuple(src.chunks) != chunks or src_pipe != pipeline:
            raise fail("sources differ in chunk shape or filters")
        # HDF5 reads a source's strings by the source's type (its padding decides)
        src_nullterm = nullterm_ranges(src.id.get_type())
        if nullterm is not None and src_nullterm != nullterm:
            raise fail("sources differ in string padding")
        nullterm = src_nullterm
        if stored_layout_issue(src.id.get_type(), dtype) is not None:
            raise fail(f"source {m.file_name}:{m.dset_name} stores a type HDF5 converts")
        for axis, (st, b, c, n) in enumerate(zip(start, block, chunks, shape, strict=True)):
            if st % c or (b % c and st + b != n):
                raise fail(f"a block is not aligned with the chunks along axis {axis}")
        infos = ChunkCollector()
        src.id.chunk_iter(infos)
        src_grid = np.prod([-(-n // c) for n, c in zip(src.shape, chunks, strict=True)])
        if len(infos) < src_grid and not is_same_fill(md.fill_value(src), fill, dtype):
            raise fail(
                f"source {m.file_name}:{m.dset_name} has unwritten chunks and another fill value"
            )
        if not infos:
            continue
        if src_url not in urls:
            urls.append(src_url)
        grid = tuple(-(-n // c) for n, c in zip(shape, chunks, strict=True))
        try:
            src_rows = infos.rows(chunks, grid, start=start)
        except ValueError as exc:  # HDF5 never lists one: a damaged chunk index
            raise fail(
                f"source {m.file_name}:{m.dset_name} lists a chunk outside its grid"
            ) from exc
        rows.append((*src_rows, np.full(len(infos), urls.index(src_url), dtype=np.uint16)))
    if chunks is None:
        raise fail("no sources")
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
        dcpl=src_dcpl if pipeline else None,
        nullterm=nullterm or (),
        rows=(lin, offsets, sizes, masks),
        urls=tuple(urls),
        url_index=url_index,
    )
