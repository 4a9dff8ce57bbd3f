"""The chunk index: compact tables, the in-memory cache and the sidecar cache files.

Cache keys: a file rewritten with the same size and its old mtime, replaced after open, served
without a version stamp, or a member of an archive is indexed again, never read with stale
chunk offsets; a damaged sidecar is rebuilt; a bad ``index_cache`` value is a clear error;
``~`` in ``index_cache`` or ``B2STORE_CACHE`` is the user's home folder.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import gen_hdf5_files
import h5py
import numpy as np
import pytest
import zarr
from h5view_helpers import open_root
from http_helpers import RangeHandler

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


def test_auto_cache_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("B2STORE_CACHE", str(tmp_path / "c"))
    p = gen_hdf5_files.filters_file(tmp_path / "f.h5")
    fsmod._MEMORY.clear()
    HDF5FileSystem(str(p), index_cache="auto", skip_instance_cache=True)
    assert list((tmp_path / "c" / "hdf5-index").glob("*.npz"))


def _home_and_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """``HOME`` set to ``tmp_path/home``, the working folder ``tmp_path/work``, and a file."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(10), chunks=(4,))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    return home, work, path


def test_index_cache_expands_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``index_cache="~/..."`` is a folder in the user's home, as paths in options usually are;
    it created a folder literally named ``~`` in the current working directory."""
    home, work, path = _home_and_work(tmp_path, monkeypatch)
    fs = HDF5FileSystem(str(path), index_cache="~/b2h5-index")
    assert fs.cat_file("x/zarr.json")
    assert list((home / "b2h5-index").glob("*.npz"))
    assert not (work / "~").exists()


def test_b2store_cache_expands_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``B2STORE_CACHE="~/..."`` (``index_cache="auto"``) is a folder in the user's home too."""
    home, work, path = _home_and_work(tmp_path, monkeypatch)
    monkeypatch.setenv("B2STORE_CACHE", "~/b2store-cache")
    fs = HDF5FileSystem(str(path), index_cache="auto", skip_instance_cache=True)
    assert fs.cat_file("x/zarr.json")
    assert list((home / "b2store-cache").rglob("*.npz"))
    assert not (work / "~").exists()


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
    could not write (0.3 -> 12.5 ms per open with 1,000 datasets)."""
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
    assert len(serialised) <= 1  # the first attempt at most


def _central_directory(data: bytes) -> int:
    """Offset of the first zip central-directory header in ``data``."""
    at = data.find(b"PK\x01\x02")
    assert at >= 0
    return at


@pytest.mark.parametrize(
    "damage", ["truncate", "flip", "empty", "garbage", "zip-version", "encrypted-flag"]
)
def test_damaged_sidecar_is_rebuilt(tmp_path: Path, damage: str) -> None:
    """A damaged sidecar is ignored (read as a miss): the file is indexed again, reads the
    right values, and the sidecar is written anew."""
    path = tmp_path / "f.h5"
    a = np.arange(7 * 9 * 11, dtype="i4").reshape(7, 9, 11)
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=a, chunks=(3, 4, 5), compression="gzip")
    folder = tmp_path / "cache"
    opts = {"index_cache": str(folder), "skip_instance_cache": True}
    fsmod._MEMORY.clear()
    z = zarr.open_array("b2h5::" + str(path), path="x", mode="r", storage_options=opts)
    np.testing.assert_array_equal(z[...], a)
    sidecars = [p for p in folder.rglob("*") if p.is_file()]
    assert sidecars
    for p in sidecars:
        data = p.read_bytes()
        if damage == "truncate":
            p.write_bytes(data[: len(data) // 2])
        elif damage == "flip":
            b = bytearray(data)
            b[len(b) // 2] ^= 0xFF
            p.write_bytes(bytes(b))
        elif damage == "garbage":
            p.write_bytes(b"garbage" * 10)
        elif damage == "zip-version":  # NotImplementedError("zip file version 10.9") escaped
            b = bytearray(data)
            b[_central_directory(data) + 6] = 109
            p.write_bytes(bytes(b))
        elif damage == "encrypted-flag":  # RuntimeError("... is encrypted") escaped
            b = bytearray(data)
            b[_central_directory(data) + 8] |= 1
            p.write_bytes(bytes(b))
        else:
            p.write_bytes(b"")
    fsmod._MEMORY.clear()
    z = zarr.open_array("b2h5::" + str(path), path="x", mode="r", storage_options=opts)
    assert z.shape == (7, 9, 11)
    np.testing.assert_array_equal(z[...], a)
    for p in sidecars:
        assert cache.load_sidecar(folder, p.name) is None  # another key
        with np.load(p, allow_pickle=False) as written:  # rewritten: a valid archive again
            assert "header.json" in written.files
    assert cache.load_sidecar(folder, "another key") is None


# -- cache keys: a file rewritten or replaced is indexed again -----------------------------------


def _write_layout(path: Path, chunks: tuple[int, ...], order: str) -> None:
    """Datasets ``a`` and ``b`` (known values) written in ``order`` with ``chunks``."""
    with h5py.File(path, "w") as f:
        for name in order:
            sign = 1 if name == "a" else -1
            f.create_dataset(name, data=np.arange(1000, dtype="i4") * sign, chunks=chunks)


def _pad_to(path: Path, size: int) -> None:
    """Grow ``path`` with zeros to ``size`` bytes (HDF5 ignores bytes past its end of file)."""
    with open(path, "r+b") as fh:
        fh.truncate(size)


def _read(path: Path, **opts: object) -> dict[str, np.ndarray]:
    """Both datasets through a fresh b2h5 filesystem instance."""
    import zarr

    fs = HDF5FileSystem(str(path), skip_instance_cache=True, **opts)
    root = zarr.open_group(fs.get_mapper(), mode="r")
    return {name: root[name][...] for name in ("a", "b")}


def _rewrite_keeping_stamps(path: Path, in_place: bool) -> None:
    """Rewrite ``path`` with another chunk layout, same size and the old atime/mtime restored.

    ``in_place`` rewrites the same inode (``cp -p`` onto an existing file); otherwise a new file
    is renamed over it (``rsync -t``).
    """
    before = os.stat(path)
    new = path.with_name(path.name + ".new")
    _write_layout(new, (50,), "ba")
    size = max(before.st_size, new.stat().st_size)
    _pad_to(new, size)
    if before.st_size < size:
        pytest.skip("the rewritten file came out larger than the original")
    if in_place:
        path.write_bytes(new.read_bytes())
        new.unlink()
    else:
        os.replace(new, path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    while in_place and os.stat(path).st_ctime_ns == before.st_ctime_ns:  # coarse ctime clocks
        time.sleep(0.01)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


@pytest.mark.parametrize("in_place", [True, False], ids=["same-inode", "renamed"])
@pytest.mark.parametrize("sidecar", [False, True], ids=["memory", "sidecar"])
def test_rewrite_with_restored_mtime_is_reindexed(
    tmp_path: Path, in_place: bool, sidecar: bool
) -> None:
    """A local file rewritten with another chunk layout, the same size and its old mtime
    restored (``cp -p``, ``rsync -t``, ``os.utime``) was served with the old chunk offsets from
    the memory cache and from the sidecar: wrong values, silently."""
    path = tmp_path / "f.h5"
    folder = tmp_path / "cache"
    opts = {"index_cache": folder} if sidecar else {}
    _write_layout(path, (100,), "ab")
    fsmod._MEMORY.clear()
    first = _read(path, **opts)
    np.testing.assert_array_equal(first["a"], np.arange(1000, dtype="i4"))
    _rewrite_keeping_stamps(path, in_place)
    if sidecar:
        fsmod._MEMORY.clear()  # a new process: only the sidecar remembers
    got = _read(path, **opts)
    with h5py.File(path, "r") as f:
        assert f["a"].chunks == (50,)
        for name in ("a", "b"):
            assert got[name].dtype == f[name].dtype and got[name].shape == f[name].shape
            np.testing.assert_array_equal(got[name], f[name][...])


def test_file_replaced_before_the_first_chunk_read_raises(tmp_path: Path) -> None:
    """Chunks are read through a descriptor opened at the first read: a file replaced by
    another one after open (written elsewhere, renamed over it) was read with the old index,
    giving another dataset's values silently. Now an OSError says to open it again."""
    import dask.array as da

    path = tmp_path / "f.h5"
    _write_layout(path, (100,), "ab")
    lazy = da.from_zarr(f"b2h5::{path}", component="a")
    _write_layout(tmp_path / "new.h5", (100,), "ba")  # "b" now lies where "a" was
    os.replace(tmp_path / "new.h5", path)
    with pytest.raises(OSError, match=r"f\.h5: the HDF5 file was replaced.*Open it again"):
        lazy.compute(scheduler="sync")
    fresh = da.from_zarr(f"b2h5::{path}", component="a").compute(scheduler="sync")
    np.testing.assert_array_equal(fresh, np.arange(1000, dtype="i4"))


def test_unchanged_local_file_still_hits_the_caches(tmp_path: Path) -> None:
    """The stricter key still finds the memory and sidecar entries of an unchanged file."""
    path = tmp_path / "f.h5"
    folder = tmp_path / "cache"
    _write_layout(path, (100,), "ab")
    fsmod._MEMORY.clear()
    a = HDF5FileSystem(str(path), index_cache=folder, skip_instance_cache=True)
    b = HDF5FileSystem(f"file://{path}", index_cache=folder, skip_instance_cache=True)
    assert a.index is b.index
    fsmod._MEMORY.clear()
    c = HDF5FileSystem(str(path), index_cache=folder, skip_instance_cache=True)
    assert c.index is not a.index and c.index.meta == a.index.meta
    assert len(list(folder.glob("*.npz"))) == 1


def _layout_bytes(chunks: tuple[int, ...], order: str, tmp_path: Path) -> bytes:
    """The bytes of a :func:`_write_layout` file."""
    path = tmp_path / f"layout-{order}.h5"
    _write_layout(path, chunks, order)
    return path.read_bytes()


def test_memory_target_rewritten_with_same_size_is_reindexed(tmp_path: Path) -> None:
    """fsspec's memory filesystem reports no mtime: its files were cached by size alone, so a
    file written again with the same size (another chunk layout) served the old offsets."""
    import fsspec
    import zarr

    old = _layout_bytes((100,), "ab", tmp_path)
    new = _layout_bytes((50,), "ba", tmp_path)
    new += bytes(max(len(old) - len(new), 0))
    old += bytes(max(len(new) - len(old), 0))
    mem = fsspec.filesystem("memory")
    try:
        for data in (old, new):
            mem.pipe("/b2h5-same-size/f.h5", data)
            root = zarr.open_group("b2h5::memory://b2h5-same-size/f.h5", mode="r")
            with h5py.File(mem.open("/b2h5-same-size/f.h5", "rb"), "r") as f:
                for name in ("a", "b"):
                    assert root[name].chunks == f[name].chunks
                    np.testing.assert_array_equal(root[name][...], f[name][...])
    finally:
        mem.rm("/b2h5-same-size", recursive=True)


class _NoStampHandler(RangeHandler):
    """A range-capable server that sends neither ETag nor Last-Modified."""

    def send_header(self, keyword: str, value: str) -> None:
        if keyword != "Last-Modified":
            super().send_header(keyword, value)


def test_target_without_version_stamp_is_not_cached(tmp_path: Path) -> None:
    """A file whose server reports no version (no ETag, no Last-Modified) was cached in memory
    by URL and size alone: rewritten with the same size, it was read with the old offsets."""
    import zarr

    httpd = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_NoStampHandler, directory=str(tmp_path))
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"b2h5::http://127.0.0.1:{httpd.server_address[1]}/f.h5"
    try:
        for chunks, order in (((100,), "ab"), ((50,), "ba")):
            _write_layout(tmp_path / "f.h5", chunks, order)
            root = zarr.open_group(url, mode="r")
            with h5py.File(tmp_path / "f.h5", "r") as f:
                for name in ("a", "b"):
                    assert root[name].chunks == f[name].chunks
                    np.testing.assert_array_equal(root[name][...], f[name][...])
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_same_member_of_two_archives_does_not_share_an_index(tmp_path: Path) -> None:
    """Members of two tar archives with the same name, size and mtime (reproducible archives
    set mtime 0) got the same cache key: the second archive was read with the first one's
    chunk offsets and chunk shape."""
    import io
    import tarfile

    import zarr

    fsmod._MEMORY.clear()
    members = [_layout_bytes((100,), "ab", tmp_path), _layout_bytes((50,), "ba", tmp_path)]
    size = max(len(m) for m in members)
    for i, data in enumerate(members):
        data += bytes(size - len(data))
        with tarfile.open(tmp_path / f"{i}.tar", "w") as tar:
            info = tarfile.TarInfo("scan.h5")
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
        root = zarr.open_group(f"b2h5::tar://scan.h5::file://{tmp_path}/{i}.tar", mode="r")
        with h5py.File(io.BytesIO(data), "r") as f:
            for name in ("a", "b"):
                assert root[name].chunks == f[name].chunks
                np.testing.assert_array_equal(root[name][...], f[name][...])


def test_member_of_an_archive_rewritten_in_memory_is_reindexed() -> None:
    """A tar member has mtime 0 in reproducible archives: a same-size member with its chunks
    in another order, in an archive rewritten in place, was read with the old offsets.
    mtime 0 is no version: such members are re-indexed by each instance."""
    import io
    import tarfile

    import fsspec
    import zarr

    def h5bytes(reverse: bool) -> bytes:
        buf = io.BytesIO()
        with h5py.File(buf, "w") as f:
            d = f.create_dataset("x", shape=(100,), dtype="i4", chunks=(10,))
            for i in range(9, -1, -1) if reverse else range(10):
                d[i * 10 : (i + 1) * 10] = np.arange(i * 10, (i + 1) * 10)
        return buf.getvalue()

    def tar_of(data: bytes) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            info = tarfile.TarInfo("f.h5")
            info.size, info.mtime = len(data), 0
            t.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    mem = fsspec.filesystem("memory")
    first, second = h5bytes(False), h5bytes(True)
    assert len(first) == len(second) and first != second
    try:
        for data in (first, second):
            mem.pipe("/b2h5-rewritten-archive.tar", tar_of(data))
            fs = fsspec.filesystem("b2h5", fo="tar://f.h5::memory://b2h5-rewritten-archive.tar")
            group = zarr.open_group(fs.get_mapper(""), mode="r")
            np.testing.assert_array_equal(group["x"][...], np.arange(100, dtype="i4"))
    finally:
        mem.rm("/b2h5-rewritten-archive.tar")


@pytest.mark.parametrize(
    ("value", "error"), [("", ValueError), ("  ", ValueError), (True, TypeError), (1, TypeError)]
)
def test_bad_index_cache_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: object, error: type[Exception]
) -> None:
    """``index_cache=""`` wrote sidecar files into the current folder; ``True`` failed with a
    bare "expected str, bytes or os.PathLike object" TypeError."""
    path = tmp_path / "f.h5"
    _write_layout(path, (100,), "ab")
    monkeypatch.chdir(tmp_path)
    fsmod._MEMORY.clear()
    with pytest.raises(error, match="index_cache"):
        HDF5FileSystem(str(path), index_cache=value, skip_instance_cache=True)  # type: ignore[arg-type]
    assert not list(tmp_path.glob("*.npz"))


def test_a_file_as_index_cache_is_a_clear_error(tmp_path: Path) -> None:
    """An existing file given as the cache folder cached nothing, silently; a folder still to
    be made is made (one that cannot be made is skipped: see the test above)."""
    path = tmp_path / "f.h5"
    _write_layout(path, (100,), "ab")
    (tmp_path / "afile").write_text("x")
    for value in (tmp_path / "afile", str(tmp_path / "afile")):
        fsmod._MEMORY.clear()
        with pytest.raises(NotADirectoryError, match=r"index_cache.*afile', which is a file"):
            HDF5FileSystem(str(path), index_cache=value, skip_instance_cache=True)
    fsmod._MEMORY.clear()
    HDF5FileSystem(str(path), index_cache=tmp_path / "new" / "cache", skip_instance_cache=True)
    assert list((tmp_path / "new" / "cache").glob("*.npz"))


# -- the sidecar format: binary inlined chunks, integrity, concurrency ------------------------


def _same_index(a: object, b: object) -> bool:
    """Whether two FileIndex objects hold the same view (arrays compared by value)."""
    assert isinstance(a, cache.FileIndex) and isinstance(b, cache.FileIndex)
    if (a.zarr_format, a.meta, a.notes, a.sources) != (b.zarr_format, b.meta, b.notes, b.sources):
        return False
    if a.tables.keys() != b.tables.keys():
        return False
    for path, t in a.tables.items():
        u = b.tables[path]
        fields = ("path", "url", "shape", "chunks", "grid", "inline", "fill_chunk", "urls")
        fields += ("pad_to", "masked", "zero_skip")
        if any(getattr(t, f) != getattr(u, f) for f in fields):
            return False
        for f in ("lin", "offsets", "sizes", "masks", "url_index"):
            x, y = getattr(t, f), getattr(u, f)
            if (x is None) != (y is None):
                return False
            if x is not None and (x.dtype != y.dtype or not np.array_equal(x, y)):
                return False
    return True


def _strings_file(path: Path, n: int) -> Path:
    """A chunked vlen-string dataset (decoded at open: one inlined chunk of ~100 bytes a row),
    a compact dataset and a chunked dataset with an unallocated chunk and a fill value."""
    with h5py.File(path, "w") as f:
        rows = np.array([f"row {i:07d} " + "x" * 88 for i in range(n)], dtype=object)
        f.create_dataset("s", data=rows, dtype=h5py.string_dtype(), chunks=(n // 4,))
        space = h5py.h5s.create_simple((6,))
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_layout(h5py.h5d.COMPACT)
        h5py.h5d.create(f.id, b"compact", h5py.h5t.NATIVE_INT32, space, plist).write(
            h5py.h5s.ALL, h5py.h5s.ALL, np.arange(6, dtype="i4") * 7
        )
        d = f.create_dataset("sparse", shape=(40,), dtype="f8", chunks=(10,), fillvalue=-1.5)
        d[:10] = np.arange(10)
    return path


def test_sidecar_keeps_inlined_chunks_as_binary(tmp_path: Path) -> None:
    """Inlined chunks were base64 text inside the JSON header: saving and loading peaked at
    4-5x their size (60 MB of vlen strings: 238 MiB to save, 218 MiB to load)."""
    import tracemalloc

    p = _strings_file(tmp_path / "s.h5", 80_000)
    folder = tmp_path / "cache"
    fsmod._MEMORY.clear()
    built = HDF5FileSystem(str(p), skip_instance_cache=True).index
    nbytes = sum(len(v) for t in built.tables.values() for v in t.inline.values())
    assert nbytes > 7_000_000
    tracemalloc.start()
    try:
        cache.save_sidecar(folder, "k", built)
        saved = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        loaded = cache.load_sidecar(folder, "k")
        read = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert loaded is not None and _same_index(built, loaded)
    assert saved < 0.25 * nbytes  # nothing but the header and the tables' arrays
    assert read < 1.25 * nbytes  # the inlined chunks themselves, read once
    (sidecar,) = folder.glob("*.npz")
    assert sidecar.stat().st_size < 1.1 * nbytes
    # and through the filesystem: every dataset reads its values from the sidecar's index
    opts = {"index_cache": str(folder), "skip_instance_cache": True}
    HDF5FileSystem(str(p), **opts)
    fsmod._MEMORY.clear()
    fs = HDF5FileSystem(str(p), **opts)
    assert fs.index is not built and _same_index(built, fs.index)
    root = open_root(fs)
    assert root["s"][79_999] == "row 0079999 " + "x" * 88
    np.testing.assert_array_equal(root["compact"][...], np.arange(6) * 7)
    np.testing.assert_array_equal(root["sparse"][8:12], [8, 9, -1.5, -1.5])


def test_every_bit_flip_is_a_miss_or_the_same_index(tmp_path: Path) -> None:
    """Any single flipped bit of a sidecar reads as a miss (or changes nothing that matters):
    never an exception escaping the open, never another index."""
    p = _strings_file(tmp_path / "s.h5", 40)
    idx = HDF5FileSystem(str(p), skip_instance_cache=True, unsupported="skip").index
    folder = tmp_path / "cache"
    cache.save_sidecar(folder, "k", idx)
    (sidecar,) = folder.glob("*.npz")
    data = sidecar.read_bytes()
    for pos in range(len(data)):
        damaged = bytearray(data)
        damaged[pos] ^= 1 << (pos % 8)
        sidecar.write_bytes(bytes(damaged))
        got = cache.load_sidecar(folder, "k")
        assert got is None or _same_index(idx, got), f"byte {pos}"


def test_short_array_in_a_sidecar_is_a_miss(tmp_path: Path) -> None:
    """A ``.npy`` member whose header says fewer rows than the table has (a flipped digit)
    is not read as a shorter table (its chunks would read as fill values)."""
    import re

    p = gen_hdf5_files.many_chunks_file(tmp_path / "many.h5", 27)
    idx = HDF5FileSystem(str(p), skip_instance_cache=True).index
    folder = tmp_path / "cache"
    cache.save_sidecar(folder, "k", idx)
    (sidecar,) = folder.glob("*.npz")
    data = bytearray(sidecar.read_bytes())
    hits = [m.start(1) for m in re.finditer(rb"'shape': \(2(7),\)", data)]
    assert hits
    for at in hits:
        damaged = bytearray(data)
        damaged[at] ^= 1  # 27 rows -> 26
        sidecar.write_bytes(bytes(damaged))
        assert cache.load_sidecar(folder, "k") is None


@pytest.mark.parametrize("other", ["older-format", "older-layout", "newer-format", "other-key"])
def test_sidecar_of_another_version_is_rebuilt(tmp_path: Path, other: str) -> None:
    """A sidecar written by another b2store version (the same file name: the key hash does not
    depend on the version) is ignored, rebuilt and replaced by one this version reads."""
    import json
    import zipfile

    p = _strings_file(tmp_path / "s.h5", 400)
    folder = tmp_path / "cache"
    opts = {"index_cache": str(folder), "skip_instance_cache": True}
    fsmod._MEMORY.clear()
    built = HDF5FileSystem(str(p), **opts).index
    (sidecar,) = folder.glob("*.npz")
    with zipfile.ZipFile(sidecar) as zf:
        header = json.loads(zf.read("header.json"))
    key = header["key"]
    if other == "older-layout":  # format 13: a JSON "header" array with base64 inline chunks
        old = {**header, "format": "b2store-hdf5-index-13"}
        np.savez(sidecar, header=np.frombuffer(json.dumps(old).encode(), dtype=np.uint8))
    else:
        header["format"] = {"older-format": "b2store-hdf5-index-13"}.get(
            other, "b2store-hdf5-index-99"
        )
        if other == "other-key":
            header["format"], header["key"] = cache.FORMAT, key + "x"
        # a second header.json: the last one wins
        with zipfile.ZipFile(sidecar, "a") as zf, pytest.warns(UserWarning, match="Duplicate"):
            zf.writestr("header.json", json.dumps(header))
    assert cache.load_sidecar(folder, key) is None
    fsmod._MEMORY.clear()
    fs = HDF5FileSystem(str(p), **opts)
    assert _same_index(built, fs.index)
    assert open_root(fs)["s"][399] == "row 0000399 " + "x" * 88
    again = cache.load_sidecar(folder, key)  # rewritten in this version's format
    assert again is not None and _same_index(built, again)


_WRITER = """
import pickle, sys
from pathlib import Path
from b2store.hdf5 import cache
idx = pickle.loads(Path(sys.argv[1]).read_bytes())
for _ in range(int(sys.argv[3])):
    cache.save_sidecar(Path(sys.argv[2]), "k", idx)
"""


def test_processes_writing_the_same_sidecar_at_once(tmp_path: Path) -> None:
    """Two processes writing the sidecar of one file while a third reads it: every read is a
    miss or the whole index (a temporary file renamed over it), and no temporary file stays."""
    import pickle
    import subprocess

    p = _strings_file(tmp_path / "s.h5", 20_000)
    idx = HDF5FileSystem(str(p), skip_instance_cache=True).index
    pickled = tmp_path / "idx.pickle"
    pickled.write_bytes(pickle.dumps(idx))
    folder = tmp_path / "cache"
    cmd = [sys.executable, "-c", _WRITER, str(pickled), str(folder), "40"]
    writers = [subprocess.Popen(cmd) for _ in range(2)]
    loaded = 0
    try:
        while any(w.poll() is None for w in writers):
            got = cache.load_sidecar(folder, "k")
            if got is not None:
                assert _same_index(idx, got)
                loaded += 1
    finally:
        codes = [w.wait(timeout=120) for w in writers]
    assert codes == [0, 0]
    assert [f.name for f in folder.iterdir() if f.suffix != ".npz"] == []
    got = cache.load_sidecar(folder, "k")
    assert got is not None and _same_index(idx, got)
    assert pickle.loads(pickle.dumps(got)).tables.keys() == idx.tables.keys()


_FULL_DISK = """
import resource, signal, sys
from pathlib import Path
import numpy as np
from b2store.hdf5 import cache
from b2store.hdf5 import filesystem as fsmod

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
fs = fsmod.HDF5FileSystem(sys.argv[1], index_cache=sys.argv[2], skip_instance_cache=True)
assert Path(sys.argv[2]) in cache._UNWRITABLE
import zarr
z = zarr.open_group(fs.get_mapper(), mode="r")
assert z["s"][4999] == "row 0004999 " + "x" * 88
print("ok")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file size limits")
def test_full_sidecar_folder_leaves_no_partial_file(tmp_path: Path) -> None:
    """A folder that fills up while the sidecar is written (EFBIG here, ENOSPC on a full
    disk): the open still works, and neither a partial sidecar nor a temporary file stays."""
    import subprocess

    p = _strings_file(tmp_path / "s.h5", 5000)  # ~500 kB inlined: past the 200 kB limit
    folder = tmp_path / "cache"
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(p), str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert list(folder.iterdir()) == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_sidecar_is_readable_by_those_who_may_read_the_file(tmp_path: Path) -> None:
    """Sidecars kept the 0600 mode of their temporary file: in a cache folder shared by several
    users (or dask workers running as another user) the others could not read them and
    re-indexed the file at every open. A sidecar holds the file's metadata and inlined data, so
    it is readable by others only when the file is."""
    folder = tmp_path / "cache"
    old = os.umask(0o022)
    try:
        for mode, want in ((0o644, 0o644), (0o640, 0o600), (0o600, 0o600)):
            p = gen_hdf5_files.filters_file(tmp_path / f"f{mode:o}.h5")
            os.chmod(p, mode)
            fsmod._MEMORY.clear()
            HDF5FileSystem(str(p), index_cache=str(folder), skip_instance_cache=True)
            made = {s.stat().st_mode & 0o777 for s in folder.glob("*.npz")}
            assert want in made, (oct(mode), [oct(m) for m in made])
            for s in folder.glob("*.npz"):
                s.unlink()
    finally:
        os.umask(old)


def test_temporary_files_of_killed_writers_are_removed(tmp_path: Path) -> None:
    """A writer killed before its rename (a dask worker killed for memory) left its temporary
    file, as large as the sidecar, in the cache folder forever: the next write removes the
    old ones (not those of writers at work now)."""
    p = gen_hdf5_files.filters_file(tmp_path / "f.h5")
    folder = tmp_path / "cache"
    folder.mkdir()
    old = folder / "b2store-sidecar-0123456789abcdef.tmp"
    fresh = folder / "b2store-sidecar-fedcba9876543210.tmp"
    foreign = folder / "0123456789abcdef.tmp"  # another program's, in a folder the user named
    long_ago = time.time() - 2 * 86400
    for f in (old, fresh, foreign):
        f.write_bytes(b"PK" * 1000)
        if f is not fresh:
            os.utime(f, (long_ago, long_ago))
    fsmod._MEMORY.clear()
    HDF5FileSystem(str(p), index_cache=str(folder), skip_instance_cache=True)
    assert not old.exists() and fresh.exists() and foreign.exists()
    assert len(list(folder.glob("*.npz"))) == 1
