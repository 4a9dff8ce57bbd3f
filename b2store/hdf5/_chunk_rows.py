"""HDF5 ``chunk_iter`` results as chunk-table rows (shared by ``index`` and ``_virtual``).

Contract: :class:`ChunkCollector` is a ``DatasetID.chunk_iter`` callback that keeps the
``StoreInfo`` records it is given as parallel arrays (chunk offset, byte offset, byte size,
filter mask), in the order HDF5 gave them; :meth:`ChunkCollector.rows` (and
:func:`chunk_rows`, for a sequence of records) turns them into chunk-table rows (linear chunk
index in a C-order chunk grid, byte offset, byte size, filter mask), unsorted. Pure: no file
access.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ChunkCollector", "chunk_rows"]


class ChunkCollector:
    """A ``chunk_iter`` callback: every :data:`BATCH` records become NumPy arrays.

    A list of the ``StoreInfo`` records themselves (about 300 bytes each with their tuples and
    ints) held 300 MB at the open of a dataset of 10^6 chunks, whose rows take 28 MB.
    """

    #: records kept as objects before they are converted
    BATCH = 1 << 16

    def __init__(self) -> None:
        self._batch: list[Any] = []
        self._parts: list[tuple[np.ndarray[Any, Any], ...]] = []
        self._count = 0

    def __call__(self, info: Any) -> None:
        self._batch.append(info)
        if len(self._batch) >= self.BATCH:
            self._flush()

    def __len__(self) -> int:
        return self._count + len(self._batch)

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        k = len(batch)
        self._parts.append(
            (
                np.array([i.chunk_offset for i in batch], dtype=np.int64).reshape(k, -1),
                np.array([i.byte_offset for i in batch], dtype=np.uint64),
                np.array([i.size for i in batch], dtype=np.uint64),
                np.array([i.filter_mask for i in batch], dtype=np.uint32),
            )
        )
        self._count += k

    def rows(
        self,
        chunks: tuple[int, ...],
        grid: tuple[int, ...],
        *,
        start: Sequence[int] | None = None,
    ) -> tuple[np.ndarray[Any, Any], ...]:
        """(linear index, byte offset, byte size, filter mask) arrays of the chunks collected.

        ``chunks`` and ``grid`` are the Zarr view's chunk shape and chunk grid; a chunk offset
        with fewer dimensions than ``chunks`` (the dataset's, when the view appends the axes of
        an array dtype) is padded with zeros. ``start`` shifts the offsets first (a virtual
        dataset's block). A chunk outside ``grid`` raises ``ValueError`` (HDF5 never reports
        one).
        """
        self._flush()
        k, ndim = self._count, len(chunks)
        parts = self._parts
        coff = np.zeros((k, ndim), dtype=np.int64)
        if k:
            given = np.concatenate([p[0] for p in parts])
            coff[:, : given.shape[1]] = given
        if start is not None:
            coff += np.array(start, dtype=np.int64)
        cidx = coff // np.array(chunks, dtype=np.int64)
        del coff
        if ndim and k:
            lin = np.ravel_multi_index(tuple(cidx.T), grid).astype(np.int64)
        else:
            lin = np.zeros(k, dtype=np.int64)

        def cat(j: int, dtype: Any) -> np.ndarray[Any, Any]:
            return np.concatenate([p[j] for p in parts]) if parts else np.zeros(0, dtype=dtype)

        return lin, cat(1, np.uint64), cat(2, np.uint64), cat(3, np.uint32)


def chunk_rows(
    infos: Sequence[Any],
    chunks: tuple[int, ...],
    grid: tuple[int, ...],
    *,
    start: Sequence[int] | None = None,
) -> tuple[np.ndarray[Any, Any], ...]:
    """(linear index, byte offset, byte size, filter mask) arrays of the chunks ``infos``
    (``StoreInfo`` records): see :meth:`ChunkCollector.rows`."""
    collector = ChunkCollector()
    for info in infos:
        collector(info)
    return collector.rows(chunks, grid, start=start)
