"""The Caterva2 filesystem through fsspec's own API: every write refused, ``exists`` and ``ls``
answered from the chunk grid without fetching chunks, URLs that ``unstrip_protocol`` builds open
the same dataset again, IPv6 hosts."""

from __future__ import annotations

import time
from typing import Any

import blosc2
import fsspec
import numpy as np
import pytest
import zarr
from _c2server import public_folder


def test_writes_are_refused_everywhere(cat2_server: Any, so: dict[str, Any]) -> None:
    """Every fsspec write raises PermissionError (was: open(..., 'wb') and touch dropped the
    bytes silently, mkdir/makedirs/rmdir did nothing, cp/put raised a bare NotImplementedError)."""
    folder, base = public_folder(cat2_server, "ro")
    blosc2.asarray(np.arange(3.0), urlpath=str(folder / "a.b2nd"), mode="w")
    fs, path = fsspec.url_to_fs(base, **so)
    attempts = {
        "open wb": lambda: fs.open(f"{path}/x", "wb"),
        "open ab": lambda: fs.open(f"{path}/x", "ab"),
        "touch": lambda: fs.touch(f"{path}/x"),
        "mkdir": lambda: fs.mkdir(f"{path}/d"),
        "makedirs": lambda: fs.makedirs(f"{path}/d/e"),
        "rmdir": lambda: fs.rmdir(path),
        "cp": lambda: fs.cp(f"{path}/a.b2nd/.zarray", f"{path}/b.zarray"),
        "put": lambda: fs.put(__file__, f"{path}/t.py"),
        "mv": lambda: fs.mv(f"{path}/a.b2nd", f"{path}/b.b2nd"),
        "pipe": lambda: fs.pipe(f"{path}/x", b"1"),
        "rm": lambda: fs.rm(f"{path}/a.b2nd"),
    }
    for what, attempt in attempts.items():
        with pytest.raises(PermissionError, match="read-only"):
            attempt()
            pytest.fail(f"{what} did not raise")
    assert fs.open(f"{path}/a.b2nd/.zarray").read().startswith(b"{")


def test_exists_on_chunk_keys_fetches_no_chunk(cat2_server: Any, so: dict[str, Any]) -> None:
    """``fs.exists(<chunk key>)`` answers from the chunk grid (was: it downloaded the chunk)."""
    folder, _url = public_folder(cat2_server, "exists")
    rel = folder.name
    blosc2.asarray(np.arange(100.0).reshape(10, 10), chunks=(5, 5),
                   urlpath=str(folder / "a.b2nd"), mode="w")  # fmt: skip
    fs = fsspec.filesystem("caterva2", host=cat2_server.host, **so)
    base = f"@public/{rel}/a.b2nd"
    requests: list[str] = []
    real_get = fs.client.get

    async def counting_get(url: str, params: Any = None, **kwargs: Any) -> Any:
        requests.append(url)
        return await real_get(url, params, **kwargs)

    fs.client.get = counting_get  # type: ignore[method-assign]
    for key in ("0.0", "1.1", "c/1/0", "a.b2nd/1.1", "a.b2nd/c/0/1"):
        assert fs.exists(f"{base}/{key}"), key
    for key in ("2.0", "0.0.0", "0", "c/0/2", "c/0"):
        assert not fs.exists(f"{base}/{key}"), key
    assert not fs.exists(f"@public/{rel}/nope.b2nd/0.0")
    assert not [u for u in requests if "/api/chunk/" in u or "/api/fetch/" in u]
    assert fs.exists(f"{base}/.zarray") and fs.exists(base)


def test_listing_names_no_chunk_directory(cat2_server: Any, so: dict[str, Any]) -> None:
    """``ls`` of a v3 dataset lists its ``zarr.json`` only (was: also a directory ``c`` that
    ``isdir`` denied and ``ls`` could not open)."""
    folder, _url = public_folder(cat2_server, "lsc")
    rel = folder.name
    blosc2.asarray(np.arange(10.0), urlpath=str(folder / "a.b2nd"), mode="w")
    fs = fsspec.filesystem("caterva2", host=cat2_server.host, dataset_as="array", **so)
    listed = fs.ls(f"@public/{rel}/a.b2nd", detail=True)
    assert [e["name"] for e in listed] == [f"@public/{rel}/a.b2nd/zarr.json"]
    for entry in fs.find(f"@public/{rel}", withdirs=True, detail=True).values():
        if entry["type"] == "directory":
            fs.ls(entry["name"])


def test_unstrip_protocol_round_trips_percent_names(cat2_server: Any, so: dict[str, Any]) -> None:
    """The URL fsspec builds for a path (``fs.unstrip_protocol``, ``OpenFile.full_name``) opens
    that path again, also for a name holding ``%`` (was: ``a%20b.b2nd`` came back as the URL of
    ``a b.b2nd``, another dataset) or ``::`` (was: fsspec split the URL into a chain of
    filesystems and looked for ``.../x``)."""
    folder, _url = public_folder(cat2_server, "pct")
    rel = folder.name
    names = ["a%20b.b2nd", "a b.b2nd", "x::y.b2nd"]
    for i, name in enumerate(names):
        blosc2.asarray(np.full(3, i), urlpath=str(folder / name), mode="w")
    fs = fsspec.filesystem("caterva2", host=cat2_server.host, **so)
    for i, name in enumerate(names):
        url = fs.unstrip_protocol(f"@public/{rel}/{name}")
        assert fs._strip_protocol(url) == f"@public/{rel}/{name}"
        np.testing.assert_array_equal(zarr.open_array(url, mode="r", storage_options=so)[...], i)


# -- URL forms -----------------------------------------------------------------------------------


def test_ipv6_url_with_double_colon_is_a_clear_error(so: dict[str, Any]) -> None:
    """fsspec splits URLs at '::' (chained filesystems): the error says so and what to do (was:
    "Invalid IPv6 URL")."""
    with pytest.raises(ValueError, match=r"splits URLs at '::'.*storage_options"):
        zarr.open_array("caterva2://[::1]:8000/@public/a.b2nd", mode="r", storage_options=so)


def test_ipv6_host_in_storage_options(cat2_server: Any, so: dict[str, Any]) -> None:
    """The documented way round: ``caterva2:///<path>`` with ``host`` in storage_options."""
    folder, _url = public_folder(cat2_server, "v6")
    blosc2.asarray(np.arange(5.0), urlpath=str(folder / "a.b2nd"), mode="w")
    port = cat2_server.host.rsplit(":", 1)[1]
    opts = {**so, "host": f"[::ffff:127.0.0.1]:{port}"}
    z = zarr.open_array(f"caterva2:///@public/{folder.name}/a.b2nd", mode="r", storage_options=opts)
    np.testing.assert_array_equal(z[...], np.arange(5.0))


def test_dropped_filesystem_in_a_reference_cycle_closes_its_session(
    cat2_server: Any, so: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Filesystems are dropped without close(): the client's session is closed by a weakref
    callback, which runs before any ``__del__`` of a collected cycle, so aiohttp never finds it
    still open ("Unclosed client session" showed up in long test runs when aiohttp's own
    finalizer happened to run first)."""
    import gc
    import sys

    folder, _ = public_folder(cat2_server, "cycle")
    blosc2.asarray(np.arange(10.0), urlpath=str(folder / "a.b2nd"), mode="w")
    unraisable: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(repr(u.exc_value)))
    sessions = []
    for _ in range(3):
        fs = fsspec.filesystem("caterva2", host=cat2_server.host, **so)
        assert fs.ls(f"@public/{folder.name}", detail=False)
        sessions.append(fs.client._session.connector)
        fs.client._cycle = fs.client  # collected by the cycle collector, not by refcounting
        del fs
        gc.collect()
    deadline = time.monotonic() + 10  # the close runs on the session's own loop, soon after
    while not all(c is None or c.closed for c in sessions) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(c is None or c.closed for c in sessions)
    assert not [u for u in unraisable if "Unclosed" in u], unraisable


def test_walks_skip_a_damaged_dataset(cat2_server: Any, so: dict[str, Any]) -> None:
    """find/walk/glob/du of a directory holding one file the server cannot read (a truncated
    .b2nd: /api/info answers {"error": ...}) skip that file, as the Zarr group does (was: all of
    them raised UnsupportedCaterva2DatasetError, a NotImplementedError, which fsspec's walk does
    not skip); ls of the file itself is a FileNotFoundError naming it, like info."""
    folder, base = public_folder(cat2_server, "damagedwalk")
    blosc2.asarray(np.arange(1000.0), urlpath=str(folder / "ok.b2nd"), mode="w")
    cut = folder / "cut.b2nd"
    cut.write_bytes((folder / "ok.b2nd").read_bytes()[:200])
    try:
        fs, path = fsspec.url_to_fs(base, **so)
        found = fs.find(path)
        assert f"{path}/ok.b2nd/.zarray" in found and not [f for f in found if "cut.b2nd/" in f]
        assert [d for d, _, _ in fs.walk(path)][:2] == [path, f"{path}/cut.b2nd"]
        assert f"{path}/ok.b2nd/.zarray" in fs.glob(f"{path}/**/.zarray")
        assert fs.du(path) > 0
        with pytest.raises(FileNotFoundError, match=r"cut\.b2nd.*Unrecognized format"):
            fs.ls(f"{path}/cut.b2nd")
    finally:
        cut.unlink()  # zarr warns about it in walks from the server root (other tests)


def test_open_and_get_of_keys_and_trees(
    cat2_server: Any, so: dict[str, Any], tmp_path: Any
) -> None:
    """``fs.open`` of a directory or dataset raises IsADirectoryError (was: read b"", its size
    being 0); ``fs.get`` copies keys (was: a bare NotImplementedError) and refuses trees and
    glob patterns, whose copies would hold the metadata without the chunks (listings hold no
    chunk keys), instead of writing such a copy."""
    folder, base = public_folder(cat2_server, "get")
    a = np.arange(12.0).reshape(3, 4)
    blosc2.asarray(a, chunks=(2, 4), blocks=(1, 4), urlpath=str(folder / "a.b2nd"), mode="w")
    fs, path = fsspec.url_to_fs(base, **so)
    for node in (path, f"{path}/a.b2nd"):
        with pytest.raises(IsADirectoryError, match="not a key"):
            fs.open(node).read()
    zarray = fs.cat_file(f"{path}/a.b2nd/.zarray")
    assert fs.open(f"{path}/a.b2nd/.zarray").read() == zarray
    fs.get(f"{path}/a.b2nd/.zarray", str(tmp_path / "z.json"))
    fs.get([f"{path}/a.b2nd/0.0"], [str(tmp_path / "0.0")])
    assert (tmp_path / "z.json").read_bytes() == zarray
    assert (tmp_path / "0.0").read_bytes() == fs.cat_file(f"{path}/a.b2nd/0.0")
    for source, recursive in ((path, True), (f"{path}/*/.zarray", False)):
        with pytest.raises(NotImplementedError, match="would lack the data"):
            fs.get(source, str(tmp_path / "tree") + "/", recursive=recursive)
    assert not (tmp_path / "tree").exists()
