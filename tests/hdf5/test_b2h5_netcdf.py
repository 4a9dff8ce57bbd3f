"""netCDF4 files through b2h5 give the same xarray Dataset as the h5netcdf engine.

Dimension scales become dimension names and coordinates, pure dimensions are not variables,
netCDF-internal attributes are hidden, CF attributes pass through (``_FillValue`` included).
Known difference: JSON attributes carry no dtype, so a float32 ``scale_factor`` becomes a
Python float and xarray decodes packed variables to float64 instead of float32; the raw
(``mask_and_scale=False``) datasets are identical and the decoded ones equal within float32
rounding.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

from b2store.hdf5.filesystem import HDF5FileSystem
from b2store.hdf5.metadata import HIDDEN_ATTRIBUTES

pytest.importorskip("h5netcdf")

CORPUS_NC = [
    "goes16_cloud_top_height.nc",
    "cmip6_noy_AERmonZ_UKESM1-0-LL.nc",
    "netcdf4py_issue672.nc",
]


def _open_both(path: Path, **kwargs: object) -> tuple[xr.Dataset, xr.Dataset]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = xr.open_zarr(f"b2h5::{path}", chunks=None, **kwargs).load()  # type: ignore[arg-type]
        ref = xr.open_dataset(path, engine="h5netcdf", **kwargs).load()  # type: ignore[arg-type]
    return ours, ref


@pytest.mark.parametrize("name", ["netcdf4.nc", "h5netcdf.nc"])
def test_generated_netcdf_identical_to_h5netcdf(files, name) -> None:
    if name not in files:
        pytest.skip(f"{name}: writer not installed")
    ours, ref = _open_both(files[name])
    xr.testing.assert_identical(ours, ref)
    for var in ours.variables.values():
        assert not set(var.attrs) & HIDDEN_ATTRIBUTES


def test_netcdf4_details(files) -> None:
    if "netcdf4.nc" not in files:
        pytest.skip("netCDF4 not installed")
    ours, _ = _open_both(files["netcdf4.nc"])
    assert "bnds" not in ours.variables  # a pure dimension is not a variable
    assert ours.sizes["bnds"] == 2
    assert set(ours.coords) >= {"time", "lat", "lon"}
    assert ours["time"].dtype.kind == "M"  # CF time decoded
    assert ours["temp"].isnull().values[0, 0, 0]  # _FillValue masked
    assert ours["precip"].shape == (4, 5, 6)  # shorter than the unlimited dim: padded
    fs = HDF5FileSystem(str(files["netcdf4.nc"]))
    root = json.loads(fs.cat_file("zarr.json"))
    assert "_NCProperties" not in root["attributes"]
    temp = root["consolidated_metadata"]["metadata"]["temp"]
    assert temp["dimension_names"] == ["time", "lat", "lon"]
    assert temp["attributes"]["_FillValue"] == -999
    sub = xr.open_zarr(f"b2h5::{files['netcdf4.nc']}", group="sub", chunks=None)
    assert sub["vx"].values.tolist() == [1, 2, 3]


@pytest.mark.parametrize("name", CORPUS_NC)
def test_corpus_netcdf_matches_h5netcdf(corpus: Path, name: str) -> None:
    ours, ref = _open_both(corpus / name, mask_and_scale=False)
    xr.testing.assert_identical(ours, ref)
    ours, ref = _open_both(corpus / name)
    xr.testing.assert_allclose(ours, ref, rtol=1e-6)
    assert ours.attrs == ref.attrs
    for k in ref.variables:
        assert ours[k].dims == ref[k].dims, k


def test_netcdf_v2_view_matches(files) -> None:
    if "netcdf4.nc" not in files:
        pytest.skip("netCDF4 not installed")
    path = files["netcdf4.nc"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = xr.open_zarr(f"b2h5::{path}", chunks=None, storage_options={"zarr_format": 2})
        ref = xr.open_dataset(path, engine="h5netcdf")
    xr.testing.assert_equal(ours.load(), ref.load())


def test_dimension_names_of_unequal_sizes_get_phony_names(tmp_path: Path) -> None:
    """HDF5 lets a scale be shorter than a dataset attached to it, and a dataset use another
    group's scale while its own group has a scale of that name and another length: xarray then
    refused the whole group ("conflicting sizes"); h5netcdf opens it."""
    path = tmp_path / "dims.h5"
    with h5py.File(path, "w") as f:
        x = f.create_dataset("x", data=np.arange(3.0))
        x.make_scale("x")
        f.create_dataset("v", data=np.arange(5.0)).dims[0].attach_scale(x)
        g = f.create_group("g")
        gx = g.create_dataset("x", data=np.arange(7.0))
        gx.make_scale("x")
        g.create_dataset("u", data=np.arange(7.0)).dims[0].attach_scale(gx)
        g.create_dataset("u_root", data=np.arange(3.0)).dims[0].attach_scale(x)
    for zarr_format in (3, 2):
        so = {"zarr_format": zarr_format, "skip_instance_cache": True}
        root = xr.open_zarr(f"b2h5::{path}", storage_options=so)
        assert root.sizes["x"] == 3 and root["v"].dims == ("phony_dim_5",)
        g = xr.open_zarr(f"b2h5::{path}", group="g", storage_options=so)
        assert g.sizes["x"] == 7 and g["u"].dims == ("x",) and g["u_root"].dims == ("phony_dim_3",)
        np.testing.assert_array_equal(g["u_root"].values, np.arange(3.0))
