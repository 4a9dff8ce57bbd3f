"""A ``_FillValue`` attribute that is not a value of its variable's dtype (an int8 -1 on uint8
data, 1.5 on int16 data, a float64 -9999.9 on float32 data): the Zarr v2 view could not make
it the ``fill_value`` and the whole file failed to open (``OverflowError: Python integer -1
out of bounds for uint8``) or rounded it to float32 and masked a value h5netcdf keeps; the v3
view masked the real 1s of the int16 data (xarray truncates a v3 ``_FillValue`` to int), and
it could not open a group holding a float variable with several fill values or a string one
(xarray: "TypeError: Failed to decode fill_value"). Both views now read like h5netcdf, the
attribute masking as it does there."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

pytest.importorskip("h5netcdf")


def test_fill_value_attribute_outside_the_dtype(tmp_path: Path) -> None:
    path = tmp_path / "fills.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("u1", data=np.array([1, 255, 3], "u1")).attrs["_FillValue"] = np.int8(-1)
        f.create_dataset("i2", data=np.array([1, 2, 3], "i2")).attrs["_FillValue"] = 1.5
        d = f.create_dataset("u2", shape=(6,), chunks=(2,), dtype="u2", fillvalue=7)
        d[:2] = [1, 2]
        d.attrs["_FillValue"] = np.int32(70000)
        f4 = f.create_dataset("f4", data=np.array([1, -9999.9, 3], "f4"))
        f4.attrs["_FillValue"] = np.float64(-9999.9)
        f.create_dataset("two", data=np.array([1.0, 2.0, 3.0])).attrs["_FillValue"] = [1.0, 2.0]
        f.create_dataset("txt", data=np.array([1.0, 2.0, 3.0])).attrs["_FillValue"] = "2.0"
    for kw in ({}, {"mask_and_scale": False}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = xr.open_dataset(path, engine="h5netcdf", phony_dims="access", **kw).load()
            for zarr_format in (2, 3):
                so = {"zarr_format": zarr_format}
                got = xr.open_zarr(f"b2h5::{path}", storage_options=so, **kw).load()
                for name in ("u1", "i2", "u2", "f4", "two", "txt"):
                    assert got[name].dtype == ref[name].dtype, (name, kw, zarr_format)
                    np.testing.assert_array_equal(got[name].values, ref[name].values)
        assert ref["f4"].values[1] == np.float32(-9999.9)  # h5netcdf does not mask it
