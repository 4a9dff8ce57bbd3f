"""A bare Blosc2 chunk stored as one block covering the chunk decodes in C order.

Such a chunk (``blosc2.compress2`` of a C-ordered array, without a b2nd block split) was
reordered by the configured ``blocks`` when its header held a single block, which scrambled
the values silently (a 4 x 4 ``arange`` came back as ``[[0, 1, 4, 5], [2, 3, 6, 7], ...]``).
The header's block size tells: one block of the whole chunk is the chunk in C order. Chunks
really split into ``blocks`` decode as before.
"""

from __future__ import annotations

import asyncio

import blosc2
import numcodecs
import numpy as np
import pytest
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import MemoryStore

from b2store.codecs.b2nd import decode_b2nd
from b2store.codecs.zarr3 import B2ndCodec

CASES = [((4, 4), (2, 2), "u2"), ((64, 64), (16, 16), "u2"), ((6, 6), (4, 4), "u2"),
         ((3, 10, 12), (1, 4, 4), "f4")]  # fmt: skip


@pytest.mark.parametrize(("chunks", "blocks", "dtype"), CASES)
def test_one_block_bare_chunk_decodes_in_c_order(
    chunks: tuple[int, ...], blocks: tuple[int, ...], dtype: str
) -> None:
    x = np.arange(np.prod(chunks)).astype(dtype).reshape(chunks)
    chunk = blosc2.compress2(x, typesize=x.itemsize, blocksize=x.nbytes)
    got = decode_b2nd(chunk, dtype=dtype, chunkshape=chunks, blocks=blocks)
    np.testing.assert_array_equal(got, x)
    codec = numcodecs.get_codec(
        {"id": "b2store_b2nd", "chunkshape": list(chunks), "blocks": list(blocks)}
    )
    np.testing.assert_array_equal(codec.decode(chunk).view(dtype).reshape(chunks), x)


def test_one_block_bare_chunk_in_zarr3() -> None:
    store = MemoryStore()
    z = zarr.create_array(
        store=store, shape=(64, 64), chunks=(64, 64), dtype="u2",
        serializer=B2ndCodec(blocks=(16, 16)), compressors=None,
    )  # fmt: skip
    x = np.arange(64 * 64, dtype="u2").reshape(64, 64)
    chunk = blosc2.compress2(x, typesize=2, blocksize=x.nbytes)
    asyncio.run(store.set("c/0/0", default_buffer_prototype().buffer.from_bytes(chunk)))
    np.testing.assert_array_equal(z[...], x)
    np.testing.assert_array_equal(z[5:9, 20:40], x[5:9, 20:40])


def test_chunks_split_into_blocks_still_reorder() -> None:
    x = np.arange(64 * 64, dtype="u2").reshape(64, 64)
    nd = blosc2.asarray(x, chunks=(64, 64), blocks=(16, 16))
    chunk = bytes(nd.schunk.get_chunk(0))
    got = decode_b2nd(chunk, dtype="u2", chunkshape=(64, 64), blocks=(16, 16))
    np.testing.assert_array_equal(got, x)
