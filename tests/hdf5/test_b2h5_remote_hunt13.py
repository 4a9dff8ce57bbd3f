"""b2h5 over HTTP, session-13 review: servers that give one file several ``ETag``s, tokens in
URLs, 410 Gone.

The twelfth hunt checks every ranged read against the ``ETag``/``Last-Modified`` the file had
when indexed. Servers behind a load balancer, each with its own copy, give the same bytes
different ``ETag``s: every read failed, with no way out. ``check_version=False`` identifies a
remote file by its size alone, and the error names it. Errors masked ``user:password@`` but
not a token given as the user name (``https://TOKEN@host/``) nor a password holding ``@``.
"""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import fsspec
import h5py
import numpy as np
import pytest
import xarray as xr
import zarr
from http_helpers import FaultyHandler, RangeHandler, clear_blocks, serve

pytest.importorskip("aiohttp")

_COUNTER = itertools.count()


class _Balanced(RangeHandler):
    """Every answer with another ``ETag`` and ``Last-Modified`` (as from several servers)."""

    def send_header(self, keyword: str, value: str) -> None:
        if keyword == "ETag":
            value = f'"node{next(_COUNTER)}"'
        elif keyword == "Last-Modified":
            value = self.date_time_string(1_600_000_000 + next(_COUNTER))
        super().send_header(keyword, value)


class _Gone(RangeHandler):
    """``410 Gone`` for every ranged GET (the file was withdrawn after it was indexed)."""

    gone = False

    def send_head(self):  # type: ignore[no-untyped-def]
        if type(self).gone and self.command == "GET":
            self.send_error(410)
            return None
        return super().send_head()


def _write(path: Path) -> dict[str, np.ndarray]:
    data = {"a": np.arange(40_000, dtype="i4"), "c": np.linspace(0, 1, 50_000)}
    with h5py.File(path, "w") as f:
        f.create_dataset("a", data=data["a"], chunks=(10_000,))
        f.create_dataset("c", data=data["c"])
    return data


def test_servers_giving_one_file_several_etags(tmp_path: Path) -> None:
    want = _write(tmp_path / "f.h5")
    handler = type("Balanced", (_Balanced,), {"etag": True})
    with serve(tmp_path, handler) as base:
        url = f"{base}/f.h5"
        clear_blocks()
        with pytest.raises(OSError, match=r"changed on the server.*check_version=False"):
            zarr.open_array(f"b2h5::{url}", path="a", mode="r")[...]
        opts = {"b2h5": {"check_version": False}}
        clear_blocks()
        arr = zarr.open_array(f"b2h5::{url}", path="a", mode="r", storage_options=opts)
        np.testing.assert_array_equal(arr[...], want["a"])
        ds = xr.open_zarr(f"b2h5::{url}", storage_options=opts, chunks={})
        np.testing.assert_array_equal(ds["c"].values, want["c"])
        fs = fsspec.filesystem("b2h5", fo=url, check_version=False)
        copy = pickle.loads(pickle.dumps(fs))  # a dask worker's copy: not "replaced"
        root = zarr.open_group(copy.get_mapper(), mode="r")
        np.testing.assert_array_equal(root["a"][...], want["a"])
        # sizes are still checked: a file cut short is noticed
        with open(tmp_path / "f.h5", "r+b") as fh:
            fh.truncate(100_000)
        clear_blocks()
        with pytest.raises(OSError, match=r"changed on the server"):
            root["c"][...]


def test_check_version_takes_a_bool(tmp_path: Path) -> None:
    _write(tmp_path / "f.h5")
    with pytest.raises(TypeError, match=r"Expected check_version True or False. Got 'no'"):
        fsspec.filesystem("b2h5", fo=str(tmp_path / "f.h5"), check_version="no")


def test_a_withdrawn_file_is_no_missing_chunk(tmp_path: Path) -> None:
    """A 410 at a chunk read is the file gone, not a missing chunk (read as fill values)."""
    _write(tmp_path / "f.h5")
    handler = type("Gone", (_Gone,), {})
    with serve(tmp_path, handler) as base:
        arr = zarr.open_array(f"b2h5::{base}/f.h5", path="a", mode="r")
        handler.gone = True
        clear_blocks()
        with pytest.raises(OSError, match=r"f\.h5") as info:
            arr[...]
        assert "cannot be read any more" in str(info.value), info.value


@pytest.mark.parametrize(
    ("userinfo", "secrets"),
    [("ghp_T0KEN@", ["ghp_T0KEN"]), ("user:p@ss:w0rd@", ["p@ss", "ss:w0rd", "w0rd"])],
)
def test_tokens_and_passwords_with_at_signs_are_masked(
    tmp_path: Path, userinfo: str, secrets: list[str]
) -> None:
    _write(tmp_path / "f.h5")
    handler = type("Faulty", (FaultyHandler,), {"fault": None})
    with serve(tmp_path, handler) as base:
        host = base.removeprefix("http://")
        for url in (f"http://{userinfo}{host}/missing.h5", f"http://{userinfo}{host}/f.h5"):
            handler.fault = "500" if url.endswith("f.h5") else None
            with pytest.raises(OSError) as info:
                fsspec.filesystem("b2h5", fo=url)
            text = str(info.value)
            assert "***@" in text and host in text, text
            for secret in secrets:
                assert secret not in text, text
