"""h5py objects -> Zarr node metadata: attributes, dimension names and fill values.

Contract: every function here reads HDF5 *metadata* only (attributes, dimension scales, the
dataset creation property list), never chunk data, and returns plain Python/NumPy values ready
for :class:`b2store._zarrmeta.ArrayMeta` / :class:`~b2store._zarrmeta.GroupMeta`.

* Attributes become JSON: bytes are decoded (UTF-8, undecodable bytes replaced), one-element arrays
  become scalars (as netCDF4 and h5netcdf present them), NumPy values become Python values.
  Object and region references, empty attributes and types with no JSON form (complex numbers,
  except a ``_FillValue``, which the index encodes as xarray expects) are skipped; each skip is
  recorded as a note. Zero-length numeric attributes read as ``[]``.
* netCDF-internal attributes (``DIMENSION_LIST``, ``REFERENCE_LIST``, ``_Netcdf4Dimid``,
  ``_Netcdf4Coordinates``, ``_NCProperties``, ``_nc3_strict``, and ``CLASS``/``NAME`` on
  dimension scales) are hidden; CF attributes (``_FillValue``, ``scale_factor``, ``_Unsigned``,
  ...) and other producers' ``CLASS``/``TITLE``/``VERSION`` (PyTables) pass through. Empty
  string attributes stored with a NULL dataspace read as ``""``.
* Dimension names: attached dimension scales give netCDF's names; axes without a scale get
  ``phony_dim_<size>`` (``phony_dim_<size>_<k>`` for the k-th repeat inside one dataset), so equal
  names always imply equal sizes and ``xarray.open_datatree`` can align a whole file.
* Names: a variable netCDF-C stored as ``_nc4_non_coord_<name>`` (named like a dimension it is
  not the coordinate of) is served as ``<name>``, as netCDF readers call it.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import h5py
import numpy as np

from b2store._h5compat import h5py_mislabels_vlen_byte_order, vlen_as_stored

__all__ = [
    "HIDDEN_ATTRIBUTES",
    "NON_COORD_PREFIX",
    "PURE_DIMENSION_PREFIX",
    "TYPED_ATTRIBUTES",
    "NodeAttrs",
    "attribute_types",
    "dimension_length",
    "dimension_names",
    "dimensions",
    "encode_fill_attribute",
    "extend_dimension_names",
    "fill_value",
    "is_pure_dimension",
    "is_unlimited_dimension",
    "netcdf_variable_name",
    "node_attributes",
    "padding_fill",
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

#: Prefix netCDF-C gives a variable named like a dimension it is not the coordinate of.
NON_COORD_PREFIX = "_nc4_non_coord_"


def _attr_value(value: Any) -> Any:
    """One attribute value as JSON-ready Python (raises TypeError/ValueError when impossible)."""
    if isinstance(value, h5py.Empty):
        if value.dtype is not None and np.dtype(value.dtype).kind in "SU":
            return ""  # PyTables writes empty strings (e.g. TITLE) as H5S_NULL attributes
        if value.dtype is not None and np.dtype(value.dtype).kind in "biuf":
            return []  # netCDF-C writes zero-length attributes so; netCDF readers give []
        raise TypeError("empty attribute (H5S_NULL)")
    if isinstance(value, h5py.Reference | h5py.RegionReference):
        raise TypeError("object reference")
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str):
        # h5py decodes variable-length strings with "surrogateescape": bytes that are no UTF-8
        # became lone surrogates, which no UTF-8 writer (netCDF, other JSON readers) accepts;
        # replace them as for fixed-length strings
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", errors="replace")
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.fields is not None:
            # as a 0-d compound attribute (np.void): a one-element array used to become a
            # nameless list of its field values, longer ones failed to reshape
            raise TypeError(f"opaque or compound attribute of dtype {value.dtype}")
        if value.dtype.kind == "O":
            if h5py.check_ref_dtype(value.dtype) is not None:
                raise TypeError("array of object references")
            items = [_vlen_item(v) for v in value.ravel().tolist()]
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


def _vlen_item(value: Any) -> Any:
    """One element of an object-dtype attribute: a variable-length sequence stays a list.

    (Collapsing one-element arrays to scalars is for whole attributes, as netCDF readers do: a
    vlen attribute ``[[0, 1, 2], [0]]`` read as ``[[0, 1, 2], 0]``.)
    """
    out = _attr_value(value)
    if isinstance(value, np.ndarray) and value.ndim >= 1 and not isinstance(out, list):
        return [out]
    return out


class NodeAttrs:
    """The attributes of one h5py group or dataset, each read from the file at most once.

    The functions of this module that look at a node's attributes (:func:`node_attributes`,
    :func:`attribute_types`, :func:`is_pure_dimension`, :func:`dimensions`, ...) take one, so
    that indexing a node reads each attribute once: they read ``CLASS``, ``NAME``,
    ``scale_factor``, ... one after the other, which was six attribute reads per dataset of a
    file of many small datasets. Reads behave as ``obj.attrs`` reads: ``self[name]`` returns
    the value or raises what reading it raised (each time), ``get`` returns ``default`` for a
    missing attribute, ``in`` tells whether one exists.
    """

    __slots__ = ("_attrs", "_cpl", "_listed", "_memo", "_names", "obj")

    def __init__(self, obj: h5py.HLObject, cpl: Any = None) -> None:
        """``cpl``: ``obj``'s creation property list, if the caller has it (listing the
        names asks it for the attributes' order: h5py creates one more)."""
        self.obj = obj
        self._attrs = obj.attrs
        self._cpl = cpl
        self._names: list[Any] | None = None
        self._listed: frozenset[Any] | None = None
        self._memo: dict[Any, Any] = {}

    def names(self) -> list[Any] | None:
        """The attribute names as ``obj.attrs`` lists them, or None when listing fails."""
        if self._listed is None:
            try:
                self._names = self._list()
            except Exception:  # listed (and raised) again by whoever iterates obj.attrs
                self._names = None
            self._listed = frozenset(self._names or ())
        return self._names

    def _list(self) -> list[Any]:
        if self._cpl is None:
            return list(self._attrs)
        # h5py's AttributeManager.__iter__, with the property list at hand
        names: list[Any] = []

        def found(name: bytes, *_: Any) -> None:
            try:
                names.append(name.decode("utf-8"))
            except UnicodeDecodeError:
                names.append(name)

        tracked = self._cpl.get_attr_creation_order() & h5py.h5p.CRT_ORDER_TRACKED
        order = h5py.h5.INDEX_CRT_ORDER if tracked else h5py.h5.INDEX_NAME
        h5py.h5a.iterate(self.obj.id, found, index_type=order)
        return names

    def __contains__(self, name: object) -> bool:
        if self.names() is None:
            return name in self._attrs
        assert self._listed is not None
        return name in self._listed

    def __getitem__(self, name: Any) -> Any:
        try:
            got = self._memo[name]
        except KeyError:
            try:
                got = self._attrs[name]
                if isinstance(got, np.ndarray) and got.dtype.kind in "Obiuf":
                    got = _sequences_as_stored(self._attrs, name, got)
            except Exception as exc:  # raised again below, at each read
                got = _Failed(exc)
            self._memo[name] = got
        if isinstance(got, _Failed):
            raise got.exc
        return got

    def get(self, name: Any, default: Any = None) -> Any:
        """``obj.attrs.get(name, default)``."""
        if self.names() is not None and name not in self:
            return default
        try:
            return self[name]
        except KeyError:
            return default


def _sequences_as_stored(attrs: Any, name: Any, value: np.ndarray) -> Any:
    """``value`` of attribute ``name`` with variable-length sequences of a non-native byte
    order holding the values the file holds (h5py reads ``vlen_dtype('>u8')`` [1, 2] as
    [2**56, 2**57]: pyfive's ``attr_datatypes.hdf5``; see :mod:`b2store._h5compat`)."""
    if not h5py_mislabels_vlen_byte_order():
        return value
    dtype = attrs.get_id(name).dtype
    return vlen_as_stored(value, dtype) if dtype.kind == "O" else value


class _Failed:
    """What reading an attribute raised (kept by :class:`NodeAttrs`)."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _node_attrs(obj: h5py.HLObject, attrs: NodeAttrs | None) -> NodeAttrs:
    return attrs if attrs is not None else NodeAttrs(obj)


def node_attributes(
    obj: h5py.HLObject, notes: list[str], attrs: NodeAttrs | None = None
) -> dict[str, Any]:
    """The visible attributes of a group or dataset as a JSON-ready dict.

    Parameters
    ----------
    obj
        An open h5py group or dataset.
    notes
        Receives one line per skipped attribute (name, object, reason).
    attrs
        ``obj``'s attributes as read already (a :class:`NodeAttrs`), if any.

    Returns
    -------
    dict
        Attribute name -> JSON value, netCDF-internal attributes removed.
    """
    out: dict[str, Any] = {}
    attrs = _node_attrs(obj, attrs)
    scale = _is_dimension_scale(obj, attrs)
    names = attrs.names()
    for name in obj.attrs if names is None else names:
        if name in HIDDEN_ATTRIBUTES and (scale or name not in _SCALE_ATTRIBUTES):
            continue
        try:
            value = _attr_value(attrs[name])
            if not (name == "_FillValue" and isinstance(value, complex)):
                json.dumps(value, allow_nan=True)  # a complex _FillValue is encoded by the index
        except (TypeError, ValueError, OSError, KeyError) as exc:
            notes.append(f"{obj.file.filename}:{obj.name}: attribute {name!r} skipped ({exc})")
            continue
        if isinstance(name, bytes):
            # h5py gives a name that is no UTF-8 as bytes: it became the key "b'...'"
            key = name.decode("utf-8", errors="replace")
            if key in out or key in attrs:
                notes.append(
                    f"{obj.file.filename}:{obj.name}: attribute {name!r} skipped (its name is "
                    f"no UTF-8 and reads as {key!r}, the name of another attribute)"
                )
                continue
            name = key
        out[name] = value
    return out


def _is_dimension_scale(obj: h5py.HLObject, attrs: NodeAttrs | None = None) -> bool:
    """True when ``obj`` carries ``CLASS="DIMENSION_SCALE"`` (its NAME/CLASS are structure)."""
    try:
        value = _node_attrs(obj, attrs).get("CLASS")
    except (OSError, KeyError, TypeError):
        return False
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, bytes | np.bytes_):
        value = bytes(value).decode("utf-8", errors="replace")
    return value == "DIMENSION_SCALE"


def is_unlimited_dimension(ds: h5py.Dataset, attrs: NodeAttrs | None = None) -> bool:
    """True for the dimension scale of an unlimited netCDF dimension (maxshape ``(None,)``), as
    h5netcdf and netCDF4-python report it in ``Dataset.encoding["unlimited_dims"]``."""
    try:
        return _is_dimension_scale(ds, attrs) and ds.maxshape == (None,)
    except (OSError, TypeError, ValueError):
        return False


#: CF attributes whose NumPy type decides how xarray decodes a variable: a float32
#: ``scale_factor``/``add_offset`` unpacks to float32, a float64 (what a JSON number becomes)
#: to float64 (``xarray.coding.variables._choose_float_dtype``).
TYPED_ATTRIBUTES = ("scale_factor", "add_offset")


def attribute_types(ds: h5py.Dataset, attrs: NodeAttrs | None = None) -> dict[str, str]:
    """NumPy type (``dtype.str``, native order) of each numeric scalar :data:`TYPED_ATTRIBUTES`
    item of ``ds``: its JSON number keeps the value only (h5netcdf gives NumPy scalars)."""
    out: dict[str, str] = {}
    source = _node_attrs(ds, attrs)
    for name in TYPED_ATTRIBUTES:
        try:
            value = source.get(name)
        except (OSError, KeyError, TypeError, ValueError):
            continue
        dtype = getattr(value, "dtype", None)
        if dtype is None or dtype.kind not in "iuf" or np.size(value) != 1:
            continue
        out[name] = dtype.newbyteorder("=").str
    return out


def is_pure_dimension(ds: h5py.Dataset, attrs: NodeAttrs | None = None) -> bool:
    """True for a netCDF dimension that is not a netCDF variable (hidden from the view)."""
    try:
        name = _node_attrs(ds, attrs).get("NAME")
    except (OSError, KeyError, TypeError):
        return False
    if isinstance(name, np.ndarray) and name.size == 1:
        name = name.reshape(()).item()
    if isinstance(name, bytes | np.bytes_):
        name = bytes(name).decode("utf-8", errors="replace")
    return isinstance(name, str) and name.startswith(PURE_DIMENSION_PREFIX)


def netcdf_variable_name(group: h5py.Group, name: str) -> str:
    """The netCDF name of dataset ``name`` of ``group`` (the Zarr array's name).

    netCDF-C stores a variable that has a dimension's name without being that dimension's
    coordinate variable (``x(y)`` next to a dimension ``x``) as ``_nc4_non_coord_x``, beside the
    pure dimension scale ``x``; netCDF readers call it ``x``, and so does the view (unless the
    group has another node ``x`` that is served).
    """
    if not name.startswith(NON_COORD_PREFIX) or len(name) == len(NON_COORD_PREFIX):
        return name
    plain = name[len(NON_COORD_PREFIX) :]
    try:
        other = group.get(plain)
    except (KeyError, OSError, ValueError):
        return name
    if other is None or (isinstance(other, h5py.Dataset) and is_pure_dimension(other)):
        return plain
    return name


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


def dimension_length(scale: h5py.Dataset, cache: dict[Any, tuple[str, int]] | None = None) -> int:
    """Length of the netCDF dimension a dimension scale stands for.

    A fixed dimension's length is its scale's. An unlimited one (maxshape ``(None,)``) is as
    long as the longest variable along it (netCDF-C leaves the scale of a pure unlimited
    dimension at length 0 and grows only the variables), as netCDF4-python and h5netcdf compute
    it from the scale's ``REFERENCE_LIST``. ``cache`` (see :func:`_scale_info`) saves
    re-reading that list for each variable of a dimension.
    """
    return _scale_info(scale, cache)[1]


def _scale_info(scale: h5py.Dataset, cache: dict[Any, tuple[str, int]] | None) -> tuple[str, int]:
    """(base name, :func:`dimension_length`) of a dimension scale, cached by object identity.

    A scale reached through a dataset's ``DIMENSION_LIST`` has no known path: HDF5 searches
    the file for its name (milliseconds in a file of many objects), so one lookup per scale,
    not one per variable, keeps opening a file of N variables O(N), not O(N^2).
    """
    key = scale.id
    if cache is not None and key in cache:
        return cache[key]
    name = (scale.name or "").rsplit("/", 1)[-1]
    n = int(scale.shape[0]) if scale.shape else 0
    try:
        if scale.maxshape is not None and scale.maxshape[:1] == (None,):
            refs = scale.attrs.get("REFERENCE_LIST")
            if refs is not None and refs.dtype.fields is not None and len(refs.dtype.fields) == 2:
                ref_field, axis_field = list(refs.dtype.names or ())
                f = scale.file
                for item in np.asarray(refs).ravel():
                    var = f[item[ref_field]]
                    axis = int(item[axis_field])
                    if isinstance(var, h5py.Dataset) and var.shape and axis < len(var.shape):
                        n = max(n, int(var.shape[axis]))
    except (OSError, KeyError, RuntimeError, ValueError, TypeError):
        pass  # an unreadable reference list: the scale's own length
    if cache is not None:
        cache[key] = (name, n)
    return name, n


def dimensions(
    ds: h5py.Dataset,
    cache: dict[Any, tuple[str, int]] | None = None,
    attrs: NodeAttrs | None = None,
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Dimension names and lengths (see :func:`dimension_names`).

    A netCDF dimension's length is given by :func:`dimension_length`; a variable along an
    unlimited dimension may be shorter than that (netCDF readers pad it with the fill value).
    ``cache`` is handed to :func:`dimension_length`; ``attrs`` are ``ds``'s attributes as read
    already (:class:`NodeAttrs`), if any.
    """
    shape = tuple(int(n) for n in ds.shape)
    names = _phony(shape)
    lengths = list(shape)
    if not shape:
        return (), ()
    source = _node_attrs(ds, attrs)
    try:
        # (a dimension scale has a CLASS attribute: most datasets are no scale, known without
        # asking HDF5 to read it)
        if "CLASS" in source and h5py.h5ds.is_scale(ds.id):
            if len(shape) == 1:
                return (ds.name.rsplit("/", 1)[-1],), (max(shape[0], dimension_length(ds, cache)),)
            # a netCDF multi-dimensional coordinate variable (``station(station, strlen)``
            # char coordinates, ``lat(lat, lon)``): a scale whose axes netCDF-C records as
            # dimension ids in ``_Netcdf4Coordinates``
            found = _netcdf4_coordinate_dims(ds, shape, cache, attrs)
            return found if found is not None else (tuple(names), shape)
        if "DIMENSION_LIST" not in source:
            return tuple(names), shape
        for axis in range(len(shape)):
            scales = ds.dims[axis]
            if len(scales) == 0:
                continue
            scale = scales[len(scales) - 1]  # several scales: the last, as netCDF-C reads it
            if len(scale.shape or ()) < 1:
                continue
            name, length = _scale_info(scale, cache)
            if not name:
                continue
            names[axis] = name
            lengths[axis] = max(shape[axis], length)
    except (OSError, KeyError, RuntimeError, ValueError, TypeError):
        return tuple(_phony(shape)), shape
    # a repeated name (netCDF ``cov(x, x)``) stays repeated, as netCDF readers present it
    return tuple(names), tuple(lengths)


def _netcdf4_coordinate_dims(
    ds: h5py.Dataset,
    shape: tuple[int, ...],
    cache: dict[Any, tuple[str, int]] | None = None,
    attrs: NodeAttrs | None = None,
) -> tuple[tuple[str, ...], tuple[int, ...]] | None:
    """Names and lengths of a multi-dimensional netCDF coordinate variable's dimensions.

    ``_Netcdf4Coordinates`` lists the dimension ids of its axes; a dimension is the dimension
    scale with that ``_Netcdf4Dimid`` in the variable's group or the nearest enclosing group
    (an inner scale hides an outer one of the same name). None when an id does not resolve.
    """
    ids = _node_attrs(ds, attrs).get("_Netcdf4Coordinates")
    if ids is None:
        return None
    ids = np.asarray(ids).ravel()
    if ids.size != len(shape) or ids.dtype.kind not in "iu":
        return None
    wanted = {int(i) for i in ids}
    by_id: dict[int, tuple[str, int]] = {}
    seen: set[str] = set()
    group: h5py.Group | None = ds.parent
    while group is not None and wanted - set(by_id):
        for name in group:
            if name in seen:
                continue
            seen.add(name)
            link = group.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink | h5py.SoftLink):
                continue
            obj = group.get(name)
            if not isinstance(obj, h5py.Dataset) or not _is_dimension_scale(obj):
                continue
            dimid = obj.attrs.get("_Netcdf4Dimid")
            if dimid is None or obj.shape is None or len(obj.shape) < 1:
                continue
            dimid = int(np.asarray(dimid).ravel()[0])
            if dimid in wanted and dimid not in by_id:
                by_id[dimid] = (name, dimension_length(obj, cache))
        group = None if group.name == "/" else group.parent
    if wanted - set(by_id):
        return None
    names = tuple(by_id[int(i)][0] for i in ids)
    lengths = tuple(max(n, by_id[int(i)][1]) for n, i in zip(shape, ids, strict=True))
    return names, lengths


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


def unsigned_false_fill(value: Any, dtype: np.dtype[Any], attrs: dict[str, Any]) -> Any:
    """An unsigned variable's v3 ``_FillValue`` attribute, as its signed twin's item when the
    variable has ``_Unsigned="false"`` (netCDF: the bytes are signed values).

    xarray (2026.9) converts such a fill with ``int8(200)``: a Python int from a Zarr v3
    attribute above the signed range failed the whole open (``OverflowError: Python integer
    200 out of bounds for int8``), where h5netcdf's ``numpy.uint8(200)`` wraps to -56. The
    signed item (-56) masks the same values. Other fills are returned unchanged.
    """
    if dtype.kind != "u" or attrs.get("_Unsigned") != "false":
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        return value
    n = dtype.itemsize
    try:
        raw = np.array(value, dtype=f"u{n}")  # native order: the value, not the stored bytes
    except (OverflowError, ValueError, TypeError):
        return value
    return int(raw.view(f"i{n}"))


def padding_fill(ds: h5py.Dataset, dcpl: Any = None, dtype: Any = None) -> Any:
    """What netCDF readers show past the extent of a variable shorter than its (unlimited)
    dimension: its recorded HDF5 fill value whatever the fill time (netCDF-C pads with the
    variable's fill value, h5netcdf with ``ds.fillvalue``). Unlike :func:`fill_value`, a fill
    recorded with fill time ``H5D_FILL_TIME_NEVER`` counts: only the never-written chunks
    *inside* the extent read as zeros then. ``None`` when h5py cannot tell. Read as h5py's
    ``ds.fillvalue`` reads it, from ``dcpl`` and ``dtype`` (h5py's ``ds.dtype``) when the caller
    has them."""
    try:
        buf = np.zeros((1,), dtype=ds.dtype if dtype is None else dtype)
        (ds.id.get_create_plist() if dcpl is None else dcpl).get_fill_value(buf)
        value = buf[0]
    except (OSError, RuntimeError, TypeError, ValueError):  # RuntimeError: fill undefined
        return None
    if isinstance(value, np.ndarray) and value.size == 1:  # compound fills come back as 0-d
        value = value.reshape(())[()]
    return value


def fill_value(ds: h5py.Dataset, dcpl: Any = None, dtype: Any = None) -> Any:
    """What h5py reads where a dataset was never written: its HDF5 fill value.

    The dtype's zero when none was defined - the library default, or marked *undefined*
    (``H5Pset_fill_value(..., NULL)``, as some writers leave it) - and also when the fill time is
    ``H5D_FILL_TIME_NEVER``: HDF5 then skips unallocated chunks (and never-written contiguous
    data) on read and leaves the caller's buffer as it was, which h5py allocates zeroed, so
    h5py (and h5netcdf, xarray's engine) read zeros there, not the recorded fill value.
    ``dcpl`` and ``dtype`` (h5py's ``ds.dtype``): the dataset's, if the caller has them.
    """
    try:
        if dcpl is None:
            dcpl = ds.id.get_create_plist()
        # (a virtual dataset's unmapped elements get its fill value whatever the fill time)
        never = dcpl.get_fill_time() == h5py.h5d.FILL_TIME_NEVER and dcpl.get_layout() in (
            h5py.h5d.CHUNKED,
            h5py.h5d.CONTIGUOUS,
        )
        never = never or dcpl.fill_value_defined() == h5py.h5d.FILL_VALUE_UNDEFINED
    except (AttributeError, OSError, RuntimeError, TypeError, ValueError):
        never = False
    if never:
        if dtype is None:
            dtype = ds.dtype
        if h5py.check_string_dtype(dtype) is not None and dtype.kind == "O":
            return b""
        zero = np.zeros((), dtype)
        return zero[()] if zero.dtype.kind != "O" else None
    return padding_fill(ds, dcpl, dtype)  # the recorded fill
