"""Credentials against a ``login = true`` server: username/password, token, environment variables,
wrong passwords, masking; and unfolded HDF5 proxies (which need a logged-in user to create)."""

from __future__ import annotations

import pickle
import uuid
from typing import Any

import blosc2
import h5py
import httpx
import numpy as np
import pytest
import zarr
from _c2server import PASSWORD, USER

from b2store.caterva2.filesystem import Caterva2FileSystem


@pytest.fixture(scope="module")
def shared(cat2_auth_server: Any) -> tuple[str, np.ndarray]:
    """An array in @shared (readable only when logged in)."""
    name = f"s-{uuid.uuid4().hex[:8]}.b2nd"
    folder = cat2_auth_server.state / "shared"
    folder.mkdir(exist_ok=True)
    a = np.arange(50 * 20, dtype="i2").reshape(50, 20)
    blosc2.asarray(a, chunks=(20, 20), blocks=(10, 10), urlpath=str(folder / name), mode="w")
    return f"@shared/{name}", a


@pytest.fixture(scope="module")
def token(cat2_auth_server: Any) -> str:
    r = httpx.post(f"{cat2_auth_server.url}/auth/jwt/login",
                   data={"username": USER, "password": PASSWORD}, timeout=30)  # fmt: skip
    assert r.status_code == 204
    return str(r.cookies["c2subauth"])


def _url(server: Any, path: str) -> str:
    return f"caterva2://{server.host}/{path}"


def test_anonymous_is_refused(cat2_auth_server: Any, shared: Any, so: dict[str, Any]) -> None:
    path, _a = shared
    with pytest.raises(PermissionError, match="401"):
        zarr.open_array(_url(cat2_auth_server, path), mode="r", storage_options=so)


def test_username_password(cat2_auth_server: Any, shared: Any, so: dict[str, Any]) -> None:
    path, a = shared
    opts = {**so, "username": USER, "password": PASSWORD}
    z = zarr.open_array(_url(cat2_auth_server, path), mode="r", storage_options=opts)
    np.testing.assert_array_equal(z[...], a)
    fs = Caterva2FileSystem(host=cat2_auth_server.host, **opts)
    assert PASSWORD not in repr(fs) and PASSWORD not in repr(fs.client)
    clone = pickle.loads(pickle.dumps(fs))  # dask ships it: credentials must survive
    assert clone.cat_file(f"{path}/.zarray")


def test_token_and_env(
    cat2_auth_server: Any, shared: Any, so: dict[str, Any], token: str, monkeypatch: Any
) -> None:
    path, a = shared
    z = zarr.open_array(_url(cat2_auth_server, path), mode="r",
                        storage_options={**so, "token": token})  # fmt: skip
    np.testing.assert_array_equal(z[...], a)
    monkeypatch.setenv("CATERVA2_TOKEN", f"c2subauth={token}")
    z = zarr.open_array(_url(cat2_auth_server, path), mode="r", storage_options=so)
    np.testing.assert_array_equal(z[...], a)
    monkeypatch.delenv("CATERVA2_TOKEN")
    monkeypatch.setenv("CATERVA2_USERNAME", USER)
    monkeypatch.setenv("CATERVA2_PASSWORD", PASSWORD)
    fs = Caterva2FileSystem(host=cat2_auth_server.host, **so)
    assert "auth=password" in repr(fs) and PASSWORD not in repr(fs)
    assert fs.cat_file(f"{path}/c/0/0")


def test_wrong_password_is_permission_error(
    cat2_auth_server: Any, shared: Any, so: dict[str, Any]
) -> None:
    path, _a = shared
    secret = "not-the-password-42"
    with pytest.raises(PermissionError) as info:
        zarr.open_array(_url(cat2_auth_server, path), mode="r",
                        storage_options={**so, "username": USER, "password": secret})  # fmt: skip
    assert secret not in str(info.value) and USER in str(info.value)


def test_username_without_password_is_refused(cat2_auth_server: Any, so: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="both a username and a password"):
        Caterva2FileSystem(host=cat2_auth_server.host, username=USER, **so)


def test_unfolded_hdf5_proxy_reads_slices(
    cat2_auth_server: Any, token: str, so: dict[str, Any]
) -> None:
    """Proxies' chunk endpoint answers zeros with status 200: b2store must use the slice path."""
    stem = f"u{uuid.uuid4().hex[:8]}"
    a = np.arange(60 * 40, dtype="f4").reshape(60, 40) + 1
    with h5py.File(cat2_auth_server.public / f"{stem}.h5", "w") as f:
        f.create_dataset("d", data=a, chunks=(20, 40))
        f["d"].attrs["units"] = "K"
    r = httpx.post(f"{cat2_auth_server.url}/api/unfold/@public/{stem}.h5",
                   cookies={"c2subauth": token}, timeout=60)  # fmt: skip
    assert r.status_code == 200, r.text
    chunk0 = httpx.get(f"{cat2_auth_server.url}/api/chunk/@public/{stem}/d.b2nd?nchunk=0").content
    assert not np.frombuffer(blosc2.decompress2(chunk0), dtype="f4").any()  # the trap is real
    z = zarr.open_array(_url(cat2_auth_server, f"@public/{stem}/d.b2nd"), mode="r",
                        storage_options=so)  # fmt: skip
    np.testing.assert_array_equal(z[...], a)
    assert z.metadata.zarr_format == 2 and z.metadata.compressor is None  # decoded bytes


def test_expired_session_logs_in_again(
    cat2_auth_server: Any, shared: Any, so: dict[str, Any]
) -> None:
    from b2store.caterva2.client import _Secret

    path, _a = shared
    fs = Caterva2FileSystem(host=cat2_auth_server.host, username=USER, password=PASSWORD, **so)
    assert fs.cat_file(f"{path}/.zarray")
    fs.client._token = _Secret("expired.jwt.value")  # what a 12 h old cookie amounts to
    assert fs.cat_file(f"{path}/c/0/0")


def test_failed_new_login_after_an_expired_session_is_a_clean_error(
    cat2_auth_server: Any, shared: Any, so: dict[str, Any]
) -> None:
    """The cookie expired and the new login fails: a PermissionError whose traceback does not
    chain b2store's internal re-login signal (review, fifth session)."""
    from b2store.caterva2.client import _Relogin, _Secret

    path, _a = shared
    fs = Caterva2FileSystem(host=cat2_auth_server.host, username=USER, password=PASSWORD, **so)
    assert fs.cat_file(f"{path}/.zarray")
    fs.client._token = _Secret("expired.jwt.value")
    fs.client._password = _Secret("not-the-password-9")
    with pytest.raises(PermissionError, match="wrong username or password") as info:
        fs.cat_file(f"{path}/c/0/0")
    assert not isinstance(info.value.__context__, _Relogin)
    assert "not-the-password-9" not in str(info.value)


def test_login_to_a_server_that_is_down_is_retried_then_loud(so: dict[str, Any]) -> None:
    import socket

    with socket.socket() as s:  # a free port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secret = "pw-that-must-not-leak-7"
    fs = Caterva2FileSystem(host=f"127.0.0.1:{port}", username=USER, password=secret,
                            **{**so, "retries": 2, "backoff": 0.01})  # fmt: skip
    with pytest.raises(ConnectionError, match=r"login .* failed after 3 attempts") as info:
        fs.cat_file("@public/x.b2nd/zarr.json")
    assert secret not in str(info.value)
