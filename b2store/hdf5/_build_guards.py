"""Process-wide guards of the HDF5 index builds of ``HDF5FileSystem`` (protocol ``b2h5``).

Contract
--------
* ``_BUILD_LOCK``: held around :func:`b2store.hdf5.index.build_index`, so one index is built
  at a time in the process. Read it as ``_build_guards._BUILD_LOCK`` (a forked child gets a
  new one: a name imported from here would keep the parent's, maybe held, lock).
* :func:`_gc_paused`: the cyclic garbage collector is off while any index is built (nested
  across threads), unless the application keeps it off.
* A forked child starts both afresh (one ``os.register_at_fork`` hook, registered once at
  import): a fork while another thread built an index left the child's lock held and its
  collector off.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections.abc import Iterator

_BUILD_LOCK = threading.Lock()
_GC_LOCK = threading.Lock()
_gc_pauses = 0  # builds running with the cyclic garbage collector paused (see _gc_paused)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while an index is built (nested across threads).

    h5py holds its global lock while it reads a remote file through a Python file object, and
    such a read waits for fsspec's event-loop thread. A garbage collection that runs on that
    thread (or any other the read waits for) and frees an h5py object in a reference cycle,
    the process's or the user's, needs h5py's lock: the read never returns (a deadlock seen in
    the tests). Reference counting still frees everything else; collection resumes after.
    """
    global _gc_pauses
    with _GC_LOCK:
        if _gc_pauses == 0 and not gc.isenabled():
            paused = False  # the application keeps it off: leave it so
        else:
            paused = True
            _gc_pauses += 1
            gc.disable()
    try:
        yield
    finally:
        if paused:
            with _GC_LOCK:
                _gc_pauses -= 1
                if _gc_pauses == 0:
                    gc.enable()


def _after_fork() -> None:
    """Start the forked child's build lock and garbage-collector pause afresh.

    A fork while another thread of the parent built an index copied its held locks (the child's
    first index build waited for ever for a thread that does not exist there) and its paused
    collector (off for the child's whole life).
    """
    global _BUILD_LOCK, _GC_LOCK, _gc_pauses
    _BUILD_LOCK = threading.Lock()
    _GC_LOCK = threading.Lock()
    if _gc_pauses:
        _gc_pauses = 0
        gc.enable()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
