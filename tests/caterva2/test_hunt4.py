"""Regression tests from the fourth Caterva2 bug hunt: dataset kinds (big-endian ``.b2frame``,
structured dtypes with big-endian fields, ZFP/NDCELL/NDMEAN arrays, dtypes without a Zarr
equivalent, plain files, odd names), writes refused through every fsspec entry point, an unusable
cache folder, credentials sent to a server without login."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import blosc2
import fsspec
import numpy as np
import pytest
import zarr
from _c2server import Server, start_server

from b2store.caterva2.metadata import UnsupportedCaterva2DatasetError


def _folder(cat2_server: Any, prefix: str) -> tuple[Any, str]:
    rel = f"{prefix}-{uuid.uuid4().hex[:8]}"
    folder = cat2_server.public / rel
    folder.mkdir()
    return folder, f"caterva2://{cat2_server.host}/@public/{rel}"


@pytest.mark.parametrize("dataset_as", ["auto", "array"])
def test_big_endian_b2frame_with_a_short_last_chunk(
    cat2_server: Any, so: dict[str, Any], dataset_as: str
) -> None:
    """A big-endian .b2frame (vlmeta dtype '>f8') whose last chunk is short (was: ValueError
    'cannot reshape array of size 488 into shape (1,512)')."""
    folder, base = _folder(cat2_server, "beframe")
    raw = np.arange(1000, dtype=">f8")
    sc = blosc2.SChunk(chunksize=4096, data=raw.tobytes(), urlpath=str(folder / "be.b2frame"),
                       mode="w", cparams={"typesize": 8})  # fmt: skip
    sc.vlmeta["dtype"] = ">f8"
    z = zarr.open_array(
        f"{base}/be.b2frame", mode="r", storage_options={**so, "dataset_as": dataset_as}
    )
    assert z.dtype == np.dtype("<f8")
    np.testing.assert_array_equal(z[...], raw)
    np.testing.assert_array_equal(z[990:], raw[990:])


def test_plain_files_are_a_clear_error(cat2_server: Any, so: dict[str, Any]) -> None:
    """Files the server keeps as compressed bytes (.npy, .csv, .txt) are not arrays: opening one
    is a clear error naming it and exists() is False, as the directory listing skips them (was:
    served as a uint8 array of the file's bytes)."""
    folder, base = _folder(cat2_server, "plain")
    np.save(folder / "arr.npy", np.arange(10))
    (folder / "t.csv").write_text("a,b\n1,2\n")
    blosc2.asarray(np.arange(3.0), urlpath=str(folder / "ok.b2nd"), mode="w")
    for name in ("arr.npy", "t.csv"):
        with pytest.raises(UnsupportedCaterva2DatasetError, match=f"{name} is a plain file"):
            zarr.open_array(f"{base}/{name}", mode="r", storage_options=so)
    fs, path = fsspec.url_to_fs(base, **so)
    assert not fs.exists(f"{path}/t.csv") and not fs.isdir(f"{path}/t.csv")
    with pytest.raises(FileNotFoundError, match="plain file"):
        fs.info(f"{path}/arr.npy")
    assert list(zarr.open_group(base, mode="r", storage_options=so).array_keys()) == ["ok.b2nd"]


def test_writes_are_refused_everywhere(cat2_server: Any, so: dict[str, Any]) -> None:
    """Every fsspec write raises PermissionError (was: open(..., 'wb') and touch dropped the
    bytes silently, mkdir/makedirs/rmdir did nothing, cp/put raised a bare NotImplementedError)."""
    folder, base = _folder(cat2_server, "ro")
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


def test_unusable_cache_folder_reads_without_caching(
    cat2_server: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A cache folder that cannot be created or written logs one warning and the read goes on
    uncached (was: FileExistsError/NotADirectoryError when opening, or an OSError such as
    PermissionError from the first chunk read, which looks like the server refusing access)."""
    folder, base = _folder(cat2_server, "nocache")
    a = np.arange(200, dtype="i4").reshape(20, 10)
    blosc2.asarray(a, chunks=(5, 5), blocks=(5, 5), urlpath=str(folder / "a.b2nd"), mode="w")
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    for storage in (afile, afile / "sub"):
        caplog.clear()
        with caplog.at_level("WARNING", logger="b2store.caterva2.cache"):
            z = zarr.open_array(f"{base}/a.b2nd", mode="r", storage_options={
                "cache_storage": str(storage), "skip_instance_cache": True})  # fmt: skip
            np.testing.assert_array_equal(z[...], a)
        warnings = [
            r for r in caplog.records if "cannot write the Caterva2 chunk cache" in r.message
        ]
        assert len(warnings) == 1, caplog.records
    assert afile.read_text() == "not a folder"


def test_structured_dtype_with_big_endian_fields(cat2_server: Any, so: dict[str, Any]) -> None:
    """A structured dtype with a big-endian field, in a .b2nd and in an HDF5 file: Zarr v3 (the
    directory group, dataset_as='array') keeps structured fields little-endian, so the bytes must
    be too (was: garbage in field 'b' through v3 views, xarray failed on the v2 view)."""
    import h5py
    import xarray as xr

    folder, base = _folder(cat2_server, "structbe")
    st = np.zeros(29, dtype=[("a", "<i4"), ("b", ">f8"), ("c", "S3")])
    st["a"] = np.arange(29)
    st["b"] = np.arange(29) * 0.5
    st["c"] = b"xyz"
    blosc2.asarray(st, chunks=(8,), blocks=(4,), urlpath=str(folder / "s.b2nd"), mode="w")
    with h5py.File(folder / "f.h5", "w") as f:
        f.create_dataset("s", data=st, chunks=(4,))
    group = zarr.open_group(base, mode="r", storage_options=so)
    for key in ("s.b2nd", "f.h5/s"):
        for z in (
            group[key],
            zarr.open_array(f"{base}/{key}", mode="r", storage_options=so),
            zarr.open_array(
                f"{base}/{key}", mode="r", storage_options={**so, "dataset_as": "array"}
            ),
        ):
            got = z[...]
            for field in ("a", "b", "c"):
                np.testing.assert_array_equal(got[field], st[field], err_msg=f"{key} {field}")
    ds = xr.open_zarr(f"{base}/s.b2nd", storage_options=so)
    np.testing.assert_array_equal(ds["s.b2nd"].values["b"], st["b"])


@pytest.mark.parametrize(
    "cparams",
    [
        {"codec": blosc2.Codec.ZFP_ACC, "codec_meta": 5, "filters": []},
        {"codec": blosc2.Codec.ZFP_RATE, "codec_meta": 50, "filters": []},
        {"codec": blosc2.Codec.ZSTD, "filters": [blosc2.Filter.NDCELL], "filters_meta": [4]},
        {"codec": blosc2.Codec.ZSTD, "filters": [blosc2.Filter.NDMEAN], "filters_meta": [4]},
    ],
    ids=["zfp_acc", "zfp_rate", "ndcell", "ndmean"],
)
def test_codecs_that_need_the_array_metadata(
    cat2_server: Any, so: dict[str, Any], cparams: dict[str, Any]
) -> None:
    """ZFP codecs and the NDCELL/NDMEAN filters read the array's metalayer to decompress, so a
    bare /api/chunk chunk cannot be decoded alone: such arrays are read through the server,
    with `indices` (its slice_ answer re-compresses with the same codec and fails with 500 on
    edge regions). Was: 'corrupt Blosc2 chunk' (ZFP) or an error for every read."""
    folder, base = _folder(cat2_server, "ctxcodec")
    a = np.random.default_rng(0).standard_normal((33, 47)).astype("f4")
    arr = blosc2.asarray(a, chunks=(16, 16), blocks=(8, 8), cparams=cparams,
                         urlpath=str(folder / "a.b2nd"), mode="w")  # fmt: skip
    want = arr[...]  # lossy codecs: what python-blosc2 itself reads
    for dataset_as in ("auto", "array"):
        z = zarr.open_array(
            f"{base}/a.b2nd", mode="r", storage_options={**so, "dataset_as": dataset_as}
        )
        np.testing.assert_array_equal(z[...], want)
        np.testing.assert_array_equal(z[30:, 40:], want[30:, 40:])


def test_credentials_for_a_server_without_login(
    cat2_server: Any,
    so: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Credentials (e.g. CATERVA2_USERNAME/PASSWORD set for another server) sent to a server
    with login = false, which has no login route (404): read anonymously with a warning (was:
    FileNotFoundError from the login, reported by zarr as 'No array found')."""
    folder, base = _folder(cat2_server, "nologin")
    blosc2.asarray(np.arange(6.0), urlpath=str(folder / "a.b2nd"), mode="w")
    monkeypatch.setenv("CATERVA2_USERNAME", "someone@example.com")
    monkeypatch.setenv("CATERVA2_PASSWORD", "s3cret-pw")
    with caplog.at_level("WARNING", logger="b2store.caterva2.client"):
        z = zarr.open_array(f"{base}/a.b2nd", mode="r", storage_options=so)
        np.testing.assert_array_equal(z[...], np.arange(6.0))
    assert any("no login endpoint" in r.getMessage() for r in caplog.records)
    assert "s3cret-pw" not in caplog.text


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own, for datasets that directory groups skip (they would
    show up in other tests' walks from the server root, where zarr warns about them)."""
    server = start_server(tmp_path_factory.mktemp("cat2hunt4"))
    try:
        yield server
    finally:
        server.stop()


def test_dtypes_without_a_zarr_equivalent(own_server: Server, so: dict[str, Any]) -> None:
    """A datetime64 without unit or a nested structured dtype (.b2nd), or a .b2frame whose vlmeta
    dtype is 'O' or 'M8': one such dataset took its whole directory down (zarr failed rendering
    the consolidated metadata) and opening it gave zarr-internal errors. Now the .b2nd arrays
    are skipped with a clear error and the .b2frames fall back to bytes, like other unusable
    vlmeta dtypes."""
    folder, base = _folder(own_server, "oddtypes")
    blosc2.asarray(np.zeros(5, dtype="M8"), urlpath=str(folder / "generic.b2nd"), mode="w")
    nested = np.zeros(7, dtype=[("a", ">i4", (2,)), ("b", [("c", ">f8"), ("d", "<u2")])])
    blosc2.asarray(nested, urlpath=str(folder / "nested.b2nd"), mode="w")  # was: TypeError
    blosc2.asarray(np.arange(4.0), urlpath=str(folder / "ok.b2nd"), mode="w")
    for name, dt in (("obj", "O"), ("m8", "M8")):
        path = str(folder / f"{name}.b2frame")
        sc = blosc2.SChunk(
            chunksize=80, data=bytes(range(200)), mode="w", urlpath=path, cparams={"typesize": 8}
        )
        sc.vlmeta["dtype"] = dt
    g = zarr.open_group(base, mode="r", storage_options=so)
    assert sorted(g.array_keys()) == ["m8.b2frame", "obj.b2frame", "ok.b2nd"]
    np.testing.assert_array_equal(g["ok.b2nd"][...], np.arange(4.0))
    for name in ("obj.b2frame", "m8.b2frame"):
        z = zarr.open_array(f"{base}/{name}", mode="r", storage_options=so)
        assert z.dtype == np.uint8
        np.testing.assert_array_equal(z[...], np.arange(200, dtype="u1"))
    with pytest.raises(UnsupportedCaterva2DatasetError, match=r"\(dtype datetime64\) cannot be"):
        zarr.open_array(f"{base}/generic.b2nd", mode="r", storage_options=so)


def test_odd_names_in_a_directory(cat2_server: Any, so: dict[str, Any]) -> None:
    """A backslash in one dataset's name broke the whole directory (zarr reads it as '/':
    KeyError ... not found in consolidated metadata): it is left out of the group, and still
    opens by its own URL. Upper-case suffixes are plain files on the server (F.H5 was an empty
    group with a warning). Other odd characters work."""
    import h5py
    import xarray as xr

    folder, base = _folder(cat2_server, "names")
    names = ["a#b.b2nd", "q?x.b2nd", "p+l.b2nd", "semi;c.b2nd", "sp ace é.b2nd", "back\\slash.b2nd"]
    for i, name in enumerate(names):
        blosc2.asarray(np.full(3, i, dtype="i4"), urlpath=str(folder / name), mode="w")
    with h5py.File(folder / "F.H5", "w") as f:
        f["x"] = np.arange(3)
    ds = xr.open_zarr(base, storage_options=so)
    assert sorted(ds.data_vars) == sorted(names[:-1])
    for i, name in enumerate(names[:-1]):
        assert ds[name].values.tolist() == [i] * 3
    g = zarr.open_group(base, mode="r", storage_options=so)
    assert sorted(g.array_keys()) == sorted(names[:-1]) and list(g.group_keys()) == []
    z = zarr.open_array(f"{base}/back%5Cslash.b2nd", mode="r", storage_options=so)
    assert z[...].tolist() == [5] * 3


def test_empty_cache_storage_is_refused(cat2_server: Any) -> None:
    """cache_storage='' meant the working directory (Path('')): chunk entries littered it."""
    with pytest.raises(ValueError, match="pass None to read without a cache"):
        fsspec.filesystem("caterva2", host=cat2_server.host, cache_storage="")


def test_unfolded_proxy_sees_its_hdf5_file_replaced(
    cat2_auth_server: Any, so: dict[str, Any]
) -> None:
    """An unfolded HDF5 proxy reads its source .h5 file, which can be replaced while the proxy
    file (and so its ETag) stays the same: the version now joins the source's ETag (was: the
    chunk cache kept serving the old file's values after a reopen)."""
    import h5py
    import httpx
    from _c2server import PASSWORD, USER

    stem = f"st{uuid.uuid4().hex[:8]}"
    source = cat2_auth_server.public / f"{stem}.h5"

    def write(sign: int) -> None:
        with h5py.File(source, "w") as f:
            f.create_dataset(
                "x", data=sign * np.arange(60, dtype="f4").reshape(6, 10), chunks=(2, 5)
            )
            f.create_group("g").create_dataset("z", data=sign * np.arange(6))

    write(1)
    login = httpx.post(f"{cat2_auth_server.url}/auth/jwt/login",
                       data={"username": USER, "password": PASSWORD}, timeout=30)  # fmt: skip
    r = httpx.post(f"{cat2_auth_server.url}/api/unfold/@public/{stem}.h5",
                   cookies={"c2subauth": login.cookies["c2subauth"]}, timeout=60)  # fmt: skip
    assert r.status_code == 200, r.text
    base = f"caterva2://{cat2_auth_server.host}/@public/{stem}"
    for sign in (1, -1):
        if sign == -1:
            write(-1)
        for key, want in (("x.b2nd", np.arange(60).reshape(6, 10)), ("g/z.b2nd", np.arange(6))):
            z = zarr.open_array(f"{base}/{key}", mode="r", storage_options=so)
            np.testing.assert_array_equal(z[...], sign * want, err_msg=f"{key} {sign}")
