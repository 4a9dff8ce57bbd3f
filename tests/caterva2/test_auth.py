"""Credentials against a ``login = true`` server: username/password, token, environment variables,
wrong passwords, masking; credentials written into the URL (``user:password@host``), which never
reach zarr's, xarray's or dask's messages and names; credentials sent to a server without login;
and unfolded HDF5 proxies (which need a logged-in user to create)."""

from __future__ import annotations

import http.server
import logging
import pickle
import socket
import threading
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
from _c2server import PASSWORD, USER, add_user, login, public_folder, shared_array

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


def test_cache_entries_of_credentialed_reads_are_private(
    cat2_auth_server: Any, cat2_server: Any, shared: Any, so: dict[str, Any], tmp_path: Path
) -> None:
    """Chunks read with credentials are cached readable by their owner only (0600) whatever
    the umask: they were world-readable under the usual umask 022, so other users of the
    machine could read data a login protects. Anonymous reads follow the umask."""
    import os
    import stat

    path, a = shared
    old = os.umask(0o022)
    try:
        opts = {**so, "username": USER, "password": PASSWORD}
        z = zarr.open_array(_url(cat2_auth_server, path), mode="r", storage_options=opts)
        np.testing.assert_array_equal(z[...], a)
        entries = [e for e in Path(so["cache_storage"]).rglob("*.c2c")]
        assert entries and {stat.S_IMODE(e.stat().st_mode) for e in entries} == {0o600}
        folder, url = public_folder(cat2_server, "anon")
        blosc2.asarray(np.arange(10), urlpath=str(folder / "p.b2nd"), mode="w")
        anon = {**so, "cache_storage": str(tmp_path / "anon")}
        assert zarr.open_array(f"{url}/p.b2nd", mode="r", storage_options=anon)[3] == 3
        entries = list((tmp_path / "anon").rglob("*.c2c"))
        assert entries and {stat.S_IMODE(e.stat().st_mode) for e in entries} == {0o644}
    finally:
        os.umask(old)


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


def test_token_beside_half_a_login_in_the_environment(
    cat2_auth_server: Any, shared: Any, so: dict[str, Any], token: str, monkeypatch: Any
) -> None:
    """A token with CATERVA2_USERNAME (or CATERVA2_PASSWORD) alone in the environment, as left
    for other tools: ValueError "needs both a username and a password", though the token
    needs neither."""
    path, a = shared
    for name in ("CATERVA2_USERNAME", "CATERVA2_PASSWORD"):
        monkeypatch.setenv(name, "someone@example.com")
        z = zarr.open_array(_url(cat2_auth_server, path), mode="r",
                            storage_options={**so, "token": token})  # fmt: skip
        np.testing.assert_array_equal(z[...], a)
        monkeypatch.delenv(name)


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


def test_token_read_from_a_file_with_its_newline(
    cat2_auth_server: Any, shared: Any, so: dict[str, Any], token: str
) -> None:
    """A token read with open(...).read() ends with a newline: every request failed with
    aiohttp's "ValueError: Forbidden control character detected in headers. Potential header
    injection attack". Surrounding whitespace is dropped; control characters inside refused."""
    path, a = shared
    z = zarr.open_array(_url(cat2_auth_server, path), mode="r",
                        storage_options={**so, "token": f" {token}\n"})  # fmt: skip
    np.testing.assert_array_equal(z[...], a)
    with pytest.raises(ValueError, match="holds control characters") as info:
        Caterva2FileSystem(host=cat2_auth_server.host, token=f"{token[:10]}\r\n{token[10:]}", **so)
    assert token[10:] not in str(info.value)


def _count_logins(fs: Caterva2FileSystem) -> list[int]:
    """A list that grows by one at each login the filesystem's client makes."""
    real_login = fs.client._login
    logins: list[int] = []

    async def counted_login() -> str:
        logins.append(1)
        return await real_login()

    fs.client._login = counted_login  # type: ignore[method-assign]
    return logins


def test_refused_login_is_tried_once_for_concurrent_requests(
    cat2_auth_server: Any, shared: Any, so: dict[str, Any]
) -> None:
    """zarr asks for several keys at once: each request waiting for the login tried the wrong
    password again (one failed login per request; those still waiting when the process ended
    printed "Exception ignored ... RuntimeError: Event loop is closed"). Now the refusal is
    remembered and every waiting request raises it at once."""
    import asyncio

    from fsspec.asyn import sync

    path, _a = shared
    secret = "wrong-pw-17"
    fs = Caterva2FileSystem(host=cat2_auth_server.host, username=USER, password=secret, **so)
    logins = _count_logins(fs)

    async def three_keys() -> list[Any]:
        keys = (".zarray", ".zattrs", ".zgroup")
        reads = (fs._cat_file(f"{path}/{k}") for k in keys)
        return await asyncio.gather(*reads, return_exceptions=True)

    results = sync(fs.loop, three_keys)
    assert all(isinstance(r, PermissionError) for r in results), results
    assert len(logins) == 1
    with pytest.raises(PermissionError, match="wrong username or password") as info:
        fs.cat_file(f"{path}/.zarray")  # later reads too, without another login
    assert len(logins) == 1 and secret not in str(info.value)


def test_expired_session_of_concurrent_requests_logs_in_once(
    cat2_auth_server: Any, shared: Any, so: dict[str, Any]
) -> None:
    """Requests queued with the same expired cookie (more than max_concurrency in flight) each
    dropped the session and logged in again, also the one an earlier request had just got: one
    login per request."""
    import asyncio

    from fsspec.asyn import sync

    from b2store.caterva2.client import _Secret

    path, a = shared
    fs = Caterva2FileSystem(host=cat2_auth_server.host, username=USER, password=PASSWORD,
                            max_concurrency=1, readahead=0, **so)  # fmt: skip
    assert fs.cat_file(f"{path}/.zarray")
    fs.client._token = _Secret("expired.jwt.value")
    logins = _count_logins(fs)

    async def four_chunks() -> list[bytes]:
        return await asyncio.gather(*(fs._cat_file(f"{path}/c/{i}/{j}") for i in (0, 1)
                                      for j in (0, 1)))  # fmt: skip

    chunks = sync(fs.loop, four_chunks)
    assert len(chunks) == 4 and len(logins) == 1
    np.testing.assert_array_equal(
        zarr.open_array(_url(cat2_auth_server, path), mode="r",
                        storage_options={**so, "username": USER, "password": PASSWORD})[...],
        a,
    )  # fmt: skip


def test_refused_token_says_the_token_was_refused(
    cat2_auth_server: Any, shared: Any, so: dict[str, Any]
) -> None:
    """An expired or foreign token: the error said "pass username/password or token", as if
    none had been given."""
    path, _a = shared
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJub2JvZHkifQ.bm90LXNpZ25lZA"
    with pytest.raises(PermissionError, match=r"with the token given.*expired") as info:
        zarr.open_array(_url(cat2_auth_server, path), mode="r",
                        storage_options={**so, "token": token})  # fmt: skip
    assert token not in _text(info.value)


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Records every request (headers and body) sent to it; answers 404."""

    seen: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("latin-1") if length else ""
        type(self).seen.append(f"{self.command} {self.path}\n{self.headers}\n{body}")
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _record


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> http.server.HTTPServer:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def test_redirects_never_carry_credentials(
    cat2_server: Any, so: dict[str, Any], token: str
) -> None:
    """A server that redirects (a reverse proxy sending http to https, or to another host):
    aiohttp re-sent the login form, password included, to the host a 307 names, and aiohttp
    < 3.14 the session cookie as well. Now a redirect that would carry credentials is an error
    naming the target; anonymous requests still follow redirects."""
    _Recorder.seen = []
    recorder = _serve(_Recorder)
    target = f"http://127.0.0.1:{recorder.server_address[1]}"

    class Redirect(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _redirect(self) -> None:
            location = (cat2_server.url if self.path.startswith("/api/") else target) + self.path
            self.send_response(307)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _redirect

    redirector = _serve(Redirect)
    try:
        host = f"127.0.0.1:{redirector.server_address[1]}"
        folder, _base = public_folder(cat2_server, "redirect")
        a = np.arange(12.0).reshape(3, 4)
        blosc2.asarray(a, chunks=(2, 2), urlpath=str(folder / "a.b2nd"), mode="w")
        url = f"caterva2://{host}/@public/{folder.name}/a.b2nd"
        z = zarr.open_array(url, mode="r", storage_options=so)  # anonymous: followed
        np.testing.assert_array_equal(z[...], a)
        secret = "pw-for-nobody-else-3"
        for creds in ({"username": USER, "password": secret}, {"token": token}):
            with pytest.raises(OSError, match=r"redirects to http://127\.0\.0\.1") as info:
                zarr.open_array(url, mode="r", storage_options={**so, **creds})
            assert secret not in _text(info.value) and token not in _text(info.value)
        assert not any(secret in r or token in r for r in _Recorder.seen), _Recorder.seen
    finally:
        for httpd in (recorder, redirector):
            httpd.shutdown()
            httpd.server_close()


def test_a_port_that_does_not_speak_http(so: dict[str, Any]) -> None:
    """A host:port of another service (here one that answers an SSH banner): aiohttp's
    ClientResponseError ("400, message='Bad status line'"), no builtin exception, reached the
    caller; now a ConnectionError that asks whether the URL names a Caterva2 server."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def banner() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    threading.Thread(target=banner, daemon=True).start()
    host = f"127.0.0.1:{listener.getsockname()[1]}"
    try:
        for creds in ({}, {"username": USER, "password": "pw-9"}):
            with pytest.raises(ConnectionError, match=r"no usable HTTP answer.*Caterva2 server"):
                zarr.open_array(f"caterva2://{host}/@public/x.b2nd", mode="r",
                                storage_options={**so, **creds})  # fmt: skip
    finally:
        listener.close()


@pytest.mark.parametrize("location", ["ftp://example.com/x.b2nd", "http://[::1"])
def test_a_redirect_to_a_non_http_url(so: dict[str, Any], location: str) -> None:
    """An anonymous request follows redirects; one to a non-HTTP or invalid URL raised
    aiohttp's bare NonHttpUrlRedirectClientError / InvalidUrlRedirectClientError (no builtin
    exception, the target URL alone for a message). Now the ConnectionError of other answers
    that are no usable HTTP."""

    class Redirect(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

    redirector = _serve(Redirect)
    try:
        host = f"127.0.0.1:{redirector.server_address[1]}"
        with pytest.raises(ConnectionError, match=r"no usable HTTP answer.*Redirect"):
            zarr.open_array(f"caterva2://{host}/@public/x.b2nd", mode="r", storage_options=so)
    finally:
        redirector.shutdown()
        redirector.server_close()


def test_personal_root_of_a_user_without_files_is_an_empty_group(
    cat2_auth_server: Any, so: dict[str, Any]
) -> None:
    """A user who never uploaded has no personal folder: /api/roots lists @personal but its
    /api/info is 404, so opening it raised GroupNotFoundError ("No group found") and the
    server's root group left it out. Now an empty group; a missing dataset in it is still
    missing."""
    email, password = f"new-{uuid.uuid4().hex[:8]}@example.com", "newpw1234"
    add_user(cat2_auth_server, email, password)
    opts = {**so, "username": email, "password": password}
    url = _url(cat2_auth_server, "@personal")
    assert list(zarr.open_group(url, mode="r", storage_options=opts).members()) == []
    assert not xr.open_zarr(url, storage_options=opts).data_vars
    top = zarr.open_group(_url(cat2_auth_server, ""), mode="r", storage_options=opts)
    assert "@personal" in dict(top.members())
    with pytest.raises(FileNotFoundError):
        zarr.open_array(f"{url}/x.b2nd", mode="r", storage_options=opts)
    with pytest.raises(FileNotFoundError):
        zarr.open_group(_url(cat2_auth_server, "@nope"), mode="r", storage_options=opts)


def test_username_and_password_passed_beat_a_token_in_the_environment(
    cat2_auth_server: Any, so: dict[str, Any], token: str, monkeypatch: Any
) -> None:
    """CATERVA2_TOKEN of another user (exported for cat2-client, say) beside a username and
    password passed in storage_options: the token went first, so @personal listed and read the
    token user's files (cached under the name of the user passed). What is passed wins."""
    from b2store.caterva2.client import _jwt_subject

    email, password = f"own-{uuid.uuid4().hex[:8]}@example.com", "ownpw1234"
    add_user(cat2_auth_server, email, password)
    theirs = cat2_auth_server.state / "personal" / str(_jwt_subject(token))
    theirs.mkdir(parents=True, exist_ok=True)
    name = f"theirs-{uuid.uuid4().hex[:6]}.b2nd"
    blosc2.asarray(np.arange(4.0), urlpath=str(theirs / name), mode="w")
    monkeypatch.setenv("CATERVA2_TOKEN", token)
    url = _url(cat2_auth_server, "@personal")
    assert name in dict(zarr.open_group(url, mode="r", storage_options=so).members())
    opts = {**so, "username": email, "password": password}
    assert list(zarr.open_group(url, mode="r", storage_options=opts).members()) == []
    with pytest.raises(FileNotFoundError):
        zarr.open_array(f"{url}/{name}", mode="r", storage_options=opts)
    assert "auth=password" in repr(Caterva2FileSystem(host=cat2_auth_server.host, **opts))
    # a username alone beside the token: the error says the token was set aside, and why
    with pytest.raises(ValueError, match=r"got only one \(CATERVA2_TOKEN is set but not used"):
        Caterva2FileSystem(host=cat2_auth_server.host, username=email, cache_storage=None)


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
