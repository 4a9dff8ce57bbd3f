"""b2h5 over HTTP: a real range-capable server on 127.0.0.1 serves the HDF5 file.

The standard library's ``http.server`` ignores ``Range`` headers, so the handler below answers
HEAD with the size and GET with ``206 Partial Content`` for one byte range, and counts GETs.
A server that does ignore ``Range`` (``python -m http.server``) is a clear OSError, at open and at
chunk reads, never wrong bytes; ``blockcache`` works over a host without directory pages.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import fsspec
import h5py
import numpy as np
import pytest
import xarray as xr
import zarr
from h5view_helpers import assert_same, h5_values, open_root
from http_helpers import GETS, FaultyHandler, RangeHandler, serve

pytest.importorskip("aiohttp")


class _QuietHandler(SimpleHTTPRequestHandler):
    """Python's static file server: ignores ``Range`` (answers 200 with the whole file)."""

    def log_message(self, *args: object) -> None:
        pass


def _serve(folder: Path, handler: type[SimpleHTTPRequestHandler]) -> Iterator[str]:
    """:func:`http_helpers.serve` as a generator (for fixtures and ``for base in ...``)."""
    with serve(folder, handler) as base:
        yield base


@pytest.fixture(scope="module")
def server(files) -> Iterator[str]:
    yield from _serve(Path(files["filters.h5"]).parent, RangeHandler)


@pytest.mark.parametrize("name", ["none", "gzip", "blosc2", "shuffle_blosc2", "lzf"])
def test_http_reads_like_local(server, files, name) -> None:
    url = f"b2h5::{server}/filters.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(url, group="f", chunks=None)
    with h5py.File(files["filters.h5"]) as f:
        assert_same(ds[name].values, h5_values(f[f"f/{name}"]), name)


def test_http_filesystem_with_target_options(server, files) -> None:
    fs = fsspec.filesystem(
        "b2h5",
        fo=f"{server}/layouts.h5",
        target_protocol="http",
        target_options={"block_size": 2**16},
        skip_instance_cache=True,
    )
    root = open_root(fs)
    with h5py.File(files["layouts.h5"]) as f:
        for name in ("contiguous", "compact", "vlen_str", "sparse_fill", "big_endian"):
            assert_same(root[name][...], h5_values(f[name]), name)


def test_cat_coalesces_neighbouring_chunks(server) -> None:
    fs = fsspec.filesystem("b2h5", fo=f"{server}/filters.h5", skip_instance_cache=True)
    table = fs.index.tables["f/none"]
    keys = [f"f/none/c/{i}/{j}/{k}" for i in range(3) for j in range(3) for k in range(3)]
    assert table.lin.size == len(keys)
    one_by_one = {k: fs.cat_file(k) for k in keys}
    GETS.clear()
    together = fs.cat(keys)
    assert together == one_by_one
    assert len(GETS) < len(keys) / 4, GETS  # contiguous chunks merged into few ranged GETs


def test_small_remote_chunks_are_read_ahead(server, files) -> None:
    fs = fsspec.filesystem("b2h5", fo=f"{server}/filters.h5", skip_instance_cache=True)
    root = open_root(fs)
    GETS.clear()
    with h5py.File(files["filters.h5"]) as f:
        for name in ("none", "gzip", "zstd", "lz4", "blosc2_1d"):
            assert_same(root[f"f/{name}"][...], h5_values(f[f"f/{name}"]), name)
    nchunks = sum(fs.index.tables[f"f/{n}"].lin.size for n in ("none", "gzip", "zstd", "lz4"))
    assert len(GETS) < nchunks / 10, (len(GETS), nchunks)


# -- servers that ignore Range, caching layers ---------------------------------------------------


@pytest.fixture(scope="module")
def http_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An HDF5 file whose chunk index lies in its first MiB and its chunks beyond 512 KiB."""
    folder = tmp_path_factory.mktemp("no-range-http")
    with h5py.File(folder / "mid.h5", "w") as f:
        f.create_dataset("pad", data=np.zeros(600_000 // 8))
        f.create_dataset("a", data=np.arange(40_000, dtype="i4"), chunks=(10_000,))
        f.create_dataset("c", data=np.arange(300_000, dtype="f8"))  # contiguous, 2.4 MB
    return folder


def test_server_ignoring_range_requests_raises(http_folder: Path) -> None:
    """``python -m http.server`` answers a ranged GET with the whole file: small chunks read
    through the read-ahead blocks came back as the file's first bytes (all zeros here, no
    error), and big ones as a misleading "chunk is truncated: read 3164144 of 2400000"."""
    for base in _serve(http_folder, _QuietHandler):
        fs = fsspec.filesystem("b2h5", fo=f"{base}/mid.h5", skip_instance_cache=True)
        root = zarr.open_group(fs.get_mapper(), mode="r")
        for name in ("a", "c"):
            with pytest.raises(OSError, match="ignores HTTP range requests"):
                root[name][...]
        with pytest.raises(OSError, match="ignores HTTP range requests"):
            fs.cat(["a/c/0", "a/c/1"])
        cached = zarr.open_group(
            f"b2h5::simplecache::{base}/mid.h5",
            mode="r",
            storage_options={"simplecache": {"cache_storage": str(http_folder / "cache")}},
        )
        np.testing.assert_array_equal(cached["a"][...], np.arange(40_000, dtype="i4"))


def test_server_ignoring_range_requests_at_open_raises(tmp_path: Path) -> None:
    """When h5py must read past the first MiB to index the file, fsspec's own ValueError ("The
    HTTP server doesn't appear to support range requests") reached the user without the file's
    name or the workaround; it is the documented OSError now."""
    with h5py.File(tmp_path / "deep.h5", "w") as f:
        f.create_dataset("pad", data=np.ones(2**21 // 8))  # 2 MiB before the chunk index
        f.create_dataset("a", data=np.arange(40_000, dtype="i4"), chunks=(1000,))
    for base in _serve(tmp_path, _QuietHandler):
        with pytest.raises(OSError, match=r"deep\.h5: the server ignores HTTP range requests"):
            fsspec.filesystem("b2h5", fo=f"{base}/deep.h5", skip_instance_cache=True)


def test_blockcache_over_http_without_directory_pages(http_folder: Path, tmp_path: Path) -> None:
    """``b2h5::blockcache::http://...`` raised "HDF5 file not found" (fsspec's caching layer
    answers info() by listing the parent folder), then a TypeError (it sets cache_type), then
    BlocksizeMismatchError (the file was first opened with another block size)."""
    for base in _serve(http_folder, RangeHandler):
        root = zarr.open_group(
            f"b2h5::blockcache::{base}/mid.h5",
            mode="r",
            storage_options={"blockcache": {"cache_storage": str(tmp_path / "blocks")}},
        )
        np.testing.assert_array_equal(root["a"][...], np.arange(40_000, dtype="i4"))
        np.testing.assert_array_equal(root["c"][...], np.arange(300_000, dtype="f8"))


def test_external_links_and_virtual_sources_over_http(tmp_path: Path) -> None:
    """Link targets and VDS sources resolve next to the linking file on the same server: the
    whole URL was normalised, ``http://host/sub/t.h5`` became ``http:/host/sub/t.h5`` (never
    found, so followed links and virtual datasets were missing over http)."""
    (tmp_path / "sub").mkdir()
    with h5py.File(tmp_path / "sub" / "target.h5", "w") as f:
        f["data"] = np.arange(6, dtype="i2")
        f.create_dataset("chunked", data=np.arange(20.0).reshape(4, 5), chunks=(2, 5))
    with h5py.File(tmp_path / "master.h5", "w") as f:
        f["ext"] = h5py.ExternalLink("sub/target.h5", "/data")
        layout = h5py.VirtualLayout(shape=(8, 5), dtype="f8")
        for i in range(2):
            layout[4 * i : 4 * i + 4] = h5py.VirtualSource("sub/target.h5", "chunked", (4, 5))
        f.create_virtual_dataset("vds", layout)
    with h5py.File(tmp_path / "master.h5") as f:
        expected = {name: f[name][()] for name in ("ext", "vds")}
    for base in _serve(tmp_path, RangeHandler):
        for zarr_format in (3, 2):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fs = fsspec.filesystem(
                    "b2h5",
                    fo=f"{base}/master.h5?token=abc",
                    zarr_format=zarr_format,
                    follow_external_links=True,
                    index_cache=str(tmp_path / "cache"),
                    skip_instance_cache=True,
                )
                root = open_root(fs)
                for name, want in expected.items():
                    assert_same(root[name][...], want, f"{name} v{zarr_format}")
            assert not fs.notes


def test_read_ahead_blocks_are_bounded_per_process(tmp_path: Path, monkeypatch) -> None:
    """Each filesystem kept its own 16 read-ahead blocks (8 MiB) for as long as it lived: an
    ``open_mfdataset`` of a thousand remote files with small chunks could hold 8 GiB. The
    blocks are one LRU for the process now; filesystems on the same file version share it."""
    import gc
    import tracemalloc

    from b2store.hdf5 import _io_pools, filesystem

    limit = 4
    monkeypatch.setattr(_io_pools, "READAHEAD_BLOCKS", limit)
    if hasattr(_io_pools, "_BLOCKS"):
        monkeypatch.setattr(_io_pools._BLOCKS, "maxsize", limit)
    want = []
    for i in range(6):
        with h5py.File(tmp_path / f"s{i}.h5", "w") as f:  # 1.6 MB: 4 blocks of 16 KB chunks
            want.append(np.random.default_rng(i).random((2000, 100)))
            f.create_dataset("x", data=want[-1], chunks=(20, 100))
    gen = _serve(tmp_path, RangeHandler)
    base = next(gen)
    try:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        systems = [
            fsspec.filesystem("b2h5", fo=f"{base}/s{i}.h5", skip_instance_cache=True)
            for i in range(6)
        ]
        for fs, w in zip(systems, want, strict=True):
            np.testing.assert_array_equal(open_root(fs)["x"][...], w)
        again = fsspec.filesystem("b2h5", fo=f"{base}/s5.h5", skip_instance_cache=True)
        np.testing.assert_array_equal(open_root(again)["x"][...], want[5])
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert held < (limit + 2) * filesystem.READAHEAD_BLOCK, held
    finally:
        gen.close()


def test_unpickled_copy_of_a_changed_remote_file_raises(tmp_path: Path) -> None:
    """A dask worker's copy of the filesystem indexed the remote file anew and read the new
    file's chunks for the zarr metadata of the old one (wrong values or a codec error)."""
    import os
    import pickle

    import dask.array as da

    def write(value: int, n: int, target: Path) -> None:
        with h5py.File(target, "w") as f:
            f.create_dataset("x", data=np.full((n, 8), value, dtype="i4"), chunks=(1, 8))

    write(1, 4, tmp_path / "r.h5")
    gen = _serve(tmp_path, RangeHandler)
    base = next(gen)
    try:
        arr = da.from_zarr(f"b2h5::{base}/r.h5", component="x")
        blob = pickle.dumps(arr)
        assert pickle.loads(blob).compute(scheduler="sync").tolist() == [[1] * 8] * 4
        write(2, 6, tmp_path / "new.h5")  # another size: the HTTP version changes
        os.replace(tmp_path / "new.h5", tmp_path / "r.h5")
        with pytest.raises(OSError, match="replaced"):
            pickle.loads(blob).compute(scheduler="sync")
        fresh = da.from_zarr(f"b2h5::{base}/r.h5", component="x")
        assert fresh.compute(scheduler="sync").tolist() == [[2] * 8] * 6
    finally:
        gen.close()


# -- misbehaving servers: every failure names the URL and says what to do ------------------------


def _faulty() -> type[FaultyHandler]:
    return type("Faulty", (FaultyHandler,), {"fault": None})


def test_http_error_statuses_and_dropped_connections_are_clear(http_folder: Path) -> None:
    """A 403 (an expired presigned URL), 401 or 500 at open said "HDF5 file not found" (fsspec
    turns every failed HEAD/GET into FileNotFoundError); at chunk reads it, and a connection
    cut mid-body, raised aiohttp's own exceptions (no builtin base, no file name for a dropped
    body). Now: PermissionError for 401/403, OSError naming the URL otherwise, FileNotFoundError
    only for a file that is not there."""
    from b2store.hdf5 import _io_pools

    handler = _faulty()
    for base in _serve(http_folder, handler):
        url = f"{base}/mid.h5?X-Sig=abc&Expires=1"
        fs = fsspec.filesystem("b2h5", fo=url, skip_instance_cache=True)
        root = zarr.open_group(fs.get_mapper(), mode="r")
        for fault, exc, match in [
            ("403", PermissionError, r"HTTP 403.*expired"),
            ("401", PermissionError, r"HTTP 401.*credentials"),
            ("500", OSError, r"HTTP 500"),
            ("drop", OSError, r"connection"),
        ]:
            handler.fault = fault
            _io_pools._BLOCKS._data.clear()
            for what in ("a", "c", "cat"):  # read-ahead blocks, a big ranged read, cat()
                with pytest.raises(exc, match=match) as info:
                    fs.cat(["a/c/0"]) if what == "cat" else root[what][...]
                assert "mid.h5" in str(info.value)
                assert not isinstance(info.value, FileNotFoundError)
            if fault != "drop":  # indexing reads the first MiB, which a drop cuts
                with pytest.raises(exc, match=match) as info:
                    fsspec.filesystem("b2h5", fo=url, skip_instance_cache=True)
                assert "mid.h5" in str(info.value)
                if fault == "403":  # the key fsspec routes: the URL's own scheme
                    assert "storage_options={'http': {'headers'" in str(info.value)
                assert not isinstance(info.value, FileNotFoundError)
        handler.fault = "drop"
        with pytest.raises(OSError, match=r"mid\.h5.*connection"):
            fsspec.filesystem("b2h5", fo=f"{base}/mid.h5", skip_instance_cache=True)
        handler.fault = None
        with pytest.raises(FileNotFoundError, match=r"HDF5 file not found: .*/nope\.h5"):
            fsspec.filesystem("b2h5", fo=f"{base}/nope.h5", skip_instance_cache=True)
        np.testing.assert_array_equal(root["a"][...], np.arange(40_000, dtype="i4"))


@pytest.mark.parametrize("fault", ["nolength", "noranges"])
def test_server_without_size_or_ranges_raises(http_folder: Path, fault: str) -> None:
    """A server that sends no Content-Length (chunked or close-delimited bodies) or says
    ``Accept-Ranges: none`` makes fsspec stream the file: indexing failed with a bare
    "ValueError: Cannot seek streaming HTTP file". It is an OSError naming the file and the
    workaround, which works."""
    handler = _faulty()
    handler.fault = fault
    for base in _serve(http_folder, handler):
        with pytest.raises(OSError, match=r"mid\.h5: .*simplecache") as info:
            fsspec.filesystem("b2h5", fo=f"{base}/mid.h5", skip_instance_cache=True)
        assert not isinstance(info.value, FileNotFoundError)
        cached = zarr.open_group(
            f"b2h5::simplecache::{base}/mid.h5",
            mode="r",
            storage_options={"simplecache": {"cache_storage": str(http_folder / f"c-{fault}")}},
        )
        np.testing.assert_array_equal(cached["a"][...], np.arange(40_000, dtype="i4"))


def test_redirects_query_strings_and_encoded_paths(tmp_path: Path) -> None:
    """Redirected URLs, presigned-style query strings and percent-encoded names read as h5py."""
    want = np.arange(3000, dtype="f4").reshape(30, 100)
    (tmp_path / "a dir").mkdir()
    for name in ("f.h5", "a dir/f é.h5"):
        with h5py.File(tmp_path / name, "w") as f:
            f.create_dataset("x", data=want, chunks=(10, 50), compression="gzip")
    handler = _faulty()
    for base in _serve(tmp_path, handler):
        urls = [
            f"{base}/f.h5?X-Amz-Signature=ab%2Fcd&X-Amz-Expires=60",
            f"{base}/a%20dir/f%20%C3%A9.h5",
            f"{base}/a dir/f é.h5",
        ]
        for url in urls:
            arr = zarr.open_array(f"b2h5::{url}", path="x", mode="r")
            np.testing.assert_array_equal(arr[...], want)
        for code in ("301", "302", "307", "308"):
            handler.fault = f"redirect-{code}"
            arr = zarr.open_array(f"b2h5::{base}/r/f.h5?sig=1", path="x", mode="r")
            np.testing.assert_array_equal(arr[...], want)


def test_bodies_cut_short_without_content_length_raise(tmp_path: Path) -> None:
    """A body cut short where the client cannot tell (no ``Content-Length``): at open, h5py
    zero-filled the missing bytes of values read while indexing (here a 12-bit integer
    dataset, inlined) and the store served zeros silently; at chunk reads the short
    read-ahead block stayed cached, so its chunks kept failing as "truncated (is the HDF5
    file complete?)" once the server was fine again."""
    with h5py.File(tmp_path / "p.h5", "w") as f:
        tid = h5py.h5t.STD_I16LE.copy()
        tid.set_precision(12)
        dsid = h5py.h5d.create(f.id, b"x", tid, h5py.h5s.create_simple((1_000_000,)))
        dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, (np.arange(1_000_000) % 2000).astype("i2"))
        f.create_dataset("y", data=np.arange(400_000, dtype="f4"), chunks=(1000,))
    with h5py.File(tmp_path / "p.h5") as f:
        want = {name: f[name][()] for name in ("x", "y")}
    handler = _faulty()
    for base in _serve(tmp_path, handler):
        handler.fault = "cut"
        with pytest.raises(OSError, match=r"p\.h5: .*connection was cut"):
            fsspec.filesystem("b2h5", fo=f"{base}/p.h5", skip_instance_cache=True)
        handler.fault = None
        fs = fsspec.filesystem("b2h5", fo=f"{base}/p.h5", skip_instance_cache=True)
        root = zarr.open_group(fs.get_mapper(), mode="r")
        handler.fault = "cut"
        with pytest.raises(OSError, match=r"p\.h5: .*connection was cut"):
            root["y"][...]
        with pytest.raises(OSError, match=r"p\.h5: .*connection was cut"):
            fs.cat([f"y/c/{i}" for i in range(0, 400, 7)])
        handler.fault = None
        for name, value in want.items():
            np.testing.assert_array_equal(root[name][...], value)


def test_refused_external_file_is_an_error_not_a_note(tmp_path: Path) -> None:
    """A followed external link whose file the server refuses (403) became a note "does not
    resolve" and the link was left out silently; a missing one (404) still is a note."""
    with h5py.File(tmp_path / "target.h5", "w") as f:
        f["data"] = np.arange(6, dtype="i2")
    with h5py.File(tmp_path / "master.h5", "w") as f:
        f["ext"] = h5py.ExternalLink("target.h5", "/data")
        f["gone"] = h5py.ExternalLink("missing.h5", "/data")

    class Refusing(RangeHandler):
        def send_head(self):  # type: ignore[no-untyped-def]
            if "target" in self.path:
                self.send_error(403)
                return None
            return super().send_head()

    for base in _serve(tmp_path, Refusing):
        with pytest.raises(PermissionError, match=r"target\.h5: .*HTTP 403"):
            fsspec.filesystem(
                "b2h5", fo=f"{base}/master.h5", follow_external_links=True, skip_instance_cache=True
            )
    for base in _serve(tmp_path, RangeHandler):
        fs = fsspec.filesystem(
            "b2h5", fo=f"{base}/master.h5", follow_external_links=True, skip_instance_cache=True
        )
        assert [n for n in fs.notes if "missing.h5" in n]
        np.testing.assert_array_equal(open_root(fs)["ext"][...], np.arange(6, dtype="i2"))


_GC_DEADLOCK = r"""
import functools, gc, sys, threading, time
from http.server import ThreadingHTTPServer
import fsspec, h5py
sys.path.insert(0, sys.argv[2])
from http_helpers import RangeHandler

folder = sys.argv[1]
httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=folder))
threading.Thread(target=httpd.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{httpd.server_address[1]}/f.h5"
local = h5py.File(f"{folder}/f.h5", "r")
pool = [local["d"] for _ in range(20000)]  # h5py objects made beforehand
stop = False

def churn():  # the application's other work: h5py objects dropped inside reference cycles
    while pool and not stop:
        junk = [pool.pop()]
        junk.append(junk)
        del junk
        time.sleep(0.0005)

threading.Thread(target=churn, daemon=True).start()
gc.set_threshold(50, 1, 1)
for _ in range(10):
    fs = fsspec.filesystem("b2h5", fo=url, skip_instance_cache=True)
    assert fs.ls("")
stop = True
assert gc.isenabled()
print("done")
"""


def test_index_build_of_a_remote_file_survives_garbage_collection_elsewhere(
    tmp_path: Path,
) -> None:
    """h5py holds its lock while it reads a remote file through fsspec, which waits for its
    event-loop thread; a garbage collection there freeing an h5py object in a reference cycle
    (any, the application's too) needed that lock: opening hung for ever (10 of 10 runs). The
    collector is paused while an index is built."""
    import subprocess
    import sys

    with h5py.File(tmp_path / "f.h5", "w") as f:
        for i in range(30):
            f.create_dataset(f"g{i}/d", data=np.arange(1000.0), chunks=(10,), compression="gzip")
        f["d"] = np.arange(3)
    res = subprocess.run(
        [sys.executable, "-c", _GC_DEADLOCK, str(tmp_path), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0 and "done" in res.stdout, res.stderr[-2000:]


# -- review of the target hunt (faeaa43) ---------------------------------------------------------


class _NoDirectoryPages(RangeHandler):
    """nginx without ``autoindex``, Apache with ``-Indexes``, S3 websites: 403 for folders."""

    def send_head(self):  # type: ignore[no-untyped-def]
        import os

        if os.path.isdir(self.translate_path(self.path)):
            self.send_error(403)
            return None
        return super().send_head()


@pytest.mark.parametrize("layer", ["blockcache", "filecache"])
def test_caching_layer_over_http_refusing_directory_pages(
    http_folder: Path, tmp_path: Path, layer: str
) -> None:
    """fsspec's blockcache::/filecache:: answer info() by listing the parent folder; a server
    that refuses folder listings with 403 (the usual answer of static hosts) made every file
    "the server refused access to the HDF5 file (HTTP 403)... credentials... expired", though
    the file itself reads fine. A missing file stays "HDF5 file not found"."""
    opts = {layer: {"cache_storage": str(tmp_path / "c")}}
    for base in _serve(http_folder, _NoDirectoryPages):
        root = zarr.open_group(f"b2h5::{layer}::{base}/mid.h5", mode="r", storage_options=opts)
        np.testing.assert_array_equal(root["a"][...], np.arange(40_000, dtype="i4"))
        with pytest.raises(FileNotFoundError, match=r"HDF5 file not found: .*/nope\.h5"):
            fsspec.url_to_fs(f"b2h5::{layer}::{base}/nope.h5", **opts)


def test_absolute_external_link_found_beside_its_master_over_http(tmp_path: Path) -> None:
    """An external link naming an absolute path (NeXus masters written with the beamline's
    paths) is looked for beside the master, as HDF5 does. Over HTTP the first candidate is that
    bare path, which aiohttp refuses as an invalid URL: the error was taken for a cut
    connection ("reading the HDF5 file failed: the connection failed or was cut
    (InvalidUrlClientError...)") and the master could not be opened at all."""
    (tmp_path / "sub").mkdir()
    with h5py.File(tmp_path / "sub" / "target.h5", "w") as f:
        f["data"] = np.arange(6, dtype="i2")
    with h5py.File(tmp_path / "sub" / "master.h5", "w") as f:
        f["abs"] = h5py.ExternalLink("/beamline/raw/run7/target.h5", "/data")
    for base in _serve(tmp_path, RangeHandler):
        fs = fsspec.filesystem(
            "b2h5", fo=f"{base}/sub/master.h5", follow_external_links=True, skip_instance_cache=True
        )
        np.testing.assert_array_equal(open_root(fs)["abs"][...], np.arange(6, dtype="i2"))


def test_missing_signed_url_is_not_called_a_pattern(http_folder: Path) -> None:
    """A missing file at a URL with a query string (an expired or mistyped signed URL) said
    "b2h5 ... does not expand patterns: list the files first": the query's "?" was taken for a
    glob character. A "*" in the URL's path still gets that hint."""
    for base in _serve(http_folder, _QuietHandler):
        with pytest.raises(FileNotFoundError) as info:
            fsspec.filesystem(
                "b2h5", fo=f"{base}/gone.h5?X-Amz-Signature=ab", skip_instance_cache=True
            )
        assert "gone.h5" in str(info.value) and "pattern" not in str(info.value)
        with pytest.raises(FileNotFoundError, match="does not expand patterns"):
            fsspec.filesystem("b2h5", fo=f"{base}/g*.h5", skip_instance_cache=True)


def test_options_under_another_name_of_the_target_protocol_are_refused(
    http_folder: Path,
) -> None:
    """fsspec gives the filesystem holding the file only the options under the URL's own
    scheme: ``{"https": {"headers": ...}}`` for ``b2h5::http://...`` (or ``"http"`` for https,
    ``"s3"`` for s3a://, ``"gcs"`` for gs://) went to b2h5, which let them through: no headers
    were sent, and no error. They are a TypeError naming the key to use; options under
    unrelated protocols (one storage_options for local and remote files) still pass."""
    seen: list[str | None] = []

    class Recording(RangeHandler):
        def send_head(self):  # type: ignore[no-untyped-def]
            seen.append(self.headers.get("X-Test"))
            return super().send_head()

    for base in _serve(http_folder, Recording):
        url = f"b2h5::{base}/mid.h5"
        headers = {"headers": {"X-Test": "yes"}}
        for chained in (url, f"b2h5::simplecache::{base}/mid.h5"):
            with pytest.raises(TypeError, match=r"under 'https'.*storage_options=\{'http'"):
                xr.open_zarr(chained, storage_options={"https": headers})
        with pytest.raises(TypeError, match=r"under 'http'.*target_options"):
            fsspec.filesystem("b2h5", fo=f"{base}/mid.h5", http=headers)  # no chain: no routing
        assert seen == []  # refused before any request
        opts = {"http": headers, "s3": {"anon": True}, "gcs": {}, "file": {}}
        ds = xr.open_zarr(url, storage_options=opts)
        assert ds["a"][:3].values.tolist() == [0, 1, 2]
        assert seen and set(seen) == {"yes"}, seen
    # the other spellings of one filesystem, for a local file and without s3fs/gcsfs imported
    from b2store.hdf5.filesystem import HDF5FileSystem

    for proto, key in (("s3a", "s3"), ("s3", "s3a"), ("gs", "gcs"), ("file", "local")):
        with pytest.raises(TypeError, match=rf"under '{key}'.*storage_options=\{{'{proto}'"):
            HDF5FileSystem("bucket/f.h5", target_protocol=proto, **{key: {"anon": True}})
