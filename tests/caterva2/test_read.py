"""Every chunk read through zarr, xarray and dask equals the source, for the dataset kinds a
Caterva2 server serves: .b2nd (1-D to 4-D, several dtypes, edge chunks, blocks smaller than chunks,
all-zero chunks, big-endian), .b2frame and datasets inside HDF5 files (slice path); structured
dtypes with big-endian fields, codecs that need the array metadata (ZFP, NDCELL, NDMEAN); and
what is not an array: plain files, dtypes without a Zarr equivalent, odd names in a directory."""

from __future__ import annotations

import json
import pickle
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blosc2
import dask.array as da
import fsspec
import numpy as np
import pytest
import xarray as xr
import zarr
from _c2server import Server, public_folder, start_server

from b2store.caterva2.filesystem import Caterva2FileSystem
from b2store.caterva2.metadata import UnsupportedCaterva2DatasetError

CASES = [
    # name, shape, chunks, blocks, dtype
    ("d1", (1000,), (300,), (64,), "i4"),
    ("d2", (97, 131), (40, 50), (16, 25), "f8"),
    ("d2u1", (64, 65), (32, 32), (32, 32), "u1"),
    ("d3", (7, 45, 33), (3, 20, 16), (1, 8, 16), "u2"),
    ("d4", (5, 6, 7, 9), (2, 3, 4, 5), (1, 2, 2, 5), "f4"),
    ("big", (50, 30), (20, 16), (8, 8), ">i8"),
    ("bool", (40, 40), (16, 16), (8, 8), "?"),
]


def _data(shape: tuple[int, ...], dtype: str, rng: np.random.Generator) -> Any:
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(shape) > 0.5
    if dt.kind == "f":
        return rng.standard_normal(shape).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dt)


@pytest.fixture(scope="module")
def published(cat2_server: Any) -> tuple[str, dict[str, np.ndarray]]:
    """A directory of .b2nd arrays (some chunks all zero), a .b2frame and an HDF5 file."""
    folder, _url = public_folder(cat2_server, "read")
    rng = np.random.default_rng(42)
    arrays: dict[str, np.ndarray] = {}
    for name, shape, chunks, blocks, dtype in CASES:
        a = _data(shape, dtype, rng)
        a[tuple(slice(0, c) for c in chunks)] = 0  # the first chunk is all zeros
        arr = blosc2.asarray(
            a, chunks=chunks, blocks=blocks, urlpath=str(folder / f"{name}.b2nd"), mode="w"
        )
        arr.vlmeta["units"] = "counts"
        arrays[f"{name}.b2nd"] = a
    z = blosc2.zeros((100, 100), dtype="f4", chunks=(50, 50), blocks=(25, 25),
                     urlpath=str(folder / "zeros.b2nd"), mode="w")  # fmt: skip
    arrays["zeros.b2nd"] = z[...]
    blosc2.asarray(np.array(7.5), urlpath=str(folder / "scalar.b2nd"), mode="w")
    arrays["scalar.b2nd"] = np.array(7.5)
    raw = np.arange(2501, dtype="f8")  # last chunk short
    schunk = blosc2.SChunk(chunksize=4000, data=raw.tobytes(), urlpath=str(folder / "s.b2frame"),
                           mode="w", cparams={"typesize": 8})  # fmt: skip
    schunk.vlmeta["dtype"] = "<f8"
    arrays["s.b2frame"] = raw
    import h5py
    import hdf5plugin

    h = np.arange(100 * 51, dtype=">f4").reshape(100, 51)
    with h5py.File(folder / "h.h5", "w") as f:
        f.create_dataset("grp/gz", data=h, chunks=(30, 20), compression="gzip")
        f.create_dataset("b2", data=h.astype("<i2"), chunks=(33, 51), **hdf5plugin.Blosc2())
        f.create_dataset("contig", data=np.arange(10, dtype="u2"))
    arrays["h.h5/grp/gz"] = h
    arrays["h.h5/b2"] = h.astype("<i2")
    arrays["h.h5/contig"] = np.arange(10, dtype="u2")
    return f"@public/{folder.name}", arrays


def test_group_tree(cat2_server: Any, published: Any, so: dict[str, Any]) -> None:
    path, arrays = published
    g = zarr.open_group(f"caterva2://{cat2_server.host}/{path}", mode="r", storage_options=so)
    members = {name for name, _ in g.members(max_depth=None)}
    assert set(arrays) <= members
    for name, expected in arrays.items():
        got = g[name][...]
        if name == "s.b2frame":
            assert got.dtype == np.dtype("<f8")
        np.testing.assert_array_equal(got, expected, err_msg=name)
        if name.endswith(".b2nd") and name not in ("zeros.b2nd", "scalar.b2nd"):
            assert g[name].attrs["units"] == "counts"


@pytest.mark.parametrize("dataset_as", ["auto", "array"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_chunk_via_dask(
    cat2_server: Any, published: Any, so: dict[str, Any], case: Any, dataset_as: str
) -> None:
    """Zarr v2 (the default dual view) and v3 (``dataset_as="array"``) array views."""
    path, arrays = published
    name, _shape, chunks, *_ = case
    url = f"caterva2://{cat2_server.host}/{path}/{name}.b2nd"
    so = {**so, "dataset_as": dataset_as}
    d = da.from_zarr(url, storage_options=so)
    assert d.chunks == da.core.normalize_chunks(chunks, d.shape)
    expected = arrays[f"{name}.b2nd"]
    np.testing.assert_array_equal(d.compute(), expected)
    # every chunk on its own, edge chunks included
    z = zarr.open_array(url, mode="r", storage_options=so)
    assert z.metadata.zarr_format == (2 if dataset_as == "auto" else 3)
    for idx in np.ndindex(*z.cdata_shape):
        sel = tuple(slice(i * c, (i + 1) * c) for i, c in zip(idx, chunks, strict=True))
        np.testing.assert_array_equal(z[sel], expected[sel], err_msg=f"{name} chunk {idx}")


def test_xarray_directory(cat2_server: Any, published: Any, so: dict[str, Any]) -> None:
    path, arrays = published
    ds = xr.open_zarr(f"caterva2://{cat2_server.host}/{path}", storage_options=so)
    for name in [n for n in arrays if not n.startswith("h.h5/")]:
        np.testing.assert_array_equal(ds[name].values, arrays[name], err_msg=name)
    assert ds["d2.b2nd"].attrs["units"] == "counts"
    h5 = xr.open_zarr(f"caterva2://{cat2_server.host}/{path}/h.h5/grp", storage_options=so)
    np.testing.assert_array_equal(h5["gz"].values, arrays["h.h5/grp/gz"])


DUAL = ["d3.b2nd", "big.b2nd", "bool.b2nd", "zeros.b2nd", "scalar.b2nd", "s.b2frame",
        "h.h5/grp/gz"]  # fmt: skip


@pytest.mark.parametrize("name", DUAL)
def test_dataset_url_is_array_and_group(
    cat2_server: Any, published: Any, so: dict[str, Any], name: str
) -> None:
    """One dataset URL: an array for zarr/dask, a group holding it for xarray (v2 dual view)."""
    path, arrays = published
    url = f"caterva2://{cat2_server.host}/{path}/{name}"
    var = name.rsplit("/", 1)[-1]
    expected = arrays[name]
    z = zarr.open_array(url, mode="r", storage_options=so)
    assert z.metadata.zarr_format == 2 and z.shape == expected.shape
    np.testing.assert_array_equal(z[...], expected)
    np.testing.assert_array_equal(da.from_zarr(url, storage_options=so).compute(), expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # consolidated metadata found: no fallback warning
        ds = xr.open_zarr(url, storage_options=so)
    assert list(ds.data_vars) == [var]
    assert "_ARRAY_DIMENSIONS" not in ds.attrs
    np.testing.assert_array_equal(ds[var].values, expected)
    assert ds[var].dtype == expected.dtype.newbyteorder("=")
    assert ds[var].dims == tuple(f"{var}_dim{i}" for i in range(expected.ndim))
    for consolidated in (None, True, False):
        ds = xr.open_zarr(url, storage_options=so, consolidated=consolidated)
        np.testing.assert_array_equal(ds[var].values, expected)
    g = zarr.open_group(url, mode="r", storage_options=so)
    assert [k for k, _ in g.members()] == [var]
    np.testing.assert_array_equal(g[var][...], expected)
    if name.endswith(".b2nd") and name not in ("zeros.b2nd", "scalar.b2nd"):
        assert z.attrs["units"] == ds.attrs["units"] == ds[var].attrs["units"] == "counts"


def test_directory_group_and_datatree(cat2_server: Any, published: Any, so: dict[str, Any]) -> None:
    path, arrays = published
    dir_url = f"caterva2://{cat2_server.host}/{path}"
    ds = xr.open_zarr(dir_url, group="h.h5/grp", storage_options=so)  # an HDF5 group
    np.testing.assert_array_equal(ds["gz"].values, arrays["h.h5/grp/gz"])
    tree = xr.open_datatree(dir_url, engine="zarr", storage_options=so)
    np.testing.assert_array_equal(tree["d4.b2nd"].values, arrays["d4.b2nd"])
    np.testing.assert_array_equal(tree["h.h5/b2"].values, arrays["h.h5/b2"])
    tree = xr.open_datatree(f"{dir_url}/d1.b2nd", engine="zarr", storage_options=so)
    np.testing.assert_array_equal(tree["d1.b2nd"].values, arrays["d1.b2nd"])


@pytest.mark.parametrize("dataset_as", ["array", "group"])
def test_dataset_as_v3_views(
    cat2_server: Any, published: Any, so: dict[str, Any], dataset_as: str
) -> None:
    """The explicit v3 views: an array only (partial decoding) or a group holding it."""
    path, arrays = published
    url = f"caterva2://{cat2_server.host}/{path}/d3.b2nd"
    so = {**so, "dataset_as": dataset_as}
    if dataset_as == "array":
        z = zarr.open_array(url, mode="r", storage_options=so)
        assert z.metadata.zarr_format == 3
        np.testing.assert_array_equal(z[...], arrays["d3.b2nd"])
        with pytest.raises(zarr.errors.ContainsArrayError, match="array already exists"):
            xr.open_zarr(url, storage_options=so)
    else:
        ds = xr.open_zarr(url, storage_options=so)
        np.testing.assert_array_equal(ds["d3.b2nd"].values, arrays["d3.b2nd"])
        assert zarr.open_group(url, mode="r", storage_options=so).metadata.zarr_format == 3
    with pytest.raises(ValueError, match="Expected dataset_as 'auto', 'array' or 'group'"):
        Caterva2FileSystem(host=cat2_server.host, **{**so, "dataset_as": "tree"})


def test_unconsolidated_directory_needs_v3_datasets(
    cat2_server: Any, published: Any, so: dict[str, Any]
) -> None:
    """Known limit: a v3 directory group opened *without* consolidated metadata looks up each
    dataset's ``zarr.json``, which the v2 dual view does not serve; zarr then warns and skips the
    dataset. ``dataset_as="array"`` serves it (and xarray's default reads consolidated metadata)."""
    path, arrays = published
    dir_url = f"caterva2://{cat2_server.host}/{path}"
    with pytest.warns(UserWarning, match="not recognized"):
        g = zarr.open_group(dir_url, mode="r", storage_options=so, use_consolidated=False)
        assert "d1.b2nd" not in dict(g.members())
    g = zarr.open_group(dir_url, mode="r", use_consolidated=False,
                        storage_options={**so, "dataset_as": "array"})  # fmt: skip
    np.testing.assert_array_equal(g["d1.b2nd"][...], arrays["d1.b2nd"])


def test_issue_examples_as_typed(
    cat2_server: Any, published: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """The URL forms of the issue, literally: no storage options (cache in the default folder)."""
    monkeypatch.setenv("B2STORE_CACHE", str(tmp_path / "default-cache"))
    path, arrays = published
    host = cat2_server.host  # 127.0.0.1:<free port>
    ds = xr.open_zarr(f"caterva2://{host}/{path}/d3.b2nd")
    np.testing.assert_array_equal(ds["d3.b2nd"].values, arrays["d3.b2nd"])
    d = da.from_zarr(f"caterva2://{host}/{path}/d3.b2nd")
    np.testing.assert_array_equal(d.compute(), arrays["d3.b2nd"])
    g = zarr.open_group(f"caterva2://{host}/{path}")
    np.testing.assert_array_equal(g["d2.b2nd"][...], arrays["d2.b2nd"])
    assert list((tmp_path / "default-cache").rglob("*.c2c"))


def test_hdf5_leaf_uses_slices(cat2_server: Any, published: Any, so: dict[str, Any]) -> None:
    path, arrays = published
    url = f"caterva2://{cat2_server.host}/{path}/h.h5/grp/gz"
    z = zarr.open_array(url, mode="r", storage_options={**so, "dataset_as": "array"})
    assert z.metadata.codecs[0].to_dict()["name"] == "bytes"
    z = zarr.open_array(url, mode="r", storage_options=so)
    assert z.metadata.compressor is None  # v2 view: decoded little-endian bytes
    np.testing.assert_array_equal(
        da.from_zarr(url, storage_options=so).compute(), arrays["h.h5/grp/gz"]
    )


def test_out_of_grid_key_is_missing_without_request(
    cat2_server: Any, published: Any, so: dict[str, Any]
) -> None:
    path, _ = published
    fs = Caterva2FileSystem(host=cat2_server.host, **so)
    with pytest.raises(FileNotFoundError, match="outside the chunk grid"):
        fs.cat_file(f"{path}/d2.b2nd/c/99/0")
    with pytest.raises(FileNotFoundError, match="outside the chunk grid"):
        fs.cat_file(f"{path}/d2.b2nd/3.0")  # v2 key: the grid is (3, 3)
    with pytest.raises(FileNotFoundError, match="outside the chunk grid"):
        fs.cat_file(f"{path}/d2.b2nd/0.0.0")
    with pytest.raises(FileNotFoundError, match="served as Zarr v2"):
        fs.cat_file(f"{path}/d2.b2nd/zarr.json")  # the dual view has no zarr.json
    with pytest.raises(FileNotFoundError, match="Zarr v3 groups"):
        fs.cat_file(f"{path}/.zgroup")  # directories are v3 only
    with pytest.raises(FileNotFoundError, match=r"has no \.zgroup"):
        fs.cat_file(f"{path}/d2.b2nd/d2.b2nd/.zgroup")
    with pytest.raises(FileNotFoundError):
        fs.cat_file(f"{path}/nothing.b2nd/.zarray")
    v3 = Caterva2FileSystem(host=cat2_server.host, **{**so, "dataset_as": "array"})
    with pytest.raises(FileNotFoundError, match="Zarr v3 only"):
        v3.cat_file(f"{path}/d2.b2nd/.zarray")


def test_filesystem_pickles_and_lists(cat2_server: Any, published: Any, so: dict[str, Any]) -> None:
    path, _arrays = published
    fs = Caterva2FileSystem(host=cat2_server.host, **so)
    zarray = json.loads(fs.cat_file(f"{path}/d1.b2nd/.zarray"))
    assert zarray["fill_value"] is None  # no _FillValue: xarray masks nothing (no NaN trap)
    assert zarray["compressor"] == {"id": "b2store_b2nd", "chunkshape": [300], "blocks": [64]}
    clone = pickle.loads(pickle.dumps(fs))
    assert clone.cat_file(f"{path}/d1.b2nd/c/1") == fs.cat_file(f"{path}/d1.b2nd/c/1")
    assert fs.cat_file(f"{path}/d1.b2nd/1") == fs.cat_file(f"{path}/d1.b2nd/d1.b2nd/1")
    assert fs.cat_file(f"{path}/d1.b2nd/1") == fs.cat_file(f"{path}/d1.b2nd/c/1")
    names = fs.ls(path, detail=False)
    assert f"{path}/d1.b2nd" in names and f"{path}/h.h5" in names
    assert sorted(fs.ls(f"{path}/d1.b2nd", detail=False)) == [
        f"{path}/d1.b2nd/{k}" for k in (".zarray", ".zattrs", ".zgroup", ".zmetadata", "d1.b2nd")
    ]
    assert fs.info(f"{path}/d1.b2nd")["type"] == "directory"
    assert fs.info(f"{path}/d1.b2nd/.zmetadata")["type"] == "file"
    with pytest.raises(PermissionError):
        fs.pipe_file(f"{path}/d1.b2nd/c/0", b"x")


def test_readahead_on_sequential_reads_only(fault_proxy: Any, so: dict[str, Any]) -> None:
    folder, _url = public_folder(fault_proxy, "ra")
    a = np.arange(16 * 10 * 10, dtype="i4").reshape(16, 10, 10)
    blosc2.asarray(a, chunks=(1, 10, 10), blocks=(1, 5, 10),
                   urlpath=str(folder / "r.b2nd"), mode="w")  # fmt: skip
    path = f"@public/{folder.name}/r.b2nd"
    fs = Caterva2FileSystem(host=fault_proxy.host, **{**so, "cache_storage": None})
    fs.cat_file(f"{path}/.zarray")
    chunks = lambda: [p for p in fault_proxy.requests if "/api/chunk" in p]  # noqa: E731
    fs.cat_file(f"{path}/c/9/0/0")
    fs.cat_file(f"{path}/c/3/0/0")  # random access: no readahead
    assert len(chunks()) == 2
    for i in range(16):  # sequential: readahead, and no chunk is fetched twice
        got = np.frombuffer(blosc2.decompress2(fs.cat_file(f"{path}/c/{i}/0/0")), dtype="i4")
        assert got.reshape(10, 10).tolist() == a[i].tolist()
    numbers = [int(p.rsplit("nchunk=", 1)[1]) for p in chunks()]
    assert sorted(set(numbers)) == list(range(16))
    assert len(numbers) <= 16 + 2


@pytest.mark.parametrize("memory", [0, 3 * 400])
def test_readahead_without_disk_cache_fits_memory(
    fault_proxy: Any, so: dict[str, Any], memory: int
) -> None:
    """Without a disk cache, readahead prefetches only what the memory cache keeps: with
    memory_cache_size=0 every prefetched chunk was dropped before it was read and fetched
    again (two requests per chunk)."""
    folder, _url = public_folder(fault_proxy, "ra0")
    a = np.arange(16 * 10 * 10, dtype="i4").reshape(16, 10, 10)
    blosc2.asarray(a, chunks=(1, 10, 10), blocks=(1, 5, 10),
                   urlpath=str(folder / "r.b2nd"), mode="w")  # fmt: skip
    path = f"@public/{folder.name}/r.b2nd"
    opts = {**so, "cache_storage": None, "memory_cache_size": memory, "readahead": 8}
    fs = Caterva2FileSystem(host=fault_proxy.host, **opts)
    fs.cat_file(f"{path}/.zarray")
    fault_proxy.requests.clear()
    for i in range(16):
        got = np.frombuffer(blosc2.decompress2(fs.cat_file(f"{path}/c/{i}/0/0")), dtype="i4")
        assert got.reshape(10, 10).tolist() == a[i].tolist()
    numbers = [int(p.rsplit("nchunk=", 1)[1]) for p in fault_proxy.requests if "/api/chunk" in p]
    assert sorted(numbers) == list(range(16))


def test_sub_chunk_selection_loads_chunk_once(fault_proxy: Any, so: dict[str, Any]) -> None:
    """zarr's partial decoding asks for byte ranges of one chunk: one request, right values."""
    folder, base = public_folder(fault_proxy, "sub")
    a = np.random.default_rng(5).integers(0, 60000, size=(4, 64, 96), dtype="u2")
    blosc2.asarray(a, chunks=(2, 64, 96), blocks=(1, 16, 96),
                   urlpath=str(folder / "p.b2nd"), mode="w")  # fmt: skip
    for cache in (None, so["cache_storage"]):
        fault_proxy.requests.clear()
        opts = {**so, "cache_storage": cache, "dataset_as": "array"}  # v3: partial decoding
        z = zarr.open_array(f"{base}/p.b2nd", mode="r", storage_options=opts)
        np.testing.assert_array_equal(z[1, 3:40, 5:9], a[1, 3:40, 5:9])
        np.testing.assert_array_equal(z[3], a[3])
        assert sum("/api/chunk" in p for p in fault_proxy.requests) <= 2


def test_protocols_resolve_through_entry_points() -> None:
    import fsspec

    from b2store.caterva2.filesystem import Caterva2SFileSystem

    assert fsspec.get_filesystem_class("caterva2") is Caterva2FileSystem
    assert fsspec.get_filesystem_class("caterva2s") is Caterva2SFileSystem
    fs, path = fsspec.url_to_fs(
        "caterva2s://data.example.org/@public/tomo/scan.b2nd", cache_storage=None
    )
    assert isinstance(fs, Caterva2SFileSystem) and path == "@public/tomo/scan.b2nd"
    assert fs.client.url("chunk", path) == (
        "https://data.example.org/api/chunk/@public/tomo/scan.b2nd"
    )
    fs, path = fsspec.url_to_fs("caterva2://me:secret@127.0.0.1:9/@public/a b.b2nd",
                                cache_storage=None)  # fmt: skip
    assert fs.base_url == "http://127.0.0.1:9" and "secret" not in repr(fs)
    assert fs.client.url("info", path).endswith("/api/info/@public/a%20b.b2nd")


def test_server_url_is_a_group_of_roots(
    cat2_server: Any, published: Any, so: dict[str, Any]
) -> None:
    """``caterva2://host:port/`` is a group (no consolidated metadata: it would describe the
    whole server) whose members are the roots; datasets are reached through them."""
    path, arrays = published  # "@public/read-<id>"
    root, rel = path.split("/", 1)
    url = f"caterva2://{cat2_server.host}/"
    g = zarr.open_group(url, mode="r", storage_options=so)
    assert g.metadata.zarr_format == 3 and g.metadata.consolidated_metadata is None
    members = dict(g.members())
    assert root in members and isinstance(members[root], zarr.Group)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zarr warns for names it cannot place (was: one per key)
        deep = dict(g.members(max_depth=None))
    assert f"{path}/d2.b2nd" in deep and f"{path}/h.h5/grp/gz" in deep
    np.testing.assert_array_equal(g[root][f"{rel}/d2.b2nd"][...], arrays["d2.b2nd"])
    np.testing.assert_array_equal(g[root][f"{rel}/h.h5/grp/gz"][...], arrays["h.h5/grp/gz"])


def test_names_that_look_like_keys_or_escapes(cat2_server: Any, so: dict[str, Any]) -> None:
    """A server name with a literal ``%20`` (URLs are percent-decoded once, store paths never:
    was zeros), and HDF5 datasets named ``c`` or under a group ``c`` (``f.h5/c/0`` is the v2
    chunk key of dataset ``c``, not chunk 0 of the file group: was zeros)."""
    import h5py

    folder, base = public_folder(cat2_server, "names")
    a = np.arange(12.0).reshape(3, 4)
    nd = blosc2.asarray(a, chunks=(2, 2), blocks=(1, 2), urlpath=str(folder / "p%20q.b2nd"))
    nd.vlmeta["dtype"] = "a user attribute"  # only a .b2frame's "dtype" is b2store's convention
    v = np.arange(10.0)
    with h5py.File(folder / "f.h5", "w") as f:
        f["c"] = v
        f.create_group("grp").create_group("c")["5"] = v
    g = zarr.open_group(base, mode="r", storage_options=so)
    np.testing.assert_array_equal(g["p%20q.b2nd"][...], a)
    assert g["p%20q.b2nd"].attrs["dtype"] == "a user attribute"
    url = f"{base}/p%2520q.b2nd"  # the URL form of the same name
    np.testing.assert_array_equal(zarr.open_array(url, mode="r", storage_options=so)[...], a)
    for leaf in ("c", "grp/c/5"):
        url = f"{base}/f.h5/{leaf}"
        np.testing.assert_array_equal(zarr.open_array(url, mode="r", storage_options=so)[...], v)


def test_b2frame_with_blocks_smaller_than_chunks(cat2_server: Any, so: dict[str, Any]) -> None:
    """Blosc2 splits MB-sized SChunk chunks into smaller blocks (was: every chunk refused)."""
    folder, base = public_folder(cat2_server, "frames")
    raw = np.arange(1_000_000, dtype="<f8")  # 8 MB in 4 MiB chunks, the last one short
    sc = blosc2.SChunk(chunksize=4 * 2**20, data=raw.tobytes(), urlpath=str(folder / "big.b2frame"),
                       mode="w", cparams={"typesize": 8})  # fmt: skip
    sc.vlmeta["dtype"] = "<f8"
    odd = np.arange(30, dtype="u1")  # chunks of 6 bytes with typesize 4: served as bytes
    blosc2.SChunk(chunksize=6, data=odd.tobytes(), urlpath=str(folder / "odd.b2frame"),
                  mode="w", cparams={"typesize": 4})  # fmt: skip
    z = zarr.open_array(f"{base}/big.b2frame", mode="r", storage_options=so)
    np.testing.assert_array_equal(z[...], raw)
    np.testing.assert_array_equal(z[524_000:525_000], raw[524_000:525_000])
    z = zarr.open_array(f"{base}/odd.b2frame", mode="r", storage_options=so)
    np.testing.assert_array_equal(z[...], odd)


def test_empty_arrays(cat2_server: Any, so: dict[str, Any]) -> None:
    """The server reports chunks (0, 5) for an empty array: served as an empty Zarr array (was:
    refused, and skipped from its directory)."""
    import h5py

    folder, base = public_folder(cat2_server, "empty")
    blosc2.zeros((0, 5), dtype="f4", urlpath=str(folder / "empty.b2nd"), mode="w")
    with h5py.File(folder / "f.h5", "w") as f:
        f.create_dataset("e", shape=(0,), dtype="i2")
    g = zarr.open_group(base, mode="r", storage_options=so)
    assert g["empty.b2nd"].shape == (0, 5) and g["empty.b2nd"][...].shape == (0, 5)
    assert g["f.h5/e"][...].shape == (0,)


# -- dataset kinds that need care ----------------------------------------------------------------


@pytest.mark.parametrize("dataset_as", ["auto", "array"])
def test_big_endian_b2frame_with_a_short_last_chunk(
    cat2_server: Any, so: dict[str, Any], dataset_as: str
) -> None:
    """A big-endian .b2frame (vlmeta dtype '>f8') whose last chunk is short (was: ValueError
    'cannot reshape array of size 488 into shape (1,512)')."""
    folder, base = public_folder(cat2_server, "beframe")
    raw = np.arange(1000, dtype=">f8")
    sc = blosc2.SChunk(chunksize=4096, data=raw.tobytes(), urlpath=str(folder / "be.b2frame"),
                       mode="w", cparams={"typesize": 8})  # fmt: skip
    sc.vlmeta["dtype"] = ">f8"
    z = zarr.open_array(
        f"{base}/be.b2frame", mode="r", storage_options={**so, "dataset_as": dataset_as}
    )
    assert z.dtype == np.dtype("<f8")
    np.testing.assert_array_equal(z[...], raw)
    np.testing.assert_array_equal(z[990:], raw[990:])


def test_structured_dtype_with_big_endian_fields(cat2_server: Any, so: dict[str, Any]) -> None:
    """A structured dtype with a big-endian field, in a .b2nd and in an HDF5 file: Zarr v3 (the
    directory group, dataset_as='array') keeps structured fields little-endian, so the bytes must
    be too (was: garbage in field 'b' through v3 views, xarray failed on the v2 view)."""
    import h5py
    import xarray as xr

    folder, base = public_folder(cat2_server, "structbe")
    st = np.zeros(29, dtype=[("a", "<i4"), ("b", ">f8"), ("c", "S3")])
    st["a"] = np.arange(29)
    st["b"] = np.arange(29) * 0.5
    st["c"] = b"xyz"
    blosc2.asarray(st, chunks=(8,), blocks=(4,), urlpath=str(folder / "s.b2nd"), mode="w")
    with h5py.File(folder / "f.h5", "w") as f:
        f.create_dataset("s", data=st, chunks=(4,))
    group = zarr.open_group(base, mode="r", storage_options=so)
    for key in ("s.b2nd", "f.h5/s"):
        for z in (
            group[key],
            zarr.open_array(f"{base}/{key}", mode="r", storage_options=so),
            zarr.open_array(
                f"{base}/{key}", mode="r", storage_options={**so, "dataset_as": "array"}
            ),
        ):
            got = z[...]
            for field in ("a", "b", "c"):
                np.testing.assert_array_equal(got[field], st[field], err_msg=f"{key} {field}")
    ds = xr.open_zarr(f"{base}/s.b2nd", storage_options=so)
    np.testing.assert_array_equal(ds["s.b2nd"].values["b"], st["b"])


@pytest.mark.parametrize(
    "cparams",
    [
        {"codec": blosc2.Codec.ZFP_ACC, "codec_meta": 5, "filters": []},
        {"codec": blosc2.Codec.ZFP_RATE, "codec_meta": 50, "filters": []},
        {"codec": blosc2.Codec.ZSTD, "filters": [blosc2.Filter.NDCELL], "filters_meta": [4]},
        {"codec": blosc2.Codec.ZSTD, "filters": [blosc2.Filter.NDMEAN], "filters_meta": [4]},
    ],
    ids=["zfp_acc", "zfp_rate", "ndcell", "ndmean"],
)
def test_codecs_that_need_the_array_metadata(
    cat2_server: Any, so: dict[str, Any], cparams: dict[str, Any]
) -> None:
    """ZFP codecs and the NDCELL/NDMEAN filters read the array's metalayer to decompress. Was:
    'corrupt Blosc2 chunk' (ZFP) or an error for every read; then read through the server's
    slower slice path; now their /api/chunk bytes are decoded by b2store.b2nd inside an
    NDArray from the chunk and block shapes (the dataset is in chunk mode)."""
    import asyncio

    from b2store.caterva2.metadata import CHUNK

    folder, base = public_folder(cat2_server, "ctxcodec")
    a = np.random.default_rng(0).standard_normal((33, 47)).astype("f4")
    arr = blosc2.asarray(a, chunks=(16, 16), blocks=(8, 8), cparams=cparams,
                         urlpath=str(folder / "a.b2nd"), mode="w")  # fmt: skip
    want = arr[...]  # lossy codecs: what python-blosc2 itself reads
    for dataset_as in ("auto", "array"):
        z = zarr.open_array(
            f"{base}/a.b2nd", mode="r", storage_options={**so, "dataset_as": dataset_as}
        )
        np.testing.assert_array_equal(z[...], want)
        np.testing.assert_array_equal(z[30:, 40:], want[30:, 40:])
    fs = fsspec.filesystem("caterva2", host=cat2_server.host, **so)
    path = base.split(cat2_server.host, 1)[1].strip("/") + "/a.b2nd"
    ds = asyncio.run_coroutine_threadsafe(fs._dataset(path), fs.loop).result()
    assert ds.mode == CHUNK


def test_transcoded_arrays_with_codecs_that_need_the_shapes(
    cat2_server: Any, so: dict[str, Any]
) -> None:
    """Big-endian and 0-d arrays are transcoded with decompress2 alone, which cannot decode
    ZFP/NDCELL chunks: those few go through the server's slice path and read as python-blosc2
    reads them."""
    folder, base = public_folder(cat2_server, "ctxtrans")
    a = np.random.default_rng(1).standard_normal((20, 21)).astype(">f4")
    big = blosc2.asarray(a, chunks=(16, 16), blocks=(8, 8), urlpath=str(folder / "be.b2nd"),
                         mode="w", cparams={"codec": blosc2.Codec.ZSTD, "filters_meta": [4],
                                            "filters": [blosc2.Filter.NDCELL]})  # fmt: skip
    zero_d = blosc2.asarray(np.float32(3.5), urlpath=str(folder / "s.b2nd"), mode="w",
                            cparams={"codec": blosc2.Codec.ZSTD, "filters_meta": [4],
                                     "filters": [blosc2.Filter.NDCELL]})  # fmt: skip
    z = zarr.open_array(f"{base}/be.b2nd", mode="r", storage_options=so)
    np.testing.assert_array_equal(z[...], big[...])
    z0 = zarr.open_array(f"{base}/s.b2nd", mode="r", storage_options=so)
    assert z0[()] == zero_d[()]


def test_transcoded_chunks_with_two_deltas_decode_on_one_thread(
    cat2_server: Any, so: dict[str, Any]
) -> None:
    """C-Blosc2 3.3 decodes chunks holding DELTA twice wrongly on several threads; transcoded
    chunks (any big-endian part) were decoded with decompress2's default thread count."""
    folder, base = public_folder(cat2_server, "twodelta")
    a = np.zeros((256, 256), dtype=[("a", ">u2"), ("b", "<u2")])
    a["a"] = (np.arange(256 * 256) * 7 % 65536).reshape(256, 256)
    a["b"] = (np.arange(256 * 256) * 3 % 65536).reshape(256, 256)
    blosc2.asarray(a, chunks=(256, 256), blocks=(8, 256), urlpath=str(folder / "d.b2nd"),
                   mode="w", cparams={"filters": [blosc2.Filter.DELTA, blosc2.Filter.DELTA],
                                      "filters_meta": [0, 0]})  # fmt: skip
    z = zarr.open_array(f"{base}/d.b2nd", mode="r", storage_options=so)
    got = z[...]
    np.testing.assert_array_equal(got["a"], a["a"])
    np.testing.assert_array_equal(got["b"], a["b"])


def test_b2frame_with_chunks_of_several_sizes(cat2_server: Any, so: dict[str, Any]) -> None:
    """An SChunk whose chunks were appended with different sizes (the server reports chunksize
    0) opened as 250 one-byte chunks, and reading failed with "chunk 0 ... decompresses to 100
    bytes, the dataset info promises 0; the dataset may have changed on the server". Now opening
    it says what it is; its directory skips it."""
    folder, base = public_folder(cat2_server, "uneven")
    sc = blosc2.SChunk(chunksize=100, urlpath=str(folder / "u.b2frame"), mode="w")
    for n in (100, 50, 100):
        sc.append_data(bytes(range(n)))
    blosc2.asarray(np.arange(3.0), urlpath=str(folder / "ok.b2nd"), mode="w")
    with pytest.raises(UnsupportedCaterva2DatasetError, match=r"u\.b2frame is an SChunk whose"):
        zarr.open_array(f"{base}/u.b2frame", mode="r", storage_options=so)
    assert list(zarr.open_group(base, mode="r", storage_options=so).array_keys()) == ["ok.b2nd"]


def test_plain_files_are_a_clear_error(cat2_server: Any, so: dict[str, Any]) -> None:
    """Files the server keeps as compressed bytes (.npy, .csv, .txt) are not arrays: opening one
    is a clear error naming it and exists() is False, as the directory listing skips them (was:
    served as a uint8 array of the file's bytes)."""
    folder, base = public_folder(cat2_server, "plain")
    np.save(folder / "arr.npy", np.arange(10))
    (folder / "t.csv").write_text("a,b\n1,2\n")
    blosc2.asarray(np.arange(3.0), urlpath=str(folder / "ok.b2nd"), mode="w")
    for name in ("arr.npy", "t.csv"):
        with pytest.raises(UnsupportedCaterva2DatasetError, match=f"{name} is a plain file"):
            zarr.open_array(f"{base}/{name}", mode="r", storage_options=so)
    fs, path = fsspec.url_to_fs(base, **so)
    assert not fs.exists(f"{path}/t.csv") and not fs.isdir(f"{path}/t.csv")
    with pytest.raises(FileNotFoundError, match="plain file"):
        fs.info(f"{path}/arr.npy")
    assert list(zarr.open_group(base, mode="r", storage_options=so).array_keys()) == ["ok.b2nd"]


def test_file_the_server_cannot_open_names_the_server_error(
    cat2_server: Any, so: dict[str, Any]
) -> None:
    """A truncated or half-written .b2nd/.b2frame: the server answers /api/info with 200
    {"error": "Unrecognized format"}; the error said the dataset "is neither an NDArray nor an
    SChunk (keys ['error', 'mtime'])" and that b2store serves .b2nd files, which it is."""
    folder, base = public_folder(cat2_server, "damaged")
    blosc2.asarray(np.arange(1000.0), urlpath=str(folder / "whole.b2nd"), mode="w")
    raw = (folder / "whole.b2nd").read_bytes()
    (folder / "cut.b2nd").write_bytes(raw[:200])
    (folder / "cut.b2frame").write_bytes(raw[:100])
    for name in ("cut.b2nd", "cut.b2frame"):
        with pytest.raises(UnsupportedCaterva2DatasetError,
                           match=rf"{name}: the server answers 'Unrecognized format'"):  # fmt: skip
            zarr.open_array(f"{base}/{name}", mode="r", storage_options=so)
    assert list(zarr.open_group(base, mode="r", storage_options=so).array_keys()) == ["whole.b2nd"]


def test_b2frame_with_a_structured_dtype_in_vlmeta(cat2_server: Any, so: dict[str, Any]) -> None:
    """vlmeta["dtype"] written as str(dtype) of a structured dtype ("[('a', '<i4'), ...]", as
    the server itself writes .b2nd dtypes) was not parsed: the .b2frame read as raw bytes."""
    folder, base = public_folder(cat2_server, "structframe")
    st = np.zeros(23, dtype=[("a", "<i4"), ("b", "<f8")])
    st["a"] = np.arange(23) - 5
    st["b"] = np.arange(23) * 0.25
    target = str(folder / "s.b2frame")
    sc = blosc2.SChunk(chunksize=st.itemsize * 5, data=st.tobytes(), urlpath=target, mode="w",
                       cparams={"typesize": st.itemsize})  # fmt: skip
    sc.vlmeta["dtype"] = str(st.dtype)
    for dataset_as in ("auto", "array"):
        z = zarr.open_array(
            f"{base}/s.b2frame", mode="r", storage_options={**so, "dataset_as": dataset_as}
        )
        assert z.dtype == st.dtype and z.shape == st.shape
        np.testing.assert_array_equal(z[...], st)
    ds = xr.open_zarr(f"{base}/s.b2frame", storage_options=so)
    np.testing.assert_array_equal(ds["s.b2frame"].values, st)


def test_data_errors_are_not_worded_as_server_failures(
    cat2_server: Any, so: dict[str, Any]
) -> None:
    """A dataset changed while open said "Caterva2 server error 200 for …": the server did not
    fail, the data no longer fits the open array."""
    import os

    from b2store.caterva2.chunks import Caterva2DataError

    folder, base = public_folder(cat2_server, "dataerr")
    path = folder / "a.b2nd"
    blosc2.asarray(np.arange(20.0), chunks=(10,), urlpath=str(path), mode="w")
    z = zarr.open_array(f"{base}/a.b2nd", mode="r",
                        storage_options={**so, "version_check_interval": 0})  # fmt: skip
    blosc2.asarray(-np.arange(30.0), chunks=(10,), urlpath=f"{path}.tmp", mode="w")
    os.replace(f"{path}.tmp", path)
    with pytest.raises(Caterva2DataError) as info:
        z[...]
    text = str(info.value)
    assert text.startswith("Caterva2 data error for ") and "server error" not in text
    assert "changed on the server while open" in text and "reopen it" in text


def test_hdf5_compound_with_padding(cat2_server: Any, so: dict[str, Any]) -> None:
    """A compound HDF5 type with gaps (offsets/itemsize, as C structs and aligned numpy dtypes
    make) is described by the server as "{'names': ..., 'offsets': ..., 'itemsize': 24}":
    np.dtype() raised a bare ValueError that took the whole file's group down with it. Now
    served packed (the fields, without the gaps)."""
    import h5py

    folder, base = public_folder(cat2_server, "padded")
    dt = np.dtype({"names": ["a", "b"], "formats": ["<i2", ">f8"], "offsets": [0, 8],
                   "itemsize": 24})  # fmt: skip
    a = np.zeros(13, dt)
    a["a"] = np.arange(13) - 3
    a["b"] = np.arange(13) * 0.5
    with h5py.File(folder / "p.h5", "w") as f:
        f.create_dataset("chunked", data=a, chunks=(4,))
        f.create_dataset("contiguous", data=a)
        f.create_dataset("plain", data=np.arange(5.0))
    for key in ("chunked", "contiguous"):
        for dataset_as in ("auto", "array"):
            z = zarr.open_array(
                f"{base}/p.h5/{key}", mode="r", storage_options={**so, "dataset_as": dataset_as}
            )
            assert z.dtype.names == ("a", "b")
            got = z[...]
            for field in ("a", "b"):
                np.testing.assert_array_equal(got[field], a[field], err_msg=f"{key} {field}")
    ds = xr.open_zarr(f"{base}/p.h5", storage_options=so)
    assert sorted(ds.data_vars) == ["chunked", "contiguous", "plain"]
    np.testing.assert_array_equal(ds["chunked"].values["b"], a["b"])


def test_b2frame_of_all_nan_special_chunks(cat2_server: Any, so: dict[str, Any]) -> None:
    """SChunk.fill_special(n, NAN) stores chunks as the special value "all NaN" (a bare header):
    the dataset URL's v2 view (zarr.open_array, xarray) failed with "CodecError: NaN special
    chunk for non-float dtype |V4", as its codec knows the item size only."""
    folder, base = public_folder(cat2_server, "nanframe")
    sc = blosc2.SChunk(chunksize=400, urlpath=str(folder / "n.b2frame"), mode="w",
                       cparams={"typesize": 4})  # fmt: skip
    sc.fill_special(250, blosc2.SpecialValue.NAN)  # chunks of 100, 100 and 50 floats
    sc.vlmeta["dtype"] = "float32"
    del sc
    want = np.full(250, np.nan, dtype="f4")
    for dataset_as in ("auto", "array"):
        z = zarr.open_array(
            f"{base}/n.b2frame", mode="r", storage_options={**so, "dataset_as": dataset_as}
        )
        np.testing.assert_array_equal(z[...], want)
    ds = xr.open_zarr(f"{base}/n.b2frame", storage_options=so)
    np.testing.assert_array_equal(ds["n.b2frame"].values, want)


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own, for datasets that directory groups skip (they would
    show up in other tests' walks from the server root, where zarr warns about them)."""
    server = start_server(tmp_path_factory.mktemp("cat2-own"))
    try:
        yield server
    finally:
        server.stop()


def test_dtypes_without_a_zarr_equivalent(own_server: Server, so: dict[str, Any]) -> None:
    """A datetime64 without unit or a nested structured dtype (.b2nd), or a .b2frame whose vlmeta
    dtype is 'O' or 'M8': one such dataset took its whole directory down (zarr failed rendering
    the consolidated metadata) and opening it gave zarr-internal errors. Now the .b2nd arrays
    are skipped with a clear error and the .b2frames fall back to bytes, like other unusable
    vlmeta dtypes."""
    folder, base = public_folder(own_server, "oddtypes")
    blosc2.asarray(np.zeros(5, dtype="M8"), urlpath=str(folder / "generic.b2nd"), mode="w")
    nested = np.zeros(7, dtype=[("a", ">i4", (2,)), ("b", [("c", ">f8"), ("d", "<u2")])])
    blosc2.asarray(nested, urlpath=str(folder / "nested.b2nd"), mode="w")  # was: TypeError
    blosc2.asarray(np.arange(4.0), urlpath=str(folder / "ok.b2nd"), mode="w")
    for name, dt in (("obj", "O"), ("m8", "M8")):
        path = str(folder / f"{name}.b2frame")
        sc = blosc2.SChunk(
            chunksize=80, data=bytes(range(200)), mode="w", urlpath=path, cparams={"typesize": 8}
        )
        sc.vlmeta["dtype"] = dt
    g = zarr.open_group(base, mode="r", storage_options=so)
    assert sorted(g.array_keys()) == ["m8.b2frame", "obj.b2frame", "ok.b2nd"]
    np.testing.assert_array_equal(g["ok.b2nd"][...], np.arange(4.0))
    for name in ("obj.b2frame", "m8.b2frame"):
        z = zarr.open_array(f"{base}/{name}", mode="r", storage_options=so)
        assert z.dtype == np.uint8
        np.testing.assert_array_equal(z[...], np.arange(200, dtype="u1"))
    with pytest.raises(UnsupportedCaterva2DatasetError, match=r"\(dtype datetime64\) cannot be"):
        zarr.open_array(f"{base}/generic.b2nd", mode="r", storage_options=so)


def test_odd_names_in_a_directory(cat2_server: Any, so: dict[str, Any]) -> None:
    """A backslash in one dataset's name broke the whole directory (zarr reads it as '/':
    KeyError ... not found in consolidated metadata): it is left out of the group, and still
    opens by its own URL. Upper-case suffixes are plain files on the server (F.H5 was an empty
    group with a warning). Other odd characters work."""
    import h5py
    import xarray as xr

    folder, base = public_folder(cat2_server, "names")
    names = ["a#b.b2nd", "q?x.b2nd", "p+l.b2nd", "semi;c.b2nd", "sp ace é.b2nd", "back\\slash.b2nd"]
    for i, name in enumerate(names):
        blosc2.asarray(np.full(3, i, dtype="i4"), urlpath=str(folder / name), mode="w")
    with h5py.File(folder / "F.H5", "w") as f:
        f["x"] = np.arange(3)
    ds = xr.open_zarr(base, storage_options=so)
    assert sorted(ds.data_vars) == sorted(names[:-1])
    for i, name in enumerate(names[:-1]):
        assert ds[name].values.tolist() == [i] * 3
    g = zarr.open_group(base, mode="r", storage_options=so)
    assert sorted(g.array_keys()) == sorted(names[:-1]) and list(g.group_keys()) == []
    z = zarr.open_array(f"{base}/back%5Cslash.b2nd", mode="r", storage_options=so)
    assert z[...].tolist() == [5] * 3


def _ctable(path: Path) -> None:
    """A two-column CTable saved as ``path`` (a .b2z the server serves as a table)."""
    from dataclasses import dataclass

    @dataclass
    class Row:
        x: int = blosc2.field(blosc2.int64())
        y: float = blosc2.field(blosc2.float64())

    table = blosc2.CTable(Row, urlpath=str(path), mode="w")
    table.extend([(i, i / 2) for i in range(10)])
    table.close()


def test_b2z_containers_are_groups_of_their_arrays(cat2_server: Any, so: dict[str, Any]) -> None:
    """The server browses .b2z TreeStores and DictStores as groups of arrays (``d.b2z/g/x``).
    Was: a directory listing left them out and a .b2z URL opened as an empty group (silently
    no data). Their leaves (NDArrays, SChunks) are read through /api/chunk (the server says
    accept_ranges null for them only because they have no file of their own). A flat
    DictStore key below another key's array is left out of the group (was: KeyError for the
    whole group). A CTable .b2z and a damaged .h5 are no groups: left out of their directory
    (the .h5 was an empty group), and their own URLs say what they are (was: "neither an
    NDArray nor an SChunk ... b2store serves HDF5 datasets")."""
    folder, base = public_folder(cat2_server, "b2z")
    rng = np.random.default_rng(3)
    a = rng.standard_normal((37, 41)).astype("f4")
    store = blosc2.DictStore(str(folder / "d s%.b2z"), mode="w", threshold=0)
    store["/big"] = blosc2.asarray(a, chunks=(16, 20), blocks=(8, 10))
    store["/g/h/be"] = blosc2.asarray(np.arange(50, dtype=">i4"), chunks=(20,), blocks=(10,))
    store["/small"] = np.arange(7, dtype="i2")  # below the threshold: embedded
    store["/frame"] = blosc2.SChunk(chunksize=16, data=bytes(range(40)))  # last chunk short
    store["/clash"] = np.arange(3)  # a DictStore is flat: a key may lie below another one
    store["/clash/below"] = np.arange(4)  # left out of the group (was: KeyError for all)
    store.close()
    tree = blosc2.TreeStore(str(folder / "t.b2z"), mode="w")
    tree["/a/b"] = blosc2.asarray(a, chunks=(16, 20), blocks=(8, 10))
    tree.close()
    _ctable(folder / "table.b2z")
    (folder / "bad.h5").write_bytes(b"not HDF5" * 10)
    expected = {
        "d s%.b2z/big": a,
        "d s%.b2z/g/h/be": np.arange(50, dtype=">i4"),
        "d s%.b2z/small": np.arange(7, dtype="i2"),
        "d s%.b2z/frame": np.arange(40, dtype="u1"),  # was: "a plain file"
        "d s%.b2z/clash": np.arange(3),
        "t.b2z/a/b": a,
    }
    g = zarr.open_group(base, mode="r", storage_options=so)
    assert list(g.array_keys()) == [] and sorted(g.group_keys()) == ["d s%.b2z", "t.b2z"]
    for key, values in expected.items():
        np.testing.assert_array_equal(g[key][...], values)
    fs, path = fsspec.url_to_fs(base, **so)
    for key, values in expected.items():
        url = fs.unstrip_protocol(f"{path}/{key}")
        z = zarr.open_array(url, mode="r", storage_options=so)
        np.testing.assert_array_equal(z[...], values)
    assert "d s%.b2z/clash/below" not in dict(g.members(max_depth=None))
    below = zarr.open_array(f"{base}/d%20s%25.b2z/clash/below", mode="r", storage_options=so)
    np.testing.assert_array_equal(below[...], np.arange(4))
    # the stored chunks, not the slice path (which re-compresses every request)
    codecs = [type(c).__name__ for c in g["t.b2z/a/b"].metadata.codecs]  # type: ignore[union-attr]
    assert "B2ndCodec" in codecs, codecs
    ds = xr.open_zarr(f"{base}/d%20s%25.b2z", storage_options=so)
    assert sorted(ds.data_vars) == ["big", "clash", "frame", "small"]
    np.testing.assert_array_equal(ds["big"].values, a)
    with pytest.raises(UnsupportedCaterva2DatasetError, match=r"table\.b2z is a CTable"):
        zarr.open_group(f"{base}/table.b2z", mode="r", storage_options=so)
    with pytest.raises(UnsupportedCaterva2DatasetError, match=r"cannot open .*bad\.h5 as a cont"):
        zarr.open_group(f"{base}/bad.h5", mode="r", storage_options=so)


@pytest.mark.parametrize(
    ("option", "value"),
    [("readahead", -1), ("readahead", "4"), ("readahead", 2.5), ("memory_cache_size", -1),
     ("memory_cache_size", float("inf")),
     ("version_check_interval", float("nan")), ("version_check_interval", -0.5)],
)  # fmt: skip
def test_numeric_options_are_validated(option: str, value: Any) -> None:
    """Negative or non-numeric readahead/memory_cache_size/version_check_interval were taken
    as given (a negative memory size trimmed every load; "4" failed deep inside with int()'s
    message): a ValueError naming the option. No server is contacted."""
    with pytest.raises(ValueError, match=f"Expected an? (integer|number) >= 0 for {option}"):
        Caterva2FileSystem(host="127.0.0.1:1", cache_storage=None, skip_instance_cache=True,
                           **{option: value})  # fmt: skip
    fs = Caterva2FileSystem(host="127.0.0.1:1", cache_storage=None, skip_instance_cache=True,
                            version_check_interval=float("inf"), readahead=0,
                            memory_cache_size=64e6)  # fmt: skip
    assert fs.version_check_interval == float("inf") and fs.readahead == 0
    assert fs.memory_cache_size == 64_000_000 and isinstance(fs.memory_cache_size, int)


def test_unknown_options_are_refused(cat2_server: Any, so: dict[str, Any]) -> None:
    """A misspelt option (cache_sise, timout) was stored and ignored, silently: a TypeError
    naming it and the options there are, through fsspec and through xarray's storage_options.
    fsspec's own options still pass."""
    with pytest.raises(TypeError, match=r"unknown option\(s\) 'cache_sise', 'timout'\. It "
                       r"takes host, .*cache_size_limit"):  # fmt: skip
        fsspec.filesystem("caterva2", host="127.0.0.1:1", timout=1, cache_sise=5)
    _, url = public_folder(cat2_server, "unknown-option")
    with pytest.raises(TypeError, match=r"'retires'"):
        xr.open_zarr(url, storage_options={**so, "retires": 0})
    fs = Caterva2FileSystem(host="127.0.0.1:1", cache_storage=None, skip_instance_cache=True,
                            use_listings_cache=False, asynchronous=False)  # fmt: skip
    assert fs.host == "127.0.0.1:1"
    # fsspec.open gives its file options (block_size, cache_type) to the constructor too
    folder, url = public_folder(cat2_server, "open-options")
    blosc2.asarray(np.arange(6.0), urlpath=str(folder / "a.b2nd"), mode="w")
    with fsspec.open(f"{url}/a.b2nd/.zarray", block_size=2**20, cache_type="none",
                     **so) as f:  # fmt: skip
        assert json.loads(f.read())["shape"] == [6]


def test_option_list_matches_the_constructor() -> None:
    """The options named in the unknown-option message are the constructor's keywords."""
    import inspect

    params = inspect.signature(Caterva2FileSystem.__init__).parameters
    named = [p for p in params if p not in ("self", "kwargs", "url_credentials")]
    with pytest.raises(TypeError) as err:
        Caterva2FileSystem(host="127.0.0.1:1", cache_storage=None, bogus=1)
    listed = str(err.value).split("It takes ", 1)[1].split(" (and fsspec", 1)[0]
    assert listed.split(", ") == named and "host" in named and "timeout" in named


def test_special_chunks_of_a_b2frame_served_as_bytes(cat2_server: Any, so: dict[str, Any]) -> None:
    """A .b2frame without a dtype in its vlmeta is served as uint8 bytes; its special chunks of
    wider items (all-NaN float64, a repeated 4-byte value) failed: "NaN special chunk for
    non-float dtype uint8" / "typesize 4 != itemsize of uint8". Their bytes are read now."""
    folder, url = public_folder(cat2_server, "spb")
    nan = blosc2.SChunk(chunksize=800, urlpath=str(folder / "nan.b2frame"), mode="w",
                        cparams=blosc2.CParams(typesize=8))  # fmt: skip
    nan.fill_special(250, blosc2.SpecialValue.NAN)
    value = blosc2.SChunk(chunksize=400, urlpath=str(folder / "val.b2frame"), mode="w",
                          cparams=blosc2.CParams(typesize=4))  # fmt: skip
    value.fill_special(250, blosc2.SpecialValue.VALUE, value=np.int32(-7))
    opts = {**so, "cache_storage": None}
    got = zarr.open_array(f"{url}/nan.b2frame", mode="r", storage_options=opts)
    assert got.dtype == np.uint8 and got.shape == (2000,)
    assert np.isnan(np.asarray(got[...]).view("f8")).all()
    got = zarr.open_array(f"{url}/val.b2frame", mode="r", storage_options=opts)
    assert (np.asarray(got[...]).view("<i4") == -7).all()
