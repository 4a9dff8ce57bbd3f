"""b2h5 over HTTP: a real range-capable server on 127.0.0.1 serves the HDF5 file.

The standard library's ``http.server`` ignores ``Range`` headers, so the handler below answers
HEAD with the size and GET with ``206 Partial Content`` for one byte range, and counts GETs.
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import fsspec
import h5py
import pytest
import xarray as xr
from h5view_helpers import assert_same, h5_values, open_root

pytest.importorskip("aiohttp")

GETS: list[str] = []


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single-range GET support."""

    def log_message(self, *args: object) -> None:
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return None
        size = os.path.getsize(path)
        rng = self.headers.get("Range")
        fh = open(path, "rb")  # noqa: SIM115 - closed by the base class after copyfile
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng or "")
        if m is None:
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            start, length = 0, size
        else:
            start = int(m[1]) if m[1] else max(0, size - int(m[2]))
            end = min(int(m[2]), size - 1) if m[1] and m[2] else size - 1
            if start >= size:
                fh.close()
                self.send_error(416)
                return None
            length = end - start + 1
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Length", str(length))
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", self.date_time_string(int(os.path.getmtime(path))))
        self.end_headers()
        fh.seek(start)
        self._remaining = length
        return fh

    def copyfile(self, source, outputfile):  # type: ignore[no-untyped-def]
        outputfile.write(source.read(self._remaining))

    def do_GET(self) -> None:
        GETS.append(self.path)
        super().do_GET()


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
