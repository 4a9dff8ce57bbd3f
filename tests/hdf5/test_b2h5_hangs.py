"""b2h5 must never hang: forked children (multiprocessing "fork", os.fork) of a process that
used it, and forks while another thread builds an index. Each case runs in a subprocess with a
timeout, so a regression fails instead of hanging the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")

HELPERS = str(Path(__file__).parent)

# serves argv[1] over HTTP (ranges) in a thread; SLOW seconds per request
_SERVER = """
import functools, http.server, sys, threading, time
sys.path.insert(0, sys.argv[2])
from http_helpers import RangeHandler
SLOW = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
class Handler(RangeHandler):
    def send_head(self):
        time.sleep(SLOW)
        return super().send_head()
srv = http.server.ThreadingHTTPServer(
    ("127.0.0.1", 0), functools.partial(Handler, directory=sys.argv[1]))
srv.daemon_threads = True
threading.Thread(target=srv.serve_forever, daemon=True).start()
BASE = f"http://127.0.0.1:{srv.server_port}"
"""

_CHILD_READS = (
    _SERVER
    + """
import multiprocessing as mp, os
import fsspec, zarr
a = zarr.open_array(f"b2h5::{BASE}/f.h5", path="data", mode="r")
fs = fsspec.filesystem("b2h5", fo=f"{BASE}/f.h5")
assert a[2, 3] == 803.0 and fs.cat("data/zarr.json")

def child(q):
    try:
        q.put((a[350, :3].tolist(), len(fs.cat("data/c/2/0"))))
    except BaseException as exc:
        q.put(repr(exc))

ctx = mp.get_context("fork")
q = ctx.Queue()
p = ctx.Process(target=child, args=(q,))
p.start()
print(q.get(timeout=20))
p.join(5)
"""
)


def _run(script: str, *args: str, timeout: float = 30) -> str:
    res = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_array_of_a_remote_file_reads_in_a_forked_child(tmp_path: Path) -> None:
    """An array (and a filesystem) opened over HTTP before a fork raised "RuntimeError: This
    class is not fork-safe" in the child: the parent's HTTP filesystem and event loop cannot be
    used there. The child makes its own."""
    with h5py.File(tmp_path / "f.h5", "w") as f:
        # chunks larger than READAHEAD_CHUNK: read from the server, not from cached blocks
        f.create_dataset("data", data=np.arange(160_000.0).reshape(400, 400), chunks=(100, 400))
    out = _run(_CHILD_READS, str(tmp_path), HELPERS)
    assert out.strip() == "([140000.0, 140001.0, 140002.0], 320000)", out


_FORK_DURING_BUILD = (
    _SERVER
    + """
import gc, os, threading, time
import fsspec
import b2store.hdf5.filesystem as b2fs
fsspec.filesystem("b2h5", fo=sys.argv[1] + "/small.h5")  # imports done (a fork mid-import hangs)
threading.Thread(
    target=fsspec.filesystem, args=("b2h5",), kwargs={"fo": BASE + "/big.h5"}, daemon=True
).start()
deadline = time.monotonic() + 20
while not b2fs._BUILD_LOCK.locked():  # the index build of big.h5 holds it
    assert time.monotonic() < deadline, "the build never started"
    time.sleep(0.001)
pid = os.fork()
if pid == 0:
    try:
        fs = fsspec.filesystem("b2h5", fo=sys.argv[1] + "/other.h5")
        ok = len(fs.cat("d/zarr.json")) > 0 and gc.isenabled()
        os._exit(0 if ok else 3)
    except BaseException:
        os._exit(4)
for _ in range(150):
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("child", os.waitstatus_to_exitcode(status))
        break
    time.sleep(0.05)
else:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    print("child hung")
os._exit(0)
"""
)


def test_fork_while_another_thread_builds_an_index(tmp_path: Path) -> None:
    """A fork while another thread built an index copied its held build lock and its paused
    garbage collector: the child's first open hung for ever (and would have run with the
    collector off). The child starts them afresh."""
    with h5py.File(tmp_path / "big.h5", "w") as f:  # metadata spread over several MiB
        for j in range(60):
            f.create_dataset(f"g{j}/d", data=np.zeros(50_000), chunks=(1000,))
    for name in ("small.h5", "other.h5"):
        with h5py.File(tmp_path / name, "w") as f:
            f["d"] = np.arange(3)
    out = _run(_FORK_DURING_BUILD, str(tmp_path), HELPERS, "0.3")
    assert out.strip() == "child 0", out


def test_timeouts_of_a_stalled_server_name_the_file(tmp_path: Path) -> None:
    """A server that stops answering: the read ends at the HTTP client's timeout (aiohttp's
    default is 5 minutes; one of 1 s here) with an error naming the file and the timeout. At
    open it said "not a readable HDF5 file (); check that it is complete (not truncated)", at a
    chunk read a bare TimeoutError()."""
    import functools
    import http.server
    import re
    import threading
    import time

    import aiohttp
    import fsspec
    import zarr

    sys.path.insert(0, HELPERS)
    from http_helpers import RangeHandler

    from b2store.hdf5.filesystem import TransferError

    stall = threading.Event()

    class Stalling(RangeHandler):
        def send_head(self):  # type: ignore[no-untyped-def]
            start = re.match(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if stall.is_set() and start and int(start[1]) >= 2**20:
                time.sleep(5)  # past the first MiB (h5py's first block): no answer
            return super().send_head()

    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.create_dataset("data", data=np.arange(320_000.0).reshape(800, 400), chunks=(100, 400))
    with h5py.File(tmp_path / "big.h5", "w") as f:  # metadata spread over several MiB
        for j in range(60):
            f.create_dataset(f"g{j}/d", data=np.zeros(50_000), chunks=(1000,))
    srv = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Stalling, directory=str(tmp_path))
    )
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_port}"
    http_opts = {"client_kwargs": {"timeout": aiohttp.ClientTimeout(total=1)}}
    try:
        a = zarr.open_array(
            f"b2h5::{base}/f.h5", path="data", mode="r", storage_options={"http": http_opts}
        )
        stall.set()
        with pytest.raises(TransferError, match=r"f\.h5: reading the HDF5 file timed out"):
            a[700:, :]
        with pytest.raises(TransferError, match=r"big\.h5: reading .* timed out.*ClientTimeout"):
            fsspec.filesystem("b2h5", fo=f"{base}/big.h5", target_options=http_opts)
    finally:
        srv.shutdown()
        srv.server_close()
