"""Work-arounds for h5py behaviours that change values, shared by the b2h5 view and ``convert``.

Contract: :func:`vlen_as_stored` gives variable-length sequences read by h5py the values the
file holds, whatever h5py version reads them (it probes once whether this h5py needs it).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np


def vlen_as_stored(value: Any, dtype: np.dtype[Any]) -> Any:
    """``value`` (variable-length sequences read by h5py, of type ``dtype``) labelled with the
    byte order they are stored in, so that writing them back in that type keeps their values.

    h5py reads sequences of a non-native byte order (``vlen_dtype('>u8')``) as native arrays
    holding the file's bytes ([1, 2] reads as [2**56, 2**57]) and converts them again on
    writing: the copied sequences held other values, for every reader (pyfive's
    ``attr_datatypes.hdf5``). Nothing changes where h5py reads them right
    (:func:`h5py_mislabels_vlen_byte_order`).
    """
    import h5py

    base = h5py.check_vlen_dtype(dtype)
    if not isinstance(base, np.dtype) or base.byteorder in ("=", "|") or base.isnative:
        return value
    native = base.newbyteorder("=")
    if not h5py_mislabels_vlen_byte_order():
        return value

    def fixed(x: Any) -> Any:
        if isinstance(x, np.ndarray) and x.dtype == native and x.dtype.byteorder != base.byteorder:
            return x.view(base)
        return x

    if isinstance(value, np.ndarray) and value.dtype.hasobject:
        out = np.empty(value.shape, dtype=value.dtype)
        for idx in np.ndindex(value.shape):
            out[idx] = fixed(value[idx])
        return out
    return fixed(value)


@functools.cache
def h5py_mislabels_vlen_byte_order() -> bool:
    """Whether this h5py reads a big-endian ``[1]`` sequence as a native ``[256]`` (h5py 3.x)."""
    import io

    import h5py

    value = np.empty(1, dtype=object)
    value[0] = np.array([1], dtype=">u2")
    with h5py.File(io.BytesIO(), "w") as f:
        f.create_dataset("v", data=value, dtype=h5py.vlen_dtype(np.dtype(">u2")))
        got = f["v"][0]
    return int(got[0]) != 1
