"""Which file and chunk key a failing chunk's bytes came from, for codec errors.

Contract
--------
zarr hands a codec a chunk's bytes and an ``ArraySpec``, never the chunk's key, so a chunk that
did not decode through ``xr.open_zarr("b2h5::scan.h5")`` raised "b2store.b2nd: not a Blosc2
chunk" without the file, the dataset or the chunk. The filesystems that serve chunk keys (b2h5,
caterva2) call :func:`note_chunk` with each chunk's bytes as they return them; a codec whose
decode fails calls :func:`add_origin` with the buffer it was given, which prefixes the error's
message with the filesystem's ``chunk_where(key)`` ("/data/scan.h5: chunk 'x/c/0/2'") when that
buffer wraps bytes noted here (zarr's store wraps them with ``np.frombuffer``, whose ``base`` is
the very object), and leaves the error as it was otherwise.

* Exact: an entry holds the bytes object itself and is matched by identity (``is``), so no
  other object can take its place; a bytes object that is not held is never named.
* Bounded: the chunks served last in this process, at most :data:`KEPT` of them and
  :data:`KEPT_BYTES` bytes together (a larger chunk is not noted): a chunk is decoded right after it
  is read, so a failing one is among them. Noting costs a lock and an append per chunk; the
  lookup runs only on errors.
* Thread-safe (one lock, made anew in a forked child); filesystems are held weakly.

Stdlib only (imported by the codecs and by both filesystems).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from typing import Any

__all__ = ["KEPT", "KEPT_BYTES", "add_origin", "note_chunk", "origin_of", "prefix_error"]

#: Most recently served chunks that can be named in an error ...
KEPT = 64
#: ... and the most bytes they may hold together (a larger chunk is not noted).
KEPT_BYTES = 32 * 2**20

_LOCK = threading.Lock()
_SERVED: deque[tuple[bytes, Any, str]] = deque()  # (the bytes, filesystem, key), oldest first
_held = 0  # bytes held by _SERVED


def note_chunk(data: bytes, fs: Any, key: str) -> bytes:
    """Remember that *fs* served *data* for chunk *key*; returns *data*.

    *fs* must have a ``chunk_where(key) -> str`` method (called only when a decode fails).
    """
    global _held
    if type(data) is not bytes or len(data) > KEPT_BYTES:  # views may be reused for others
        return data
    with _LOCK:
        _SERVED.append((data, weakref.ref(fs), key))
        _held += len(data)
        while len(_SERVED) > KEPT or _held > KEPT_BYTES:
            _held -= len(_SERVED.popleft()[0])
    return data


def _after_fork() -> None:
    global _LOCK, _held
    _LOCK = threading.Lock()  # another thread may have held it at fork
    _SERVED.clear()
    _held = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _bytes_behind(buf: Any) -> bytes | None:
    """The ``bytes`` object *buf* wraps: a zarr ``Buffer``, a numpy array or a memoryview over
    it (following ``.base`` / ``.obj``), or *buf* itself."""
    obj = buf.as_numpy_array() if hasattr(buf, "as_numpy_array") else buf
    for _ in range(8):
        if type(obj) is bytes:
            return obj
        nxt = getattr(obj, "base", None)
        if nxt is None:
            nxt = getattr(obj, "obj", None)  # a memoryview's exporter
        if nxt is None or nxt is obj:
            return None
        obj = nxt
    return None


def origin_of(buf: Any) -> str | None:
    """``chunk_where(key)`` of the served chunk whose bytes *buf* wraps; None if not known."""
    try:
        data = _bytes_behind(buf)
    except Exception:  # a foreign buffer type: no origin, the error stays as it was
        return None
    if data is None:
        return None
    with _LOCK:
        entries = list(_SERVED)
    for held, fs_ref, key in reversed(entries):
        if held is data:
            fs = fs_ref()
            if fs is None:
                return None
            try:
                return str(fs.chunk_where(key))
            except Exception:  # naming is best effort: never hide the decoder's error
                return None
    return None


def prefix_error(err: BaseException, where: str | None) -> None:
    """Prefix *err*'s message with *where* (in place; the caller re-raises it), unless *where*
    is None or the message already starts with it (the b2h5 engine's whole-chunk reads and the
    b2h5 store name the chunk themselves)."""
    if where is None or not err.args or not isinstance(err.args[0], str):
        return
    if err.args[0].startswith(where):
        return
    err.args = (f"{where}: {err.args[0]}", *err.args[1:])


def add_origin(err: BaseException, buf: Any) -> None:
    """Prefix *err*'s message with where *buf*'s chunk came from (:func:`origin_of`), in
    place; nothing changes when that is not known."""
    prefix_error(err, origin_of(buf))
