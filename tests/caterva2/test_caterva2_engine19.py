"""The ``caterva2`` xarray engine (b2store.caterva2.xarray_backend): the datasets of a real
``cat2-server`` read through ``xr.open_dataset(url, engine="caterva2")`` equal the arrays
written and ``xr.open_zarr(url)``'s reads, with Blosc2 variables on the whole-chunk path
(b2store._whole_chunks): 1-D to 4-D, several dtypes (big-endian, bool), edge chunks, all-zero
chunks, no dask / server chunks / multiples / unaligned dask chunks, dataset URLs, HDF5 files on
the server, the chunk cache, pickling; and what it refuses."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import blosc2
import dask
import numpy as np
import pytest
import xarray as xr
from _c2server import public_folder

from b2store._whole_chunks import WholeChunkArrayWrapper
from b2store.caterva2.xarray_backend import Caterva2BackendEntrypoint
from b2store.errors import CodecError
from tests._engines import innermost_array, open_caterva2

CASES = [
    # name, shape, chunks, blocks, dtype
    ("d1", (1000,), (300,), (64,), "i4"),
    ("d2", (97, 131), (40, 50), (16, 25), "f8"),
    ("d3", (7, 45, 33), (3, 20, 16), (1, 8, 16), "u2"),
    ("d4", (5, 6, 7, 9), (2, 3, 4, 5), (1, 2, 2, 5), "f4"),
    ("big", (50, 30), (20, 16), (8, 8), ">i8"),
    ("bool", (40, 40), (16, 16), (8, 8), "?"),
]


@pytest.fixture(scope="module")
def published(cat2_server: Any) -> tuple[str, dict[str, np.ndarray]]:
    """A directory of .b2nd arrays (the first chunk of each all zeros) and an HDF5 file."""
    folder, url = public_folder(cat2_server, "engine")
    rng = np.random.default_rng(19)
    arrays: dict[str, np.ndarray] = {}
    for name, shape, chunks, blocks, dtype in CASES:
        dt = np.dtype(dtype)
        if dt.kind == "b":
            a = rng.random(shape) > 0.5
        elif dt.kind == "f":
            a = rng.standard_normal(shape).astype(dt)
        else:
            a = rng.integers(-(2**30), 2**30, size=shape).astype(dt)
        a[tuple(slice(0, c) for c in chunks)] = 0
        blosc2.asarray(a, chunks=chunks, blocks=blocks, urlpath=str(folder / f"{name}.b2nd"),
                       mode="w")  # fmt: skip
        arrays[f"{name}.b2nd"] = a
    import h5py
    import hdf5plugin

    h = np.arange(100 * 51, dtype="<i2").reshape(100, 51)
    with h5py.File(folder / "h.h5", "w") as f:
        f.create_dataset("b2", data=h, chunks=(33, 51), **hdf5plugin.Blosc2())
        f.create_dataset("gz", data=h.astype("f4"), chunks=(30, 20), compression="gzip")
    arrays["h.h5/b2"] = h
    arrays["h.h5/gz"] = h.astype("f4")
    return url, arrays


def test_blosc2_datasets_take_the_whole_chunk_path(published: Any, so: dict[str, Any]) -> None:
    """Every .b2nd dataset but the big-endian one, which the filesystem serves as plain bytes
    (codec ``bytes``: not a Blosc2 chunk, so zarr's path)."""
    url, arrays = published
    ds = open_caterva2(url, so)
    for name in arrays:
        if name.endswith(".b2nd"):
            whole = isinstance(innermost_array(ds, name), WholeChunkArrayWrapper)
            assert whole == (name != "big.b2nd"), name


@pytest.mark.filterwarnings("ignore:The specified chunks separate")
@pytest.mark.parametrize(
    "chunks", [None, {}, "multiples", "unaligned"], ids=["no-dask", "server", "x2", "unaligned"]
)
def test_values_equal_the_arrays_written(
    published: Any, so: dict[str, Any], chunks: object
) -> None:
    url, arrays = published
    for name, expected in arrays.items():
        if not name.endswith(".b2nd"):
            continue
        kw: dict[str, Any] = {}
        if chunks == "multiples":
            var = open_caterva2(url, so)[name]
            kw["chunks"] = {d: 2 * c for d, c in zip(var.dims, var.encoding["chunks"], strict=True)}
        elif chunks == "unaligned":
            kw["chunks"] = {d: 7 for d in open_caterva2(url, so)[name].dims}
        elif chunks is not None:
            kw["chunks"] = chunks
        with dask.config.set(scheduler="threads", num_workers=2):
            got = open_caterva2(url, so, mask_and_scale=False, **kw)[name].values
        np.testing.assert_array_equal(got, expected, err_msg=name)
        assert got.dtype == expected.dtype.newbyteorder("=") or got.dtype == expected.dtype, name


def test_same_dataset_as_open_zarr(published: Any, so: dict[str, Any]) -> None:
    url, _ = published
    fast = open_caterva2(url, so, chunks={}).load()
    slow = xr.open_zarr(url, storage_options={**so, "dataset_as": "array"}).load()
    xr.testing.assert_identical(fast, slow)


@pytest.mark.parametrize("name", ["d3.b2nd", "big.b2nd", "h.h5/b2"])
def test_dataset_url(published: Any, so: dict[str, Any], name: str) -> None:
    """A dataset URL opens as xr.open_zarr opens it: one variable, named after the dataset."""
    url, arrays = published
    ds = open_caterva2(f"{url}/{name}", so, chunks={})
    like = xr.open_zarr(f"{url}/{name}", storage_options=so)
    assert list(ds.data_vars) == list(like.data_vars) == [name.rpartition("/")[2]]
    xr.testing.assert_identical(ds.load(), like.load())
    np.testing.assert_array_equal(ds[name.rpartition("/")[2]].values, arrays[name])


def test_hdf5_file_on_the_server(published: Any, so: dict[str, Any]) -> None:
    """Datasets inside an HDF5 file (served through the slice endpoint) read right, on
    whichever path their metadata allows."""
    url, arrays = published
    ds = open_caterva2(url, so, group="h.h5", chunks={})
    for name in ("b2", "gz"):
        np.testing.assert_array_equal(ds[name].values, arrays[f"h.h5/{name}"], err_msg=name)


def test_reads_fill_the_chunk_cache(published: Any, so: dict[str, Any]) -> None:
    url, arrays = published
    cache = Path(so["cache_storage"])
    open_caterva2(url, so, chunks={})["d2.b2nd"].load()
    assert cache.is_dir() and any(p.is_file() for p in cache.rglob("*"))
    again = open_caterva2(url, so, chunks={})["d2.b2nd"].values  # a new filesystem, the cache warm
    np.testing.assert_array_equal(again, arrays["d2.b2nd"])


def test_pickled_for_dask_workers(published: Any, so: dict[str, Any]) -> None:
    url, arrays = published
    lazy = pickle.loads(pickle.dumps(open_caterva2(url, so)))
    assert isinstance(innermost_array(lazy, "d4.b2nd"), WholeChunkArrayWrapper)
    np.testing.assert_array_equal(lazy["d4.b2nd"].values, arrays["d4.b2nd"])
    chunked = pickle.loads(pickle.dumps(open_caterva2(url, so, chunks={})))
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(chunked["d4.b2nd"].values, arrays["d4.b2nd"])


def test_corrupt_chunk_names_the_url_and_key(cat2_server: Any, so: dict[str, Any]) -> None:
    """A chunk whose bytes were damaged on the server: a CodecError naming the dataset's
    caterva2 URL and the chunk (zarr's pipeline names neither), once also when the dataset URL
    is opened (its group view's key repeats the dataset's name)."""
    folder, url = public_folder(cat2_server, "engine-bad")
    a = np.arange(64 * 64, dtype="i4").reshape(64, 64) * 7919
    arr = blosc2.asarray(a, chunks=(32, 64), blocks=(8, 64), urlpath=str(folder / "x.b2nd"),
                         mode="w")  # fmt: skip
    offsets = arr.schunk.get_chunk(1)  # the second chunk's bytes, found in the file
    raw = bytearray((folder / "x.b2nd").read_bytes())
    at = raw.find(offsets)
    assert at > 0
    raw[at + 16 : at + 48] = b"\xa5" * 32  # past the chunk header: its block offsets
    (folder / "x.b2nd").write_bytes(bytes(raw))
    for opened in (url, f"{url}/x.b2nd"):
        with (
            pytest.raises(
                CodecError, match=r"caterva2://.*/engine-bad[^/]*/x\.b2nd: chunk \(1, 0\)"
            ),
            dask.config.set(scheduler="sync"),
        ):
            open_caterva2(opened, so, chunks={})["x.b2nd"].load()


def test_refusals(cat2_server: Any, so: dict[str, Any], tmp_path: Path) -> None:
    url = f"caterva2://{cat2_server.host}/@public"
    with pytest.raises(ValueError, match='engine="b2h5"'):
        xr.open_dataset(str(tmp_path / "f.h5"), engine="caterva2")
    with pytest.raises(TypeError, match="caterva2://"):
        xr.open_dataset(b"caterva2://x", engine="caterva2")
    with pytest.raises(PermissionError, match="read-only") as info:
        Caterva2BackendEntrypoint().open_dataset(
            f"caterva2://me:s3cret@{cat2_server.host}/@public", mode="w"
        )
    assert "s3cret" not in str(info.value) and "***@" in str(info.value)
    with pytest.raises(ValueError, match=r"http://\*\*\*@h/x\.h5") as info:
        xr.open_dataset("http://me:s3cret@h/x.h5", engine="caterva2")
    with pytest.raises(ValueError, match="zarr_format=2"):
        open_caterva2(url, so, zarr_format=2)
    with pytest.raises(ValueError, match="dataset_as='array'"):
        open_caterva2(url, {**so, "dataset_as": "array"})
    entry = Caterva2BackendEntrypoint()
    assert entry.guess_can_open("caterva2://h:1/@public/x.b2nd")
    assert entry.guess_can_open("caterva2s://h/@public")
    assert not entry.guess_can_open("b2h5::f.h5") and not entry.guess_can_open(tmp_path)


def test_missing_dataset_is_file_not_found(published: Any, so: dict[str, Any]) -> None:
    url, _ = published
    with pytest.raises(FileNotFoundError, match=r"nope\.b2nd: no such dataset.*See what") as info:
        open_caterva2(f"{url}/nope.b2nd", so)
    chained = info.value.__cause__ or info.value.__context__
    assert "No group found" not in repr(chained)  # zarr's error (it quotes the URL as typed)
    with pytest.raises(FileNotFoundError, match=r"/nodir: no such dataset.*See what"):
        open_caterva2(url, so, group="nodir")  # zarr: a bare KeyError
    host = url.split("://", 1)[1].split("/", 1)[0]
    with pytest.raises(FileNotFoundError, match="no root '@nope'"):
        open_caterva2(f"caterva2://{host}/@nope/x.b2nd", so)
