"""Zarr v3 ``b2store.hdf5`` codec: the HDF5 filter pipeline as a bytes-to-bytes codec.

Contract: the configuration is the one of :class:`b2store.codecs.hdf5_pipeline.HDF5Pipeline`
(``filters`` in HDF5 encode order, ``dtype``, ``chunkshape``, ``masked``, ``nullterm``) without
its ``"id"``; decoding turns a raw (or, with ``masked``,
:func:`~b2store.codecs.hdf5_pipeline.add_mask_header`-prefixed) HDF5 chunk into the C-ordered bytes
of the full chunk, which the array's ``bytes`` codec (placed before it, with the HDF5 byte order)
turns into the array. All the work is done by the numcodecs codec; this class is a thin frozen
dataclass that runs it off the event loop.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import BytesBytesCodec

from b2store._chunk_origins import add_origin
from b2store.codecs._zarr3_common import config_of, variable_size_message
from b2store.codecs.hdf5_pipeline import (
    HDF5Pipeline,
    parse_config_ints,
    parse_filter_specs,
    parse_nullterm,
)
from b2store.errors import CodecError

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer

__all__ = ["HDF5PipelineCodec"]

NAME = "b2store.hdf5"

_Filter = tuple[int, str, tuple[int, ...]]


def _parse_filters(filters: Sequence[Any], empty_ok: bool = False) -> tuple[_Filter, ...]:
    """Filters as hashable ``(id, name, cd_values)`` tuples, checked as the numcodecs codec does
    (errors name the codec and the key); ``(id, name, cd_values)`` sequences are accepted too.
    ``empty_ok``: no filters is fine (a ``nullterm`` codec)."""
    sequence = isinstance(filters, Sequence) and not isinstance(filters, str | bytes)
    if empty_ok and sequence and len(filters) == 0:
        return ()
    specs: Any = filters
    if isinstance(filters, Sequence) and not isinstance(filters, str | bytes):
        specs = [
            {"id": f[0], "name": f[1], "cd_values": f[2]}
            if isinstance(f, Sequence) and not isinstance(f, str | bytes) and len(f) == 3
            else f
            for f in filters
        ]
    return tuple((f["id"], f["name"], tuple(f["cd_values"])) for f in parse_filter_specs(specs))


_Ranges = tuple[tuple[int, ...], ...]


@lru_cache(maxsize=64)
def _pipeline(
    filters: tuple[_Filter, ...],
    dtype: str,
    chunkshape: tuple[int, ...],
    masked: bool,
    nullterm: _Ranges = (),
) -> HDF5Pipeline:
    return HDF5Pipeline(
        filters=[{"id": i, "name": n, "cd_values": list(cd)} for i, n, cd in filters],
        dtype=dtype,
        chunkshape=chunkshape,
        masked=masked,
        nullterm=[list(r) for r in nullterm] or None,
    )


@dataclass(frozen=True)
class HDF5PipelineCodec(BytesBytesCodec):
    """Decode raw HDF5 chunks with the dataset's filter pipeline (Zarr v3, bytes to bytes)."""

    is_fixed_size = False

    filters: tuple[_Filter, ...]
    dtype: str | None
    chunkshape: tuple[int, ...] | None
    masked: bool
    nullterm: _Ranges

    def __init__(
        self,
        *,
        filters: Sequence[Any],
        dtype: str | None = None,
        chunkshape: Sequence[int] | None = None,
        masked: bool = False,
        nullterm: Sequence[Sequence[int]] | None = None,
    ) -> None:
        ranges = tuple(tuple(r) for r in parse_nullterm(nullterm, None))
        object.__setattr__(self, "nullterm", ranges)
        object.__setattr__(self, "filters", _parse_filters(filters, empty_ok=bool(ranges)))
        object.__setattr__(self, "dtype", dtype)
        shape = (
            tuple(parse_config_ints("chunkshape", chunkshape)) if chunkshape is not None else None
        )
        object.__setattr__(self, "chunkshape", shape)
        object.__setattr__(self, "masked", masked)
        self._codec  # noqa: B018 - validate the configuration now, not at the first read

    def evolve_from_array_spec(self, array_spec: ArraySpec) -> Self:
        """Fill a missing ``dtype`` from the array (a missing chunk shape comes per chunk)."""
        if self.dtype is not None:
            return self
        return type(self)(
            filters=self.filters,
            dtype=array_spec.dtype.to_native_dtype().str,
            chunkshape=self.chunkshape,
            masked=self.masked,
            nullterm=self.nullterm,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from ``{"name": "b2store.hdf5", "configuration": {...}}``; a numcodecs ``"id"``
        or an unknown key raises a ``TypeError`` naming the codec."""
        return cls(**config_of(data, NAME, cls, require_configuration=True))

    def to_dict(self) -> dict[str, Any]:
        cfg = self._codec.get_config()
        cfg.pop("id")
        return {"name": NAME, "configuration": cfg}

    @cached_property
    def _codec(self) -> HDF5Pipeline:
        return HDF5Pipeline(
            filters=[{"id": i, "name": n, "cd_values": list(cd)} for i, n, cd in self.filters],
            dtype=self.dtype,
            chunkshape=self.chunkshape,
            masked=self.masked,
            nullterm=[list(r) for r in self.nullterm] or None,
        )

    def validate(self, *, shape: Any, dtype: Any, chunk_grid: Any) -> None:
        """Refuse an array whose chunks are not the HDF5 chunks this pipeline was made for.

        The codec copies one HDF5 dataset's filters for its chunk shape: data read through b2h5,
        rechunked and written with the encoding it came with (``ds.chunk(...).to_zarr(...)``)
        would fail at the first write with a byte count. Said at creation, with what to do.
        """
        grid_chunks = getattr(chunk_grid, "chunk_shape", None)
        if self.chunkshape is None or grid_chunks is None:
            return
        native = dtype.to_native_dtype()  # zarr >= 3.1 passes a ZDType
        mine = math.prod(self.chunkshape) * np.dtype(self.dtype or native).itemsize
        theirs = math.prod(grid_chunks) * native.itemsize
        if mine != theirs:
            raise CodecError(
                f"{NAME}: configured for HDF5 chunks of shape {list(self.chunkshape)}, the array's "
                f"chunks are {list(grid_chunks)}. This codec reproduces an HDF5 dataset's filter "
                "pipeline for its own chunk shape: to write data read through b2h5 with other "
                "chunks, drop the encoding it came with (xarray: ds.drop_encoding()) or choose "
                "the codecs yourself."
            )

    def _codec_for(self, chunk_spec: ArraySpec) -> HDF5Pipeline:
        if self.chunkshape is not None or self.dtype is None:
            return self._codec
        shape = tuple(chunk_spec.shape)
        return _pipeline(self.filters, self.dtype, shape, self.masked, self.nullterm)

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer:
        try:
            raw = self._codec_for(chunk_spec).decode_bytes(chunk_bytes.as_numpy_array())
        except CodecError as err:  # zarr gives no key: name the chunk where it can be told
            add_origin(err, chunk_bytes)
            raise
        return chunk_spec.prototype.buffer.from_bytes(raw)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def _encode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer | None:
        enc = self._codec_for(chunk_spec).encode_bytes(chunk_bytes.as_numpy_array())
        return chunk_spec.prototype.buffer.from_bytes(enc)

    async def _encode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_bytes, chunk_spec)

    def compute_encoded_size(self, _input_byte_length: int, _chunk_spec: ArraySpec) -> int:
        raise NotImplementedError(variable_size_message(NAME))
