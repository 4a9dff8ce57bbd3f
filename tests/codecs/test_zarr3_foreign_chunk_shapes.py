"""A stored b2nd frame whose shape is not the array's chunk shape is refused, never cropped.

A chunk copied from another array (other chunking, a wrong kerchunk reference, a frame of
a smaller array in a larger chunk) used to be cropped or reshaped into the chunk silently by
``b2store.b2nd``, and a partial read of an under-filled frame returned its padding. Both the
whole-chunk and the partial read must raise :class:`~b2store.errors.CodecError` instead; flat
results (plain Blosc2 frames, the ``(1,)`` frame of a 0-d chunk) keep being reshaped.
"""

from __future__ import annotations

import asyncio
from typing import Any

import blosc2
import numpy as np
import pytest
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import MemoryStore

from b2store.codecs.b2nd import encode_b2nd
from b2store.codecs.zarr3 import B2ndCodec
from b2store.errors import CodecError


def _array_with_chunk(
    shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str, blob: bytes, **codec: Any
) -> zarr.Array:
    store = MemoryStore()
    z = zarr.create_array(
        store=store,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        serializer=B2ndCodec(**codec),
        compressors=None,
    )
    key = "c/" + "/".join("0" * len(chunks)) if chunks else "c"
    buf = default_buffer_prototype().buffer.from_bytes(blob)
    asyncio.run(store.set(key, buf))
    return z


@pytest.mark.parametrize("frame_shape", [(5, 3), (4, 4), (2, 6), (4, 3, 1)])
@pytest.mark.parametrize("blocks", [None, (2, 2)])
def test_frame_of_another_shape_is_refused(
    frame_shape: tuple[int, ...], blocks: tuple[int, int] | None
) -> None:
    n = int(np.prod(frame_shape))
    frame = encode_b2nd(np.arange(1000, 1000 + n, dtype="u2").reshape(frame_shape))
    z = _array_with_chunk((8, 6), (4, 3), "u2", frame, blocks=blocks)
    with pytest.raises(CodecError, match=r"b2store\.b2nd.*chunk shape"):
        z[0:4, 0:3]
    with pytest.raises(CodecError, match=r"b2store\.b2nd.*chunk shape"):
        z[1:3, 1:2]


def test_partial_read_of_an_underfilled_frame_is_refused() -> None:
    # a python-blosc2 array (100, 100) in one (128, 128) chunk: large enough for the
    # partial-decode path, whose plan used to accept it and return the padding
    data = np.random.default_rng(0).random((100, 100)).astype("f4")
    frame = bytes(blosc2.asarray(data, chunks=(128, 128), blocks=(16, 16)).to_cframe())
    z = _array_with_chunk((256, 256), (128, 128), "f4", frame)
    with pytest.raises(CodecError, match="does not match the array's chunk shape"):
        z[0:128, 0:128]
    with pytest.raises(CodecError, match="does not match the array's chunk shape"):
        z[10:20, 10:20]
    with pytest.raises(CodecError, match="does not match the array's chunk shape"):
        z[110:120, 110:120]


def test_flat_frames_and_0d_chunks_still_read() -> None:
    plain = blosc2.SChunk(chunksize=24, data=np.arange(12, dtype="u2") + 7, cparams={"typesize": 2})
    z = _array_with_chunk((8, 6), (4, 3), "u2", bytes(plain.to_cframe()))
    np.testing.assert_array_equal(z[0:4, 0:3], np.arange(7, 19, dtype="u2").reshape(4, 3))
    np.testing.assert_array_equal(z[1:3, 1:2], [[11], [14]])

    zero_d = zarr.create_array(store={}, shape=(), dtype="f8", serializer=B2ndCodec())
    zero_d[...] = 3.25
    assert zero_d[()] == 3.25
    # python-blosc2's own 0-d frame (shape ()) too
    z = _array_with_chunk((), (), "f8", bytes(blosc2.asarray(np.array(5.5)).to_cframe()))
    assert z[()] == 5.5
