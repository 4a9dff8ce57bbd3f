"""Twelfth-session hunt: netCDF metadata as xarray users meet it, compared with h5netcdf.

What the Zarr metadata cannot carry and ``engine="b2h5"`` now takes from the b2h5 index:

* the NumPy type of ``scale_factor``/``add_offset``: JSON numbers are float64, so a float32 pair
  (GOES, many satellite products) decoded packed integers to float64 where h5netcdf gives
  float32 (values differing in the last float32 digits, ``assert_identical`` failing);
* ``Dataset.encoding["unlimited_dims"]``: missing, so ``ds.to_netcdf(...)`` wrote the time
  dimension fixed and appending records to the copy failed.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

xr = pytest.importorskip("xarray")
netCDF4 = pytest.importorskip("netCDF4")
pytest.importorskip("h5netcdf")


def _quiet(fn, *args, **kw):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def _write_packed(path: Path) -> None:
    """Packed variables as netCDF-C writes them, with scale/offset attributes of several types,
    in the root group (with an unlimited ``time``) and in a subgroup (with its own ``n``)."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension("x", 5)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t[:] = [0, 1, 2]
        raw = np.array([[0, 1, -32767, 100, -100], [7, 8, 9, 10, 11], [1, 2, 3, 4, 5]], "i2")

        def packed(name: str, dtype: str, **attrs: object) -> None:
            v = ds.createVariable(name, dtype, ("time", "x"), fill_value=np.array(-32767, dtype))
            v.setncatts(attrs)
            v.set_auto_maskandscale(False)
            v[:] = raw.astype(dtype)

        packed("f32_pair", "i2", scale_factor=np.float32(0.1), add_offset=np.float32(5))
        packed("f64_pair", "i2", scale_factor=0.1, add_offset=5.0)
        packed("f32_scale", "i2", scale_factor=np.float32(0.01))
        packed("i4_f32_pair", "i4", scale_factor=np.float32(0.1), add_offset=np.float32(5))
        b = ds.createVariable("be_f32", ">i2", ("x",), endian="big")
        b.scale_factor = np.array(0.25, ">f4")
        b.set_auto_maskandscale(False)
        b[:] = np.arange(5, dtype="i2")
        g = ds.createGroup("sub")
        g.createDimension("n", None)
        w = g.createVariable("w", "u1", ("n", "x"))
        w.scale_factor = np.float32(0.5)
        w.add_offset = np.float32(-1)
        w.set_auto_maskandscale(False)
        w[0:2] = np.arange(10, dtype="u1").reshape(2, 5)


@pytest.fixture(scope="module")
def packed_nc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hunt12") / "packed.nc"
    _write_packed(path)
    return path


@pytest.mark.parametrize("zarr_format", [3, 2])
@pytest.mark.parametrize("group", [None, "sub"])
@pytest.mark.parametrize("kw", [{}, {"mask_and_scale": False}, {"chunks": {}}])
def test_packed_variables_decode_to_the_dtype_h5netcdf_gives(
    packed_nc: Path, zarr_format: int, group: str | None, kw: dict[str, object]
) -> None:
    """A float32 scale_factor/add_offset pair decoded int16 data to float64 (JSON attributes):
    now float32 with the same values as h5netcdf, float32 attributes in ``encoding``."""
    ref = _quiet(xr.open_dataset, packed_nc, engine="h5netcdf", group=group, **kw).load()
    got = _quiet(
        xr.open_dataset, packed_nc, engine="b2h5", group=group, zarr_format=zarr_format, **kw
    ).load()
    xr.testing.assert_identical(got, ref)
    for name, var in ref.variables.items():
        assert got[name].dtype == var.dtype, name
        for attr in ("scale_factor", "add_offset"):
            for where in ("attrs", "encoding"):
                want = getattr(var, where).get(attr)
                have = getattr(got[name], where).get(attr)
                assert type(have) is type(want), (name, where, attr, have, want)
    if group is None and not kw:
        assert got["f32_pair"].dtype == np.float32
        assert got["f64_pair"].dtype == np.float64
        assert got["i4_f32_pair"].dtype == np.float64  # xarray's rule for 32-bit integers
        assert got["be_f32"].dtype == np.float32
        assert got.encoding["unlimited_dims"] == {"time"}


def test_datatree_and_mfdataset_get_the_types_and_unlimited_dims(
    packed_nc: Path, tmp_path: Path
) -> None:
    ref = _quiet(xr.open_datatree, packed_nc, engine="h5netcdf").load()
    got = _quiet(xr.open_datatree, packed_nc, engine="b2h5").load()
    xr.testing.assert_identical(got, ref)
    assert got["sub"]["w"].dtype == np.float32
    assert got.encoding["unlimited_dims"] == {"time"}
    assert got["sub"].encoding["unlimited_dims"] == {"n"}
    # a group's own unlimited dimensions only, as h5netcdf
    assert ref["sub"].encoding["unlimited_dims"] == {"n"}
    files = []
    for i in range(2):
        f = tmp_path / f"part{i}.nc"
        _write_packed(f)
        files.append(f)
    mref = _quiet(xr.open_mfdataset, files, engine="h5netcdf", concat_dim="time", combine="nested")
    mgot = _quiet(xr.open_mfdataset, files, engine="b2h5", concat_dim="time", combine="nested")
    xr.testing.assert_identical(mgot.compute(), mref.compute())
    assert mgot["f32_pair"].dtype == np.float32


def test_to_netcdf_copy_keeps_the_unlimited_dimension(packed_nc: Path, tmp_path: Path) -> None:
    """``encoding["unlimited_dims"]`` was missing: the copy's ``time`` was fixed and appending
    a record to it failed (netCDF: "Index exceeds dimension bound")."""
    ds = _quiet(xr.open_dataset, packed_nc, engine="b2h5")
    out = tmp_path / "copy.nc"
    _quiet(ds.to_netcdf, out, engine="netcdf4")
    with netCDF4.Dataset(out, "a") as nc:
        assert nc.dimensions["time"].isunlimited()
        nc["time"][3] = 3.0
        assert len(nc.dimensions["time"]) == 4


@pytest.mark.parametrize(
    "name",
    ["goes16_cloud_top_height.nc", "cmip6_noy_AERmonZ_UKESM1-0-LL.nc", "netcdf4py_issue672.nc"],
)
def test_corpus_netcdf_identical_to_h5netcdf_with_the_engine(corpus: Path, name: str) -> None:
    """GOES-16 packs with float32 scale_factor/add_offset: through the engine it is now
    identical to h5netcdf (dtypes, values, encoding of the Dataset), not only close."""
    ref = _quiet(xr.open_dataset, corpus / name, engine="h5netcdf").load()
    got = _quiet(xr.open_dataset, corpus / name, engine="b2h5").load()
    xr.testing.assert_identical(got, ref)
    assert {k: v.dtype for k, v in got.variables.items()} == {
        k: v.dtype for k, v in ref.variables.items()
    }
    assert got.encoding == ref.encoding


def test_zarr_engine_view_is_unchanged(packed_nc: Path) -> None:
    """Pins the difference documented for ``xr.open_zarr("b2h5::...")``: it reads the JSON
    attributes only (float64 decoding, no ``unlimited_dims``); the b2h5 engine adds them."""
    got = _quiet(xr.open_zarr, f"b2h5::{packed_nc}", chunks=None)
    assert got["f32_pair"].dtype == np.float64
    assert "unlimited_dims" not in got.encoding


def test_plain_hdf5_without_hints_opens_as_before(tmp_path: Path) -> None:
    """A float32 scale_factor on a plain HDF5 dataset (no dimension scales) and a group without
    netCDF dimensions: float32 decoding, empty unlimited_dims, like h5netcdf."""
    import h5py

    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("d", data=np.arange(6, dtype="u2").reshape(2, 3), maxshape=(None, 3))
        d.attrs["scale_factor"] = np.float32(0.5)
        d.attrs["add_offset"] = np.array([1.0], "f4")  # a one-element array, as netCDF-C writes
    ref = _quiet(xr.open_dataset, path, engine="h5netcdf", phony_dims="sort").load()
    got = _quiet(xr.open_dataset, path, engine="b2h5").load()
    assert got["d"].dtype == ref["d"].dtype == np.float32
    np.testing.assert_array_equal(got["d"].values, ref["d"].values)
    assert got.encoding["unlimited_dims"] == set() == ref.encoding["unlimited_dims"]


def test_hints_survive_the_index_sidecar(packed_nc: Path, tmp_path: Path) -> None:
    """An index loaded from an ``index_cache`` sidecar (a new process) must give the same
    Dataset as a freshly built one."""
    code = (
        "import warnings, xarray as xr; warnings.simplefilter('ignore');"
        f"ds = xr.open_dataset({str(packed_nc)!r}, engine='b2h5',"
        f" storage_options={{'index_cache': {str(tmp_path)!r}}});"
        "print(ds['f32_pair'].dtype, sorted(ds.encoding.get('unlimited_dims', ())))"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    assert [r.stdout.split() for r in runs] == [["float32", "['time']"]] * 2
