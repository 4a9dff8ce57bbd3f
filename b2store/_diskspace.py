"""Disk-full handling shared by the writers (``convert``, ``demo``, ``refs``).

Contract: :func:`out_of_room` recognises an exception that reports a write failed for want of
room (full disk, file size limit, quota: :data:`_NO_ROOM`), also when h5py wraps it in a
``RuntimeError`` or it is the cause of another exception, and returns the ``OSError`` (same errno)
to raise instead, naming what was being written and what to do; ``None`` for any other error.
Standard library only.
"""

from __future__ import annotations

import errno
import os

__all__ = ["out_of_room"]


#: errno values of a write that failed for want of room: full disk, file size limit, quota.
_NO_ROOM = tuple(
    getattr(errno, name) for name in ("ENOSPC", "EFBIG", "EDQUOT") if hasattr(errno, name)
)


def out_of_room(exc: BaseException, writing: str, advice: str) -> OSError | None:
    """The error to raise instead of ``exc`` when it reports a write that failed for want of
    room (full disk, file size limit, quota): ``"<strerror> while writing <writing>: <advice>"``
    with that errno; None for other errors."""
    code = _out_of_space(exc)
    if code is None:
        return None
    return OSError(code, f"{os.strerror(code)} while writing {writing}: {advice}")


def _out_of_space(exc: BaseException) -> int | None:
    """The errno of :data:`_NO_ROOM` that ``exc`` (or an exception it was raised from) reports,
    else None. h5py raises ``RuntimeError`` for some failed writes, with ``errno = 28`` only in
    its message."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno is not None and cur.errno in _NO_ROOM:
            return int(cur.errno)
        for code in _NO_ROOM:
            if f"errno = {code}," in str(cur):
                return code
        cur = cur.__cause__ or cur.__context__
    return None
