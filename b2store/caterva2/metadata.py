"""Caterva2 ``/api/info`` answers → :class:`Dataset` descriptions → Zarr :class:`ArrayMeta`.

Contract
--------
* A ``.b2nd`` (NDArray) is one Zarr v3 array with the server's ``shape``, ``chunks`` and ``dtype``;
  its chunk keys hold the *bare* Blosc2 chunk of ``/api/chunk`` and the codec is ``b2store.b2nd``
  with the server's ``blocks`` (the chunk bytes are block-ordered). Mode :data:`CHUNK`.
* A ``.b2frame`` (1-D SChunk) is a 1-D array of its bytes (``uint8``), or of ``vlmeta["dtype"]``
  when that names a dtype whose itemsize equals the SChunk typesize; the last, short chunk is
  re-encoded padded to the full chunk size by the filesystem. Mode :data:`CHUNK`.
* Leaves of a ``.b2z`` TreeStore/DictStore are served like ``.b2nd`` (NDArray leaves) and
  ``.b2frame`` (SChunk leaves) files, through ``/api/chunk`` (their ``/api/info`` says
  ``accept_ranges: null`` only because they have no file of their own). A CTable ``.b2z`` is
  no array: :class:`UnsupportedCaterva2DatasetError`.
* Datasets whose chunk endpoint cannot be trusted — leaves inside HDF5 files (chunk → 400),
  unfolded HDF5 proxies (``vlmeta._ftype == "hdf5"``: chunk → *zeros* with status 200) — and
  arrays with any big-endian part (structured fields too; Zarr v3 stores those little-endian)
  or no dimensions are served decoded: raw little-endian C-order bytes with the ``bytes`` codec.
  HDF5 leaves and proxies are read through ``/api/fetch?slice_=`` (mode :data:`SLICE`, the
  slower path: the server re-compresses every slice), the others through ``/api/chunk``
  decoded in b2store (mode :data:`TRANSCODE`). ``.b2nd`` arrays compressed with a plugin codec
  (J2K, Grok, ...) take the slice path too; ZFP and NDCELL/NDMEAN chunks, which need the
  array's chunk and block shapes to decompress, come from ``/api/chunk`` and are decoded by
  ``b2store.b2nd`` inside a python-blosc2 NDArray.
* ``version`` is the answer's ETag (else the ``mtime``) plus a digest of the layout fields of the
  answer (shape, chunks, blocks, dtype, compressed and uncompressed sizes, codec parameters): it
  keys the chunk cache. The ETag moves with the file's size and mtime; the digest also catches a
  file replaced by one of another layout with the same size and mtime (``cp -p``, ``rsync -t``,
  two writes within one mtime tick).
* Attributes come from the dataset's ``vlmeta`` minus Caterva2's internal keys; dimension names from
  ``vlmeta["dimension_names"]`` / ``vlmeta["_ARRAY_DIMENSIONS"]``, else ``<name>_dim<i>`` so
  datasets of one directory never clash in an xarray Dataset. The server's absolute ``urlpath``
  is never exposed.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
import math
import posixpath
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from b2store._zarrmeta import (
    ArrayMeta,
    Node,
    array_v2,
    array_v3,
    is_big_endian,
    packed_dtype,
)
from b2store.errors import B2StoreError

__all__ = [
    "CHUNK",
    "CONTAINER_SUFFIXES",
    "DATASET_SUFFIXES",
    "HDF5_SUFFIXES",
    "SLICE",
    "TRANSCODE",
    "Dataset",
    "UnsupportedCaterva2DatasetError",
    "dataset_from_info",
    "is_big_endian",
    "is_group_info",
    "little_endian",
    "parse_dtype",
    "zarr_servable",
]

CHUNK = "chunk"
TRANSCODE = "transcode"
SLICE = "slice"

DATASET_SUFFIXES = (".b2nd", ".b2frame")
HDF5_SUFFIXES = (".h5", ".hdf5")
#: files the server browses as groups of datasets: HDF5 files and Blosc2 TreeStore/DictStore
#: ``.b2z`` containers (a ``.b2z`` may also hold a CTable, which is no group)
CONTAINER_SUFFIXES = (*HDF5_SUFFIXES, ".b2z")

#: vlmeta keys that are Caterva2/b2store internals, not user attributes.
_INTERNAL_KEYS = frozenset({"_ftype", "_dsetname", "dimension_names", "_ARRAY_DIMENSIONS"})

#: Upper bound of one Zarr chunk on the slice path (server re-compresses each request).
SLICE_CHUNK_BYTES = 16 * 2**20


class UnsupportedCaterva2DatasetError(B2StoreError, NotImplementedError):
    """A Caterva2 dataset that b2store cannot present as a Zarr array (the message says why)."""


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """What the filesystem needs to serve one Caterva2 dataset as a Zarr array.

    ``chunks`` is the Zarr chunk shape (the server's, except on the slice path where it may be
    smaller), ``blocks`` the server's block shape, ``nchunks`` the server's chunk count and
    ``chunk_nbytes`` the decompressed size of one server chunk (block padding included).
    """

    path: str
    kind: str  # "b2nd" | "b2frame" | "hdf5"
    mode: str  # CHUNK | TRANSCODE | SLICE
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    blocks: tuple[int, ...]
    dtype: np.dtype[Any]
    nchunks: int
    chunk_nbytes: int
    typesize: int
    version: str
    attributes: dict[str, Any] = field(default_factory=dict)
    dimension_names: tuple[str, ...] | None = None
    #: how a region goes to ``/api/fetch`` on the slice path: ``slice_`` (the server slices the
    #: stored array, keeping its cparams) or ``indices`` (it gathers the region and compresses it
    #: with default cparams: needed where the stored codec fails on odd region shapes)
    region_param: str = "slice_"
    #: slice path: the dtype the server's frames hold (an HDF5 dataset's, offsets and gaps
    #: included), when ``dtype`` is another (packed, or the base of a sub-array dtype)
    stored_dtype: np.dtype[Any] | None = None
    #: slice path: trailing dimensions of ``shape`` that are an HDF5 sub-array dtype's shape
    #: (``('<f8', (3,))`` items), which the server's frames carry but its slices do not take
    item_dims: int = 0

    @property
    def grid(self) -> tuple[int, ...]:
        """Zarr chunk grid (chunks per dimension)."""
        return tuple(
            math.ceil(s / c) if c else 0 for s, c in zip(self.shape, self.chunks, strict=True)
        )

    def in_grid(self, coords: tuple[int, ...]) -> bool:
        """Whether ``coords`` names a chunk of the grid ``ceil(shape / chunks)``."""
        grid = self.grid
        return len(coords) == len(grid) and all(
            0 <= i < n for i, n in zip(coords, grid, strict=True)
        )

    def chunk_number(self, coords: tuple[int, ...]) -> int:
        """C-order linear number of Zarr chunk ``coords``; ``FileNotFoundError`` off the grid."""
        grid = self.grid
        if not self.in_grid(coords):
            raise FileNotFoundError(
                f"chunk {coords} is outside the chunk grid {grid} of Caterva2 dataset {self.path}"
            )
        if not grid:
            return 0
        return int(np.ravel_multi_index(coords, grid))

    def chunk_region(self, coords: tuple[int, ...]) -> tuple[slice, ...]:
        """The region of the array covered by Zarr chunk ``coords`` (clipped at the edges)."""
        return tuple(
            slice(i * c, min((i + 1) * c, s))
            for i, c, s in zip(coords, self.chunks, self.shape, strict=True)
        )

    def array_meta(self, name: str) -> ArrayMeta:
        """The Zarr metadata of this dataset, named ``name`` (used for default dimension names)."""
        v2_compressor: dict[str, Any] | None = None
        if self.mode == CHUNK:
            # a .b2frame is 1-D, where any block size keeps C order: leave the blocks out and
            # let the codec take each chunk's own (Blosc2 picks them per chunk, e.g. 256 KiB)
            blocks = {} if self.kind == "b2frame" else {"blocks": list(self.blocks)}
            codecs: tuple[Any, ...] = ({"name": "b2store.b2nd", "configuration": blocks},)
            # v2 codecs see no chunk shape: the bare chunk's shape travels in the config
            v2_compressor = {"id": "b2store_b2nd", "chunkshape": list(self.chunks), **blocks}
            dtype = self.dtype
        else:
            dtype = little_endian(self.dtype)
            codecs = ()  # ArrayMeta's default: the bytes codec (little endian); v2: no codec
        dims = self.dimension_names or tuple(f"{name}_dim{i}" for i in range(len(self.shape)))
        try:
            if not zarr_servable(dtype):
                raise TypeError(
                    f"dtype {dtype} has no Zarr equivalent (Zarr has no Python objects, "
                    "variable-size items, datetimes without a unit, or structured fields that "
                    "are sub-arrays or raw bytes)"
                )
            meta = ArrayMeta(
                shape=self.shape,
                chunks=self.chunks,
                dtype=dtype,
                fill_value=None,
                codecs=codecs,
                v2_compressor=v2_compressor,
                v2_fill_value=None,  # null: no _FillValue, so xarray masks nothing (no NaN trap)
                attributes=self.attributes,
                dimension_names=dims,
            )
            # render both views now: a failure later, inside a directory's consolidated
            # metadata, would take every other dataset of the directory down with it
            array_v3(meta)
            array_v2(meta)
            return meta
        except (TypeError, ValueError) as exc:
            raise UnsupportedCaterva2DatasetError(
                f"Caterva2 dataset {self.path} (dtype {self.dtype}) cannot be described as Zarr: "
                f"{exc}"
            ) from exc


def unclash_dimensions(nodes: dict[str, Node], default_named: set[str]) -> dict[str, Node]:
    """``nodes`` (relative path → node of a rendered group) with the default dimension names
    (``<name>_dim<i>``) of arrays in ``default_named`` made path-qualified (``grp/<name>_dim<i>``)
    where a group above the array has a dimension of that name with another size.

    Datasets named alike at two levels (``y`` of 5 items in an HDF5 file, ``grp/y`` of 10 in a
    group of it) otherwise share the dimension ``y_dim0`` with two sizes, and
    ``xarray.open_datatree`` refused the whole tree ("group '/grp' is not aligned with its
    parents"). Only clashing arrays are renamed; a path with ``/`` names no other dimension.
    """
    out = dict(nodes)
    sizes: dict[str, dict[str, int]] = {}  # group → dimension name → size, of its arrays

    def depth(rel: str) -> int:
        return rel.count("/")

    for rel in sorted((r for r, m in nodes.items() if isinstance(m, ArrayMeta)), key=depth):
        meta = out[rel]
        assert isinstance(meta, ArrayMeta)
        group = posixpath.dirname(rel)
        parts = group.split("/") if group else []
        above = ["/".join(parts[:i]) for i in range(len(parts))]  # "" ... the parent's parent
        if meta.dimension_names is None:
            continue
        dims = tuple(zip(meta.dimension_names, meta.shape, strict=True))
        clash = any(sizes.get(g, {}).get(d, n) != n for g in above for d, n in dims)
        if rel in default_named and clash:
            dims = tuple((f"{group}/{d}", n) for d, n in dims)
            out[rel] = dataclasses.replace(meta, dimension_names=tuple(d for d, _ in dims))
        for d, n in dims:
            sizes.setdefault(group, {}).setdefault(d, n)
    return out


def zarr_servable(dtype: np.dtype[Any]) -> bool:
    """Whether b2store can serve raw items of ``dtype`` as Zarr: fixed size, no Python objects,
    no datetime without a unit, no structured field that is a sub-array or raw bytes (``V``;
    zarr fails making their fill value: "a bytes-like object is required, not 'int'")."""
    if dtype.hasobject or dtype.itemsize == 0:
        return False
    if dtype.fields:
        return all(
            zarr_servable(field[0])
            and field[0].subdtype is None
            and not (field[0].kind == "V" and field[0].fields is None)
            for field in dtype.fields.values()
        )
    if dtype.subdtype is not None:
        return zarr_servable(dtype.subdtype[0])
    return not (dtype.kind in "mM" and np.datetime_data(dtype)[0] == "generic")


def _packed(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """A structured ``dtype`` without offsets or padding, nested compounds included, its fields
    in the order of their names (h5py's order, also when their offsets are in another)."""
    if not dtype.names:
        return dtype
    fields: dict[str, Any] = dict(dtype.fields or {})
    return np.dtype([(n, _packed(fields[n][0])) for n in dtype.names])


def little_endian(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """``dtype`` with every part little-endian (Zarr v3 stores structured fields that way)."""
    return dtype.newbyteorder("<") if is_big_endian(dtype) else dtype


def is_group_info(info: Any) -> bool:
    """Whether an ``/api/info`` answer describes a directory or an HDF5 file/group."""
    return isinstance(info, dict) and info.get("kind") == "group"


#: CPython 3.11's ``ast`` is not thread-safe: two threads building ASTs at once (one switched
#: out inside a GC finalizer) fail with "SystemError: AST constructor recursion depth mismatch"
_AST_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1024)
def _dtype_of(text: str) -> np.dtype[Any]:
    """``np.dtype`` of ``text``, through ``ast.literal_eval`` (one thread at a time) for the
    spellings numpy does not take as strings (structured: ``"[('a', '<i4'), ...]"``; padded:
    ``"{'names': [...], 'offsets': ...}"``). Cached: slices of one dataset repeat one text."""
    try:
        return np.dtype(text)
    except (TypeError, ValueError):
        with _AST_LOCK:
            value = ast.literal_eval(text)
        return np.dtype(value)


def parse_dtype(text: str, path: str) -> np.dtype[Any]:
    """``str(numpy.dtype)`` as the server writes it → dtype (structured ones via literal_eval).

    A plain ``V<n>`` array is listed as ``[('f0', 'V<n>')]`` (its descr, whose unnamed field
    numpy names ``f0``): it is given back as ``V<n>``, the same bytes, which Zarr can serve
    (it cannot serve a structured field of raw bytes)."""
    try:
        dtype = _dtype_of(text)
    except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError) as exc:
        raise UnsupportedCaterva2DatasetError(
            f"Caterva2 dataset {path} has a dtype b2store cannot parse: {text!r}"
        ) from exc
    if dtype.names == ("f0",):
        field, offset = dtype.fields["f0"][:2]  # type: ignore[index]
        plain = field.kind == "V" and field.fields is None and field.subdtype is None
        if plain and offset == 0 and field.itemsize == dtype.itemsize:
            return np.dtype(f"V{dtype.itemsize}")
    return dtype


def _json_safe(attrs: dict[str, Any], internal: frozenset[str] = _INTERNAL_KEYS) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if str(key) in internal:
            continue
        try:
            json.dumps(value, allow_nan=True)
            out[str(key)] = value
        except (TypeError, ValueError):
            if isinstance(value, bytes):
                out[str(key)] = value.decode("utf-8", errors="replace")
            elif isinstance(value, np.ndarray | np.generic):
                out[str(key)] = value.tolist()
            else:
                out[str(key)] = repr(value)
    return out


def _ints(value: Any, what: str, path: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(v, int) and v >= 0 for v in value):
        raise UnsupportedCaterva2DatasetError(
            f"Caterva2 /api/info of {path} has an invalid {what}: {value!r}"
        )
    return tuple(value)


def _dim_names(vlmeta: dict[str, Any], ndim: int) -> tuple[str, ...] | None:
    """Dimension names from ``vlmeta``: a list of ``ndim`` distinct strings, else ``None`` (the
    default names). A name used twice in one array (``["x", "x"]``) made xarray fail ("conflicting
    sizes for dimension 'x'"), and took every dataset of the directory down with it."""
    for key in ("dimension_names", "_ARRAY_DIMENSIONS"):
        names = vlmeta.get(key)
        if (
            isinstance(names, list | tuple)
            and len(names) == ndim
            and all(isinstance(n, str) for n in names)
            and len(set(names)) == ndim
        ):
            return tuple(names)
    return None


def _slice_chunks(chunks: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Shrink leading chunk dims until one chunk is at most SLICE_CHUNK_BYTES."""
    out = list(chunks)
    for i in range(len(out)):
        rest = math.prod(out[i + 1 :]) * itemsize
        if math.prod(out[i:]) * itemsize <= SLICE_CHUNK_BYTES:
            break
        out[i] = max(1, SLICE_CHUNK_BYTES // max(rest, 1))
        if out[i] > 1:
            break
    return tuple(out)


#: Blosc2 plugin codecs (OpenHTJ2K, Grok, J2K, ...), whose libraries may not be installed here.
#: (ZFP, 33-35, and the NDCELL/NDMEAN filters read the array's b2nd metalayer to decompress: the
#: b2store.b2nd codec decodes their bare chunks inside an NDArray from the chunk and block shapes.)
_PLUGIN_CODEC_MIN = 36


def _needs_shapes(cparams: Any) -> bool:
    """Whether chunks made with ``cparams`` need the array's chunk and block shapes to
    decompress (ZFP codecs 33-35, NDCELL/NDMEAN filters 32/33: the ids the b2nd codec's
    decoder routes through an NDArray)."""
    from b2store.codecs._b2nd_chunk import _NDIM_CODECS, _NDIM_FILTERS

    if not isinstance(cparams, dict):
        return False
    codec, filters = cparams.get("codec"), cparams.get("filters")
    return (isinstance(codec, int) and codec in _NDIM_CODECS) or (
        isinstance(filters, list) and any(f in _NDIM_FILTERS for f in filters)
    )


def _server_decodes(cparams: Any) -> bool:
    """Whether chunks made with ``cparams`` (``/api/info`` ``schunk.cparams``) are read through
    the server's decoder: plugin codecs, whose ``/api/chunk`` bytes need a plugin here."""
    if not isinstance(cparams, dict):
        return False
    codec = cparams.get("codec")
    return isinstance(codec, int) and codec >= _PLUGIN_CODEC_MIN


#: ``/api/info`` fields that fix which bytes chunk N holds (``nthreads`` and ``cratio`` left out:
#: they may vary with the server's machine or rounding, not with the file)
_LAYOUT_KEYS = ("shape", "chunks", "blocks", "dtype", "cbytes", "nbytes", "chunkshape",
                "chunksize", "nchunks")  # fmt: skip
_LAYOUT_CPARAMS = ("codec", "codec_meta", "clevel", "filters", "filters_meta", "typesize",
                   "blocksize", "splitmode", "use_dict")  # fmt: skip


def _layout_digest(info: dict[str, Any]) -> str:
    """A short digest of the layout fields of an ``/api/info`` answer (NDArray or SChunk)."""
    nested = info.get("schunk")
    schunk: dict[str, Any] = nested if isinstance(nested, dict) else info
    fields: dict[str, Any] = {k: info.get(k, schunk.get(k)) for k in _LAYOUT_KEYS}
    found = schunk.get("cparams")
    cparams: dict[str, Any] = found if isinstance(found, dict) else {}
    fields["cparams"] = {k: cparams.get(k) for k in _LAYOUT_CPARAMS}
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dataset_from_info(path: str, info: dict[str, Any], etag: str | None) -> Dataset:
    """Describe the dataset at ``path`` from its ``/api/info`` answer and ETag.

    Raises
    ------
    UnsupportedCaterva2DatasetError
        For answers b2store cannot serve (e.g. lazy expressions, unparsable dtypes).
    """
    if not isinstance(info, dict):
        raise UnsupportedCaterva2DatasetError(f"Caterva2 /api/info of {path} is not an object")
    in_hdf5 = any(part.endswith(HDF5_SUFFIXES) for part in path.split("/")[:-1])
    # a leaf of a .b2z TreeStore/DictStore is a Blosc2 array whose /api/chunk answer is its
    # stored chunk (the server says accept_ranges null only because it has no file of its own)
    in_b2z = any(part.endswith(".b2z") for part in path.split("/")[:-1])
    version = f"{etag or info.get('mtime') or ''}#{_layout_digest(info)}"
    if "shape" in info:  # NDArray (a .b2nd, or an HDF5 leaf)
        schunk = info.get("schunk") or {}
        vlmeta = schunk.get("vlmeta") or {}
        if not isinstance(vlmeta, dict):
            vlmeta = {}
        shape = _ints(info.get("shape"), "shape", path)
        chunks = _ints(info.get("chunks"), "chunks", path)
        blocks = _ints(info.get("blocks"), "blocks", path)
        if not (len(shape) == len(chunks) == len(blocks)):
            raise UnsupportedCaterva2DatasetError(
                f"Caterva2 /api/info of {path}: shape {shape}, chunks {chunks} and blocks {blocks} "
                "differ in length"
            )
        if 0 in shape:  # an empty array has no chunk to read: any chunk length >= 1 will do
            chunks = tuple(max(c, 1) for c in chunks)
            blocks = tuple(max(b, 1) for b in blocks)
        if any(c == 0 for c in chunks) or any(b == 0 for b in blocks):
            raise UnsupportedCaterva2DatasetError(
                f"Caterva2 dataset {path} has zero-sized chunks {chunks} or blocks {blocks}"
            )
        dtype = parse_dtype(str(info.get("dtype")), path)
        proxy = vlmeta.get("_ftype") == "hdf5"
        region_param = "slice_"
        stored_dtype, item_dims = None, 0
        if in_hdf5 or proxy or (info.get("accept_ranges", "bytes") is None and not in_b2z):
            kind, mode = "hdf5", SLICE
            if dtype.subdtype is not None and not dtype.names:
                # items that are arrays (PyTables' multidimensional atoms): h5py reads them,
                # and the server sends them, as trailing dimensions of a base-dtype array
                dtype, sub = dtype.subdtype
                shape, chunks, blocks = shape + sub, chunks + sub, blocks + sub
                item_dims = len(sub)
            # b2store writes these chunks itself, field by field: a padded compound type
            # (offsets, itemsize, as C structs and aligned numpy dtypes make) goes packed, also
            # inside nested compounds, which Zarr can describe
            stored_dtype, dtype = dtype, _packed(dtype)
            zchunks = _slice_chunks(chunks, dtype.itemsize)
        elif _server_decodes(schunk.get("cparams")):
            # plugin codecs: the server decodes them; "indices", because its slice_ answer
            # re-compresses the region with the stored codec, which fails (500) on edge regions
            kind, mode, region_param = "b2nd", SLICE, "indices"
            zchunks = _slice_chunks(chunks, dtype.itemsize)
        else:
            kind = "b2nd"
            if packed_dtype(dtype) != dtype:
                # the chunks hold the gaps (or fields out of offset order), which Zarr's
                # structured dtypes cannot describe: they list fields back to back
                raise UnsupportedCaterva2DatasetError(
                    f"Caterva2 dataset {path} has a structured dtype with gaps between its "
                    f"fields or fields out of offset order ({dtype}), which Zarr cannot describe"
                )
            # big-endian data and 0-d arrays are decoded here and served with the bytes codec
            mode = TRANSCODE if is_big_endian(dtype) or not shape else CHUNK
            zchunks = chunks
            if mode == TRANSCODE and _needs_shapes(schunk.get("cparams")):
                # transcoding decodes with decompress2 alone: ZFP/NDCELL/NDMEAN chunks need
                # the array's shapes, so the server decodes these rare ones
                mode, region_param = SLICE, "indices"
                zchunks = _slice_chunks(chunks, dtype.itemsize)
        padded = [math.ceil(c / b) * b for c, b in zip(chunks, blocks, strict=True)]
        nchunks = math.prod(math.ceil(s / c) for s, c in zip(shape, chunks, strict=True))
        return Dataset(
            path=path,
            kind=kind,
            mode=mode,
            shape=shape,
            chunks=zchunks,
            blocks=blocks,
            dtype=dtype,
            nchunks=nchunks,
            chunk_nbytes=math.prod(padded) * dtype.itemsize,
            typesize=dtype.itemsize,
            version=version,
            attributes=_json_safe(vlmeta),
            dimension_names=_dim_names(vlmeta, len(shape)),
            region_param=region_param,
            stored_dtype=stored_dtype if stored_dtype != dtype else None,
            item_dims=item_dims,
        )
    if "chunkshape" in info and "nbytes" in info:  # SChunk (.b2frame)
        if not (path.endswith(".b2frame") or in_b2z):  # a .b2z holds Blosc2 objects only
            # the server keeps any other file (.npy, .csv, .txt, .b2 ...) as a compressed byte
            # stream and describes it like an SChunk: its bytes are not an array's data
            raise UnsupportedCaterva2DatasetError(
                f"Caterva2 {path} is a plain file, not a dataset: b2store serves .b2nd, "
                ".b2frame, HDF5 and .b2z datasets as arrays (directory listings skip other "
                "files); download it with caterva2.Client(url).download(path) instead"
            )
        vlmeta = info.get("vlmeta") or {}
        if not isinstance(vlmeta, dict):
            vlmeta = {}
        typesize = int((info.get("cparams") or {}).get("typesize") or 1)
        chunksize = int(info["chunksize"])
        nbytes = int(info["nbytes"])
        if chunksize <= 0 < nbytes:
            # Blosc2 reports chunksize 0 when the chunks differ in size (appended one by one):
            # Zarr needs one chunk length, and chunk N's offset cannot be told from the info
            raise UnsupportedCaterva2DatasetError(
                f"Caterva2 dataset {path} is an SChunk whose chunks differ in size (chunksize "
                f"{chunksize}); b2store serves SChunks of one chunk size only: rewrite it with "
                "a fixed chunksize (blosc2.SChunk(chunksize=...))"
            )
        dtype = np.dtype("u1")
        if isinstance(vlmeta.get("dtype"), str):
            try:  # as str(dtype) writes it: "float64", "<M8[s]", "[('a', '<i4'), ...]"
                candidate: np.dtype[Any] | None = parse_dtype(vlmeta["dtype"], path)
            except UnsupportedCaterva2DatasetError:
                candidate = None
            if (
                candidate is not None
                and candidate.itemsize == typesize
                and zarr_servable(candidate)
                and packed_dtype(candidate) == candidate  # gaps: Zarr cannot describe them
            ):
                dtype = candidate
        if nbytes % dtype.itemsize or chunksize % dtype.itemsize:
            dtype = np.dtype("u1")
        nchunks = int(info.get("nchunks") or 0)
        return Dataset(
            path=path,
            kind="b2frame",
            mode=TRANSCODE if is_big_endian(dtype) else CHUNK,
            shape=(nbytes // dtype.itemsize,),
            chunks=(max(chunksize // dtype.itemsize, 1),),
            blocks=(max(chunksize // dtype.itemsize, 1),),
            dtype=dtype,
            nchunks=nchunks,
            chunk_nbytes=chunksize,
            typesize=typesize,
            version=version,
            attributes=_json_safe(vlmeta, _INTERNAL_KEYS | {"dtype"}),
            dimension_names=_dim_names(vlmeta, 1),
        )
    if info.get("kind") == "ctable":
        raise UnsupportedCaterva2DatasetError(
            f"Caterva2 {path} is a CTable (a table of columns {info.get('columns')}), not an "
            "array: b2store serves .b2nd, .b2frame, HDF5 datasets and the arrays of .b2z "
            "TreeStores/DictStores; read the table with blosc2 or caterva2.Client instead"
        )
    if isinstance(info.get("error"), str):
        # the server could not open the file itself: {"mtime": ..., "error": "Unrecognized
        # format"} for a damaged, truncated or half-written file, or "Lazy expression with
        # missing operands"
        raise UnsupportedCaterva2DatasetError(
            f"Caterva2 cannot read {path}: the server answers {info['error']!r} (a damaged, "
            "truncated or partly written file, or a lazy expression whose operands are "
            "missing); check or re-upload the file on the server"
        )
    if path.endswith(CONTAINER_SUFFIXES):
        # the server's answer for a file it cannot open as a container: {"mtime", "size"}
        raise UnsupportedCaterva2DatasetError(
            f"Caterva2 cannot open {path} as a container (an HDF5 file, a .b2z TreeStore or "
            f"DictStore): the server describes it as a plain file (keys {sorted(info)}); it is "
            "damaged or not of the format its suffix names"
        )
    raise UnsupportedCaterva2DatasetError(
        f"Caterva2 dataset {path} is neither an NDArray nor an SChunk (keys {sorted(info)}); "
        "b2store serves .b2nd, .b2frame, HDF5 and .b2z datasets"
    )
