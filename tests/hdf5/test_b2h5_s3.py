"""b2h5 over S3: s3fs against a real local S3 server (moto's, in this process, on 127.0.0.1).

The issue's forms ``fsspec.filesystem("b2h5", fo="s3://bucket/f.h5", target_options={...})`` and
``xr.open_zarr("b2h5::s3://...", storage_options={"s3": {...}})`` read every dataset as h5py
does; a missing object, a wrong secret and an object overwritten after open are clear errors
that never show the secret. Skipped when s3fs or moto[server] is not installed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import pickle
import subprocess
import sys
import traceback
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import h5py
import numpy as np
import pytest
import xarray as xr
import zarr
from h5view_helpers import assert_same, h5_values, open_root

pytest.importorskip("s3fs", reason="b2h5 over S3 needs s3fs (pip install s3fs)")
pytest.importorskip("boto3", reason="the local S3 server needs moto[server] (boto3)")
moto_server = pytest.importorskip(
    "moto.server", reason="the local S3 server needs moto[server] (pip install 'moto[server]')"
)

BUCKET = "bucket"


@contextlib.contextmanager
def _iam_checked() -> Iterator[None]:
    """Make the server check signatures (moto's in-process switch; off by default: moto
    5.2 rejects the signature of listings whose query holds a '/', which s3fs sends)."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    old = settings.INITIAL_NO_AUTH_ACTION_COUNT
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0
    try:
        yield
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT = old
        ActionAuthenticatorMixin.request_count = 0


@pytest.fixture(scope="module")
def s3(
    files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A local S3 server holding the generated files, an IAM user's credentials and a boto3
    client: ``{"options": {"endpoint_url", "key", "secret"}, "client": ..., "files": ...}``."""
    import boto3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boot = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    iam = boto3.client("iam", aws_access_key_id="x", aws_secret_access_key="x", **boot)
    iam.create_user(UserName="reader")
    policy = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
    iam.put_user_policy(
        UserName="reader",
        PolicyName="s3",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [policy]}),
    )
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    options = {
        "endpoint_url": endpoint,
        "key": key["AccessKeyId"],
        "secret": key["SecretAccessKey"],
    }
    client = boto3.client(
        "s3", aws_access_key_id=options["key"], aws_secret_access_key=options["secret"], **boot
    )
    client.create_bucket(Bucket=BUCKET)
    folder = tmp_path_factory.mktemp("s3-files")
    (folder / "sub").mkdir()
    with h5py.File(folder / "sub" / "target.h5", "w") as f:
        f["data"] = np.arange(6, dtype="i2")
        f.create_dataset("chunked", data=np.arange(20.0).reshape(4, 5), chunks=(2, 5))
    with h5py.File(folder / "master.h5", "w") as f:
        f["ext"] = h5py.ExternalLink("sub/target.h5", "/data")
        layout = h5py.VirtualLayout(shape=(8, 5), dtype="f8")
        for i in range(2):
            layout[4 * i : 4 * i + 4] = h5py.VirtualSource("sub/target.h5", "chunked", (4, 5))
        f.create_virtual_dataset("vds", layout)
    local = {name: files[name] for name in ("filters.h5", "layouts.h5", "tomo.h5")}
    local["other.h5"] = files["layouts.h5"].with_name("other.h5")  # layouts.h5 links to it
    if "netcdf4.nc" in files:
        local["netcdf4.nc"] = files["netcdf4.nc"]
    local["master.h5"] = folder / "master.h5"
    local["sub/target.h5"] = folder / "sub" / "target.h5"
    for name, path in local.items():
        client.upload_file(str(path), BUCKET, name)
    try:
        yield {"options": options, "client": client, "files": local}
    finally:
        server.stop()


def _datasets(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with h5py.File(path) as f:
        f.visititems(
            lambda n, o: out.update({n: h5_values(o)}) if isinstance(o, h5py.Dataset) else None
        )
    return out


def _fs(s3: dict[str, Any], key: str, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fsspec.filesystem(
            "b2h5", fo=f"s3://{BUCKET}/{key}", target_options=s3["options"], **kwargs
        )


def _put(s3: dict[str, Any], key: str, value: int, rows: int, tmp: Path) -> None:
    path = tmp / f"{uuid.uuid4().hex}.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.full((rows, 8), value, dtype="i4"), chunks=(1, 8))
    s3["client"].upload_file(str(path), BUCKET, key)


@pytest.mark.parametrize("name", ["filters.h5", "layouts.h5", "tomo.h5"])
@pytest.mark.parametrize("zarr_format", [3, 2])
def test_every_dataset_reads_like_h5py(s3, name: str, zarr_format: int) -> None:
    fs = _fs(s3, name, zarr_format=zarr_format, unsupported="skip", follow_external_links=True)
    root = open_root(fs)
    want = _datasets(s3["files"][name])
    read = 0
    for path, values in want.items():
        keys = (f"{path}/zarr.json", f"{path}/.zarray")
        if path not in fs.index.tables and not any(k in fs.index.meta for k in keys):
            continue  # left out with unsupported="skip" (as for the local file)
        assert_same(root[path][...], values, f"{name}:{path}")
        read += 1
    assert read >= len(want) - 3, (read, sorted(want))


def test_external_link_and_virtual_dataset_beside_the_object(s3) -> None:
    fs = _fs(s3, "master.h5", follow_external_links=True)
    root = open_root(fs)
    with h5py.File(s3["files"]["master.h5"]) as f:
        for name in ("ext", "vds"):
            assert_same(root[name][...], f[name][()], name)
    assert not fs.notes


def test_chained_urls_with_options_under_s3(s3) -> None:
    """``b2h5::s3://...`` through zarr, xarray (open_zarr and the b2h5 engine) and dask."""
    so = {"s3": s3["options"]}
    url = f"b2h5::s3://{BUCKET}/filters.h5"
    want = _datasets(s3["files"]["filters.h5"])
    group = zarr.open_group(url, storage_options=so, mode="r")
    assert_same(group["f/blosc2"][...], want["f/blosc2"], "zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(url, group="f", storage_options=so)
        assert_same(ds["shuffle_blosc2"].values, want["f/shuffle_blosc2"], "open_zarr")
        eng = xr.open_dataset(
            f"s3://{BUCKET}/filters.h5", engine="b2h5", group="f", storage_options=so, chunks={}
        )
    got = eng["gzip"].data.compute(scheduler="threads")
    assert_same(got, want["f/gzip"], "engine b2h5 + dask threads")
    if "netcdf4.nc" in s3["files"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nc = xr.open_dataset(f"s3://{BUCKET}/netcdf4.nc", engine="b2h5", storage_options=so)
        ref = xr.open_dataset(s3["files"]["netcdf4.nc"], engine="h5netcdf")
        xr.testing.assert_identical(nc.load(), ref.load())


def test_pickled_filesystem_reads_in_a_fresh_process(s3) -> None:
    import dask.array as da

    arr = da.from_zarr(
        f"b2h5::s3://{BUCKET}/tomo.h5",
        component="entry/data/data",
        storage_options={"s3": s3["options"]},
    )
    want = _datasets(s3["files"]["tomo.h5"])["entry/data/data"]
    code = (
        "import pickle, sys, numpy as np\n"
        "arr = pickle.loads(sys.stdin.buffer.read())\n"
        "sys.stdout.buffer.write(np.asarray(arr.compute(scheduler='threads')).tobytes())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=pickle.dumps(arr),
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert np.frombuffer(out.stdout, want.dtype).reshape(want.shape).tolist() == want.tolist()


def _message(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


@pytest.mark.parametrize("url", [f"s3://{BUCKET}/nope.h5", "s3://no-such-bucket/f.h5"])
def test_missing_object_or_bucket_is_file_not_found_naming_the_url(s3, url: str) -> None:
    with pytest.raises(FileNotFoundError, match=f"HDF5 file not found: {url}$") as err:
        fsspec.filesystem("b2h5", fo=url, target_options=s3["options"])
    assert s3["options"]["secret"] not in _message(err.value)
    with pytest.raises(FileNotFoundError, match=url):
        xr.open_zarr(f"b2h5::{url}", storage_options={"s3": s3["options"]})


def test_wrong_secret_is_permission_error_without_the_secret(s3) -> None:
    wrong = {**s3["options"], "secret": "wrong-" + s3["options"]["secret"][:8]}
    with _iam_checked():
        with pytest.raises(PermissionError, match=f"s3://{BUCKET}/filters.h5.*'s3'") as err:
            xr.open_zarr(f"b2h5::s3://{BUCKET}/filters.h5", storage_options={"s3": wrong})
        text = _message(err.value)
        assert wrong["secret"] not in text and s3["options"]["secret"] not in text
        fs = _fs(s3, "filters.h5")  # the right secret reads with signatures checked
        assert open_root(fs)["f/none"][0, 0, 1] == np.float32(1 / 3)
    assert s3["options"]["secret"] not in repr(fs)


@pytest.mark.parametrize("server_checks", [True, False])
def test_object_overwritten_after_open_raises(s3, tmp_path: Path, server_checks: bool) -> None:
    """s3fs reads what the object holds now: the chunks of an object overwritten after open
    (same size, so the same offsets) read as the new file's values under the old index,
    silently. Each read now carries If-Match with the ETag indexed (server_checks) or, for
    servers that ignore it (s3fs' local_expiry_check), compares the answer's ETag."""
    key = f"rewritten-{server_checks}.h5"
    _put(s3, key, 1, 4, tmp_path)
    opts = {**s3["options"], "local_expiry_check": not server_checks}
    fs = fsspec.filesystem(
        "b2h5", fo=f"s3://{BUCKET}/{key}", target_options=opts, skip_instance_cache=True
    )
    root = open_root(fs)  # indexed; no chunk read yet (those would be kept in read-ahead blocks)
    _put(s3, key, 2, 4, tmp_path)
    with pytest.raises(OSError, match=f"{BUCKET}/{key}: the HDF5 file was replaced or changed"):
        root["x"][...]
    with pytest.raises(OSError, match="changed on the server"):
        fs.cat([f"x/c/{i}/0" for i in range(4)])
    again = _fs(s3, key)
    assert open_root(again)["x"][...].tolist() == [[2] * 8] * 4


def test_index_sidecar_is_keyed_by_the_objects_etag(s3, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _put(s3, "cached.h5", 1, 3, tmp_path)
    assert (
        open_root(_fs(s3, "cached.h5", index_cache=str(cache)))["x"][...].tolist() == [[1] * 8] * 3
    )
    sidecars = sorted(p for p in cache.rglob("*") if p.is_file())
    assert sidecars
    _put(s3, "cached.h5", 7, 5, tmp_path)  # another ETag and size: another index
    fs = _fs(s3, "cached.h5", index_cache=str(cache))
    assert open_root(fs)["x"][...].tolist() == [[7] * 8] * 5
    _put(s3, "cached.h5", 9, 5, tmp_path)  # same size, another ETag
    fs = _fs(s3, "cached.h5", index_cache=str(cache))
    assert open_root(fs)["x"][...].tolist() == [[9] * 8] * 5
    for p in cache.rglob("*"):
        if p.is_file():
            assert s3["options"]["secret"].encode() not in p.read_bytes()
            assert p.stat().st_mode & 0o004 == 0  # a remote file may need credentials
