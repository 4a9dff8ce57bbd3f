"""Native Zarr v3 codecs over the b2store numcodecs codecs (thin, frozen dataclasses).

Contract
--------
==================  ==================  ===================================================
Zarr v3 name        kind                backed by
==================  ==================  ===================================================
``b2store.b2nd``    array -> bytes      :mod:`b2store.codecs.b2nd` (+ partial decoding)
``b2store.itrunc``  array -> array      :mod:`b2store.codecs.itrunc`
``b2store.grok``    array -> bytes      :class:`b2store.codecs.grok.Grok` (imported lazily)
``b2store.hdf5``    bytes -> bytes      :class:`b2store.codecs.hdf5_zarr3.HDF5PipelineCodec`
                                        (its own module; the HDF5 filter pipeline)
==================  ==================  ===================================================

The configuration is the numcodecs config without ``"id"``; ``{"name": "b2store.b2nd"}`` alone
is valid. The dtype and chunk shape always come from the chunk spec (the array metadata), never
from the bytes. CPU work runs in ``asyncio.to_thread``; the b2nd decoder releases the GIL.

``B2ndCodec`` supports zarr's partial decoding: a selection inside a chunk fetches, through byte
ranges, the frame header, the chunk's block-start table and only the blocks it touches, and
decompresses only those; a whole-chunk selection is one plain ``get()``. zarr uses this path
only when the array has no array -> array and no bytes -> bytes codecs.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import copy
import itertools
import math
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayArrayCodec, ArrayBytesCodec, ArrayBytesCodecPartialDecodeMixin
from zarr.abc.store import RangeByteRequest
from zarr.core.common import parse_named_configuration

from b2store.codecs import _blosc2frame as bf
from b2store.codecs._common import check_config_keys, config_keys
from b2store.errors import CodecError

if TYPE_CHECKING:
    from typing import Self

    from numcodecs.abc import Codec
    from zarr.abc.store import ByteGetter
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer
    from zarr.core.indexing import SelectorTuple

    from b2store.codecs.b2nd import B2nd
    from b2store.codecs.itrunc import ITrunc

__all__ = ["B2ndCodec", "GrokCodec", "ITruncCodec"]

_HEAD = 4096  # first ranged read: frame header + (usually) the chunk header and block starts
#: Blosc2's DELTA filter id: blocks are stored relative to the chunk's first block.
_DELTA = 3
_MERGE_GAP = 4096  # coalesce block ranges closer than this
_GLUE_MAX = 64 * 1024  # a range starting inside the first read: glue tails up to this size

#: Decodes of b2store.b2nd chunks running now in this process (all codec instances).
_inflight = 0
_inflight_lock = threading.Lock()
#: A decode running alone with the default nthreads=1 uses this many Blosc2 threads...
_SOLO_THREADS = min(
    len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8
)
#: ...when it decompresses at least this many bytes (smaller ones do not repay the threads).
_SOLO_MIN_BYTES = 2**20


@contextlib.contextmanager
def _decode_threads(nthreads: int, nbytes: int) -> Iterator[int]:
    """Blosc2 threads for one decode: *nthreads*, or all cores when it runs alone.

    With the default ``nthreads=1`` a large decode that no other b2store.b2nd decode overlaps
    (a single-chunk read, the last chunk of a dask graph) uses up to ``_SOLO_THREADS`` threads;
    concurrent decodes (dask, zarr's batches) keep one thread each, so cores are not
    oversubscribed.
    """
    global _inflight
    with _inflight_lock:
        _inflight += 1
        alone = _inflight == 1
    try:
        solo = nthreads == 1 and alone and nbytes >= _SOLO_MIN_BYTES
        yield _SOLO_THREADS if solo else nthreads
    finally:
        with _inflight_lock:
            _inflight -= 1


def _freeze(value: Any) -> Any:
    """JSON value -> hashable value (lists -> tuples, dicts -> sorted item tuples)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw_filters(filters: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Frozen filter specs -> dicts with ``"id"`` first, as ``B2nd.get_config`` writes them."""
    out = []
    for f in filters:
        d = dict(f)
        d = {k: _thaw(v) for k, v in d.items()}  # keep: a list again
        out.append({"id": d.pop("id"), **d} if "id" in d else d)
    return out


def _config_of(
    data: dict[str, Any] | Any, name: str, cls: type, *, require_configuration: bool = False
) -> dict[str, Any]:
    """The configuration of a ``{"name": ..., "configuration": {...}}`` dict, its keys checked
    against those of class *cls* (a numcodecs ``"id"`` or a misspelt key names the codec, not
    ``__init__``). *require_configuration*: a missing ``"configuration"`` is zarr's
    ``ValueError`` (codecs with a required setting), not an empty one."""
    _, cfg = parse_named_configuration(data, name, require_configuration=require_configuration)
    config = dict(cfg or {})
    if "id" in config:
        raise TypeError(
            f"{name}: configuration: Expected the numcodecs config without its 'id' key. "
            f"Got {config!r} instead."
        )
    check_config_keys(name, config, config_keys(cls))
    return config


#: numpy kinds of fixed-size items: Blosc2 stores them (numbers, datetimes, bytes, str, records)
_FIXED_SIZE_KINDS = "biufcmMSUV"


def _is_big_endian(dtype: np.dtype) -> bool:
    """Whether *dtype*, or any field of a structured *dtype*, stores big-endian items."""
    try:
        return bool(dtype != dtype.newbyteorder("<"))
    except TypeError:  # dtypes without a byte order (numpy's StringDType)
        return False


def _refuse_variable_size(dtype: np.dtype, name: str) -> None:
    """Refuse dtypes whose items are not fixed-size bytes (Python objects, numpy StringDType)."""
    if dtype.hasobject or dtype.kind not in _FIXED_SIZE_KINDS:
        raise CodecError(
            f"{name}: cannot store {dtype}, whose items are not fixed-size: use a fixed-length "
            "dtype ('<U20', 'S20') with this codec, or zarr's own codecs for variable-length "
            "strings"
        )


#: Attribute in which an evolved codec keeps the dtype of the chunks it gets (see _evolved).
_CHUNK_DTYPE = "_b2store_chunk_dtype"


def _evolved(codec: Any, array_spec: ArraySpec) -> Any:
    """*codec*, or a copy of it, remembering the dtype of the chunks it gets.

    zarr >= 3.2 evolves each codec with the spec the codecs before it leave (an array -> array
    codec such as a scale-offset may change the dtype: float32 in, uint16 out), but then also
    validates every codec with the array's own dtype. ``validate`` checks the remembered dtype,
    so a JPEG 2000 serializer after a float -> uint16 filter is not refused. Equality, hashing
    and ``to_dict`` ignore the attribute.
    """
    native = array_spec.dtype.to_native_dtype()
    if codec.__dict__.get(_CHUNK_DTYPE) == native:
        return codec
    new = copy.copy(codec)
    object.__setattr__(new, _CHUNK_DTYPE, native)
    return new


def _chunk_dtype(codec: Any, dtype: Any) -> np.dtype:
    """The dtype ``validate`` checks: the one the codec was evolved with, else the one given."""
    seen = codec.__dict__.get(_CHUNK_DTYPE)
    return seen if seen is not None else dtype.to_native_dtype()  # zarr >= 3.1: a ZDType


def _variable_size_message(name: str) -> str:
    """Why a compressing codec has no encoded size (zarr < 3.2 asks when it is given as a
    sharding index codec, and showed a bare NotImplementedError)."""
    return (
        f"{name}: compressed chunks have no fixed size, so this codec cannot encode a sharding "
        "index (keep the default index_codecs)"
    )


def _big_endian_message(dtype: np.dtype) -> str:
    """Zarr v3 metadata records no byte order for an array->bytes codec: a reopened array would
    read as little-endian, so big-endian bytes would come back swapped."""
    return (
        f"b2store.b2nd: cannot store big-endian {dtype} in Zarr v3 (a reopened array would "
        f"read as {dtype.newbyteorder('<')}): create the array with the little-endian dtype "
        "instead"
    )


def _as_chunk(arr: np.ndarray, spec: ArraySpec, what: str) -> np.ndarray:
    """View/reshape a decoded array to the chunk spec's dtype and shape, or raise.

    Only flat results (plain Blosc2 frames, bare chunks, the ``(1,)`` frame of a 0-d chunk) are
    reshaped; an n-D frame of another shape (a chunk of another array) is refused, never
    cropped or reshaped into wrong values.
    """
    dtype = spec.dtype.to_native_dtype()
    shape = tuple(spec.shape)
    if arr.dtype != dtype:
        if arr.dtype.itemsize * (arr.shape[-1] if arr.ndim else 1) % dtype.itemsize:
            raise CodecError(f"{what}: decoded {arr.dtype} cannot be viewed as {dtype}")
        arr = np.ascontiguousarray(arr).view(dtype)
    if arr.shape == shape:
        return arr
    if arr.ndim <= 1 and arr.size == math.prod(shape):
        return arr.reshape(shape)
    raise CodecError(
        f"{what}: decoded chunk shape {arr.shape} does not match the array's chunk shape {shape}"
    )


# ----------------------------------------------------------------------------------- b2nd


@dataclass(frozen=True)
class B2ndCodec(ArrayBytesCodecPartialDecodeMixin, ArrayBytesCodec):
    """Blosc2 NDim as a Zarr v3 array -> bytes codec (``b2store.b2nd``)."""

    is_fixed_size = False

    cname: str = "zstd"
    clevel: int = 5
    filters: tuple[Any, ...] = field(default=((("id", "shuffle"),),))  # frozen [{"id": "shuffle"}]
    blocks: tuple[int, ...] | None = None
    nthreads: int = 1
    splitmode: str = "auto"

    def __init__(
        self,
        *,
        cname: str = "zstd",
        clevel: int = 5,
        filters: Any = None,
        blocks: Any = None,
        nthreads: int = 1,
        splitmode: str = "auto",
    ) -> None:
        from b2store.codecs.b2nd import B2nd

        nc = B2nd(
            cname=cname,
            clevel=clevel,
            filters=filters,
            blocks=blocks,
            nthreads=nthreads,
            splitmode=splitmode,
        )
        object.__setattr__(self, "cname", nc.cname)
        object.__setattr__(self, "clevel", nc.clevel)
        object.__setattr__(self, "filters", _freeze(nc.filters))
        object.__setattr__(self, "blocks", tuple(nc.blocks) if nc.blocks is not None else None)
        object.__setattr__(self, "nthreads", nc.nthreads)
        object.__setattr__(self, "splitmode", nc.splitmode)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**_config_of(data, "b2store.b2nd", cls))

    def to_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "cname": self.cname,
            "clevel": self.clevel,
            "filters": [dict(f) for f in self._numcodec.filters],  # in B2nd's key order
            "blocks": list(self.blocks) if self.blocks is not None else None,
            "nthreads": self.nthreads,
        }
        if self.splitmode != "auto":  # the default is left out: older readers know no such key
            config["splitmode"] = self.splitmode
        return {"name": "b2store.b2nd", "configuration": config}

    @cached_property
    def _numcodec(self) -> B2nd:
        from b2store.codecs.b2nd import B2nd

        return B2nd(
            cname=self.cname,
            clevel=self.clevel,
            filters=_thaw_filters(self.filters),
            blocks=list(self.blocks) if self.blocks is not None else None,
            nthreads=self.nthreads,
            splitmode=self.splitmode,
        )

    def _refuse_unwritable(self, ndim: int, native: np.dtype) -> None:
        """Raise for arrays no chunk of which could be written (before zarr.json is)."""
        _refuse_variable_size(native, "b2store.b2nd")
        if self.blocks is not None and len(self.blocks) != ndim:
            raise CodecError(
                f"b2store.b2nd: blocks: Expected {ndim} dimensions, as many as the array. Got "
                f"{list(self.blocks)}, which has {len(self.blocks)}, instead."
            )
        from b2store.codecs.b2nd import check_truncation_dtype, normalize_filters

        # a truncation filter the dtype cannot take is refused at creation, not on the first
        # write
        check_truncation_dtype(normalize_filters(_thaw_filters(self.filters)), native)
        if _is_big_endian(native):
            # refused at creation, before zarr.json is written (writes refuse it too, below)
            raise CodecError(_big_endian_message(native))

    def evolve_from_array_spec(self, array_spec: ArraySpec) -> Self:
        # zarr < 3.2 never validates the codecs inside a shard, but evolves them when the
        # array's metadata is made: refuse unwritable arrays here too, before zarr.json exists
        self._refuse_unwritable(len(array_spec.shape), array_spec.dtype.to_native_dtype())
        evolved: Self = _evolved(self, array_spec)
        return evolved

    def validate(self, *, shape: Any, dtype: Any, chunk_grid: Any) -> None:
        native = _chunk_dtype(self, dtype)
        self._refuse_unwritable(len(shape), native)
        from b2store.codecs.b2nd import encoding_pipeline, normalize_filters

        try:
            encoding_pipeline(normalize_filters(_thaw_filters(self.filters)), native)
        except CodecError as exc:
            # a pipeline C-Blosc2 gets wrong (3+ filters, two deltas): zarr validates on every
            # open too, and arrays written before b2store refused these (or by others) must
            # still read, so this warns; writes raise (encode_b2nd runs the same check)
            warnings.warn(
                f"b2store.b2nd: {exc} Reading this array works; writing to it raises.",
                RuntimeWarning,
                stacklevel=2,
            )

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError(_variable_size_message(self.to_dict()["name"]))

    # -- whole chunks
    def _decode_array(self, buf: Any, spec: ArraySpec) -> np.ndarray:
        from b2store.codecs.b2nd import decode_b2nd

        dtype = spec.dtype.to_native_dtype()
        with _decode_threads(self.nthreads, math.prod(spec.shape) * dtype.itemsize) as nthreads:
            arr = decode_b2nd(
                buf,
                dtype=dtype,
                chunkshape=tuple(spec.shape) or (1,),
                blocks=self.blocks,
                nthreads=nthreads,
                what="b2store.b2nd",
            )
        return _as_chunk(arr, spec, "b2store.b2nd")

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        arr = self._decode_array(chunk_bytes.as_numpy_array(), chunk_spec)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(arr)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        from b2store.codecs.b2nd import encode_b2nd

        arr = chunk_array.as_numpy_array()
        if _is_big_endian(arr.dtype):  # validate refuses it at creation; a chunk may still be
            raise CodecError(_big_endian_message(arr.dtype))
        data = encode_b2nd(
            arr,
            cname=self.cname,
            clevel=self.clevel,
            filters=_thaw_filters(self.filters),
            blocks=self.blocks,
            nthreads=self.nthreads,
            splitmode=self.splitmode,
        )
        return chunk_spec.prototype.buffer.from_bytes(data)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    # -- partial decoding
    async def _decode_partial_single(
        self, byte_getter: ByteGetter, selection: SelectorTuple, chunk_spec: ArraySpec
    ) -> NDBuffer | None:
        proto = chunk_spec.prototype
        shape = tuple(chunk_spec.shape)
        if _is_total(selection, shape):
            whole = await byte_getter.get(prototype=proto)
            if whole is None:
                return None
            arr = await asyncio.to_thread(self._decode_array, whole.as_numpy_array(), chunk_spec)
            return proto.nd_buffer.from_numpy_array(arr)  # a fresh array: no copy needed
        head_buf = await byte_getter.get(prototype=proto, byte_range=RangeByteRequest(0, _HEAD))
        if head_buf is None:
            return None
        head = head_buf.to_bytes()
        plan = _PartialPlan.make(head, shape, self.blocks, chunk_spec)
        if plan is None:  # small, special, plain or unusual: decode the whole thing
            if len(head) < _HEAD:
                data = head
            else:
                whole = await byte_getter.get(prototype=proto)
                if whole is None:
                    return None
                data = whole.to_bytes()
            arr = await asyncio.to_thread(self._decode_array, data, chunk_spec)
            return proto.nd_buffer.from_numpy_array(np.array(arr[selection], copy=True))
        needed = plan.touched_blocks(selection)
        if len(needed) == plan.header.nblocks and not plan.header.memcpyed:
            # every block: one read of the chunk, decoded in place (no synthetic chunk)
            end = plan.base + plan.header.cbytes
            whole_chunk = await plan.fetch(byte_getter, proto, plan.base, end, head)
            arr = await asyncio.to_thread(
                plan.decode_all, whole_chunk, needed, self.nthreads, selection
            )
            return proto.nd_buffer.from_numpy_array(arr)
        table = await plan.fetch(byte_getter, proto, plan.base, plan.table_end, head)
        ranges = plan.block_ranges(table, needed)
        pieces: dict[int, Any] = {}
        merged = _merge(sorted({r for r in ranges.values()}))
        for (start, end), blob in zip(
            merged, await _fetch_many(byte_getter, proto, merged, head), strict=True
        ):
            for b, (s, e) in ranges.items():
                if start <= s and e <= end:
                    pieces[b] = blob[s - start : e - start]
        arr = await asyncio.to_thread(
            plan.decode_blocks, table, needed, pieces, self.nthreads, selection
        )
        return proto.nd_buffer.from_numpy_array(arr)


async def _fetch_many(
    getter: ByteGetter, proto: Any, ranges: list[tuple[int, int]], head: bytes
) -> list[memoryview]:
    """Byte ranges of one stored chunk: one ``get_partial_values`` call for several ranges.

    Blocks scattered through a chunk (a plane across the block grid) are then one store call
    instead of one per range; stores without that path (or one range) use ranged ``get``.
    """
    store, path = getattr(getter, "store", None), getattr(getter, "path", None)
    todo = [(s, e) for s, e in ranges if e > len(head)]
    if len(todo) < 2 or store is None or not isinstance(path, str):
        return [await _PartialPlan.fetch(getter, proto, s, e, head) for s, e in ranges]
    bufs = await store.get_partial_values(proto, [(path, RangeByteRequest(s, e)) for s, e in todo])
    got: dict[tuple[int, int], memoryview] = {}
    for (s, e), buf in zip(todo, bufs, strict=True):
        if buf is None or len(buf) != e - s:
            raise CodecError(f"b2store.b2nd: truncated chunk (bytes {s}..{e} unavailable)")
        got[(s, e)] = bf.as_bytes_view(buf.as_numpy_array())
    return [got[(s, e)] if (s, e) in got else memoryview(head)[s:e] for s, e in ranges]


def _is_total(selection: Any, shape: tuple[int, ...]) -> bool:
    if not isinstance(selection, tuple) or len(selection) != len(shape):
        return False
    for sel, n in zip(selection, shape, strict=True):
        if not isinstance(sel, slice):
            return False
        start, stop, step = sel.indices(n)
        if (start, stop, step) != (0, n, 1):
            return False
    return True


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in ranges:
        if out and s <= out[-1][1] + _MERGE_GAP:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _touched(sel: Any, n: int, block: int) -> list[int]:
    """Block indices along one dimension touched by a selector, ascending and unique."""
    if isinstance(sel, slice):
        start, stop, step = sel.indices(n)
        if abs(step) == 1:
            first, last = (start, stop - 1) if step == 1 else (stop + 1, start)
            if last < first:
                return []
            return list(range(first // block, last // block + 1))
        idx = np.arange(start, stop, step)
    elif isinstance(sel, int | np.integer):
        return [(int(sel) + (n if sel < 0 else 0)) // block]
    else:
        idx = np.asarray(sel)
        if idx.dtype == bool:
            idx = np.nonzero(idx)[0]
        idx = np.where(idx < 0, idx + n, idx).ravel()
    return [int(x) for x in np.unique(idx // block)]


@dataclass(frozen=True)
class _PartialPlan:
    """Where the chunk and its blocks live inside the stored bytes."""

    base: int  # offset of the Blosc2 chunk (header_size for frames, 0 for bare chunks)
    header: bf.ChunkHeader
    chunks: tuple[int, ...]
    blocks: tuple[int, ...]
    dtype: np.dtype[Any]

    @property
    def table_end(self) -> int:
        if self.header.memcpyed:  # raw padded chunk right after the header: no block starts
            return self.base + bf.CHUNK_HEADER_SIZE
        return self.base + bf.CHUNK_HEADER_SIZE + 4 * self.header.nblocks

    @classmethod
    def make(
        cls, head: bytes, shape: tuple[int, ...], blocks: tuple[int, ...] | None, spec: ArraySpec
    ) -> _PartialPlan | None:
        what = "b2store.b2nd"
        if len(head) < _HEAD or not shape:
            return None  # the whole object is already here, or 0-d
        dtype = spec.dtype.to_native_dtype()
        if bf.is_frame(head):
            info = bf.parse_frame(head, what=what, complete=False)
            if info.b2nd is None or info.nchunks != 1 or info.cbytes == 0:
                return None
            meta = info.b2nd
            if meta.chunks != shape or meta.shape != shape or info.typesize != dtype.itemsize:
                return None  # not this chunk's layout: the whole-chunk decode says why
            base, chunks, blk = info.header_size, info.b2nd.chunks, info.b2nd.blocks
        else:
            base, chunks, blk = 0, shape, blocks or shape
        if len(head) < base + bf.CHUNK_HEADER_SIZE or len(blk) != len(chunks):
            return None
        hdr = bf.chunk_header(head[base:], what=what, check_size=False)
        padded = math.prod(-(-c // b) * b for c, b in zip(chunks, blk, strict=True))
        if hdr.special or hdr.nbytes != padded * dtype.itemsize:
            return None
        if hdr.blocksize != math.prod(blk) * dtype.itemsize or hdr.blosc2_flags & 0x09:
            return None
        if _DELTA in hdr.filters:  # every block is a delta against block 0: decode the chunk
            return None
        from b2store.codecs.b2nd import needs_array_context

        if needs_array_context(hdr):  # ZFP, NDCELL, NDMEAN: decoded whole, inside an NDArray
            return None
        return cls(base, hdr, tuple(chunks), tuple(blk), dtype)

    @staticmethod
    async def fetch(
        getter: ByteGetter, proto: Any, start: int, end: int, head: bytes
    ) -> memoryview:
        """Bytes ``[start, end)`` of the stored chunk, from *head* or one ranged read (no copy).

        A range that begins inside *head* reads only its missing tail when that is small (a
        long block-start table); a large one is read whole again: re-reading a few KiB is
        cheaper than gluing megabytes.
        """
        if end <= len(head):
            return memoryview(head)[start:end]
        lo = start if start >= len(head) or end - len(head) > _GLUE_MAX else len(head)
        buf = await getter.get(prototype=proto, byte_range=RangeByteRequest(lo, end))
        if buf is None or len(buf) != end - lo:
            raise CodecError(f"b2store.b2nd: truncated chunk (bytes {lo}..{end} unavailable)")
        if lo > start:
            return memoryview(head[start:] + buf.to_bytes())
        return bf.as_bytes_view(buf.as_numpy_array())

    def touched_blocks(self, selection: Any) -> list[int]:
        grid = [-(-c // b) for c, b in zip(self.chunks, self.blocks, strict=True)]
        per_dim = [
            _touched(s, c, b) for s, c, b in zip(selection, self.chunks, self.blocks, strict=True)
        ]
        if any(len(p) == 0 for p in per_dim):
            return []
        # C-order product of ascending per-dimension lists: linear indices come out ascending
        lin = [0]
        for p, g in zip(per_dim, grid, strict=True):
            lin = [x * g + i for x in lin for i in p]
        return lin

    def block_ranges(self, table: Any, needed: list[int]) -> dict[int, tuple[int, int]]:
        hdr = self.header
        if hdr.memcpyed:
            bs, first = hdr.blocksize, self.base + bf.CHUNK_HEADER_SIZE
            return {b: (first + b * bs, first + (b + 1) * bs) for b in needed}
        starts: list[int] = bf.block_starts(table, hdr, what="b2store.b2nd").tolist()
        base = self.base
        if all(a < b for a, b in itertools.pairwise(starts)):  # the usual layout: in order
            ends = [*starts[1:], hdr.cbytes]
            return {b: (base + starts[b], base + ends[b]) for b in needed}
        # blocks out of order or sharing bytes: a block ends at the next larger start
        bounds = sorted({*starts, hdr.cbytes})
        return {
            b: (base + starts[b], base + bounds[bisect.bisect_right(bounds, starts[b])])
            for b in needed
        }

    def decode_all(
        self, chunk: Any, needed: list[int], nthreads: int, selection: Any
    ) -> np.ndarray:
        """``chunk[selection]`` from the complete stored chunk when *needed* is every block."""
        from b2store.codecs.b2nd import decompress_chunk

        nbytes = self.header.nbytes
        with _decode_threads(nthreads, nbytes) as nthr:
            flat = decompress_chunk(
                chunk, dtype=self.dtype, nbytes=nbytes, nthreads=nthr, what="b2store.b2nd"
            )
        return self._assemble(needed, list(flat.reshape(len(needed), -1)), selection)

    def decode_blocks(
        self,
        table: Any,
        needed: list[int],
        pieces: dict[int, Any],
        nthreads: int,
        selection: Any = None,
    ) -> np.ndarray:
        """Decompress only *needed* blocks (as one synthetic chunk).

        Without *selection*: the chunk array, zeros outside the needed blocks. With it:
        ``chunk[selection]``, assembled in the bounding box of the needed blocks only (no
        chunk-sized buffer), as a view when the selection is basic.
        """
        from b2store.codecs.b2nd import decompress_chunk

        blocks: list[np.ndarray]
        if needed and self.header.memcpyed:
            blocks = [np.frombuffer(pieces[b], dtype=self.dtype) for b in needed]
        elif needed:
            k = len(needed)
            hdr = bytearray(table[: bf.CHUNK_HEADER_SIZE])
            bs = self.header.blocksize
            offs, pos = [], bf.CHUNK_HEADER_SIZE + 4 * k
            for b in needed:
                offs.append(pos)
                pos += len(pieces[b])
            hdr[4:8] = (k * bs).to_bytes(4, "little")
            hdr[12:16] = pos.to_bytes(4, "little")
            mini = b"".join(
                [bytes(hdr), np.asarray(offs, dtype="<i4").tobytes(), *(pieces[b] for b in needed)]
            )
            with _decode_threads(nthreads, k * bs) as nthr:
                flat = decompress_chunk(
                    mini, dtype=self.dtype, nbytes=k * bs, nthreads=nthr, what="b2store.b2nd"
                )
            blocks = list(flat.reshape(k, -1))
        else:
            blocks = []
        return self._assemble(needed, blocks, selection)

    def _assemble(self, needed: list[int], blocks: list[np.ndarray], selection: Any) -> np.ndarray:
        """Place decoded *blocks* (flat, one per entry of *needed*) and apply *selection*."""
        grid = [-(-c // b) for c, b in zip(self.chunks, self.blocks, strict=True)]
        coords = np.array(np.unravel_index(np.asarray(needed, dtype=np.intp), grid)).reshape(
            len(grid), len(needed)
        )
        if selection is not None and needed:
            direct = self.gather(coords, blocks, selection)
            if direct is not None:
                return direct
        if selection is None or not needed:
            lo = [0] * len(grid)
            box = np.zeros([g * b for g, b in zip(grid, self.blocks, strict=True)], self.dtype)
        else:
            lo = [int(c.min()) for c in coords]
            hi = [int(c.max()) + 1 for c in coords]
            box = np.empty(
                [(h - lo_) * b for lo_, h, b in zip(lo, hi, self.blocks, strict=True)],
                self.dtype,
            )
        for i, blk in enumerate(blocks):
            dst = tuple(
                slice((int(c[i]) - o) * s, (int(c[i]) - o + 1) * s)
                for c, o, s in zip(coords, lo, self.blocks, strict=True)
            )
            box[dst] = blk.reshape(self.blocks)
        if selection is None:
            return box[tuple(slice(0, c) for c in self.chunks)]
        offsets = [o * b for o, b in zip(lo, self.blocks, strict=True)]
        return box[_shift_selection(selection, self.chunks, offsets)]

    def gather(
        self, coords: np.ndarray, blocks: list[np.ndarray], selection: tuple[Any, ...]
    ) -> np.ndarray | None:
        """``chunk[selection]`` copied block by block straight into the result.

        Only for basic selections (ints and slices with a positive step); returns None
        otherwise. Each selected element lies in exactly one needed block, so every element of
        the result is written once and nothing chunk-sized is allocated.
        """
        per_dim: list[tuple[int, int, int, int] | int] = []  # (start, stop, step, n) or int
        for sel, n in zip(selection, self.chunks, strict=True):
            if isinstance(sel, slice):
                start, stop, step = sel.indices(n)
                if step < 1:
                    return None
                per_dim.append((start, stop, step, len(range(start, stop, step))))
            elif isinstance(sel, int | np.integer):
                per_dim.append(int(sel) + (n if sel < 0 else 0))
            else:
                return None
        out_shape = [d[3] for d in per_dim if isinstance(d, tuple)]
        out = np.empty(out_shape, self.dtype)
        for i, blk in enumerate(blocks):
            block = blk.reshape(self.blocks)
            src: list[Any] = []
            dst: list[slice] = []
            for d, b, c in zip(per_dim, self.blocks, coords, strict=True):
                base = int(c[i]) * b
                if isinstance(d, int):
                    src.append(d - base)
                    continue
                start, stop, step, _ = d
                lo_i, hi_i = max(start, base), min(stop, base + b)  # selected i in [lo_i, hi_i)
                k0 = -(-(lo_i - start) // step)
                k1 = -(-(hi_i - start) // step)  # exclusive
                if k1 <= k0:
                    break  # no selected element in this block along d (cannot happen)
                first = start + k0 * step
                src.append(slice(first - base, first - base + (k1 - k0 - 1) * step + 1, step))
                dst.append(slice(k0, k1))
            else:
                out[tuple(dst)] = block[tuple(src)]
        return out


def _shift_selection(selection: Any, shape: tuple[int, ...], offsets: list[int]) -> tuple[Any, ...]:
    """Translate a chunk selection into the coordinates of a box starting at *offsets*."""
    out: list[Any] = []
    for sel, n, off in zip(selection, shape, offsets, strict=True):
        if isinstance(sel, slice):
            start, stop, step = sel.indices(n)
            if step > 0:
                out.append(slice(start - off, max(stop - off, 0), step))
            else:  # negative steps: explicit indices (a shifted stop of -1 would wrap)
                out.append(np.arange(start, stop, step) - off)
        elif isinstance(sel, int | np.integer):
            out.append(int(sel) + (n if sel < 0 else 0) - off)
        else:
            idx = np.asarray(sel)
            if idx.dtype == bool:
                idx = np.nonzero(idx)[0]
            out.append(np.where(idx < 0, idx + n, idx) - off)
    return tuple(out)


# ---------------------------------------------------------------------------------- itrunc


@dataclass(frozen=True)
class ITruncCodec(ArrayArrayCodec):
    """Low-bit truncation as a Zarr v3 array -> array codec (``b2store.itrunc``)."""

    is_fixed_size = True

    max_abs_error: int | None = None
    bits: int | None = None
    max_rel_error: float | None = None
    keep: tuple[int | float, ...] | None = None

    def __init__(
        self,
        *,
        max_abs_error: int | None = None,
        bits: int | None = None,
        max_rel_error: float | None = None,
        keep: Any = None,
    ) -> None:
        from b2store.codecs.itrunc import ITrunc

        nc = ITrunc(max_abs_error=max_abs_error, bits=bits, max_rel_error=max_rel_error, keep=keep)
        object.__setattr__(self, "max_abs_error", nc.max_abs_error)
        object.__setattr__(self, "bits", nc.bits)
        object.__setattr__(self, "max_rel_error", nc.max_rel_error)
        object.__setattr__(self, "keep", tuple(nc.keep) if nc.keep is not None else None)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**_config_of(data, "b2store.itrunc", cls))

    def to_dict(self) -> dict[str, Any]:
        cfg = {
            k: v
            for k, v in (
                ("max_abs_error", self.max_abs_error),
                ("bits", self.bits),
                ("max_rel_error", self.max_rel_error),
                ("keep", list(self.keep) if self.keep is not None else None),
            )
            if v is not None
        }
        return {"name": "b2store.itrunc", "configuration": cfg}

    @cached_property
    def _numcodec(self) -> ITrunc:
        from b2store.codecs.itrunc import ITrunc

        return ITrunc(
            max_abs_error=self.max_abs_error,
            bits=self.bits,
            max_rel_error=self.max_rel_error,
            keep=list(self.keep) if self.keep is not None else None,
        )

    def validate(self, *, shape: Any, dtype: Any, chunk_grid: Any) -> None:
        self._numcodec.plan(_chunk_dtype(self, dtype))  # raises for unsupported dtypes

    def evolve_from_array_spec(self, array_spec: ArraySpec) -> Self:
        # zarr < 3.2 validates no codec inside a shard, but evolves them at creation
        self._numcodec.plan(array_spec.dtype.to_native_dtype())
        evolved: Self = _evolved(self, array_spec)
        return evolved

    def resolve_metadata(self, chunk_spec: ArraySpec) -> ArraySpec:
        return chunk_spec

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        return input_byte_length

    def _decode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> NDBuffer:
        return chunk_array  # truncation is not invertible: decoding is the identity

    async def _decode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> NDBuffer:
        return chunk_array

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> NDBuffer | None:
        arr = self._numcodec.encode(chunk_array.as_numpy_array())
        return chunk_spec.prototype.nd_buffer.from_numpy_array(arr)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> NDBuffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)


# ------------------------------------------------------------------------------------ grok


@dataclass(frozen=True)
class _NumcodecsArrayBytes(ArrayBytesCodec):
    """Base: a Zarr v3 array -> bytes codec delegating to a numcodecs codec built from config.

    Subclasses set ``codec_name`` (the zarr.json name) and ``_make_numcodec``. The decoded array
    is viewed as the chunk spec's dtype and reshaped to its chunk shape.
    """

    is_fixed_size = False
    codec_name = ""

    config: tuple[Any, ...] = ()

    def __init__(self, **config: Any) -> None:
        codec = self._make_numcodec(config)  # validates now
        canonical = codec.get_config()
        canonical.pop("id", None)
        object.__setattr__(self, "config", _freeze(canonical))
        self.__dict__["_numcodec"] = codec  # the cached_property's slot

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**_config_of(data, cls.codec_name, cls._numcodec_class()))

    def to_dict(self) -> dict[str, Any]:
        cfg = self._numcodec.get_config()
        cfg.pop("id", None)
        return {"name": self.codec_name, "configuration": cfg}

    def _make_numcodec(self, config: dict[str, Any]) -> Codec:
        raise NotImplementedError

    @classmethod
    def _numcodec_class(cls) -> type:
        """The numcodecs class whose keyword arguments are this codec's configuration keys."""
        raise NotImplementedError

    @cached_property
    def _numcodec(self) -> Codec:
        return self._make_numcodec({k: _thaw(v) for k, v in self.config})

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError(_variable_size_message(self.to_dict()["name"]))

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        arr = np.asarray(self._numcodec.decode(chunk_bytes.to_bytes()))
        return chunk_spec.prototype.nd_buffer.from_numpy_array(
            _as_chunk(arr, chunk_spec, self.codec_name)
        )

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        data = self._numcodec.encode(np.ascontiguousarray(chunk_array.as_numpy_array()))
        return chunk_spec.prototype.buffer.from_bytes(bytes(data))

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True, init=False)
class GrokCodec(_NumcodecsArrayBytes):
    """JPEG 2000 (Grok) as a Zarr v3 array -> bytes codec (``b2store.grok``)."""

    codec_name = "b2store.grok"

    def _make_numcodec(self, config: dict[str, Any]) -> Codec:
        from b2store.codecs.grok import Grok

        grok: Codec = Grok(**config)
        return grok

    @classmethod
    def _numcodec_class(cls) -> type:
        from b2store.codecs.grok import Grok

        return Grok

    def evolve_from_array_spec(self, array_spec: ArraySpec) -> Self:
        # zarr < 3.2 validates no codec inside a shard, but evolves them when the array's
        # metadata is made: refuse dtypes and ranks here too (the image size is checked by
        # validate only: a top-level codec gets the array's shape here, not the chunk's)
        self._numcodec.check_layout(array_spec.dtype.to_native_dtype(), tuple(array_spec.shape))
        evolved: Self = _evolved(self, array_spec)
        return evolved

    def validate(self, *, shape: Any, dtype: Any, chunk_grid: Any) -> None:
        # refuse dtypes and ranks the plugin cannot read back when the array is created, not
        # on its first write (after zarr.json was written)
        self._numcodec.check_layout(_chunk_dtype(self, dtype), tuple(shape))
        chunks = _smallest_chunk(chunk_grid)
        if chunks is not None and len(chunks) >= 2:
            self._numcodec.check_image_size(*chunks[-2:])


def _smallest_chunk(chunk_grid: Any) -> tuple[int, ...] | None:
    """The smallest chunk size along each dimension of a regular grid (``chunk_shape``) or of
    a rectilinear one (zarr >= 3.2: ``chunk_shapes``, an int or a tuple of sizes per
    dimension); ``None`` for grids of other kinds."""
    regular = getattr(chunk_grid, "chunk_shape", None)
    if regular is not None:
        return tuple(int(c) for c in regular)
    shapes = getattr(chunk_grid, "chunk_shapes", None)
    if shapes is None:
        return None
    return tuple(int(min(c)) if isinstance(c, tuple | list) else int(c) for c in shapes)
