"""Black-box hunt over the ``caterva2`` xarray engine (b2store.caterva2.xarray_backend): for many
datasets on a real ``cat2-server``, ``xr.open_dataset(url, engine="caterva2")`` equals the array
written and ``xr.open_zarr(url)`` (same storage options): every numeric dtype, 0-d to 5-D, edge
chunks, chunks == shape, tiny blocks, all-zero and constant-value (special) chunks, NaN fills,
.b2frame files, HDF5 files, nested directories, dataset URLs, lazy indexing of every kind,
every ``chunks=`` kind, ``open_mfdataset``, a process LocalCluster, the login server
(credentials never shown), a dataset rewritten between reads and a server stopped mid-read."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

import blosc2
import dask
import numpy as np
import pytest
import xarray as xr
from _c2server import PASSWORD, USER, public_folder, shared_array

from b2store._whole_chunks import WholeChunkArrayWrapper
from b2store.caterva2.filesystem import Caterva2URLNotFoundError
from tests._engines import innermost_array, open_caterva2
from tests._fork_scripts import run_script

DTYPES = ["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16", "?"]


def _random(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(shape) > 0.5
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    if dt.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)
    return rng.standard_normal(shape).astype(dt)


@pytest.fixture(scope="module")
def published(cat2_server: Any) -> tuple[str, Path, dict[str, np.ndarray]]:
    """One folder of .b2nd datasets of every kind (name -> array written), a .b2frame, an HDF5
    file and a nested folder."""
    folder, url = public_folder(cat2_server, "hunt19")
    rng = np.random.default_rng(1919)
    arrays: dict[str, np.ndarray] = {}

    def put(name: str, a: np.ndarray, **kw: Any) -> None:
        blosc2.asarray(a, urlpath=str(folder / name), mode="w", **kw)
        arrays[name] = a

    for dt in DTYPES:
        put(f"t_{dt}.b2nd", _random(rng, (23, 17), dt), chunks=(10, 8), blocks=(5, 4))
    put("s0.b2nd", np.array(3.5))
    put("d1.b2nd", _random(rng, (101,), "i4"), chunks=(20,), blocks=(7,))
    put("d3.b2nd", _random(rng, (9, 10, 11), "f4"), chunks=(4, 5, 6), blocks=(2, 5, 3))
    put("d4.b2nd", _random(rng, (3, 4, 5, 6), "u2"), chunks=(2, 3, 4, 5), blocks=(1, 3, 2, 5))
    put("d5.b2nd", _random(rng, (3, 4, 5, 6, 7), "i2"), chunks=(2, 3, 4, 5, 6),
        blocks=(1, 1, 2, 5, 3))  # fmt: skip
    put("whole.b2nd", np.arange(60.0).reshape(6, 10), chunks=(6, 10), blocks=(6, 10))
    put("blk.b2nd", _random(rng, (30, 20), "i8"), chunks=(10, 10), blocks=(10, 10))
    put("tiny.b2nd", np.arange(1000, dtype="i4").reshape(10, 100), chunks=(5, 50), blocks=(1, 2))
    nan = np.where(rng.random((20, 20)) > 0.5, np.nan, 1.0)
    put("nanf.b2nd", nan, chunks=(8, 8), blocks=(4, 4))
    for name, value, dtype in [("z", 0, "f8"), ("f7", 7, "i4"), ("fnan", np.nan, "f4"),
                               ("f25", 2.5, "f8"), ("zb", False, "?")]:  # fmt: skip
        blosc2.full((30, 40), value, dtype=dtype, chunks=(10, 16), blocks=(5, 8),
                    urlpath=str(folder / f"{name}.b2nd"), mode="w")  # fmt: skip
        arrays[f"{name}.b2nd"] = np.full((30, 40), value, dtype=dtype)
    blosc2.SChunk(chunksize=400, data=np.arange(1000, dtype="i4").tobytes(),
                  urlpath=str(folder / "fr.b2frame"), mode="w")  # fmt: skip
    arrays["fr.b2frame"] = np.frombuffer(np.arange(1000, dtype="i4").tobytes(), dtype="u1")
    import h5py
    import hdf5plugin

    h = np.arange(100 * 51, dtype="<i2").reshape(100, 51)
    with h5py.File(folder / "h.h5", "w") as f:
        f.create_dataset("b2", data=h, chunks=(33, 51), **hdf5plugin.Blosc2())
        f.create_dataset("gz", data=h.astype("f4"), chunks=(30, 20), compression="gzip")
        f.create_dataset("grp/b2f8", data=h.astype("f8"), chunks=(25, 17), **hdf5plugin.Blosc2())
    arrays["h.h5/b2"] = h
    arrays["h.h5/gz"] = h.astype("f4")
    arrays["h.h5/grp/b2f8"] = h.astype("f8")
    (folder / "sub" / "deeper").mkdir(parents=True)
    nested = _random(rng, (12, 13), "f8")
    blosc2.asarray(nested, chunks=(5, 5), blocks=(5, 5),
                   urlpath=str(folder / "sub" / "deeper" / "n.b2nd"), mode="w")  # fmt: skip
    arrays["sub/deeper/n.b2nd"] = nested
    return url, folder, arrays


def _b2nd(arrays: dict[str, np.ndarray]) -> list[str]:
    return [n for n in arrays if n.endswith(".b2nd") and "/" not in n]


def _same(got: np.ndarray, expected: np.ndarray, name: str) -> None:
    np.testing.assert_array_equal(got, expected, err_msg=name)
    assert got.dtype == expected.dtype, (name, got.dtype, expected.dtype)
    assert got.shape == expected.shape, name


def test_every_b2nd_dataset_equals_the_array_and_open_zarr(
    published: Any, so: dict[str, Any]
) -> None:
    url, _, arrays = published
    lazy = open_caterva2(url, so, mask_and_scale=False)
    chunked = open_caterva2(url, so, chunks={})
    like = xr.open_zarr(url, storage_options=so)
    assert sorted(lazy.data_vars) == sorted(like.data_vars)
    for name in _b2nd(arrays):
        expected = arrays[name]
        assert isinstance(innermost_array(lazy, name), WholeChunkArrayWrapper) == (
            expected.ndim > 0
        ), name
        _same(lazy[name].values, expected, name)
        assert lazy[name].dims == like[name].dims, name
        xr.testing.assert_identical(chunked[name].load(), like[name].load())
    np.testing.assert_array_equal(lazy["fr.b2frame"].values, arrays["fr.b2frame"])
    xr.testing.assert_identical(chunked["fr.b2frame"].load(), like["fr.b2frame"].load())


@pytest.mark.filterwarnings("ignore:The specified chunks separate")
@pytest.mark.parametrize("chunks", ["auto", "x2", "unaligned", "one"])
def test_chunk_kinds(published: Any, so: dict[str, Any], chunks: str) -> None:
    url, _, arrays = published
    base = open_caterva2(url, so)
    with dask.config.set(scheduler="threads", num_workers=2):
        for name in _b2nd(arrays):
            var = base[name]
            if var.ndim == 0:
                continue
            stored = var.encoding["chunks"]
            kw: dict[str, Any] = {
                "auto": "auto",
                "x2": {d: 2 * c for d, c in zip(var.dims, stored, strict=True)},
                "unaligned": {d: 7 for d in var.dims},
                "one": {d: -1 for d in var.dims},
            }[chunks]
            got = open_caterva2(f"{url}/{name}", so, chunks=kw, mask_and_scale=False)[name].values
            _same(got, arrays[name], f"{name} chunks={chunks}")


INDEXERS: list[tuple[str, Any]] = [
    ("int", (3, 5)),
    ("neg-int", (-1, -2)),
    ("slices", (slice(2, 19), slice(1, 16))),
    ("steps", (slice(1, None, 3), slice(None, None, 5))),
    ("neg-steps", (slice(None, None, -1), slice(15, 2, -4))),
    ("lists", ([0, 7, 22, 3], [16, 0, 8])),
    ("empty", (slice(5, 5), slice(None))),
    ("chunk-aligned", (slice(10, 20), slice(8, 16))),
    ("edge", (slice(20, None), slice(16, None))),
]


@pytest.mark.parametrize("how", [i for i, _ in INDEXERS])
def test_lazy_indexing(published: Any, so: dict[str, Any], how: str) -> None:
    """Indexing the lazy Dataset (no dask) as numpy indexes the array written."""
    url, _, arrays = published
    key = dict(INDEXERS)[how]
    ds = open_caterva2(url, so, mask_and_scale=False)
    for dt in DTYPES:
        name = f"t_{dt}.b2nd"
        var = ds[name]
        if how == "lists":
            got = var[key].values
            expected = arrays[name][np.ix_(*key)]
        else:
            got = var[key].values
            expected = arrays[name][key]
        _same(got, expected, f"{name} {how}")


def test_vectorized_and_5d_indexing(published: Any, so: dict[str, Any]) -> None:
    url, _, arrays = published
    ds = open_caterva2(url, so)
    a = arrays["t_f8.b2nd"]
    d0, d1 = ds["t_f8.b2nd"].dims
    rows = xr.DataArray([0, 5, 22, 9], dims="p")
    cols = xr.DataArray([16, 0, 3, 9], dims="p")
    got = ds["t_f8.b2nd"].isel({d0: rows, d1: cols}).values
    _same(got, a[[0, 5, 22, 9], [16, 0, 3, 9]], "vectorized")
    five = arrays["d5.b2nd"]
    var = ds["d5.b2nd"]
    _same(var[1, :, ::2, -1, 1:6].values, five[1, :, ::2, -1, 1:6], "d5")
    _same(var[:, [0, 3], 1:, ::-2, 6].values, five[:, [0, 3]][:, :, 1:, ::-2, 6], "d5 list")
    _same(ds["s0.b2nd"].values, arrays["s0.b2nd"], "0-d")
    assert float(ds["s0.b2nd"]) == 3.5


def test_hdf5_and_nested_groups(published: Any, so: dict[str, Any]) -> None:
    url, _, arrays = published
    ds = open_caterva2(url, so, group="h.h5", chunks={})
    like = xr.open_zarr(url, storage_options=so, group="h.h5")
    xr.testing.assert_identical(ds.load(), like.load())
    for name in ("b2", "gz"):
        _same(ds[name].values, arrays[f"h.h5/{name}"], name)
    sub = open_caterva2(url, so, group="h.h5/grp")
    _same(sub["b2f8"].values, arrays["h.h5/grp/b2f8"], "h.h5/grp/b2f8")
    for url_kw in ({"group": "sub/deeper"}, {"group": "sub"}):
        got = open_caterva2(url, so, **url_kw)
        if "n.b2nd" in got:
            _same(got["n.b2nd"].values, arrays["sub/deeper/n.b2nd"], str(url_kw))
    nested = open_caterva2(f"{url}/sub/deeper/n.b2nd", so)
    assert isinstance(innermost_array(nested, "n.b2nd"), WholeChunkArrayWrapper)
    _same(nested["n.b2nd"].values, arrays["sub/deeper/n.b2nd"], "nested dataset URL")
    chunked = open_caterva2(f"{url}/sub/deeper/n.b2nd", so, chunks={})
    _same(chunked["n.b2nd"].values, arrays["sub/deeper/n.b2nd"], "nested, dask")


def test_open_mfdataset_over_two_dataset_urls(published: Any, so: dict[str, Any]) -> None:
    url, _, arrays = published
    ds = xr.open_mfdataset(
        [f"{url}/t_f4.b2nd", f"{url}/t_i2.b2nd"], engine="caterva2", storage_options=so,
        chunks={}, combine="by_coords", parallel=False,
    )  # fmt: skip
    _same(ds["t_f4.b2nd"].values, arrays["t_f4.b2nd"], "mf f4")
    _same(ds["t_i2.b2nd"].values, arrays["t_i2.b2nd"], "mf i2")


def test_rewritten_dataset_is_not_served_stale(cat2_server: Any, so: dict[str, Any]) -> None:
    """Same shape, chunks and dtype, other values: a new open reads the new values (the chunk
    cache must not serve the old ones)."""
    folder, url = public_folder(cat2_server, "hunt19-rw")
    target = folder / "c.b2nd"
    a = np.arange(40 * 30, dtype="i4").reshape(40, 30)
    blosc2.asarray(a, chunks=(10, 30), blocks=(5, 30), urlpath=str(target), mode="w")
    opts = {**so, "version_check_interval": 0.0}
    _same(open_caterva2(f"{url}/c.b2nd", opts, chunks={})["c.b2nd"].values, a, "first")
    b = -a
    blosc2.asarray(b, chunks=(10, 30), blocks=(5, 30), urlpath=str(target), mode="w")
    _same(
        open_caterva2(f"{url}/c.b2nd", opts, chunks={})["c.b2nd"].values, b, "rewritten, new open"
    )
    _same(open_caterva2(f"{url}/c.b2nd", opts)["c.b2nd"].values, b, "rewritten, no dask")


def test_rewritten_while_open_never_mixes_versions(cat2_server: Any, so: dict[str, Any]) -> None:
    """A Dataset opened before the rewrite: its next whole-chunk read is refused or new, never
    the old version's chunk beside the new one's."""
    folder, url = public_folder(cat2_server, "hunt19-rw2")
    target = folder / "c.b2nd"
    a = np.arange(40 * 30, dtype="i4").reshape(40, 30)
    blosc2.asarray(a, chunks=(10, 30), blocks=(5, 30), urlpath=str(target), mode="w")
    opts = {**so, "version_check_interval": 0.0}
    var = open_caterva2(f"{url}/c.b2nd", opts)["c.b2nd"]
    _same(var[0:10].values, a[0:10], "first chunk")
    b = -a
    blosc2.asarray(b, chunks=(10, 30), blocks=(5, 30), urlpath=str(target), mode="w")
    try:
        got = var[10:20].values
    except OSError as err:
        assert "changed on the server" in str(err), err
    else:
        _same(got, b[10:20], "second chunk after the rewrite")


def test_login_server_credentials_never_shown(
    cat2_auth_server: Any, so: dict[str, Any], tmp_path: Path
) -> None:
    path, a = shared_array(cat2_auth_server, "hunt19")
    host = cat2_auth_server.host
    opts = {**so, "username": USER, "password": PASSWORD}
    ds = open_caterva2(f"caterva2://{host}/{path}", opts, chunks={})
    name = path.rpartition("/")[2]
    _same(ds[name].values, a, "storage_options credentials")
    shown = repr(ds) + repr(ds.encoding) + repr(ds[name].encoding) + repr(ds[name].data)
    assert PASSWORD not in shown

    in_url = f"caterva2://{quote(USER)}:{PASSWORD}@{host}/{path}"
    ds2 = open_caterva2(in_url, so)
    _same(ds2[name].values, a, "credentials in the URL")
    assert PASSWORD not in repr(ds2) + repr(ds2[name].encoding)
    chunked = open_caterva2(in_url, {**so, "cache_storage": str(tmp_path / "c2")}, chunks={})
    assert PASSWORD not in repr(chunked[name].data) + str(chunked[name].data.name)
    with pytest.raises(PermissionError) as info:
        open_caterva2(
            f"caterva2://{host}/{path}", {**so, "username": USER, "password": "wrong-pw-77"}
        )
    assert "wrong-pw-77" not in str(info.value)
    with pytest.raises(PermissionError) as info2:
        open_caterva2(f"caterva2://{quote(USER)}:wrong-pw-78@{host}/{path}", so)
    assert "wrong-pw-78" not in str(info2.value)
    with pytest.raises(Caterva2URLNotFoundError) as info3:
        open_caterva2(f"caterva2://{quote(USER)}:{PASSWORD}@{host}/@shared/nope.b2nd", so)
    assert PASSWORD not in str(info3.value)


_STOPPED = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import blosc2, numpy as np, xarray as xr
from _c2server import start_server
server = start_server(Path(sys.argv[2]))
a = np.arange(40 * 30, dtype="f8").reshape(40, 30)
blosc2.asarray(a, chunks=(10, 30), blocks=(5, 30), urlpath=str(server.public / "x.b2nd"),
               mode="w")
so = {"cache_storage": sys.argv[3], "retries": 1, "backoff": 0.01, "timeout": 5,
      "skip_instance_cache": True}
ds = xr.open_dataset(f"caterva2://{server.host}/@public/x.b2nd", engine="caterva2",
                     storage_options=so, chunks={})
lazy = xr.open_dataset(f"caterva2://{server.host}/@public/x.b2nd", engine="caterva2",
                       storage_options=so)
assert (ds["x.b2nd"][0:10].values == a[0:10]).all()
server.stop()
for var in (ds["x.b2nd"], lazy["x.b2nd"][10:40]):
    try:
        var.values
    except ConnectionError as err:
        print("ConnectionError:", err)
    else:
        print("no error")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process handling")
def test_server_stopped_mid_read(tmp_path: Path) -> None:
    here = str(Path(__file__).parent)
    out = run_script(_STOPPED, here, str(tmp_path / "srv"), str(tmp_path / "cache"), timeout=120)
    lines = out.splitlines()
    assert len(lines) == 2, out
    assert all(line.startswith("ConnectionError:") and "127.0.0.1" in line for line in lines), out


def test_distributed_processes_mean(published: Any, so: dict[str, Any]) -> None:
    distributed = pytest.importorskip("distributed")
    url, _, arrays = published
    opts = {k: v for k, v in so.items() if k != "skip_instance_cache"}
    with (
        warnings.catch_warnings(),
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster),
    ):
        warnings.simplefilter("ignore")
        ds = open_caterva2(f"{url}/d3.b2nd", opts, chunks={})
        mean = ds["d3.b2nd"].mean(dim=ds["d3.b2nd"].dims[0]).compute()
        np.testing.assert_allclose(
            mean.values, arrays["d3.b2nd"].mean(axis=0), rtol=1e-5, atol=1e-6
        )


def test_password_in_the_url_not_in_the_dataset_encoding(
    cat2_auth_server: Any, so: dict[str, Any]
) -> None:
    """The password of a caterva2://user:password@host URL was kept in ds.encoding['source']
    (xarray stores filename_or_obj there unless the engine sets it): now ***@."""

    path, _a = shared_array(cat2_auth_server, "hunt19src")
    in_url = f"caterva2://{quote(USER)}:{PASSWORD}@{cat2_auth_server.host}/{path}"
    ds = open_caterva2(in_url, so)
    assert PASSWORD not in repr(ds.encoding), ds.encoding


def test_odd_datasets(cat2_server: Any, so: dict[str, Any]) -> None:
    """Chunks larger than the array, an empty dimension, names with a space, non-ASCII and
    '#', chunks not a multiple of blocks, other codecs and filters, and dtypes that take zarr's
    path (datetime, strings, records): each equals the array written and xr.open_zarr."""
    folder, url = public_folder(cat2_server, "hunt19-odd")
    arrays: dict[str, np.ndarray] = {}
    fast = {"cparams": {"codec": blosc2.Codec.LZ4, "filters": [blosc2.Filter.BITSHUFFLE]}}
    delta = {"cparams": {"filters": [blosc2.Filter.SHUFFLE, blosc2.Filter.BYTEDELTA],
                         "filters_meta": [0, 4]}}  # fmt: skip
    for name, a, kw in [
        ("big_chunk.b2nd", np.arange(10, dtype="i4"), {"chunks": (50,), "blocks": (7,)}),
        ("empty.b2nd", np.zeros((0, 5), "f4"), {"chunks": (4, 5), "blocks": (2, 5)}),
        ("a b.b2nd", np.arange(30.0).reshape(5, 6), {"chunks": (2, 3), "blocks": (1, 3)}),
        ("ü#x.b2nd", np.arange(30.0).reshape(5, 6), {"chunks": (2, 3), "blocks": (1, 3)}),
        ("nomult.b2nd", np.arange(100, dtype="u4"), {"chunks": (10,), "blocks": (3,)}),
        (
            "lz4.b2nd",
            np.arange(1000.0).reshape(10, 100),
            {"chunks": (4, 40), "blocks": (2, 20), **fast},
        ),
        ("bd.b2nd", np.arange(500, dtype="f4"), {"chunks": (100,), "blocks": (50,), **delta}),
        ("dt.b2nd", np.arange(12).astype("M8[s]"), {"chunks": (5,), "blocks": (5,)}),
        ("str.b2nd", np.array(["ab", "cde", "f"]), {"chunks": (2,), "blocks": (1,)}),
        (
            "rec.b2nd",
            np.zeros(5, dtype=[("a", "i4"), ("b", "f8")]),
            {"chunks": (2,), "blocks": (1,)},
        ),
    ]:
        blosc2.asarray(a, urlpath=str(folder / name), mode="w", **kw)
        arrays[name] = a
    for name, a in arrays.items():
        for chunks in (None, {}):
            ds = open_caterva2(f"{url}/{quote(name)}", so, chunks=chunks)
            like = xr.open_zarr(f"{url}/{quote(name)}", storage_options=so, chunks=chunks)
            got = ds[name].values
            assert got.dtype == a.dtype and got.tobytes() == a.tobytes(), (name, chunks)
            xr.testing.assert_identical(ds.load(), like.load())


def test_open_mfdataset_in_parallel(published: Any, so: dict[str, Any]) -> None:
    url, _, arrays = published
    names = ["d1.b2nd", "d3.b2nd", "z.b2nd"]
    with dask.config.set(scheduler="threads", num_workers=2):
        ds = xr.open_mfdataset([f"{url}/{n}" for n in names], engine="caterva2",
                               storage_options=so, parallel=True)  # fmt: skip
        for name in names:
            _same(ds[name].values, arrays[name], name)


def test_group_naming_a_dataset_is_a_clear_error(published: Any, so: dict[str, Any]) -> None:
    """group= naming a dataset raised xarray's bare AttributeError "'Array' object has no
    attribute 'members'" (xr.open_zarr still does): now a FileNotFoundError saying what to open."""
    url, _, _ = published
    with pytest.raises(FileNotFoundError, match=r"names a dataset.*d1\.b2nd"):
        open_caterva2(url, so, group="d1.b2nd")


def test_datatree_is_refused_clearly(published: Any, so: dict[str, Any]) -> None:
    url, _, _ = published
    with pytest.raises(NotImplementedError, match='engine="zarr"'):
        xr.open_datatree(url, engine="caterva2", storage_options=so)
