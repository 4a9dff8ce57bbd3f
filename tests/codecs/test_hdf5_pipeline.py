"""The b2store_hdf5 numcodecs codec and its Zarr v3 twin b2store.hdf5.

Framings are checked both ways against the real HDF5 filters: chunks HDF5 wrote decode right, and
chunks we encode, written with ``write_direct_chunk``, are read back right by h5py + hdf5plugin.
Corrupt and truncated chunks must raise CodecError, never crash or return a wrong-sized chunk.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import codec_checks as common  # tests/codecs is on sys.path (see codec_checks)
import numcodecs
import numpy as np
import pytest

from b2store.codecs import hdf5_pipeline
from b2store.codecs.hdf5_pipeline import (
    MASK_HEADER_SIZE,
    HDF5Pipeline,
    add_mask_header,
    split_mask_header,
)
from b2store.errors import CodecError

h5py = pytest.importorskip("h5py")
hdf5plugin = pytest.importorskip("hdf5plugin")
pytest.importorskip("imagecodecs")

CHUNK = (16, 24)


def filters_of(d: Any) -> list[dict[str, Any]]:
    pl = d.id.get_create_plist()
    out = []
    for i in range(pl.get_nfilters()):
        fid, _flags, cd, name = pl.get_filter(i)
        out.append({"id": fid, "name": name.decode(), "cd_values": list(cd)})
    return out


def sample(dtype: str, shape: tuple[int, ...] = CHUNK) -> np.ndarray:
    n = int(np.prod(shape))
    return ((np.arange(n) // 3) % 50).astype(dtype).reshape(shape)


FILTERS: dict[str, dict[str, Any]] = {
    "deflate_shuffle_fletcher32": {"compression": "gzip", "shuffle": True, "fletcher32": True},
    "zstd": dict(hdf5plugin.Zstd(clevel=5)),
    "bzip2": dict(hdf5plugin.BZip2()),
    "blosc": dict(hdf5plugin.Blosc(cname="zstd")),
    "lz4": dict(hdf5plugin.LZ4(nbytes=128)),
    "lz4_default": dict(hdf5plugin.LZ4()),
    "bitshuffle_lz4": dict(hdf5plugin.Bitshuffle(cname="lz4")),
    "bitshuffle_zstd": dict(hdf5plugin.Bitshuffle(cname="zstd", clevel=4)),
    "bitshuffle_none_nelems16": dict(hdf5plugin.Bitshuffle(nelems=16, cname="none")),
    "bitshuffle_lz4_nelems40": dict(hdf5plugin.Bitshuffle(nelems=40, cname="lz4")),
    "lzf": {"compression": "lzf"},
    "szip": {"compression": "szip"},
    "blosc2": dict(hdf5plugin.Blosc2(cname="lz4")),
    "shuffle_blosc2_fletcher32": {"shuffle": True, "fletcher32": True, **hdf5plugin.Blosc2()},
}


@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        (n, dt)
        for n in FILTERS
        for dt in ["<u2", ">i4", "<f4", "u1"]
        if not (n == "szip" and dt == "<f4")  # szip is for integers
    ],
)
def test_encode_is_read_by_hdf5(tmp_path: Path, name: str, dtype: str) -> None:
    """Our encoder writes what the HDF5 filter reads, and our decoder reads what it writes."""
    shape = (37, 50)
    a = sample(dtype, shape)
    with h5py.File(tmp_path / "enc.h5", "w") as f:
        d = f.create_dataset("x", shape=shape, dtype=dtype, chunks=CHUNK, **FILTERS[name])
        codec = HDF5Pipeline(filters=filters_of(d), dtype=d.dtype.str, chunkshape=CHUNK)
        for i in range(0, shape[0], CHUNK[0]):
            for j in range(0, shape[1], CHUNK[1]):
                block = np.zeros(CHUNK, d.dtype)
                part = a[i : i + CHUNK[0], j : j + CHUNK[1]]
                block[: part.shape[0], : part.shape[1]] = part
                enc = codec.encode(block)
                np.testing.assert_array_equal(codec.decode(enc), block)
                d.id.write_direct_chunk((i, j), enc)
        np.testing.assert_array_equal(d[...], a)
        # and the bytes HDF5 itself wrote for the same data decode to the same chunks
        d2 = f.create_dataset("y", data=a, chunks=CHUNK, **FILTERS[name])
        for i in (0, 32):
            mask, raw = d2.id.read_direct_chunk((i, 24))
            assert mask == 0
            got = codec.decode(raw)
            assert got.shape == CHUNK and got.dtype == d.dtype
            part = a[i : i + CHUNK[0], 24:48]
            np.testing.assert_array_equal(got[: part.shape[0]], part)


def test_blosc2_one_dimensional_plain_frame(tmp_path: Path) -> None:
    a = np.arange(1000, dtype="<i8")
    with h5py.File(tmp_path / "b2.h5", "w") as f:
        d = f.create_dataset("x", data=a, chunks=(300,), **hdf5plugin.Blosc2())
        codec = HDF5Pipeline(filters=filters_of(d), dtype="<i8", chunkshape=[300])
        _, raw = d.id.read_direct_chunk((900,))
        np.testing.assert_array_equal(codec.decode(raw)[:100], a[900:])
        enc = codec.encode(np.arange(300, dtype="<i8"))
        d.id.write_direct_chunk((0,), enc)
        np.testing.assert_array_equal(d[:300], np.arange(300))


def test_masked_encode_decode(tmp_path: Path) -> None:
    """Each mask skips its filters; HDF5 reads the same chunk written with that mask.

    One dataset per mask, each chunk written once, file reopened before reading: HDF5 2.0 reports
    stale masks until reopened and keeps the first mask when a chunk is rewritten.
    """
    a = sample("<i2")
    kw = {"shuffle": True, **hdf5plugin.LZ4()}
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        for mask in (0, 1, 2, 3):
            d = f.create_dataset(f"x{mask}", shape=CHUNK, dtype="<i2", chunks=CHUNK, **kw)
            codec = HDF5Pipeline(filters=filters_of(d), dtype="<i2", chunkshape=CHUNK, masked=True)
            enc = codec.encode_bytes(a, mask=mask)
            assert split_mask_header(enc, 2)[0] == mask
            np.testing.assert_array_equal(codec.decode(enc), a)
            d.id.write_direct_chunk((0, 0), enc[MASK_HEADER_SIZE:], filter_mask=mask)
    with h5py.File(path, "r") as f:
        for mask in (0, 1, 2, 3):
            d = f[f"x{mask}"]
            got_mask, raw = d.id.read_direct_chunk((0, 0))
            assert got_mask == mask
            np.testing.assert_array_equal(d[...], a)
            np.testing.assert_array_equal(codec.decode(add_mask_header(raw, mask)), a)
        with pytest.raises(CodecError, match="masked=True"):
            HDF5Pipeline(filters=filters_of(d)).encode_bytes(a, mask=1)


# --- config, registry, pickling ---------------------------------------------------------------


CFG = {
    "filters": [
        {"id": 2, "name": "shuffle", "cd_values": [4]},
        {"id": 32004, "name": "lz4", "cd_values": [0]},
    ],
    "dtype": "<f4",
    "chunkshape": [4, 5],
    "masked": True,
}


def test_config_roundtrip_and_registry() -> None:
    codec = numcodecs.get_codec({"id": "b2store_hdf5", **CFG})  # through the entry point
    assert isinstance(codec, HDF5Pipeline)
    assert codec.get_config() == {"id": "b2store_hdf5", **CFG}
    assert HDF5Pipeline.from_config(codec.get_config()) == codec
    assert pickle.loads(pickle.dumps(codec)) == codec
    assert repr(codec) == (
        "HDF5Pipeline(filters=[shuffle, lz4], dtype='<f4', chunkshape=[4, 5], masked=True)"
    )
    x = np.arange(20, dtype="<f4").reshape(4, 5)
    out = np.empty_like(x)
    assert codec.decode(codec.encode(x), out=out) is out
    np.testing.assert_array_equal(out, x)


def test_compound_dtype_roundtrip() -> None:
    dt = np.dtype([("a", "<i4"), ("b", "u1")])
    codec = HDF5Pipeline(
        filters=[{"id": 2, "cd_values": [5]}, {"id": 1, "cd_values": [4]}],
        dtype=dt.str,
        chunkshape=[7],
    )
    x = np.zeros(7, dt)
    x["a"], x["b"] = np.arange(7), 3
    assert codec.dtype == "|V5"
    np.testing.assert_array_equal(codec.decode(codec.encode(x)).view(dt), x)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"filters": []}, ValueError, r"inclusive range \(1, 32\)"),
        ({"filters": "deflate"}, TypeError, "list of filter dicts"),
        ({"filters": [{"name": "x"}]}, TypeError, "keys id, name, cd_values"),
        ({"filters": [{"id": 32013, "name": "zfp"}]}, CodecError, r"32013 \(zfp\)"),
        ({"filters": [{"id": 32008, "cd_values": [0, 4, 4, 0, 7]}]}, CodecError, "compressor"),
        ({"filters": [{"id": 1}], "masked": 1}, TypeError, "bool"),
        ({"filters": [{"id": 1}], "chunkshape": [-1]}, ValueError, r"range \(0, 4294967295\)"),
        ({"filters": [{"id": 1}], "dtype": "nonsense"}, ValueError, "dtype"),
    ],
)
def test_invalid_config(kwargs: dict[str, Any], exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        HDF5Pipeline(**kwargs)


F1 = [{"id": 1}]
BAD_CONFIGS = [
    ({"filters": [{"id": "abc"}]}, TypeError, r"b2store_hdf5: filters\[0\]\.id: Expected an int"),
    ({"filters": [*F1, {"id": True}]}, TypeError, r"filters\[1\]\.id: Expected an integer"),
    ({"filters": [{"id": 1, "cd_values": "x"}]}, TypeError, r"\[0\]\.cd_values: Expected a list"),
    ({"filters": [{"id": 1, "cd_values": [1.7]}]}, TypeError, r"cd_values\[0\]: .* Got 1\.7"),
    ({"filters": F1, "chunkshape": "ab"}, TypeError, r"b2store_hdf5: chunkshape: Expected a list"),
    ({"filters": F1, "chunkshape": [4.5]}, TypeError, r"chunkshape\[0\]: Expected an integer"),
    ({"filters": F1, "chunkshape": [-1]}, ValueError, r"b2store_hdf5: chunkshape\[0\]: Expect"),
    ({"filters": F1, "dtype": "O"}, ValueError, r"b2store_hdf5: dtype: .*fixed-size"),
    ({"filters": F1, "dtype": "zz"}, ValueError, r"b2store_hdf5: dtype: Expected a numpy dtype"),
    ({"filters": F1, "masked": 1}, TypeError, r"b2store_hdf5: masked: Expected a bool"),
    ({"filters": {"id": 1}}, TypeError, r"b2store_hdf5: filters: Expected a list"),
]


@pytest.mark.parametrize(("config", "exc", "match"), BAD_CONFIGS)
def test_bad_config_names_codec_and_key_in_both_twins(
    config: dict[str, Any], exc: type[Exception], match: str
) -> None:
    """Was: bare ``invalid literal for int()`` (no codec, no key), a float cd_value truncated
    (``1.7`` -> ``1``), an object dtype accepted (decoding then failed inside numpy)."""
    from b2store.codecs.hdf5_zarr3 import HDF5PipelineCodec

    with pytest.raises(exc, match=match):
        numcodecs.get_codec({"id": "b2store_hdf5", **config})
    with pytest.raises(exc, match=match):  # the Zarr v3 twin checks the same way
        HDF5PipelineCodec.from_dict({"name": "b2store.hdf5", "configuration": config})


def test_config_accepts_numpy_integers() -> None:
    codec = HDF5Pipeline(
        filters=[{"id": np.int64(1), "cd_values": np.array([4], dtype=np.uint32)}],
        dtype="<u2",
        chunkshape=(np.int64(3), 4),
    )
    assert codec.get_config()["filters"][0]["cd_values"] == [4]
    x = np.arange(12, dtype="<u2").reshape(3, 4)
    np.testing.assert_array_equal(codec.decode(codec.encode(x)), x)


@pytest.mark.parametrize(
    ("filt", "name"),
    [
        ({"id": 1, "cd_values": [99]}, "deflate"),
        ({"id": 32001, "cd_values": [2, 2, 2, 0, 5, 9, 9]}, "blosc"),
        ({"id": 32026, "cd_values": [0, 0, 0, 0, 5, 9, 9]}, "blosc2"),
    ],
)
def test_encode_with_cd_values_the_filter_library_refuses_is_a_value_error(
    filt: dict[str, Any], name: str
) -> None:
    """Was the library's bare error (``zlib.error``, not a ``ValueError``), naming no codec."""
    codec = HDF5Pipeline(filters=[filt], dtype="<u2", chunkshape=[100])
    with pytest.raises(ValueError, match=f"b2store_hdf5: cannot encode HDF5 {name} data"):
        codec.encode(np.arange(100, dtype="<u2"))


def test_blosc_snappy_chunks_are_refused_with_what_to_do(tmp_path: Path) -> None:
    """hdf5plugin's Blosc writes snappy chunks, which numcodecs' Blosc (built without snappy)
    cannot decode: the error was a bare 'error during blosc decompression: -5'."""
    path = tmp_path / "snappy.h5"
    data = np.cumsum(np.arange(4000) % 3).astype("<u2").reshape(40, 100)
    with h5py.File(path, "w") as f:
        d = f.create_dataset("a", data=data, chunks=(40, 100), **hdf5plugin.Blosc(cname="snappy"))
        mask, raw = d.id.read_direct_chunk((0, 0))
        np.testing.assert_array_equal(d[...], data)  # hdf5plugin reads it
        codec = HDF5Pipeline(filters=filters_of(d), dtype="<u2", chunkshape=(40, 100))
    assert mask == 0 and raw[2] >> 5 == 2  # stored compressed, with Blosc's snappy format
    with pytest.raises(CodecError, match="Blosc's snappy codec, which numcodecs' Blosc"):
        codec.decode(raw)


def test_mask_header() -> None:
    framed = add_mask_header(b"abc", 5)
    assert framed == b"B2H5\x05\x00\x00\x00abc"
    mask, payload = split_mask_header(framed, 3)
    assert (mask, bytes(payload)) == (5, b"abc")
    with pytest.raises(CodecError, match="beyond the 2"):
        split_mask_header(framed, 2)
    with pytest.raises(CodecError, match="must start with"):
        split_mask_header(b"abc", 3)
    with pytest.raises(ValueError, match=r"inclusive range \(0, 4294967295\)"):
        add_mask_header(b"", 2**32)
    with pytest.raises(TypeError, match="integer filter mask"):
        add_mask_header(b"", True)
    codec = HDF5Pipeline(filters=[{"id": 1}], masked=True)
    with pytest.raises(CodecError, match="b2store_hdf5: a masked chunk"):
        codec.decode(b"\x78\x9c\x03\x00\x00\x00\x00\x01")


# --- corrupt bytes ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_chunks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[HDF5Pipeline, bytes]]:
    path = tmp_path_factory.mktemp("corrupt") / "c.h5"
    out = {}
    with h5py.File(path, "w") as f:
        for name, kw in FILTERS.items():
            d = f.create_dataset(name, data=sample("<u2"), chunks=CHUNK, **kw)
            codec = HDF5Pipeline(filters=filters_of(d), dtype="<u2", chunkshape=CHUNK)
            out[name] = (codec, d.id.read_direct_chunk((0, 0))[1])
    return out


@pytest.mark.parametrize("name", list(FILTERS))
def test_corrupt_chunks_raise_codec_error(
    raw_chunks: dict[str, tuple[HDF5Pipeline, bytes]], name: str
) -> None:
    codec, raw = raw_chunks[name]
    expected = codec.decode(raw)
    rng = np.random.default_rng(1)
    bad: list[bytes] = [b"", raw[:1], raw[:12], raw[: len(raw) // 2], raw[:-1], raw + b"\0" * 3]
    for _ in range(40):
        b = bytearray(raw)
        for pos in rng.integers(0, len(b), 3):
            b[pos] ^= int(rng.integers(1, 256))
        bad.append(bytes(b))
    failed = 0
    for b in bad:
        try:
            got = codec.decode(b)
        except CodecError as e:
            assert "b2store_hdf5" in str(e)
            failed += 1
        else:  # undetectable corruption (e.g. a flipped literal): right size, never garbage size
            assert got.shape == expected.shape and got.dtype == expected.dtype
    assert failed >= 5  # truncations are always detected


def test_fletcher32_detects_flips(raw_chunks: dict[str, tuple[HDF5Pipeline, bytes]]) -> None:
    codec, raw = raw_chunks["deflate_shuffle_fletcher32"]
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0x10
    with pytest.raises(CodecError, match="fletcher32"):
        codec.decode(bytes(flipped))


def test_wrong_chunkshape_is_loud(raw_chunks: dict[str, tuple[HDF5Pipeline, bytes]]) -> None:
    codec, raw = raw_chunks["lz4"]
    wrong = HDF5Pipeline(filters=codec.filters, dtype="<u2", chunkshape=[16, 23])
    with pytest.raises(CodecError, match="expected 736"):
        wrong.decode(raw)


@pytest.mark.parametrize("libdeflate", [True, False])
def test_deflate_streams_of_the_wrong_size_are_refused(
    monkeypatch: pytest.MonkeyPatch, libdeflate: bool
) -> None:
    """libdeflate decodes into a buffer of exactly the chunk size; zlib is the fallback. Either
    way a stream that inflates to more or fewer bytes is a CodecError, never a bigger buffer."""
    import zlib

    import b2store.codecs.hdf5_pipeline as hp

    if not libdeflate:
        monkeypatch.setattr(hp, "_libdeflate", lambda: None)
    data = np.arange(1000, dtype="<u4")
    comp = zlib.compress(data.tobytes(), 4)
    flt = [{"id": 1, "name": "deflate", "cd_values": [4]}]
    ok = HDF5Pipeline(filters=flt, dtype="<u4", chunkshape=[1000])
    np.testing.assert_array_equal(ok.decode(comp), data)
    for n in (999, 1001):
        with pytest.raises(CodecError, match="deflate"):
            HDF5Pipeline(filters=flt, dtype="<u4", chunkshape=[n]).decode(comp)
    bomb = zlib.compress(bytes(50_000_000), 9)  # 50 MB of zeros in ~50 KB
    with pytest.raises(CodecError, match="deflate"):
        ok.decode(bomb)


# --- Zarr v3 twin -----------------------------------------------------------------------------


def test_zarr3_codec_roundtrip() -> None:
    zarr = pytest.importorskip("zarr")
    from zarr.registry import get_codec_class

    from b2store.codecs.hdf5_zarr3 import HDF5PipelineCodec

    cls = get_codec_class("b2store.hdf5")  # through the entry point
    assert cls is HDF5PipelineCodec
    c = cls.from_dict({"name": "b2store.hdf5", "configuration": CFG})
    assert c.to_dict() == {"name": "b2store.hdf5", "configuration": CFG}
    assert pickle.loads(pickle.dumps(c)) == c
    assert hash(c) == hash(cls.from_dict(c.to_dict()))
    with pytest.raises(CodecError, match="32013"):
        HDF5PipelineCodec(filters=[{"id": 32013, "name": "zfp"}])

    x = np.arange(20, dtype="<f4").reshape(4, 5)
    store = zarr.storage.MemoryStore()
    cfg = {**CFG, "masked": False}
    arr = zarr.create_array(
        store,
        shape=(8, 5),
        chunks=(4, 5),
        dtype="<f4",
        serializer={"name": "bytes", "configuration": {"endian": "little"}},
        compressors=[HDF5PipelineCodec(**cfg)],
    )
    arr[:4] = x
    arr[4:] = x + 1
    np.testing.assert_array_equal(zarr.open_array(store, mode="r")[...], np.vstack([x, x + 1]))


def test_zarr3_codec_refuses_chunks_other_than_its_hdf5_chunks_at_creation() -> None:
    """Data read through b2h5 and rechunked keeps its b2store.hdf5 encoding in xarray: creating
    the array says what to do instead of failing at the first write with a byte count."""
    zarr = pytest.importorskip("zarr")
    from b2store.codecs.hdf5_zarr3 import HDF5PipelineCodec

    codec = HDF5PipelineCodec(**{**CFG, "masked": False})  # chunkshape (4, 5)
    kw: dict[str, Any] = {
        "shape": (8, 5),
        "dtype": "<f4",
        "serializer": {"name": "bytes", "configuration": {"endian": "little"}},
        "compressors": [codec],
    }
    store = zarr.storage.MemoryStore()
    with pytest.raises(CodecError, match=r"HDF5 chunks of shape \[4, 5\].*drop_encoding"):
        zarr.create_array(store, chunks=(3, 5), **kw)
    assert not store._store_dict  # nothing written
    zarr.create_array(store, chunks=(4, 5), **kw)  # its own chunks


@pytest.mark.parametrize(
    "name", ["bitshuffle_lz4", "bitshuffle_zstd", "bitshuffle_none_nelems16", "lz4", "lzf"]
)
@pytest.mark.parametrize("dtype", ["<f8", "u1", ">i2"])
def test_odd_chunk_sizes_both_ways(tmp_path: Path, name: str, dtype: str) -> None:
    """35 items per chunk: bitshuffle's raw tail (n % 8 items) and a partial last LZ4 block.

    Chunks LZF cannot shrink are stored raw with mask 1: kept as such (file reopened to read).
    """
    shape, chunk = (9, 11), (7, 5)
    a = sample(dtype, shape)
    path = tmp_path / "odd.h5"
    with h5py.File(path, "w") as f:
        hd = f.create_dataset("hdf5", data=a, chunks=chunk, **FILTERS[name])
        ours = f.create_dataset("ours", shape=shape, dtype=dtype, chunks=chunk, **FILTERS[name])
        codec = HDF5Pipeline(
            filters=filters_of(hd), dtype=hd.dtype.str, chunkshape=chunk, masked=True
        )
        for i in range(0, shape[0], chunk[0]):
            for j in range(0, shape[1], chunk[1]):
                mask, raw = hd.id.read_direct_chunk((i, j))
                got = codec.decode(add_mask_header(raw, mask))
                part = a[i : i + chunk[0], j : j + chunk[1]]
                np.testing.assert_array_equal(got[: part.shape[0], : part.shape[1]], part)
                enc = codec.encode_bytes(got, mask=mask)
                # our LZF may not shrink a chunk HDF5's did: then it is stored raw, mask bit set
                our_mask = split_mask_header(enc, 1)[0]
                assert our_mask in (mask, 1)
                ours.id.write_direct_chunk((i, j), enc[MASK_HEADER_SIZE:], filter_mask=our_mask)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["ours"][...], a)


@pytest.mark.parametrize("seed", range(6))
def test_random_chains_roundtrip(seed: int) -> None:
    """Any order of the size-changing filters round-trips (fletcher32 first, shuffle after it)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(rng.choice(["u1", "<i2", ">u4", "<f8", "<c16"]))
    chunk = [int(x) for x in rng.integers(1, 12, int(rng.integers(1, 4)))]
    pool = [
        {"id": 2, "cd_values": [dtype.itemsize]},
        {"id": 1, "cd_values": [int(rng.integers(1, 9))]},
        {"id": 3, "cd_values": []},
        {"id": 32004, "cd_values": [int(rng.choice([0, 8, 24]))]},
        {"id": 32015, "cd_values": [3]},
        {"id": 307, "cd_values": [9]},
        {"id": 32026, "cd_values": [1, 0, 0, 0, 5, 1, 0]},
    ]
    order = rng.permutation(len(pool))[: int(rng.integers(1, 5))]
    filters = [pool[i] for i in order]
    codec = HDF5Pipeline(filters=filters, dtype=dtype.str, chunkshape=chunk)
    x = np.frombuffer(rng.bytes(int(np.prod(chunk)) * dtype.itemsize), dtype).reshape(chunk)
    got = codec.decode(codec.encode(x))
    assert got.tobytes() == x.tobytes(), (filters, dtype, chunk)


def test_zarr3_codec_without_dtype_and_chunkshape(tmp_path: Path) -> None:
    """A hand-written zarr.json may leave dtype/chunkshape out: they come from the array."""
    zarr = pytest.importorskip("zarr")
    from b2store.codecs.hdf5_zarr3 import HDF5PipelineCodec

    a = sample("<f4", (10, 7))
    with h5py.File(tmp_path / "bs.h5", "w") as f:
        d = f.create_dataset("x", data=a, chunks=(4, 7), **hdf5plugin.Bitshuffle(cname="zstd"))
        raws = [d.id.read_direct_chunk((i, 0))[1] for i in (0, 4, 8)]
        codec = HDF5PipelineCodec(filters=filters_of(d))
    store = zarr.storage.MemoryStore()
    arr = zarr.create_array(
        store,
        shape=a.shape,
        chunks=(4, 7),
        dtype="<f4",
        serializer={"name": "bytes", "configuration": {"endian": "little"}},
        compressors=[codec],
    )
    cfg = arr.metadata.to_dict()["codecs"][1]["configuration"]
    assert cfg["dtype"] == "<f4" and cfg["chunkshape"] is None
    proto = zarr.core.buffer.default_buffer_prototype()
    for k, raw in enumerate(raws):
        zarr.core.sync.sync(store.set(f"c/{k}/0", proto.buffer.from_bytes(raw)))
    np.testing.assert_array_equal(zarr.open_array(store, mode="r")[...], a)


def test_former_mask_header_names_still_work() -> None:
    """``frame_chunk``/``unframe_chunk`` were renamed (``_blosc2frame.frame_chunk`` does the
    opposite job); the old names stay, and b2store.hdf5.filters still re-exports frame_chunk."""
    from b2store.hdf5 import filters

    assert hdf5_pipeline.frame_chunk is add_mask_header
    assert hdf5_pipeline.unframe_chunk is split_mask_header
    assert filters.frame_chunk is add_mask_header


# --- golden fixtures and the shared numcodecs checks -----------------------------------------
HDF5_FIXTURE = common.FIXTURE_ROOT / "b2store_hdf5"


def test_golden_fixtures_decode() -> None:
    """Chunks written by HDF5 itself (gen_hdf5_fixtures.py: one pipeline per folder, LZF and a
    ``write_direct_chunk`` with a filter mask as masked chunks) decode to the stored data."""
    assert common.check_backwards_compatibility("b2store_hdf5") >= 24


@pytest.mark.parametrize(
    "sub",
    sorted(HDF5_FIXTURE.glob("codec.*")),
    ids=lambda p: p.name,
)
def test_fixture_pipelines_pass_the_shared_checks(sub: Path) -> None:
    """numcodecs' round trip (bytes, bytearray, ``out=``) and config checks, for every stored
    pipeline; HDF5's own chunk and ours decode to the same data."""
    codec = numcodecs.get_codec(json.loads((sub / "config.json").read_text()))
    common.check_config(codec)
    for j, path in enumerate(sorted(HDF5_FIXTURE.glob("array.*.npy"))):
        arr = np.load(path)
        common.check_encode_decode(arr, codec)
        common.compare(arr, codec.decode((sub / f"encoded.{j:02d}.dat").read_bytes()))
