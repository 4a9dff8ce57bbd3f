"""netCDF4 files through b2h5 give the same xarray Dataset as the h5netcdf engine.

Dimension scales become dimension names and coordinates, pure dimensions are not variables,
netCDF-internal attributes are hidden, CF attributes pass through (``_FillValue`` included).
Known difference: JSON attributes carry no dtype, so a float32 ``scale_factor`` becomes a
Python float and xarray decodes packed variables to float64 instead of float32; the raw
(``mask_and_scale=False``) datasets are identical and the decoded ones equal within float32
rounding.

Files written by netCDF-C (netCDF4-python) are checked in both Zarr views for what it stores its
own way: char and multi-dimensional coordinate variables, ``_nc4_non_coord_`` variables, repeated
dimensions, unlimited dimensions without a coordinate variable, string variables with fill values
or unwritten chunks; also complex fill values (h5netcdf), ``_FillValue`` attributes that are no
value of their variable's dtype, nested groups opened without consolidated metadata,
``open_mfdataset`` over a list of URLs (a glob pattern is refused), one name look-up per
dimension scale, and netCDF-3 files named as such.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import fsspec
import h5py
import numpy as np
import pytest
import xarray as xr

from b2store.hdf5.filesystem import HDF5FileSystem
from b2store.hdf5.metadata import HIDDEN_ATTRIBUTES

try:
    import netCDF4
except ImportError:  # only the tests of files written by netCDF-C need it
    netCDF4 = None

pytest.importorskip("h5netcdf")
requires_netcdf4 = pytest.mark.skipif(netCDF4 is None, reason="needs netCDF4 (netCDF-C)")

CORPUS_NC = [
    "goes16_cloud_top_height.nc",
    "cmip6_noy_AERmonZ_UKESM1-0-LL.nc",
    "netcdf4py_issue672.nc",
]


def _open_both(
    path: Path, storage_options: dict[str, Any] | None = None, **kwargs: object
) -> tuple[xr.Dataset, xr.Dataset]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = xr.open_zarr(
            f"b2h5::{path}",
            chunks=None,
            storage_options=storage_options,
            **kwargs,  # type: ignore[arg-type]
        ).load()
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


# -- files written by netCDF-C, in both Zarr views -----------------------------------------------


RAW_AND_DECODED: list[dict[str, Any]] = [{}, {"decode_cf": False}, {"mask_and_scale": False}]


def _open(path: Path, zarr_format: int, **kwargs: Any) -> tuple[xr.Dataset, xr.Dataset]:
    """:func:`_open_both` through the ``zarr_format`` view of a fresh b2h5 instance."""
    so = {"zarr_format": zarr_format, "skip_instance_cache": True}
    return _open_both(path, storage_options=so, **kwargs)


@requires_netcdf4
@pytest.mark.parametrize("zarr_format", [3, 2])
@pytest.mark.parametrize("kwargs", RAW_AND_DECODED)
def test_char_and_multidimensional_coordinate_variables(
    tmp_path: Path, zarr_format: int, kwargs: dict[str, Any]
) -> None:
    """netCDF-C stores ``station(station, strlen)`` (CF station names) and ``lat(lat, lon)`` as
    multi-dimensional dimension scales, their axes named only by ``_Netcdf4Coordinates``: they
    and every variable along ``station``/``lat`` got phony dimension names."""
    path = tmp_path / "coords.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("station", 3)
        ds.createDimension("strlen", 5)
        ds.createDimension("time", None)
        ds.createDimension("lat", 2)
        ds.createDimension("lon", 3)
        st = ds.createVariable("station", "S1", ("station", "strlen"))
        st._Encoding = "ascii"
        st[:] = netCDF4.stringtochar(np.array(["abc", "de", "fghij"], "S5"))
        ds.createVariable("time", "f8", ("time",))[:] = [0, 1]
        ds.createVariable("obs", "f4", ("time", "station"))[:] = np.ones((2, 3))
        lat = ds.createVariable("lat", "f8", ("lat", "lon"))
        lat[:] = np.arange(6.0).reshape(2, 3)
        d = ds.createVariable("d", "i4", ("lat", "lon"))
        d[:] = np.arange(6).reshape(2, 3)
        d.coordinates = "lat"
    ours, ref = _open(path, zarr_format, **kwargs)
    xr.testing.assert_identical(ours, ref)
    assert ours["obs"].dims == ("time", "station")


@requires_netcdf4
@pytest.mark.parametrize("zarr_format", [3, 2])
def test_non_coordinate_variable_named_like_a_dimension(tmp_path: Path, zarr_format: int) -> None:
    """netCDF-C stores ``x(y)`` next to a dimension ``x`` as ``_nc4_non_coord_x``: it was served
    under that name instead of ``x``."""
    path = tmp_path / "noncoord.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", 3)
        ds.createDimension("y", 4)
        ds.createVariable("x", "f4", ("y",))[:] = np.arange(4)
        ds.createVariable("v", "i2", ("x",))[:] = [1, 2, 3]
    for kwargs in RAW_AND_DECODED:
        ours, ref = _open(path, zarr_format, **kwargs)
        xr.testing.assert_identical(ours, ref)
    assert "_nc4_non_coord_x" not in ours.variables
    assert ours["x"].dims == ("y",)


@requires_netcdf4
@pytest.mark.parametrize("zarr_format", [3, 2])
def test_repeated_dimension_and_zero_length_attribute(tmp_path: Path, zarr_format: int) -> None:
    """``cov(x, x)`` got two phony dimensions (netCDF readers and Zarr keep ``(x, x)``), and a
    zero-length numeric attribute (an H5S_NULL attribute for netCDF-C) was dropped."""
    path = tmp_path / "rep.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", 3)
        ds.createVariable("x", "f8", ("x",))[:] = [1, 2, 3]
        cov = ds.createVariable("cov", "f4", ("x", "x"))
        cov[:] = np.eye(3)
        cov.empty = np.array([], "f4")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # xarray warns about duplicate dimension names
        ours, ref = _open(path, zarr_format)
    xr.testing.assert_identical(ours, ref)
    assert ours["cov"].dims == ("x", "x")
    assert list(ours["cov"].attrs["empty"]) == []


@requires_netcdf4
@pytest.mark.parametrize("zarr_format", [3, 2])
@pytest.mark.parametrize("kwargs", RAW_AND_DECODED)
def test_unlimited_dimension_without_coordinate_variable(
    tmp_path: Path, zarr_format: int, kwargs: dict[str, Any]
) -> None:
    """netCDF-C leaves the scale of an unlimited dimension that has no coordinate variable at
    length 0; the dimension is as long as its longest variable. Variables of unequal lengths
    along it all got phony dimension names (instead of ``t``, the shorter ones padded)."""
    path = tmp_path / "unlim.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("t", None)
        ds.createVariable("a", "f4", ("t",), chunksizes=(4,))[:5] = np.arange(5) + 1
        ds.createVariable("b", "f4", ("t",), chunksizes=(4,))[:7] = np.arange(7) + 1
        g = ds.createGroup("g")
        g.createVariable("w", "i4", ("t",))[:9] = np.arange(9)
    ours, ref = _open(path, zarr_format, **kwargs)
    xr.testing.assert_identical(ours, ref)
    assert ours.sizes == {"t": 9}  # the child group's variable extends it too (netCDF rule)
    ours, ref = _open(path, zarr_format, group="g", **kwargs)
    xr.testing.assert_identical(ours, ref)


@requires_netcdf4
def test_string_variable_with_fill_value_opens_in_v3(tmp_path: Path) -> None:
    """xarray could not open any group holding a variable-length string variable with a
    ``_FillValue`` through the v3 view ("Failed to decode fill_value. Unsupported dtype
    StringDType()"): the v3 view publishes it as ``missing_value``, which masks the same."""
    path = tmp_path / "strfill.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", 3)
        s = ds.createVariable("s", str, ("x",), fill_value="NA")
        s[0] = "a"
        s[1] = "NA"
        ds.createVariable("v", "f4", ("x",))[:] = 1
    ours, ref = _open(path, 3)
    xr.testing.assert_identical(ours, ref)
    ours, ref = _open(path, 3, mask_and_scale=False)
    assert ours["s"].values.tolist() == ref["s"].values.tolist() == ["a", "NA", "NA"]
    assert ours["s"].attrs == {"missing_value": "NA"}
    for kwargs in RAW_AND_DECODED:
        ours, ref = _open(path, 2, **kwargs)
        xr.testing.assert_identical(ours, ref)


@requires_netcdf4
@pytest.mark.parametrize("zarr_format", [3, 2])
def test_partly_written_string_variable_along_unlimited_dimension(
    tmp_path: Path, zarr_format: int
) -> None:
    """A netCDF string variable with unwritten chunks made the whole file fail to open (HDF5
    2.0 cannot read variable-length fill values read-only: "no write intent on file", no
    dataset named, not even with unsupported="skip"); one shorter than its unlimited dimension
    got a phony dimension instead of being padded with the fill (netCDF4 pads it). h5netcdf
    cannot read such a file; the netCDF4 engine is the reference."""
    path = tmp_path / "strings.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("t", None)
        ds.createDimension("x", 2)
        ds.createVariable("t", "f8", ("t",))[:] = np.arange(5)
        s = ds.createVariable("s", str, ("t",), fill_value="NA", chunksizes=(2,))
        s[0] = "a"
        s[3] = "d"
        ds.createVariable("s1", str, ("t",), chunksizes=(2,))[0] = "x"
        s2 = ds.createVariable("s2", str, ("t", "x"), chunksizes=(1, 2))
        s2[0, 0] = "ü"
        s2[2, 1] = "β"
    for kwargs in RAW_AND_DECODED:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            so = {"zarr_format": zarr_format, "skip_instance_cache": True}
            ours = xr.open_zarr(f"b2h5::{path}", chunks=None, storage_options=so, **kwargs)
            ref = xr.open_dataset(path, engine="netcdf4", **kwargs).load()
        ours = ours.load()
        if zarr_format == 3 and kwargs:  # the v3 view names a string _FillValue missing_value
            ours["s"].attrs = {"_FillValue": ours["s"].attrs.pop("missing_value")}
        xr.testing.assert_identical(ours, ref)
    assert ours["s"].dims == ours["s1"].dims == ("t",)
    assert ours["s1"].values.tolist() == ["x", "", "", "", ""]


@pytest.mark.parametrize("zarr_format", [3, 2])
@pytest.mark.parametrize("kwargs", RAW_AND_DECODED)
def test_complex_fill_value_attribute(
    tmp_path: Path, zarr_format: int, kwargs: dict[str, Any]
) -> None:
    """A complex ``_FillValue`` (h5netcdf, invalid_netcdf) was dropped as "not JSON": xarray then
    did not mask the fill (h5netcdf masks it) and the raw attribute was missing."""
    import h5netcdf

    path = tmp_path / "complex.nc"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # h5netcdf warns about invalid netCDF features
        with h5netcdf.File(path, "w", invalid_netcdf=True) as f:
            f.dimensions = {"x": 6}
            v = f.create_variable("c", ("x",), "c8", chunks=(2,), fillvalue=np.complex64(1 + 2j))
            v[:2] = [0, 1j]
    ours, ref = _open(path, zarr_format, **kwargs)
    xr.testing.assert_identical(ours, ref)


def test_fill_value_attribute_outside_the_dtype_reads_like_h5netcdf(tmp_path: Path) -> None:
    """A ``_FillValue`` attribute that is not a value of its variable's dtype (an int8 -1 on
    uint8 data, 1.5 on int16 data, a float64 -9999.9 on float32 data): the Zarr v2 view could
    not make it the ``fill_value`` and the whole file failed to open (``OverflowError: Python
    integer -1 out of bounds for uint8``) or rounded it to float32 and masked a value h5netcdf
    keeps; the v3 view masked the real 1s of the int16 data (xarray truncates a v3
    ``_FillValue`` to int), and it could not open a group holding a float variable with several
    fill values or a string one (xarray: "TypeError: Failed to decode fill_value"). Both views
    now read like h5netcdf, the attribute masking as it does there."""
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


@requires_netcdf4
@pytest.mark.parametrize("zarr_format", [3, 2])
def test_unconsolidated_open_finds_nested_groups(tmp_path: Path, zarr_format: int) -> None:
    """zarr's FsspecStore lists ``"/child"`` (store path ``""``) and strips ``"/child/"`` from
    each name: names without the leading slash became members such as ``child/.zattrs``, so
    with ``consolidated=False`` the v2 view's nested groups had no arrays and no subgroups."""
    path = tmp_path / "tree.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", 3)
        ds.createVariable("x", "f8", ("x",))[:] = [1, 2, 3]
        child = ds.createGroup("child")
        child.createVariable("v", "f4", ("x",))[:] = 1
        child.createGroup("grand").createVariable("w", "i2", ("x",))[:] = 2
    so = {"zarr_format": zarr_format, "skip_instance_cache": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        listed = xr.open_datatree(
            f"b2h5::{path}", engine="zarr", consolidated=False, storage_options=so
        ).load()
        consolidated = xr.open_datatree(f"b2h5::{path}", engine="zarr", storage_options=so).load()
    xr.testing.assert_identical(listed, consolidated)
    assert listed["child/grand/w"].values.tolist() == [2, 2, 2]


def _write_time_series(path: Path, start: int, n: int) -> None:
    """A netCDF-C file holding days ``start`` to ``start + n`` of ``time`` and ``v(time, x)``."""
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", None)
        nc.createDimension("x", 3)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t[:] = np.arange(start, start + n)
        v = nc.createVariable("v", "f4", ("time", "x"), zlib=True)
        v[:] = np.arange(start * 3, (start + n) * 3, dtype="f4").reshape(n, 3)


@requires_netcdf4
def test_open_mfdataset_reads_a_list_and_refuses_glob_patterns(tmp_path: Path) -> None:
    """``xr.open_mfdataset`` over a list of b2h5 URLs reads like h5netcdf; a glob pattern in a
    ``b2h5::`` URL (which xarray hands to fsspec, building one b2h5 view of the pattern) is a
    ``FileNotFoundError`` that says to expand the pattern first (it only said "not found")."""
    pytest.importorskip("dask")  # open_mfdataset
    _write_time_series(tmp_path / "a.nc", 0, 4)
    _write_time_series(tmp_path / "b.nc", 4, 2)
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


@requires_netcdf4
def test_scale_names_looked_up_once_per_scale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each variable's dimension scales were named with h5py's ``.name``, which for an object
    reached through a reference makes HDF5 search the file (milliseconds each, growing with the
    file): opening a netCDF file of 1500 variables took 31 s (quadratic), now 2 s."""
    from h5py._hl import base

    path = tmp_path / "many.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("t", None)
        ds.createDimension("x", 4)
        ds.createVariable("x", "i4", ("x",))[:] = 1
        for i in range(100):
            ds.createVariable(f"v{i}", "f4", ("t", "x"))[:2] = 1
    calls: list[str] = []
    name = base.HLObject.name

    def counting(self: Any) -> Any:
        calls.append("")
        return name.fget(self)  # type: ignore[attr-defined]

    monkeypatch.setattr(base.HLObject, "name", property(counting))
    from b2store.hdf5.filesystem import HDF5FileSystem

    fs = HDF5FileSystem(str(path), skip_instance_cache=True)
    assert len(calls) < 10, len(calls)  # was 4 per variable
    assert fs.index.meta["v99/zarr.json"]


@requires_netcdf4
def test_netcdf3_file_named_as_such(tmp_path: Path) -> None:
    """A netCDF-3 file was reported as "not a readable HDF5 file ...; check that it is complete
    (not truncated)": misleading for a complete file of another format."""
    path = tmp_path / "classic.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as ds:
        ds.createDimension("x", 2)
        ds.createVariable("v", "f4", ("x",))[:] = 1
    with pytest.raises(OSError, match="netCDF-3"):
        fsspec.filesystem("b2h5", fo=str(path), skip_instance_cache=True)


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_short_variable_without_fill_is_padded_along_its_unlimited_dimension(
    tmp_path: Path, zarr_format: int
) -> None:
    """A variable shorter than its unlimited dimension whose edge chunk does not end at its
    extent and was not pre-filled (netCDF ``NC_NOFILL``: ``fill_value=False``; HDF5 fill time
    "never") got a dimension of its own (``t_5``) instead of ``t``, so the Dataset differed from
    h5netcdf's. Its straddling edge chunks (holding old bytes past the extent: 115, 116, ...
    here) are now read at open and padded with the fill value, filtered or not."""
    path = tmp_path / "nofill.nc"
    with h5py.File(path, "w") as f:
        t = f.create_dataset("t", shape=(0,), maxshape=(None,), dtype="f4", chunks=(4,))
        t.make_scale("This is a netCDF dimension but not a netCDF variable.         0")
        x = f.create_dataset("x", shape=(3,), dtype="f4")
        x.make_scale("This is a netCDF dimension but not a netCDF variable.         3")
        pipelines: dict[str, dict[str, Any]] = {
            "raw": {},
            "gz": {"compression": "gzip", "shuffle": True, "fletcher32": True},
        }
        for name, kw in pipelines.items():
            d = f.create_dataset(
                name, shape=(8, 3), maxshape=(None, 3), dtype=">i4", chunks=(3, 2),
                fill_time="never", **kw,
            )  # fmt: skip
            d[:] = np.arange(24).reshape(8, 3) + 100
            d.resize((5, 3))  # the edge chunk keeps rows 5 (115, 116, 117) past the extent
            d.dims[0].attach_scale(t)
            d.dims[1].attach_scale(x)
        longer = f.create_dataset(
            "long", maxshape=(None,), chunks=(4,), data=np.arange(7, dtype="i2")
        )
        longer.dims[0].attach_scale(t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = xr.open_dataset(path, engine="h5netcdf").load()
        so = {"zarr_format": zarr_format, "skip_instance_cache": True}
        ours = xr.open_zarr(f"b2h5::{path}", storage_options=so, chunks=None).load()
    xr.testing.assert_identical(ours, ref)
    assert ours["gz"].dims == ("t", "x")
    assert ours["gz"].values[4:].tolist() == [[112, 113, 114], [0, 0, 0], [0, 0, 0]]
    if netCDF4 is not None:  # netCDF-C's own NC_NOFILL files: zlib + fletcher32, no filters
        path = tmp_path / "nofill_c.nc"
        with netCDF4.Dataset(path, "w") as ds:
            ds.createDimension("t", None)
            ds.createDimension("x", 2)
            ds.createVariable("long", "i4", ("t",), chunksizes=(4,))[:7] = np.arange(7)
            for name, kw in (("a", {}), ("b", {"zlib": True, "fletcher32": True})):
                v = ds.createVariable(
                    name, "f4", ("t", "x"), chunksizes=(3, 2), fill_value=False, **kw
                )
                v[:4] = 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = xr.open_dataset(path, engine="h5netcdf").load()
            ours = xr.open_zarr(f"b2h5::{path}", storage_options=so, chunks=None).load()
        xr.testing.assert_identical(ours, ref)


@requires_netcdf4
def test_vlen_and_compound_with_array_fields_are_unsupported_clearly(tmp_path: Path) -> None:
    """A netCDF VLEN (ragged) variable was reported as "a variable-length or reference dtype
    (object)" and a compound with an array field as a "nested compound": neither said what the
    data is or what to do. Both now name the type and say to read them with h5py/netCDF4;
    ``unsupported="skip"`` opens the rest like the netCDF4 engine."""
    from b2store.errors import UnsupportedHDF5FeatureError

    path = tmp_path / "types.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", 2)
        vt = ds.createVLType(np.float64, "ragged_t")
        ragged = ds.createVariable("ragged", vt, ("x",))
        ragged[0] = np.arange(3.0)
        ragged[1] = np.arange(1.0)
    with pytest.raises(UnsupportedHDF5FeatureError, match=r"ragged: holds variable-length sequ"):
        HDF5FileSystem(str(path), skip_instance_cache=True)
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", 2)
        cdt = np.dtype([("a", "f4", (3,)), ("b", "i2")])
        ds.createVariable("rec", ds.createCompoundType(cdt, "rec_t"), ("x",))[:] = np.zeros(2, cdt)
        ds.createVariable("ok", "f4", ("x",))[:] = 1
    with pytest.raises(NotImplementedError, match=r"rec: has a compound dtype with array or com"):
        HDF5FileSystem(str(path), skip_instance_cache=True)
    ours = xr.open_zarr(f"b2h5::{path}", storage_options={"unsupported": "skip"}).load()
    ref = xr.open_dataset(path, engine="netcdf4", drop_variables=["rec"]).load()
    xr.testing.assert_identical(ours, ref)


@requires_netcdf4
@pytest.mark.parametrize("zarr_format", [3, 2])
def test_variables_read_at_open_are_padded_along_their_unlimited_dimension(
    tmp_path: Path, zarr_format: int
) -> None:
    """A netCDF-C compound variable (C-aligned, so repacked at open) or a type HDF5 converts
    (12-bit integers) shorter than its unlimited dimension got a phony dimension
    (``phony_dim_2``) instead of ``t``, padded with the fill value as netCDF4 reads it."""
    path = tmp_path / "compound.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("t", None)
        cdt = np.dtype([("a", "i4"), ("b", "f8")])
        rec = ds.createVariable("rec", ds.createCompoundType(cdt, "rec_t"), ("t",))
        rec[:2] = np.array([(1, 2.5), (3, 4.5)], cdt)
        ds.createVariable("v", "f4", ("t",))[:4] = 1
    with h5py.File(path, "a") as f:  # a 12-bit integer variable along t (h5py: no netCDF API)
        tid = h5py.h5t.STD_I16LE.copy()
        tid.set_precision(12)
        sid = h5py.h5s.create_simple((3,), (h5py.h5s.UNLIMITED,))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((2,))
        i12 = h5py.Dataset(h5py.h5d.create(f.id, b"i12", tid, sid, dcpl=dcpl))
        i12[...] = np.array([-5, 7, 2047], "i2")
        i12.dims[0].attach_scale(f["t"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        so = {"zarr_format": zarr_format, "skip_instance_cache": True}
        ours = xr.open_zarr(f"b2h5::{path}", storage_options=so, chunks=None).load()
        ref = xr.open_dataset(path, engine="netcdf4").load()
    assert ours.sizes == ref.sizes == {"t": 4}
    assert ours["rec"].dims == ours["i12"].dims == ("t",)
    assert ours["rec"].values.tolist() == ref["rec"].values.tolist()
    assert ours["i12"].values.tolist() == [-5, 7, 2047, 0]  # h5py's fill (0): no _FillValue


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_short_variable_with_fill_time_never_is_padded_with_its_recorded_fill(
    tmp_path: Path, zarr_format: int
) -> None:
    """A variable shorter than its unlimited dimension, with fill time "never" and a recorded
    fill value (-9: an h5py file; netCDF-C's NC_NOFILL records none), reads padded with -9 in
    h5netcdf and netCDF4 (so xarray masks it as NaN). b2store padded it with zeros (its Zarr
    fill_value is what h5py reads in never-written chunks, 0), straddling edge chunk or not:
    silently wrong numbers. It now pads with the recorded fill when every chunk inside the
    extent is stored; with a never-written chunk there (h5py reads zeros, netCDF readers pad
    with -9) the variable keeps a dimension of its own (``t_6``) instead."""
    path = tmp_path / "never.nc"
    with h5py.File(path, "w") as f:
        t = f.create_dataset("t", shape=(0,), maxshape=(None,), dtype="f4", chunks=(4,))
        t.make_scale("This is a netCDF dimension but not a netCDF variable.         0")
        kw: dict[str, Any] = {"maxshape": (None,), "dtype": "f4", "fill_time": "never"}
        for name, chunks, filters in (
            ("aligned", (2,), {}),
            ("straddle", (3,), {}),
            ("straddle_gz", (3,), {"compression": "gzip"}),
        ):
            d = f.create_dataset(name, shape=(6,), chunks=chunks, fillvalue=-9, **kw, **filters)
            d[:] = np.arange(6) + 100
            d.resize((4,))  # the straddling edge chunk keeps 104, 105 past the extent
            d.attrs["_FillValue"] = np.float32(-9)
            d.dims[0].attach_scale(t)
        holes = f.create_dataset("holes", shape=(6,), chunks=(2,), fillvalue=-9, **kw)
        holes[:2] = 1  # chunks 1 and 2 never written: h5py reads zeros there
        holes.dims[0].attach_scale(t)
        tid = h5py.h5t.STD_I16LE.copy()  # a 12-bit type, read at open (converted by HDF5)
        tid.set_precision(12)
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((2,))
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        dcpl.set_fill_value(np.array(-3, "i2"))
        sid = h5py.h5s.create_simple((3,), (h5py.h5s.UNLIMITED,))
        i12 = h5py.Dataset(h5py.h5d.create(f.id, b"i12", tid, sid, dcpl=dcpl))
        i12[...] = np.array([-5, 7, 2047], "i2")
        i12.dims[0].attach_scale(t)
        f.create_dataset("long", maxshape=(None,), chunks=(4,), data=np.arange(9, dtype="i2"))
        f["long"].dims[0].attach_scale(t)
    so = {"zarr_format": zarr_format, "skip_instance_cache": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = xr.open_dataset(path, engine="h5netcdf", mask_and_scale=False).load()
        ours = xr.open_zarr(
            f"b2h5::{path}", storage_options=so, chunks=None, mask_and_scale=False
        ).load()
        masked = xr.open_zarr(f"b2h5::{path}", storage_options=so, chunks=None).load()
    for name in ("aligned", "straddle", "straddle_gz"):
        assert ours[name].dims == ("t",)
        assert ours[name].values.tolist() == ref[name].values.tolist()
        assert ours[name].values.tolist() == [100, 101, 102, 103] + [-9] * 5  # was: 0s
        assert np.isnan(masked[name].values[4:]).all()
    assert ours["i12"].values.tolist() == ref["i12"].values.tolist() == [-5, 7, 2047] + [-3] * 6
    assert ours["holes"].dims == ("t_6",)
    assert ours["holes"].values.tolist() == [1, 1, 0, 0, 0, 0]  # as h5py reads it


def test_straddling_edge_chunks_read_at_open_are_bounded_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Straddling edge chunks (short variables without fill) are read at open and held in
    memory, sidecars and refs. The limit was per variable (64 MiB), so a file being written,
    with many short variables at once, held 64 MiB times their number (50 variables with 1 MiB
    edge chunks: 50 MiB inline, ~270 MB peak with a sidecar). The limit now holds for the
    whole file: past it, variables keep a dimension of their own (noted), as one variable over
    the limit did."""
    from b2store.hdf5 import index

    path = tmp_path / "many.nc"
    with h5py.File(path, "w") as f:
        t = f.create_dataset("t", shape=(0,), maxshape=(None,), dtype="f4", chunks=(4,))
        t.make_scale("This is a netCDF dimension but not a netCDF variable.         0")
        for i in range(3):
            d = f.create_dataset(
                f"v{i}", shape=(8,), maxshape=(None,), dtype="f4", chunks=(4,), fill_time="never"
            )
            d[:] = np.arange(8) + 10 * i
            d.resize((6,))  # edge chunk [4, 8) straddles: 16 bytes each
            d.dims[0].attach_scale(t)
        f.create_dataset("long", maxshape=(None,), chunks=(4,), data=np.arange(9, dtype="i2"))
        f["long"].dims[0].attach_scale(t)
    monkeypatch.setattr(index, "STRADDLE_LIMIT", 40, raising=False)  # room for two of them
    fs = HDF5FileSystem(str(path), skip_instance_cache=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = xr.open_zarr(fs.get_mapper(), chunks=None).load()
    dims = sorted(ours[f"v{i}"].dims for i in range(3))
    assert dims == [("t",), ("t",), ("t_6",)]  # was: all three padded along t
    for i in range(3):
        values = ours[f"v{i}"].values.tolist()
        assert values[:6] == [float(v) for v in range(10 * i, 10 * i + 6)]
        assert values[6:] in ([], [0.0] * 3)
    assert any("'t_6'" in note for note in fs.notes)


def test_variables_read_at_open_are_padded_only_up_to_their_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Variables read at open (types HDF5 converts, compounds with padding) shorter than their
    unlimited dimension were padded whatever the padded size: the limits checked the stored
    size only, so 3 12-bit values along a dimension of 100 000 000 (a 1 MB file) became one
    inlined chunk of 200 MB (400 MB peak at open; a longer dimension ran out of memory).
    Padded beyond their limit, they now keep a dimension of their own (``t_3``, noted), as
    chunked variables whose edge chunks are over the limit do."""
    from b2store.hdf5 import index

    path = tmp_path / "short.nc"
    aligned = np.dtype({"names": ["a", "b"], "formats": ["i1", "<f8"], "offsets": [0, 8],
                        "itemsize": 16})  # fmt: skip
    with h5py.File(path, "w") as f:
        t = f.create_dataset("t", shape=(0,), maxshape=(None,), dtype="f4", chunks=(4,))
        t.make_scale("This is a netCDF dimension but not a netCDF variable.         0")
        tid = h5py.h5t.STD_I16LE.copy()
        tid.set_precision(12)
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((2,))
        sid = h5py.h5s.create_simple((3,), (h5py.h5s.UNLIMITED,))
        i12 = h5py.Dataset(h5py.h5d.create(f.id, b"i12", tid, sid, dcpl=dcpl))
        i12[...] = np.array([-5, 7, 2047], "i2")
        rec = f.create_dataset("rec", shape=(3,), maxshape=(None,), chunks=(2,), dtype=aligned)
        rec["a"] = [1, 2, 3]
        for d in (i12, rec):
            d.dims[0].attach_scale(t)
        f.create_dataset("long", maxshape=(None,), chunks=(4,), data=np.arange(9, dtype="i2"))
        f["long"].dims[0].attach_scale(t)
    monkeypatch.setattr(index, "CONVERTED_LIMIT", 16)  # 9 padded 12-bit values: 18 bytes
    monkeypatch.setattr(index, "PADDED_COMPOUND_LIMIT", 64)  # 9 packed records: 81 bytes
    fs = HDF5FileSystem(str(path), skip_instance_cache=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = xr.open_zarr(fs.get_mapper(), chunks=None).load()
    assert ours["i12"].dims == ours["rec"].dims == ("t_3",)  # was: ("t",), padded to 9
    assert ours["i12"].values.tolist() == [-5, 7, 2047]
    assert ours["rec"].values["a"].tolist() == [1, 2, 3]
    assert sum("'t_3'" in note for note in fs.notes) == 2
