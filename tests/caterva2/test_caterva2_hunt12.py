"""Session-12 hunt: a 500 whose retry meets the reset connection, /api/info 500s caused by user
metadata, a dataset changed under a store that another process has seen at the new version,
and fsspec listings (find/du one node at a time, ls of a key)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import blosc2
import numpy as np
import pytest
import xarray as xr
import zarr
from _c2server import public_folder

from b2store.caterva2.chunks import Caterva2DataError
from b2store.caterva2.filesystem import Caterva2FileSystem
from b2store.errors import Caterva2HTTPError


def test_a_500_followed_by_a_reset_reports_the_500(fault_proxy: Any, so: dict[str, Any]) -> None:
    """The server resets its connection after a 500, so a retry may fail on the connection: the
    request then raised ConnectionError ("failed after 4 attempts ... is the server up?"), which
    a directory does not skip: one failing dataset failed the whole directory (seen with
    xr.open_datatree of a root). The server's 500 is reported instead."""
    folder, base = public_folder(fault_proxy, "reset")
    a = np.arange(6.0)
    for name in ("bad.b2nd", "good.b2nd"):
        blosc2.asarray(a, urlpath=str(folder / name), mode="w")
    # per 5 requests of bad.b2nd's info: 500, 500, 500, reset, reset (aiohttp itself repeats
    # a request whose pooled connection was reset, once)
    fault_proxy.plan = lambda n, path: (
        None if "/api/info/" not in path or not path.endswith("bad.b2nd") else
        "500" if sum(p.endswith("bad.b2nd") for p in fault_proxy.requests) % 5 in (1, 2, 3) else
        "reset"
    )  # fmt: skip
    fs = Caterva2FileSystem(host=fault_proxy.host, **so)  # retries=3: 4 attempts
    with pytest.raises(Caterva2HTTPError, match="500") as info:
        fs.cat_file(f"@public/{folder.name}/bad.b2nd/.zarray")
    assert not isinstance(info.value, ConnectionError)
    g = zarr.open_group(base, mode="r", storage_options=so)  # bad.b2nd skipped, with a warning
    assert list(g.array_keys()) == ["good.b2nd"]
    np.testing.assert_array_equal(g["good.b2nd"][...], a)


def test_metadata_the_server_cannot_serve_is_named(
    cat2_server: Any, so: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """vlmeta holding a numpy array or non-UTF-8 bytes makes the server's /api/info a bare 500
    ("Internal Server Error", nothing else): the error now names the known causes. Its
    directory skips the dataset with a warning and reads the others."""
    folder, base = public_folder(cat2_server, "badmeta")
    a = np.arange(6.0).reshape(2, 3)
    for name, value in (("arr", np.arange(3)), ("raw", b"\xff\xfe"), ("ok", [1, 2])):
        nd = blosc2.asarray(a, urlpath=str(folder / f"{name}.b2nd"), mode="w")
        nd.vlmeta["x"] = value
    opts = {**so, "retries": 0}
    try:
        for name in ("arr.b2nd", "raw.b2nd"):
            with pytest.raises(Caterva2HTTPError, match=r"500 .*vlmeta.*numpy arrays.*UTF-8"):
                zarr.open_array(f"{base}/{name}", mode="r", storage_options=opts)
        with caplog.at_level(logging.WARNING, logger="b2store"):
            ds = xr.open_zarr(base, storage_options=opts)
        assert list(ds.data_vars) == ["ok.b2nd"] and ds["ok.b2nd"].attrs == {"x": [1, 2]}
        assert "skipping Caterva2 dataset" in caplog.text and "vlmeta" in caplog.text
    finally:  # other tests walk the whole server
        for name in ("arr.b2nd", "raw.b2nd"):
            (folder / name).unlink()


def test_vlmeta_of_the_types_the_server_serves(cat2_server: Any, so: dict[str, Any]) -> None:
    """Every vlmeta value the server can describe becomes a JSON attribute (NaN and inf arrive
    as null: the server's JSON has no NaN)."""
    folder, base = public_folder(cat2_server, "vlmeta")
    a = np.arange(4.0)
    nd = blosc2.asarray(a, urlpath=str(folder / "m.b2nd"), mode="w")
    values = {
        "nested": {"a": {"b": [1, 2, {"c": None}]}},
        "mixed": [1, "x", 2.5, None, True],
        "f32": np.float32(1.5),
        "i64": np.int64(-7),
        "u64max": 2**64 - 1,
        "tuple": (1, 2),
        "utf8": "héllo".encode(),
        "nan": float("nan"),
        "inf": [float("inf"), 1.0],
        "": "empty key",
        "_ftype": "hdf5?",  # Caterva2's own key: left out
    }
    for k, v in values.items():
        nd.vlmeta[k] = v
    want = {
        "nested": {"a": {"b": [1, 2, {"c": None}]}},
        "mixed": [1, "x", 2.5, None, True],
        "f32": 1.5,
        "i64": -7,
        "u64max": 2**64 - 1,
        "tuple": [1, 2],
        "utf8": "héllo",
        "nan": None,
        "inf": [None, 1.0],
        "": "empty key",
    }
    z = zarr.open_array(f"{base}/m.b2nd", mode="r", storage_options=so)
    assert dict(z.attrs) == want
    assert xr.open_zarr(base, storage_options=so)["m.b2nd"].attrs == want


def test_a_version_another_reader_saw_stops_an_old_store(
    cat2_server: Any, so: dict[str, Any]
) -> None:
    """Two readers (processes, here two stores) share a cache folder; the dataset is rewritten.
    The reader that opens the new version drops the old version's cached chunks; the store
    still open at the old version (within its version_check_interval) then fetched new chunks,
    mixed them into its reads and cached them under the *old* version (to be served as that
    version later). It now re-checks the version when its version's entries are gone."""
    folder, _ = public_folder(cat2_server, "xproc")
    a = np.arange(100.0).reshape(10, 10)
    blosc2.asarray(a, urlpath=str(folder / "a.b2nd"), mode="w", chunks=(5, 5), blocks=(5, 5))
    path = f"@public/{folder.name}/a.b2nd"
    old = zarr.open_array(
        f"caterva2://{cat2_server.host}/{path}",
        mode="r",
        storage_options={**so, "version_check_interval": 1e6},
    )
    np.testing.assert_array_equal(old[:5, :5], a[:5, :5])
    b = -a
    blosc2.asarray(b, urlpath=str(folder / "a.b2nd"), mode="w", chunks=(5, 5), blocks=(5, 5))
    new = zarr.open_array(f"caterva2://{cat2_server.host}/{path}", mode="r", storage_options=so)
    np.testing.assert_array_equal(new[...], b)
    with pytest.raises(Caterva2DataError, match="changed on the server while open"):
        old[5:, 5:]
    versions = [p for p in Path(so["cache_storage"]).glob("*/*") if p.is_dir()]
    assert len(versions) == 1  # the new version's; the old one was not written again


def test_find_and_du_of_a_folder_of_many_datasets(fault_proxy: Any, so: dict[str, Any]) -> None:
    """fsspec walks one node at a time and du asks info of every key: find of 300 datasets
    took 50 s and du 140 s (about 9 /api/info per dataset, one after the other). Listings
    now carry the sizes of a dataset's keys and find lists each level at once; the results
    are fsspec's (du = the sum of the keys' sizes)."""
    folder, _ = public_folder(fault_proxy, "many")
    n = 40
    for i in range(n):
        blosc2.asarray(np.full(3, i, "i2"), urlpath=str(folder / f"d{i:02d}.b2nd"), mode="w")
    (folder / "sub").mkdir()
    blosc2.asarray(np.arange(5), urlpath=str(folder / "sub" / "e.b2nd"), mode="w")
    fs = Caterva2FileSystem(host=fault_proxy.host, **so)
    rel = f"@public/{folder.name}"
    fault_proxy.requests.clear()
    found = fs.find(rel)
    assert len(found) == (n + 1) * 6 + 2  # per dataset 4 keys + 2 of its array; 2 zarr.json
    assert f"{rel}/d07.b2nd/d07.b2nd/.zarray" in found and f"{rel}/sub/zarr.json" in found
    assert sum("/api/info/" in p for p in fault_proxy.requests) <= 3 * (n + 1) + 3
    fault_proxy.requests.clear()
    sizes = fs.du(rel, total=False)
    infos = sum("/api/info/" in p for p in fault_proxy.requests)
    assert infos <= 4 * (n + 1) + 10  # find's, and the zarr.json of both folders
    assert sorted(sizes) == found
    for key in (f"{rel}/d03.b2nd/.zmetadata", f"{rel}/sub/e.b2nd/e.b2nd/.zattrs"):
        assert sizes[key] == len(fs.cat_file(key)) == fs.info(key)["size"]
    assert fs.du(rel) == sum(sizes.values())
    assert fs.find(rel, maxdepth=1) == [f"{rel}/zarr.json"]
    assert fs.find(rel, maxdepth=2, withdirs=True)[:3] == [rel, f"{rel}/d00.b2nd",
                                                           f"{rel}/d00.b2nd/.zarray"]  # fmt: skip
    assert len(fs.glob(f"{rel}/*.b2nd")) == n


def test_ls_of_a_key_lists_the_key(cat2_server: Any, so: dict[str, Any]) -> None:
    """fs.ls of a metadata or chunk key raised "Caterva2 has no .../api/info/<key>" although
    info, exists and cat read the key; it lists the key itself, as fsspec's local and memory
    filesystems do. Keys off the chunk grid stay missing."""
    folder, _ = public_folder(cat2_server, "lskey")
    blosc2.asarray(np.arange(10.0), urlpath=str(folder / "a.b2nd"), mode="w", chunks=(5,))
    fs = Caterva2FileSystem(host=cat2_server.host, **so)
    rel = f"@public/{folder.name}/a.b2nd"
    for key in (".zarray", "1", "a.b2nd/c/0", "a.b2nd/.zattrs"):
        path = f"{rel}/{key}"
        assert fs.ls(path, detail=False) == [path]
        assert fs.ls(path)[0]["size"] == len(fs.cat_file(path))
    with pytest.raises(FileNotFoundError):
        fs.ls(f"{rel}/2")
