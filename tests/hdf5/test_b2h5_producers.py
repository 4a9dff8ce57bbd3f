"""b2h5 against HDF5 files from many producers: every dataset reads like h5py, or is reported.

Files come from :mod:`producers_gen` (netCDF4-python, h5netcdf, xarray ``to_netcdf``, h5py
feature zoo, PyTables, hdf5plugin Blosc2 variants), written once per session into a temporary
folder. For each file and Zarr format, every h5py dataset either reads identical through zarr
or is absent with a note naming it (``unsupported="skip"``), and raises the documented
:class:`~b2store.errors.UnsupportedHDF5FeatureError` with ``unsupported="raise"``. netCDF4
files additionally give the same xarray Dataset (every group) and DataTree as h5netcdf.
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path
from typing import Any

import fsspec
import h5py
import numpy as np
import pytest
import xarray as xr

sys.path.insert(0, str(Path(__file__).parent))

import producers_gen as pg
from h5view_helpers import assert_same, dataset_names, h5_values, open_root

from b2store.errors import UnsupportedHDF5FeatureError
from b2store.hdf5 import metadata as md
from b2store.hdf5.filesystem import HDF5FileSystem

#: Datasets that are expected to be reported rather than read (file name -> dataset -> words).
EXPECTED_UNSUPPORTED = {
    "h5py_features.h5": {"refs": "object references", "regrefs": "region references"},
    "pytables.h5": {"vlarray": "variable-length"},
}
#: Attributes with no JSON form (skipped with a note): file -> (node, attribute).
EXPECTED_SKIPPED_ATTRS = {
    "h5netcdf_invalid.nc": {("", "complex_attr")},
}


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("producers")
    out: dict[str, Path] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for writer in pg.WRITERS.values():
            for path in writer(folder):
                out[path.name] = path
    return out


ALL_FILES = [
    "netcdf4_features.nc",
    "h5netcdf_features.nc",
    "h5netcdf_invalid.nc",
    "xarray_h5netcdf.nc",
    "xarray_netcdf4.nc",
    "h5py_features.h5",
    "libver_earliest.h5",
    "libver_latest.h5",
    "swmr.h5",
    "userblock.h5",
    "pytables.h5",
    "blosc2_variants.h5",
]
NC_FILES = [n for n in ALL_FILES if n.endswith(".nc")]


def _get(produced: dict[str, Path], name: str) -> Path:
    if name not in produced:
        pytest.skip(f"{name}: its writer is not installed")
    return produced[name]


def _datasets(path: Path) -> list[str]:
    with h5py.File(path) as f:
        return dataset_names(f)


def _open(path: Path | str, zarr_format: int, **kwargs: Any) -> HDF5FileSystem:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HDF5FileSystem(
            str(path),
            zarr_format=zarr_format,
            unsupported="skip",
            skip_instance_cache=True,
            **kwargs,
        )


@pytest.mark.parametrize("zarr_format", [3, 2], ids=["v3", "v2"])
@pytest.mark.parametrize("name", ALL_FILES)
def test_every_dataset_reads_like_h5py_or_is_noted(produced, name, zarr_format) -> None:
    path = _get(produced, name)
    fs = _open(path, zarr_format)
    root = open_root(fs)
    expected = EXPECTED_UNSUPPORTED.get(name, {})
    with h5py.File(path) as f:
        for dname in _datasets(path):
            ds = f[dname]
            if md.is_pure_dimension(ds):
                continue
            if dname in expected:
                assert dname not in fs.index.tables
                hits = [n for n in fs.notes if f"/{dname}:" in n and expected[dname] in n]
                assert hits, (dname, fs.notes)
                continue
            assert dname in fs.index.tables, (dname, fs.notes)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = root[dname][...]
            want = h5_values(ds)
            if got.shape != want.shape and got.ndim == want.ndim:
                # a netCDF variable shorter than its unlimited dimension: padded with the fill
                head = tuple(slice(0, n) for n in want.shape)
                tail = np.asarray(got).copy()
                tail[head] = ds.fillvalue
                np.testing.assert_array_equal(tail, np.full(got.shape, ds.fillvalue, got.dtype))
                got = got[head]
            assert_same(got, want, f"{name}:{dname} v{zarr_format}")


@pytest.mark.parametrize("name", [n for n, e in EXPECTED_UNSUPPORTED.items()])
def test_unsupported_datasets_raise_clearly(produced, name) -> None:
    path = _get(produced, name)
    with pytest.raises(UnsupportedHDF5FeatureError) as err:
        HDF5FileSystem(str(path), skip_instance_cache=True)
    msg = str(err.value)
    assert name in msg and "unsupported='skip'" in msg
    assert any(f"/{d}:" in msg for d in EXPECTED_UNSUPPORTED[name])


@pytest.mark.parametrize("name", NC_FILES)
def test_netcdf_groups_identical_to_h5netcdf(produced, name) -> None:
    pytest.importorskip("h5netcdf")
    path = _get(produced, name)
    groups = [""]
    with h5py.File(path) as f:
        f.visititems(lambda n, o: groups.append(n) if isinstance(o, h5py.Group) else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for zarr_format in (3, 2):
            for group in groups:
                ref = xr.open_dataset(path, engine="h5netcdf", group=group or None).load()
                ours = xr.open_zarr(
                    f"b2h5::{path}",
                    group=group or None,
                    chunks=None,
                    storage_options={"zarr_format": zarr_format, "unsupported": "warn"},
                ).load()
                skipped = {a for g, a in EXPECTED_SKIPPED_ATTRS.get(name, set()) if g == group}
                for attr in skipped:
                    assert attr not in ours.attrs
                    ref.attrs.pop(attr)
                xr.testing.assert_identical(ours, ref)


def test_netcdf4_datatree_identical(produced) -> None:
    pytest.importorskip("h5netcdf")
    path = _get(produced, "netcdf4_features.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = xr.open_datatree(f"b2h5::{path}", engine="zarr").load()
        ref = xr.open_datatree(path, engine="h5netcdf").load()
    xr.testing.assert_identical(ours, ref)


def test_netcdf4_padded_compound_and_short_variables(produced) -> None:
    """netCDF4 compounds are C-aligned (padding); variables shorter than `time` are padded."""
    path = _get(produced, "netcdf4_features.nc")
    fs = _open(path, 3)
    root = open_root(fs)
    with h5py.File(path) as f:
        assert f["compound"].dtype.itemsize == 16  # 4 padding bytes after the int32
        assert_same(root["compound"][...], f["compound"][...], "compound")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(f"b2h5::{path}", chunks=None).load()
    assert ds["nanfill"].dims == ("time",) and ds["nanfill"].shape == (6,)
    assert np.isnan(ds["nanfill"].values[4:]).all()
    assert ds["short_default_fill"].dims == ("time",)


def test_external_link_not_followed_is_noted(produced) -> None:
    path = _get(produced, "h5py_features.h5")
    fs = _open(path, 3)
    assert "external" not in fs.index.tables
    assert any("/external: external link" in n and "follow_external_links" in n for n in fs.notes)
    fs = _open(path, 3, follow_external_links=True)
    np.testing.assert_array_equal(open_root(fs)["external"][...], np.arange(5, dtype="i2"))


def test_userblock_file_through_memory_filesystem(produced) -> None:
    """Chunk offsets are absolute file offsets, also on a non-local target filesystem."""
    path = _get(produced, "userblock.h5")
    mem = fsspec.filesystem("memory")
    mem.pipe("/producers/userblock.h5", path.read_bytes())
    fs = HDF5FileSystem("memory://producers/userblock.h5", skip_instance_cache=True)
    root = open_root(fs)
    with h5py.File(io.BytesIO(path.read_bytes())) as f:
        for name in ("chunked", "contig"):
            assert_same(root[name][...], f[name][...], name)


def test_dask_and_pytables_attributes(produced) -> None:
    path = _get(produced, "pytables.h5")
    import dask.array as da

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = da.from_zarr(
            f"b2h5::file://{path}",
            component="carray_blosc2_big",
            storage_options={"unsupported": "skip"},
        )
        with h5py.File(path) as f:
            np.testing.assert_array_equal(arr.compute(), f["carray_blosc2_big"][...])
            attrs = dict(open_root(_open(path, 3))["carray_blosc2"].attrs)
            assert attrs["CLASS"] == "CARRAY" and "VERSION" in attrs and attrs["TITLE"] == ""


def test_large_padded_compound_raises_clearly(tmp_path, monkeypatch) -> None:
    from b2store.hdf5 import index

    path = tmp_path / "padded.h5"
    dt = np.dtype(
        {"names": ["a", "b"], "formats": ["<i4", "<f8"], "offsets": [0, 8], "itemsize": 16}
    )
    with h5py.File(path, "w") as f:
        f.create_dataset("rec", data=np.zeros(10, dtype=dt))
    monkeypatch.setattr(index, "PADDED_COMPOUND_LIMIT", 64)
    with pytest.raises(UnsupportedHDF5FeatureError, match=r"padded.h5:/rec: .*padding"):
        HDF5FileSystem(str(path), skip_instance_cache=True)
    monkeypatch.setattr(index, "PADDED_COMPOUND_LIMIT", 2**20)
    fs = HDF5FileSystem(str(path), skip_instance_cache=True)
    got = open_root(fs)["rec"][...]
    assert got.dtype.itemsize == 12
    assert_same(got, np.zeros(10, dtype=dt), "rec")
