"""b2h5 under parallel readers: many threads, pickling (a relative path names the same file on
a worker with another working directory), dask (array names follow the file version), a
distributed cluster of processes."""

from __future__ import annotations

import os
import pickle
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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


def test_pickled_b2h5_filesystem_does_not_depend_on_the_working_directory(
    tmp_path, monkeypatch
) -> None:
    """A relative ``fo`` must still name the same file on a worker with another cwd."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with h5py.File(tmp_path / "a" / "f.h5", "w") as f:
        f["x"] = np.arange(5)
    monkeypatch.chdir(tmp_path / "a")
    fs = HDF5FileSystem("f.h5", skip_instance_cache=True)
    blob = pickle.dumps(fs)
    monkeypatch.chdir(tmp_path / "b")
    fs2 = pickle.loads(blob)
    assert fs2.url == fs.url
    assert fs2.cat_file("x/zarr.json") == fs.cat_file("x/zarr.json")


def test_dask_names_follow_the_file_version(tmp_path: Path) -> None:
    """dask names ``da.from_zarr`` arrays by a hash of the pickled store, and b2h5 pickled by
    path and options only: a rewritten file got the old names, so a cluster holding the old
    data (``persist``) served it for the new file, silently. Unchanged files keep their names.
    """
    import dask.array as da
    from dask.base import tokenize

    path = tmp_path / "v.h5"
    url = f"b2h5::{path}"

    def write(value: int) -> None:
        tmp = tmp_path / "v.tmp"
        with h5py.File(tmp, "w") as f:
            f.create_dataset("x", data=np.full(10, value, dtype="i4"), chunks=(5,))
        os.replace(tmp, path)  # same size and layout, new inode

    write(1)
    old = da.from_zarr(url, component="x")
    assert da.from_zarr(url, component="x").name == old.name  # deterministic
    fs = HDF5FileSystem(str(path), skip_instance_cache=True)
    assert tokenize(fs) == tokenize(HDF5FileSystem(str(path), skip_instance_cache=True))
    assert tokenize(fs) == tokenize(pickle.loads(pickle.dumps(fs)))  # a round trip keeps it
    write(2)
    new = da.from_zarr(url, component="x")
    assert new.name != old.name
    fresh = HDF5FileSystem(str(path), skip_instance_cache=True)
    assert tokenize(fs) != tokenize(fresh)
    assert fs.ukey("x/c/0") != fresh.ukey("x/c/0")  # what fsspec's caching layers compare
    assert new.compute(scheduler="sync").tolist() == [2] * 10
