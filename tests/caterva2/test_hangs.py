"""caterva2:// must never hang: forked children of a process that used it, and servers that
accept a connection and then stall or trickle bytes for ever. Each case runs in a subprocess
with a timeout, so a regression fails instead of hanging the suite."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import blosc2
import numpy as np
import pytest
from _c2server import public_folder

from tests._fork_scripts import (
    PARENT_AFTER_FORKED_CHILD,
    READ_IN_FORKED_CHILD,
    WAIT_FOR_CHILD,
    run_script,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")


_CHILD_READS = (
    """
import sys
import fsspec, zarr
host, path, cache = sys.argv[1:4]
so = {"cache_storage": cache, "skip_instance_cache": True}
a = zarr.open_array(f"caterva2://{host}/{path}", mode="r", storage_options=so)
fs = fsspec.filesystem("caterva2", host=host, **so)
assert a[0, 0] == 0 and fs.cat(path + "/.zarray")

def work():
    return (a[35, :2].tolist(), fs.ls(path.rsplit("/", 1)[0], detail=False),
            len(fs.cat(path + "/.zarray")))
"""
    + READ_IN_FORKED_CHILD
)


def test_filesystem_used_before_a_fork_reads_in_the_child(cat2_server: Any, tmp_path: Path) -> None:
    """A Caterva2FileSystem used before a fork raised "RuntimeError: This class is not
    fork-safe" at its first synchronous call in the child (ls, cat, open...): the parent's fsspec
    event-loop thread does not exist there. It moves to the child's own loop."""
    folder, _ = public_folder(cat2_server, "forked")
    a = np.arange(40 * 30, dtype="f8").reshape(40, 30)
    blosc2.asarray(a, chunks=(20, 15), blocks=(10, 15), urlpath=str(folder / "a.b2nd"), mode="w")
    path = f"@public/{folder.name}/a.b2nd"
    out = run_script(_CHILD_READS, cat2_server.host, path, str(tmp_path / "cache"), timeout=90)
    assert out.startswith("([1050.0, 1051.0], ['@public/"), out
    assert "a.b2nd']" in out, out


_STALLING = """
import socket, sys, threading, time
import zarr
mode = sys.argv[1]

def handle(conn):
    try:
        conn.recv(65536)
        if mode == "headers":  # headers and the start of the body, then nothing
            conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
                         b"Content-Length: 1000\\r\\n\\r\\n{")
        elif mode == "trickle":  # a byte every 0.1 s, for ever
            conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
                         b"Transfer-Encoding: chunked\\r\\n\\r\\n")
            while True:
                conn.sendall(b"1\\r\\n \\r\\n")
                time.sleep(0.1)
        time.sleep(60)
    except OSError:
        pass

srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(16)
def accept():
    while True:
        threading.Thread(target=handle, args=(srv.accept()[0],), daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
host = f"127.0.0.1:{srv.getsockname()[1]}"
so = {"cache_storage": sys.argv[2], "timeout": 1, "connect_timeout": 1, "retries": 1,
      "backoff": 0.01}
t = time.monotonic()
try:
    zarr.open_array(f"caterva2://{host}/@public/d/a.b2nd", mode="r", storage_options=so)
except ConnectionError as exc:
    print(round(time.monotonic() - t), str(exc))
"""


@pytest.mark.parametrize("mode", ["silent", "headers", "trickle"])
def test_stalling_servers_end_within_the_timeout(mode: str, tmp_path: Path) -> None:
    """A server that accepts and never answers, one that stalls after the headers and one that
    trickles a byte at a time: each request ends after ``timeout`` (per attempt) with a
    ConnectionError naming the URL."""
    out = run_script(_STALLING, mode, str(tmp_path / "cache"), timeout=90)
    seconds, _, message = out.partition(" ")
    # 2 attempts of 1 s: about 2 s, with room for a loaded 2-core machine; a timer that the
    # trickle resets runs for ever (the message checks the number of attempts)
    assert int(seconds) <= 8, out
    assert "/api/info/@public/d/a.b2nd timed out after 2 attempts" in message, out


_FORK_DURING_CACHE_SCAN = (
    """
import os, sys, threading, time
import zarr
from b2store.caterva2.cache import ChunkCache
host, path, cache = sys.argv[1:4]
scanning = threading.Event()
evict = ChunkCache.evict

def slow_evict(self, *args, **kwargs):  # the first write's scan of a large cache folder
    scanning.set()                        # (seconds for 100k entries)
    time.sleep(2)
    return evict(self, *args, **kwargs)

ChunkCache.evict = slow_evict
a = zarr.open_array(f"caterva2://{host}/{path}", mode="r",
                    storage_options={"cache_storage": cache, "skip_instance_cache": True})
threading.Thread(target=lambda: a[:20, :15], daemon=True).start()  # first write: the scan
assert scanning.wait(20)
pid = os.fork()
if pid == 0:
    ok = a[35, 20] == 35 * 30 + 20  # a chunk not cached yet: written to the cache
    os._exit(0 if ok else 3)
"""
    + WAIT_FOR_CHILD
)


def test_fork_while_another_thread_scans_the_chunk_cache(cat2_server: Any, tmp_path: Path) -> None:
    """A fork while another thread scanned a chunk cache folder (its first write; the scan held
    the cache's lock before): the child's first read of a new chunk of an array opened before
    the fork hung for ever. The child's filesystems get caches of their own."""
    folder, _ = public_folder(cat2_server, "forkscan")
    a = np.arange(40 * 30, dtype="f8").reshape(40, 30)
    blosc2.asarray(a, chunks=(20, 15), blocks=(10, 15), urlpath=str(folder / "a.b2nd"), mode="w")
    path = f"@public/{folder.name}/a.b2nd"
    out = run_script(
        _FORK_DURING_CACHE_SCAN, cat2_server.host, path, str(tmp_path / "cache"), timeout=90
    )
    assert out.strip() == "child 0", out


_PARENT_READS_AFTER = (
    """
import sys
import fsspec, numpy as np
host, path = sys.argv[1:3]
fs = fsspec.filesystem("caterva2", host=host, cache_storage=None, timeout=5, retries=0)
assert len(fs.cat(path + "/0.0")) > 0  # a pooled keep-alive connection in the parent

def child():
    fs.cat(path + "/1.0")

def parent():
    for k in ("0.1", "1.1", "0.0"):
        assert len(fs.cat(path + "/" + k)) > 0
"""
    + PARENT_AFTER_FORKED_CHILD
)


def test_parent_reads_after_a_child_used_the_filesystem(cat2_server: Any, tmp_path: Path) -> None:
    """A child that reads through a filesystem used before the fork must leave the parent's
    connections (sockets and event-loop registrations shared by the fork) alone."""
    folder, _ = public_folder(cat2_server, "forked2")
    a = np.arange(40 * 30, dtype="f8").reshape(40, 30)
    blosc2.asarray(a, chunks=(20, 15), blocks=(10, 15), urlpath=str(folder / "a.b2nd"), mode="w")
    out = run_script(
        _PARENT_READS_AFTER, cat2_server.host, f"@public/{folder.name}/a.b2nd", timeout=90
    )
    # three reads in well under the 5 s timeout (a read stalled on a broken connection runs
    # into it and fails); not "parent 0": a loaded machine may take over 0.5 s for them
    assert re.fullmatch(r"parent [0-3]", out.strip()), out


_FORK_WITH_MODULE_LOCKS_HELD = (
    """
import os, sys, threading, time
import b2store.caterva2.filesystem  # its fork hook
from b2store.caterva2 import cache as cache_module, client as client_module
from b2store.caterva2.cache import ChunkCache
from b2store.caterva2.client import ClientConfig

root = sys.argv[1]
cache = ChunkCache(root=root, size_limit=10**6)
cache.put("http://127.0.0.1:1", "p", "v", "0", b"x" * 100)
held = [cache_module._TALLIES_LOCK, cache._tally.lock, client_module._CONTEXTS_LOCK]
started = threading.Event()

def hold():  # another thread inside the locks at the fork, as a write or an open may be
    for lock in held:
        lock.acquire()
    started.set()
    time.sleep(30)

threading.Thread(target=hold, daemon=True).start()
assert started.wait(10)
pid = os.fork()
if pid == 0:
    ChunkCache(root=root, size_limit=10**6).put("http://127.0.0.1:1", "p", "v", "1", b"y")
    cache.put("http://127.0.0.1:1", "p", "v", "2", b"z")
    ClientConfig(base_url="https://127.0.0.1:1").ssl_context()
    os._exit(0)
"""
    + WAIT_FOR_CHILD
)


def test_fork_while_another_thread_holds_the_module_locks(tmp_path: Path) -> None:
    """The cache's shared running totals and the shared TLS contexts came with module locks
    that a forked child inherited held (another thread writing a chunk or opening a store at
    the fork): the child's first write or HTTPS open waited for ever."""
    out = run_script(_FORK_WITH_MODULE_LOCKS_HELD, str(tmp_path / "cache"), timeout=90)
    assert out.strip() == "child 0", out
