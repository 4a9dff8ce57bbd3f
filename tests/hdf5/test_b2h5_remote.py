"""b2h5 over HTTP: a real range-capable server on 127.0.0.1 serves the HDF5 file.

The standard library's ``http.server`` ignores ``Range`` headers, so the handler below answers
HEAD with the size and GET with ``206 Partial Content`` for one byte range, and counts GETs.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import fsspec
import h5py
import pytest
import xarray as xr
from h5view_helpers import assert_same, h5_values, open_root
from http_helpers import GETS, RangeHandler

pytest.importorskip("aiohttp")


@pytest.fixture(scope="module")
def server(files) -> Iterator[str]:
    folder = Path(files["filters.h5"]).parent

    def handler(*args, **kwargs):  # type: ignore[no-untyped-def]
        return RangeHandler(*args, directory=str(folder), **kwargs)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


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
