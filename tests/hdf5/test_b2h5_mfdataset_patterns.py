"""``xr.open_mfdataset`` over b2h5 URLs: a list of files reads like h5netcdf; a glob pattern in
a ``b2h5::`` URL (which xarray hands to fsspec, building one b2h5 view of the pattern) is a
``FileNotFoundError`` that says to expand the pattern first (it only said "not found").
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

netCDF4 = pytest.importorskip("netCDF4")


def _write(path: Path, start: int, n: int) -> None:
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", None)
        nc.createDimension("x", 3)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t[:] = np.arange(start, start + n)
        v = nc.createVariable("v", "f4", ("time", "x"), zlib=True)
        v[:] = np.arange(start * 3, (start + n) * 3, dtype="f4").reshape(n, 3)


def test_open_mfdataset_list_and_pattern(tmp_path: Path) -> None:
    _write(tmp_path / "a.nc", 0, 4)
    _write(tmp_path / "b.nc", 4, 2)
    files = [tmp_path / "a.nc", tmp_path / "b.nc"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = xr.open_mfdataset(files, engine="h5netcdf").load()
        got = xr.open_mfdataset(
            [f"b2h5::{p}" for p in files], engine="zarr", combine="by_coords", parallel=True
        ).load()
        xr.testing.assert_identical(ref, got)
        with pytest.raises(FileNotFoundError, match="does not expand patterns"):
            xr.open_mfdataset(f"b2h5::{tmp_path}/*.nc", engine="zarr")
