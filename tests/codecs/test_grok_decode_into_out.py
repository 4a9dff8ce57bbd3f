"""``b2store_grok`` ``decode(buf, out=...)`` fills ``out`` whatever its memory order.

numcodecs callers (zarr-python 2 among them) decode straight into the destination chunk,
which is Fortran-ordered for ``order="F"`` arrays. The decoder wrote into a flattened *copy*
of such an ``out`` and returned it untouched (all zeros), silently. It now copies the decoded
bytes in ``out``'s memory order, as ``b2store_b2nd`` and numcodecs' own codecs do, and refuses
a non-contiguous ``out``.
"""

from __future__ import annotations

import numcodecs
import numpy as np
import pytest

from b2store.errors import CodecError

pytest.importorskip("blosc2_j2k")

IMG = (np.add.outer(np.arange(32), np.arange(40) * 3) % 250).astype("u1")


def test_fortran_ordered_out_is_filled() -> None:
    codec = numcodecs.get_codec({"id": "b2store_grok"})
    enc = codec.encode(np.asfortranarray(IMG))  # stored as the C-ordered transpose
    out = np.zeros(IMG.shape, IMG.dtype, order="F")
    assert codec.decode(enc, out=out) is out
    np.testing.assert_array_equal(out, IMG)
    # the same bytes as numcodecs' own codecs give
    zstd = numcodecs.Zstd()
    ref = np.zeros(IMG.shape, IMG.dtype, order="F")
    zstd.decode(zstd.encode(np.asfortranarray(IMG)), out=ref)
    np.testing.assert_array_equal(out, ref)


def test_c_ordered_and_bytearray_out() -> None:
    codec = numcodecs.get_codec({"id": "b2store_grok"})
    enc = codec.encode(IMG.astype("u2") * 200)
    out = np.zeros(IMG.shape, "u2")
    codec.decode(enc, out=out)
    np.testing.assert_array_equal(out, IMG.astype("u2") * 200)
    raw = bytearray(IMG.nbytes)
    codec.decode(codec.encode(IMG), out=raw)
    assert bytes(raw) == IMG.tobytes()


def test_non_contiguous_out_is_refused() -> None:
    codec = numcodecs.get_codec({"id": "b2store_grok"})
    enc = codec.encode(IMG.astype("u2"))
    with pytest.raises(CodecError, match="b2store_grok: expected out to be a contiguous"):
        codec.decode(enc, out=np.zeros((32, 80), "u2")[:, ::2])
