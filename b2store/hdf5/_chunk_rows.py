"""HDF5 ``chunk_iter`` results as chunk-table rows (shared by ``index`` and ``_virtual``).

Contract: :func:`chunk_rows` turns the ``StoreInfo`` records of ``DatasetID.chunk_iter`` into
parallel arrays (linear chunk index in a C-order chunk grid, byte offset, byte size, filter
mask), unsorted, in the order HDF5 gave them. Pure: no file access.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["chunk_rows"]


def chunk_rows(
    infos: Sequence[Any],
    chunks: tuple[int, ...],
    grid: tuple[int, ...],
    *,
    start: Sequence[int] | None = None,
) -> tuple[np.ndarray[Any, Any], ...]:
    """(linear index, byte offset, byte size, filter mask) arrays of the chunks ``infos``.

    ``chunks`` and ``grid`` are the Zarr view's chunk shape and chunk grid; a chunk offset
    with fewer dimensions than ``chunks`` (the dataset's, when the view appends the axes of an
    array dtype) is padded with zeros. ``start`` shifts the offsets first (a virtual dataset's
    block). A chunk outside ``grid`` raises ``ValueError`` (HDF5 never reports one).
    """
    k, ndim = len(infos), len(chunks)
    coff = np.zeros((k, ndim), dtype=np.int64)
    if k:
        given = np.array([i.chunk_offset for i in infos], dtype=np.int64).reshape(k, -1)
        coff[:, : given.shape[1]] = given
    if start is not None:
        coff += np.array(start, dtype=np.int64)
    cidx = coff // np.array(chunks, dtype=np.int64)
    if ndim and k:
        lin = np.ravel_multi_index(tuple(cidx.T), grid).astype(np.int64)
    else:
        lin = np.zeros(k, dtype=np.int64)
    return (
        lin,
        np.array([i.byte_offset for i in infos], dtype=np.uint64),
        np.array([i.size for i in infos], dtype=np.uint64),
        np.array([i.filter_mask for i in infos], dtype=np.uint32),
    )
