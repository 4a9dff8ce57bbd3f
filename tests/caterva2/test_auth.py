"""Credentials against a ``login = true`` server: username/password, token, environment variables,
wrong passwords, masking; credentials written into the URL (``user:password@host``), which never
reach zarr's, xarray's or dask's messages and names; credentials sent to a server without login;
and unfolded HDF5 proxies (which need a logged-in user to create)."""

from __future__ import annotations

import logging
import pickle
import traceback
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import blosc2
import dask.array as da
import fsspec
import h5py
import httpx
import numpy as np
import pytest
import xarray as xr
import zarr
from _c2server import PASSWORD, USER, login, public_folder, shared_array

from b2store.caterva2.filesystem import Caterva2FileSystem, Caterva2URLNotFoundError


@pytest.fixture(scope="module")
def shared(cat2_auth_server: Any) -> tuple[str, np.ndarray]:
    """An array in @shared (readable only when logged in)."""
    return shared_array(cat2_auth_server, "s")


@pytest.fixture(scope="module")
def token(cat2_auth_server: Any) -> str:
    return login(cat2_auth_server)


def _url(server: Any, path: str) -> str:
    return f"caterva2://{server.host}/{path}"


def _unfold(server: Any, token: str, h5: Path) -> str:
    """Unfold ``h5`` (a file under ``server.public``) into an HDF5 proxy folder beside it (which
    needs a logged-in user); the proxy folder's store path."""
    path = f"@public/{h5.relative_to(server.public).as_posix()}"
    r = httpx.post(f"{server.url}/api/unfold/{path}", cookies={"c2subauth": token}, timeout=60)
    assert r.status_code == 200, r.text
    return path.removesuffix(".h5")


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
    folder, _base = public_folder(cat2_auth_server, "unfold")
    a = np.arange(60 * 40, dtype="f4").reshape(60, 40) + 1
    with h5py.File(folder / "u.h5", "w") as f:
        f.create_dataset("d", data=a, chunks=(20, 40))
        f["d"].attrs["units"] = "K"
    proxy = _unfold(cat2_auth_server, token, folder / "u.h5")
    chunk0 = httpx.get(f"{cat2_auth_server.url}/api/chunk/{proxy}/d.b2nd?nchunk=0").content
    assert not np.frombuffer(blosc2.decompress2(chunk0), dtype="f4").any()  # the trap is real
    z = zarr.open_array(_url(cat2_auth_server, f"{proxy}/d.b2nd"), mode="r", storage_options=so)
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
    chain b2store's internal re-login signal."""
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


# -- credentials a server without login does not need --------------------------------------------


def test_credentials_for_a_server_without_login(
    cat2_server: Any,
    so: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Credentials (e.g. CATERVA2_USERNAME/PASSWORD set for another server) sent to a server
    with login = false, which has no login route (404): read anonymously with a warning (was:
    FileNotFoundError from the login, reported by zarr as 'No array found')."""
    folder, base = public_folder(cat2_server, "nologin")
    blosc2.asarray(np.arange(6.0), urlpath=str(folder / "a.b2nd"), mode="w")
    monkeypatch.setenv("CATERVA2_USERNAME", "someone@example.com")
    monkeypatch.setenv("CATERVA2_PASSWORD", "s3cret-pw")
    with caplog.at_level("WARNING", logger="b2store.caterva2.client"):
        z = zarr.open_array(f"{base}/a.b2nd", mode="r", storage_options=so)
        np.testing.assert_array_equal(z[...], np.arange(6.0))
    assert any("no login endpoint" in r.getMessage() for r in caplog.records)
    assert "s3cret-pw" not in caplog.text


# -- unfolded HDF5 proxies -----------------------------------------------------------------------


def test_unfolded_proxy_sees_its_hdf5_file_replaced(
    cat2_auth_server: Any, token: str, so: dict[str, Any]
) -> None:
    """An unfolded HDF5 proxy reads its source .h5 file, which can be replaced while the proxy
    file (and so its ETag) stays the same: the version now joins the source's ETag (was: the
    chunk cache kept serving the old file's values after a reopen)."""
    folder, _base = public_folder(cat2_auth_server, "replaced")
    source = folder / "st.h5"

    def write(sign: int) -> None:
        with h5py.File(source, "w") as f:
            f.create_dataset(
                "x", data=sign * np.arange(60, dtype="f4").reshape(6, 10), chunks=(2, 5)
            )
            f.create_group("g").create_dataset("z", data=sign * np.arange(6))

    write(1)
    base = _url(cat2_auth_server, _unfold(cat2_auth_server, token, source))
    for sign in (1, -1):
        if sign == -1:
            write(-1)
        for key, want in (("x.b2nd", np.arange(60).reshape(6, 10)), ("g/z.b2nd", np.arange(6))):
            z = zarr.open_array(f"{base}/{key}", mode="r", storage_options=so)
            np.testing.assert_array_equal(z[...], sign * want, err_msg=f"{key} {sign}")


# -- credentials in the URL ----------------------------------------------------------------------


def _cred_url(server: Any, path: str) -> str:
    return f"caterva2://{quote(USER, safe='')}:{PASSWORD}@{server.host}/{path}"


def _text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def test_url_credentials_read_and_never_show(
    cat2_auth_server: Any, so: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """``caterva2://user:pw@host/...`` reads through zarr, xarray and dask, and the password is
    in no repr, store path, dask name or key, or DEBUG log record."""
    path, a = shared_array(cat2_auth_server, "urlcred")
    url = _cred_url(cat2_auth_server, path)
    caplog.set_level(logging.DEBUG)
    z = zarr.open_array(url, mode="r", storage_options=so)
    np.testing.assert_array_equal(z[...], a)
    d = da.from_zarr(url, storage_options=so)
    np.testing.assert_array_equal(d.compute(), a)
    ds = xr.open_zarr(url, storage_options=so)
    name = path.rsplit("/", 1)[1]
    np.testing.assert_array_equal(ds[name].values, a)
    # a directory with a member b2store leaves out: a warning naming the directory is logged
    folder = Path(cat2_auth_server.state / "shared" / f"logs-{uuid.uuid4().hex[:8]}")
    folder.mkdir()
    for member in ("ok.b2nd", "back\\slash.b2nd"):
        blosc2.asarray(np.arange(3.0), urlpath=str(folder / member), mode="w")
    tree = xr.open_zarr(_cred_url(cat2_auth_server, f"@shared/{folder.name}"), storage_options=so)
    assert list(tree.data_vars) == ["ok.b2nd"]
    assert any(folder.name in r.getMessage() for r in caplog.records)
    shown = [repr(z), str(z.store), repr(z.store), repr(z.store.fs), z.store.path, d.name,
             repr(list(dict(d.dask))), repr(ds), ds[name].data.name, caplog.text]  # fmt: skip
    for text in shown:
        assert PASSWORD not in text


@pytest.mark.parametrize(
    "opener",
    [
        lambda url, so: zarr.open_array(url, mode="r", storage_options=so),
        lambda url, so: zarr.open_group(url, mode="r", storage_options=so),
        lambda url, so: xr.open_zarr(url, storage_options=so),
        lambda url, so: xr.open_zarr(url, consolidated=False, storage_options=so),
        lambda url, so: da.from_zarr(url, storage_options=so),
    ],
    ids=["open_array", "open_group", "open_zarr", "open_zarr-unconsolidated", "from_zarr"],
)
def test_url_credentials_missing_dataset_error_hides_password(
    cat2_auth_server: Any, so: dict[str, Any], opener: Any
) -> None:
    """A wrong dataset path in a URL with credentials fails naming the URL without them (was:
    zarr's GroupNotFoundError "No group found in store 'caterva2://user:pw@host/...'")."""
    url = _cred_url(cat2_auth_server, f"@shared/nope-{uuid.uuid4().hex[:6]}.b2nd")
    with pytest.raises(Exception) as info:
        opener(url, so)
    assert PASSWORD not in _text(info.value)
    assert cat2_auth_server.host in str(info.value)


def test_url_credentials_missing_dataset_is_a_lookup_error(
    cat2_auth_server: Any, so: dict[str, Any]
) -> None:
    url = _cred_url(cat2_auth_server, "@shared/nope.b2nd")
    with pytest.raises(Caterva2URLNotFoundError, match=r"@shared/nope\.b2nd: no such") as info:
        xr.open_zarr(url, storage_options=so)
    assert isinstance(info.value, LookupError)


def test_url_credentials_members_after_the_open_stay_key_errors(
    cat2_auth_server: Any, so: dict[str, Any]
) -> None:
    """Only the node the URL names raises Caterva2URLNotFoundError: once the store is open,
    zarr's member look-ups behave as usual (KeyError, ``in``)."""
    g = zarr.open_group(_cred_url(cat2_auth_server, ""), mode="r", storage_options=so)
    assert "@shared" in g and "@nope" not in g
    with pytest.raises(KeyError):
        g["@nope"]


@pytest.mark.parametrize("password", ["p/w", "p#w", "p?w", "1/2"])
def test_url_with_unencoded_characters_in_the_password(
    cat2_auth_server: Any, so: dict[str, Any], password: str
) -> None:
    """A '/' (or '#', '?') in a password written raw into the URL: no part of the password in
    the error (was: "Port could not be cast to integer value as 'p'", or a path holding the
    rest of the password)."""
    secret = f"SECRETHEAD{password}SECRETTAIL"
    url = f"caterva2://u:{secret}@{cat2_auth_server.host}/@shared/x.b2nd"
    with pytest.raises(Exception) as info:
        zarr.open_array(url, mode="r", storage_options=so)
    text = _text(info.value)
    assert "SECRETHEAD" not in text and "SECRETTAIL" not in text


def test_url_with_a_digits_and_slash_password_is_refused(
    cat2_auth_server: Any, so: dict[str, Any]
) -> None:
    """A password of digits followed by '/@' ("98765/@public") was read as the port: the
    ConnectionError then showed it."""
    url = f"caterva2://u%40e.org:98765/@public@{cat2_auth_server.host}/@shared/x.b2nd"
    with pytest.raises(ValueError, match="ends too early") as info:
        zarr.open_array(url, mode="r", storage_options=so)
    assert "98765" not in _text(info.value)


def test_url_with_percent_encoded_password(cat2_auth_server: Any, so: dict[str, Any]) -> None:
    """Percent-encoded user and password are decoded once; '#' and '@' need no encoding."""
    fs, path = fsspec.url_to_fs(f"caterva2://a%40b.c:p%2Fw#x@d@{cat2_auth_server.host}/@x/y", **so)
    assert path == "@x/y" and fs.host == cat2_auth_server.host
    assert fs.client._username == "a@b.c" and fs.client._password.get() == "p/w#x@d"


def test_host_with_user_info_is_refused_without_echo(so: dict[str, Any]) -> None:
    """``host="user:pw@server"`` would put the password into every URL b2store reports."""
    with pytest.raises(ValueError, match="without user info") as info:
        fsspec.filesystem("caterva2", host="me:SECRETPW@127.0.0.1:1", **so)
    assert "SECRETPW" not in str(info.value)
