"""Session-15 scale hunt: request counts that grew with the number of chunks or members read,
and a chunk cache that counted tiny entries by their bytes only.

* A zarr selection fetched chunks outside it: readahead took chunks asked for together (one
  event-loop iteration) as a sequential scan (a 2x2-chunk slice fetched 12 chunks, a 2-chunk
  wide column three times its chunks).
* A stale dataset description was re-checked once per read in flight (zarr's ten reads sent
  ten ``/api/info`` each ``version_check_interval``).
* ``find`` read each dataset's ``/api/info`` twice (the dataset, then the array of its group
  view).
* The cache bounded bytes only: 10^5 entries of 64 bytes counted 6.4 MB and took 400 MiB
  of disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import blosc2
import numpy as np
import zarr
from _c2server import public_folder
from fsspec.asyn import AsyncFileSystem, sync

from b2store.caterva2.cache import ChunkCache
from b2store.caterva2.filesystem import Caterva2FileSystem


def _sparse(folder: Path, name: str = "z.b2nd") -> np.ndarray:
    """A 200x200 float32 dataset of 10x10 chunks (400), zero but for a block of values."""
    a = np.zeros((200, 200), dtype="f4")
    a[100:120, 100:140] = np.arange(20 * 40, dtype="f4").reshape(20, 40)
    blosc2.asarray(a, chunks=(10, 10), blocks=(10, 10), urlpath=str(folder / name), mode="w")
    return a


def _chunk_numbers(requests: list[str]) -> list[int]:
    return [int(p.rsplit("nchunk=", 1)[1]) for p in requests if "/api/chunk/" in p]


def test_selections_fetch_only_their_chunks(fault_proxy: Any, so: dict[str, Any]) -> None:
    folder, url = public_folder(fault_proxy, "sel")
    a = _sparse(folder)
    opts = {**so, "cache_storage": None}
    for selection, nchunks, extra in [
        ((slice(100, 120), slice(100, 120)), 4, 0),  # 2x2 chunks: was 12 requests
        ((slice(None), slice(0, 20)), 40, 0),  # a column 2 chunks wide: was 120
        # 10x10 chunks: was 130; as zarr's last reads finish one by one, connections come
        # free and the last row may be read ahead past its end (readahead=4 at most)
        ((slice(50, 150), slice(60, 160)), 100, 4),
    ]:
        z = zarr.open_array(f"{url}/z.b2nd", mode="r", storage_options=opts)  # nothing loaded
        fault_proxy.requests.clear()
        np.testing.assert_array_equal(z[selection], a[selection])
        numbers = _chunk_numbers(fault_proxy.requests)
        assert len(numbers) == len(set(numbers)), selection
        assert nchunks <= len(numbers) <= nchunks + extra, (selection, len(numbers))


def test_chunk_by_chunk_reads_still_read_ahead(fault_proxy: Any, so: dict[str, Any]) -> None:
    """One chunk at a time, in order (a dask task per chunk): the next chunks are prefetched
    (requests overlap reads), and none is fetched twice."""
    folder, _url = public_folder(fault_proxy, "seq")
    a = _sparse(folder)
    fs = Caterva2FileSystem(host=fault_proxy.host, **{**so, "cache_storage": None})
    path = f"@public/{folder.name}/z.b2nd"
    fs.cat_file(f"{path}/.zarray")
    fault_proxy.requests.clear()
    for j in range(12):
        raw = fs.cat_file(f"{path}/10.{j}")
        got = np.frombuffer(blosc2.decompress2(raw), dtype="f4").reshape(10, 10)
        np.testing.assert_array_equal(got, a[100:110, 10 * j : 10 * j + 10])
    numbers = _chunk_numbers(fault_proxy.requests)
    assert len(numbers) == len(set(numbers))
    assert max(numbers) > 10 * 20 + 11  # prefetched beyond the last chunk read


def test_stale_description_is_rechecked_once(fault_proxy: Any, so: dict[str, Any]) -> None:
    folder, url = public_folder(fault_proxy, "recheck")
    a = _sparse(folder)
    z = zarr.open_array(f"{url}/z.b2nd", mode="r", storage_options={**so, "cache_storage": None})
    fs = z.store.fs
    for path in fs._checked:  # the version_check_interval has passed for every dataset
        fs._checked[path] -= 2 * fs.version_check_interval
    fault_proxy.requests.clear()
    np.testing.assert_array_equal(z[:100, :100], a[:100, :100])  # 100 chunks, 10 at a time
    infos = [p for p in fault_proxy.requests if "/api/info/" in p]
    assert len(infos) == 1, infos  # was one per read in flight


def test_find_reads_each_dataset_once(fault_proxy: Any, so: dict[str, Any]) -> None:
    folder, _url = public_folder(fault_proxy, "find")
    (folder / "sub").mkdir()
    names = ["a.b2nd", "b.b2nd", "sub/c.b2nd", "sub/d.b2nd"]
    for i, name in enumerate(names):
        blosc2.asarray(np.arange(10) + i, urlpath=str(folder / name), mode="w")
    rel = f"@public/{folder.name}"
    for dataset_as in ("auto", "group", "array"):
        fs = Caterva2FileSystem(host=fault_proxy.host, dataset_as=dataset_as, **so)
        fault_proxy.requests.clear()
        found = fs.find(rel, withdirs=True, detail=True)
        infos = [p for p in fault_proxy.requests if "/api/info/" in p]
        for name in names:  # was two: the dataset, then the array of its group view
            assert sum(p.endswith(f"{folder.name}/{name}") for p in infos) == 1, (name, infos)
        # the same as fsspec's own walk, which lists every node
        assert found == sync(fs.loop, AsyncFileSystem._find, fs, rel, withdirs=True, detail=True)
        assert fs.find(rel, maxdepth=3) == sync(fs.loop, AsyncFileSystem._find, fs, rel, maxdepth=3)


def test_du_reads_each_dataset_once(fault_proxy: Any, so: dict[str, Any]) -> None:
    """Each group's zarr.json (consolidated) described every dataset below it again: a
    dataset was read once per level above it, plus once by the walk."""
    folder, _url = public_folder(fault_proxy, "du")
    (folder / "sub" / "deeper").mkdir(parents=True)
    names = ["a.b2nd", "sub/b.b2nd", "sub/deeper/c.b2nd"]
    for i, name in enumerate(names):
        blosc2.asarray(np.arange(10 + i), urlpath=str(folder / name), mode="w")
    rel = f"@public/{folder.name}"
    fs = Caterva2FileSystem(host=fault_proxy.host, **so)
    fault_proxy.requests.clear()
    sizes = fs.du(rel, total=False)
    infos = [p for p in fault_proxy.requests if "/api/info/" in p]
    for name in names:  # was 2, 3 and 4
        assert sum(p.endswith(f"{folder.name}/{name}") for p in infos) == 1, (name, infos)
    assert sizes == {name: fs.info(name)["size"] for name in fs.find(rel)}
    assert fs.du(rel) == sum(sizes.values())


def test_cache_bounds_its_entries_by_the_limit(tmp_path: Path) -> None:
    """Tiny entries (all-zero chunks are 32 bytes) take a disk block each: the limit bounds
    their number to one per 4 KiB."""
    cache = ChunkCache(root=tmp_path, size_limit=64 * 1024)
    assert cache.max_entries == 16
    for i in range(200):
        cache.put("http://s", "@public/z.b2nd", "v", str(i), b"\0" * 32)
    files = [f for _d, _s, fs in os.walk(tmp_path) for f in fs if f.endswith(".c2c")]
    assert 1 <= len(files) <= 16  # was 200: 12.8 KB counted, 800 KiB on disk
    assert cache.get("http://s", "@public/z.b2nd", "v", "199") == b"\0" * 32
    assert cache._tally.entries == len(files)
    cache.set_version("http://s", "@public/z.b2nd", "w")  # another version drops them all
    assert cache._tally.entries == 0
    cache.put("http://s", "@public/z.b2nd", "w", "0", b"x")
    assert cache._tally.entries == 1
    assert ChunkCache(root=tmp_path / "one", size_limit=1000).max_entries == 1


def test_cache_of_a_sparse_read_stays_within_its_limit(
    fault_proxy: Any, so: dict[str, Any]
) -> None:
    folder, url = public_folder(fault_proxy, "sparse")
    a = _sparse(folder)
    opts = {**so, "cache_size_limit": 40 * 1024}  # ten entries
    z = zarr.open_array(f"{url}/z.b2nd", mode="r", storage_options=opts)
    np.testing.assert_array_equal(z[:], a)
    root = Path(so["cache_storage"])
    files = [f for _d, _s, fs in os.walk(root) for f in fs if f.endswith(".c2c")]
    assert len(files) <= 10  # was 400 entries (12.8 KB counted, 1.6 MiB on disk)
