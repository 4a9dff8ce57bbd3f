"""HDF5 types as Zarr sees them: which stored bytes can be served raw, and as what dtype.

Contract: pure predicates and conversions on h5py type ids (``h5py.h5t.Type*ID``) and NumPy
dtypes; none reads chunk data. :func:`plain_dtype` is the Zarr dtype of a dataset (h5py's
metadata dropped, same memory layout); :func:`stored_layout_issue` says why the bytes HDF5
stores are *not* that dtype's bytes (reduced precision, bit offsets, non-IEEE floats,
space-padded strings), so that the index reads such data with h5py instead of serving it raw;
:func:`matches_file_type` checks a compound's byte layout field by field; :func:`no_zarr_float`
finds long doubles, which Zarr has no data type for; :func:`nullterm_ranges` locates the
NUL-terminated strings in an item (served through ``b2store_hdf5``, which ends them at the
first NUL as HDF5 does); :func:`repack` moves records into a packed compound by field name.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

__all__ = [
    "matches_file_type",
    "no_zarr_float",
    "nullterm_ranges",
    "plain_dtype",
    "repack",
    "stored_layout_issue",
]


def plain_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """``dtype`` without h5py's metadata (string encodings, enum maps), same memory layout."""
    if dtype.fields:
        names = list(dtype.names or ())
        return np.dtype(
            {
                "names": names,
                "formats": [plain_dtype(dtype.fields[n][0]) for n in names],
                "offsets": [dtype.fields[n][1] for n in names],
                "itemsize": dtype.itemsize,
            }
        )
    if dtype.subdtype is not None:
        return np.dtype((plain_dtype(dtype.subdtype[0]), dtype.subdtype[1]))
    return np.dtype(dtype.str)


def matches_file_type(ds: h5py.Dataset, dtype: np.dtype[Any]) -> bool:
    """True when the compound type stored in the file has exactly ``dtype``'s byte layout."""
    tid = ds.id.get_type()
    if not isinstance(tid, h5py.h5t.TypeCompoundID) or tid.get_size() != dtype.itemsize:
        return False
    names = list(dtype.names or ())
    if tid.get_nmembers() != len(names):
        return False
    for i, name in enumerate(names):
        if tid.get_member_offset(i) != dtype.fields[name][1]:  # type: ignore[index]
            return False
        mt = tid.get_member_type(i)
        if mt.get_size() != dtype.fields[name][0].itemsize:  # type: ignore[index]
            return False
        if isinstance(mt, h5py.h5t.TypeAtomicID) and not isinstance(mt, h5py.h5t.TypeStringID):
            order = ">" if mt.get_order() == h5py.h5t.ORDER_BE else "<"
            sub = dtype.fields[name][0]  # type: ignore[index]
            if sub.itemsize > 1 and sub.byteorder not in ("|", "=") and sub.byteorder != order:
                return False
            if sub.itemsize > 1 and sub.byteorder == "=" and order == ">":
                return False
    return True


#: IEEE 754 bit fields (sign pos, exponent pos, exponent bits, mantissa pos, mantissa bits) and
#: exponent bias of the float sizes numpy has.
_IEEE = {
    2: ((15, 10, 5, 0, 10), 15),
    4: ((31, 23, 8, 0, 23), 127),
    8: ((63, 52, 11, 0, 52), 1023),
}


def no_zarr_float(dtype: np.dtype[Any]) -> bool:
    """True for long doubles (numpy float96/128, complex192/256), anywhere in ``dtype``."""
    if dtype.fields:
        return any(no_zarr_float(f[0]) for f in dtype.fields.values())
    if dtype.subdtype is not None:
        return no_zarr_float(dtype.subdtype[0])
    return (dtype.kind == "f" and dtype.itemsize > 8) or (dtype.kind == "c" and dtype.itemsize > 16)


def stored_layout_issue(tid: Any, dtype: np.dtype[Any]) -> str | None:
    """Why the bytes HDF5 stores for file type ``tid`` are not ``dtype``'s bytes, or None.

    HDF5 converts on read what numpy cannot hold as is: integers with fewer significant bits
    than their size or a bit offset (H5Tset_precision / H5Tset_offset, e.g. 12-bit detector
    data), floats that are not IEEE in their size (h5py reads them as float64), and fixed-length
    strings padded with spaces (H5T_STR_SPACEPAD, Fortran's default).
    """
    base = dtype.subdtype[0] if dtype.subdtype is not None else dtype
    if isinstance(tid, h5py.h5t.TypeCompoundID):
        names = list(base.names or ())
        if len(names) != tid.get_nmembers():
            return None  # refused by matches_file_type
        for i, name in enumerate(names):
            why = stored_layout_issue(tid.get_member_type(i), base.fields[name][0])  # type: ignore[index]
            if why is not None:
                return f"field {name!r}: {why}"
        return None
    if isinstance(tid, h5py.h5t.TypeArrayID | h5py.h5t.TypeEnumID):
        return stored_layout_issue(tid.get_super(), base)
    if isinstance(tid, h5py.h5t.TypeStringID):
        if not tid.is_variable_str() and tid.get_strpad() == h5py.h5t.STR_SPACEPAD:
            return "fixed-length strings padded with spaces (H5T_STR_SPACEPAD)"
        return None
    if isinstance(tid, h5py.h5t.TypeIntegerID | h5py.h5t.TypeFloatID):
        kind = "integer" if isinstance(tid, h5py.h5t.TypeIntegerID) else "float"
        size = tid.get_size()
        if size != base.itemsize:
            return f"a {size}-byte {kind} type that h5py reads as {base}"
        if tid.get_precision() != 8 * size or tid.get_offset() != 0:
            return (
                f"a {kind} type of {tid.get_precision()} significant bits at bit offset "
                f"{tid.get_offset()} in {size} bytes"
            )
        if kind == "float" and (tid.get_fields(), tid.get_ebias()) != _IEEE.get(size):
            return (
                f"a non-IEEE {8 * size}-bit float layout (bit fields {tid.get_fields()}, "
                f"exponent bias {tid.get_ebias()})"
            )
    return None


def nullterm_ranges(tid: Any) -> tuple[tuple[int, int], ...]:
    """Byte ranges of an item that hold fixed-length strings stored NUL-terminated.

    ``H5T_STR_NULLTERM`` is C's default (``H5T_C_S1``, PyTables, netCDF char): HDF5, so h5py,
    ends such a string at its first NUL on read, while the stored bytes after it may hold
    anything (C buffers reused without clearing). Served raw, ``b"ab\\0junk"`` instead of h5py's
    ``b"ab"``: the codec ends them the same way. Strings of one byte cannot differ.
    """

    def nullterm(t: Any) -> bool:
        return (
            isinstance(t, h5py.h5t.TypeStringID)
            and not t.is_variable_str()
            and t.get_strpad() == h5py.h5t.STR_NULLTERM
            and t.get_size() > 1
        )

    if isinstance(tid, h5py.h5t.TypeArrayID):
        tid = tid.get_super()  # array dtypes become trailing dimensions of the element type
    if nullterm(tid):
        return ((0, int(tid.get_size())),)
    if isinstance(tid, h5py.h5t.TypeCompoundID):
        return tuple(
            (int(tid.get_member_offset(i)), int(tid.get_member_type(i).get_size()))
            for i in range(tid.get_nmembers())
            if nullterm(tid.get_member_type(i))
        )
    return ()


def repack(values: np.ndarray, packed: np.dtype[Any]) -> np.ndarray:
    """``values`` (records) as C-contiguous records of ``packed``, copied field by field: numpy
    casts structured types by field position, so ``astype`` put the values of a field stored
    first in the file under the name of the field whose offset comes first."""
    out = np.empty(values.shape, dtype=packed)
    for name in packed.names or ():
        out[name] = values[name]
    return out
