"""h5py objects -> Zarr node metadata: attributes, dimension names and fill values.

Contract: every function here reads HDF5 *metadata* only (attributes, dimension scales, the
dataset creation property list), never chunk data, and returns plain Python/NumPy values ready
for :class:`b2store._zarrmeta.ArrayMeta` / :class:`~b2store._zarrmeta.GroupMeta`.

* Attributes become JSON: bytes are decoded (UTF-8, undecodable bytes replaced), one-element arrays
  become scalars (as netCDF4 and h5netcdf present them), NumPy values become Python values.
  Object and region references, empty attributes and types with no JSON form are skipped; each
  skip is recorded as a note.
* netCDF-internal attributes (``DIMENSION_LIST``, ``REFERENCE_LIST``, ``_Netcdf4Dimid``,
  ``_Netcdf4Coordinates``, ``_NCProperties``, ``_nc3_strict``, and ``CLASS``/``NAME`` on
  dimension scales) are hidden; CF attributes (``_FillValue``, ``scale_factor``, ``_Unsigned``,
  ...) and other producers' ``CLASS``/``TITLE``/``VERSION`` (PyTables) pass through. Empty
  string attributes stored with a NULL dataspace read as ``""``.
* Dimension names: attached dimension scales give netCDF's names; axes without a scale get
  ``phony_dim_<size>`` (``phony_dim_<size>_<k>`` for the k-th repeat inside one dataset), so equal
  names always imply equal sizes and ``xarray.open_datatree`` can align a whole file.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import h5py
import numpy as np

__all__ = [
    "HIDDEN_ATTRIBUTES",
    "PURE_DIMENSION_PREFIX",
    "dimension_names",
    "dimensions",
    "encode_fill_attribute",
    "extend_dimension_names",
    "fill_value",
    "is_pure_dimension",
    "node_attributes",
]

#: Attributes that describe netCDF/HDF5 structure, not data: never shown.
HIDDEN_ATTRIBUTES = frozenset(
    {
        "DIMENSION_LIST",
        "REFERENCE_LIST",
        "CLASS",
        "NAME",
        "_Netcdf4Dimid",
        "_Netcdf4Coordinates",
        "_NCProperties",
        "_nc3_strict",
        "_SuperblockVersion",
        "_IsNetcdf4",
    }
)

#: Hidden only on dimension scales: elsewhere they are user data (PyTables' ``CLASS="CARRAY"``).
_SCALE_ATTRIBUTES = frozenset({"CLASS", "NAME"})

#: ``NAME`` of a dimension scale that is a netCDF dimension but not a netCDF variable.
PURE_DIMENSION_PREFIX = "This is a netCDF dimension but not a netCDF variable"


def _attr_value(value: Any) -> Any:
    """One attribute value as JSON-ready Python (raises TypeError/ValueError when impossible)."""
    if isinstance(value, h5py.Empty):
        if value.dtype is not None and np.dtype(value.dtype).kind in "SU":
            return ""  # PyTables writes empty strings (e.g. TITLE) as H5S_NULL attributes
        raise TypeError("empty attribute (H5S_NULL)")
    if isinstance(value, h5py.Reference | h5py.RegionReference):
        raise TypeError("object reference")
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "O" or value.dtype.fields is not None:
            if h5py.check_ref_dtype(value.dtype) is not None:
                raise TypeError("array of object references")
            items = [_attr_value(v) for v in value.ravel().tolist()]
            out: Any = items[0] if value.size == 1 else np.array(items, dtype=object)
            if isinstance(out, np.ndarray):
                out = out.reshape(value.shape).tolist()
            return out
        if value.dtype.kind == "S":
            dec = [bytes(v).decode("utf-8", errors="replace") for v in value.ravel().tolist()]
            return (
                dec[0]
                if value.size == 1
                else np.array(dec, dtype=object).reshape(value.shape).tolist()
            )
        if value.dtype.kind == "V":
            raise TypeError(f"opaque or compound attribute of dtype {value.dtype}")
        if value.size == 1:
            return value.reshape(()).item()
        return value.tolist()
    if isinstance(value, np.void):
        raise TypeError(f"opaque or compound attribute of dtype {value.dtype}")
    if isinstance(value, np.generic):
        return value.item()
    return value


def node_attributes(obj: h5py.HLObject, notes: list[str]) -> dict[str, Any]:
    """The visible attributes of a group or dataset as a JSON-ready dict.

    Parameters
    ----------
    obj
        An open h5py group or dataset.
    notes
        Receives one line per skipped attribute (name, object, reason).

    Returns
    -------
    dict
        Attribute name -> JSON value, netCDF-internal attributes removed.
    """
    out: dict[str, Any] = {}
    scale = _is_dimension_scale(obj)
    for name in obj.attrs:
        if name in HIDDEN_ATTRIBUTES and (scale or name not in _SCALE_ATTRIBUTES):
            continue
        try:
            value = _attr_value(obj.attrs[name])
            json.dumps(value, allow_nan=True)
        except (TypeError, ValueError, OSError, KeyError) as exc:
            notes.append(f"{obj.file.filename}:{obj.name}: attribute {name!r} skipped ({exc})")
            continue
        out[name] = value
    return out


def _is_dimension_scale(obj: h5py.HLObject) -> bool:
    """True when ``obj`` carries ``CLASS="DIMENSION_SCALE"`` (its NAME/CLASS are structure)."""
    try:
        value = obj.attrs.get("CLASS")
    except (OSError, KeyError, TypeError):
        return False
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, bytes | np.bytes_):
        value = bytes(value).decode("utf-8", errors="replace")
    return value == "DIMENSION_SCALE"


def is_pure_dimension(ds: h5py.Dataset) -> bool:
    """True for a netCDF dimension that is not a netCDF variable (hidden from the view)."""
    try:
        name = ds.attrs.get("NAME")
    except (OSError, KeyError, TypeError):
        return False
    if isinstance(name, np.ndarray) and name.size == 1:
        name = name.reshape(()).item()
    if isinstance(name, bytes | np.bytes_):
        name = bytes(name).decode("utf-8", errors="replace")
    return isinstance(name, str) and name.startswith(PURE_DIMENSION_PREFIX)


def _phony(sizes: tuple[int, ...]) -> list[str]:
    seen: dict[int, int] = {}
    names = []
    for n in sizes:
        k = seen.get(n, 0)
        seen[n] = k + 1
        names.append(f"phony_dim_{n}" if k == 0 else f"phony_dim_{n}_{k}")
    return names


def dimension_names(ds: h5py.Dataset) -> tuple[str, ...]:
    """Dimension names of a dataset: netCDF/HDF5 dimension scales, else phony names.

    A dimension scale is its own (only) dimension. Axes with no attached scale are named
    ``phony_dim_<size>`` so that names shared between datasets always have equal sizes.
    """
    return dimensions(ds)[0]


def dimensions(ds: h5py.Dataset) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Dimension names and lengths (see :func:`dimension_names`).

    A netCDF dimension's length is the length of its scale; a variable along an unlimited
    dimension may be shorter than that (netCDF readers pad it with the fill value).
    """
    shape = tuple(int(n) for n in ds.shape)
    names = _phony(shape)
    lengths = list(shape)
    if not shape:
        return (), ()
    try:
        if h5py.h5ds.is_scale(ds.id):
            if len(shape) == 1:
                return (ds.name.rsplit("/", 1)[-1],), shape
            return tuple(names), shape
        if "DIMENSION_LIST" not in ds.attrs:
            return tuple(names), shape
        for axis in range(len(shape)):
            scales = ds.dims[axis]
            if len(scales) == 0:
                continue
            scale = scales[0]
            if scale.name is None or len(scale.shape or ()) != 1:
                continue
            names[axis] = scale.name.rsplit("/", 1)[-1]
            lengths[axis] = max(shape[axis], int(scale.shape[0]))
    except (OSError, KeyError, RuntimeError, ValueError, TypeError):
        return tuple(_phony(shape)), shape
    if len(set(names)) != len(names):  # a netCDF variable may not repeat a dimension for zarr
        return tuple(_phony(shape)), shape
    return tuple(names), tuple(lengths)


def extend_dimension_names(dims: tuple[str, ...], extra: tuple[int, ...]) -> tuple[str, ...]:
    """``dims`` plus phony names for trailing axes of sizes ``extra`` (from an HDF5 array type)."""
    names = list(dims)
    for n in extra:
        name, k = f"phony_dim_{n}", 0
        while name in names:
            k += 1
            name = f"phony_dim_{n}_{k}"
        names.append(name)
    return tuple(names)


def encode_fill_attribute(value: Any, dtype: np.dtype[Any]) -> Any:
    """A ``_FillValue`` attribute as xarray expects it in Zarr v3 attributes.

    xarray (``FillValueCoder``) stores float fills as base64 of a little-endian float64, complex
    fills as two of those, byte-string fills as base64, and reads them back with the array's
    dtype. Values that cannot be encoded are returned unchanged.
    """
    try:
        if dtype.kind == "f":
            return base64.standard_b64encode(struct.pack("<d", float(value))).decode()
        if dtype.kind == "c":
            c = complex(value)
            return [
                base64.standard_b64encode(struct.pack("<d", c.real)).decode(),
                base64.standard_b64encode(struct.pack("<d", c.imag)).decode(),
            ]
        if dtype.kind == "S":
            raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
            return base64.standard_b64encode(raw).decode()
        if dtype.kind in "iu":
            return int(value)
        if dtype.kind == "b":
            return bool(value)
    except (TypeError, ValueError, struct.error):
        return value
    return value


def fill_value(ds: h5py.Dataset) -> Any:
    """The HDF5 fill value of a dataset (the dtype's zero when none was defined)."""
    try:
        value = ds.fillvalue
    except (OSError, TypeError, ValueError):
        return None
    if isinstance(value, np.ndarray) and value.size == 1:  # compound fills come back as 0-d
        value = value.reshape(())[()]
    return value
