"""A small pool of reusable scratch buffers for decompressed, block-ordered chunks.

Contract: :meth:`_ScratchPool.borrow` lends a ``uint8`` buffer of exactly the requested size,
valid only inside its ``with`` block; the borrower must copy out what it keeps (the b2nd decoder
reorders into fresh memory). Thread-safe; a buffer is never lent to two borrowers at once.
"""

from __future__ import annotations

import threading

import numpy as np

from b2store._cores import usable_cores

__all__ = ["SCRATCH"]


class _ScratchPool:
    """A few reusable ``uint8`` buffers for block-ordered chunks, shared by all threads.

    Block-ordered chunks are decompressed into a borrowed buffer and then reordered into fresh
    memory, so the decompressed bytes land in memory that is already mapped instead of a new
    allocation the kernel must fault in and zero: that cuts an xarray + dask read of a
    tomography stack by about a tenth (``benchmarks/hdf5_read.py``). At most ``keep`` buffers of
    at most ``max_bytes`` each stay allocated between calls; larger requests, or more borrowers
    at once, get fresh memory that is freed as usual.
    """

    def __init__(self, *, keep: int, max_bytes: int) -> None:
        self.keep = keep
        self.max_bytes = max_bytes
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def borrow(self, nbytes: int) -> _Loan:
        """A ``uint8`` buffer of exactly *nbytes*, valid inside the ``with`` block only."""
        buf = None
        if nbytes <= self.max_bytes:
            with self._lock:
                if self._free:
                    buf = self._free.pop()
        if buf is None or buf.nbytes < nbytes:
            buf = np.empty(max(nbytes, 1), dtype=np.uint8)
        return _Loan(self, buf, nbytes)

    def _give_back(self, buf: np.ndarray) -> None:
        if buf.nbytes <= self.max_bytes:
            with self._lock:
                if len(self._free) < self.keep:
                    self._free.append(buf)


class _Loan:
    """One borrowed buffer as a context manager (a plain class: a generator-based one costs
    microseconds per chunk)."""

    __slots__ = ("_buf", "_nbytes", "_pool")

    def __init__(self, pool: _ScratchPool, buf: np.ndarray, nbytes: int) -> None:
        self._pool, self._buf, self._nbytes = pool, buf, nbytes

    def __enter__(self) -> np.ndarray:
        return self._buf[: self._nbytes]

    def __exit__(self, *exc_info: object) -> None:
        self._pool._give_back(self._buf)


#: Scratch buffers for block-ordered chunks: one per core (at most 8), chunks up to 16 MiB.
SCRATCH = _ScratchPool(keep=min(usable_cores(), 8), max_bytes=16 * 2**20)
