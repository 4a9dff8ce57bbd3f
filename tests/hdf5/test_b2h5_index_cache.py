"""The chunk index: compact tables, the in-memory cache and the sidecar cache files."""

from __future__ import annotations

import os
from pathlib import Path

import gen_hdf5_files
import numpy as np
from h5view_helpers import open_root

from b2store.hdf5 import cache
from b2store.hdf5 import filesystem as fsmod
from b2store.hdf5.filesystem import HDF5FileSystem


def test_index_is_compact(tmp_path: Path) -> None:
    p = gen_hdf5_files.many_chunks_file(tmp_path / "many.h5", 5000)
    fs = HDF5FileSystem(str(p), skip_instance_cache=True)
    t = fs.index.tables["x"]
    assert t.lin.size == 5000 and t.lin.dtype == np.int64
    assert t.offsets.dtype == np.uint64 and t.sizes.dtype == np.uint64
    assert np.all(np.diff(t.lin) > 0)  # sorted for searchsorted
    np.testing.assert_array_equal(open_root(fs)["x"][4990:5010], np.arange(4990, 5010))


def test_memory_cache_shared_between_instances(files) -> None:
    a = HDF5FileSystem(str(files["filters.h5"]), skip_instance_cache=True)
    b = HDF5FileSystem(str(files["filters.h5"]), skip_instance_cache=True)
    assert a is not b and a.index is b.index


def test_sidecar_roundtrip_and_invalidation(tmp_path: Path) -> None:
    p = gen_hdf5_files.layouts_file(tmp_path / "layouts.h5")
    folder = tmp_path / "cache"
    fsmod._MEMORY.clear()
    a = HDF5FileSystem(str(p), index_cache=folder, skip_instance_cache=True)
    sidecars = list(folder.glob("*.npz"))
    assert len(sidecars) == 1
    fsmod._MEMORY.clear()
    b = HDF5FileSystem(str(p), index_cache=folder, skip_instance_cache=True)
    assert b.index is not a.index
    assert b.index.meta == a.index.meta
    for path, t in a.index.tables.items():
        u = b.index.tables[path]
        assert (t.shape, t.chunks, t.inline, t.fill_chunk, t.masked) == (
            u.shape,
            u.chunks,
            u.inline,
            u.fill_chunk,
            u.masked,
        )
        np.testing.assert_array_equal(t.offsets, u.offsets)
    root = open_root(b)
    np.testing.assert_array_equal(root["compact"][...], np.arange(6) * 7)
    # a modified file gets a new key: its old sidecar is not used
    with open(p, "ab") as fh:
        fh.write(b"\0" * 16)
    st = os.stat(p)
    os.utime(p, (st.st_atime, st.st_mtime + 5))
    fsmod._MEMORY.clear()
    HDF5FileSystem(str(p), index_cache=folder, skip_instance_cache=True)
    assert len(list(folder.glob("*.npz"))) == 2


def test_damaged_sidecar_is_ignored(tmp_path: Path) -> None:
    p = gen_hdf5_files.filters_file(tmp_path / "filters.h5")
    folder = tmp_path / "cache"
    fsmod._MEMORY.clear()
    HDF5FileSystem(str(p), index_cache=folder, skip_instance_cache=True)
    (sidecar,) = folder.glob("*.npz")
    sidecar.write_bytes(b"garbage" * 10)
    fsmod._MEMORY.clear()
    fs = HDF5FileSystem(str(p), index_cache=folder, skip_instance_cache=True)
    assert open_root(fs)["f/gzip"].shape == (7, 9, 11)
    assert cache.load_sidecar(folder, "another key") is None


def test_auto_cache_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("B2STORE_CACHE", str(tmp_path / "c"))
    p = gen_hdf5_files.filters_file(tmp_path / "f.h5")
    fsmod._MEMORY.clear()
    HDF5FileSystem(str(p), index_cache="auto", skip_instance_cache=True)
    assert list((tmp_path / "c" / "hdf5-index").glob("*.npz"))


def test_sidecar_written_when_the_index_is_already_in_memory(tmp_path: Path) -> None:
    """A file first opened without a sidecar folder, then with one, in the same process: the
    memory hit returned early and no sidecar was written, so dask workers re-scanned it."""
    p = gen_hdf5_files.filters_file(tmp_path / "f.h5")
    fsmod._MEMORY.clear()
    first = HDF5FileSystem(str(p), skip_instance_cache=True)
    folder = tmp_path / "cache"
    again = HDF5FileSystem(str(p), index_cache=str(folder), skip_instance_cache=True)
    assert again.index is first.index  # the memory hit
    assert len(list(folder.glob("*.npz"))) == 1
    fsmod._MEMORY.clear()
    third = HDF5FileSystem(str(p), index_cache=str(folder), skip_instance_cache=True)
    assert third.index.tables.keys() == first.index.tables.keys()


def test_sidecar_keeps_virtual_dataset_sources(tmp_path: Path) -> None:
    p = gen_hdf5_files.vds_file(tmp_path / "vds.h5")
    folder = tmp_path / "cache"
    fsmod._MEMORY.clear()
    HDF5FileSystem(str(p), index_cache=folder, unsupported="skip", skip_instance_cache=True)
    fsmod._MEMORY.clear()
    fs = HDF5FileSystem(str(p), index_cache=folder, unsupported="skip", skip_instance_cache=True)
    assert len(fs.index.tables["plain"].urls) == 2
    got = open_root(fs)["plain"][...]
    assert got[0, 1] == 1 and got[4, 0] == 5 and got[9, 0] == 0


def test_rewritten_file_is_reindexed(tmp_path: Path) -> None:
    import h5py
    import xarray as xr

    p = tmp_path / "f.h5"
    for value in (1, 2):
        with h5py.File(p, "w") as f:
            f.create_dataset("x", data=np.full(10 * value, value, dtype="i4"))
        st = os.stat(p)
        os.utime(p, (st.st_atime, st.st_mtime + value))  # coarse mtime clocks
        ds = xr.open_zarr(f"b2h5::{p}", chunks=None)
        assert ds["x"].values.tolist() == [value] * 10 * value


def test_changed_virtual_dataset_source_is_reindexed(tmp_path: Path) -> None:
    """The index depends on the VDS source files too: rewriting one (new data at other offsets)
    while the main file stays as it was must not serve the old offsets from either cache."""
    import h5py

    p = gen_hdf5_files.vds_file(tmp_path / "vds.h5")
    src = tmp_path / "vds_source.h5"
    folder = tmp_path / "cache"
    fsmod._MEMORY.clear()

    opts = {"index_cache": folder, "unsupported": "skip", "skip_instance_cache": True}

    def rows() -> np.ndarray:
        return open_root(HDF5FileSystem(str(p), **opts))["plain"][0:4]

    np.testing.assert_array_equal(rows(), np.arange(48).reshape(4, 12))
    new = (np.arange(48).reshape(4, 12) + 1000)[::-1].copy()
    with h5py.File(src, "w") as f:  # same layout as before, but every chunk moves
        f.create_dataset("pad", data=np.zeros(5000))
        f.create_dataset("d", data=new, chunks=(2, 4), compression="gzip")
    st = os.stat(src)
    os.utime(src, (st.st_atime, st.st_mtime + 5))  # coarse mtime clocks
    np.testing.assert_array_equal(rows(), new)  # the in-memory index was stale
    fsmod._MEMORY.clear()
    np.testing.assert_array_equal(rows(), new)  # so was the sidecar
    src.unlink()  # a source that disappears: the index is rebuilt and says so
    fs = HDF5FileSystem(str(p), **opts)
    assert "plain" not in fs.index.tables
    assert any("plain" in note for note in fs.notes)


def test_unwritable_sidecar_folder_is_not_retried(tmp_path: Path, monkeypatch) -> None:
    """Each open of a file already in memory serialised the whole index again for a folder it
    could not write (review, fifth session: 0.3 -> 12.5 ms per open with 1,000 datasets)."""
    p = gen_hdf5_files.filters_file(tmp_path / "f.h5")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    folder = blocker / "cache"
    fsmod._MEMORY.clear()
    import json
    import types

    serialised: list[int] = []

    def counting_dumps(*args, **kwargs):  # type: ignore[no-untyped-def]
        serialised.append(1)
        return json.dumps(*args, **kwargs)

    # only the cache module's own json: the sidecar header is the serialisation being counted
    stub = types.SimpleNamespace(dumps=counting_dumps, loads=json.loads)
    monkeypatch.setattr(cache, "json", stub)
    for _ in range(4):
        HDF5FileSystem(str(p), index_cache=str(folder), skip_instance_cache=True)
    assert folder in cache._UNWRITABLE
    assert len(serialised) == 1  # the first attempt only
