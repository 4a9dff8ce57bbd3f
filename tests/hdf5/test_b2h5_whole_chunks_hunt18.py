"""Hunt on the b2h5 engine's whole-chunk reads (b2store._whole_chunks).

Real files written by h5py + hdf5plugin.Blosc2 (and h5netcdf), read with
``xr.open_dataset(path, engine="b2h5")`` in every way xarray reads (no dask, ``chunks={}``,
multiples of the HDF5 chunks, unaligned chunks, lazy slices with steps, integer and array
indexers, open_mfdataset, open_datatree, open_groups, load_async, a LocalCluster of processes),
compared with h5py and with ``xr.open_zarr("b2h5::path")``: codecs and Blosc2 filters, dtypes
incl. bool, float16 and complex, fills incl. NaN, -0.0 and non-zero, fill time never, early
allocation, unallocated and all-zero chunks, shrunk and regrown datasets, filter masks, empty
and unlimited datasets, automatic and explicit Blosc2 blocks, frames of several inner chunks,
virtual datasets and external links, files over HTTP, files replaced or deleted while open.

Bug found: a chunk of a virtual dataset's source (or an external link's target) that does not
decode was reported under the view's own file, which has no such chunk: the error now also
names the file that holds it.
"""

from __future__ import annotations

import asyncio
import os
import re
import warnings
from pathlib import Path
from typing import Any

import blosc2
import dask
import h5py
import hdf5plugin
import numpy as np
import pytest
import xarray as xr
from http_helpers import RangeHandler, clear_blocks, serve

from b2store._whole_chunks import WholeChunkArrayWrapper
from b2store.errors import CodecError

_ZSTD = hdf5plugin.Blosc2(cname="zstd", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE)
_CODES = {"blosclz": 0, "lz4": 1, "lz4hc": 2, "zlib": 4, "zstd": 5}
_DTYPES = ("?", "i1", "i2", "i8", "u1", "u4", "u8", "f2", "f8", "c8", "c16")
_FILLS = (
    ("nan", "f4", np.nan),
    ("negzero", "f4", -0.0),
    ("neg", "i2", -7),
    ("true", "?", True),
    ("complex", "c8", 1 + 2j),
    ("f2nan", "f2", np.nan),
)
#: every dataset _write_matrix writes
_NAMES = (
    [f"codec_{cname}_{flt}" for cname in _CODES for flt in range(5)]
    + [f"{kind}_{dt.replace('?', 'bool')}" for dt in _DTYPES for kind in ("dtype", "plain")]
    + [f"fill_{tag}" for tag, _, _ in _FILLS]
    + ["filltime_never", "alloc_early", "auto_blocks", "plain_big", "explicit_blocks"]
    + ["shrunk", "shrunk_regrown", "unlimited", "empty", "masked", "nd6", "tiny", "big_endian"]
)


def _blosc2_opts(cname: str, blosc_filter: int) -> dict[str, Any]:
    """hdf5plugin's cd_values with any Blosc2 filter slot (3 DELTA, 4 TRUNC_PREC included)."""
    return {"compression": 32026, "compression_opts": (0, 0, 0, 0, 5, blosc_filter, _CODES[cname])}


def _sample(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(shape) > 0.5
    if dt.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)
    if dt.kind == "f":
        return rng.standard_normal(shape).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)


def _write_matrix(path: Path) -> None:
    rng = np.random.default_rng(18)
    with h5py.File(path, "w") as f:
        for cname in _CODES:
            for flt in (0, 1, 2, 3, 4):
                f.create_dataset(
                    f"codec_{cname}_{flt}",
                    data=(rng.random((37, 29)) * 1000).astype("f4"),
                    chunks=(10, 8),
                    **_blosc2_opts(cname, flt),
                )
        for dt in _DTYPES:
            tag = dt.replace("?", "bool")
            data = _sample(rng, dt, (23, 17, 5))
            lz4 = hdf5plugin.Blosc2(cname="lz4", filters=hdf5plugin.Blosc2.BITSHUFFLE)
            f.create_dataset(f"dtype_{tag}", data=data, chunks=(7, 6, 5), **lz4)
            f.create_dataset(f"plain_{tag}", data=data.ravel(), chunks=(101,), **_ZSTD)
        for tag, dt, fill in _FILLS:
            d = f.create_dataset(
                f"fill_{tag}", shape=(20, 30), chunks=(6, 7), dtype=dt, fillvalue=fill, **_ZSTD
            )
            d[6:12, 7:21] = np.ones((6, 14), dt)
            d[12:18, 0:7] = np.zeros((6, 7), dt)  # an all-zero chunk under a non-zero fill
        for name, setting in (("filltime_never", "fill_time"), ("alloc_early", "alloc_time")):
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_chunk((6, 7))
            if setting == "fill_time":
                dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
            else:
                dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            dcpl.set_fill_value(np.array(3, "i4"))
            dcpl.set_filter(32026, h5py.h5z.FLAG_OPTIONAL, (0, 0, 0, 0, 5, 1, 5))
            space = h5py.h5s.create_simple((20, 30))
            dsid = h5py.h5d.create(f.id, name.encode(), h5py.h5t.NATIVE_INT32, space, dcpl=dcpl)
            h5py.Dataset(dsid)[0:6, 0:7] = 9
        # chunks above 128 KiB: hdf5plugin's automatic blocks, chunks stored block-major
        f.create_dataset(
            "auto_blocks", data=rng.integers(0, 60000, (3, 700, 900), dtype="u2"),
            chunks=(2, 333, 700), **_ZSTD,
        )  # fmt: skip
        f.create_dataset("plain_big", data=rng.standard_normal(90000), chunks=(40000,), **_ZSTD)
        d = f.create_dataset(
            "explicit_blocks", shape=(8, 300, 90), chunks=(4, 300, 90), dtype="f4", **_ZSTD
        )
        for i0 in (0, 4):  # blocks chosen by the writer, several inner chunks per frame
            nd = blosc2.asarray(
                rng.standard_normal((4, 300, 90)).astype("f4"), chunks=(2, 150, 90),
                blocks=(1, 50, 90),
            )  # fmt: skip
            d.id.write_direct_chunk((i0, 0, 0), nd.to_cframe())
        for name, grow in (("shrunk", False), ("shrunk_regrown", True)):
            d = f.create_dataset(
                name, data=np.arange(400, dtype="i4").reshape(20, 20) + 1, chunks=(6, 6),
                maxshape=(None, None), fillvalue=-2, **_ZSTD,
            )  # fmt: skip
            d.resize((14, 13))
            if grow:
                d.resize((20, 20))
        d = f.create_dataset("unlimited", shape=(0, 5), maxshape=(None, 5), chunks=(4, 5),
                             dtype="f8", **_ZSTD)  # fmt: skip
        for _ in range(3):
            d.resize((d.shape[0] + 3, 5))
            d[-3:] = rng.standard_normal((3, 5))
        f.create_dataset("empty", shape=(0, 5), maxshape=(None, 5), chunks=(4, 5), dtype="f8",
                         **_ZSTD)  # fmt: skip
        d = f.create_dataset("masked", shape=(12, 10), chunks=(4, 10), dtype="i4", fillvalue=5,
                             **_ZSTD)  # fmt: skip
        d[0:4] = np.arange(40).reshape(4, 10)
        d.id.write_direct_chunk((4, 0), np.full((4, 10), 77, "i4").tobytes(), filter_mask=1)
        f.create_dataset("nd6", data=rng.integers(0, 9, (3, 4, 2, 5, 3, 2)).astype("i2"),
                         chunks=(2, 3, 2, 2, 2, 1), **_ZSTD)  # fmt: skip
        f.create_dataset("tiny", data=np.arange(6.0).reshape(2, 3), chunks=(4, 4),
                         maxshape=(None, None), **_ZSTD)  # fmt: skip
        f.create_dataset("big_endian", data=np.arange(60, dtype=">i4").reshape(6, 10),
                         chunks=(4, 4), **_ZSTD)  # fmt: skip
        assert sorted(f) == sorted(_NAMES)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hunt18") / "matrix.h5"
    _write_matrix(path)
    return path


def _same(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Equal values (NaN in the same places, -0.0 kept) of the same shape and dtype (byte order
    aside: the v3 view serves big-endian data in native order, as zarr does)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, what
    assert got.dtype == want.dtype.newbyteorder("="), what
    want = want.astype(got.dtype)
    if got.dtype.kind in "fc":
        assert np.array_equal(got, want, equal_nan=True), what
        finite = ~np.isnan(want)
        assert got[finite].tobytes() == want[finite].tobytes(), f"{what}: signed zeros"
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def _open(path: Path | str, **kw: Any) -> xr.Dataset:
    return xr.open_dataset(path, engine="b2h5", mask_and_scale=False, **kw)


@pytest.mark.filterwarnings("ignore:The specified chunks separate")
@pytest.mark.parametrize("name", _NAMES)
def test_every_read_equals_h5py_and_zarr(matrix: Path, name: str) -> None:
    with h5py.File(matrix) as f:
        want = f[name][()]
    var = _open(matrix)[name]
    hdf5_chunks = var.encoding["chunks"]
    ways: list[Any] = [None, {}]
    # codecs and dtypes only change the decode: every way of reading for the other layouts
    every_way = not name.startswith(("codec_", "dtype_", "plain_")) or name == "plain_big"
    if var.size and every_way:
        ways.append({d: 2 * c for d, c in zip(var.dims, hdf5_chunks, strict=True)})
        ways.append({d: max(1, c - 1) for d, c in zip(var.dims, hdf5_chunks, strict=True)})
    with dask.config.set(scheduler="threads", num_workers=2):
        for chunks in ways:
            _same(_open(matrix, chunks=chunks)[name].values, want, f"{name} chunks={chunks}")
        zarr_view = xr.open_zarr(f"b2h5::{matrix}", mask_and_scale=False, chunks={})[name]
        _same(zarr_view.values, want, f"{name} via open_zarr")
    if not var.size or not every_way:
        return
    first = tuple(slice(0, c) for c in hdf5_chunks)
    last = tuple(slice(-min(c, s), None) for c, s in zip(hdf5_chunks, var.shape, strict=True))
    for index in (first, last, (slice(None, None, -1),), (slice(1, None, 2),), (-1,), ([0, -1],)):
        _same(_open(matrix)[name][index].values, want[index], f"{name}[{index}]")


def test_blosc2_datasets_take_the_whole_chunk_path(matrix: Path) -> None:
    """The matrix exercises the new path, not only zarr's (big-endian and masked: zarr's)."""
    ds = _open(matrix)

    def wrapper(name: str) -> object:
        data = ds[name].variable._data
        while hasattr(data, "array"):
            data = data.array
        return data

    for name in ("codec_lz4_3", "dtype_c16", "plain_f2", "fill_nan", "auto_blocks", "nd6"):
        assert isinstance(wrapper(name), WholeChunkArrayWrapper), name
    for name in ("big_endian", "masked"):
        assert not isinstance(wrapper(name), WholeChunkArrayWrapper), name


@pytest.fixture(scope="module")
def virtual(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual dataset over two Blosc2 sources and an external link to the second; chunk
    (1, 0) of the second source is a valid Blosc2 frame of another shape."""
    folder = tmp_path_factory.mktemp("vds18")
    for i in range(2):
        with h5py.File(folder / f"source{i}.h5", "w") as f:
            d = f.create_dataset(
                "data", data=np.arange(64, dtype="i4").reshape(8, 8) * 1000003 + i,
                chunks=(4, 8), **_ZSTD,
            )  # fmt: skip
            if i == 1:
                stray = blosc2.asarray(np.full((2, 8), 3, "i4"), chunks=(2, 8), blocks=(1, 8))
                d.id.write_direct_chunk((4, 0), stray.to_cframe())
    with h5py.File(folder / "master.h5", "w") as f:
        layout = h5py.VirtualLayout(shape=(16, 8), dtype="i4")
        for i in range(2):
            layout[i * 8 : (i + 1) * 8] = h5py.VirtualSource(
                str(folder / f"source{i}.h5"), "data", shape=(8, 8)
            )
        f.create_virtual_dataset("stack", layout)
        f["linked"] = h5py.ExternalLink("source1.h5", "data")
    return folder


@pytest.mark.parametrize(("name", "key"), [("stack", "stack/c/3/0"), ("linked", "linked/c/1/0")])
def test_undecodable_source_chunk_names_the_file_that_holds_it(
    virtual: Path, name: str, key: str
) -> None:
    """Was "master.h5: chunk 'stack/c/3/0': ...": master.h5 holds no chunks at all."""
    ds = _open(virtual / "master.h5", chunks={}, follow_external_links=True)
    source = re.escape(str(virtual / "source1.h5"))
    with (
        pytest.raises(CodecError, match=rf"master\.h5: chunk '{key}' \(stored in {source}\)"),
        dask.config.set(scheduler="sync"),
    ):
        ds[name].load()


def test_virtual_and_linked_chunks_read_as_h5py(virtual: Path) -> None:
    ds = _open(virtual / "master.h5", follow_external_links=True)
    with h5py.File(virtual / "source0.h5") as f:
        first = f["data"][()]
    _same(ds["stack"][:8].values, first, "virtual stack, first source")
    _same(ds["linked"][:4].values, np.arange(32, dtype="i4").reshape(4, 8) * 1000003 + 1, "link")


def _write_small(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=rng.standard_normal((40, 30)), chunks=(10, 10), **_ZSTD)


def _outcome(ds: xr.Dataset) -> str:
    try:
        with dask.config.set(scheduler="sync"):
            ds["x"].values  # noqa: B018
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "read"


@pytest.mark.parametrize("change", ["replace", "delete"])
@pytest.mark.parametrize("chunks", [None, {}], ids=["no-dask", "dask"])
def test_file_replaced_or_deleted_while_open_raises_as_zarr(
    tmp_path: Path, change: str, chunks: Any
) -> None:
    path = tmp_path / "moving.h5"
    _write_small(path, 1)
    engine = xr.open_dataset(path, engine="b2h5", chunks=chunks, cache=False)
    zarr_view = xr.open_zarr(f"b2h5::{path}", chunks=chunks)
    if change == "replace":
        _write_small(tmp_path / "new.h5", 2)
        os.replace(tmp_path / "new.h5", path)
    else:
        path.unlink()
    got, want = _outcome(engine), _outcome(zarr_view)
    assert got.startswith("OSError") and got == want


def test_http_reads_equal_h5py(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    path = tmp_path / "remote.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("x", shape=(50, 40), chunks=(12, 9), dtype="f4", fillvalue=np.nan,
                             **_ZSTD)  # fmt: skip
        d[12:] = rng.standard_normal((38, 40))
        d[24:36] = 0
        f.create_dataset("line", data=rng.integers(0, 9, 500).astype("i2"), chunks=(64,), **_ZSTD)
        f.create_dataset("big", data=rng.standard_normal((4, 200, 300)), chunks=(2, 150, 300),
                         **_ZSTD)  # fmt: skip
    with h5py.File(path) as f:
        want = {name: f[name][()] for name in f}
    clear_blocks()
    with serve(tmp_path, RangeHandler) as base:
        for chunks in (None, {}):
            ds = _open(f"{base}/remote.h5", chunks=chunks)
            for name, values in want.items():
                _same(ds[name].values, values, f"http {name} chunks={chunks}")


@pytest.fixture(scope="module")
def netcdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """netCDF4 written by h5netcdf with Blosc2: CF packing, _FillValue, an unlimited dimension,
    dimension scales, a subgroup."""
    h5netcdf = pytest.importorskip("h5netcdf")
    rng = np.random.default_rng(6)
    path = tmp_path_factory.mktemp("nc18") / "cf.nc"
    blosc = dict(_ZSTD)
    with h5netcdf.File(path, "w") as f:
        f.dimensions = {"time": None, "y": 30, "x": 25}
        t = f.create_variable("time", ("time",), "f8", chunks=(4,), **blosc)
        t.attrs["units"] = "days since 2000-01-01"
        f.resize_dimension("time", 10)
        t[:] = np.arange(10)
        y = f.create_variable("y", ("y",), "f4", chunks=(8,), **blosc)
        y[:] = np.linspace(0, 1, 30)
        v = f.create_variable("temp", ("time", "y", "x"), "i2", chunks=(3, 8, 7),
                              fillvalue=np.int16(-999), **blosc)  # fmt: skip
        v.attrs["scale_factor"] = np.float32(0.01)
        v.attrs["add_offset"] = np.float32(273.15)
        packed = rng.integers(-500, 500, (10, 30, 25)).astype("i2")
        packed[0, 0, :5] = -999
        v[:] = packed
        w = f.create_variable("w", ("time", "y"), "f4", chunks=(4, 8),
                              fillvalue=np.float32(np.nan), **blosc)  # fmt: skip
        w[:5] = rng.standard_normal((5, 30)).astype("f4")
        g = f.create_group("sub")
        g.dimensions = {"z": 12}
        z = g.create_variable("z", ("z",), "f8", chunks=(5,), **blosc)
        z[:] = np.arange(12.0)
        u = g.create_variable("u", ("z",), "u1", chunks=(5,), fillvalue=np.uint8(7), **blosc)
        u[:6] = 1
    return path


@pytest.mark.filterwarnings("ignore:The specified chunks separate")
@pytest.mark.parametrize(
    "chunks", [None, {}, "auto", {"time": 6, "y": 16}], ids=["no-dask", "hdf5", "auto", "dims"]
)
def test_netcdf_decodes_like_h5netcdf(netcdf: Path, chunks: Any) -> None:
    want = xr.open_dataset(netcdf, engine="h5netcdf").load()
    with dask.config.set(scheduler="threads", num_workers=2):
        got = xr.open_dataset(netcdf, engine="b2h5", chunks=chunks).load()
    xr.testing.assert_identical(got, want)
    for index in (
        {"time": slice(3, 9), "y": slice(8, 24)},
        {"time": slice(None, None, -1)},
        {"time": slice(9, 2, -3)},
        {"x": -1},
        {"y": [0, 29, 8, 8]},
    ):
        lazy = xr.open_dataset(netcdf, engine="b2h5", chunks=chunks).isel(index)
        xr.testing.assert_identical(lazy.load(), want.isel(index))
    sel = {"time": slice("2000-01-02", "2000-01-08"), "y": slice(0.2, 0.7)}
    got_sel = xr.open_dataset(netcdf, engine="b2h5", chunks=chunks).sel(sel)
    xr.testing.assert_identical(got_sel.load(), want.sel(sel))


def test_datatree_groups_and_mfdataset_like_h5netcdf(netcdf: Path, tmp_path: Path) -> None:
    tree = xr.open_datatree(netcdf, engine="b2h5", chunks={})
    xr.testing.assert_identical(tree.load(), xr.open_datatree(netcdf, engine="h5netcdf").load())
    groups = xr.open_groups(netcdf, engine="b2h5")
    want = xr.open_groups(netcdf, engine="h5netcdf")
    assert groups.keys() == want.keys()
    for key, ds in groups.items():
        xr.testing.assert_identical(ds.load(), want[key].load())
    h5netcdf = pytest.importorskip("h5netcdf")
    rng = np.random.default_rng(7)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"part{i}.nc")
        with h5netcdf.File(paths[-1], "w") as f:
            f.dimensions = {"time": None, "x": 20}
            t = f.create_variable("time", ("time",), "f8", chunks=(4,), **dict(_ZSTD))
            t.attrs["units"] = "days since 2000-01-01"
            f.resize_dimension("time", 5)
            t[:] = np.arange(5.0) + 5 * i
            v = f.create_variable("v", ("time", "x"), "f4", chunks=(2, 7), **dict(_ZSTD))
            v[:] = rng.standard_normal((5, 20)).astype("f4")
    got = xr.open_mfdataset(paths, engine="b2h5", combine="by_coords").load()
    xr.testing.assert_identical(got, xr.open_mfdataset(paths, engine="h5netcdf").load())


@pytest.mark.skipif(not hasattr(xr.Dataset, "load_async"), reason="xarray without load_async")
def test_load_async_like_h5netcdf(netcdf: Path) -> None:
    async def load() -> list[xr.Dataset]:
        lazy = xr.open_dataset(netcdf, engine="b2h5")
        chunked = xr.open_dataset(netcdf, engine="b2h5", chunks={})
        return [
            await lazy.load_async(),
            await chunked.load_async(),
            await lazy.isel(time=slice(3, 9), y=slice(8, 16)).load_async(),
        ]

    want = xr.open_dataset(netcdf, engine="h5netcdf").load()
    full, chunked, part = asyncio.run(load())
    xr.testing.assert_identical(full, want)
    xr.testing.assert_identical(chunked, want)
    xr.testing.assert_identical(part, want.isel(time=slice(3, 9), y=slice(8, 16)))


@pytest.mark.slow
def test_local_cluster_of_processes(matrix: Path, netcdf: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with (
        warnings.catch_warnings(),
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=2, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        warnings.simplefilter("ignore")
        ds = _open(matrix, chunks={})
        for name in ("fill_nan", "auto_blocks", "plain_big", "shrunk_regrown", "masked"):
            with h5py.File(matrix) as f:
                want = f[name][()]
            _same(ds[name].compute().values, want, f"cluster {name}")
        got = xr.open_dataset(netcdf, engine="b2h5", chunks={}).compute()
    xr.testing.assert_identical(got, xr.open_dataset(netcdf, engine="h5netcdf").load())
