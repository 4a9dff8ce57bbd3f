"""Regressions found by the twelfth session's hunt through zarr's newer APIs (zarr 3.1 / 3.4).

Each test failed before its fix: chunks flattened by numcodecs' array -> array codecs
(``numcodecs.fixedscaleoffset``, ``numcodecs.delta``) handed to b2store's codecs, chunks over
Blosc2's 2 GiB limit accepted at creation (and a bare C "Error while creating the context" from
the JPEG 2000 encoder), and JPEG 2000 ``psnr`` targets missed by 50 dB without a word.
"""

from __future__ import annotations

import warnings
from typing import Any

import blosc2
import codec_checks as common  # tests/codecs is on sys.path (see codec_checks)
import numpy as np
import pytest
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import MemoryStore

from b2store.codecs.zarr3 import B2ndCodec, GrokCodec, ITruncCodec
from b2store.errors import CodecError

requires_blosc2_j2k = common.requires_blosc2_j2k
_ZARR_VERSION = tuple(int(x) for x in zarr.__version__.split(".")[:2])

_DATA = (np.add.outer(np.arange(40.0), np.arange(50.0) * 3) % 4000).astype("f4") / 4095
_SCALE = {"name": "numcodecs.fixedscaleoffset", "configuration": {"offset": 0, "scale": 4095,
          "dtype": "<f4", "astype": "<u2"}}  # fmt: skip
_DELTA = {"name": "numcodecs.delta", "configuration": {"dtype": "<f4"}}


# ------------------------------------------------- chunks flattened by numcodecs filters
@pytest.mark.parametrize(
    ("filters", "max_err"),
    # a float delta rounds (numcodecs' own error): 1e-5
    [([_SCALE], 0.0), ([_DELTA], 1e-5), ([_DELTA, ITruncCodec(max_rel_error=1e-3)], 1.1e-3)],
)
def test_b2nd_blocks_after_flattening_numcodecs_filters(filters: list[Any], max_err: float) -> None:
    """numcodecs' fixedscaleoffset and delta return flat chunks: b2nd with a block shape
    raised "blocks [4, 5] has 2 dimensions, the chunk (500,) has 1" on every write, and
    without one stored 1-D frames. The chunk is stored n-D, with its block shape."""
    store = MemoryStore()
    z = zarr.create_array(
        store, shape=_DATA.shape, chunks=(20, 25), dtype="f4", filters=filters,
        serializer=B2ndCodec(blocks=[4, 5]), compressors=None,
    )  # fmt: skip
    z[...] = _DATA
    back = zarr.open_array(store, mode="r")
    err = np.abs(back[...] - _DATA) / np.maximum(np.abs(_DATA), 1e-30)
    assert float(err[_DATA != 0].max(initial=0)) <= max_err
    np.testing.assert_allclose(back[3:33, 7:44], _DATA[3:33, 7:44], rtol=max_err, atol=1e-6)
    frame = store._store_dict["c/0/0"].to_bytes()
    nd = blosc2.ndarray_from_cframe(frame)
    assert nd.shape == (20, 25) and nd.blocks == (4, 5)


def test_chunk_of_another_shape_is_refused_naming_the_codec() -> None:
    """A chunk whose size does not match the chunk spec cannot be placed: a clear error."""
    from zarr.core.array_spec import ArrayConfig, ArraySpec
    from zarr.core.dtype import parse_dtype

    proto = default_buffer_prototype()
    spec = ArraySpec(
        shape=(4, 5), dtype=parse_dtype(np.dtype("u2"), zarr_format=3), fill_value=0,
        config=ArrayConfig.from_dict({}), prototype=proto,
    )  # fmt: skip
    bad = proto.nd_buffer.from_numpy_array(np.zeros((3, 7), "u2"))
    with pytest.raises(CodecError, match=r"b2store.b2nd: Expected a chunk of shape \(4, 5\)"):
        B2ndCodec()._encode_sync(bad, spec)
    flat = proto.nd_buffer.from_numpy_array(np.arange(20, dtype="u2"))
    out = B2ndCodec()._encode_sync(flat, spec)
    assert out is not None
    assert blosc2.ndarray_from_cframe(out.to_bytes()).shape == (4, 5)


@requires_blosc2_j2k
@pytest.mark.skipif(
    _ZARR_VERSION < (3, 4),
    reason="zarr < 3.4 checks every codec against the array's dtype (no dtype threading)",
)
def test_grok_after_fixedscaleoffset() -> None:
    """float32 scaled to uint16 by numcodecs' fixedscaleoffset, then JPEG 2000: refused on
    every write ("Expected a chunk of 2-D images (..., H, W). Got shape=(500,)")."""
    z = zarr.create_array(
        MemoryStore(), shape=_DATA.shape, chunks=(20, 25), dtype="f4", filters=[_SCALE],
        serializer=GrokCodec(), compressors=None,
    )  # fmt: skip
    z[...] = _DATA
    np.testing.assert_allclose(z[...], _DATA, atol=0.5 / 4095)


# ------------------------------------------------------------ chunks over 2 GiB
_HUGE = (2**20, 2**20)  # metadata only: no chunk is ever allocated


@pytest.mark.parametrize(
    ("serializer", "dtype", "chunks"),
    [
        (B2ndCodec(), "f8", (2**16, 2**16)),  # 32 GiB: the first write allocated it
        pytest.param(GrokCodec(), "u2", (2**15, 2**15), marks=requires_blosc2_j2k),  # 2 GiB
    ],
)
def test_chunks_over_blosc2_limit_refused_at_creation(
    serializer: Any, dtype: str, chunks: tuple[int, ...]
) -> None:
    store = MemoryStore()
    with pytest.raises(CodecError, match=r"Expected chunks of at most 2147483615 bytes"):
        zarr.create_array(
            store, shape=_HUGE, chunks=chunks, dtype=dtype, serializer=serializer,
            compressors=None,
        )  # fmt: skip
    assert not store._store_dict


def test_b2nd_chunks_between_2_and_4_gib_warn() -> None:
    """Frames of several Blosc2 chunks (other writers) hold up to 4 GiB and still read, so
    such arrays open with a warning; writing raises."""
    with pytest.warns(RuntimeWarning, match="Reading this array works; writing to it raises"):
        zarr.create_array(
            MemoryStore(), shape=_HUGE, chunks=(2**15, 2**16), dtype="u1",
            serializer=B2ndCodec(), compressors=None,
        )  # fmt: skip


@pytest.mark.skipif(_ZARR_VERSION < (3, 4), reason="zarr < 3.4 validates no codec in a shard")
def test_b2nd_inner_chunks_over_limit_refused_in_shards() -> None:
    with pytest.raises(CodecError, match=r"Got chunks of \[65536, 65536\] float64"):
        zarr.create_array(
            MemoryStore(), shape=_HUGE, chunks=(2**16, 2**16), shards=(2**17, 2**17),
            dtype="f8", serializer=B2ndCodec(), compressors=None,
        )  # fmt: skip


@requires_blosc2_j2k
def test_grok_encode_over_2_gib_refused_before_c_code() -> None:
    """C-Blosc2 failed with a bare RuntimeError("Error while creating the context")."""
    from b2store.codecs.grok import Grok

    view = np.broadcast_to(np.zeros(1, "u1"), (2**15 + 1, 2**16))  # 2 GiB, not allocated
    with pytest.raises(CodecError, match=r"b2store_grok: Expected chunks of at most"):
        Grok().encode(view)


# ---------------------------------------------------------- JPEG 2000 psnr targets
def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(float) - b.astype(float)) ** 2))
    peak = float(np.iinfo(a.dtype).max)
    return np.inf if mse == 0 else 10 * np.log10(peak * peak / mse)


@requires_blosc2_j2k
@pytest.mark.parametrize(
    ("image", "target"),
    [
        # Grok decoded these rows as a constant 2048 (30 dB) for every target
        (np.where(np.arange(32)[:, None] % 2 == 0, 4095, 0).repeat(32, 1).astype("u2"), 80),
        (np.where(np.arange(64)[:, None] % 2 == 0, 32768, 0).repeat(64, 1).astype("u2"), 60),
        # uint8: Grok stops near 54.5 dB whatever the target
        (((np.add.outer(np.arange(128), np.arange(128)) * 7) % 256).astype("u1"), 80),
    ],
)
def test_grok_psnr_target_missed_is_stored_lossless(image: np.ndarray, target: float) -> None:
    from b2store.codecs.grok import Grok

    codec = Grok(psnr=target)
    with pytest.warns(RuntimeWarning, match=rf"missed psnr={target} dB"):
        frame = codec.encode(image)
    np.testing.assert_array_equal(codec.decode(frame), image)


@requires_blosc2_j2k
def test_grok_psnr_target_met_stays_lossy() -> None:
    from b2store.codecs.grok import Grok

    y, x = np.mgrid[0:128, 0:128]
    rng = np.random.default_rng(12)
    img = ((np.sin(x / 7) + np.cos(y / 5) + 2) * 16000 + rng.normal(0, 40, x.shape)).astype("u2")
    stack = np.stack([img, img[::-1]])
    codec = Grok(psnr=60)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        frame = codec.encode(stack)
    back = codec.decode(frame)
    assert len(frame) < stack.nbytes / 4  # lossy, not lossless
    for i in range(2):
        assert 54 <= _psnr(stack[i], back[i]) < 80


def test_v2_b2nd_blocks_after_a_flattening_filter_say_what_to_do() -> None:
    """Zarr v2 hands numcodecs compressors the flat output of numcodecs' Delta: the error named
    no cause ("blocks [2, 3] do not match the 1-D chunk (30,)"); 1-D blocks work."""
    import numcodecs

    from b2store.codecs.b2nd import B2nd

    data = np.arange(13 * 17, dtype="f4").reshape(13, 17)
    for blocks, ok in (([2, 3], False), ([6], True)):
        z = zarr.create_array(
            MemoryStore(), shape=data.shape, chunks=(5, 6), dtype="f4", zarr_format=2,
            compressors=B2nd(blocks=blocks), filters=[numcodecs.Delta(dtype="f4")],
        )  # fmt: skip
        if ok:
            z[...] = data
            np.testing.assert_array_equal(z[...], data)
        else:
            with pytest.raises(CodecError, match=r"blocks: Expected 1 dimensions.*flattens"):
                z[...] = data
