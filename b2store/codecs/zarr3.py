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
decompresses only those (:mod:`b2store.codecs._b2nd_partial` plans it); a whole-chunk selection
is one plain ``get()``. zarr uses this path only when the array has no array -> array and no
bytes -> bytes codecs. Importing this module does not import blosc2.
"""

from __future__ import annotations

import asyncio
import copy
import math
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayArrayCodec, ArrayBytesCodec, ArrayBytesCodecPartialDecodeMixin
from zarr.abc.store import RangeByteRequest

from b2store._chunk_origins import add_origin, prefix_error
from b2store._zarrmeta import is_big_endian
from b2store.codecs._b2nd_partial import _HEAD, _fetch_many, _is_total, _merge, _PartialPlan
from b2store.codecs._b2nd_threads import _decode_threads
from b2store.codecs._zarr3_common import config_of, key_where, variable_size_message
from b2store.errors import CodecError

if TYPE_CHECKING:
    from typing import Self

    from numcodecs.abc import Codec
    from zarr.abc.store import ByteGetter
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer
    from zarr.core.indexing import SelectorTuple

    from b2store.codecs.b2nd import B2nd
    from b2store.codecs.grok import Grok
    from b2store.codecs.itrunc import ITrunc

__all__ = ["B2ndCodec", "GrokCodec", "ITruncCodec"]


def _freeze(value: Any) -> Any:
    """JSON value -> hashable value (lists -> tuples, dicts -> sorted item tuples)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """Frozen JSON value -> JSON value (tuples -> lists)."""
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _thaw_filters(filters: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Frozen filter specs -> dicts with ``"id"`` first, as ``B2nd.get_config`` writes them."""
    out = []
    for f in filters:
        d = dict(f)
        d = {k: _thaw(v) for k, v in d.items()}  # keep: a list again
        out.append({"id": d.pop("id"), **d} if "id" in d else d)
    return out


#: numpy kinds of fixed-size items: Blosc2 stores them (numbers, datetimes, bytes, str, records)
_FIXED_SIZE_KINDS = "biufcmMSUV"


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


def _big_endian_message(dtype: np.dtype) -> str:
    """Zarr v3 metadata records no byte order for an array->bytes codec: a reopened array would
    read as little-endian, so big-endian bytes would come back swapped."""
    return (
        f"b2store.b2nd: cannot store big-endian {dtype} in Zarr v3 (a reopened array would "
        f"read as {dtype.newbyteorder('<')}): create the array with the little-endian dtype "
        "instead"
    )


def _as_chunk(arr: np.ndarray, spec: ArraySpec, what: str) -> np.ndarray:
    """View/reshape a decoded array to the chunk spec's dtype and shape, or raise."""
    return _as_shaped(arr, spec.dtype.to_native_dtype(), tuple(spec.shape), what)


def _as_shaped(arr: np.ndarray, dtype: np.dtype, shape: tuple[int, ...], what: str) -> np.ndarray:
    """View/reshape a decoded array to *dtype* and *shape* (a chunk's), or raise.

    Only flat results (plain Blosc2 frames, bare chunks, the ``(1,)`` frame of a 0-d chunk) are
    reshaped; an n-D frame of another shape (a chunk of another array) is refused, never
    cropped or reshaped into wrong values.
    """
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


def _chunk_to_encode(chunk_array: NDBuffer, spec: ArraySpec, what: str) -> np.ndarray:
    """The chunk to encode, in the chunk spec's shape.

    numcodecs' array -> array codecs (``numcodecs.fixedscaleoffset``, ``numcodecs.delta``, ...)
    return their chunks flattened, C-ordered, while the spec keeps the chunk shape: a flat
    chunk of the right size is reshaped (the block shape, the images of a JPEG 2000 chunk and
    the partial reads of the stored frame follow the chunk's dimensions). Any other shape is
    refused: its elements could not be placed in the chunk.
    """
    arr = chunk_array.as_numpy_array()
    shape = tuple(spec.shape)
    if arr.shape == shape:
        return arr
    if arr.ndim <= 1 and arr.size == math.prod(shape):
        return np.ascontiguousarray(arr).reshape(shape)
    raise CodecError(
        f"{what}: Expected a chunk of shape {shape} (the array's chunk shape). Got an array of "
        f"shape {arr.shape} instead: a codec before {what} changed the chunk's shape without "
        "saying so"
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
        self.__dict__["_numcodec"] = nc  # the cached_property's slot: built once

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**config_of(data, "b2store.b2nd", cls))

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
        check_truncation_dtype(normalize_filters(self._numcodec.filters), native)
        if is_big_endian(native):
            # refused at creation, before zarr.json is written (writes refuse it too, below)
            raise CodecError(_big_endian_message(native))

    @staticmethod
    def _check_chunk_size(chunk_grid: Any, native: np.dtype) -> None:
        """Refuse chunks no frame can hold, at creation (before zarr.json is written, and
        before a write allocates a chunk the encoder then refuses); warn for chunks only
        frames of several Blosc2 chunks (written by others) hold: they read, writes raise."""
        from b2store.codecs._b2nd_decode import _MAX_FRAME_BYTES
        from b2store.codecs._common import MAX_CHUNK_BYTES

        sized = _chunk_nbytes(chunk_grid, native)
        if sized is None or sized[1] <= MAX_CHUNK_BYTES:
            return
        chunks, nbytes = sized
        message = _too_large_message("b2store.b2nd", chunks, native, nbytes)
        if nbytes > _MAX_FRAME_BYTES:  # over what the decoder reads too
            # zarr validates at every open as well: no frame holds such chunks, so nothing
            # stored can read; say so to whoever opens one made without this check
            raise CodecError(
                f"{message} (Arrays with such chunks are refused at open too: no Blosc2 frame "
                "holds them, so no stored chunk could be read.)"
            )
        warnings.warn(
            f"{message} Reading this array works; writing to it raises.",
            RuntimeWarning,
            stacklevel=3,
        )

    def evolve_from_array_spec(self, array_spec: ArraySpec) -> Self:
        # zarr < 3.2 never validates the codecs inside a shard, but evolves them when the
        # array's metadata is made: refuse unwritable arrays here too, before zarr.json exists
        self._refuse_unwritable(len(array_spec.shape), array_spec.dtype.to_native_dtype())
        evolved: Self = _evolved(self, array_spec)
        return evolved

    def validate(self, *, shape: Any, dtype: Any, chunk_grid: Any) -> None:
        native = _chunk_dtype(self, dtype)
        self._refuse_unwritable(len(shape), native)
        self._check_chunk_size(chunk_grid, native)
        from b2store.codecs.b2nd import encoding_pipeline, normalize_filters

        try:
            encoding_pipeline(normalize_filters(self._numcodec.filters), native)
        except CodecError as exc:
            # a pipeline C-Blosc2 gets wrong (3+ filters, delta after a filter): zarr validates on
            # open too, and arrays written before b2store refused these (or by others) must
            # still read, so this warns; writes raise (encode_b2nd runs the same check)
            warnings.warn(
                f"b2store.b2nd: {exc} Reading this array works; writing to it raises.",
                RuntimeWarning,
                stacklevel=2,
            )

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError(variable_size_message("b2store.b2nd"))

    # -- whole chunks
    def _decode_array(self, buf: Any, spec: ArraySpec) -> np.ndarray:
        return self.decode_chunk(buf, shape=tuple(spec.shape), dtype=spec.dtype.to_native_dtype())

    def decode_chunk(self, buf: Any, *, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """One whole stored chunk -> its array of the array's chunk *shape* and native *dtype*.

        What zarr's pipeline gets from this codec for a whole chunk, without an ``ArraySpec``:
        for readers that hand chunks to dask themselves (the b2h5 xarray engine's whole-chunk
        reads). Raises :class:`~b2store.errors.CodecError` as the pipeline's decode does.
        """
        from b2store.codecs.b2nd import decode_b2nd

        with _decode_threads(self.nthreads, math.prod(shape) * dtype.itemsize) as nthreads:
            arr = decode_b2nd(
                buf,
                dtype=dtype,
                chunkshape=shape or (1,),
                blocks=self.blocks,
                nthreads=nthreads,
                what="b2store.b2nd",
            )
        return _as_shaped(arr, dtype, shape, "b2store.b2nd")

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        try:
            arr = self._decode_array(chunk_bytes.as_numpy_array(), chunk_spec)
        except CodecError as err:  # zarr gives no key: name the chunk where it can be told
            add_origin(err, chunk_bytes)
            raise
        return chunk_spec.prototype.nd_buffer.from_numpy_array(arr)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        from b2store.codecs.b2nd import encode_b2nd

        arr = _chunk_to_encode(chunk_array, chunk_spec, "b2store.b2nd")
        if is_big_endian(arr.dtype):  # validate refuses it at creation; a chunk may still be
            raise CodecError(_big_endian_message(arr.dtype))
        data = encode_b2nd(
            arr,
            cname=self.cname,
            clevel=self.clevel,
            filters=self._numcodec.filters,  # normalised once, when the codec was made
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
        try:
            return await self._decode_partial(byte_getter, selection, chunk_spec)
        except CodecError as err:  # here zarr says which key: name the chunk
            prefix_error(err, key_where(byte_getter))
            raise

    async def _decode_partial(
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
        return cls(**config_of(data, "b2store.itrunc", cls))

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
        arr = self._numcodec.encode(_chunk_to_encode(chunk_array, chunk_spec, "b2store.itrunc"))
        return chunk_spec.prototype.nd_buffer.from_numpy_array(arr)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> NDBuffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)


# ------------------------------------------------------------------------------------ grok


@dataclass(frozen=True)
class _NumcodecsArrayBytes(ArrayBytesCodec):
    """Base: a Zarr v3 array -> bytes codec delegating to a numcodecs codec.

    Subclasses set ``codec_name`` (the zarr.json name), declare the numcodecs codec's settings as
    typed, frozen fields set by a keyword-only ``__init__`` (whose keyword names are the
    configuration keys), and build the numcodecs codec in a ``_numcodec`` cached property. The
    configuration is the numcodecs config without ``"id"``. The decoded array is viewed as the
    chunk spec's dtype and reshaped to its chunk shape.
    """

    is_fixed_size = False
    codec_name = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**config_of(data, cls.codec_name, cls))

    def to_dict(self) -> dict[str, Any]:
        cfg = self._numcodec.get_config()
        cfg.pop("id", None)
        return {"name": self.codec_name, "configuration": cfg}

    @property
    def _numcodec(self) -> Codec:
        raise NotImplementedError

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError(variable_size_message(self.codec_name))

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        try:
            arr = np.asarray(self._numcodec.decode(chunk_bytes.to_bytes()))
        except CodecError as err:
            add_origin(err, chunk_bytes)
            raise
        return chunk_spec.prototype.nd_buffer.from_numpy_array(
            _as_chunk(arr, chunk_spec, self.codec_name)
        )

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        arr = _chunk_to_encode(chunk_array, chunk_spec, self.codec_name)
        data = self._numcodec.encode(np.ascontiguousarray(arr))
        return chunk_spec.prototype.buffer.from_bytes(bytes(data))

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)


@dataclass(frozen=True, init=False)
class GrokCodec(_NumcodecsArrayBytes):
    """JPEG 2000 (Grok) as a Zarr v3 array -> bytes codec (``b2store.grok``)."""

    codec_name = "b2store.grok"

    ratio: float | None = None
    psnr: float | None = None
    nthreads: int = 1

    def __init__(
        self, *, ratio: float | None = None, psnr: float | None = None, nthreads: int = 1
    ) -> None:
        from b2store.codecs.grok import Grok

        nc = Grok(ratio=ratio, psnr=psnr, nthreads=nthreads)  # validates now
        object.__setattr__(self, "ratio", nc.ratio)
        object.__setattr__(self, "psnr", nc.psnr)
        object.__setattr__(self, "nthreads", nc.nthreads)
        self.__dict__["_numcodec"] = nc  # the cached_property's slot

    @cached_property
    def _numcodec(self) -> Grok:
        from b2store.codecs.grok import Grok

        return Grok(ratio=self.ratio, psnr=self.psnr, nthreads=self.nthreads)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a pickle made before the typed fields (a dask worker or a cached graph of an older
        # install) holds the settings as a ``config`` tuple of (key, value) pairs
        state = dict(state)
        old = dict(state.pop("config", ()))
        for key in ("ratio", "psnr", "nthreads"):
            if key in old:
                state.setdefault(key, old[key])
        self.__dict__.update(state)

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
        native = _chunk_dtype(self, dtype)
        self._numcodec.check_layout(native, tuple(shape))
        sized = _chunk_nbytes(chunk_grid, native)
        if sized is not None:
            from b2store.codecs._common import MAX_CHUNK_BYTES

            chunks, nbytes = sized
            if nbytes > MAX_CHUNK_BYTES:  # never written, so never read: refused
                raise CodecError(_too_large_message(self.codec_name, chunks, native, nbytes))
        smallest = _smallest_chunk(chunk_grid)
        if smallest is not None and len(smallest) >= 2:
            self._numcodec.check_image_size(*smallest[-2:])


def _chunk_extent(chunk_grid: Any, pick: Any) -> tuple[int, ...] | None:
    """``pick`` (``min`` or ``max``) of the chunk sizes along each dimension of a regular grid
    (``chunk_shape``) or of a rectilinear one (zarr >= 3.2: ``chunk_shapes``, an int or a tuple
    of sizes per dimension); ``None`` for grids of other kinds."""
    regular = getattr(chunk_grid, "chunk_shape", None)
    if regular is not None:
        return tuple(int(c) for c in regular)
    shapes = getattr(chunk_grid, "chunk_shapes", None)
    if shapes is None:
        return None
    return tuple(int(pick(c)) if isinstance(c, tuple | list) else int(c) for c in shapes)


def _largest_chunk(chunk_grid: Any) -> tuple[int, ...] | None:
    """The largest chunk size along each dimension (see :func:`_chunk_extent`)."""
    return _chunk_extent(chunk_grid, max)


def _chunk_nbytes(chunk_grid: Any, dtype: np.dtype) -> tuple[tuple[int, ...], int] | None:
    """The largest chunk of *chunk_grid* and its size in bytes, or ``None`` if unknown."""
    chunks = _largest_chunk(chunk_grid)
    if chunks is None:
        return None
    return chunks, math.prod(chunks) * dtype.itemsize


def _too_large_message(name: str, chunks: tuple[int, ...], dtype: np.dtype, nbytes: int) -> str:
    from b2store.codecs._common import MAX_CHUNK_BYTES

    return (
        f"{name}: Expected chunks of at most {MAX_CHUNK_BYTES} bytes (Blosc2's limit per "
        f"chunk). Got chunks of {list(chunks)} {dtype}, {nbytes} bytes, instead: use smaller "
        "chunks (shards can group them)."
    )


def _smallest_chunk(chunk_grid: Any) -> tuple[int, ...] | None:
    """The smallest chunk size along each dimension (see :func:`_chunk_extent`)."""
    return _chunk_extent(chunk_grid, min)
