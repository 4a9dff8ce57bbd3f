"""Session-16 sweep: the ~120 HDF5/netCDF4 files of the PyTables, pyfive, hdf5plugin,
netCDF4-python and h5py sdists, served by a real cat2-server and read through ``caterva2://``
(zarr group, dataset URLs, ``xr.open_zarr``, ``xr.open_datatree``), compared with h5py. Each
test rebuilds with h5py the feature of a file that failed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr
from _c2server import public_folder

from b2store.errors import Caterva2HTTPError

h5py = pytest.importorskip("h5py")


def test_same_name_at_two_levels_opens_as_a_tree(cat2_server: Any, so: dict[str, Any]) -> None:
    """pyfive's h5netcdf_test.hdf5 has ``y`` (5 items) and ``subgroup/y`` (10): both got the
    default dimension ``y_dim0``, and ``xr.open_datatree`` of the file (or of its directory)
    failed whole ("group '/subgroup' is not aligned with its parents"). The deeper one's
    dimensions are now path-qualified; names that do not clash stay as they were."""
    folder, base = public_folder(cat2_server, "clash")
    y, sub_y, deep_y = np.arange(5), np.arange(10.0), np.arange(7, dtype="i2")
    same = np.arange(4, dtype="u1")
    with h5py.File(folder / "t.h5", "w") as f:
        f["y"], f["x"] = y, same
        f["subgroup/y"], f["subgroup/x"] = sub_y, same  # x: same size, no clash
        f["subgroup/deeper/y"] = deep_y
    url = f"{base}/t.h5"
    tree = xr.open_datatree(url, engine="zarr", storage_options=so)
    np.testing.assert_array_equal(tree["y"].values, y)
    np.testing.assert_array_equal(tree["subgroup/y"].values, sub_y)
    np.testing.assert_array_equal(tree["subgroup/deeper/y"].values, deep_y)
    assert tree["y"].dims == ("y_dim0",)
    assert tree["subgroup/y"].dims == ("subgroup/y_dim0",)
    assert tree["subgroup/deeper/y"].dims == ("subgroup/deeper/y_dim0",)
    assert tree["subgroup/x"].dims == ("x_dim0",)  # no clash: unchanged
    # the directory holding the file: the same, one level down
    tree = xr.open_datatree(base, engine="zarr", storage_options=so)
    assert tree["t.h5/subgroup/y"].dims == ("t.h5/subgroup/y_dim0",)
    np.testing.assert_array_equal(tree["t.h5/subgroup/y"].values, sub_y)
    # group= reads the file's consolidated metadata: the tree's names; the group's own URL has
    # nothing above it to clash with
    ds = xr.open_zarr(url, group="subgroup", storage_options=so)
    assert ds["y"].dims == ("subgroup/y_dim0",)
    ds = xr.open_zarr(f"{url}/subgroup", storage_options=so)
    assert ds["y"].dims == ("y_dim0",)
    np.testing.assert_array_equal(ds["y"].values, sub_y)
    assert zarr.open_group(url, mode="r", storage_options=so)["subgroup/y"].shape == (10,)


def test_hdf5_region_the_server_cannot_read_names_the_causes(
    cat2_server: Any, so: dict[str, Any]
) -> None:
    """A 0-d ``|S1`` dataset never written (netCDF's ``crs`` grid-mapping variable, in pyfive's
    fractal_heap_no_mci_rlat.nc) reads as ``b''`` in h5py, but cat2-server 2026.9 answers its
    fetch with a bare 500 (blosc2.asarray of a zero-itemsize value: ZeroDivisionError). The
    error said only "Internal Server Error"; it now names the dataset, the known causes and
    what to do. The file still opens, and its other datasets read."""
    folder, base = public_folder(cat2_server, "crs")
    t = np.linspace(0.0, 1.0, 6)
    with h5py.File(folder / "n.h5", "w") as f:
        f.create_dataset("crs", shape=(), dtype="S1")
        f["t"] = t
    url = f"{base}/n.h5"
    opts = {**so, "retries": 0}
    ds = xr.open_zarr(url, storage_options=opts)
    np.testing.assert_array_equal(ds["t"].values, t)
    with pytest.raises(Caterva2HTTPError, match=r"500 .*n\.h5/crs.*drop_variables") as info:
        _ = ds["crs"].values
    assert isinstance(info.value, OSError)
    assert "0-d string" in str(info.value)
    ds = xr.open_zarr(url, storage_options=opts, drop_variables=["crs"])
    np.testing.assert_array_equal(ds["t"].values, t)


def test_hdf5_array_items_read_as_trailing_dimensions(cat2_server: Any, so: dict[str, Any]) -> None:
    """PyTables' multidimensional atoms (array_mdatom.h5, ex-noattr.h5): an HDF5 array type
    ``('<f8', (3,))`` per item. h5py reads them, and the server sends them, as trailing
    dimensions of a float64 array; b2store described a (5, 5, 5) array of sub-array items and
    failed every read ("came back with shape (5, 5, 5, 3), expected (5, 5, 5)")."""
    folder, base = public_folder(cat2_server, "mdatom")
    a = np.arange(7 * 4 * 3, dtype=">f8").reshape(7, 4, 3)
    b = np.arange(5 * 6, dtype="<i2").reshape(5, 2, 3)
    with h5py.File(folder / "m.h5", "w") as f:
        d = f.create_dataset("chunked", shape=(7, 4), dtype=np.dtype((">f8", (3,))), chunks=(2, 3))
        d[...] = a
        f.create_dataset("contig", shape=(5,), dtype=np.dtype(("<i2", (2, 3))))[...] = b
    url = f"{base}/m.h5"
    g = zarr.open_group(url, mode="r", storage_options=so)
    with h5py.File(folder / "m.h5", "r") as f:
        assert f["chunked"].shape == (7, 4) and f["chunked"][()].shape == (7, 4, 3)
        for name in ("chunked", "contig"):
            want = f[name][()]
            np.testing.assert_array_equal(g[name][...], want)
            np.testing.assert_array_equal(g[name][1:3, 1], want[1:3, 1])
            z = zarr.open_array(f"{url}/{name}", mode="r", storage_options=so)
            np.testing.assert_array_equal(z[...], want)
    ds = xr.open_zarr(url, storage_options=so)
    np.testing.assert_array_equal(ds["chunked"].values, a)


def test_compounds_out_of_offset_order_and_nested_with_gaps(
    cat2_server: Any, so: dict[str, Any]
) -> None:
    """PyTables' out_of_order_types.h5 (fields listed in another order than their offsets:
    the server's frame says only "V30") failed with numpy's "setting an array element with a
    sequence"; nested-type-with-gaps.h5 (a compound with padding inside a compound with
    padding) with "Cannot cast array data from dtype([('f0', 'V2'), ...". Both now read as h5py
    reads them, fields in h5py's order. The nested one's dataset URL (Zarr v2, which
    zarr-python cannot read a nested dtype from) says so and what to do."""
    folder, base = public_folder(cat2_server, "compound")
    order = np.dtype(
        {"names": ["s5", "s10", "i"], "formats": ["S5", "S10", "<i4"],
         "offsets": [25, 15, 0], "itemsize": 30}
    )  # fmt: skip
    inner = np.dtype(
        {"names": ["char", "double"], "formats": ["i1", "<f8"], "offsets": [2, 4], "itemsize": 12}
    )
    nested = np.dtype(
        {"names": ["float", "compound"], "formats": ["<f4", inner], "offsets": [1, 7],
         "itemsize": 21}
    )  # fmt: skip
    a = np.zeros(9, dtype=order)
    a["s5"], a["s10"], a["i"] = b"abc", b"0123456789", np.arange(9) - 4
    b = np.zeros(11, dtype=nested)
    b["float"] = np.linspace(0, 1, 11)
    b["compound"]["char"] = np.arange(11)
    b["compound"]["double"] = np.arange(11) * 2.5
    with h5py.File(folder / "c.h5", "w") as f:
        f.create_dataset("order", data=a, chunks=(4,))
        f.create_dataset("nested", data=b, chunks=(5,))
    url = f"{base}/c.h5"
    g = zarr.open_group(url, mode="r", storage_options=so)
    with h5py.File(folder / "c.h5", "r") as f:
        for name in ("order", "nested"):
            want, got = f[name][()], g[name][...]
            assert got.dtype.names == want.dtype.names
            for field in want.dtype.names:
                np.testing.assert_array_equal(got[field], want[field])
    assert g["nested"][...]["compound"]["double"][3] == 7.5
    z = zarr.open_array(f"{url}/order", mode="r", storage_options=so)
    np.testing.assert_array_equal(z[...]["s10"], a["s10"])
    with pytest.raises(NotImplementedError, match=r"c\.h5/nested has a nested .*dataset_as="):
        zarr.open_array(f"{url}/nested", mode="r", storage_options=so)
    z = zarr.open_array(f"{url}/nested", mode="r", storage_options={**so, "dataset_as": "array"})
    np.testing.assert_array_equal(z[...]["compound"]["char"], np.arange(11))


def test_an_hdf5_file_the_server_cannot_list_leaves_its_directory_readable(
    cat2_server: Any, so: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """One dataset of a type h5py cannot map (an HDF5 time type: PyTables' Time32/Time64 in
    time-table-vlarray-1_x.h5 and times-nested-be.h5; a quad-precision float in float.h5) makes
    the server answer 500 to /api/list and /api/info of the whole file. The file's directory
    failed whole; now the file is left out with a warning, the file's own URL names the
    cause, and its other datasets still open by their own URLs."""
    folder, base = public_folder(cat2_server, "timetype")
    with h5py.File(folder / "t.h5", "w") as f:
        h5py.h5d.create(f.id, b"when", h5py.h5t.UNIX_D32LE.copy(), h5py.h5s.create_simple((3,)))
        f["ok"] = np.arange(3.0)
    with h5py.File(folder / "good.h5", "w") as f:
        f["x"] = np.arange(4)
    opts = {**so, "retries": 0}
    with caplog.at_level("WARNING", logger="b2store"):
        g = zarr.open_group(base, mode="r", storage_options=opts)
    assert sorted(k for k, _ in g.members(max_depth=None)) == ["good.h5", "good.h5/x"]
    assert "t.h5 out of its group" in caplog.text and "time type" in caplog.text
    np.testing.assert_array_equal(
        xr.open_zarr(base, group="good.h5", storage_options=opts)["x"].values, np.arange(4)
    )
    with pytest.raises(Caterva2HTTPError, match=r"500 .*t\.h5.*time type.*own URLs"):
        zarr.open_group(f"{base}/t.h5", mode="r", storage_options=opts)
    z = zarr.open_array(f"{base}/t.h5/ok", mode="r", storage_options=opts)
    np.testing.assert_array_equal(z[...], np.arange(3.0))
    # the dataset itself: the HDF5 causes, not those of a .b2nd (vlmeta, lazy expressions)
    with pytest.raises(Caterva2HTTPError, match=r"500 .*t\.h5/when.*time type") as err:
        zarr.open_array(f"{base}/t.h5/when", mode="r", storage_options=opts)
    assert "vlmeta" not in str(err.value)


def test_b2frame_of_wide_items_without_a_dtype_reads_as_bytes(
    cat2_server: Any, so: dict[str, Any]
) -> None:
    """An SChunk of typesize 8, several blocks per chunk and no dtype in its vlmeta
    (hdf5plugin's HDF5-Blosc2 ``cyclic.cat`` saved as a .b2frame) is served as bytes: the
    dataset URL's v2 codec guessed 8-byte items from the typesize and failed every chunk
    ("decompresses to 384000 bytes, expected 3072000"); blosc2 reads it, and so does b2store."""
    import blosc2

    folder, base = public_folder(cat2_server, "wide")
    data = np.arange(3 * 6_000, dtype="<f8")
    blosc2.SChunk(
        chunksize=6_000 * 8,
        data=data,
        cparams={"typesize": 8, "blocksize": 8_000},
        urlpath=str(folder / "wide.b2frame"),
        mode="w",
    )
    want = data.view(np.uint8)
    got = zarr.open_array(f"{base}/wide.b2frame", mode="r", storage_options=so)[...]
    assert got.dtype == np.uint8 and got.tobytes() == want.tobytes()
    group = zarr.open_group(base, mode="r", storage_options=so)
    assert group["wide.b2frame"][...].tobytes() == want.tobytes()
