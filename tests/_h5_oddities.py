"""HDF5 features that other writers produce and h5py's high-level API cannot: built here with
h5py's low-level API (and, where even that cannot, with ctypes on the libhdf5 h5py loaded).

- a dataset whose fill value is marked *undefined* (``H5Pset_fill_value(dcpl, type, NULL)``, as
  in PyTables' test files ``attr-u16.h5`` and ``ex-noattr.h5``): h5py's ``ds.fillvalue`` raises
  RuntimeError and unallocated chunks read as zeros;
- an IEEE 754 binary128 float type (PyTables' ``float.h5``, "quadprecision"): numpy has no
  dtype for it and h5py's ``ds.dtype`` raises ValueError.
"""

from __future__ import annotations

import ctypes
import functools

import h5py
import numpy as np


@functools.cache
def _libhdf5() -> ctypes.CDLL:
    """The libhdf5 h5py is linked against (already loaded: found in this process's maps)."""
    with open("/proc/self/maps") as fh:
        paths = {line.split()[-1] for line in fh if "libhdf5" in line and "_hl" not in line}
    return ctypes.CDLL(sorted(p for p in paths if "/libhdf5" in p)[0])


def create_undefined_fill(
    group: h5py.Group,
    name: str,
    shape: tuple[int, ...],
    chunks: tuple[int, ...] | None = None,
    dtype: str = "<i4",
) -> h5py.Dataset:
    """A dataset (chunked when *chunks*, else contiguous) whose fill value is undefined."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    if chunks is not None:
        dcpl.set_chunk(chunks)
    tid = h5py.h5t.py_create(np.dtype(dtype))
    lib = _libhdf5()
    status = lib.H5Pset_fill_value(ctypes.c_int64(dcpl.id), ctypes.c_int64(tid.id), None)
    assert status >= 0 and dcpl.fill_value_defined() == h5py.h5d.FILL_VALUE_UNDEFINED
    space = h5py.h5s.create_simple(shape)
    h5py.h5d.create(group.id, name.encode(), tid, space, dcpl=dcpl)
    return group[name]


def quad_float_type() -> h5py.h5t.TypeFloatID:
    """IEEE 754 binary128, little-endian: no numpy dtype exists for it."""
    t = h5py.h5t.IEEE_F64LE.copy()
    t.set_size(16)
    t.set_precision(128)
    t.set_fields(127, 112, 15, 0, 112)
    t.set_ebias(16383)
    return t
