"""Tests of the b2nd codec ``b2store_b2nd`` and the frame parser: real blosc2, h5py, hdf5plugin."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import blosc2
import codec_checks as common  # tests/codecs is on sys.path (see codec_checks)
import numcodecs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from b2store.codecs import _blosc2frame as bf
from b2store.codecs.b2nd import (
    B2nd,
    decode_b2nd,
    default_blocks,
    encode_b2nd,
    reorder,
    to_block_order,
)
from b2store.errors import CodecError

check_backwards_compatibility = common.check_backwards_compatibility
check_config = common.check_config
check_encode_decode = common.check_encode_decode
check_repr = common.check_repr
requires_hdf5plugin = common.requires_hdf5plugin

DTYPES = ["u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8", "bool"]
SHAPES = [(1,), (100,), (13, 17), (5, 6, 7), (3, 4, 5, 6)]
RNG = np.random.default_rng(42)


def make(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return RNG.integers(0, 2, shape).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        a = RNG.integers(info.min, info.max, shape, dtype=dt, endpoint=True)
        a.flat[0] = info.min
        a.flat[-1] = info.max
        return a
    a = (RNG.standard_normal(shape) * 1e3).astype(dt)
    a.flat[0] = np.inf
    return a


CODECS = [
    B2nd(),
    B2nd(cname="lz4", clevel=9, filters=["bitshuffle"]),
    B2nd(cname="zlib", filters=[{"id": "shuffle"}, {"id": "bytedelta"}]),
    B2nd(cname="blosclz", clevel=0, filters=[]),
]


@pytest.mark.parametrize(("dtype", "shape"), list(itertools.product(DTYPES, SHAPES)))
def test_roundtrip_dtypes_shapes(dtype: str, shape: tuple[int, ...]) -> None:
    arr = make(dtype, shape)
    for codec in CODECS:
        enc = check_encode_decode(arr, codec)
        nd = blosc2.ndarray_from_cframe(bytes(enc))  # interop: plain python-blosc2 opens it
        assert nd.shape == arr.shape and nd.dtype == arr.dtype
        np.testing.assert_array_equal(nd[...], arr)


@pytest.mark.parametrize("order", ["C", "F"])
def test_roundtrip_non_contiguous(order: str) -> None:
    arr = np.asarray(make("i4", (20, 30)), order=order)[::2, 1::3]
    check_encode_decode(arr, B2nd(blocks=[4, 4]))


def test_explicit_blocks_and_zero_d() -> None:
    arr = make("u2", (37, 41))
    enc = B2nd(blocks=[8, 16]).encode(arr)
    info = bf.parse_frame(enc)
    assert info.b2nd is not None and info.b2nd.blocks == (8, 16) and info.b2nd.chunks == (37, 41)
    np.testing.assert_array_equal(B2nd().decode(enc), arr)
    scalar = np.array(3.5, dtype="f8")
    np.testing.assert_array_equal(B2nd().decode(B2nd().encode(scalar)), scalar.reshape(1))


def test_default_blocks_like_blosc2() -> None:
    assert default_blocks((100, 512, 512), np.dtype("u2")) == (1, 128, 512)
    enc = B2nd().encode(np.zeros((100, 512, 512), "u2"))
    assert len(enc) < 1000  # all-zero chunk is special
    assert bf.frame_special(enc[:400]) == bf.SPECIAL_ZERO


def test_config_and_repr() -> None:
    for codec in [*CODECS, B2nd(blocks=[4, 4], chunkshape=[8, 8], nthreads=2)]:
        check_config(codec)
    check_repr(
        "B2nd(blocks=None, chunkshape=None, clevel=5, cname='zstd', filters=[{'id': 'shuffle'}], "
        "nthreads=1, splitmode='auto')",
        {"B2nd": B2nd},
    )
    assert numcodecs.get_codec({"id": "b2store_b2nd"}) == B2nd()
    c = B2nd(filters=["shuffle", {"id": "trunc_prec", "bits": 3}])
    assert c.filters == [{"id": "shuffle"}, {"id": "trunc_prec", "bits": 3}]


@pytest.mark.parametrize(
    ("kwargs", "exc", "text"),
    [
        ({"clevel": 17}, ValueError, "inclusive range (0, 9). Got 17 instead"),
        ({"clevel": "5"}, TypeError, "Expected an integer"),
        ({"cname": "snappy"}, ValueError, "cname"),
        ({"filters": [{"id": "nope"}]}, ValueError, "unknown filter"),
        ({"filters": "shuffle"}, TypeError, "list of filter specs"),
        ({"filters": [{"id": "shuffle", "x": 1}]}, ValueError, "takes no parameters"),
        ({"filters": [{"id": "itrunc"}]}, ValueError, "max_abs_error"),
        ({"filters": ["shuffle"] * 7}, ValueError, "at most 6"),
        ({"blocks": [0, 4]}, ValueError, "blocks[0]"),
        ({"nthreads": 0}, ValueError, "nthreads"),
    ],
)
def test_invalid_config(kwargs: dict[str, object], exc: type, text: str) -> None:
    with pytest.raises(exc, match="b2store_b2nd") as info:
        B2nd(**kwargs)  # type: ignore[arg-type]
    assert text in str(info.value)


@pytest.mark.parametrize(
    "filters",
    [
        [{"id": "itrunc", "max_abs_error": 1}, {"id": "itrunc", "max_abs_error": 1000}],
        [{"id": "itrunc", "bits": 2}, "bitshuffle", {"id": "trunc_prec", "max_abs_error": 100}],
    ],
)
def test_two_truncation_filters_are_refused(filters: list[object], tmp_path: Path) -> None:
    """Both ran, so the coarser one silently broke the other's stated bound (``max_abs_error``
    1 and 1000 together gave errors up to 511): encoding refuses them, in the numcodecs and the
    Zarr v3 codec. Opening such a config still works: arrays written before the check must read
    (decoding takes the filters from each chunk, not from the config)."""
    import json

    import zarr

    data = (np.arange(600, dtype="u2") * 97).reshape(20, 30)
    codec = numcodecs.get_codec({"id": "b2store_b2nd", "filters": filters})
    with pytest.raises(CodecError, match=r"b2store_b2nd: filters: .*at most one truncation"):
        codec.encode(data)
    z = zarr.create_array(
        str(tmp_path / "a.zarr"),
        shape=data.shape,
        chunks=(10, 30),
        dtype="u2",
        serializer={"name": "b2store.b2nd", "configuration": {"filters": filters}},
        compressors=None,
    )
    with pytest.raises(CodecError, match="at most one truncation"):
        z[...] = data
    # an array an older version wrote with both filters (here: with the first, then the
    # config rewritten) opens and reads
    z = zarr.create_array(
        str(tmp_path / "old.zarr"),
        shape=data.shape,
        chunks=(10, 30),
        dtype="u2",
        serializer={"name": "b2store.b2nd", "configuration": {"filters": filters[:1]}},
        compressors=None,
    )
    z[...] = data
    meta_path = tmp_path / "old.zarr" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["codecs"][0]["configuration"]["filters"] = filters
    meta_path.write_text(json.dumps(meta))
    got = zarr.open_array(str(tmp_path / "old.zarr"), mode="r")[...]
    assert np.abs(got.astype(int) - data.astype(int)).max() <= 3  # the first filter's bound


def test_one_truncation_filter_keeps_abs_and_rel_bounds_for_mixed_datasets() -> None:
    codec = numcodecs.get_codec(
        {
            "id": "b2store_b2nd",
            "filters": [{"id": "itrunc", "max_abs_error": 7, "max_rel_error": 1e-3}, "shuffle"],
        }
    )
    ints = (np.arange(4000, dtype="u2") * 37).reshape(40, 100)
    got = np.asarray(codec.decode(codec.encode(ints)))
    assert np.abs(got.astype(int) - ints.astype(int)).max() <= 7
    floats = np.linspace(1, 1000, 4000, dtype="f4").reshape(40, 100)
    gotf = np.asarray(codec.decode(codec.encode(floats)))
    assert (np.abs(gotf - floats) / floats).max() <= 1e-3


@pytest.mark.parametrize(
    "filters",
    [
        ["shuffle", "bitshuffle", "delta"],
        ["delta", "shuffle", "bytedelta"],
        ["shuffle", "shuffle", "shuffle"],
        ["bitshuffle", "bytedelta", "delta", "shuffle"],
    ],
)
def test_three_blosc2_filters_are_refused_before_they_corrupt_anything(
    filters: list[str], tmp_path: Path
) -> None:
    """C-Blosc2 3.3 (python-blosc2 4.x) compresses pipelines of 3 or more filters wrongly and
    writes the third filter's output over the array being compressed: encoding with
    ``["delta", "shuffle", "bytedelta"]`` gave errors up to 63,893 on uint16 data and changed
    the caller's array. Encoding refuses them; a Zarr v3 array warns at creation and refuses
    writes. It still opens and reads (zarr validates codecs on every open: refusing there
    made arrays written before this check, or by others, unreadable)."""
    import json

    import zarr

    data = np.random.default_rng(3).integers(0, 60000, (64, 64), dtype="u2")
    before = data.copy()
    codec = numcodecs.get_codec({"id": "b2store_b2nd", "filters": filters})
    with pytest.raises(CodecError, match=r"b2store_b2nd: filters: Expected at most 2 filters"):
        codec.encode(data)
    np.testing.assert_array_equal(data, before)
    with pytest.warns(RuntimeWarning, match="at most 2 filters.*writing to it raises"):
        z = zarr.create_array(
            str(tmp_path / "a.zarr"),
            shape=data.shape,
            chunks=(32, 64),
            dtype="u2",
            serializer={"name": "b2store.b2nd", "configuration": {"filters": filters}},
            compressors=None,
        )
    with pytest.raises(CodecError, match="at most 2 filters"):
        z[...] = data
    np.testing.assert_array_equal(data, before)
    # an array written with a good pipeline whose config names the refused one (as written by
    # an older b2store) opens and reads
    z = zarr.create_array(
        str(tmp_path / "old.zarr"),
        shape=data.shape,
        chunks=(32, 64),
        dtype="u2",
        serializer={"name": "b2store.b2nd", "configuration": {"filters": ["shuffle"]}},
        compressors=None,
    )
    z[...] = data
    meta_path = tmp_path / "old.zarr" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["codecs"][0]["configuration"]["filters"] = [{"id": f} for f in filters]
    meta_path.write_text(json.dumps(meta))
    with pytest.warns(RuntimeWarning, match="Reading this array works"):
        got = zarr.open_array(str(tmp_path / "old.zarr"), mode="r")[...]
    np.testing.assert_array_equal(got, data)


@pytest.mark.parametrize("dtype", ["u2", "i4", "f4", "f8"])
def test_truncation_with_two_more_filters_runs_in_numpy(dtype: str) -> None:
    """``itrunc + shuffle + bytedelta`` would be 3 Blosc2 filters (see the test above): the
    truncation runs in numpy instead, with the same bound and values, and the caller's array
    is left as it was (Blosc2 truncated it in place)."""
    from b2store.codecs.itrunc import plan_truncation, truncate

    rng = np.random.default_rng(4)
    data = (rng.standard_normal((48, 40)) * 1000).astype(dtype)
    if data.dtype.kind == "u":
        data = rng.integers(0, 60000, (48, 40)).astype(dtype)
    before = data.copy()
    spec = {"id": "itrunc", "bits": 3}
    codec = numcodecs.get_codec({"id": "b2store_b2nd", "filters": [spec, "shuffle", "bytedelta"]})
    got = np.frombuffer(codec.decode(codec.encode(data)), dtype).reshape(data.shape)
    np.testing.assert_array_equal(data, before)
    np.testing.assert_array_equal(got, truncate(before, plan_truncation(data.dtype, bits=3)))
    # the same values as Blosc2's own INT_TRUNC/TRUNC_PREC with one other filter
    two = numcodecs.get_codec({"id": "b2store_b2nd", "filters": [spec, "shuffle"]})
    np.testing.assert_array_equal(
        got, np.frombuffer(two.decode(two.encode(data)), dtype).reshape(data.shape)
    )


@pytest.mark.parametrize("dtype", ["u2", "f8"])
def test_two_delta_filters_decode_on_one_thread(dtype: str, tmp_path: Path) -> None:
    """C-Blosc2 3.3 decodes chunks whose pipeline holds DELTA twice wrongly on 2 or more
    threads (python-blosc2 itself, which reads on every core by default, too). b2store read
    such chunks wrongly whenever it used threads: ``nthreads=2``, or a lone large read through
    Zarr v3 (max error 2105 on this uint16 image), silently. They now decode on one thread."""
    import os

    import zarr

    x = np.cumsum(np.random.default_rng(11).integers(0, 5, (512, 1024)), axis=1).astype(dtype)
    delta = blosc2.Filter.DELTA
    cparams = {"filters": [delta, delta], "filters_meta": [0, 0], "nthreads": 1}
    arr = blosc2.asarray(x, chunks=x.shape, blocks=(16, 1024), cparams=cparams)
    frame = bytes(arr.to_cframe())
    one = blosc2.ndarray_from_cframe(frame)
    one.schunk.dparams = blosc2.DParams(nthreads=1)
    np.testing.assert_array_equal(one[...], x)  # right on one thread (on two it is not)
    np.testing.assert_array_equal(decode_b2nd(frame, nthreads=2), x)
    chunk = bytes(arr.schunk.get_chunk(0))
    got = decode_b2nd(chunk, dtype=dtype, chunkshape=x.shape, blocks=(16, 1024), nthreads=2)
    np.testing.assert_array_equal(got, x)
    codec = numcodecs.get_codec({"id": "b2store_b2nd", "nthreads": 2})
    np.testing.assert_array_equal(np.asarray(codec.decode(frame)), x)
    path = tmp_path / "dd.zarr"
    zarr.create_array(
        str(path),
        shape=x.shape,
        chunks=x.shape,
        dtype=dtype,
        serializer={"name": "b2store.b2nd", "configuration": {"blocks": [16, 1024]}},
        compressors=None,
    )
    os.makedirs(path / "c" / "0")
    (path / "c" / "0" / "0").write_bytes(frame)
    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], x)


@pytest.mark.parametrize(
    ("filters", "match"),
    [
        (["delta", "delta"], "at most one delta filter"),
        (["shuffle", "delta"], r"Expected delta before .*put delta first"),
        (["bitshuffle", "delta"], r"Expected delta before .*put delta first"),
        (["bytedelta", "delta"], r"Expected delta before .*put delta first"),
    ],
)
def test_delta_pipelines_blosc2_misreads_are_refused_when_encoding(
    tmp_path: Path, filters: list[str], match: str
) -> None:
    """python-blosc2 reads chunks of two deltas (see the test above) or of a delta after
    another filter wrongly now and then on its default threads (3-30 in 100 reads of a
    compressible chunk; delta first: none): encoding refuses them; a v3 array warns at
    creation (it still reads) and refuses writes."""
    import zarr

    x = np.cumsum(np.arange(4096, dtype="i4").reshape(64, 64) % 7, axis=1, dtype="i4")
    with pytest.raises(CodecError, match=match):
        numcodecs.get_codec({"id": "b2store_b2nd", "filters": filters}).encode(x)
    with pytest.warns(RuntimeWarning, match=match):
        z = zarr.create_array(
            str(tmp_path / "a.zarr"),
            shape=x.shape,
            chunks=x.shape,
            dtype="i4",
            serializer={"name": "b2store.b2nd", "configuration": {"filters": filters}},
            compressors=None,
        )
    with pytest.raises(CodecError, match=match):
        z[...] = x


@pytest.mark.parametrize("other", ["shuffle", "bitshuffle", "bytedelta"])
def test_delta_first_encodes(other: str) -> None:
    x = np.cumsum(np.arange(4096, dtype="i4").reshape(64, 64) % 7, axis=1, dtype="i4")
    good = numcodecs.get_codec({"id": "b2store_b2nd", "filters": ["delta", other]})
    np.testing.assert_array_equal(np.asarray(good.decode(good.encode(x))).reshape(x.shape), x)


def test_encode_refuses_what_it_cannot_do() -> None:
    with pytest.raises(CodecError, match="b2store_b2nd"):
        B2nd(blocks=[4]).encode(np.zeros((4, 4), "u2"))
    empty = B2nd().encode(np.zeros((0, 4), "u2"))  # encodes since session 17, as numcodecs'
    assert np.asarray(B2nd().decode(empty)).size == 0  # compressors do
    with pytest.raises(CodecError, match="not Python objects"):
        B2nd().encode(np.array(["a", None], dtype=object))
    with pytest.raises(CodecError, match="float16/32/64"):
        B2nd(filters=[{"id": "itrunc", "max_rel_error": 0.01}]).encode(np.ones(8, "c8"))


@pytest.mark.parametrize(
    "dtype", ["S7", "<U5", "S300", "V13", [("a", "<i2"), ("b", "S3")], [("a", ">i2"), ("b", "<f4")]]
)
@pytest.mark.parametrize("blocks", [None, [2, 3]])
def test_fixed_size_bytes_strings_and_records_round_trip(dtype: Any, blocks: Any) -> None:
    """Refused as "not numeric" before, although Blosc2 stores any fixed item size (items of
    more than 255 bytes included) and the decoder already read such frames."""
    dt = np.dtype(dtype)
    raw = np.random.default_rng(5).integers(0, 256, 7 * 9 * dt.itemsize).astype("u1")
    arr = np.frombuffer(raw.tobytes(), dt).reshape(7, 9)
    if dt.kind == "U":
        arr = np.array([f"é{i}" for i in range(63)], dt).reshape(7, 9)
    enc = B2nd(blocks=blocks).encode(arr)
    assert B2nd().decode(enc).tobytes() == arr.tobytes()
    assert blosc2.ndarray_from_cframe(enc)[...].tobytes() == arr.tobytes()
    out = np.empty_like(arr)
    B2nd().decode(enc, out=out)
    assert out.tobytes() == arr.tobytes()


@pytest.mark.parametrize(
    ("config", "known"),
    [
        ({"id": "b2store_b2nd", "clevl": 3}, "'blocks', 'chunkshape', 'clevel'"),
        ({"id": "b2store_itrunc", "bits": 1, "max_error": 3}, "'bits', 'keep', 'max_abs_error'"),
        ({"id": "b2store_hdf5", "filters": [], "dtpye": "u2"}, "'chunkshape', 'dtype'"),
        pytest.param(
            {"id": "b2store_grok", "quality": 3}, "'nthreads', 'psnr', 'ratio'",
            marks=common.requires_blosc2_j2k,
        ),
    ],
)  # fmt: skip
def test_unknown_config_keys_are_named(config: dict[str, Any], known: str) -> None:
    """A misspelt key was a bare ``__init__() got an unexpected keyword argument``."""
    bad = sorted(set(config) - {"id", "bits", "filters"})
    with pytest.raises(TypeError, match=config["id"]) as info:
        numcodecs.get_codec(dict(config))
    assert f"Expected keys among [{known}" in str(info.value)
    assert f"Got unknown key(s) {bad} instead" in str(info.value)
    # from_config drops the id and takes the same path
    with pytest.raises(TypeError, match="unknown key"):
        numcodecs.registry.codec_registry[config["id"]].from_config(dict(config))


def test_golden_fixtures() -> None:
    assert check_backwards_compatibility("b2store_b2nd") >= 30


# --------------------------------------------------------------------- foreign forms


@requires_hdf5plugin
def test_hdf5plugin_chunks_decode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import h5py
    import hdf5plugin

    data = {
        "img": make("u2", (50, 70)),
        "f": make("f4", (9, 11, 13)),
        "line": make("i8", (1000,)),
        "zero": np.zeros((40, 40), "f8"),
    }
    chunks = {"img": (20, 30), "f": (4, 5, 6), "line": (300,), "zero": (16, 16)}
    path = tmp_path / "p.h5"
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            f.create_dataset(k, data=v, chunks=chunks[k], **hdf5plugin.Blosc2(cname="lz4"))
    with h5py.File(path) as f:
        for k, v in data.items():
            ds = f[k]
            starts = [range(0, s, c) for s, c in zip(v.shape, ds.chunks, strict=True)]
            for idx in itertools.product(*starts):
                raw = ds.id.read_direct_chunk(idx)[1]
                assert bf.is_frame(raw)
                out = decode_b2nd(raw, dtype=v.dtype)
                sel = tuple(slice(i, i + c) for i, c in zip(idx, ds.chunks, strict=False))
                ref = v[sel]
                assert out.shape == ds.chunks  # full-size frames even at the edges
                np.testing.assert_array_equal(out[tuple(slice(0, n) for n in ref.shape)], ref)
                generic = B2nd().decode(raw)  # numcodecs path: '|V<n>', caller views
                np.testing.assert_array_equal(
                    np.asarray(generic).view(v.dtype).reshape(out.shape), out
                )
        assert bf.frame_special(f["zero"].id.read_direct_chunk((0, 0))[1]) == bf.SPECIAL_ZERO


@requires_hdf5plugin
def test_our_chunks_read_by_hdf5plugin(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import h5py
    import hdf5plugin

    arr = make("i2", (40, 50))
    path = tmp_path / "w.h5"
    codec = B2nd(filters=[{"id": "itrunc", "max_abs_error": 0}, "bitshuffle"], blocks=[8, 25])
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(
            "x", shape=arr.shape, dtype=arr.dtype, chunks=(20, 25), **hdf5plugin.Blosc2()
        )
        for i, j in itertools.product(range(0, 40, 20), range(0, 50, 25)):
            ds.id.write_direct_chunk((i, j), codec.encode(arr[i : i + 20, j : j + 25]))
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["x"][...], arr)


@pytest.mark.parametrize(
    ("shape", "chunks", "blocks"),
    [
        ((50, 70), (20, 30), (8, 16)),
        ((9, 10, 11), (4, 5, 6), (2, 5, 6)),
        ((9, 10, 11), (4, 5, 6), (3, 2, 4)),
        ((1000,), (300,), (64,)),
    ],
)
def test_bare_chunks_in_block_order(shape, chunks, blocks) -> None:  # type: ignore[no-untyped-def]
    arr = make("f8", shape)
    nd = blosc2.asarray(arr, chunks=chunks, blocks=blocks)
    grid = [range(-(-s // c)) for s, c in zip(shape, chunks, strict=False)]
    for n, pos in enumerate(itertools.product(*grid)):
        chunk = bytes(nd.schunk.get_chunk(n))
        out = decode_b2nd(chunk, dtype="f8", chunkshape=chunks, blocks=blocks)
        sel = tuple(slice(p * c, (p + 1) * c) for p, c in zip(pos, chunks, strict=False))
        ref = arr[sel]
        np.testing.assert_array_equal(out[tuple(slice(0, r) for r in ref.shape)], ref)
        viaconfig = B2nd(chunkshape=list(chunks), blocks=list(blocks)).decode(chunk)
        np.testing.assert_array_equal(np.asarray(viaconfig).view("f8"), out)
    with pytest.raises(CodecError, match="b2store_b2nd"):  # wrong block shape
        decode_b2nd(
            bytes(nd.schunk.get_chunk(0)), dtype="f8", chunkshape=chunks, blocks=(1,) * len(chunks)
        )


@pytest.mark.parametrize(
    ("chunks", "blocks", "dtype"),
    [((4, 4), (2, 2), "u2"), ((64, 64), (16, 16), "u2"), ((6, 6), (4, 4), "u2"),
     ((3, 10, 12), (1, 4, 4), "f4"), ((6,), (4,), "u4")],
)  # fmt: skip
def test_bare_chunk_of_one_block_decodes_in_c_order_whatever_blocks_says(
    chunks: tuple[int, ...], blocks: tuple[int, ...], dtype: str
) -> None:
    """``blosc2.compress2`` of a C-ordered chunk (one block covering the chunk) was reordered by
    the configured ``blocks`` and came back scrambled (``[[0, 1, 4, 5], [2, 3, 6, 7], ...]``)."""
    x = np.arange(np.prod(chunks)).astype(dtype).reshape(chunks)
    chunk = blosc2.compress2(x, typesize=x.itemsize, blocksize=x.nbytes)
    got = decode_b2nd(chunk, dtype=dtype, chunkshape=chunks, blocks=blocks)
    np.testing.assert_array_equal(got, x)
    codec = numcodecs.get_codec(
        {"id": "b2store_b2nd", "chunkshape": list(chunks), "blocks": list(blocks)}
    )
    np.testing.assert_array_equal(codec.decode(chunk).view(dtype).reshape(chunks), x)


def test_bare_chunk_split_into_blocks_is_still_reordered() -> None:
    x = np.arange(64 * 64, dtype="u2").reshape(64, 64)
    nd = blosc2.asarray(x, chunks=(64, 64), blocks=(16, 16))
    chunk = bytes(nd.schunk.get_chunk(0))
    got = decode_b2nd(chunk, dtype="u2", chunkshape=(64, 64), blocks=(16, 16))
    np.testing.assert_array_equal(got, x)


_NDIM_CPARAMS = {
    "zfp_acc": {
        "codec": blosc2.Codec.ZFP_ACC,
        "codec_meta": 3,
        "filters": [blosc2.Filter.NOFILTER],
    },
    "zfp_prec": {
        "codec": blosc2.Codec.ZFP_PREC,
        "codec_meta": 20,
        "filters": [blosc2.Filter.NOFILTER],
    },
    "zfp_rate": {
        "codec": blosc2.Codec.ZFP_RATE,
        "codec_meta": 50,
        "filters": [blosc2.Filter.NOFILTER],
    },
    "ndcell": {"filters": [blosc2.Filter.NDCELL], "filters_meta": [4]},
    "ndmean": {"filters": [blosc2.Filter.NDMEAN], "filters_meta": [4]},
}


@pytest.mark.parametrize("kind", sorted(_NDIM_CPARAMS))
@pytest.mark.parametrize("chunks", [(40, 50), (16, 32)])
def test_ndim_codecs_and_filters_decode_like_blosc2(kind: str, chunks: tuple[int, int]) -> None:
    """ZFP (Blosc2 codecs 33-35) and the NDCELL/NDMEAN filters read the array's b2nd metadata
    when decompressing: ``decompress2`` alone fails on them, and b2store called valid ZFP
    arrays "corrupt Blosc2 chunk". Frames and bare chunks with known shapes now decode inside
    an NDArray; a bare chunk without them is a clear NeedsArrayContext (a ValueError)."""
    from b2store.codecs.b2nd import NeedsArrayContext

    data = (np.random.default_rng(5).standard_normal((40, 50)) * 100).astype("f8")
    arr = blosc2.asarray(data, chunks=chunks, blocks=(8, 8), cparams=_NDIM_CPARAMS[kind])
    want = arr[...]  # ZFP is lossy: the reference is python-blosc2's own decoding
    got = decode_b2nd(arr.to_cframe(), dtype="f8")
    np.testing.assert_array_equal(got, want)
    bare = arr.schunk.get_chunk(0)
    first = decode_b2nd(bare, dtype="f8", chunkshape=chunks, blocks=(8, 8))
    np.testing.assert_array_equal(first[: chunks[0], : chunks[1]], want[: chunks[0], : chunks[1]])
    if bf.chunk_header(bare).memcpyed:
        return  # stored uncompressed, filters not applied: decodes without the shapes
    with pytest.raises(NeedsArrayContext, match="chunk and block shapes") as info:
        decode_b2nd(bare, dtype="f8")
    assert isinstance(info.value, ValueError)


def test_ndim_codec_frame_whose_shape_outgrows_its_chunk_is_refused_before_decoding() -> None:
    """A 301-byte one-chunk ZFP frame whose b2nd shape said 10**8 items (its chunk holds 10)
    reached python-blosc2's NDArray, which allocated the 400 MB output before failing with
    'corrupt Blosc2 chunk (Error while getting the buffer)'. Such chunks are now decoded one by
    one inside an NDArray built from the checked shapes, never from the frame itself."""
    arr = blosc2.asarray(
        np.arange(10, dtype="f4"), chunks=(10,), blocks=(4,), cparams=_NDIM_CPARAMS["zfp_rate"]
    )
    frame = bytearray(arr.to_cframe())
    pos = frame.find((10).to_bytes(8, "big"))  # the shape, an int64 in the b2nd metalayer
    frame[pos : pos + 8] = (10**8).to_bytes(8, "big")
    with pytest.raises(CodecError, match=r"corrupt b2nd frame: one chunk \[10\] for shape"):
        decode_b2nd(bytes(frame))


def test_ndim_codec_chunks_mixed_with_special_chunks_in_one_frame() -> None:
    """ZFP chunks next to all-zero (special) chunks and short edge chunks in one frame."""
    data = np.zeros((45, 30), dtype="f4")
    data[20:] = np.random.default_rng(8).standard_normal((25, 30))
    arr = blosc2.asarray(data, chunks=(20, 16), blocks=(8, 8), cparams=_NDIM_CPARAMS["zfp_prec"])
    kinds = {bf.chunk_header(arr.schunk.get_chunk(i)).special for i in range(arr.schunk.nchunks)}
    assert kinds == {bf.SPECIAL_NONE, bf.SPECIAL_ZERO}
    np.testing.assert_array_equal(decode_b2nd(arr.to_cframe()), arr[...])
    np.testing.assert_array_equal(decode_b2nd(arr.to_cframe(), dtype="f4"), arr[...])


@pytest.mark.parametrize(("stored", "asked"), [("f8", "f4"), ("f4", "f8"), ("f4", "u2")])
def test_ndim_codec_bare_chunk_read_with_another_item_size_is_refused(
    stored: str, asked: str
) -> None:
    """ZFP decodes by item size (4 = float32, 8 = float64): a bare float64 ZFP chunk read as
    float32 with a chunk shape of the same byte count returned other numbers, silently (for
    other codecs the decoded bytes are the same whatever the dtype)."""
    arr = blosc2.asarray(
        np.random.default_rng(9).standard_normal((32, 32)).astype(stored),
        chunks=(32, 32),
        blocks=(8, 8),
        cparams=_NDIM_CPARAMS["zfp_rate"],
    )
    ratio = np.dtype(stored).itemsize / np.dtype(asked).itemsize
    shape, blocks = (32, int(32 * ratio)), (8, int(8 * ratio))
    with pytest.raises(CodecError, match=r"items are \d bytes, not the \d of"):
        decode_b2nd(arr.schunk.get_chunk(0), dtype=asked, chunkshape=shape, blocks=blocks)


@requires_hdf5plugin
def test_plain_frame_of_items_over_255_bytes_decodes(tmp_path: Path) -> None:
    """hdf5plugin stores 1-D chunks as plain Blosc2 frames; items over Blosc2's 255-byte
    typesize are recorded with typesize 1 there, and such frames were refused ('frame
    typesize 1 does not match itemsize 300'), so b2h5 could not read a 1-D S300 dataset."""
    import h5py
    import hdf5plugin

    data = np.array([bytes([65 + i % 26]) * (100 + i) for i in range(50)], dtype="S300")
    path = tmp_path / "s300.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("a", data=data, chunks=(20,), **hdf5plugin.Blosc2(cname="zstd"))
    with h5py.File(path) as f:
        raw = f["a"].id.read_direct_chunk((20,))[1]
        np.testing.assert_array_equal(f["a"][...], data)
    info = bf.parse_frame(raw)
    assert info.b2nd is None and info.typesize == 1
    np.testing.assert_array_equal(decode_b2nd(raw, dtype="S300"), data[20:40])
    with pytest.raises(CodecError, match="typesize 1 does not match itemsize 4"):
        decode_b2nd(raw, dtype="S4")  # only items Blosc2 cannot record are taken on trust


@pytest.mark.parametrize(
    ("dtype", "shape", "blocks"),
    [
        ([("a", "u1"), ("b", "<f4")], (10,), (3,)),  # 5-byte items: 60 bytes read as 10 x V6
        ("c16", (10,), (3,)),
        ("S3", (7, 9), (2, 9)),
    ],
)
def test_bare_padded_chunk_decoded_without_dtype_keeps_the_item_size(
    dtype: Any, shape: tuple[int, ...], blocks: tuple[int, ...]
) -> None:
    """``B2nd(chunkshape=...)`` without ``blocks`` guessed the item size as the chunk's byte
    count over the item count, which is wrong for padded chunks: a (10,) chunk of 5-byte items
    in blocks of 3 holds 60 bytes and came back as 10 items of 6 bytes (garbage, no error).
    The chunk header's typesize is used when the byte count agrees with it."""
    dt = np.dtype(dtype)
    raw = np.random.default_rng(10).integers(0, 255, math.prod(shape) * dt.itemsize, "u1")
    data = np.frombuffer(raw.tobytes(), dt).reshape(shape)
    arr = blosc2.asarray(data, chunks=shape, blocks=blocks)
    got = B2nd(chunkshape=list(shape)).decode(bytes(arr.schunk.get_chunk(0)))
    assert got.dtype.itemsize == dt.itemsize and got.shape == shape
    assert got.tobytes() == data.tobytes()


def test_bare_multi_block_chunk_of_wide_items_counted_in_bytes() -> None:
    """An SChunk chunk of typesize 8 in several blocks, given ``chunkshape`` in bytes (a
    ``.b2frame`` served as uint8, as hdf5plugin's ``cyclic.cat`` on cat2-server): the item size
    guess took the typesize and expected 8x the bytes ("decompresses to 384000 bytes, expected
    3072000"); the chunk's own items must fit its bytes, so it decodes as bytes."""
    data = np.arange(48_000, dtype="<f8")
    schunk = blosc2.SChunk(
        chunksize=data.nbytes, data=data, cparams={"typesize": 8, "blocksize": 48_000}
    )
    raw = bytes(schunk.get_chunk(0))
    assert bf.chunk_header(raw, what="test").nblocks > 1
    got = B2nd(chunkshape=[data.nbytes]).decode(raw)
    assert got.nbytes == data.nbytes and got.tobytes() == data.tobytes()


def test_ndim_codec_chunks_read_through_zarr_v3_partial_reads(tmp_path: Path) -> None:
    """A partial read of a ZFP chunk decodes the whole chunk (its blocks cannot be
    decompressed one by one), through the b2store.b2nd Zarr v3 codec."""
    import zarr

    data = (np.random.default_rng(6).standard_normal((64, 64)) * 10).astype("f4")
    z = zarr.create_array(
        str(tmp_path / "z.zarr"),
        shape=data.shape,
        chunks=(32, 64),
        dtype="f4",
        serializer={"name": "b2store.b2nd", "configuration": {"blocks": [8, 16]}},
        compressors=None,
    )
    want = np.empty_like(data)
    for i in range(2):
        part = blosc2.asarray(
            data[32 * i : 32 * (i + 1)],
            chunks=(32, 64),
            blocks=(8, 16),
            cparams=_NDIM_CPARAMS["zfp_rate"],
        )
        want[32 * i : 32 * (i + 1)] = part[...]
        (tmp_path / "z.zarr" / "c" / str(i)).mkdir(parents=True, exist_ok=True)
        (tmp_path / "z.zarr" / "c" / str(i) / "0").write_bytes(part.to_cframe())
    z = zarr.open_array(str(tmp_path / "z.zarr"), mode="r")
    np.testing.assert_array_equal(z[...], want)
    np.testing.assert_array_equal(z[5:9, 3:20], want[5:9, 3:20])
    np.testing.assert_array_equal(z[:, 7], want[:, 7])


@pytest.mark.parametrize("dtype", ["S300", "V256", "f8,(40,)f8", "u1,(40,)f8"])
@pytest.mark.parametrize(("chunks", "blocks"), [((5, 6), (2, 3)), ((3, 4), (2, 2))])
def test_items_over_255_bytes_decode(
    dtype: str, chunks: tuple[int, int], blocks: tuple[int, int]
) -> None:
    """Blosc2 records items over its 255-byte typesize with typesize 1 (python-blosc2 and
    hdf5plugin both do): such b2nd frames were refused as "inconsistent b2nd frame"."""
    dt = np.dtype(dtype)
    raw = np.random.default_rng(7).integers(0, 255, dt.itemsize * 30, dtype=np.uint8)
    data = np.frombuffer(raw.tobytes(), dt).reshape(5, 6)
    frame = blosc2.asarray(data, chunks=chunks, blocks=blocks).to_cframe()
    assert decode_b2nd(frame).tobytes() == data.tobytes()
    got = decode_b2nd(frame, dtype=dt)
    assert got.dtype == dt and got.shape == data.shape
    assert got.tobytes() == data.tobytes()


def test_hdf5plugin_chunk_of_300_byte_strings_decodes(tmp_path: Path) -> None:
    """hdf5plugin writes a Blosc2 chunk of S300 items it cannot read back itself (its filter
    fails); the bytes are a valid b2nd frame with typesize 1, which b2store decodes."""
    import h5py
    import hdf5plugin

    data = np.array([b"%03d" % i * 100 for i in range(40)], "S300").reshape(8, 5)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("s", data=data, chunks=(4, 5), **hdf5plugin.Blosc2())
    with h5py.File(tmp_path / "s.h5") as f:
        _mask, chunk = f["s"].id.read_direct_chunk((4, 0))
    np.testing.assert_array_equal(decode_b2nd(chunk, dtype="S300"), data[4:])


def test_special_chunks_and_frames() -> None:
    z = bytes(blosc2.zeros((30, 40), dtype="u2", chunks=(30, 40), blocks=(10, 10)).to_cframe())
    assert bf.frame_special(z) == bf.SPECIAL_ZERO
    np.testing.assert_array_equal(decode_b2nd(z), np.zeros((30, 40), "u2"))
    v = bytes(blosc2.full((30, 40), 7, dtype="i4", chunks=(30, 40), blocks=(10, 10)).to_cframe())
    assert bf.frame_special(v) == bf.SPECIAL_VALUE
    np.testing.assert_array_equal(decode_b2nd(v), np.full((30, 40), 7, "i4"))
    nan = blosc2.full((8, 8), np.nan, dtype="f4", chunks=(8, 8), blocks=(4, 4)).to_cframe()
    assert np.isnan(decode_b2nd(nan)).all()
    frame = bytes(blosc2.full((20,), 9, dtype="i8", chunks=(20,), blocks=(5,)).to_cframe())
    bare, _ = bf.frame_chunk(frame, bf.parse_frame(frame))  # get_chunk() fails on these
    assert bare is not None
    assert bf.chunk_header(bare).special == bf.SPECIAL_VALUE
    np.testing.assert_array_equal(decode_b2nd(bare, dtype="i8", chunkshape=(20,), blocks=(5,)), 9)
    zeros_in_blocks = np.zeros((64, 64), "u2")
    zeros_in_blocks[40:, 40:] = 5
    enc = B2nd(blocks=[16, 16]).encode(zeros_in_blocks)
    np.testing.assert_array_equal(B2nd().decode(enc), zeros_in_blocks)
    assert bf.frame_special(enc) == bf.SPECIAL_NONE


@pytest.mark.parametrize(
    ("shape", "chunks", "blocks", "dtype"),
    [((100,), (50,), (10,), "i8"), ((10, 13), (4, 5), (2, 3), "u2"),
     ((7, 9, 11), (3, 4, 11), (1, 4, 11), "f4"), ((0, 5), (2, 5), (1, 5), "u1")],
)  # fmt: skip
def test_multichunk_frames_decode_every_chunk_into_place(
    shape: tuple[int, ...], chunks: tuple[int, ...], blocks: tuple[int, ...], dtype: str
) -> None:
    """A frame of several chunks (a whole python-blosc2 array; an HDF5 chunk a writer stored
    that way, which hdf5plugin reads) decodes like ``blosc2.ndarray_from_cframe(...)[...]``,
    edge chunks and all-zero chunks included; it used to be refused."""
    x = (np.arange(np.prod(shape)) % 251).astype(dtype).reshape(shape)
    if x.size:
        x[: chunks[0]] = 0  # an all-zero first row of chunks: special chunks in the frame
    frame = bytes(blosc2.asarray(x, chunks=chunks, blocks=blocks).to_cframe())
    info = bf.parse_frame(frame)
    assert info.nchunks == int(np.prod([-(-s // c) for s, c in zip(shape, chunks, strict=True)]))
    np.testing.assert_array_equal(decode_b2nd(frame, dtype=dtype), x)
    np.testing.assert_array_equal(blosc2.ndarray_from_cframe(frame)[...], x)
    assert bf.frame_special(frame) == bf.SPECIAL_NONE or info.nchunks == 1


def test_plain_multichunk_frames_decode_flat() -> None:
    x = np.arange(1000, dtype="f8")
    sc = blosc2.SChunk(chunksize=240 * 8, data=x, cparams={"typesize": 8})  # short last chunk
    frame = bytes(sc.to_cframe())
    assert bf.parse_frame(frame).nchunks == 5
    np.testing.assert_array_equal(decode_b2nd(frame, dtype="f8"), x)


def test_multichunk_frame_with_lying_sizes_is_refused_before_allocating() -> None:
    """A 300-byte frame whose header claims 2**32 one-byte chunks raised MemoryError (it built a
    list of 2**32 sizes); and the offsets index is read once, not once per chunk (a frame of
    16,000 chunks took 55 s)."""
    x = np.arange(100, dtype="u1")
    frame = bytearray(blosc2.SChunk(chunksize=100, data=x, cparams={"typesize": 1}).to_cframe())
    fields = list(bf._FRAME_FIELDS.unpack_from(bytes(frame[:100]), 29))
    fields[1], fields[9] = 2**32, 1  # nbytes, chunksize
    bf._FRAME_FIELDS.pack_into(frame, 29, *fields)
    with pytest.raises(CodecError, match="corrupt, or larger than one Zarr/HDF5 chunk"):
        decode_b2nd(bytes(frame), dtype="u1")
    many = bytes(blosc2.asarray(np.arange(5000, dtype="u2"), chunks=(1,), blocks=(1,)).to_cframe())
    np.testing.assert_array_equal(decode_b2nd(many, dtype="u2"), np.arange(5000, dtype="u2"))


def test_corrupt_multichunk_frames_are_refused() -> None:
    x = np.arange(100, dtype="i4")
    frame = bytearray(blosc2.asarray(x, chunks=(50,), blocks=(10,)).to_cframe())
    info = bf.parse_frame(bytes(frame))
    frame[info.header_size + 20 : info.header_size + 40] = bytes(20)  # damage the first chunk
    with pytest.raises(CodecError):
        decode_b2nd(bytes(frame), dtype="i4")
    with pytest.raises(CodecError):
        decode_b2nd(bytes(frame[: len(frame) // 2]), dtype="i4")  # truncated
    # a frame of 0 chunks and 0 bytes whose b2nd shape says 1000 items: was uninitialised memory
    empty = bytearray(blosc2.zeros((0,), dtype="f4", chunks=(4,), blocks=(4,)).to_cframe())
    at = bytes(empty).find(b"\xd3" + bytes(8), 80)  # the msgpack int64 shape entry
    empty[at + 1 : at + 9] = (1000).to_bytes(8, "big")
    with pytest.raises(CodecError, match="0 chunks"):
        decode_b2nd(bytes(empty))


def test_dtype_mismatch_is_loud() -> None:
    enc = B2nd().encode(np.arange(10, dtype="u2"))
    with pytest.raises(CodecError, match="typesize 2"):
        decode_b2nd(enc, dtype="f4")
    with pytest.raises(CodecError, match="needs the dtype"):
        decode_b2nd(bytes(blosc2.compress2(b"x" * 100)))


def test_reorder_matches_blosc2() -> None:
    arr = make("u2", (9, 10, 11))
    nd = blosc2.asarray(arr, chunks=(9, 10, 11), blocks=(2, 3, 4))
    flat = blosc2.decompress2(nd.schunk.get_chunk(0))
    np.testing.assert_array_equal(reorder(flat, (9, 10, 11), (2, 3, 4), np.dtype("u2")), arr)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 12), min_size=1, max_size=4),
    dtype=st.sampled_from(DTYPES),
    data=st.data(),
)
def test_hypothesis_roundtrip(shape: list[int], dtype: str, data: st.DataObject) -> None:
    blocks = [data.draw(st.integers(1, s)) for s in shape]
    arr = make(dtype, tuple(shape))
    enc = encode_b2nd(arr, blocks=tuple(blocks), filters=[{"id": "bitshuffle"}])
    np.testing.assert_array_equal(decode_b2nd(enc, dtype=arr.dtype), arr)
    nd = blosc2.ndarray_from_cframe(enc)
    chunk = bytes(nd.schunk.get_chunk(0))
    np.testing.assert_array_equal(
        decode_b2nd(chunk, dtype=arr.dtype, chunkshape=shape, blocks=blocks), arr
    )


def test_decode_releases_the_gil_flag() -> None:
    # the process-global switch that lets decompress2 release the GIL (see module docstring)
    import b2store.codecs.b2nd  # noqa: F401

    assert blosc2.set_releasegil(True) is True  # returns the previous value


def test_plain_frames_including_a_short_last_chunk() -> None:
    for n in (200, 150):  # 150 int32 < chunksize of 800 bytes
        s = blosc2.SChunk(chunksize=800, data=np.arange(n, dtype="i4"), cparams={"typesize": 4})
        frame = bytes(s.to_cframe())
        info = bf.parse_frame(frame)
        assert info.b2nd is None and info.nchunks == 1
        np.testing.assert_array_equal(decode_b2nd(frame, dtype="i4"), np.arange(n))
        generic = B2nd().decode(frame)
        assert generic.dtype == np.dtype("V4")
        np.testing.assert_array_equal(generic.view("i4"), np.arange(n))


@pytest.mark.parametrize("dtype", ["c8", "c16", "M8[ns]", "m8[s]", "f2", ">u2", ">f8"])
def test_other_numeric_dtypes(dtype: str) -> None:
    arr = np.arange(60).astype("f8").reshape(6, 10).astype(dtype)
    check_encode_decode(arr, B2nd())
    np.testing.assert_array_equal(decode_b2nd(B2nd().encode(arr)), arr)  # dtype from the frame


def test_concurrent_decodes_are_correct() -> None:
    """decompress2 runs without the GIL: many threads at once must still give exact results."""
    from concurrent.futures import ThreadPoolExecutor

    arrays = [make("u2", (16, 64, 64)) for _ in range(24)]
    codec = B2nd(blocks=[2, 32, 64], filters=["bitshuffle"])
    frames = [codec.encode(a) for a in arrays]
    with ThreadPoolExecutor(8) as ex:
        outs = list(ex.map(lambda f: decode_b2nd(f, dtype="u2"), frames * 3))
    for i, out in enumerate(outs):
        np.testing.assert_array_equal(out, arrays[i % len(arrays)])


def test_block_ordered_decodes_never_alias_the_scratch_buffer() -> None:
    """Block-ordered chunks are decompressed into a per-thread scratch buffer and reordered:
    every result must own its memory, for frames and bare chunks alike."""
    a, b = make("u2", (8, 64, 64)), make("u2", (8, 64, 64))[::-1].copy()
    codec = B2nd(blocks=[2, 16, 32])
    first, second = decode_b2nd(codec.encode(a)), decode_b2nd(codec.encode(b))
    np.testing.assert_array_equal(first, a)
    np.testing.assert_array_equal(second, b)
    frames = [codec.encode(x) for x in (a, b)]
    bare = [bytes(bf.frame_chunk(f, bf.parse_frame(f), 0)[0]) for f in frames]
    outs = [decode_b2nd(c, dtype="u2", chunkshape=a.shape, blocks=(2, 16, 32)) for c in bare]
    np.testing.assert_array_equal(outs[0], a)
    np.testing.assert_array_equal(outs[1], b)
    assert not np.shares_memory(outs[0], outs[1])


@pytest.mark.parametrize(
    ("dtype", "shape", "blocks"),
    [("u2", (4, 64, 64), None), ("f8", (5, 9), (2, 4)), ("i1", (3, 17, 33), (2, 5, 11)),
     (">u4", (100,), (7,)), ("c8", (2, 3, 4, 5), (1, 2, 3, 5))],
)  # fmt: skip
def test_encoder_writes_what_blosc2_asarray_writes(
    dtype: str, shape: tuple[int, ...], blocks: tuple[int, ...] | None
) -> None:
    """encode_b2nd compresses with compress2 (GIL released) and frames the chunk itself: the bytes
    must stay those of blosc2.asarray(...).to_cframe(), edge blocks and padding included."""
    arr = make(dtype.lstrip("<>"), shape).astype(dtype)  # the helper makes native arrays
    for kw in ({}, {"cname": "lz4", "filters": [{"id": "bitshuffle"}]}):
        got = encode_b2nd(arr, blocks=blocks, **kw)
        blk = blocks or default_blocks(arr.shape, arr.dtype)
        codec = blosc2.Codec.LZ4 if kw else blosc2.Codec.ZSTD
        filt = blosc2.Filter.BITSHUFFLE if kw else blosc2.Filter.SHUFFLE
        cparams = blosc2.CParams(codec=codec, clevel=5, typesize=arr.dtype.itemsize, nthreads=1,
                                 filters=[filt], filters_meta=[0],
                                 splitmode=blosc2.SplitMode.AUTO_SPLIT)  # fmt: skip
        nd = blosc2.asarray(arr, chunks=arr.shape, blocks=blk, cparams=cparams)
        assert got == bytes(nd.to_cframe())
        np.testing.assert_array_equal(decode_b2nd(got, dtype=arr.dtype), arr)


def test_frame_special_reads_a_prefix_only() -> None:
    z = bytes(blosc2.zeros((300, 400), dtype="f8", chunks=(300, 400), blocks=(10, 400)).to_cframe())
    hs = bf.parse_frame(z).header_size
    assert bf.frame_special(z[: hs + 64]) == bf.SPECIAL_ZERO
    dense = B2nd().encode(make("f8", (300, 400)))
    hs = bf.parse_frame(dense).header_size
    assert bf.frame_special(dense[: hs + 64]) == bf.SPECIAL_NONE
    with pytest.raises(CodecError, match="truncated"):
        bf.frame_special(dense[: hs + 10])


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
def test_reorder_without_copy_matches_the_transpose_recipe(ndim: int) -> None:
    """The no-copy shortcut of ``reorder`` is taken only where block order really is C order."""
    from b2store.codecs._b2nd_blocks import block_order_is_c_order

    rng = np.random.default_rng(ndim)
    shortcut = 0
    for _ in range(300):
        chunks = tuple(int(x) for x in rng.integers(1, 7, ndim))
        blocks = tuple(int(rng.integers(1, c + 1)) for c in chunks)
        grid = [-(-c // b) for c, b in zip(chunks, blocks, strict=True)]
        flat = np.arange(int(np.prod(grid)) * int(np.prod(blocks)), dtype="i4")
        expected = (
            flat.reshape(*grid, *blocks)
            .transpose([x for i in range(ndim) for x in (i, ndim + i)])
            .reshape([g * b for g, b in zip(grid, blocks, strict=True)])
        )
        expected = expected[tuple(slice(0, c) for c in chunks)]
        np.testing.assert_array_equal(reorder(flat, chunks, blocks, np.dtype("i4")), expected)
        shortcut += block_order_is_c_order(chunks, blocks)
    assert shortcut > 0
    assert block_order_is_c_order((8, 512, 512), (1, 128, 512))
    assert not block_order_is_c_order((8, 512, 512), (2, 128, 512))


def test_fortran_ordered_chunks_keep_their_bytes() -> None:
    """numcodecs compressors keep a buffer's bytes as they lie: zarr v2 ``order="F"`` reads the
    decoded bytes back in F order (was: the chunk came back scrambled)."""
    import zarr

    a = np.arange(24 * 30, dtype="i4").reshape(24, 30) * 10
    f = np.asfortranarray(a)
    codec = B2nd(blocks=[8, 10])
    assert codec.decode(codec.encode(f)).tobytes() == f.tobytes(order="A")
    out = np.empty_like(f)  # F-ordered out: filled with the same bytes
    assert codec.decode(codec.encode(f), out=out) is out
    np.testing.assert_array_equal(out, a)
    z = zarr.create_array(
        zarr.storage.MemoryStore(),
        shape=a.shape,
        chunks=(10, 16),
        dtype=a.dtype,
        order="F",
        zarr_format=2,
        compressors=B2nd(),
    )
    z[...] = a
    np.testing.assert_array_equal(z[...], a)


def test_decode_into_out_is_a_byte_copy() -> None:
    arr = np.linspace(0, 1, 1000, dtype="f4")
    enc = B2nd().encode(arr)
    out = np.zeros(4000, dtype="u1")  # any dtype of the right byte size, as numcodecs does
    assert B2nd().decode(enc, out=out) is out
    assert out.tobytes() == arr.tobytes()
    buf = bytearray(4000)
    B2nd().decode(enc, out=buf)
    assert bytes(buf) == arr.tobytes()
    with pytest.raises(CodecError, match="Expected out to be a contiguous buffer of 4000 bytes"):
        B2nd().decode(enc, out=np.empty(1001, dtype="f4"))


def test_zero_d_arrays_stay_zero_d() -> None:
    frame = blosc2.asarray(np.array(7.5)).to_cframe()
    dec = B2nd().decode(frame)
    assert dec.shape == () and dec == 7.5
    enc = B2nd(blocks=[]).encode(np.array(5, dtype="u2"))
    assert B2nd().decode(enc).reshape(()) == 5


@pytest.mark.parametrize("mode", ["auto", "always", "never", "forward_compat"])
@pytest.mark.parametrize("filters", [["shuffle"], ["bitshuffle"], []])
def test_splitmode_round_trips_and_is_recorded(mode: str, filters: list[str]) -> None:
    rng = np.random.default_rng(7)
    arr = rng.poisson(300, size=(4, 64, 256)).astype("u2")
    codec = B2nd(filters=filters, splitmode=mode)
    enc = check_encode_decode(arr, codec)
    check_config(codec)
    mv = memoryview(bytes(enc))
    chunk, _ = bf.frame_chunk(mv, bf.parse_frame(mv), 0)
    assert chunk is not None
    split = not bf.chunk_header(chunk).dont_split
    expected = {"always": True, "never": False}.get(mode)
    if expected is None:  # auto / forward_compat: C-Blosc2 splits shuffled data with zstd 5
        expected = filters == ["shuffle"]
    assert split == expected


def test_splitmode_config() -> None:
    assert "splitmode" not in B2nd().get_config()  # default configs stay as older versions wrote
    assert B2nd(splitmode="ALWAYS").get_config()["splitmode"] == "always"
    assert B2nd(splitmode=blosc2.SplitMode.NEVER_SPLIT).splitmode == "never"
    assert numcodecs.get_codec({"id": "b2store_b2nd", "splitmode": "always"}).splitmode == "always"
    with pytest.raises(ValueError, match="splitmode: Expected one of"):
        B2nd(splitmode="sometimes")
    with pytest.raises(TypeError, match="splitmode: Expected a string"):
        B2nd(splitmode=1)  # type: ignore[arg-type]


def test_reorder_takes_lists_and_arrays() -> None:
    """The public helpers took lists before block_order_is_c_order was cached (an
    lru_cache made them raise "unhashable type: 'list'")."""
    arr = np.arange(9 * 10 * 11, dtype="u2").reshape(9, 10, 11)
    for blocks in ([2, 3, 4], np.array([2, 3, 4])):
        blocked = to_block_order(arr, blocks)
        back = reorder(blocked.reshape(-1), list(arr.shape), blocks, arr.dtype)
        np.testing.assert_array_equal(back, arr)


def test_codec_pickled_before_splitmode_existed_encodes() -> None:
    import pickle

    old = B2nd()
    del old.__dict__["splitmode"]  # what an instance pickled by an older version holds
    again = pickle.loads(pickle.dumps(old))
    arr = np.arange(10.0)
    np.testing.assert_array_equal(again.decode(again.encode(arr)).view(arr.dtype), arr)


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
