"""Regressions found by the eleventh session's hunt through the codecs' public interfaces.

Each test failed before its fix: frames python-blosc2 writes for empty arrays (read as
"corrupt"), bytedelta on items of 128 bytes or more (python-blosc2 overflowed an ``int8_t``),
and a ``null`` Zarr v3 configuration (zarr's message named no codec).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import blosc2
import msgpack
import numcodecs
import numpy as np
import pytest
import zarr
from zarr.storage import MemoryStore

from b2store.codecs import _blosc2frame as bf
from b2store.codecs.b2nd import decode_b2nd
from b2store.codecs.zarr3 import B2ndCodec, ITruncCodec
from b2store.errors import CodecError


# ----------------------------------------------------------------- empty arrays' frames
@pytest.mark.parametrize(
    ("shape", "chunks"),
    [((0, 5), None), ((0, 5), (10, 5)), ((3, 0), (2, 2)), ((0,), None), ((2, 0, 3), None)],
)
def test_frames_of_empty_arrays_decode_empty(shape: tuple[int, ...], chunks: object) -> None:
    """python-blosc2 writes chunks = blocks = (0, 5) for an empty (0, 5) array: that frame was
    refused as a "corrupt b2nd metalayer"; it reads as the empty array, as blosc2 reads it."""
    frame = bytes(blosc2.asarray(np.zeros(shape, "f8"), chunks=chunks).to_cframe())
    ref = blosc2.ndarray_from_cframe(frame)[...]
    out = numcodecs.get_codec({"id": "b2store_b2nd"}).decode(frame)
    assert out.shape == ref.shape == shape and out.dtype == np.float64
    typed = decode_b2nd(frame, dtype="<f8")
    assert typed.shape == shape


def _meta(shape: list[int], chunks: list[int], blocks: list[int]) -> bytes:
    return msgpack.packb([0, len(shape), shape, chunks, blocks, 0, "<f8"])


def test_zero_chunks_only_for_empty_arrays() -> None:
    """Chunk or block sizes of 0 stay corrupt for a non-empty array (they would divide by 0)."""
    assert bf.parse_b2nd_meta(_meta([0, 5], [0, 5], [0, 5])).chunks == (0, 5)
    for chunks, blocks in (([0, 5], [0, 5]), ([3, 5], [0, 5])):
        with pytest.raises(CodecError, match="corrupt b2nd metalayer"):
            bf.parse_b2nd_meta(_meta([3, 5], chunks, blocks), what="b2store_b2nd")


# ---------------------------------------------------------- bytedelta on large items
@pytest.mark.parametrize("dtype", ["S127", "S128", "S200", "S255", "S300", "<U40", "V256"])
@pytest.mark.parametrize("filters", [["bytedelta"], ["shuffle", "bytedelta"]])
def test_bytedelta_on_large_items(dtype: str, filters: list[str]) -> None:
    """Items of 128..255 bytes raised "value too large to convert to int8_t" (python-blosc2
    stores bytedelta's meta, the item size, through an int8_t); items over 255 bytes too. They
    encode now, and python-blosc2 reads the frames back identically."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(11)
    raw = rng.integers(0, 4, 6 * 5 * dt.itemsize, dtype=np.uint8).tobytes()
    arr = np.frombuffer(raw, dtype=dt).reshape(6, 5)
    codec = numcodecs.get_codec({"id": "b2store_b2nd", "filters": filters, "blocks": [4, 2]})
    frame = codec.encode(arr)
    assert np.asarray(codec.decode(frame)).tobytes() == arr.tobytes()
    assert blosc2.ndarray_from_cframe(frame)[...].tobytes() == arr.tobytes()


def test_bytedelta_meta_unchanged_for_small_items() -> None:
    """Frames of items below 128 bytes keep the bytes python-blosc2 itself writes."""
    arr = np.arange(600, dtype="<u4").reshape(20, 30)
    ours = numcodecs.get_codec({"id": "b2store_b2nd", "filters": ["shuffle", "bytedelta"]})
    frame = ours.encode(arr)
    cparams = blosc2.ndarray_from_cframe(frame).schunk.cparams
    assert list(cparams.filters[:2]) == [blosc2.Filter.SHUFFLE, blosc2.Filter.BYTEDELTA]
    assert list(cparams.filters_meta[:2]) == [0, 4]


def test_zarr3_bytedelta_on_fixed_length_strings() -> None:
    """A Zarr v3 array of '<U40' (160-byte items) with bytedelta could not be written."""
    ref = np.array([f"value {i}" * 3 for i in range(24)], dtype="<U40").reshape(4, 6)
    z = zarr.create_array(
        MemoryStore(),
        shape=ref.shape,
        chunks=(2, 3),
        dtype=ref.dtype,
        serializer=B2ndCodec(filters=["shuffle", "bytedelta"]),
        compressors=None,
    )
    z[...] = ref
    np.testing.assert_array_equal(z[...], ref)
    np.testing.assert_array_equal(z[1:3, 2:5], ref[1:3, 2:5])


# ----------------------------------------------------------- v3 configuration: null
@pytest.mark.parametrize(
    ("cls", "name"), [(B2ndCodec, "b2store.b2nd"), (ITruncCodec, "b2store.itrunc")]
)
def test_v3_null_configuration_names_the_codec(cls: type, name: str) -> None:
    with pytest.raises(TypeError, match=rf"{name}: configuration: Expected a JSON object.*None"):
        cls.from_dict({"name": name, "configuration": None})
    with pytest.raises(TypeError, match=r"b2store.b2nd: configuration: Expected a JSON object"):
        zarr.create_array(
            MemoryStore(),
            shape=(4,),
            dtype="u2",
            serializer={"name": "b2store.b2nd", "configuration": None},
            compressors=None,
        )


# ------------------------------------------------------- fresh interpreter, public ids
def test_fixes_through_numcodecs_ids_in_a_fresh_interpreter() -> None:
    """The reviewer's path: numcodecs.get_codec by id, b2store never imported."""
    script = textwrap.dedent(
        """
        import json, sys
        import blosc2, numcodecs, numpy as np
        fresh = not any(m.startswith("b2store") for m in sys.modules)
        c = numcodecs.get_codec({"id": "b2store_b2nd", "filters": ["shuffle", "bytedelta"]})
        a = np.frombuffer(bytes(range(200)) * 6, dtype="S200")
        ok_bytedelta = c.decode(c.encode(a)).tobytes() == a.tobytes()
        empty = c.decode(bytes(blosc2.asarray(np.zeros((0, 5), "i2")).to_cframe()))
        print(json.dumps([fresh, ok_bytedelta, list(empty.shape), empty.dtype.str]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [True, True, [0, 5], "<i2"]
