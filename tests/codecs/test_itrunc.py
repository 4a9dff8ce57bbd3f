"""Tests of integer/float truncation: ``b2store_itrunc`` and the ``itrunc`` filter of b2nd."""

from __future__ import annotations

import codec_checks as common  # tests/codecs is on sys.path (see codec_checks)
import numcodecs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from b2store.codecs.b2nd import B2nd
from b2store.codecs.itrunc import ITrunc, plan_truncation, truncate
from b2store.errors import CodecError

check_backwards_compatibility = common.check_backwards_compatibility
check_config = common.check_config
check_repr = common.check_repr

INTS = ["u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", ">u2", ">i4"]
RNG = np.random.default_rng(3)


def int_data(dtype: str, n: int = 4096) -> np.ndarray:
    dt = np.dtype(dtype)
    info = np.iinfo(dt)
    a = RNG.integers(
        info.min,
        info.max,
        n,
        dtype=dt.newbyteorder("=") if dt.byteorder == ">" else dt,
        endpoint=True,
    ).astype(dt)
    extremes = [info.min, info.min + 1, -1 if info.min < 0 else 1, 0, 1, info.max - 1, info.max]
    a[: len(extremes)] = np.array(extremes, dtype=object).astype(dt)
    return a


def smooth_int_data(dtype: str) -> np.ndarray:
    """Compressible data (Blosc2 would memcpy random data and skip the filter)."""
    dt = np.dtype(dtype)
    info = np.iinfo(dt)
    x = np.linspace(0, 1, 8192)
    a = info.min + (info.max - info.min) * (0.5 + 0.5 * np.sin(20 * x))
    return np.clip(np.round(a), info.min, info.max).astype(np.float64).astype(dt)


def abs_err(a: np.ndarray, b: np.ndarray) -> int:
    return int(max(abs(int(x) - int(y)) for x, y in zip(a.tolist(), b.tolist(), strict=True)))


@pytest.mark.parametrize("dtype", INTS)
@pytest.mark.parametrize("max_abs_error", [0, 1, 2, 3, 7, 8, 15, 100, 255, 4095, 2**31, 2**64 - 1])
def test_int_bound_holds(dtype: str, max_abs_error: int) -> None:
    for data in (int_data(dtype), smooth_int_data(dtype)):
        codec = ITrunc(max_abs_error=max_abs_error)
        enc = codec.encode(data)
        assert enc.dtype == data.dtype and enc.shape == data.shape
        diffs = data.astype(object) - enc.astype(object)
        assert min(diffs) >= 0  # floor: never above the input
        assert max(diffs) <= max_abs_error
        # Blosc2's INT_TRUNC inside b2nd gives the same bound
        b2 = B2nd(filters=[{"id": "itrunc", "max_abs_error": max_abs_error}, "bitshuffle"])
        dec = b2.decode(b2.encode(data))
        assert abs_err(data, np.asarray(dec)) <= max_abs_error


@pytest.mark.parametrize("dtype", INTS)
def test_int_bits_exact_match_with_blosc2(dtype: str) -> None:
    data = smooth_int_data(dtype)
    nbits = 8 * np.dtype(dtype).itemsize
    for k in (1, 3, nbits // 2, nbits - 1):
        ours = ITrunc(bits=k).encode(data)
        b2 = B2nd(filters=[{"id": "itrunc", "bits": k}, "shuffle"])
        theirs = np.asarray(b2.decode(b2.encode(data)))
        np.testing.assert_array_equal(ours, theirs)  # bit-identical to INT_TRUNC
        assert abs_err(data, ours) <= 2**k - 1


def test_k_from_max_abs_error() -> None:
    assert plan_truncation("u2", max_abs_error=0).zeroed == 0
    assert plan_truncation("u2", max_abs_error=1).zeroed == 1
    assert plan_truncation("u2", max_abs_error=2).zeroed == 1
    assert plan_truncation("u2", max_abs_error=3).zeroed == 2
    assert plan_truncation("u2", max_abs_error=15).zeroed == 4
    assert plan_truncation("u2", max_abs_error=16).zeroed == 4
    assert plan_truncation("u2", max_abs_error=10**9).zeroed == 15  # capped: 0 < k < 16
    assert plan_truncation("i1", max_abs_error=127).zeroed == 7
    assert plan_truncation("i1", max_abs_error=10**9).zeroed == 7
    assert plan_truncation("u2", max_abs_error=0).blosc2_filter(2) is None
    assert plan_truncation("u2", max_abs_error=15).blosc2_filter(2) == (36, -4)


def test_int8_extremes_do_not_wrap() -> None:
    a = np.array([-128, -127, -1, 0, 1, 126, 127], dtype="i1")
    out = ITrunc(max_abs_error=127).encode(a)
    np.testing.assert_array_equal(out, [-128, -128, -128, 0, 0, 0, 0])
    out = ITrunc(max_abs_error=3).encode(a)
    np.testing.assert_array_equal(out, [-128, -128, -4, 0, 0, 124, 124])


@pytest.mark.parametrize("dtype", ["f2", "f4", "f8", ">f4"])
@pytest.mark.parametrize("max_rel_error", [0.0, 1e-9, 1e-5, 1e-3, 0.01, 0.3, 0.5, 1.0, 10.0])
def test_float_relative_bound(dtype: str, max_rel_error: float) -> None:
    dt = np.dtype(dtype)
    x = (RNG.standard_normal(5000) * 10.0 ** RNG.integers(-3, 4, 5000)).astype(dt)
    x[:6] = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, np.finfo(dt).max]).astype(dt)
    y = ITrunc(max_rel_error=max_rel_error).encode(x)
    assert y.dtype == dt
    assert np.isnan(y[4]) and np.isinf(y[2]) and np.isinf(y[3]) and y[0] == 0
    fin = np.isfinite(x) & (np.abs(x) >= np.finfo(dt).tiny)
    rel = np.abs(x[fin].astype("f8") - y[fin].astype("f8")) / np.abs(x[fin].astype("f8"))
    bound = min(max_rel_error, 1.0)
    assert rel.max(initial=0.0) <= bound
    assert np.all(np.abs(y[fin]) <= np.abs(x[fin]))  # toward zero
    if dt.itemsize in (4, 8):  # Blosc2's TRUNC_PREC inside b2nd: same results on smooth data
        s = np.linspace(1, 2, 4096, dtype=dt)
        b2 = B2nd(filters=[{"id": "itrunc", "max_rel_error": max_rel_error}, "shuffle"])
        np.testing.assert_array_equal(
            np.asarray(b2.decode(b2.encode(s))), ITrunc(max_rel_error=max_rel_error).encode(s)
        )


def test_itrunc_bitshuffle_zstd_is_one_config() -> None:
    yy, xx = np.mgrid[0:256, 0:256]
    img = (((yy - 128) ** 2 + (xx - 128) ** 2 < 90**2) * 20000 + 800).astype("u2")
    img = (img + RNG.normal(0, 40, img.shape)).astype("u2")
    lossless = B2nd(filters=["bitshuffle"])
    lossy = numcodecs.get_codec(
        {"id": "b2store_b2nd", "filters": [{"id": "itrunc", "max_abs_error": 15}, "bitshuffle"]}
    )
    enc = lossy.encode(img)
    assert len(enc) < 0.75 * len(lossless.encode(img))
    assert abs_err(img.ravel(), np.asarray(lossy.decode(enc)).ravel()) <= 15


def test_config_repr_and_errors() -> None:
    for c in (ITrunc(max_abs_error=3), ITrunc(bits=2), ITrunc(max_abs_error=1, max_rel_error=0.1)):
        check_config(c)
    check_repr("ITrunc(bits=None, max_abs_error=15, max_rel_error=None)", {"ITrunc": ITrunc})
    with pytest.raises(CodecError, match="b2store_itrunc"):
        ITrunc()
    with pytest.raises(CodecError, match="not both"):
        ITrunc(max_abs_error=1, bits=1)
    with pytest.raises(CodecError, match=r"inclusive range \(0, 18446744073709551615\)"):
        ITrunc(max_abs_error=-1)
    with pytest.raises(TypeError, match="integer"):
        ITrunc(max_abs_error=1.5)
    with pytest.raises(CodecError, match="max_rel_error"):
        ITrunc(max_rel_error=float("nan"))
    with pytest.raises(CodecError, match="not bool"):
        ITrunc(bits=1).encode(np.ones(3, bool))
    with pytest.raises(CodecError, match="needs max_rel_error or bits"):
        ITrunc(max_abs_error=3).encode(np.ones(3, "f4"))
    with pytest.raises(CodecError, match="needs max_abs_error or bits"):
        ITrunc(max_rel_error=0.1).encode(np.ones(3, "i4"))
    with pytest.raises(CodecError, match=r"inclusive range \(0, 7\)"):
        ITrunc(bits=8).encode(np.ones(3, "u1"))
    with pytest.raises(CodecError, match="typed numpy array"):
        ITrunc(bits=1).encode(b"abcd")
    x = np.arange(10, dtype="u2")
    assert ITrunc(bits=1).decode(x) is x  # identity
    out = np.empty_like(x)
    ITrunc(bits=1).decode(x, out=out)
    np.testing.assert_array_equal(out, x)


def test_truncate_keeps_shape_and_byteorder() -> None:
    a = np.arange(24, dtype=">i2").reshape(2, 3, 4)
    out = truncate(a, plan_truncation(a.dtype, bits=2))
    assert out.dtype == a.dtype and out.shape == a.shape
    np.testing.assert_array_equal(out, (a // 4) * 4)


def test_golden_fixtures() -> None:
    assert check_backwards_compatibility("b2store_itrunc") >= 15


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(INTS),
    max_abs_error=st.integers(0, 2**40),
    seed=st.integers(0, 2**32 - 1),
)
def test_hypothesis_int_bound(dtype: str, max_abs_error: int, seed: int) -> None:
    dt = np.dtype(dtype)
    info = np.iinfo(dt)
    rng = np.random.default_rng(seed)
    a = rng.integers(info.min, info.max, 64, endpoint=True, dtype=dt.newbyteorder("="))
    a = a.astype(dt)
    y = ITrunc(max_abs_error=max_abs_error).encode(a)
    d = a.astype(object) - y.astype(object)
    assert min(d) >= 0 and max(d) <= max_abs_error


def test_encode_keeps_shape_and_memory_order() -> None:
    """0-d stays 0-d; a Fortran-ordered chunk (zarr v2 order="F") keeps its layout, so its bytes
    mean the same elements after the filter."""
    assert ITrunc(bits=2).encode(np.array(1023, dtype="u2")).shape == ()
    f = np.asfortranarray(np.arange(48, dtype="u2").reshape(6, 8) * 4)
    enc = ITrunc(bits=2).encode(f)
    assert enc.flags.f_contiguous and enc.tobytes(order="A") == f.tobytes(order="A")


def test_empty_keep_is_unset() -> None:
    """``keep=[]`` means no markers: the same codec as ``keep=None``, and the key is left out of
    every config (numcodecs, the b2nd filter spec, the Zarr v3 codecs), so such configs stay
    readable by versions without the key."""
    from b2store.codecs.zarr3 import B2ndCodec, ITruncCodec

    for empty in ([], (), np.array([], dtype="i4")):
        c = ITrunc(max_abs_error=3, keep=empty)  # type: ignore[arg-type]
        assert c.keep is None
        assert "keep" not in c.get_config()
        assert c == ITrunc(max_abs_error=3)
        assert "keep" not in repr(c)
        spec = B2nd(filters=[{"id": "itrunc", "max_abs_error": 3, "keep": empty}]).get_config()
        assert spec["filters"] == [{"id": "itrunc", "max_abs_error": 3}]
        v3 = ITruncCodec(max_abs_error=3, keep=empty)
        assert v3.keep is None and v3.to_dict() == ITruncCodec(max_abs_error=3).to_dict()
        b3 = B2ndCodec.from_dict(
            {
                "name": "b2store.b2nd",
                "configuration": {"filters": [{"id": "itrunc", "max_abs_error": 3, "keep": empty}]},
            }
        )
        assert "keep" not in str(b3.to_dict())
    a = np.arange(100, dtype="u2")
    np.testing.assert_array_equal(
        ITrunc(max_abs_error=3, keep=[]).encode(a), ITrunc(max_abs_error=3).encode(a)
    )


@pytest.mark.parametrize("dtype", ["u8", ">u8"])
def test_keep_holds_uint64_markers_from_2_63_up(dtype: str) -> None:
    """``keep=[5, 2**64 - 1]`` was built through float64 (numpy's type for that mixed list), so
    the marker 2**64 - 1 became 0 and was truncated like any item (found by the convert
    differential test). Both markers now stay exact, in the codec and inside b2nd."""
    top = 2**64 - 1
    data = np.array([5, top, top - 1, 6, 7, 1000], dtype=dtype)
    for codec in (
        ITrunc(max_abs_error=3, keep=[5, top]),
        B2nd(filters=[{"id": "itrunc", "max_abs_error": 3, "keep": [5, top]}]),
    ):
        got = np.asarray(codec.decode(codec.encode(data))).view(data.dtype).reshape(-1)
        assert got[0] == 5 and got[1] == top, (codec, got)
        assert np.all(data.astype("u8") - got.astype("u8") <= 3)
