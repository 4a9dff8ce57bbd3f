"""The persistent chunk cache: atomic entries, corruption detection, LRU size limit, versions,
sharing between processes, a writer killed by SIGKILL, and warm reads that send no chunk request;
unusable or empty cache folders, a limit smaller than one chunk, and cache identities: two users'
``@personal`` datasets never share entries, ``@shared`` ones do."""

from __future__ import annotations

import base64
import collections
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import blosc2
import fsspec
import numpy as np
import pytest
import zarr
from _c2server import PASSWORD, USER, add_user, login, public_folder, shared_array

from b2store._atomic import atomic_write, remove_stale_temps
from b2store.caterva2.cache import ChunkCache

SERVER = "http://127.0.0.1:1"


def _payload(key: str, size: int) -> bytes:
    rng = np.random.default_rng(abs(hash(key)) % 2**32)
    return rng.integers(0, 256, size=size, dtype="u1").tobytes()


def test_roundtrip_and_versions(tmp_path: Path) -> None:
    cache = ChunkCache(root=tmp_path, size_limit=None)
    cache.set_version(SERVER, "@public/a.b2nd", "v1")
    cache.put(SERVER, "@public/a.b2nd", "v1", "0", b"abc")
    assert cache.get(SERVER, "@public/a.b2nd", "v1", "0") == b"abc"
    assert cache.get(SERVER, "@public/a.b2nd", "v2", "0") is None
    assert cache.get(SERVER, "@public/b.b2nd", "v1", "0") is None
    other = ChunkCache(root=tmp_path, size_limit=None)  # another process, say
    other.set_version(SERVER, "@public/a.b2nd", "v2")  # the dataset changed on the server
    assert cache.get(SERVER, "@public/a.b2nd", "v1", "0") is None
    assert not list(tmp_path.rglob("*.c2c"))


def test_folder_dropped_by_another_process_during_a_write_is_no_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process dropping a dataset's folder (a new version) between this one's mkdir
    and its write raised FileNotFoundError, which logged the once-per-cache "cannot write the
    Caterva2 chunk cache" warning (misleading, and it hid later real failures). The write is
    tried once more; here the first mkdir is lost as if the folder was removed right after."""
    cache = ChunkCache(root=tmp_path, size_limit=None)
    real_mkdir = Path.mkdir
    calls = []

    def racy_mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        calls.append(self)
        if len(calls) > 1:
            real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", racy_mkdir)
    with caplog.at_level(logging.WARNING, logger="b2store"):
        cache.put(SERVER, "@public/a.b2nd", "v1", "0", b"abc")
    monkeypatch.undo()
    assert len(calls) >= 2  # (mkdir(parents=True) also calls itself for the parents)
    assert "cannot write" not in caplog.text
    assert cache.get(SERVER, "@public/a.b2nd", "v1", "0") == b"abc"
    assert not cache._write_failed


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage"])
def test_damaged_entry_is_a_miss(tmp_path: Path, damage: str) -> None:
    cache = ChunkCache(root=tmp_path, size_limit=None)
    data = _payload("k", 10_000)
    cache.put(SERVER, "p", "v", "k", data)
    (entry,) = tmp_path.rglob("*.c2c")
    raw = bytearray(entry.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "flip":
        raw[5000] ^= 0xFF
    elif damage == "empty":
        raw = bytearray()
    else:
        raw = bytearray(b"x" * len(raw))
    entry.write_bytes(bytes(raw))
    assert cache.get(SERVER, "p", "v", "k") is None
    assert not entry.exists()  # dropped, so it is fetched again next time


def test_lru_eviction(tmp_path: Path) -> None:
    cache = ChunkCache(root=tmp_path, size_limit=110_000)
    for i in range(5):
        cache.put(SERVER, "p", "v", str(i), _payload(str(i), 20_000))
        time.sleep(0.02)
    old = time.time() - 100
    for entry in tmp_path.rglob("*.c2c"):
        os.utime(entry, (old, old))
    assert cache.get(SERVER, "p", "v", "0") is not None  # touched: now the most recent
    cache.put(SERVER, "p", "v", "5", _payload("5", 20_000))  # over the limit: evict LRU
    assert cache.size() <= 110_000
    assert cache.get(SERVER, "p", "v", "0") is not None
    assert cache.get(SERVER, "p", "v", "5") is not None
    assert sum(cache.get(SERVER, "p", "v", str(i)) is not None for i in range(1, 5)) < 4


def test_threads_share_a_cache(tmp_path: Path) -> None:
    cache = ChunkCache(root=tmp_path, size_limit=None)
    errors: list[str] = []

    def work(t: int) -> None:
        for i in range(30):
            key = str(i % 7)
            data = _payload(key, 5_000)
            cache.put(SERVER, "p", "v", key, data)
            got = cache.get(SERVER, "p", "v", key)
            if got is not None and got != data:
                errors.append(f"thread {t} key {key}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors


WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from b2store.caterva2.cache import ChunkCache
    cache = ChunkCache(root=sys.argv[1], size_limit=None)
    i = 0
    while True:
        key = str(i % 50)
        rng = np.random.default_rng(int(key))
        cache.put("http://127.0.0.1:1", "p", "v", key,
                  rng.integers(0, 256, size=8_000_000, dtype="u1").tobytes())
        print(key, flush=True)
        i += 1
    """
)


def test_cache_folder_is_absolute_and_survives_a_pickle_into_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative folder means the opener's folder, also in a dask worker started elsewhere;
    ``~`` is the home folder, not a folder named "~"."""
    import pickle

    (tmp_path / "opener").mkdir()
    (tmp_path / "worker").mkdir()
    monkeypatch.chdir(tmp_path / "opener")
    fs = fsspec.filesystem(
        "caterva2", host="127.0.0.1:9", cache_storage="rel", skip_instance_cache=True
    )
    blob = pickle.dumps(fs)
    monkeypatch.chdir(tmp_path / "worker")
    assert pickle.loads(blob).cache.root == tmp_path / "opener" / "rel"
    assert not (tmp_path / "worker" / "rel").exists()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    fs = fsspec.filesystem(
        "caterva2", host="127.0.0.1:9", cache_storage="~/c2", skip_instance_cache=True
    )
    assert fs.cache.root == tmp_path / "home" / "c2"
    assert not (tmp_path / "worker" / "~").exists()
    # "~" and "default" name each worker's own home and $B2STORE_CACHE, not the opener's
    blob = pickle.dumps(fs)
    monkeypatch.setenv("B2STORE_CACHE", str(tmp_path / "opener-cache"))
    default = pickle.dumps(
        fsspec.filesystem(
            "caterva2", host="127.0.0.1:9", cache_storage="default", skip_instance_cache=True
        )
    )
    monkeypatch.setenv("HOME", str(tmp_path / "worker-home"))
    monkeypatch.setenv("B2STORE_CACHE", str(tmp_path / "worker-cache"))
    assert pickle.loads(blob).cache.root == tmp_path / "worker-home" / "c2"
    assert pickle.loads(default).cache.root == tmp_path / "worker-cache" / "caterva2"


def test_entry_modes_and_stale_temporary_files(tmp_path: Path) -> None:
    """Entries read with credentials are 0600 whatever the umask, others follow it; evict()
    removes the temporary files of writers killed over an hour ago (old and new names), and
    nothing else."""
    old = os.umask(0o022)
    try:
        cache = ChunkCache(root=tmp_path, size_limit=None)
        cache.put(SERVER, "p", "v", "open", b"x" * 10)
        cache.put(SERVER, "p", "v", "private", b"y" * 10, private=True)
    finally:
        os.umask(old)
    modes = {e.stem: stat.S_IMODE(e.stat().st_mode) for e in tmp_path.rglob("*.c2c")}
    assert modes == {"open": 0o644, "private": 0o600}
    folder = next(tmp_path.rglob("*.c2c")).parent
    assert [p.name for p in folder.iterdir() if not p.name.endswith(".c2c")] == []
    hour_ago = time.time() - 3700
    stale = [folder / ".tmp-0a1b2c3d.tmp", folder / ".tmp-123-456-0.0"]  # new and old names
    fresh, other = folder / ".tmp-fresh.tmp", folder / "notes.txt"
    for f in (*stale, fresh, other):
        f.write_bytes(b"partial")
    for f in (*stale, other):
        os.utime(f, (hour_ago, hour_ago))
    cache.evict()
    assert not any(f.exists() for f in stale) and fresh.exists() and other.exists()
    assert cache.get(SERVER, "p", "v", "open") == b"x" * 10


def test_first_write_cleans_stale_temporary_files_under_the_limit(tmp_path: Path) -> None:
    """Stale temporary files of killed writers were removed only by evict(), which ran only
    when the folder went over its size limit (2 GiB by default): under it they piled up. The
    first write of a cache object now scans the folder and removes them."""
    cache = ChunkCache(root=tmp_path, size_limit=2**30)
    folder = cache._entry(SERVER, "q", "v", "k").parent  # the cache's own folders only
    folder.mkdir(parents=True)
    stale = folder / ".tmp-0a1b2c3d.tmp"
    stale.write_bytes(b"partial")
    os.utime(stale, (time.time() - 3700,) * 2)
    cache.put(SERVER, "p", "v", "k", b"x" * 10)
    assert not stale.exists()
    assert cache.get(SERVER, "p", "v", "k") == b"x" * 10 and cache._tally.total == 10 + 32


def test_atomic_write_failure_keeps_the_old_file(tmp_path: Path) -> None:
    """A write that fails midway leaves the old file and no temporary file."""
    target = tmp_path / "entry"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target, prefix="t-", private=True) as fh:
        fh.write(b"new, half")
        raise RuntimeError("disk full, say")
    assert target.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [target]
    with atomic_write(target, prefix="t-", private=True) as fh:
        fh.write(b"new")
    assert target.read_bytes() == b"new" and sorted(tmp_path.iterdir()) == [target]
    leftover = tmp_path / "t-dead.tmp"
    leftover.write_bytes(b"")
    remove_stale_temps(tmp_path, "t-")  # young: kept (its writer may still be running)
    assert leftover.exists()
    os.utime(leftover, (time.time() - 3700,) * 2)
    remove_stale_temps(tmp_path, "t-")
    assert not leftover.exists() and target.exists()


def test_writer_killed_mid_write(tmp_path: Path) -> None:
    """SIGKILL a process while it writes 8 MB entries: every entry is whole or absent."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    for _ in range(3):
        proc.stdout.readline()  # a few entries are complete; the next is being written
    time.sleep(0.03)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cache = ChunkCache(root=tmp_path, size_limit=None)
    found = 0
    for i in range(50):
        got = cache.get(SERVER, "p", "v", str(i))
        if got is not None:
            rng = np.random.default_rng(i)
            assert got == rng.integers(0, 256, size=8_000_000, dtype="u1").tobytes()
            found += 1
    assert found >= 3
    # an entry torn in place (as a non-atomic writer would leave it) is refused too
    (entry, *_rest) = tmp_path.rglob("*.c2c")
    entry.write_bytes(entry.read_bytes()[:1000])
    assert sum(cache.get(SERVER, "p", "v", str(i)) is not None for i in range(50)) == found - 1


@pytest.fixture
def cached_dataset(cat2_server: Any) -> tuple[str, Path, np.ndarray]:
    folder, _base = public_folder(cat2_server, "cache")
    target = folder / "t.b2nd"
    a = np.random.default_rng(3).standard_normal((8, 30, 30)).astype("f4")
    blosc2.asarray(a, chunks=(2, 30, 30), blocks=(1, 15, 30), urlpath=str(target), mode="w")
    return f"@public/{folder.name}/t.b2nd", target, a


def _assert_read_from_the_cache(fault_proxy: Any, url: str, so: dict[str, Any], a: Any) -> None:
    """With every chunk request failing, ``url`` still reads ``a``, and no chunk is asked for."""
    fault_proxy.requests.clear()
    fault_proxy.plan = lambda n, p: "500" if "/api/chunk" in p else None  # chunks unreachable
    np.testing.assert_array_equal(zarr.open_array(url, mode="r", storage_options=so)[...], a)
    assert not any("/api/chunk" in p for p in fault_proxy.requests)


def test_warm_read_sends_no_chunk_request(
    fault_proxy: Any, cached_dataset: Any, so: dict[str, Any]
) -> None:
    path, _target, a = cached_dataset
    url = f"caterva2://{fault_proxy.host}/{path}"
    np.testing.assert_array_equal(zarr.open_array(url, mode="r", storage_options=so)[...], a)
    assert sum("/api/chunk" in p for p in fault_proxy.requests) == 4
    _assert_read_from_the_cache(fault_proxy, url, so, a)


def test_cache_shared_with_another_process(
    fault_proxy: Any, cached_dataset: Any, so: dict[str, Any]
) -> None:
    path, _target, a = cached_dataset
    url = f"caterva2://{fault_proxy.host}/{path}"
    code = (
        "import sys, zarr\n"
        "opts = {'cache_storage': sys.argv[2]}\n"
        "zarr.open_array(sys.argv[1], mode='r', storage_options=opts)[...]\n"
    )
    subprocess.run([sys.executable, "-c", code, url, so["cache_storage"]], check=True, timeout=120)
    _assert_read_from_the_cache(fault_proxy, url, so, a)


def test_changed_dataset_drops_stale_entries(
    cat2_server: Any, cached_dataset: Any, so: dict[str, Any]
) -> None:
    path, target, a = cached_dataset
    url = f"caterva2://{cat2_server.host}/{path}"
    np.testing.assert_array_equal(zarr.open_array(url, mode="r", storage_options=so)[...], a)
    before = sorted(p.parent.name for p in Path(so["cache_storage"]).rglob("*.c2c"))
    b = a * 2 + 1
    time.sleep(0.01)
    blosc2.asarray(b, chunks=(2, 30, 30), blocks=(1, 15, 30), urlpath=str(target), mode="w")
    np.testing.assert_array_equal(zarr.open_array(url, mode="r", storage_options=so)[...], b)
    after = sorted(p.parent.name for p in Path(so["cache_storage"]).rglob("*.c2c"))
    assert len(set(before)) == len(set(after)) == 1 and set(before) != set(after)


def test_slice_entries_name_their_chunk_shape(
    cat2_server: Any, so: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """HDF5 leaves are cut into Zarr chunks of b2store's choosing (SLICE_CHUNK_BYTES), but the
    cache key held only the chunk coordinates: a cache shared with a b2store that cuts
    differently served rows 30:40 for rows 90:100 (same shape, same key "s3_0")."""
    import h5py

    from b2store.caterva2 import metadata

    folder, base = public_folder(cat2_server, "slicekey")
    a = np.arange(400.0).reshape(100, 4)
    with h5py.File(folder / "f.h5", "w") as f:
        f.create_dataset("x", data=a)  # contiguous: one server chunk, cut by b2store
    for limit in (320, 960):  # 10 rows, then 30 rows per Zarr chunk
        monkeypatch.setattr(metadata, "SLICE_CHUNK_BYTES", limit)
        z = zarr.open_array(f"{base}/f.h5/x", mode="r", storage_options=so)
        assert z.chunks == (limit // 32, 4)
        np.testing.assert_array_equal(z[90:], a[90:])  # chunk (3, 0) both times
        np.testing.assert_array_equal(z[...], a)


# -- cache folders and limits given by the user --------------------------------------------------


def test_unusable_cache_folder_reads_without_caching(
    cat2_server: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A cache folder that cannot be created or written logs one warning and the read goes on
    uncached (was: FileExistsError/NotADirectoryError when opening, or an OSError such as
    PermissionError from the first chunk read, which looks like the server refusing access)."""
    folder, base = public_folder(cat2_server, "nocache")
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


def test_empty_cache_storage_is_refused(cat2_server: Any) -> None:
    """cache_storage='' meant the working directory (Path('')): chunk entries littered it."""
    with pytest.raises(ValueError, match="pass None to read without a cache"):
        fsspec.filesystem("caterva2", host=cat2_server.host, cache_storage="")


def _folder_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.c2c"))


def test_cache_limit_smaller_than_a_chunk(
    cat2_server: Any, so: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A limit below one chunk: reads work, one warning says chunks are not cached, and a folder
    filled under a larger limit is trimmed at the next miss (was: silent, and the folder stayed
    over the limit for good because no entry was ever written)."""
    folder, base = public_folder(cat2_server, "tiny")
    for name in ("a.b2nd", "b.b2nd"):
        blosc2.asarray(np.arange(400.0).reshape(20, 20), chunks=(10, 10),
                       urlpath=str(folder / name), mode="w")  # fmt: skip
    root = Path(so["cache_storage"])
    zarr.open_array(f"{base}/a.b2nd", mode="r", storage_options=so)[...]
    assert _folder_bytes(root) > 100
    small = {**so, "cache_size_limit": 100}
    with caplog.at_level(logging.WARNING, logger="b2store.caterva2.cache"):
        for _ in range(2):
            z = zarr.open_array(f"{base}/b.b2nd", mode="r", storage_options=small)
            np.testing.assert_array_equal(z[...], np.arange(400.0).reshape(20, 20))
    warnings = [r for r in caplog.records if "larger than cache_size_limit=100" in r.message]
    assert len(warnings) == 1
    assert _folder_bytes(root) <= 100


class _CountingLoads(collections.OrderedDict):  # type: ignore[type-arg]
    """The filesystem's in-memory loads, counting the entries its bookkeeping walks over."""

    walked = 0

    def items(self) -> Any:
        for item in super().items():
            type(self).walked += 1
            yield item


def test_memory_cache_bookkeeping_is_not_quadratic(cat2_server: Any, so: dict[str, Any]) -> None:
    """Each new chunk load walked over every load held in memory to trim them (was: a read of
    20 000 one-element chunks from a warm disk cache took 396 s instead of 9 s; 10^5 chunks
    did not finish). Now a running total: no walk while under memory_cache_size, and over it
    the finished loads in memory stay within the limit, least recently used out first."""
    folder, base = public_folder(cat2_server, "manychunks")
    a = np.arange(600, dtype="i4")
    blosc2.asarray(a, chunks=(1,), blocks=(1,), urlpath=str(folder / "m.b2nd"), mode="w")
    for limit in (2**30, 4000):
        z = zarr.open_array(
            f"{base}/m.b2nd", mode="r", storage_options={**so, "memory_cache_size": limit}
        )
        fs = z.store.fs
        fs._loads = _CountingLoads(fs._loads)
        _CountingLoads.walked = 0
        np.testing.assert_array_equal(z[...], a)
        done = [t.result() for t in fs._loads.values() if t.done() and not t.exception()]
        assert sum(map(len, done)) == fs._loads_bytes <= limit
        if limit == 2**30:
            assert len(done) == 600 and _CountingLoads.walked == 0
        else:
            assert 0 < len(done) < 600 and _CountingLoads.walked < 50 * 600


def test_memory_cache_total_stays_exact_with_a_tiny_limit(
    cat2_server: Any, so: dict[str, Any]
) -> None:
    """Loads finishing in the same event-loop pass: one load's trim dropped another before it was
    counted and subtracted bytes never added, so the total went negative and the loads held grew
    past the limit with every read."""
    folder, base = public_folder(cat2_server, "tinylimit")
    a = np.random.default_rng(0).integers(0, 2**31, 60 * 16384, dtype="i4")
    blosc2.asarray(a, chunks=(16384,), blocks=(16384,), urlpath=str(folder / "m.b2nd"),
                   mode="w", cparams={"clevel": 0})  # fmt: skip
    for limit in (0, 70_000):
        z = zarr.open_array(
            f"{base}/m.b2nd", mode="r", storage_options={**so, "memory_cache_size": limit}
        )
        fs = z.store.fs
        for _ in range(4):
            np.testing.assert_array_equal(z[...], a)
            done = [t.result() for t in fs._loads.values() if t.done() and not t.exception()]
            assert 0 <= fs._loads_bytes == sum(map(len, done)) <= limit


# -- cache entries of several users --------------------------------------------------------------


def _add_user(server: Any, email: str, password: str) -> str:
    """Create a user on the running login server; return its token."""
    add_user(server, email, password)
    return login(server, email, password)


def _subject(token: str) -> str:
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


def _personal(server: Any, token: str, name: str, a: np.ndarray, mtime_ns: int) -> Path:
    """``@personal/<name>`` of the token's user, uncompressed (same size for same shapes)."""
    folder = server.state / "personal" / _subject(token)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    blosc2.asarray(a, chunks=(5, 5), urlpath=str(path), mode="w", cparams={"clevel": 0})
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


@pytest.mark.parametrize("auth", ["password", "token"])
def test_personal_datasets_of_two_users_share_no_cache_entries(
    cat2_auth_server: Any, so: dict[str, Any], tmp_path: Path, auth: str
) -> None:
    """Two users' ``@personal/x.b2nd`` with the same size and mtime (the same ETag) in one cache
    folder: each user reads their own data (was: the second user got the first one's chunks)."""
    other, other_pw = f"other-{uuid.uuid4().hex[:8]}@example.com", "otherpw11"
    tokens = {USER: login(cat2_auth_server),
              other: _add_user(cat2_auth_server, other, other_pw)}  # fmt: skip
    name = f"x-{uuid.uuid4().hex[:6]}.b2nd"
    mtime = 1_700_000_000_000_000_000
    data = {USER: np.arange(100.0).reshape(10, 10), other: -np.arange(100.0).reshape(10, 10)}
    files = [_personal(cat2_auth_server, tokens[u], name, a, mtime) for u, a in data.items()]
    assert files[0].stat().st_size == files[1].stat().st_size
    creds = {USER: {"username": USER, "password": PASSWORD},
             other: {"username": other, "password": other_pw}}  # fmt: skip
    url = f"caterva2://{cat2_auth_server.host}/@personal/{name}"
    for user in (USER, other, USER):
        opts = {**so, **(creds[user] if auth == "password" else {"token": tokens[user]})}
        z = zarr.open_array(url, mode="r", storage_options=opts)
        np.testing.assert_array_equal(z[...], data[user])
    names = "".join(str(p) for p in Path(so["cache_storage"]).rglob("*"))
    for secret in (PASSWORD, other_pw, tokens[USER], tokens[other], USER, other):
        assert secret not in names


def test_shared_datasets_share_cache_entries_across_users(
    cat2_auth_server: Any, so: dict[str, Any]
) -> None:
    """``@shared`` data is the same file for everybody: a second user reads the first one's
    cached chunks (a token user and a password user alike)."""
    path, a = shared_array(cat2_auth_server, "sharedcache")
    url = f"caterva2://{cat2_auth_server.host}/{path}"
    opts = {**so, "username": USER, "password": PASSWORD}
    np.testing.assert_array_equal(zarr.open_array(url, mode="r", storage_options=opts)[...], a)
    entries = sorted(p.name for p in Path(so["cache_storage"]).rglob("*.c2c"))
    assert len(entries) == 4
    token = login(cat2_auth_server)
    fs = fsspec.filesystem("caterva2", host=cat2_auth_server.host, token=token, **so)
    fs.cat_file(f"{path}/.zarray")
    assert fs.cache.get(fs._cache_server(path), path, fs._datasets[path].version, "0")


def test_personal_cache_follows_the_token_in_use(cat2_auth_server: Any, so: dict[str, Any]) -> None:
    """A token is what the server reads with, so it names the cache identity even when a user
    name is passed as well; a password login and a token of the same user share entries."""
    token = login(cat2_auth_server)
    both = fsspec.filesystem("caterva2", host=cat2_auth_server.host, token=token,
                             username="someone@else.org", password="x", **so)  # fmt: skip
    assert both.client.identity == f"sub:{_subject(token)}"
    by_password = fsspec.filesystem("caterva2", host=cat2_auth_server.host, username=USER,
                                    password=PASSWORD, **so)  # fmt: skip
    by_password.ls("@personal")  # logs in
    assert by_password.client.identity == both.client.identity
