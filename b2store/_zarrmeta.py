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
import copy
import functools
import itertools
import json
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

JSON = Any

__all__ = [
    "ArrayMeta",
    "GroupMeta",
    "RenderedMeta",
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
    endian = _endian(dtype)
    if endian is None:
        return {"name": "bytes"}
    return {"name": "bytes", "configuration": {"endian": endian}}


@functools.lru_cache(maxsize=1024)
def _endian(dtype: np.dtype[Any]) -> str | None:
    """The byte order of ``dtype``'s items for the ``bytes`` codec, None when it has none
    (cached: a walk asks once per array, of a few dtypes)."""
    if not _has_byte_order(dtype):
        return None
    return "big" if is_big_endian(dtype) else "little"


#: zarr's data type of each NumPy dtype met (zarr's lookup tries every registered data type:
#: about 0.3 ms, which dominated rendering a file of thousands of small datasets)
_ZDTYPES: dict[np.dtype[Any], Any] = {}


def _zdtype(dtype: np.dtype[Any]) -> Any:
    cached = dtype.metadata is None  # h5py's metadata (vlen, enum) does not take part in ==
    if cached and dtype in _ZDTYPES:
        return _ZDTYPES[dtype]
    from zarr.core.dtype import get_data_type_from_native_dtype

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zdt = get_data_type_from_native_dtype(dtype)
    if cached and len(_ZDTYPES) < 4096:
        _ZDTYPES[dtype] = zdt
    return zdt


#: JSON of the fill values met, by (dtype, zarr format, the value's exact identity: see
#: ``_scalar_key``): zarr's cast and encoding of one scalar (typing-Protocol isinstance
#: checks) took longer than the rest of rendering an array.
_SCALARS: dict[tuple[Any, ...], JSON] = {}


def _scalar_key(value: Any) -> tuple[Any, ...] | None:
    """What identifies ``value`` exactly, type and bits (== does not tell -0.0 from 0.0, 1
    from True, nor NaNs apart), or None for values not worth caching."""
    if value is None or isinstance(value, bool | int | str | bytes):
        return (type(value), value)
    if isinstance(value, float | complex):
        return (type(value), np.asarray(value).tobytes())
    if isinstance(value, np.generic) and value.dtype.kind in "biufcmMSU":
        return (type(value), value.dtype.str, value.tobytes())
    return None


def _scalar_json(dtype: np.dtype[Any], value: Any, zarr_format: int) -> JSON:
    key = None if dtype.metadata is not None else _scalar_key(value)
    if key is not None:
        key = (dtype, zarr_format, *key)
        if key in _SCALARS:
            return copy.deepcopy(_SCALARS[key])
    zdt = _zdtype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if value is None:
            value = zdt.default_scalar()
        out = zdt.to_json_scalar(zdt.cast_scalar(value), zarr_format=zarr_format)
    if key is not None and len(_SCALARS) < 4096:
        _SCALARS[key] = copy.deepcopy(out)
    return out


#: each dtype's zarr JSON data type name, by zarr format (see ``_ZDTYPES``)
_DTYPE_JSON: dict[tuple[np.dtype[Any], int], JSON] = {}


def _dtype_json(dtype: np.dtype[Any], zarr_format: int) -> JSON:
    cached = dtype.metadata is None
    if cached and (dtype, zarr_format) in _DTYPE_JSON:
        return copy.deepcopy(_DTYPE_JSON[dtype, zarr_format])
    zdt = _zdtype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = zdt.to_json(zarr_format=zarr_format)
    if cached and len(_DTYPE_JSON) < 4096:
        _DTYPE_JSON[dtype, zarr_format] = copy.deepcopy(out)
    return out


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
    data_type = _dtype_json(meta.dtype, 3)
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


class RenderedMeta(Mapping[str, bytes]):
    """The metadata keys of a hierarchy, as a read-only mapping of key to JSON bytes.

    Each node's own document is rendered once; the documents that consolidate a group's
    subtree (v3 ``zarr.json`` of groups, v2 ``.zmetadata``) are assembled from those at each
    request (the last few are kept). Materialising them all held the metadata of a node once
    per enclosing group: quadratic in depth (a 100-level tree of 600 small datasets made
    15 MB, one of 48 000 datasets in 50-level chains 565 MB, at open). Their sizes (``size``)
    come from prefix sums, without assembling them.

    ``own``: every key's own document, in key order (for a consolidating key, the group's
    document without its subtree, v3; unused, v2). ``groups``: each consolidating key's group
    path. ``entries``: the keys (v3: node paths) whose documents are consolidated, sorted.
    """

    _KEEP = 4

    def __init__(
        self, zarr_format: int, own: dict[str, bytes], groups: dict[str, str], entries: list[str]
    ) -> None:
        self.zarr_format = zarr_format
        self._own = own
        self._groups = groups
        self._entries = entries
        self._init_memo()
        # the consolidated entries' documents and the prefix sums of their lengths
        self._docs = [self._own.get(self._entry_key(e), b"null") for e in self._entries]
        lengths = (
            len(json.dumps(e)) + 2 + len(d) for e, d in zip(self._entries, self._docs, strict=True)
        )
        self._cum = [0, *itertools.accumulate(lengths)]

    def _init_memo(self) -> None:
        self._lock = threading.Lock()
        self._memo: OrderedDict[str, bytes] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_memo")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_memo()

    def parts(self) -> tuple[int, dict[str, bytes], dict[str, str], list[str]]:
        """The constructor's arguments (what a sidecar stores: linear in the file's nodes)."""
        return self.zarr_format, self._own, self._groups, self._entries

    def _entry_key(self, entry: str) -> str:
        return _join(entry, "zarr.json") if self.zarr_format == 3 else entry

    def __len__(self) -> int:
        return len(self._own)

    def __iter__(self) -> Iterator[str]:
        return iter(self._own)

    def __contains__(self, key: object) -> bool:
        return key in self._own

    def _span(self, group: str) -> tuple[int, int, str]:
        """Range of ``entries`` below ``group`` (v3: the group itself excluded) and the
        prefix cut from their names."""
        prefix = f"{group}/" if group else ""
        lo = bisect.bisect_left(self._entries, prefix)
        hi = bisect.bisect_left(self._entries, f"{group}0") if group else len(self._entries)
        if lo < hi and self._entries[lo] == group:  # "" (the root) sorts first
            lo += 1
        return lo, hi, prefix

    def _frame(self, key: str) -> tuple[bytes, bytes]:
        if self.zarr_format == 3:
            head = self._own[key][:-1] + (
                b', "consolidated_metadata": {"kind": "inline", "must_understand": false, '
                b'"metadata": {'
            )
            return head, b"}}}"
        return b'{"zarr_consolidated_format": 1, "metadata": {', b"}}"

    def size(self, key: str) -> int:
        """``len(self[key])``, without assembling a consolidating document."""
        group = self._groups.get(key)
        if group is None:
            return len(self._own[key])
        lo, hi, prefix = self._span(group)
        head, tail = self._frame(key)
        # a JSON string's escapes are per character: cutting the prefix shortens it so much
        cut = (len(json.dumps(prefix)) - 2) * (hi - lo)
        return len(head) + self._cum[hi] - self._cum[lo] - cut + 2 * max(0, hi - lo - 1) + len(tail)

    def __getitem__(self, key: str) -> bytes:
        group = self._groups.get(key)
        if group is None:
            return self._own[key]
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        lo, hi, prefix = self._span(group)
        head, tail = self._frame(key)
        n = len(prefix)
        body = b", ".join(
            json.dumps(e[n:]).encode() + b": " + d
            for e, d in zip(self._entries[lo:hi], self._docs[lo:hi], strict=True)
        )
        doc = head + body + tail
        with self._lock:
            self._memo[key] = doc
            while len(self._memo) > self._KEEP:
                self._memo.popitem(last=False)
        return doc


def render_v3(nodes: dict[str, Node]) -> RenderedMeta:
    """Render a hierarchy (keys: node paths, ``""`` for the root) as Zarr v3 metadata keys.

    Every group's ``zarr.json`` carries inline consolidated metadata for the nodes below it, so
    ``zarr.open_group``/``xarray.open_zarr`` on any group needs no listing.
    """
    if "" not in nodes:
        nodes = {"": GroupMeta(), **nodes}
    own: dict[str, bytes] = {}
    groups: dict[str, str] = {}
    for path, n in nodes.items():
        key = _join(path, "zarr.json")
        doc = array_v3(n) if isinstance(n, ArrayMeta) else group_v3(n)
        own[key] = json.dumps(doc, allow_nan=True).encode()
        if isinstance(n, GroupMeta):
            groups[key] = path
    # sorted: zarr (3.1 to 3.4) rebuilds the tree with itertools.groupby over the keys in
    # document order, so the children of one group must be adjacent, or it drops some and cannot
    # open the group (KeyError) -- true of sorted paths at every depth. Sorted paths also put
    # everything below a group in one run: found by bisection, not by a scan per group.
    return RenderedMeta(3, own, groups, sorted(nodes))


def array_v2(meta: ArrayMeta) -> tuple[JSON, JSON]:
    """The ``.zarray`` and ``.zattrs`` documents of one array."""
    dtype_json = _dtype_json(meta.dtype, 2)["name"]
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


def render_v2(nodes: dict[str, Node]) -> RenderedMeta:
    """Render a hierarchy as Zarr v2 keys plus a ``.zmetadata`` (consolidated) in every group."""
    if "" not in nodes:
        nodes = {"": GroupMeta(), **nodes}
    own: dict[str, bytes] = {}
    groups: dict[str, str] = {}
    for path, n in nodes.items():
        if isinstance(n, ArrayMeta):
            zarray, zattrs = array_v2(n)
            flat = {".zarray": zarray, ".zattrs": zattrs}
        else:
            flat = {".zgroup": {"zarr_format": 2}, ".zattrs": _clean_attrs(n.attributes)}
        for name, v in flat.items():
            own[_join(path, name)] = json.dumps(v, allow_nan=True).encode()
    entries = sorted(own)
    for path, n in nodes.items():
        if isinstance(n, GroupMeta):
            key = _join(path, ".zmetadata")
            own[key] = b""  # assembled on request
            groups[key] = path
    return RenderedMeta(2, own, groups, entries)


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name
