"""The persistent chunk cache: atomic entries, corruption detection, LRU size limit, versions,
sharing between processes, a writer killed by SIGKILL, and warm reads that send no chunk request."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import blosc2
import numpy as np
import pytest
import zarr

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
    rel = f"cache-{uuid.uuid4().hex[:8]}"
    (cat2_server.public / rel).mkdir()
    target = cat2_server.public / rel / "t.b2nd"
    a = np.random.default_rng(3).standard_normal((8, 30, 30)).astype("f4")
    blosc2.asarray(a, chunks=(2, 30, 30), blocks=(1, 15, 30), urlpath=str(target), mode="w")
    return f"@public/{rel}/t.b2nd", target, a


def test_warm_read_sends_no_chunk_request(
    fault_proxy: Any, cached_dataset: Any, so: dict[str, Any]
) -> None:
    path, _target, a = cached_dataset
    url = f"caterva2://{fault_proxy.host}/{path}"
    np.testing.assert_array_equal(zarr.open_array(url, mode="r", storage_options=so)[...], a)
    assert sum("/api/chunk" in p for p in fault_proxy.requests) == 4
    fault_proxy.requests.clear()
    fault_proxy.plan = lambda n, p: "500" if "/api/chunk" in p else None  # chunks unreachable
    np.testing.assert_array_equal(zarr.open_array(url, mode="r", storage_options=so)[...], a)
    assert not any("/api/chunk" in p for p in fault_proxy.requests)


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
    fault_proxy.requests.clear()
    fault_proxy.plan = lambda n, p: "500" if "/api/chunk" in p else None
    np.testing.assert_array_equal(zarr.open_array(url, mode="r", storage_options=so)[...], a)
    assert not any("/api/chunk" in p for p in fault_proxy.requests)


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
