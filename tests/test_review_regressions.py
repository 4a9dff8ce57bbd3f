"""Regression tests for bugs found in the correctness review (one test per finding)."""

from __future__ import annotations

import numcodecs
import numpy as np
import pytest


@pytest.mark.parametrize("fill", [None, 0, 7])
def test_b2nd_decode_of_memcpyed_chunk_is_writable(fill: int | None) -> None:
    """clevel=0 (memcpyed) chunks decoded to a read-only array, unlike every other chunk.

    numcodecs codecs return writable arrays; a caller that edits the decoded chunk in place
    (as zarr-python 2's partial writes and many numcodecs users do) got ``ValueError:
    assignment destination is read-only`` only for uncompressed chunks.
    """
    a = np.arange(1000, dtype="i4").reshape(10, 100)
    if fill is not None:
        a = np.full_like(a, fill)
    codec = numcodecs.get_codec({"id": "b2store_b2nd", "clevel": 0})
    out = codec.decode(codec.encode(a))
    assert np.array_equal(np.asarray(out).reshape(a.shape), a)
    assert out.flags.writeable
    out[...] = 1  # in place, as numcodecs users do
