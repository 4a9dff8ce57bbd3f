"""b2h5 under parallel readers: many threads, pickling (a relative path names the same file on
a worker with another working directory), dask (array names follow the file version), a
distributed cluster of processes."""

from __future__ import annotations

import contextlib
import os
import pickle
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

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


@contextlib.contextmanager
def _process_cluster(distributed: Any) -> Iterator[None]:
    """A client of a 2-worker LocalCluster of processes, its warnings silenced."""
    with (
        warnings.catch_warnings(),
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        warnings.simplefilter("ignore")
        yield


@pytest.mark.slow
def test_distributed_mean_over_tomography_stack(files) -> None:
    distributed = pytest.importorskip("distributed")
    import xarray as xr

    with h5py.File(files["tomo.h5"]) as f:
        want = f["entry/data/data"][()].mean(axis=0)
    with _process_cluster(distributed):
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


def _write_stack(
    path: Path, value: int, dtype: str = "u2", compression: str | None = "gzip"
) -> None:
    """A small stack written elsewhere and renamed over ``path`` (a new inode, as ``rsync`` and
    atomic writers make)."""
    tmp = path.with_suffix(".tmp")
    with h5py.File(tmp, "w") as f:
        f.create_dataset(
            "x", data=np.full((4, 8), value, dtype=dtype), chunks=(1, 8), compression=compression
        )
    os.replace(tmp, path)


def test_unpickled_copy_of_a_replaced_file_raises(tmp_path: Path) -> None:
    """A dask worker unpickles the store and indexed the file anew: after the file was replaced
    by another one it read the new file's chunks for the old file's zarr metadata (dtype,
    codecs), silently (or with a codec error). distributed's scheduler unpickles and pickles
    the graph again on its way to the workers, so the check must survive a pickle chain."""
    import cloudpickle

    path = tmp_path / "r.h5"
    _write_stack(path, 1)
    arr = da.from_zarr(f"b2h5::{path}", component="x")
    blob = cloudpickle.dumps(arr)
    chained = pickle.dumps(pickle.loads(blob))  # the scheduler's round trip, before the change
    _write_stack(path, 2, dtype="i2", compression=None)
    for data in (blob, chained, pickle.dumps(pickle.loads(chained))):
        with pytest.raises(OSError, match="replaced by another file"):
            pickle.loads(data).compute(scheduler="sync")
    with pytest.raises(OSError, match="replaced by another file"):
        arr.compute(scheduler="sync")  # the original too
    fresh = da.from_zarr(f"b2h5::{path}", component="x")
    assert fresh.compute(scheduler="sync").tolist() == [[2] * 8] * 4


def test_unpickled_copy_reads_an_unchanged_or_copied_file(tmp_path: Path) -> None:
    """Same inode (unchanged, or SWMR appends) or a copy with the same size and mtime (a
    worker node's staged copy, ``cp -p``): the unpickled copy reads it."""
    import shutil

    path = tmp_path / "c.h5"
    _write_stack(path, 3)
    arr = da.from_zarr(f"b2h5::{path}", component="x")
    blob = pickle.dumps(arr)
    assert pickle.loads(blob).compute(scheduler="sync").tolist() == [[3] * 8] * 4
    shutil.copy2(path, tmp_path / "copy.h5")
    os.replace(tmp_path / "copy.h5", path)
    assert pickle.loads(blob).compute(scheduler="sync").tolist() == [[3] * 8] * 4


def test_unpickling_does_not_touch_the_file(tmp_path: Path) -> None:
    """Unpickling indexed the file: distributed's scheduler (which unpickles every graph)
    indexed every file of an ``open_mfdataset``, and a file deleted meanwhile failed with
    "Error during deserialization of the task graph". The copy indexes at its first use, and a
    file gone by then is an OSError naming it, never a FileNotFoundError (zarr would fill the
    chunks with the fill value)."""
    path = tmp_path / "d.h5"
    _write_stack(path, 5)
    arr = da.from_zarr(f"b2h5::{path}", component="x")
    blob = pickle.dumps(arr)
    fs_blob = pickle.dumps(HDF5FileSystem(str(path)))
    os.remove(path)
    copy = pickle.loads(blob)  # no error: the file is not read here
    fs2 = pickle.loads(fs_blob)
    with pytest.raises(OSError, match=r"d\.h5: the HDF5 file cannot be read any more") as err:
        copy.compute(scheduler="sync")
    assert not isinstance(err.value, FileNotFoundError)
    with pytest.raises(OSError, match="cannot be read any more") as err:
        fs2.cat_file("x/zarr.json")
    assert not isinstance(err.value, FileNotFoundError)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
def test_descriptors_stay_bounded_over_many_open_files(tmp_path: Path) -> None:
    """Each filesystem kept a descriptor of its file until it was garbage-collected, so
    ``xr.open_mfdataset`` over a few hundred files ran out of them (``OSError: [Errno 24] Too
    many open files``; macOS allows 256). Descriptors are now pooled process-wide."""
    from b2store.hdf5 import _io_pools

    pool = getattr(_io_pools, "_FDS", None)
    limit = 128 if pool is None else pool.maxsize
    n = limit + 40
    paths = []
    for i in range(n):
        paths.append(tmp_path / f"f{i}.h5")
        with h5py.File(paths[-1], "w") as f:
            f.create_dataset("x", data=np.full(4, i, dtype="i4"), chunks=(2,))
    # fsspec's event loop and its thread open descriptors of their own at the first read
    HDF5FileSystem(str(paths[0]), skip_instance_cache=True).cat_file("x/c/0")
    if pool is not None:
        pool.clear()
    before = len(os.listdir("/proc/self/fd"))
    systems = [HDF5FileSystem(str(p)) for p in paths]  # all alive, as open_mfdataset keeps them
    for i, fs in enumerate(systems):
        assert np.frombuffer(fs.cat_file("x/c/1"), dtype="i4").tolist() == [i, i]
    assert len(os.listdir("/proc/self/fd")) - before <= limit
    with ThreadPoolExecutor(8) as pool:  # evictions while other threads read
        got = list(pool.map(lambda i: systems[i % n].cat_file("x/c/0"), range(4 * n)))
    assert [np.frombuffer(g, dtype="i4")[0] for g in got] == [i % n for i in range(4 * n)]
    assert len(os.listdir("/proc/self/fd")) - before <= limit


@pytest.mark.slow
def test_distributed_worker_processes_refuse_a_replaced_file(tmp_path: Path) -> None:
    """Through a LocalCluster of worker processes (the scheduler re-pickles the graph): a file
    replaced or deleted between open and compute raises a clear OSError."""
    distributed = pytest.importorskip("distributed")
    import xarray as xr

    path = tmp_path / "w.h5"
    _write_stack(path, 1)
    with _process_cluster(distributed):
        ds = xr.open_zarr(f"b2h5::{path}")
        assert int(ds["x"].sum().compute()) == 32
        _write_stack(path, 2, dtype="i2", compression=None)
        with pytest.raises(OSError, match="replaced by another file"):
            ds["x"].sum().compute()
        os.remove(path)
        # a worker may still hold the copy that found the file replaced (fsspec's instance
        # cache): either clear error will do, never values
        with pytest.raises(OSError, match=r"cannot be read any more|replaced by another file"):
            ds["x"].sum().compute()


def test_pickled_relative_index_cache_names_the_same_folder(tmp_path, monkeypatch) -> None:
    """A relative ``index_cache`` folder was pickled as given: workers in another working
    directory wrote and looked for sidecar files elsewhere (the index was never shared)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with h5py.File(tmp_path / "a" / "f.h5", "w") as f:
        f["x"] = np.arange(5)
    monkeypatch.chdir(tmp_path / "a")
    fs = HDF5FileSystem("f.h5", index_cache="cache", skip_instance_cache=True)
    assert len(list((tmp_path / "a" / "cache").iterdir())) == 1
    blob = pickle.dumps(fs)
    monkeypatch.chdir(tmp_path / "b")
    fs2 = pickle.loads(blob)
    assert Path(fs2.index_cache) == tmp_path / "a" / "cache"
    assert fs2.cat_file("x/zarr.json") == fs.cat_file("x/zarr.json")
    assert not (tmp_path / "b" / "cache").exists()


def test_unpickled_copy_indexes_off_zarrs_event_loop(tmp_path: Path, monkeypatch) -> None:
    """An unpickled copy indexes the file at its first use; that use is a zarr read on zarr's
    single I/O event-loop thread, which indexing (seconds for a big or remote file) must not
    block: every other store's reads in the process wait for that loop."""
    import threading

    import zarr

    path = tmp_path / "e.h5"
    _write_stack(path, 7)
    arr = zarr.open_array(HDF5FileSystem(str(path)).get_mapper("x"), mode="r")
    blob = pickle.dumps(arr)
    threads: list[str] = []
    load = HDF5FileSystem._load_index

    def spy(self: HDF5FileSystem) -> object:
        threads.append(threading.current_thread().name)
        return load(self)

    monkeypatch.setattr(HDF5FileSystem, "_load_index", spy)
    copy = pickle.loads(blob)
    assert threads == []  # not at unpickling
    assert copy[...].tolist() == [[7] * 8] * 4
    assert len(threads) == 1 and threads[0] != "zarr_io", threads


def test_dask_token_does_not_depend_on_the_creating_thread_or_process(tmp_path: Path) -> None:
    """fsspec's ``_fs_token`` hashes the thread and process that created a filesystem: the
    token of a store zarr built in its I/O thread differed from its pickled copy's (and from
    any other process's), so dask named the same unchanged file differently."""
    import subprocess
    import sys

    from dask.base import tokenize

    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(10), chunks=(5,))
    fs = HDF5FileSystem(str(path), skip_instance_cache=True)
    with ThreadPoolExecutor(1) as ex:
        other = ex.submit(lambda: HDF5FileSystem(str(path), skip_instance_cache=True)).result()
    assert tokenize(other) == tokenize(fs)
    assert tokenize(pickle.loads(pickle.dumps(other))) == tokenize(fs)
    code = (
        "import sys; from dask.base import tokenize; "
        "from b2store.hdf5.filesystem import HDF5FileSystem; "
        "print(tokenize(HDF5FileSystem(sys.argv[1], skip_instance_cache=True)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == tokenize(fs)


def test_pooled_descriptor_of_a_replaced_file_is_closed(tmp_path: Path) -> None:
    """The process-wide pool kept an idle descriptor of a file replaced at its path (written
    elsewhere and renamed over it) until 128 other files pushed it out: the old file's disk
    space stayed in use long after its stores were gone. Opening the new file closes it; a
    store still holding the old index then raises a clear OSError, as documented."""
    from b2store.hdf5._io_pools import _FDS

    path = tmp_path / "r.h5"

    def write(value: int) -> None:
        with h5py.File(tmp_path / "r.tmp", "w") as f:
            f.create_dataset("x", data=np.full(4, value, dtype="i4"), chunks=(2,))
        os.replace(tmp_path / "r.tmp", path)

    write(1)
    old = HDF5FileSystem(str(path), skip_instance_cache=True)
    assert np.frombuffer(old.cat_file("x/c/0"), dtype="i4").tolist() == [1, 1]
    old_ino = os.stat(path).st_ino
    write(2)
    new = HDF5FileSystem(str(path), skip_instance_cache=True)
    assert np.frombuffer(new.cat_file("x/c/0"), dtype="i4").tolist() == [2, 2]
    held = [os.fstat(int(fd)).st_ino for fd in os.listdir("/proc/self/fd") if _is_fd(fd)]
    assert old_ino not in held
    assert [k for k in _FDS._open if k[0] == str(path)] == [(str(path), os.stat(path).st_ino)]
    with pytest.raises(OSError, match="replaced"):
        old.cat_file("x/c/1")


def _is_fd(name: str) -> bool:
    try:
        os.fstat(int(name))
    except OSError:
        return False
    return True
