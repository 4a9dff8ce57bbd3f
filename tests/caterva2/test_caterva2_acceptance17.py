"""Black-box acceptance of issue #4 (``caterva2://``), as an outside checker types it.

Session 17: found nothing wrong; these are a representative handful of the checks run (URL
forms of 1-D to 4-D datasets through xarray, dask and zarr, a directory as a group with an HDF5
file on the slice path, ``caterva2s://`` on a plain-HTTP server, 404, a torn cache entry).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import blosc2
import h5py
import numpy as np
import pytest
from _c2server import Server, public_folder

ARRAYS = {
    "a1.b2nd": (np.arange(1001, dtype="i4"), {"chunks": (100,), "blocks": (25,)}),
    "a2.b2nd": (
        np.linspace(0, 1, 37 * 53).reshape(37, 53),
        {"chunks": (10, 20), "blocks": (5, 10)},
    ),
    "a3.b2nd": (
        np.arange(9 * 31 * 17, dtype="u2").reshape(9, 31, 17),
        {"chunks": (4, 16, 8), "blocks": (2, 8, 8)},
    ),
    "a4.b2nd": (
        np.arange(3 * 5 * 7 * 11, dtype="f4").reshape(3, 5, 7, 11),
        {"chunks": (2, 3, 4, 5), "blocks": (1, 3, 2, 5)},
    ),
}


@pytest.fixture(scope="module")
def acc(cat2_server: Server) -> str:
    folder, url = public_folder(cat2_server, "acc17")
    for name, (a, kw) in ARRAYS.items():
        b = blosc2.asarray(a, urlpath=str(folder / name), mode="w", **kw)
        b.schunk.vlmeta["units"] = "m"
    with h5py.File(folder / "h.h5", "w") as f:
        f.create_dataset("grp/gz", data=np.arange(300, dtype="i2").reshape(15, 20), chunks=(4, 8),
                         compression="gzip")  # fmt: skip
    return url


@pytest.mark.parametrize("name", list(ARRAYS))
def test_dataset_url_forms(acc: str, so: dict[str, Any], name: str) -> None:
    import dask.array as da
    import xarray as xr
    import zarr

    a = ARRAYS[name][0]
    ds = xr.open_zarr(f"{acc}/{name}", storage_options=so)
    np.testing.assert_array_equal(ds[name].values, a)
    assert ds.attrs["units"] == "m"
    np.testing.assert_allclose(
        da.from_zarr(f"{acc}/{name}", storage_options=so).sum().compute(), a.sum()
    )
    np.testing.assert_array_equal(
        zarr.open_array(f"{acc}/{name}", mode="r", storage_options=so)[...], a
    )


def test_directory_group_with_hdf5(acc: str, so: dict[str, Any]) -> None:
    import dask.array as da
    import xarray as xr
    import zarr

    gz = np.arange(300, dtype="i2").reshape(15, 20)
    g = zarr.open_group(acc, mode="r", storage_options=so)
    assert set(ARRAYS) <= set(g.array_keys()) and "h.h5" in g
    np.testing.assert_array_equal(g["h.h5/grp/gz"][...], gz)
    ds = xr.open_zarr(acc, group="h.h5/grp", storage_options=so)
    np.testing.assert_array_equal(ds["gz"].values, gz)
    np.testing.assert_array_equal(
        da.from_zarr(f"{acc}/h.h5/grp/gz", storage_options=so).compute(), gz
    )


def test_tls_on_plain_server_and_404(acc: str, so: dict[str, Any]) -> None:
    import dask.array as da
    import xarray as xr

    with pytest.raises(ConnectionError, match="caterva2://"):
        da.from_zarr(acc.replace("caterva2://", "caterva2s://") + "/a1.b2nd", storage_options=so)
    with pytest.raises(FileNotFoundError):
        xr.open_zarr(f"{acc}/nope.b2nd", storage_options=so)


def test_torn_cache_entry_is_refetched(acc: str, so: dict[str, Any]) -> None:
    import dask.array as da

    a = ARRAYS["a2.b2nd"][0]
    np.testing.assert_array_equal(da.from_zarr(f"{acc}/a2.b2nd", storage_options=so).compute(), a)
    entries = sorted(Path(so["cache_storage"]).rglob("*.c2c"))
    assert len(entries) == 12
    data = entries[0].read_bytes()
    entries[0].write_bytes(data[: len(data) // 2])  # a half-written entry
    entries[1].write_bytes(data[:32] + bytes(len(data) - 32))  # right length, wrong bytes
    np.testing.assert_array_equal(da.from_zarr(f"{acc}/a2.b2nd", storage_options=so).compute(), a)
    shutil.rmtree(so["cache_storage"])
