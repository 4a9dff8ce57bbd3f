"""Session-11 hunt of the chunk cache, credentials and HTTPS as users meet them: a cache entry
copied onto another entry's name, several processes sharing one small size limit, and
``caterva2s://`` against a server with a self-signed certificate (a CA bundle given as an
option or through ``SSL_CERT_FILE`` set after import; clear, unretried TLS errors)."""

from __future__ import annotations

import http.server
import shutil
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blosc2
import fsspec
import numpy as np
import pytest
import zarr
from _c2server import FaultProxy, proxy_handler, public_folder, self_signed_certificate

from b2store.caterva2.cache import ChunkCache

SERVER = "http://127.0.0.1:1"

# -- cache entries are tied to their key -------------------------------------------------------


def test_entry_copied_onto_another_key_is_a_miss(tmp_path: Path) -> None:
    """An entry's header held its length and CRC only: a file copied (or synced) onto another
    entry's name checked, and was served as that other chunk, dataset or server's data."""
    cache = ChunkCache(root=tmp_path, size_limit=None)
    keys = [(SERVER, "p", "v", "0"), (SERVER, "p", "v", "1"), (SERVER, "q", "v", "0"),
            ("http://127.0.0.1:2", "p", "v", "0"), (SERVER, "p", "w", "0")]  # fmt: skip
    for i, key in enumerate(keys):
        cache.put(*key, bytes([i]) * 1000)
    source = cache._entry(*keys[0])
    for key in keys[1:]:
        shutil.copyfile(source, cache._entry(*key))
        assert cache.get(*key) is None  # a miss: fetched again
        assert not cache._entry(*key).exists()
    assert cache.get(*keys[0]) == bytes([0]) * 1000


def test_swapped_chunk_entries_read_right(cat2_server: Any, so: dict[str, Any]) -> None:
    """End to end: chunk 1's cache entry overwritten by chunk 0's read row 0 as row 1."""
    folder, base = public_folder(cat2_server, "swap")
    a = np.arange(4 * 100, dtype="i4").reshape(4, 100)
    blosc2.asarray(a, chunks=(1, 100), blocks=(1, 100), urlpath=str(folder / "x.b2nd"), mode="w")
    url = f"{base}/x.b2nd"
    np.testing.assert_array_equal(zarr.open_array(url, mode="r", storage_options=so)[...], a)
    entries = {p.name: p for p in Path(so["cache_storage"]).rglob("*.c2c")}
    assert sorted(entries) == ["0.c2c", "1.c2c", "2.c2c", "3.c2c"]
    shutil.copyfile(entries["0.c2c"], entries["1.c2c"])
    shutil.copyfile(entries["3.c2c"], entries["2.c2c"])
    np.testing.assert_array_equal(zarr.open_array(url, mode="r", storage_options=so)[...], a)


def test_old_format_entries_are_misses(tmp_path: Path) -> None:
    """Entries of the 16-byte header format (before the key digest) read as misses."""
    import struct
    import zlib

    cache = ChunkCache(root=tmp_path, size_limit=None)
    payload = b"x" * 100
    entry = cache._entry(SERVER, "p", "v", "0")
    entry.parent.mkdir(parents=True)
    entry.write_bytes(struct.pack("<4sHxxII", b"B2C2", 1, 100, zlib.crc32(payload)) + payload)
    assert cache.get(SERVER, "p", "v", "0") is None and not entry.exists()


# -- several processes, one size limit ---------------------------------------------------------


def test_processes_sharing_a_small_limit_stay_near_it(tmp_path: Path) -> None:
    """Each process counted only its own writes after its first scan: four of them filling one
    folder held 3.1 times the limit. Now each rescans after a tenth of the limit: the folder
    stays within the limit plus a tenth of it per writer (docs/caterva2.md). (Processes are
    played by caches with running totals of their own.)"""
    from b2store.caterva2.cache import _Tally

    limit, entry, writers = 100_000, 10_000, 4
    caches = [ChunkCache(root=tmp_path, size_limit=limit) for _ in range(writers)]
    for cache in caches:
        cache._tally = _Tally()
    peak = 0
    for i in range(40):
        for j, cache in enumerate(caches):
            cache.put(SERVER, f"d{j}", "v", str(i), bytes(entry - 32))
            peak = max(peak, caches[0].size())
    assert peak <= limit * (1 + writers / 10) + entry, peak
    assert caches[0].size() <= limit * (1 + writers / 10)


def test_stores_open_in_one_process_share_the_count(tmp_path: Path) -> None:
    """Each open store has a cache object of its own; each counted its own writes only, so four
    stores on one folder in one process held 1.24 times the limit. They share one count now."""
    limit, entry = 1_000_000, 10_000
    caches = [ChunkCache(root=tmp_path, size_limit=limit) for _ in range(4)]
    for i in range(60):
        for j, cache in enumerate(caches):
            cache.put(SERVER, f"d{j}", "v", str(i), bytes(entry - 32))
            assert caches[0].size() <= limit + entry


def test_one_writer_keeps_the_limit(tmp_path: Path) -> None:
    cache = ChunkCache(root=tmp_path, size_limit=50_000)
    for i in range(30):
        cache.put(SERVER, "p", "v", str(i), bytes(5_000 - 32))
        assert cache.size() <= 50_000


# -- HTTPS with a self-signed certificate ------------------------------------------------------


@pytest.fixture(scope="module")
def tls_proxy(cat2_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A TLS-speaking forwarder in front of ``cat2_server`` (self-signed, for 127.0.0.1):
    ``(host, ca_file, public folder)``."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    where = tmp_path_factory.mktemp("tls")
    cert, key = self_signed_certificate(where)
    proxy = FaultProxy(upstream=cat2_server.url, public=cat2_server.public)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), proxy_handler(proxy))
    httpd.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    proxy.url = f"https://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}", cert, proxy
    finally:
        httpd.shutdown()
        httpd.server_close()
        proxy.close()


def _tls_dataset(proxy: Any) -> tuple[str, np.ndarray]:
    folder, _ = public_folder(proxy, "tls")
    a = np.arange(300.0).reshape(10, 30)
    blosc2.asarray(a, chunks=(5, 30), urlpath=str(folder / "x.b2nd"), mode="w")
    return f"@public/{folder.name}/x.b2nd", a


def test_ca_bundle_as_an_option(
    tls_proxy: Any, so: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """There was no way to pass a CA bundle but SSL_CERT_FILE set before aiohttp's import.
    A relative path survives a pickle into a process started in another folder."""
    import pickle

    host, cert, proxy = tls_proxy
    path, a = _tls_dataset(proxy)
    url = f"caterva2s://{host}/{path}"
    z = zarr.open_array(url, mode="r", storage_options={**so, "ssl": str(cert)})
    np.testing.assert_array_equal(z[...], a)
    monkeypatch.chdir(cert.parent)
    fs = fsspec.filesystem("caterva2s", host=host, ssl=cert.name, cache_storage=None)
    blob = pickle.dumps(fs)
    monkeypatch.chdir(tmp_path)
    assert pickle.loads(blob).cat(f"{path}/.zarray") == fs.cat(f"{path}/.zarray")
    no_checks = zarr.open_array(url, mode="r", storage_options={**so, "ssl": False})
    np.testing.assert_array_equal(no_checks[...], a)


def test_ssl_cert_file_set_after_import(
    tls_proxy: Any, so: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiohttp reads SSL_CERT_FILE once, at its import: set in a running notebook it was
    ignored. b2store builds its context when the session opens."""
    host, cert, proxy = tls_proxy
    path, a = _tls_dataset(proxy)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    z = zarr.open_array(f"caterva2s://{host}/{path}", mode="r", storage_options=so)
    np.testing.assert_array_equal(z[...], a)


def test_unverifiable_certificate_is_clear_and_not_retried(
    tls_proxy: Any, so: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: retried four times, then "failed after 4 attempts: ClientConnectorCertificateError(
    ConnectionKey(...)); is the server up?"."""
    host, _cert, proxy = tls_proxy
    path, _a = _tls_dataset(proxy)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(ConnectionError, match="could not be verified") as info:
        zarr.open_array(f"caterva2s://{host}/{path}", mode="r", storage_options=so)
    text = str(info.value)
    assert "'ssl': '/path/to/ca.pem'" in text and "attempts" not in text
    assert "ConnectionKey" not in text


def test_caterva2s_to_a_plain_http_server(cat2_server: Any, so: dict[str, Any]) -> None:
    with pytest.raises(ConnectionError, match="does the server speak HTTPS") as info:
        zarr.open_array(f"caterva2s://{cat2_server.host}/@public", mode="r", storage_options=so)
    assert "attempts" not in str(info.value)


def test_caterva2_to_a_tls_server_hints_at_caterva2s(tls_proxy: Any, so: dict[str, Any]) -> None:
    host, _cert, proxy = tls_proxy
    path, _a = _tls_dataset(proxy)
    with pytest.raises(ConnectionError, match="caterva2s://"):
        zarr.open_array(f"caterva2://{host}/{path}", mode="r", storage_options={
            **so, "retries": 0})  # fmt: skip


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ("/no/such/ca.pem", FileNotFoundError, "does not exist"),
        (5, TypeError, "Got 5 instead"),
        (__file__, ValueError, "does not load"),
    ],
)
def test_bad_ssl_option(
    tls_proxy: Any, so: dict[str, Any], value: Any, error: type, match: str
) -> None:
    host, _cert, proxy = tls_proxy
    path, _a = _tls_dataset(proxy)
    with pytest.raises(error, match=match):
        zarr.open_array(f"caterva2s://{host}/{path}", mode="r", storage_options={
            **so, "ssl": value})  # fmt: skip


def test_limit_of_exactly_one_chunk_keeps_the_latest(tmp_path: Path) -> None:
    """With the limit equal to one entry, the eviction down to 90 % of it deleted every chunk
    right after writing it: such a cache never hit. Now the most recent entry stays."""
    cache = ChunkCache(root=tmp_path, size_limit=1_000)
    for i in range(3):
        cache.put(SERVER, "p", "v", str(i), bytes([i]) * (1_000 - 32))
        assert cache.get(SERVER, "p", "v", str(i)) == bytes([i]) * (1_000 - 32)
        assert cache.size() <= 1_000
    assert cache.get(SERVER, "p", "v", "0") is None


def test_other_files_in_the_cache_folder_are_left_alone(tmp_path: Path) -> None:
    """cache_storage naming a folder that holds other things (a project folder, /tmp): the
    eviction walked all of it and deleted its *.c2c files and hour-old .tmp-* files, and
    ChunkCache.clear() deleted every folder in it."""
    import os
    import time

    mine = [tmp_path / "data" / "keep.txt", tmp_path / "notes.c2c",
            tmp_path / "proj" / "sub" / "x.c2c", tmp_path / "proj" / ".tmp-build.tmp"]  # fmt: skip
    for f in mine:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"user data" * 100)
        os.utime(f, (time.time() - 7200,) * 2)  # old: first in line for the LRU
    cache = ChunkCache(root=tmp_path, size_limit=3_000)
    for i in range(10):
        cache.put(SERVER, "p", "v", str(i), bytes(968))
    assert cache.size() <= 3_000
    cache.clear()
    assert all(f.read_bytes() == b"user data" * 100 for f in mine)
    assert cache.size() == 0


def test_unwritable_cache_folder_warns_once_per_process(
    cat2_server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each open makes its own cache object, and each warned again: a loop opening the arrays
    of a read-only shared cache logged one warning per array."""
    folder, base = public_folder(cat2_server, "rocache")
    for i in range(3):
        blosc2.asarray(np.arange(10.0) + i, urlpath=str(folder / f"a{i}.b2nd"), mode="w")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder would be")
    opts = {"cache_storage": str(blocker / "cache"), "skip_instance_cache": True}
    with caplog.at_level("WARNING", logger="b2store.caterva2.cache"):
        for i in range(3):
            z = zarr.open_array(f"{base}/a{i}.b2nd", mode="r", storage_options=opts)
            np.testing.assert_array_equal(z[...], np.arange(10.0) + i)
    warned = [r for r in caplog.records if "cannot write the Caterva2 chunk cache" in r.message]
    assert len(warned) == 1


def test_tls_contexts_are_built_once_per_trust_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every open built its own context, loading the CA store in the event loop (~45 ms per
    dataset opened, also per store unpickled on a dask worker); one context now serves every
    client with the same trust store, and SSL_CERT_FILE set later still counts."""
    from b2store.caterva2.client import ClientConfig

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    first = ClientConfig(base_url="https://127.0.0.1:1").ssl_context()
    assert ClientConfig(base_url="https://other:2").ssl_context() is first
    cert, _key = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    assert ClientConfig(base_url="https://127.0.0.1:1").ssl_context() is not first
    bundle = ClientConfig(base_url="https://127.0.0.1:1", ssl=str(cert)).ssl_context()
    assert ClientConfig(base_url="https://127.0.0.1:1", ssl=cert).ssl_context() is bundle


@pytest.mark.parametrize("how", ["SSL_CERT_FILE", "option"])
def test_a_ca_added_to_a_bundle_later_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The shared context of the default trust store was keyed by the SSL_CERT_FILE path only:
    a CA appended to that bundle (a notebook told to trust a new server) was ignored until the
    process restarted. Bundles are now keyed by path, mtime and size."""
    from b2store.caterva2.client import ClientConfig

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, _ = self_signed_certificate(tmp_path / "a")
    second, _ = self_signed_certificate(tmp_path / "b")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(first.read_bytes())
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    if how == "SSL_CERT_FILE":
        monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
        config = ClientConfig(base_url="https://127.0.0.1:1")
    else:
        config = ClientConfig(base_url="https://127.0.0.1:1", ssl=str(bundle))
    before = config.ssl_context()
    assert isinstance(before, ssl.SSLContext) and before.cert_store_stats()["x509"] == 1
    assert config.ssl_context() is before
    bundle.write_bytes(first.read_bytes() + second.read_bytes())
    after = config.ssl_context()
    assert isinstance(after, ssl.SSLContext) and after.cert_store_stats()["x509"] == 2
