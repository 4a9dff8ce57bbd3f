"""Fill values as each reader sees them: HDF5, h5py, netCDF readers, zarr and xarray.

Contract: pure predicates on fill values, dtypes and a chunked dataset's creation properties;
none reads chunk data. They decide where the index must serve something other than what zarr
would fill in by itself: whether a fill is all zero bytes (:func:`is_zero`; Blosc2 ZERO chunks
may then be missing keys), whether two fills are the same bytes (:func:`is_same_fill`), whether
zarr's null v2 ``fill_value`` reads as zeros for a dtype (:func:`null_fill_reads_zeros`), whether
a ``_FillValue`` attribute is exactly a value of its dtype (:func:`is_value_of`, the v2
``fill_value``) or one xarray decodes as a v3 attribute (:func:`is_v3_fill`, else published as
``missing_value`` by :func:`string_fill_as_missing_value`), and whether the bytes past a
dataset's extent or in its never-written chunks read as its fill (:func:`edges_hold_fill`,
:func:`all_chunks_stored`). :func:`vlen_fill` is a vlen-string dataset's fill as ``str``.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import h5py
import numpy as np

from b2store.hdf5 import metadata as md

__all__ = [
    "all_chunks_stored",
    "edges_hold_fill",
    "is_same_fill",
    "is_v3_fill",
    "is_value_of",
    "is_zero",
    "null_fill_reads_zeros",
    "string_fill_as_missing_value",
    "vlen_fill",
]


def is_zero(fill: Any, dtype: np.dtype[Any]) -> bool:
    if fill is None:
        return True
    try:
        return np.full((), fill, dtype=dtype).tobytes() == bytes(dtype.itemsize)
    except (TypeError, ValueError, OverflowError):
        return False


def is_same_fill(a: Any, b: Any, dtype: np.dtype[Any]) -> bool:
    try:
        return bool(
            np.full((), 0 if a is None else a, dtype).tobytes()
            == np.full((), 0 if b is None else b, dtype).tobytes()
        )
    except (TypeError, ValueError):
        return False


@functools.lru_cache(maxsize=256)
def null_fill_reads_zeros(dtype: np.dtype[Any]) -> bool:
    """Whether zarr fills the missing chunks of a v2 array whose ``fill_value`` is null with
    zeros (b2h5's v2 view publishes null unless a ``_FillValue`` attribute says otherwise).

    zarr takes the dtype's default scalar, which is not always zero: zarr 3.1 casts 0 into a
    structured dtype, giving ``b"0"`` in its bytes fields (and an error with void fields), and
    datetimes default to NaT. Such datasets get their fill chunks served instead.
    """
    try:
        from zarr.core.dtype import get_data_type_from_native_dtype

        scalar = get_data_type_from_native_dtype(dtype).default_scalar()
        return bool(np.asarray(scalar, dtype=dtype).tobytes() == bytes(dtype.itemsize))
    except (TypeError, ValueError, OverflowError):
        # no Zarr data type for ``dtype`` (ValueError), or a default zarr cannot cast into it
        # (TypeError for void fields in zarr 3.1): serving the fill chunks is always right
        return False


def is_value_of(value: Any, dtype: np.dtype[Any]) -> bool:
    """Whether ``value`` is exactly a value of a bool, integer or float ``dtype`` (others: True).

    A ``_FillValue`` attribute that is not (an int8 -1 on uint8 data, 1.5 on int16 data, a
    float64 -9999.9 on float32 data) cannot be the v2 ``fill_value``: zarr refused it
    (OverflowError: the file did not open) or rounded it, masking values h5netcdf keeps.
    """
    if value is None or dtype.kind not in "biuf":
        return True
    if isinstance(value, str | bytes):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cast = np.asarray(value).astype(dtype).item()
        return bool(cast == value or (cast != cast and value != value))  # NaN: itself
    except (TypeError, ValueError, OverflowError):
        return False


def is_v3_fill(value: Any, dtype: np.dtype[Any]) -> bool:
    """Whether xarray can take ``value`` as a numeric variable's v3 ``_FillValue`` attribute.

    It cannot decode several values (``[1.0, 2.0]``) or a string on numbers: the whole group
    failed to open (TypeError: Failed to decode fill_value); and it truncates an integer
    variable's fill that is no value of its dtype (``int(1.5)`` masked the real 1s). Such
    fills are published as ``missing_value``, which masks what h5netcdf masks.
    """
    if dtype.kind not in "biufc":
        return True
    if isinstance(value, list | str | bytes):
        return False
    return dtype.kind not in "biu" or is_value_of(value, dtype)


def string_fill_as_missing_value(attrs: dict[str, Any]) -> dict[str, Any]:
    """A variable-length string variable's ``_FillValue`` attribute as ``missing_value`` (v3).

    xarray (2026.9) cannot decode a Zarr v3 ``_FillValue`` attribute of a string array (it
    refuses the whole group: "Failed to decode fill_value. Unsupported dtype StringDType()").
    ``missing_value`` masks the same strings when xarray decodes CF (the netCDF ``_FillValue``
    is masked, as h5netcdf does); only the raw attribute's name differs. The same holds for an
    integer variable's fill that is no value of its dtype, which xarray would truncate.
    """
    out = {k: v for k, v in attrs.items() if k != "_FillValue"}
    fill = attrs["_FillValue"]
    if "missing_value" not in out:
        out["missing_value"] = fill
        return out
    known = out["missing_value"]
    values = list(known) if isinstance(known, list) else [known]
    if fill not in values:
        out["missing_value"] = [*values, fill]
    return out


def vlen_fill(ds: h5py.Dataset) -> str:
    """The HDF5 fill value of a variable-length string dataset, as ``str``."""
    fill = md.fill_value(ds)
    if isinstance(fill, bytes | np.bytes_):
        return bytes(fill).decode("utf-8", "surrogateescape")
    return "" if fill is None else str(fill)


def edges_hold_fill(ds: h5py.Dataset) -> bool:
    """True when HDF5 initialised every chunk with a user-defined fill before writing data.

    HDF5 then also refills the part of an edge chunk beyond a shrunk extent, so the bytes
    of an edge chunk outside the dataset's extent are the fill value.
    """
    try:
        dcpl = ds.id.get_create_plist()
        return bool(
            dcpl.fill_value_defined() == h5py.h5d.FILL_VALUE_USER_DEFINED
            and dcpl.get_fill_time() in (h5py.h5d.FILL_TIME_ALLOC, h5py.h5d.FILL_TIME_IFSET)
        )
    except (AttributeError, RuntimeError, ValueError):
        return False


def all_chunks_stored(ds: h5py.Dataset) -> bool:
    """Whether every chunk inside the extent of chunked dataset ``ds`` is allocated."""
    try:
        total = 1
        for n, c in zip(ds.shape, ds.chunks, strict=True):
            total *= -(-int(n) // int(c))
        return bool(ds.id.get_num_chunks() >= total)
    except (AttributeError, OSError, RuntimeError, TypeError, ValueError):
        return False
