"""Sixteenth-session sweep over HDF5 files of other projects' test suites (PyTables, pyfive,
hdf5plugin, netCDF4-python, h5py sdists): two features that failed the whole open, rebuilt here.

- an undefined fill value (PyTables' ``attr-u16.h5``, ``ex-noattr.h5``): h5py's ``ds.fillvalue``
  raised RuntimeError out of the open; it now reads like h5py, zeros where nothing was written;
- a 128-bit float dataset (PyTables' ``float.h5``): ``ds.dtype`` raised ValueError out of the
  open; it is now the dataset's UnsupportedHDF5FeatureError, skippable.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr
from h5view_helpers import assert_same

from b2store._h5compat import h5py_mislabels_vlen_byte_order
from b2store.errors import UnsupportedHDF5FeatureError
from b2store.hdf5.filesystem import HDF5FileSystem
from tests._h5_oddities import create_undefined_fill, quad_float_type

xr = pytest.importorskip("xarray")


@pytest.fixture
def undefined_fill(tmp_path: Path) -> Path:
    path = tmp_path / "undef.h5"
    with h5py.File(path, "w") as f:
        create_undefined_fill(f, "chunked", (10, 6), (4, 3), "<i4")[0:4, 0:3] = 7
        create_undefined_fill(f, "big_endian", (5, 2), (2, 2), ">f8")[4] = 1.5
        create_undefined_fill(f, "contiguous", (3,), None, "<u2")[...] = [1, 2, 3]
    return path


@pytest.mark.parametrize("fmt", [2, 3])
def test_undefined_fill_value_reads_like_h5py(undefined_fill: Path, fmt: int) -> None:
    with h5py.File(undefined_fill) as f:
        with pytest.raises(RuntimeError, match="undefined"):
            f["chunked"].fillvalue  # noqa: B018 - what made the open fail
        want = {name: f[name][()] for name in f}
    assert not want["chunked"][4:].any() and not want["big_endian"][:4].any()
    so = {"zarr_format": fmt}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = zarr.open_group(f"b2h5::{undefined_fill}", mode="r", storage_options=so)
        for name, values in want.items():
            assert_same(root[name][...], values, name)
            if fmt == 3:
                assert root[name].metadata.fill_value == 0
        ds = xr.open_zarr(f"b2h5::{undefined_fill}", storage_options=so)
        for name, values in want.items():
            assert_same(ds[name].values, values, f"xarray {name}")


def test_quad_float_dataset_is_unsupported_not_a_failed_open(tmp_path: Path) -> None:
    path = tmp_path / "quad.h5"
    with h5py.File(path, "w") as f:
        f["ok"] = np.arange(5)
        h5py.h5d.create(f.id, b"quad", quad_float_type(), h5py.h5s.create_simple((3,)))
        scalar = h5py.h5s.create(h5py.h5s.SCALAR)
        h5py.h5a.create(f["ok"].id, b"quad_attr", quad_float_type(), scalar)
        f["ok"].attrs["fine"] = 1
    with pytest.raises(UnsupportedHDF5FeatureError, match=r"quad\.h5:/quad: .*numpy cannot"):
        HDF5FileSystem(str(path), skip_instance_cache=True)
    fs = HDF5FileSystem(str(path), unsupported="skip", skip_instance_cache=True)
    assert sorted(fs.index.tables) == ["ok"]
    assert any("quad_attr" in note for note in fs.notes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(f"b2h5::{path}", storage_options={"unsupported": "skip"})
    assert list(ds.data_vars) == ["ok"] and ds["ok"].attrs == {"fine": 1}
    np.testing.assert_array_equal(ds["ok"].values, np.arange(5))


@pytest.mark.parametrize("fmt", [2, 3])
def test_big_endian_sequence_attributes_keep_their_values(tmp_path: Path, fmt: int) -> None:
    """h5py reads variable-length sequences of a non-native byte order as native arrays of the
    file's bytes (``vlen_dtype('>u8')`` [1, 2] as [2**56, 2**57]; pyfive reads the file right):
    b2h5 served those numbers as the attribute (pyfive's ``attr_datatypes.hdf5``)."""
    path = tmp_path / "vlen_attrs.h5"
    value = np.empty(2, dtype=object)
    value[0], value[1] = np.array([1, 2], ">u8"), np.array([3], ">u8")
    with h5py.File(path, "w") as f:
        f.attrs.create("seqs", value, dtype=h5py.vlen_dtype(np.dtype(">u8")))
        f.attrs.create("little", value, dtype=h5py.vlen_dtype(np.dtype("<i2")))
        f["x"] = np.arange(3)
        one = np.empty((), dtype=object)
        one[()] = np.array([7, 8], ">i4")
        f["x"].attrs.create("one", one, dtype=h5py.vlen_dtype(np.dtype(">i4")))
    with h5py.File(path) as f:  # what h5py reads (a fixed h5py would read [[1, 2], [3]])
        if h5py_mislabels_vlen_byte_order():
            assert f.attrs["seqs"][0].tolist() == [2**56, 2**57]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = zarr.open_group(f"b2h5::{path}", mode="r", storage_options={"zarr_format": fmt})
    assert root.attrs["seqs"] == [[1, 2], [3]]
    assert root.attrs["little"] == [[1, 2], [3]]
    assert root["x"].attrs["one"] == [7, 8]
