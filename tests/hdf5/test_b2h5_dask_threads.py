"""b2h5 under parallel readers: many threads, pickling, dask, a distributed cluster of processes."""

from __future__ import annotations

import pickle
import warnings
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np
import pytest

from b2store.hdf5.filesystem import HDF5FileSystem

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")


def test_many_threads_read_right_bytes(files) -> None:
    fs = HDF5FileSystem(str(files["filters.h5"]), skip_instance_cache=True)
    keys = [
        f"f/{name}/c/{i}/{j}"
        for name in ("shuffle_gzip", "lzf", "zstd")
        for i in range(3)
        for j in range(3)
    ]
    keys += [f"f/none/c/{i}/{j}/{k}" for i in range(3) for j in range(3) for k in range(3)]
    want = {k: fs.cat_file(k) for k in keys}
    with ThreadPoolExecutor(16) as pool:
        for _ in range(5):
            got = list(pool.map(fs.cat_file, keys * 4))
            assert got == [want[k] for k in keys * 4]


def test_pickle_roundtrip(files) -> None:
    fs = HDF5FileSystem(str(files["layouts.h5"]), zarr_format=2, unsupported="skip")
    fs2 = pickle.loads(pickle.dumps(fs))
    assert fs2.zarr_format == 2 and fs2.unsupported == "skip"
    assert fs2.cat_file("contiguous/0.0") == fs.cat_file("contiguous/0.0")
    assert fs2.index.meta == fs.index.meta


def test_dask_from_zarr_threads(files) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = da.from_zarr(f"b2h5::file://{files['tomo.h5']}", component="entry/data/data")
    with h5py.File(files["tomo.h5"]) as f:
        want = f["entry/data/data"][()]
    with dask.config.set(scheduler="threads", num_workers=4):
        np.testing.assert_array_equal(arr.compute(), want)
        np.testing.assert_allclose(arr.mean(axis=0).compute(), want.mean(axis=0))


@pytest.mark.slow
def test_distributed_mean_over_tomography_stack(files) -> None:
    distributed = pytest.importorskip("distributed")
    import xarray as xr

    with h5py.File(files["tomo.h5"]) as f:
        want = f["entry/data/data"][()].mean(axis=0)
    with (
        warnings.catch_warnings(),
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(f"b2h5::{files['tomo.h5']}", group="entry/data")
        got = ds["data"].mean(dim=ds["data"].dims[0]).compute()
    np.testing.assert_allclose(got.values, want)
