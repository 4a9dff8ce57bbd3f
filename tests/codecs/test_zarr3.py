"""Zarr v2/v3 arrays with the b2store codecs: round trips, partial decoding, foreign chunk forms,
xarray and dask. Real zarr stores; the byte-counting store only records what zarr asks for."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import blosc2
import codec_checks as common  # tests/codecs is on sys.path (see codec_checks)
import numpy as np
import pytest
import zarr
import zarr.storage
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.abc.store import RangeByteRequest

from b2store.codecs.b2nd import B2nd, encode_b2nd
from b2store.codecs.itrunc import ITrunc
from b2store.codecs.zarr3 import B2ndCodec, GrokCodec, ITruncCodec
from b2store.errors import CodecError

requires_blosc2_j2k = common.requires_blosc2_j2k
requires_dask = common.requires_dask
requires_hdf5plugin = common.requires_hdf5plugin
requires_xarray = common.requires_xarray

DTYPES = ["u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8", "bool"]
CASES = [((10,), (4,)), ((13, 17), (5, 6)), ((7, 8, 9), (3, 8, 4)), ((4, 5, 6, 7), (2, 3, 6, 4))]
RNG = np.random.default_rng(11)
_PROTO = zarr.core.buffer.default_buffer_prototype()


def make(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == "bool":
        return RNG.integers(0, 2, shape).astype(bool)
    return (RNG.standard_normal(shape) * 100).astype(dtype)


v3_array = common.b2nd_v3_array


@pytest.mark.parametrize(("dtype", "case"), list(itertools.product(DTYPES, CASES)))
def test_v3_roundtrip(dtype: str, case: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    shape, chunks = case
    arr = make(dtype, shape)
    z = v3_array(zarr.storage.MemoryStore(), arr, chunks)
    z[...] = arr
    np.testing.assert_array_equal(z[...], arr)
    inner = tuple(slice(1, max(2, s - 1)) for s in shape)
    np.testing.assert_array_equal(z[inner], arr[inner])  # partial-decode path
    blocks = tuple(max(1, c // 2) for c in chunks)
    z2 = v3_array(zarr.storage.MemoryStore(), arr, chunks, blocks=blocks, cname="lz4")
    z2[...] = arr
    np.testing.assert_array_equal(z2[...], arr)
    np.testing.assert_array_equal(z2[inner], arr[inner])


def test_v3_selections_on_small_blocks() -> None:
    arr = make("i4", (50, 70))
    z = v3_array(zarr.storage.MemoryStore(), arr, (20, 30), blocks=(8, 16))
    z[...] = arr
    for sel in [
        (slice(3, 17), slice(5, 40)),
        (7, 8),
        (7,),
        (slice(None, None, 3), slice(1, None, 2)),
        (slice(45, 50), slice(65, 70)),
    ]:
        np.testing.assert_array_equal(z[sel], arr[sel])
    np.testing.assert_array_equal(z.vindex[[1, 45, 19], [3, 66, 29]], arr[[1, 45, 19], [3, 66, 29]])
    idx = np.ix_([1, 45], [3, 66])
    np.testing.assert_array_equal(z.get_orthogonal_selection(([1, 45], [3, 66])), arr[idx])
    np.testing.assert_array_equal(z.get_mask_selection(arr > 50), arr[arr > 50])


class CountingStore(zarr.storage.WrapperStore[zarr.storage.MemoryStore]):
    """Records (key, byte_range, bytes returned) of every get: measuring, not mocking."""

    def __init__(self, store: zarr.storage.MemoryStore) -> None:
        super().__init__(store)
        self.log: list[tuple[str, Any, int]] = []

    def _with_store(self, store: Any) -> CountingStore:  # mode="r" re-wraps: share the log
        new = type(self)(store)
        new.log = self.log
        return new

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        buf = await self._store.get(key, prototype, byte_range)
        self.log.append((key, byte_range, 0 if buf is None else len(buf)))
        return buf


@pytest.mark.parametrize("kind", ["noisy", "random", "nthreads"])
def test_partial_decode_reads_only_touched_blocks(kind: str) -> None:
    rng = np.random.default_rng(0)
    if kind == "random":  # incompressible: Blosc2 stores the chunk memcpy'd
        arr = rng.integers(0, 60000, (256, 256), dtype="u2")
    else:
        arr = (np.add.outer(np.arange(256), np.arange(256)) * 50).astype("u2")
        arr += rng.integers(0, 64, arr.shape, dtype="u2")
    base = zarr.storage.MemoryStore()
    nthreads = 2 if kind == "nthreads" else 1
    z = v3_array(base, arr, (256, 256), blocks=(64, 64), nthreads=nthreads)
    z[...] = arr
    chunk_size = len(base._store_dict["c/0/0"].to_bytes())
    counting = CountingStore(base)
    zr = zarr.open_array(counting, mode="r")
    np.testing.assert_array_equal(zr[10:50, 100:130], arr[10:50, 100:130])
    chunk_reads = [entry for entry in counting.log if entry[0] == "c/0/0"]
    read = sum(n for _, _, n in chunk_reads)
    assert chunk_reads and all(isinstance(r, RangeByteRequest) for _, r, _ in chunk_reads)
    assert read < chunk_size / 4, (read, chunk_size, chunk_reads)  # 2 of 16 blocks + index
    counting.log.clear()
    np.testing.assert_array_equal(zr[...], arr)  # whole chunk: one plain get()
    assert [(k, r) for k, r, _ in counting.log if k == "c/0/0"] == [("c/0/0", None)], counting.log


@pytest.mark.parametrize("source", ["b2store", "python-blosc2"])
def test_partial_decode_of_delta_chunks(source: str) -> None:
    """Blosc2's DELTA filter stores every block relative to the chunk's first block, so a
    selection that skips block 0 must still see it (was: silently wrong values)."""
    rng = np.random.default_rng(1)
    arr = (np.add.outer(np.arange(256), np.arange(256)) * 50).astype("u2")
    arr += rng.integers(0, 40, arr.shape, dtype="u2")
    store = zarr.storage.MemoryStore()
    z = v3_array(store, arr, (256, 256), blocks=(16, 256), filters=[{"id": "delta"}])
    if source == "b2store":
        z[...] = arr
    else:  # the same chunk form written by python-blosc2, stored as the chunk key
        frame = blosc2.asarray(
            arr, chunks=arr.shape, blocks=(16, 256), cparams={"filters": [blosc2.Filter.DELTA]}
        ).to_cframe()
        proto = zarr.core.buffer.default_buffer_prototype()
        zarr.core.sync.sync(store.set("c/0/0", proto.buffer.from_bytes(frame)))
    np.testing.assert_array_equal(z[100:110, 5:9], arr[100:110, 5:9])
    np.testing.assert_array_equal(z[200:, :], arr[200:, :])
    np.testing.assert_array_equal(z[...], arr)


def test_ndim_filters_of_python_blosc2_decode() -> None:
    """NDCELL/NDMEAN need the array's metadata, which decompress2 does not get: b2store
    decodes such frames inside an NDArray (they were refused before)."""
    arr = np.arange(64 * 64, dtype="f4").reshape(64, 64)
    frame = blosc2.asarray(
        arr,
        chunks=(64, 64),
        blocks=(32, 32),
        cparams={"filters": [blosc2.Filter.NDCELL], "filters_meta": [4]},
    ).to_cframe()
    got = np.frombuffer(B2nd().decode(frame), "f4").reshape(64, 64)
    np.testing.assert_array_equal(got, blosc2.ndarray_from_cframe(frame)[...])


def test_missing_chunk_is_fill_value() -> None:
    arr = np.arange(100, dtype="f4").reshape(10, 10)
    store = zarr.storage.MemoryStore()
    z = v3_array(store, arr, (5, 5), blocks=(5, 5))
    z[:5, :5] = arr[:5, :5]
    np.testing.assert_array_equal(z[6:8, 6:8], 0)
    np.testing.assert_array_equal(z[1:3, 1:3], arr[1:3, 1:3])


def test_caterva2_style_bare_chunks() -> None:
    """Chunks stored as bare Blosc2 chunks in block order, blocks from the codec config."""
    arr = make("f8", (45, 70))
    chunks, blocks = (20, 30), (8, 16)
    store = zarr.storage.MemoryStore()
    v3_array(store, arr, chunks, blocks=blocks)
    nd = blosc2.asarray(arr, chunks=chunks, blocks=blocks)
    proto = zarr.core.buffer.default_buffer_prototype()
    grid = [range(-(-s // c)) for s, c in zip(arr.shape, chunks, strict=True)]
    for n, pos in enumerate(itertools.product(*grid)):
        key = "c/" + "/".join(map(str, pos))
        raw = bytes(nd.schunk.get_chunk(n))
        zarr.core.sync.sync(store.set(key, proto.buffer.from_bytes(raw)))
    zr = zarr.open_array(store, mode="r")
    np.testing.assert_array_equal(zr[...], arr)
    np.testing.assert_array_equal(zr[3:41, 17:52], arr[3:41, 17:52])
    meta = json.loads(zarr.core.sync.sync(store.get("zarr.json", proto)).to_bytes())
    assert meta["codecs"][0]["name"] == "b2store.b2nd"
    assert meta["codecs"][0]["configuration"]["blocks"] == [8, 16]


def _array_with_chunk(
    shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str, blob: bytes, **codec: Any
) -> Any:
    """A v3 ``b2store.b2nd`` array whose first chunk is *blob*, stored as it is."""
    store = zarr.storage.MemoryStore()
    z = v3_array(store, np.empty(shape, dtype), chunks, **codec)
    key = "c/" + "/".join("0" * len(chunks)) if chunks else "c"
    zarr.core.sync.sync(store.set(key, _PROTO.buffer.from_bytes(blob)))
    return z


def test_v3_bare_one_block_chunk_decodes_in_c_order() -> None:
    """A bare ``blosc2.compress2`` chunk in one block is the chunk in C order whatever the
    codec's ``blocks`` says (was: reordered by them, scrambled), in whole and partial reads."""
    x = np.arange(64 * 64, dtype="u2").reshape(64, 64)
    chunk = blosc2.compress2(x, typesize=2, blocksize=x.nbytes)
    z = _array_with_chunk((64, 64), (64, 64), "u2", chunk, blocks=(16, 16))
    np.testing.assert_array_equal(z[...], x)
    np.testing.assert_array_equal(z[5:9, 20:40], x[5:9, 20:40])


@requires_hdf5plugin
def test_hdf5plugin_frames_in_v3(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import h5py
    import hdf5plugin

    arr = make("i2", (45, 70))
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=arr, chunks=(20, 30), **hdf5plugin.Blosc2(cname="zstd"))
    store = zarr.storage.MemoryStore()
    meta = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(arr.shape),
        "data_type": "int16",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [20, 30]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": [{"name": "b2store.b2nd"}],
        "attributes": {},
    }
    proto = zarr.core.buffer.default_buffer_prototype()
    zarr.core.sync.sync(store.set("zarr.json", proto.buffer.from_bytes(json.dumps(meta).encode())))
    with h5py.File(path) as f:
        for i, j in itertools.product(range(3), range(3)):
            raw = f["x"].id.read_direct_chunk((20 * i, 30 * j))[1]
            zarr.core.sync.sync(store.set(f"c/{i}/{j}", proto.buffer.from_bytes(raw)))
    zr = zarr.open_array(store, mode="r")
    np.testing.assert_array_equal(zr[...], arr)
    np.testing.assert_array_equal(zr[5:44, 3:69], arr[5:44, 3:69])


@pytest.mark.parametrize("frame_shape", [(5, 3), (4, 4), (2, 6), (4, 3, 1)])
@pytest.mark.parametrize("blocks", [None, (2, 2)])
def test_v3_b2nd_refuses_a_frame_of_another_chunk_shape(
    frame_shape: tuple[int, ...], blocks: tuple[int, int] | None
) -> None:
    """A frame copied from another array (other chunking, a wrong kerchunk reference) was
    cropped or reshaped into the chunk silently; whole-chunk and partial reads must raise."""
    n = int(np.prod(frame_shape))
    frame = encode_b2nd(np.arange(1000, 1000 + n, dtype="u2").reshape(frame_shape))
    z = _array_with_chunk((8, 6), (4, 3), "u2", frame, blocks=blocks)
    with pytest.raises(CodecError, match=r"b2store\.b2nd.*chunk shape"):
        z[0:4, 0:3]
    with pytest.raises(CodecError, match=r"b2store\.b2nd.*chunk shape"):
        z[1:3, 1:2]


def test_v3_b2nd_partial_read_refuses_an_underfilled_frame() -> None:
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


def test_v3_b2nd_still_reshapes_flat_frames_and_0d_chunks() -> None:
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


def test_itrunc_v3_and_config() -> None:
    arr = (RNG.integers(0, 4000, (30, 40))).astype("u2")
    z = zarr.create_array(
        zarr.storage.MemoryStore(),
        shape=arr.shape,
        chunks=(16, 16),
        dtype=arr.dtype,
        filters=[ITruncCodec(max_abs_error=7)],
        serializer=B2ndCodec(filters=["bitshuffle"]),
        compressors=None,
    )
    z[...] = arr
    d = arr.astype(int) - z[...].astype(int)
    assert d.min() >= 0 and d.max() <= 7
    c = ITruncCodec(max_abs_error=7)
    assert c.to_dict() == {"name": "b2store.itrunc", "configuration": {"max_abs_error": 7}}
    assert ITruncCodec.from_dict(c.to_dict()) == c
    with pytest.raises(CodecError, match="not bool"):
        zarr.create_array(
            zarr.storage.MemoryStore(),
            shape=(4,),
            dtype=bool,
            filters=[ITruncCodec(bits=1)],
            serializer=B2ndCodec(),
            compressors=None,
        )


def test_b2nd_codec_splitmode_in_v3_metadata(tmp_path: Path) -> None:
    arr = RNG.poisson(200, size=(8, 64, 64)).astype("u2")
    assert "splitmode" not in B2ndCodec().to_dict()["configuration"]
    path = tmp_path / "split.zarr"
    z = zarr.create_array(
        str(path),
        shape=arr.shape,
        chunks=(4, 64, 64),
        dtype=arr.dtype,
        serializer=B2ndCodec(filters=["bitshuffle"], splitmode="always"),
        compressors=None,
    )
    z[...] = arr
    meta = json.loads((path / "zarr.json").read_text())
    assert meta["codecs"][0]["configuration"]["splitmode"] == "always"
    again = zarr.open_array(str(path), mode="r")
    np.testing.assert_array_equal(again[...], arr)
    assert again.serializer == B2ndCodec(filters=["bitshuffle"], splitmode="always")


def test_b2nd_codec_dict_roundtrip() -> None:
    c = B2ndCodec(cname="lz4", clevel=3, filters=[{"id": "itrunc", "bits": 2}, "bitshuffle"])
    d = c.to_dict()
    assert d["name"] == "b2store.b2nd"
    assert d["configuration"]["filters"] == [{"id": "itrunc", "bits": 2}, {"id": "bitshuffle"}]
    assert B2ndCodec.from_dict(d) == c and hash(B2ndCodec.from_dict(d)) == hash(c)
    assert B2ndCodec.from_dict({"name": "b2store.b2nd"}) == B2ndCodec()
    with pytest.raises(ValueError, match="clevel"):
        B2ndCodec.from_dict({"name": "b2store.b2nd", "configuration": {"clevel": 99}})
    with pytest.raises(CodecError, match="blocks"):
        zarr.create_array(
            zarr.storage.MemoryStore(),
            shape=(4, 4),
            dtype="u2",
            serializer=B2ndCodec(blocks=(2,)),
            compressors=None,
        )


def test_v2_numcodecs_roundtrip() -> None:
    arr = (RNG.standard_normal((33, 20)) * 1000).astype("i4")
    store = zarr.storage.MemoryStore()
    z = zarr.create_array(
        store,
        shape=arr.shape,
        chunks=(10, 8),
        dtype=arr.dtype,
        zarr_format=2,
        filters=[ITrunc(max_abs_error=3)],
        compressors=B2nd(filters=["bitshuffle"], blocks=[5, 4]),
    )
    z[...] = arr
    got = zarr.open_array(store, mode="r")[...]
    d = arr.astype(np.int64) - got
    assert d.min() >= 0 and d.max() <= 3


def _dataset_stores(arr: np.ndarray) -> list[Any]:
    stores = []
    for fmt in (2, 3):
        store = zarr.storage.MemoryStore()
        g = zarr.open_group(store, mode="w", zarr_format=fmt)
        kw: dict[str, Any] = {}
        if fmt == 2:
            kw = {"compressors": B2nd(blocks=[4, 8, 8]), "filters": None}
        else:
            kw = {
                "serializer": B2ndCodec(blocks=(4, 8, 8)),
                "compressors": None,
                "dimension_names": ("t", "y", "x"),
            }
        a = g.create_array(
            "v", shape=arr.shape, chunks=(5, 16, 16), dtype=arr.dtype, fill_value=None, **kw
        )
        if fmt == 2:
            a.attrs["_ARRAY_DIMENSIONS"] = ["t", "y", "x"]
        a[...] = arr
        zarr.consolidate_metadata(store)
        stores.append(store)
    return stores


@requires_xarray
@requires_dask
@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part:UserWarning")
def test_xarray_and_dask() -> None:
    import dask.array as da
    import xarray as xr

    arr = RNG.integers(0, 5000, (12, 40, 33)).astype("u2")
    for store in _dataset_stores(arr):
        ds = xr.open_zarr(store, consolidated=True)
        np.testing.assert_array_equal(ds["v"].values, arr)
        np.testing.assert_array_equal(ds["v"][3:9, 5:30, 2:20].values, arr[3:9, 5:30, 2:20])
        d = da.from_zarr(zarr.open_array(store, path="v", mode="r"))
        np.testing.assert_array_equal(d.compute(scheduler="threads"), arr)
        assert int(d.sum().compute()) == int(arr.astype(np.int64).sum())


@requires_blosc2_j2k
def test_grok_codec_v3() -> None:
    img = RNG.integers(0, 4000, (2, 64, 64)).astype("u2")
    z = zarr.create_array(
        zarr.storage.MemoryStore(),
        shape=img.shape,
        chunks=(1, 64, 64),
        dtype=img.dtype,
        serializer=GrokCodec(),
        compressors=None,
    )
    z[...] = img
    np.testing.assert_array_equal(z[...], img)
    d = GrokCodec(ratio=10).to_dict()
    assert d["name"] == "b2store.grok" and d["configuration"]["ratio"] == 10
    assert GrokCodec.from_dict(d) == GrokCodec(ratio=10)
    lossy = zarr.create_array(
        zarr.storage.MemoryStore(),
        shape=img.shape,
        chunks=(1, 64, 64),
        dtype=img.dtype,
        serializer=GrokCodec.from_dict(d),
        compressors=None,
    )
    lossy[...] = img
    assert lossy[...].shape == img.shape


_PARTIAL_ARR = (np.add.outer(np.arange(37), np.arange(45)) * 13 % 5000).astype("i2")
_PARTIAL_STORES: dict[tuple[int, int], Any] = {}


#: zarr.json configurations written by GrokCodec before its settings became typed fields (from
#: to_dict, with key order): they must still be written byte for byte and read back the same.
_GROK_V3_CONFIGS = [
    ({}, '{"ratio": null, "psnr": null, "nthreads": 1}'),
    ({"ratio": 10}, '{"ratio": 10.0, "psnr": null, "nthreads": 1}'),
    ({"psnr": 70}, '{"ratio": null, "psnr": 70.0, "nthreads": 1}'),
    ({"ratio": np.float32(8.5)}, '{"ratio": 8.5, "psnr": null, "nthreads": 1}'),
    ({"psnr": 70.5, "nthreads": 4}, '{"ratio": null, "psnr": 70.5, "nthreads": 4}'),
    ({"ratio": 12.25, "nthreads": np.int64(3)}, '{"ratio": 12.25, "psnr": null, "nthreads": 3}'),
]


@requires_blosc2_j2k
@pytest.mark.parametrize(("kwargs", "stored"), _GROK_V3_CONFIGS)
def test_grok_codec_v3_config_unchanged(kwargs: dict[str, Any], stored: str) -> None:
    c = GrokCodec(**kwargs)
    d = c.to_dict()
    assert d["name"] == "b2store.grok"
    assert json.dumps(d["configuration"]) == stored
    old = GrokCodec.from_dict({"name": "b2store.grok", "configuration": json.loads(stored)})
    assert old == c and hash(old) == hash(c) and json.dumps(old.to_dict()) == json.dumps(d)
    # typed, frozen, keyword-only settings, normalised as the numcodecs codec stores them
    assert (c.ratio, c.psnr, c.nthreads) == tuple(json.loads(stored).values())
    with pytest.raises(AttributeError):
        c.ratio = 3.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        GrokCodec(10)  # type: ignore[misc]


@requires_blosc2_j2k
def test_grok_codec_unpickles_the_old_layout() -> None:
    """A GrokCodec pickled before the typed fields (its state a ``config`` tuple of pairs, plus
    the cached numcodecs codec), e.g. by an older install in a dask cluster, read back as
    ratio=None (equal to GrokCodec()) while encoding with ratio 10."""
    import pickle

    from b2store.codecs.grok import Grok

    class OldPickle:
        def __reduce_ex__(self, protocol: Any) -> Any:
            config = (("ratio", 10.0), ("psnr", None), ("nthreads", 2))
            state = {"config": config, "_numcodec": Grok(ratio=10, nthreads=2)}
            return object.__new__, (GrokCodec,), state

    c = pickle.loads(pickle.dumps(OldPickle()))
    assert type(c) is GrokCodec and (c.ratio, c.psnr, c.nthreads) == (10.0, None, 2)
    assert c == GrokCodec(ratio=10, nthreads=2)
    assert c.to_dict() == GrokCodec(ratio=10, nthreads=2).to_dict()
    assert pickle.loads(pickle.dumps(c)) == c


@requires_blosc2_j2k
def test_grok_codec_v3_reads_configs_as_before() -> None:
    assert GrokCodec.from_dict({"name": "b2store.grok"}) == GrokCodec()
    with pytest.raises(TypeError, match=r"b2store.grok: configuration: Expected keys among "):
        GrokCodec.from_dict({"name": "b2store.grok", "configuration": {"rate": 3}})
    with pytest.raises(TypeError, match="without its 'id' key"):
        GrokCodec.from_dict({"name": "b2store.grok", "configuration": {"id": "b2store_grok"}})
    with pytest.raises(CodecError, match="at most one of ratio and psnr"):
        GrokCodec.from_dict({"name": "b2store.grok", "configuration": {"ratio": 10, "psnr": 20}})


def _partial_array(blocks: tuple[int, int]) -> Any:
    if blocks not in _PARTIAL_STORES:
        z = v3_array(zarr.storage.MemoryStore(), _PARTIAL_ARR, (20, 24), blocks=blocks)
        z[...] = _PARTIAL_ARR
        _PARTIAL_STORES[blocks] = z
    return _PARTIAL_STORES[blocks]


@settings(max_examples=40, deadline=None)
@given(
    blocks=st.sampled_from([(20, 24), (4, 24), (5, 7), (1, 1), (8, 16)]),
    sel=st.tuples(
        *[
            st.one_of(
                st.integers(-n, n - 1),
                st.builds(
                    slice,
                    st.one_of(st.none(), st.integers(-n, n)),
                    st.one_of(st.none(), st.integers(-n, n)),
                    st.one_of(st.none(), st.integers(1, 5)),
                ),
            )
            for n in _PARTIAL_ARR.shape
        ]
    ),
)
def test_hypothesis_partial_selections(blocks: tuple[int, int], sel: tuple[Any, ...]) -> None:
    z = _partial_array(blocks)
    np.testing.assert_array_equal(z[sel], _PARTIAL_ARR[sel])


@pytest.mark.parametrize(("dtype", "case"), list(itertools.product(DTYPES, CASES)))
def test_v2_roundtrip(dtype: str, case: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    shape, chunks = case
    arr = make(dtype, shape)
    store = zarr.storage.MemoryStore()
    z = zarr.create_array(
        store,
        shape=shape,
        chunks=chunks,
        dtype=arr.dtype,
        zarr_format=2,
        compressors=B2nd(cname="lz4", filters=["bitshuffle"]),
        fill_value=None,
    )
    z[...] = arr
    zr = zarr.open_array(store, mode="r")
    np.testing.assert_array_equal(zr[...], arr)
    meta = json.loads(zarr.core.sync.sync(store.get(".zarray", _PROTO)).to_bytes())
    assert meta["compressor"]["id"] == "b2store_b2nd"


def test_partial_decode_with_a_long_block_table() -> None:
    """1024 blocks: the block-start table (4 KiB) runs past the first ranged read."""
    rng = np.random.default_rng(0)
    arr = (np.add.outer(np.arange(256), np.arange(256)) * 50).astype("u2")
    arr += rng.integers(0, 4, arr.shape, dtype="u2")
    base = zarr.storage.MemoryStore()
    z = v3_array(base, arr, (256, 256), blocks=(8, 8))
    z[...] = arr
    size = len(base._store_dict["c/0/0"].to_bytes())
    counting = CountingStore(base)
    zr = zarr.open_array(counting, mode="r")
    np.testing.assert_array_equal(zr[100:110, 7:30], arr[100:110, 7:30])
    reads = [(r, n) for k, r, n in counting.log if k == "c/0/0"]
    assert len(reads) == 3 and sum(n for _, n in reads) < size / 8, reads
    assert reads[1][0].start == 4096  # only the missing tail of the table is fetched


def test_block_ranges_with_blocks_stored_out_of_order() -> None:
    """A block ends at the next larger start, whatever order the starts are stored in."""
    from zarr.core.array_spec import ArrayConfig, ArraySpec
    from zarr.core.dtype import parse_dtype

    from b2store.codecs import _blosc2frame as bf
    from b2store.codecs._b2nd_partial import _PartialPlan

    arr = make("u2", (64, 64))
    frame = B2nd(blocks=[16, 64]).encode(arr)
    spec = ArraySpec(shape=(64, 64), dtype=parse_dtype("uint16", zarr_format=3), fill_value=0,
                     config=ArrayConfig.from_dict({}), prototype=_PROTO)  # fmt: skip
    plan = _PartialPlan.make(frame[:4096], (64, 64), None, spec)
    assert plan is not None and plan.header.nblocks == 4
    table = bytearray(frame[plan.base : plan.table_end])
    in_order = plan.block_ranges(bytes(table), [0, 1, 2, 3])
    starts = [s - plan.base for s, _ in in_order.values()]
    assert [e for _, e in in_order.values()] == [*(s + plan.base for s in starts[1:]),
                                                 plan.base + plan.header.cbytes]  # fmt: skip
    shuffled = [starts[2], starts[0], starts[3], starts[1]]  # blocks 0..3 stored as 1, 3, 0, 2
    table[bf.CHUNK_HEADER_SIZE :] = np.asarray(shuffled, dtype="<i4").tobytes()
    ranges = plan.block_ranges(bytes(table), [0, 1, 2, 3])
    ends = {s: e for s, e in in_order.values()}
    assert ranges == {b: (plan.base + s, ends[plan.base + s]) for b, s in enumerate(shuffled)}


def test_truncation_filter_checked_at_creation_and_0d_blocks() -> None:
    with pytest.raises(CodecError, match="not bool"):
        zarr.create_array(
            zarr.storage.MemoryStore(),
            shape=(4,),
            dtype="bool",
            compressors=None,
            serializer=B2ndCodec(filters=[{"id": "itrunc", "bits": 1}]),
        )
    z = zarr.create_array(
        zarr.storage.MemoryStore(),
        shape=(),
        dtype="u2",
        compressors=None,
        serializer=B2ndCodec(blocks=[]),
    )
    z[...] = 5
    assert z[...] == 5


def test_v3_b2nd_refuses_big_endian_instead_of_swapping_on_reopen(tmp_path: Path) -> None:
    with pytest.raises(CodecError, match="big-endian"):
        zarr.create_array(
            store=str(tmp_path / "a.zarr"),
            shape=(3,),
            chunks=(3,),
            dtype=">i4",
            serializer={"name": "b2store.b2nd", "configuration": {}},
            compressors=None,
        )
    assert not (tmp_path / "a.zarr" / "zarr.json").exists()  # refused before anything is written


@requires_blosc2_j2k
@pytest.mark.parametrize(
    ("dtype", "shape", "serializer", "match"),
    [
        ("f4", (32, 32), {"name": "b2store.grok"}, "uint8, uint16, int8 and int16"),
        ("u4", (32, 32), {"name": "b2store.grok"}, "uint8, uint16, int8 and int16"),
        ("bool", (32, 32), {"name": "b2store.grok"}, "uint8, uint16, int8 and int16"),
        (">u2", (32, 32), {"name": "b2store.grok"}, "big-endian"),
        ("u2", (32,), {"name": "b2store.grok"}, "2-D images"),
        ("i2", (32, 32), {"name": "b2store.grok", "configuration": {"ratio": 5}}, "signed"),
    ],
)
def test_v3_grok_refuses_unwritable_arrays_before_writing_zarr_json(
    dtype: str, shape: tuple[int, ...], serializer: dict[str, Any], match: str
) -> None:
    """Refused only on the first write, after ``zarr.json``: an array nobody could fill."""
    store: dict[str, Any] = {}
    with pytest.raises(CodecError, match=match):
        zarr.create_array(
            store=store,
            shape=shape,
            chunks=tuple(16 for _ in shape),
            dtype=dtype,
            serializer=serializer,
            compressors=None,
        )
    assert not store  # no zarr.json left behind


@requires_blosc2_j2k
def test_v3_grok_refuses_images_too_small_for_jpeg2000_at_creation() -> None:
    store: dict[str, Any] = {}
    with pytest.raises(CodecError, match="too small for JPEG 2000"):
        zarr.create_array(
            store=store,
            shape=(4, 64, 64),
            chunks=(1, 8, 64),
            dtype="u2",
            serializer={"name": "b2store.grok"},
            compressors=None,
        )
    assert not store


@pytest.mark.parametrize(
    ("dtype", "codec"),
    [
        ("<u2", B2ndCodec),
        ("f8", B2ndCodec),
        pytest.param("u2", GrokCodec, marks=requires_blosc2_j2k),
        pytest.param("i2", GrokCodec, marks=requires_blosc2_j2k),
    ],
)
def test_v3_writable_b2nd_and_grok_arrays_are_created_and_reopened(
    dtype: str, codec: type[B2ndCodec | GrokCodec]
) -> None:
    store: dict[str, Any] = {}
    z = zarr.create_array(
        store=store, shape=(40, 37), chunks=(32, 32), dtype=dtype, serializer=codec(),
        compressors=None,
    )  # fmt: skip
    data = (np.arange(40 * 37).reshape(40, 37) % 200).astype(dtype)
    z[...] = data
    np.testing.assert_array_equal(zarr.open_array(store=store)[...], data)


FIXED_SIZE_DTYPES: list[Any] = ["S7", "<U5", "S300", [("a", "<i2"), ("b", "S3")]]


def _fixed_size_sample(dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if dt.kind == "U":
        return np.array([f"é{i % 997}ab" for i in range(n)], dt).reshape(shape)
    raw = np.random.default_rng(7).integers(0, 256, n * dt.itemsize).astype("u1")
    return np.frombuffer(raw.tobytes(), dt).reshape(shape).copy()


@pytest.mark.filterwarnings("ignore::UserWarning")  # zarr: "no Zarr V3 specification" (unstable)
@pytest.mark.parametrize("dtype", FIXED_SIZE_DTYPES)
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_fixed_size_bytes_strings_and_records_round_trip(dtype: Any, zarr_format: int) -> None:
    """Such arrays were created (zarr.json written) and then refused at the first write, as
    "not numeric", although Blosc2 stores any fixed item size."""
    data = _fixed_size_sample(dtype, (23, 31))
    codecs: dict[str, Any] = (
        {"serializer": B2ndCodec(blocks=(4, 8))}
        if zarr_format == 3
        else {"compressors": B2nd(blocks=[4, 8])}
    )
    store = zarr.storage.MemoryStore()
    z = zarr.create_array(
        store, shape=data.shape, chunks=(23, 31), dtype=data.dtype, zarr_format=zarr_format,
        fill_value=None, **({"compressors": None} | codecs),
    )  # fmt: skip
    z[...] = data
    z = zarr.open_array(store, mode="r")
    assert z[...].tobytes() == data.tobytes()
    for sel in [(slice(3, 9), slice(5, 30)), (22, slice(None)), (slice(1, 20, 7), 4)]:
        assert np.asarray(z[sel]).tobytes() == data[sel].tobytes()  # partial decoding (v3)
    assert z.oindex[[0, 22], [30, 2]].tobytes() == data[np.ix_([0, 22], [30, 2])].tobytes()


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("dtype", [[("a", ">i2"), ("b", "<f4")], [("a", "<i2"), ("s", ">U2")]])
def test_v3_b2nd_refuses_big_endian_record_fields_at_creation(dtype: Any) -> None:
    """A record's byte order is per field (``dtype.byteorder`` is ``'|'``, which the check
    looked at): zarr.json records none, so a reopened array reads such a field swapped."""
    store: dict[str, Any] = {}
    with pytest.raises(CodecError, match="big-endian"):
        zarr.create_array(
            store, shape=(4,), chunks=(2,), dtype=dtype, serializer=B2ndCodec(), compressors=None
        )
    assert not store


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"name": "b2store.b2nd", "configuration": {"clevl": 3}}, r"unknown key\(s\) \['clevl'\]"),
        ({"name": "b2store.b2nd", "configuration": {"chunkshape": [2]}}, "'blocks', 'clevel'"),
        ({"name": "b2store.b2nd", "configuration": {"id": "b2store_b2nd"}}, "without its 'id'"),
        ({"name": "b2store.itrunc", "configuration": {"bits": 1, "bitz": 1}}, r"\['bitz'\]"),
        pytest.param(
            {"name": "b2store.grok", "configuration": {"quality": 3}},
            r"\['nthreads', 'psnr', 'ratio'\]",
            marks=requires_blosc2_j2k,
        ),
    ],
)  # fmt: skip
def test_v3_unknown_configuration_keys_are_named(data: dict[str, Any], match: str) -> None:
    """A misspelt key was a bare ``__init__() got an unexpected keyword argument``."""
    from zarr.registry import get_codec_class

    with pytest.raises(TypeError, match=match) as info:
        get_codec_class(data["name"]).from_dict(data)
    assert str(info.value).startswith(data["name"] + ": configuration: Expected")


@requires_blosc2_j2k
@pytest.mark.skipif(
    zarr.config.get("array.rectilinear_chunks", None) is None,
    reason="rectilinear chunk grids need zarr >= 3.2",
)
def test_v3_grok_checks_every_chunk_of_a_rectilinear_grid_at_creation() -> None:
    """The image-size check read ``chunk_grid.chunk_shape``, which a rectilinear grid lacks:
    a 10-row chunk was found only at the first write."""
    store: dict[str, Any] = {}
    with zarr.config.set({"array.rectilinear_chunks": True}):
        with pytest.raises(CodecError, match="too small for JPEG 2000"):
            zarr.create_array(
                store, shape=(37, 53), chunks=[[10, 20, 7], [20, 33]], dtype="u2",
                serializer=GrokCodec(), compressors=None,
            )  # fmt: skip
        assert not store
        z = zarr.create_array(
            store, shape=(37, 53), chunks=[[17, 20], [20, 33]], dtype="u2",
            serializer=GrokCodec(), compressors=None,
        )  # fmt: skip
        data = (np.arange(37 * 53).reshape(37, 53) % 300).astype("u2")
        z[...] = data
        np.testing.assert_array_equal(
            zarr.open_array(store, mode="r")[5:33, 19:22], data[5:33, 19:22]
        )


@pytest.mark.parametrize("dtype", [str, "str"])
def test_v3_b2nd_refuses_variable_length_strings_at_creation(dtype: Any) -> None:
    """zarr's ``dtype=str`` (numpy StringDType) was created, then refused at the first write
    (and a check of its byte order raised numpy's own TypeError)."""
    store: dict[str, Any] = {}
    with pytest.raises(CodecError, match="not fixed-size"):
        zarr.create_array(
            store, shape=(4,), chunks=(2,), dtype=dtype, serializer=B2ndCodec(), compressors=None
        )
    assert not store


_ZARR_VERSION = tuple(int(x) for x in zarr.__version__.split(".")[:2])


@pytest.mark.skipif(
    _ZARR_VERSION < (3, 4),
    reason="zarr < 3.4 checks every codec against the array's dtype (no dtype threading)",
)
@pytest.mark.parametrize(
    ("serializer", "filters", "max_err"),
    [
        pytest.param(GrokCodec(), [], 0, marks=requires_blosc2_j2k),
        (B2ndCodec(filters=[{"id": "itrunc", "max_abs_error": 3}]), [], 3),
        (B2ndCodec(), [ITruncCodec(max_abs_error=3)], 3),
    ],
)
@pytest.mark.parametrize("shards", [None, (64, 64)])
def test_v3_codecs_check_the_dtype_a_dtype_changing_filter_hands_them(
    serializer: Any, filters: list[Any], max_err: int, shards: Any
) -> None:
    """zarr evolves each codec with the dtype the codecs before it leave, but validates every
    codec with the array's dtype: float32 -> uint16 (numcodecs' AsType) then JPEG 2000, or an
    integer truncation bound, was refused ("cannot encode dtype float32")."""
    from zarr.codecs.numcodecs import AsType

    data = (np.add.outer(np.arange(64.0), np.arange(64.0)) * 100).astype("f4")
    store = zarr.storage.MemoryStore()
    z = zarr.create_array(
        store, shape=data.shape, chunks=(32, 32), shards=shards, dtype="f4",
        filters=[AsType(encode_dtype="u2", decode_dtype="f4"), *filters],
        serializer=serializer, compressors=None,
    )  # fmt: skip
    z[...] = data
    err = data - zarr.open_array(store, mode="r")[...]
    assert err.min() >= 0
    assert err.max() <= max_err
