"""How many Blosc2 threads one ``b2store.b2nd`` decode (Zarr v3) uses.

Contract: :class:`_decode_threads` is a context manager around one decode that yields the thread
count to pass to Blosc2: the configured *nthreads*, except that with the default ``nthreads=1`` a
decode of at least ``_SOLO_MIN_BYTES`` that no other ``b2store.b2nd`` decode in the process
overlaps uses ``_SOLO_THREADS`` (every core, at most 8). Concurrent decodes (dask, zarr's
batches) keep one thread each, so cores are not oversubscribed. Thread-safe; no blosc2 import.
"""

from __future__ import annotations

import threading

from b2store._cores import usable_cores

__all__: list[str] = []

#: Decodes of b2store.b2nd chunks running now in this process (all codec instances).
_inflight = 0
_inflight_lock = threading.Lock()
#: A decode running alone with the default nthreads=1 uses this many Blosc2 threads...
_SOLO_THREADS = min(usable_cores(), 8)
#: ...when it decompresses at least this many bytes (smaller ones do not repay the threads).
_SOLO_MIN_BYTES = 2**20


class _DecodeThreads:
    """Blosc2 threads for one decode: *nthreads*, or all cores when it runs alone.

    With the default ``nthreads=1`` a large decode that no other b2store.b2nd decode overlaps
    (a single-chunk read, the last chunk of a dask graph) uses up to ``_SOLO_THREADS`` threads;
    concurrent decodes (dask, zarr's batches) keep one thread each, so cores are not
    oversubscribed. A plain class, not a generator-based context manager: this runs once per
    chunk, and a generator costs microseconds.
    """

    __slots__ = ("nbytes", "nthreads")

    def __init__(self, nthreads: int, nbytes: int) -> None:
        self.nthreads, self.nbytes = nthreads, nbytes

    def __enter__(self) -> int:
        global _inflight
        with _inflight_lock:
            _inflight += 1
            alone = _inflight == 1
        solo = self.nthreads == 1 and alone and self.nbytes >= _SOLO_MIN_BYTES
        return _SOLO_THREADS if solo else self.nthreads

    def __exit__(self, *exc_info: object) -> None:
        global _inflight
        with _inflight_lock:
            _inflight -= 1


#: ``with _decode_threads(nthreads, nbytes) as n:`` -- the thread count for one decode.
_decode_threads = _DecodeThreads
