"""b2h5 over misbehaving HTTP servers (twelfth hunt): answers that are not the bytes asked for.

fsspec's HTTP filesystem returns whatever body a ranged GET brings back. A file rewritten on
the server after b2h5 indexed it (the same size and layout, datasets swapped) read as the
other dataset's values, silently; a ``206`` for another range than asked (a misbehaving proxy
or cache) read as shifted values, silently. Each answer's ``Content-Range``, ``ETag`` and
``Last-Modified`` are checked now: an ``OSError`` naming the file. Errors never show the
credentials of a URL (``user:password@``, signature query parameters).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import dask.array as da
import fsspec
import h5py
import numpy as np
import pytest
import xarray as xr
import zarr
from http_helpers import FaultyHandler, RangeHandler, clear_blocks, serve

pytest.importorskip("aiohttp")


def _write(path: Path, order: tuple[str, ...]) -> None:
    """Datasets ``a`` (0, 1, ...) and ``b`` (0, -1, ...) plus a contiguous ``c``, written in
    ``order``: swapping the order keeps the file's size and layout, not its contents."""
    data = {
        "a": np.arange(40_000, dtype="i4"),
        "b": -np.arange(40_000, dtype="i4"),
        "c": np.arange(300_000, dtype="f8"),
    }
    with h5py.File(path, "w") as f:
        f.create_dataset("pad", data=np.zeros(600_000 // 8))
        for name in order:
            if name == "c":
                f.create_dataset(name, data=data[name] * (1 if order[0] == "a" else -1))
            else:
                f.create_dataset(name, data=data[name], chunks=(10_000,))


def test_file_changed_on_the_server_after_open_raises(tmp_path: Path) -> None:
    """The process that opened a remote file read the chunks of the file that replaced it on
    the server with the old index: ``a`` came back as ``b``'s values, no error."""
    _write(tmp_path / "f.h5", ("a", "b", "c"))
    with h5py.File(tmp_path / "f.h5") as f:
        want = {k: f[k][()] for k in ("a", "b", "c")}
    handler = type("ETags", (RangeHandler,), {"etag": True})
    with serve(tmp_path, handler) as base:
        url = f"b2h5::{base}/f.h5"
        arr = zarr.open_array(url, path="a", mode="r")
        ds = xr.open_zarr(url, chunks=None)
        lazy = da.from_zarr(url, component="c")
        fs = fsspec.filesystem("b2h5", fo=f"{base}/f.h5")
        np.testing.assert_array_equal(arr[:10], want["a"][:10])
        size = (tmp_path / "f.h5").stat().st_size
        _write(tmp_path / "new.h5", ("b", "a", "c"))  # same size, datasets swapped
        os.replace(tmp_path / "new.h5", tmp_path / "f.h5")
        assert (tmp_path / "f.h5").stat().st_size == size
        clear_blocks()
        for read in (
            lambda: arr[...],
            lambda: ds["b"].values,
            lambda: lazy.compute(scheduler="threads"),
            lambda: fs.cat(["a/c/0", "a/c/1"]),
        ):
            with pytest.raises(OSError, match=r"f\.h5: .*changed on the server.*ETag") as info:
                read()
            assert not isinstance(info.value, FileNotFoundError)
        # opened again: the new file's values (at the new file's offsets)
        np.testing.assert_array_equal(zarr.open_array(url, path="a", mode="r")[...], want["a"])
        # a file cut short on the server (HTTP 416 past its new end; no ETag needed)
        handler.etag = False
        c = zarr.open_array(f"b2h5::{base}/f.h5", path="c", mode="r")
        with open(tmp_path / "f.h5", "r+b") as fh:
            fh.truncate(700_000)
        clear_blocks()
        with pytest.raises(OSError, match=r"f\.h5: .*changed on the server.*HTTP 416"):
            c[...]


class _Shifted(RangeHandler):
    """Answers ``206`` for the range 8 bytes before the one asked (beyond the first MiB)."""

    def send_head(self):  # type: ignore[no-untyped-def]
        m = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range") or "")
        if m and int(m[1]) >= 2**20 // 2:
            self.headers.replace_header("Range", f"bytes={int(m[1]) - 8}-{int(m[2]) - 8}")
        return super().send_head()


def test_partial_content_for_another_range_raises(tmp_path: Path) -> None:
    """A 206 answer whose ``Content-Range`` is not the range asked read as shifted values."""
    _write(tmp_path / "f.h5", ("a", "b", "c"))
    with serve(tmp_path, _Shifted) as base:
        fs = fsspec.filesystem("b2h5", fo=f"{base}/f.h5")
        root = zarr.open_group(fs.get_mapper(), mode="r")
        for read in (lambda: root["a"][...], lambda: root["c"][...], lambda: fs.cat(["a/c/1"])):
            with pytest.raises(OSError, match=r"f\.h5: asked for bytes .* does not serve") as info:
                read()
            assert not isinstance(info.value, FileNotFoundError)


def _messages(exc: BaseException) -> str:
    """An error's message and those a traceback prints with it (raised from or while
    handling)."""
    out, seen = [], set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        out.append(f"{type(cur).__name__}: {cur}")
        suppressed = cur.__suppress_context__  # as tracebacks print them
        cur = cur.__cause__ or (None if suppressed else cur.__context__)
    return "\n".join(out)


def test_errors_never_show_credentials(tmp_path: Path) -> None:
    """``http://user:password@host/...`` and presigned URLs are credentials: an HTTP 401 or
    500, a missing file or a dropped connection printed them in the error message."""
    _write(tmp_path / "f.h5", ("a", "b", "c"))
    handler = type("Faulty", (FaultyHandler,), {"fault": None})
    with serve(tmp_path, handler) as base:
        host = base.removeprefix("http://")
        url = (
            f"http://user:s3cr3t@{host}/f.h5?X-Amz-Credential=AKIDSECRET&X-Amz-Signature=SIGSECRET"
        )
        fs = fsspec.filesystem("b2h5", fo=url)
        root = zarr.open_group(fs.get_mapper(), mode="r")
        np.testing.assert_array_equal(root["a"][:3], [0, 1, 2])
        errors = []
        for fault in ("401", "500", "drop"):
            handler.fault = fault
            clear_blocks()
            for read in (lambda: root["a"][...], lambda: root["c"][...]):
                with pytest.raises(OSError) as info:
                    read()
                errors.append(info.value)
            with pytest.raises(OSError) as info:
                fsspec.filesystem("b2h5", fo=url.replace("f.h5", "g.h5"))
            errors.append(info.value)
        for exc in errors:
            text = str(exc)
            chain = _messages(exc)
            assert "f.h5" in text or "g.h5" in text, text
            assert "user:***@" in text and "X-Amz-Signature=***" in text, text
            for secret in ("s3cr3t", "AKIDSECRET", "SIGSECRET"):
                assert secret not in chain, chain


def test_notes_and_warnings_never_show_credentials(tmp_path: Path) -> None:
    """The index's notes (``fs.notes``, the warnings of ``unsupported="warn"``) named each
    node with the file's URL, password and signature included; ``info`` still tells links
    from datasets by them."""
    import warnings

    from b2store.inspect import inspect_path

    with h5py.File(tmp_path / "n.h5", "w") as f:
        f.create_dataset("ok", data=np.arange(4))
        f.create_dataset("so", data=np.arange(100), chunks=(10,), scaleoffset=0)
        f["gone"] = h5py.SoftLink("/nowhere")
    handler = type("Faulty", (FaultyHandler,), {"fault": None})
    with serve(tmp_path, handler) as base:
        host = base.removeprefix("http://")
        url = f"http://user:s3cr3t@{host}/n.h5?X-Amz-Signature=SIGSECRET"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fs = fsspec.filesystem("b2h5", fo=url, unsupported="warn", skip_instance_cache=True)
        texts = [*fs.notes, *(str(w.message) for w in caught)]
        assert any("/so: " in t for t in texts) and any("/gone: " in t for t in texts), texts
        for text in texts:
            assert "s3cr3t" not in text and "SIGSECRET" not in text, text
        nodes = {n.path: n for n in inspect_path(f"b2h5::{url}")}
        assert nodes["/gone"].kind == "link" and nodes["/so"].kind == "dataset"
        assert not nodes["/so"].direct
