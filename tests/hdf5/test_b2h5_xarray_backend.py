"""The xarray engine "b2h5": open_dataset/open_mfdataset/open_datatree/open_groups on HDF5 paths.

Real files written by h5py + hdf5plugin, netCDF4-python and h5netcdf; results are compared with
engine="h5netcdf" (which reads through libhdf5) and with engine="zarr" on the "b2h5::" URL the
engine delegates to. The entry point needs the package installed (``pip install -e .``).
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import warnings
from http.server import ThreadingHTTPServer
from importlib.metadata import entry_points
from pathlib import Path

import gen_hdf5_files
import h5py
import hdf5plugin
import numpy as np
import pytest
import xarray as xr
from http_helpers import RangeHandler

from b2store.hdf5.xarray_backend import B2H5BackendEntrypoint, b2h5_url

pytest.importorskip("h5netcdf")
pytest.importorskip("dask")


def _scan(path: Path) -> Path:
    """A NeXus-like scan: Blosc2 tomography stack, gzip dark field, 1-D angles, attributes."""
    stack = gen_hdf5_files.tomo_stack((8, 24, 32))
    with h5py.File(path, "w") as f:
        f.attrs["title"] = "scan"
        g = f.create_group("entry/data")
        g.attrs["NX_class"] = "NXdata"
        d = g.create_dataset(
            "data",
            data=stack,
            chunks=(1, 24, 32),
            **hdf5plugin.Blosc2(cname="lz4", clevel=5, filters=hdf5plugin.Blosc2.BITSHUFFLE),
        )
        d.attrs["units"] = "counts"
        g.create_dataset("dark", data=stack[0].astype("f4") / 7, chunks=(8, 16), compression="gzip")
        g.create_dataset("angle", data=np.linspace(0, 180, 8))
        f.create_group("entry/instrument").attrs["name"] = "beamline"
    return path


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _scan(tmp_path_factory.mktemp("xrb") / "scan.h5")


def _h5netcdf(path: object, **kw: object) -> xr.Dataset:
    return xr.open_dataset(path, engine="h5netcdf", phony_dims="sort", **kw)  # type: ignore[arg-type]


def _assert_same_but_phony_names(got: xr.Dataset, want: xr.Dataset) -> None:
    """Identical once want's phony dimension names are replaced by got's.

    Documented difference: for datasets without dimension scales (plain h5py files) h5netcdf
    numbers phony dimensions in order of appearance (phony_dim_0, 1, ...) while b2h5 names them
    after their size (phony_dim_<n>, as in docs/hdf5.md), so both name each axis differently.
    """
    names: dict[str, str] = {}
    for name, var in want.variables.items():
        for w, g in zip(var.dims, got[name].dims, strict=True):
            assert names.setdefault(str(w), str(g)) == g, (name, w, g)
    xr.testing.assert_identical(got, want.rename_dims(names))


def _open(path: object, **kw: object) -> xr.Dataset:
    return xr.open_dataset(path, engine="b2h5", **kw)  # type: ignore[arg-type]


def test_entry_point_declared_and_listed() -> None:
    eps = {ep.name: ep.value for ep in entry_points(group="xarray.backends")}
    assert eps.get("b2h5") == "b2store.hdf5.xarray_backend:B2H5BackendEntrypoint"
    engine = xr.backends.list_engines()["b2h5"]
    assert isinstance(engine, B2H5BackendEntrypoint)
    assert engine.supports_groups and engine.description and engine.url
    assert "storage_options" in (engine.open_dataset_parameters or ())


def test_guess_can_open_claims_only_b2h5_urls(scan: Path) -> None:
    e = B2H5BackendEntrypoint()
    assert e.guess_can_open(f"b2h5::{scan}")
    for other in (str(scan), scan, "x.nc", "http://h/x.h5", b"b2h5::x", io.BytesIO(b"")):
        assert not e.guess_can_open(other)
    # plain HDF5 paths stay with the netCDF engines, which come first in xarray's guess order
    assert xr.backends.plugins.guess_engine(str(scan)) in ("netcdf4", "h5netcdf")


def test_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert b2h5_url("rel.h5") == f"b2h5::{tmp_path / 'rel.h5'}"
    assert b2h5_url(Path("~/x.h5")) == f"b2h5::{Path('~/x.h5').expanduser()}"
    assert b2h5_url("http://h/x.h5") == "b2h5::http://h/x.h5"
    assert b2h5_url("simplecache::s3://b/x.h5") == "b2h5::simplecache::s3://b/x.h5"
    assert b2h5_url("file:///d/x.h5") == "b2h5::file:///d/x.h5"
    assert b2h5_url("b2h5::/d/x.h5") == "b2h5::/d/x.h5"


def test_open_dataset_matches_h5netcdf_and_zarr(scan: Path) -> None:
    ds = _open(scan, group="entry/data")
    assert ds["data"].attrs["units"] == "counts" and ds.attrs["NX_class"] == "NXdata"
    np.testing.assert_array_equal(ds["data"].values, gen_hdf5_files.tomo_stack((8, 24, 32)))
    _assert_same_but_phony_names(ds, _h5netcdf(scan, group="entry/data"))
    via_zarr = xr.open_dataset(f"b2h5::{scan}", engine="zarr", group="entry/data")
    xr.testing.assert_identical(ds, via_zarr)
    for path in (str(scan), f"b2h5::{scan}", f"b2h5::file://{scan}", f"file://{scan}"):
        xr.testing.assert_identical(ds, _open(path, group="/entry/data/"))


def test_decode_keywords_pass_through(tmp_path: Path) -> None:
    pytest.importorskip("netCDF4")
    nc = gen_hdf5_files.netcdf4_file(tmp_path / "n.nc")
    for kw in (
        {},
        {"mask_and_scale": False},
        {"decode_times": False},
        {"decode_cf": False},
        {"drop_variables": ["precip"]},
        {"decode_times": xr.coders.CFDatetimeCoder(use_cftime=True), "decode_timedelta": False},
        {"decode_coords": "all", "concat_characters": False},
    ):
        got = _open(nc, **kw)
        want = xr.open_dataset(nc, engine="h5netcdf", **kw)
        xr.testing.assert_identical(got, want)
    assert "precip" not in _open(nc, drop_variables="precip")


def test_h5netcdf_file_and_groups(tmp_path: Path) -> None:
    path = gen_hdf5_files.h5netcdf_file(tmp_path / "h.nc")
    xr.testing.assert_identical(_open(path), xr.open_dataset(path, engine="h5netcdf"))
    sub = tmp_path / "sub.nc"
    xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(sub, engine="h5netcdf")
    xr.Dataset({"b": ("y", np.arange(4, dtype="i2"))}, attrs={"k": "v"}).to_netcdf(
        sub, engine="h5netcdf", group="g/h", mode="a"
    )
    xr.testing.assert_identical(
        _open(sub, group="g/h"), xr.open_dataset(sub, engine="h5netcdf", group="g/h")
    )


def test_filters_group_matches_h5netcdf(files) -> None:
    got = _open(files["filters.h5"], group="f")
    want = _h5netcdf(files["filters.h5"], group="f")
    assert got.attrs["bytes_attr"] == want.attrs["bytes_attr"] == "raw bytes"
    _assert_same_but_phony_names(got, want)


SPLITS = pytest.mark.filterwarnings("ignore:The specified chunks separate:UserWarning")


@pytest.mark.parametrize(
    "chunks", [{}, "auto", None, pytest.param({"phony_dim_8": 4}, marks=SPLITS)]
)
def test_chunks_behave_as_with_engine_zarr(scan: Path, chunks: object) -> None:
    ds = _open(scan, group="entry/data", chunks=chunks)
    ref = xr.open_dataset(f"b2h5::{scan}", engine="zarr", group="entry/data", chunks=chunks)
    for name in ds.data_vars:
        assert ds[name].chunks == ref[name].chunks, name
    if chunks == {}:
        assert ds["data"].chunks == ((1,) * 8, (24,), (32,))  # the HDF5 chunks
        assert ds["dark"].chunks == ((8, 8, 8), (16, 16))
    if chunks is None:
        assert ds["data"].chunks is None
    xr.testing.assert_identical(ds.load(), ref.load())


def test_dask_names_deterministic_and_follow_the_file(tmp_path: Path) -> None:
    path = _scan(tmp_path / "s.h5")
    names = [_open(path, group="entry/data", chunks={})["data"].data.name for _ in range(2)]
    assert names[0] == names[1]
    with h5py.File(path, "a") as f:
        f["entry/data/data"][0, 0, 0] = 7
    ds = _open(path, group="entry/data", chunks={})
    # a local path enters xarray's dask token with its mtime: a rewritten file gets new names
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert _open(path, group="entry/data", chunks={})["data"].data.name != names[0]
    assert int(ds["data"][0, 0, 0]) == 7


def test_pickle_dask_backed_dataset(scan: Path) -> None:
    ds = _open(scan, group="entry/data", chunks={})
    back = pickle.loads(pickle.dumps(ds))
    xr.testing.assert_identical(back.load(), ds.load())
    assert float(back["data"].mean()) == float(gen_hdf5_files.tomo_stack((8, 24, 32)).mean())


def test_open_mfdataset_three_files(tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        ds = xr.Dataset(
            {"t": (("time", "x"), np.arange(10.0).reshape(2, 5) + 10 * i, {"units": "K"})},
            coords={"time": [2 * i, 2 * i + 1], "x": np.arange(5)},
        )
        paths.append(tmp_path / f"part{i}.nc")
        ds.to_netcdf(
            paths[-1], engine="h5netcdf", encoding={"t": {"zlib": True, "chunksizes": (1, 5)}}
        )
    got = xr.open_mfdataset(paths, engine="b2h5", combine="by_coords")
    want = xr.open_mfdataset(paths, engine="h5netcdf", combine="by_coords")
    assert got["t"].shape == (6, 5)
    xr.testing.assert_identical(got.load(), want.load())
    got = xr.open_mfdataset(
        [str(p) for p in paths], engine="b2h5", concat_dim="time", combine="nested"
    )
    xr.testing.assert_identical(got.load(), want.load())


def test_open_datatree_and_groups(scan: Path) -> None:
    tree = xr.open_datatree(scan, engine="b2h5")
    want = xr.open_datatree(scan, engine="h5netcdf", phony_dims="sort")
    assert (
        set(tree.groups) == set(want.groups) == {"/", "/entry", "/entry/data", "/entry/instrument"}
    )
    for path in tree.groups:
        got_ds = tree[path].to_dataset(inherit=False)
        _assert_same_but_phony_names(got_ds, want[path].to_dataset(inherit=False))
    groups = xr.open_groups(scan, engine="b2h5")
    assert set(groups) == set(tree.groups)
    xr.testing.assert_identical(groups["/entry/data"], _open(scan, group="entry/data"))
    sub = xr.open_datatree(scan, engine="b2h5", group="entry")
    assert set(sub.groups) == {"/", "/data", "/instrument"}
    chunked = xr.open_datatree(scan, engine="b2h5", chunks={})
    assert chunked["entry/data/data"].chunks == ((1,) * 8, (24,), (32,))


@pytest.mark.parametrize("group", ["entry/nope", "entry/data/data", "nope"])
@pytest.mark.parametrize("how", ["dataset", "datatree", "groups"])
def test_wrong_group_is_file_not_found_naming_file_and_group(
    scan: Path, group: str, how: str
) -> None:
    opener = {
        "dataset": xr.open_dataset,
        "datatree": xr.open_datatree,
        "groups": xr.open_groups,
    }[how]
    with pytest.raises(FileNotFoundError) as err:
        opener(scan, engine="b2h5", group=group)
    msg = str(err.value)
    assert str(scan) in msg and repr(group) in msg and "'entry/data'" in msg


def test_http_url_and_its_options(scan: Path) -> None:
    pytest.importorskip("aiohttp")
    httpd = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(scan.parent))
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/{scan.name}"
        ds = _open(url, group="entry/data", chunks={})
        xr.testing.assert_identical(ds.load(), _open(scan, group="entry/data"))
        opts = {"http": {"headers": {"X-Test": "1"}}, "index_cache": None}
        xr.testing.assert_identical(
            _open(f"b2h5::{url}", group="entry/data", storage_options=opts),
            _open(scan, group="entry/data"),
        )
        with pytest.raises(FileNotFoundError, match=r"nope\.h5"):
            _open(url.replace(scan.name, "nope.h5"))
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.h5"):
        _open(tmp_path / "missing.h5")


def test_storage_options_reach_b2h5(tmp_path: Path, scan: Path) -> None:
    path = tmp_path / "so.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("good", data=np.arange(10))
        f.create_dataset(
            "scaleoffset", data=np.arange(100, dtype="i4"), chunks=(10,), scaleoffset=0
        )
    with pytest.raises(NotImplementedError, match="scaleoffset"):
        _open(path)
    ds = _open(path, storage_options={"unsupported": "skip"})
    assert "scaleoffset" not in ds and list(ds["good"].values) == list(range(10))
    v2 = _open(path, storage_options={"unsupported": "skip", "zarr_format": 2})
    xr.testing.assert_identical(v2, ds)
    for kw in ({"zarr_format": 2}, {"storage_options": {"zarr_format": 2}}):
        xr.testing.assert_identical(
            _open(scan, group="entry/data", **kw), _open(scan, group="entry/data")
        )
    with pytest.raises(ValueError, match="zarr_format"):
        _open(scan, zarr_format=3, storage_options={"zarr_format": 2})
    with pytest.raises(TypeError, match="first argument"):
        _open(scan, storage_options={"fo": str(scan)})
    with pytest.raises(TypeError, match="zarr_fromat"):
        _open(scan, storage_options={"zarr_fromat": 2})


def test_b2h5_options_as_engine_keywords(tmp_path: Path) -> None:
    """``engine="b2h5", unsupported="skip"`` (as engine="h5netcdf" takes ``phony_dims=``): the
    filesystem's options as keywords, also for open_datatree; the same option given both ways
    with different values is a ValueError naming both."""
    path = tmp_path / "kw.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("good", data=np.arange(10))
        f.create_dataset(
            "scaleoffset", data=np.arange(100, dtype="i4"), chunks=(10,), scaleoffset=0
        )
    ds = _open(path, unsupported="skip")
    xr.testing.assert_identical(ds, _open(path, storage_options={"unsupported": "skip"}))
    assert list(ds.data_vars) == ["good"]
    tree = xr.open_datatree(path, engine="b2h5", unsupported="skip", check_version=False)
    assert list(tree.ds.data_vars) == ["good"]
    same = {"unsupported": "skip"}
    xr.testing.assert_identical(_open(path, unsupported="skip", storage_options=same), ds)
    with pytest.raises(ValueError, match=r"unsupported='skip' contradicts .*'raise'"):
        _open(path, unsupported="skip", storage_options={"unsupported": "raise"})
    with pytest.raises(NotImplementedError, match="scaleoffset"):
        _open(path, unsupported="raise")


def test_refuses_file_objects_bytes_stores_and_write_modes(scan: Path) -> None:
    with open(scan, "rb") as fh, pytest.raises(TypeError, match=r'path or URL.*engine="h5netcdf"'):
        _open(fh)
    with pytest.raises(TypeError, match="path or URL"):
        _open(scan.read_bytes())
    with pytest.raises(TypeError, match='engine="zarr"'):
        B2H5BackendEntrypoint().open_dataset({"zarr.json": b"{}"})
    with pytest.raises(PermissionError, match="read-only"):
        _open(scan, mode="a")
    with pytest.raises(TypeError):
        _open(scan, storage_options="zarr_format=2")


@pytest.mark.parametrize(
    "kw",
    [
        {"mode": "a"},
        {"storage_options": 3},
        {"zarr_format": 5},
        {"storage_options": {"fo": "x.h5"}},
        {"storage_options": {"unsupported": "raise"}, "unsupported": "skip"},
    ],
)
def test_argument_errors_hide_credentials(kw: dict[str, object]) -> None:
    """A refused argument's message names the file without the URL's password (no request
    is sent before the arguments are checked)."""
    with pytest.raises((PermissionError, TypeError, ValueError)) as info:
        xr.open_dataset("b2h5::https://me:s3cret@h.invalid/f.h5", engine="b2h5", **kw)
    assert "s3cret" not in str(info.value) and "h.invalid/f.h5" in str(info.value)


def test_fresh_interpreter_finds_the_engine(scan: Path, tmp_path: Path) -> None:
    code = f"""
        import sys
        import xarray as xr
        engines = xr.backends.list_engines()
        assert "b2h5" in engines, list(engines)
        # listing engines imports our entry classes (b2h5, caterva2) and the light modules of
        # whole-chunk reads and argument checks, nothing else of b2store, and neither h5py nor
        # aiohttp
        ours = sorted(m for m in sys.modules if m.startswith("b2store"))
        light = {{"b2store", "b2store.errors", "b2store.hdf5", "b2store.hdf5.xarray_backend",
                  "b2store._whole_chunks", "b2store._cores", "b2store._engine_args",
                  "b2store.caterva2", "b2store.caterva2.xarray_backend"}}
        assert set(ours) <= light, ours
        assert not {{"h5py", "aiohttp"}} & set(sys.modules), sorted(sys.modules)
        ds = xr.open_dataset({str(scan)!r}, engine="b2h5", group="entry/data")
        assert ds["data"].shape == (8, 24, 32)
        print("OK")
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]


def test_no_warnings_on_a_plain_open(scan: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _open(scan, group="entry/data", chunks={}).load()


@pytest.mark.parametrize(
    "kw",
    [
        {"zarr_format": 4},
        {"zarr_format": "2"},
        {"zarr_format": True},
        {"storage_options": {"zarr_format": 1}},
    ],
)
def test_zarr_format_other_than_2_or_3_names_the_file(scan: Path, kw: dict) -> None:
    with pytest.raises(ValueError, match=r"zarr_format.*give 2 or 3") as err:
        _open(scan, **kw)
    assert str(scan) in str(err.value)
    with pytest.raises(ValueError, match=r"give 2 or 3"):
        xr.open_datatree(scan, engine="b2h5", **kw)


def test_lock_is_accepted_as_for_the_netcdf_engines(tmp_path: Path, scan: Path) -> None:
    # code written for engine="h5netcdf" passes lock=...: b2h5 reads no chunk through libhdf5
    ref = _open(scan, group="entry/data")
    for lock in (False, None, threading.Lock()):
        xr.testing.assert_identical(_open(scan, group="entry/data", lock=lock), ref)
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"l{i}.nc")
        xr.Dataset({"v": ("t", np.arange(3.0) + i)}, coords={"t": np.arange(3) + 3 * i}).to_netcdf(
            paths[-1], engine="h5netcdf"
        )
    got = xr.open_mfdataset(paths, engine="b2h5", lock=False, parallel=True)
    want = xr.open_mfdataset(paths, engine="h5netcdf", lock=False)
    xr.testing.assert_identical(got.load(), want.load())
    tree = xr.open_datatree(scan, engine="b2h5", lock=False)
    assert set(tree.groups) == set(xr.open_datatree(scan, engine="b2h5").groups)
    assert set(xr.open_groups(scan, engine="b2h5", lock=False)) == set(tree.groups)


def test_datatree_chunks_keep_same_named_variables_of_groups_apart(tmp_path: Path) -> None:
    # docs/hdf5.md: xr.open_groups(chunks=...) shares dask names across groups (xarray bug);
    # open_datatree and per-group open_dataset, the documented ways, must not
    path = tmp_path / "twin.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("a/v", data=np.zeros((4, 4)), chunks=(2, 2))
        f.create_dataset("b/v", data=np.ones((4, 4)), chunks=(2, 2))
    tree = xr.open_datatree(path, engine="b2h5", chunks={})
    assert tree["a/v"].data.name != tree["b/v"].data.name
    assert float((tree["a/v"] + tree["b/v"]).sum()) == 16.0
    a, b = (_open(path, group=g, chunks={}) for g in "ab")
    assert float((a["v"] + b["v"]).sum()) == 16.0
