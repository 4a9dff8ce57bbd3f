"""Eleventh-session hunt: what xarray and dask users get from b2h5 compared with h5netcdf.

Each test writes a small netCDF4/HDF5 file the way real producers do and compares
``engine="b2h5"`` (or ``"b2h5::"`` URLs through ``engine="zarr"``) with ``engine="h5netcdf"``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

xr = pytest.importorskip("xarray")
netCDF4 = pytest.importorskip("netCDF4")
pytest.importorskip("h5netcdf")


def _quiet_open(path: Path, engine: str, **kw: object) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_dataset(path, engine=engine, **kw).load()


def _write_unsigned_false(path: Path) -> None:
    """netCDF's ``_Unsigned="false"`` on unsigned bytes: they hold signed values."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", 5)
        v = ds.createVariable("u8", "u1", ("x",), fill_value=np.uint8(200))
        v._Unsigned = "false"
        v[:] = np.array([255, 1, 200, 128, 127], "u1")
        w = ds.createVariable("u16", "u2", ("x",), fill_value=np.uint16(40000))
        w._Unsigned = "false"
        w[:] = np.array([65535, 40000, 0, 32768, 5], "u2")
        k = ds.createVariable("low", "u1", ("x",), fill_value=np.uint8(7))  # fill < 128
        k._Unsigned = "false"
        k[:] = np.array([7, 250, 3, 7, 0], "u1")
        # big-endian: the signed fill is the value's, not its stored bytes' (format 18
        # published 16540 for 40000 and the fill went unmasked)
        b = ds.createVariable("u16be", ">u2", ("x",), fill_value=np.uint16(40000), endian="big")
        b._Unsigned = "false"
        b[:] = np.array([5, 40000, 0, 32768, 65535], "u2")


@pytest.mark.parametrize("fmt", [3, 2])
@pytest.mark.parametrize("kw", [{}, {"decode_times": False}, {"chunks": {}}])
def test_unsigned_false_with_a_fill_above_the_signed_range_opens(
    tmp_path: Path, fmt: int, kw: dict[str, object]
) -> None:
    """A uint8 variable with ``_Unsigned="false"`` and ``_FillValue=200`` failed the whole open
    of the v3 view (``OverflowError: Python integer 200 out of bounds for int8``, from xarray's
    unsigned decoding of the JSON attribute); h5netcdf reads it as int8 with the fill masked."""
    path = tmp_path / "unsigned_false.nc"
    _write_unsigned_false(path)
    ref = _quiet_open(path, "h5netcdf", **kw)
    got = _quiet_open(path, "b2h5", zarr_format=fmt, **kw)
    for name in ("u8", "u16", "low", "u16be"):
        assert got[name].dtype == ref[name].dtype, name
        np.testing.assert_array_equal(got[name].values, ref[name].values, err_msg=name)
    np.testing.assert_array_equal(got["u8"].values, [-1, 1, np.nan, -128, 127])
    np.testing.assert_array_equal(got["u16be"].values, [5, np.nan, 0, -32768, -1])
    # raw values stay the stored bytes
    raw = _quiet_open(path, "b2h5", zarr_format=fmt, decode_cf=False)
    np.testing.assert_array_equal(raw["u8"].values, [255, 1, 200, 128, 127])


def test_char_variable_fill_is_masked_by_the_v2_view_only(tmp_path: Path) -> None:
    """Pins the documented difference (docs/hdf5.md): xarray 2026.9 can apply no v3
    ``_FillValue`` of a fixed-length bytes (netCDF char) variable, so the v3 view leaves such
    items unmasked while the v2 view masks them as h5netcdf does. Fails when xarray learns it,
    so the docs can be updated."""
    path = tmp_path / "chars.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("n", 3)
        v = ds.createVariable("code", "S1", ("n",), fill_value=b"x")
        v[:] = np.array([b"a", b"x", b"c"])
    kw = {"concat_characters": False}
    ref = _quiet_open(path, "h5netcdf", **kw)["code"].values.tolist()
    assert (ref[0], ref[2]) == (b"a", b"c") and ref[1] != ref[1]  # NaN
    v2 = _quiet_open(path, "b2h5", zarr_format=2, **kw)["code"].values.tolist()
    assert (v2[0], v2[2]) == (b"a", b"c") and v2[1] != v2[1]
    v3 = _quiet_open(path, "b2h5", **kw)["code"].values.tolist()
    assert v3 == [b"a", b"x", b"c"]
