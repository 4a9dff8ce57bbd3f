"""One metadata model for the Zarr views of HDF5 files and Caterva2 repositories, two renderers.

A store backend describes each node once, as an :class:`ArrayMeta` or a :class:`GroupMeta`, and
renders the whole hierarchy as Zarr v3 (``zarr.json`` per node, with the consolidated metadata
inline in the root) or Zarr v2 (``.zgroup``/``.zarray``/``.zattrs`` plus ``.zmetadata``).

The data type and fill value are encoded with zarr-python's own data-type machinery, so the JSON is
exactly what zarr writes itself. Codecs are given by the backend in both forms because the two
formats name codecs differently (v3 ``{"name", "configuration"}``, v2 ``{"id", ...}``).
"""

from __future__ import annotations

import bisect
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

JSON = Any

__all__ = [
    "ArrayMeta",
    "GroupMeta",
    "bytes_codec",
    "is_big_endian",
    "packed_dtype",
    "render_v2",
    "render_v3",
]


@dataclass(frozen=True, kw_only=True)
class ArrayMeta:
    """What a Zarr array node needs, independent of the Zarr format.

    ``fill_value`` is a Python/NumPy scalar (or ``None`` for the dtype's default in v3, ``null`` in
    v2). ``codecs`` is the v3 codec list (array->array, one array->bytes, bytes->bytes);
    ``v2_filters``/``v2_compressor`` the v2 equivalent (numcodecs configs).
    """

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype[Any]
    fill_value: Any = None
    codecs: tuple[JSON, ...] = ()
    v2_filters: tuple[JSON, ...] | None = None
    v2_compressor: JSON | None = None
    v2_fill_value: Any = None
    attributes: dict[str, JSON] = field(default_factory=dict)
    dimension_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.shape) != len(self.chunks):
            raise ValueError(
                f"Expected chunks with {len(self.shape)} dimensions like shape {self.shape}. "
                f"Got {self.chunks} instead."
            )
        if self.dimension_names is not None and len(self.dimension_names) != len(self.shape):
            raise ValueError(
                f"Expected {len(self.shape)} dimension names. Got {self.dimension_names} instead."
            )


@dataclass(frozen=True, kw_only=True)
class GroupMeta:
    """What a Zarr group node needs: its attributes."""

    attributes: dict[str, JSON] = field(default_factory=dict)


Node = ArrayMeta | GroupMeta


def _scalar_dtypes(dtype: np.dtype[Any]) -> Iterator[np.dtype[Any]]:
    """The scalar dtypes ``dtype`` is built of: itself, or the items of its structured fields
    and sub-arrays, at any depth."""
    if dtype.fields:
        for field_info in dtype.fields.values():
            yield from _scalar_dtypes(field_info[0])
    elif dtype.subdtype is not None:
        yield from _scalar_dtypes(dtype.subdtype[0])
    else:
        yield dtype


def is_big_endian(dtype: np.dtype[Any]) -> bool:
    """Whether any part of ``dtype`` (structured fields and sub-arrays included) stores
    big-endian items (native ones on a big-endian machine too)."""
    return any(
        d.byteorder == ">" or (d.byteorder == "=" and not np.little_endian)
        for d in _scalar_dtypes(dtype)
    )


def _has_byte_order(dtype: np.dtype[Any]) -> bool:
    """Whether any part of ``dtype`` has items of several bytes in a byte order."""
    return any(d.itemsize > 1 and d.byteorder != "|" for d in _scalar_dtypes(dtype))


def packed_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """A structured ``dtype`` with its fields in offset order and no padding bytes (others as
    given): the only layout Zarr's structured data types describe (they have no offsets)."""
    if not dtype.names:
        return dtype
    fields: dict[str, Any] = dict(dtype.fields or {})
    names = sorted(dtype.names, key=lambda n: fields[n][1])
    return np.dtype([(n, fields[n][0]) for n in names])


def bytes_codec(dtype: np.dtype[Any]) -> JSON:
    """The v3 ``bytes`` codec for ``dtype`` (endianness only where it matters)."""
    if not _has_byte_order(dtype):
        return {"name": "bytes"}
    endian = "big" if is_big_endian(dtype) else "little"
    return {"name": "bytes", "configuration": {"endian": endian}}


def _zdtype(dtype: np.dtype[Any]) -> Any:
    from zarr.core.dtype import get_data_type_from_native_dtype

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_data_type_from_native_dtype(dtype)


def _scalar_json(dtype: np.dtype[Any], value: Any, zarr_format: int) -> JSON:
    zdt = _zdtype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if value is None:
            value = zdt.default_scalar()
        return zdt.to_json_scalar(zdt.cast_scalar(value), zarr_format=zarr_format)


def _clean_attrs(attrs: dict[str, JSON]) -> dict[str, JSON]:
    """Attributes as plain JSON (NumPy scalars/arrays converted); fails loudly on the rest."""

    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [conv(x) for x in v]
        if isinstance(v, np.ndarray):
            return conv(v.tolist())
        if isinstance(v, np.generic):
            return conv(v.item())
        if isinstance(v, bytes):
            return v.decode("utf-8", errors="replace")
        return v

    out = conv(attrs)
    json.dumps(out, allow_nan=True)  # fail here, naming nothing else, if something is not JSON
    return out


def array_v3(meta: ArrayMeta) -> JSON:
    """The ``zarr.json`` document of one array."""
    zdt = _zdtype(meta.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data_type = zdt.to_json(zarr_format=3)
    doc: dict[str, JSON] = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(meta.shape),
        "data_type": data_type,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(meta.chunks)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": _scalar_json(meta.dtype, meta.fill_value, 3),
        "codecs": list(meta.codecs) if meta.codecs else [bytes_codec(meta.dtype)],
        "attributes": _clean_attrs(meta.attributes),
        "storage_transformers": [],
    }
    if meta.dimension_names is not None:
        doc["dimension_names"] = list(meta.dimension_names)
    return doc


def group_v3(meta: GroupMeta) -> JSON:
    """The ``zarr.json`` document of one group (without consolidated metadata)."""
    return {"zarr_format": 3, "node_type": "group", "attributes": _clean_attrs(meta.attributes)}


def render_v3(nodes: dict[str, Node]) -> dict[str, bytes]:
    """Render a hierarchy (keys: node paths, ``""`` for the root) as Zarr v3 metadata keys.

    Every group's ``zarr.json`` carries inline consolidated metadata for the nodes below it, so
    ``zarr.open_group``/``xarray.open_zarr`` on any group needs no listing.
    """
    if "" not in nodes:
        nodes = {"": GroupMeta(), **nodes}
    docs = {
        path: array_v3(n) if isinstance(n, ArrayMeta) else group_v3(n) for path, n in nodes.items()
    }
    # sorted: zarr (3.1 to 3.4) rebuilds the tree with itertools.groupby over the keys in
    # document order, so the children of one group must be adjacent, or it drops some and cannot
    # open the group (KeyError) -- true of sorted paths at every depth. Sorted paths also put
    # everything below a group in one run: found by bisection, not by a scan per group.
    order = sorted(docs)
    out: dict[str, bytes] = {}
    for path, doc in docs.items():
        if doc["node_type"] == "group":
            prefix = f"{path}/" if path else ""
            lo = bisect.bisect_left(order, prefix)
            hi = bisect.bisect_left(order, f"{path}0") if path else len(order)  # "0" follows "/"
            below = {p[len(prefix) :]: docs[p] for p in order[lo:hi] if p != path}
            doc = {
                **doc,
                "consolidated_metadata": {
                    "kind": "inline",
                    "must_understand": False,
                    "metadata": below,
                },
            }
        out[_join(path, "zarr.json")] = json.dumps(doc, allow_nan=True).encode()
    return out


def array_v2(meta: ArrayMeta) -> tuple[JSON, JSON]:
    """The ``.zarray`` and ``.zattrs`` documents of one array."""
    zdt = _zdtype(meta.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dtype_json = zdt.to_json(zarr_format=2)["name"]
    fill = None if meta.v2_fill_value is None else _scalar_json(meta.dtype, meta.v2_fill_value, 2)
    zarray = {
        "zarr_format": 2,
        "shape": list(meta.shape),
        "chunks": list(meta.chunks),
        "dtype": dtype_json,
        "fill_value": fill,
        "order": "C",
        "filters": list(meta.v2_filters) if meta.v2_filters else None,
        "compressor": meta.v2_compressor,
        "dimension_separator": ".",
    }
    attrs = dict(_clean_attrs(meta.attributes))
    if meta.dimension_names is not None:
        attrs["_ARRAY_DIMENSIONS"] = list(meta.dimension_names)
    return zarray, attrs


def render_v2(nodes: dict[str, Node]) -> dict[str, bytes]:
    """Render a hierarchy as Zarr v2 keys plus one root ``.zmetadata`` (consolidated)."""
    if "" not in nodes:
        nodes = {"": GroupMeta(), **nodes}
    flat: dict[str, JSON] = {}
    for path, n in nodes.items():
        if isinstance(n, ArrayMeta):
            zarray, zattrs = array_v2(n)
            flat[_join(path, ".zarray")] = zarray
            flat[_join(path, ".zattrs")] = zattrs
        else:
            flat[_join(path, ".zgroup")] = {"zarr_format": 2}
            flat[_join(path, ".zattrs")] = _clean_attrs(n.attributes)
    out = {k: json.dumps(v, allow_nan=True).encode() for k, v in flat.items()}
    for path, n in nodes.items():
        if isinstance(n, GroupMeta):
            prefix = f"{path}/" if path else ""
            below = {k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix)}
            out[_join(path, ".zmetadata")] = json.dumps(
                {"zarr_consolidated_format": 1, "metadata": below}, allow_nan=True
            ).encode()
    return out


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name
