"""b2h5 must never hang: forked children (multiprocessing "fork", os.fork) of a process that
used it, and forks while another thread builds an index. Each case runs in a subprocess with a
timeout, so a regression fails instead of hanging the suite."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests._fork_scripts import (
    PARENT_AFTER_FORKED_CHILD,
    READ_IN_FORKED_CHILD,
    WAIT_FOR_CHILD,
    run_script,
)

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
import fsspec, zarr
a = zarr.open_array(f"b2h5::{BASE}/f.h5", path="data", mode="r")
fs = fsspec.filesystem("b2h5", fo=f"{BASE}/f.h5")
assert a[2, 3] == 803.0 and fs.cat("data/zarr.json")

def work():
    return (a[350, :3].tolist(), len(fs.cat("data/c/2/0")))
"""
    + READ_IN_FORKED_CHILD
)


def test_array_of_a_remote_file_reads_in_a_forked_child(tmp_path: Path) -> None:
    """An array (and a filesystem) opened over HTTP before a fork raised "RuntimeError: This
    class is not fork-safe" in the child: the parent's HTTP filesystem and event loop cannot be
    used there. The child makes its own."""
    with h5py.File(tmp_path / "f.h5", "w") as f:
        # chunks larger than READAHEAD_CHUNK: read from the server, not from cached blocks
        f.create_dataset("data", data=np.arange(160_000.0).reshape(400, 400), chunks=(100, 400))
    out = run_script(_CHILD_READS, str(tmp_path), HELPERS, timeout=90)
    assert out.strip() == "([140000.0, 140001.0, 140002.0], 320000)", out


_FORK_DURING_BUILD = (
    _SERVER
    + """
import gc, os, threading, time
import fsspec
import b2store.hdf5._build_guards as guards
fsspec.filesystem("b2h5", fo=sys.argv[1] + "/small.h5")  # imports done (a fork mid-import hangs)
threading.Thread(
    target=fsspec.filesystem, args=("b2h5",), kwargs={"fo": BASE + "/big.h5"}, daemon=True
).start()
deadline = time.monotonic() + 20
while not guards._BUILD_LOCK.locked():  # the index build of big.h5 holds it
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
"""
    + WAIT_FOR_CHILD
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
    out = run_script(_FORK_DURING_BUILD, str(tmp_path), HELPERS, "0.3", timeout=90)
    assert out.strip() == "child 0", out


def test_timeouts_of_a_stalled_server_name_the_file(tmp_path: Path) -> None:
    """A server that stops answering: the read ends at the HTTP client's timeout (aiohttp's
    default is 5 minutes; one of 2 s here) with an error naming the file and the timeout. At
    open it said "not a readable HDF5 file (); check that it is complete (not truncated)", at a
    chunk read a bare TimeoutError()."""
    import functools
    import http.server
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
                time.sleep(8)  # past the first MiB (h5py's first block): no answer
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
    # every request must end within it, also the unstalled ones of the open on a loaded 2-core
    # machine (1 s left little room); the stalled ones take 4x that
    http_opts = {"client_kwargs": {"timeout": aiohttp.ClientTimeout(total=2)}}
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


def _self_signed(tmp_path: Path) -> tuple[str, str]:
    """A certificate and key for 127.0.0.1 that no client trusts."""
    import datetime

    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


def test_untrusted_certificate_is_a_transfer_error_not_a_missing_file(tmp_path: Path) -> None:
    """aiohttp's certificate failure is a ValueError (and an OSError): skipped like InvalidURL
    (a path that is no URL), an HTTPS server with an untrusted certificate said "HDF5 file not
    found". It is a failed connection, naming the file and the certificate error."""
    import functools
    import http.server
    import ssl
    import threading

    import fsspec

    sys.path.insert(0, HELPERS)
    from http_helpers import RangeHandler

    from b2store.hdf5.filesystem import TransferError

    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["d"] = np.arange(3)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*_self_signed(tmp_path))
    srv = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(tmp_path))
    )
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{srv.server_port}/s.h5"
    try:
        with pytest.raises(TransferError, match=r"s\.h5: .*CERTIFICATE_VERIFY_FAILED"):
            fsspec.filesystem("b2h5", fo=url)
    finally:
        srv.shutdown()
        srv.server_close()


def test_threads_reading_a_cached_tar_member_get_their_own_bytes(tmp_path: Path) -> None:
    """simplecache::tar://: zarr's threads read (and download) the member through the
    archive's one file object, each seeking it then reading: without the tar lock (it was
    only taken for a bare tar:: target) they got each other's bytes or none."""
    import tarfile
    from concurrent.futures import ThreadPoolExecutor

    import zarr

    data = np.arange(4_000_000.0).reshape(400, 10_000)
    with h5py.File(tmp_path / "g.h5", "w") as f:
        f.create_dataset("data", data=data, chunks=(10, 10_000))
    with tarfile.open(tmp_path / "g.tar", "w") as t:
        t.add(tmp_path / "g.h5", arcname="g.h5")
    for n in range(2):  # the second open (another cache folder) failed
        a = zarr.open_array(
            f"b2h5::simplecache::tar://g.h5::{tmp_path}/g.tar",
            path="data",
            mode="r",
            storage_options={"simplecache": {"cache_storage": str(tmp_path / f"cache{n}")}},
        )

        def same(i: int, a: zarr.Array = a) -> bool:
            return bool(np.array_equal(a[i * 10 : (i + 1) * 10], data[i * 10 : (i + 1) * 10]))

        with ThreadPoolExecutor(8) as ex:
            assert all(ex.map(same, range(40)))


_PARENT_READS_AFTER = (
    _SERVER
    + """
import aiohttp, fsspec
opts = {"client_kwargs": {"timeout": aiohttp.ClientTimeout(total=5)}}
fs = fsspec.filesystem("b2h5", fo=f"{BASE}/f.h5", target_options=opts)
assert len(fs.cat("data/c/0/0")) == 320000  # a pooled keep-alive connection in the parent

def child():
    assert len(fs.cat("data/c/1/0")) == 320000

def parent():
    for k in ("2/0", "3/0", "0/0"):
        assert len(fs.cat("data/c/" + k)) == 320000
"""
    + PARENT_AFTER_FORKED_CHILD
)


def test_parent_reads_after_a_child_read_a_remote_file(tmp_path: Path) -> None:
    """A child that reads through a filesystem opened over HTTP before the fork must leave the
    parent's connections (sockets and event-loop registrations shared by the fork) alone."""
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.create_dataset("data", data=np.arange(160_000.0).reshape(400, 400), chunks=(100, 400))
    out = run_script(_PARENT_READS_AFTER, str(tmp_path), HELPERS, timeout=90)
    # three reads in well under the 5 s timeout (a read stalled on a broken connection runs
    # into it and fails); not "parent 0": a loaded machine may take over 0.5 s for them
    assert re.fullmatch(r"parent [0-3]", out.strip()), out


_OPEN_FIFOS = """
import os, sys, h5py, numpy as np
from b2store.hdf5.filesystem import HDF5FileSystem
d = sys.argv[1]
os.mkfifo(f"{d}/pipe.h5")
with h5py.File(f"{d}/main.h5", "w") as f:
    f["here"] = np.arange(3)
    f["ext"] = h5py.ExternalLink("pipe.h5", "/data")
try:
    HDF5FileSystem(f"{d}/pipe.h5", skip_instance_cache=True)
except OSError as exc:
    print(type(exc).__name__, exc)
fs = HDF5FileSystem(f"{d}/main.h5", follow_external_links=True, skip_instance_cache=True)
print("note", [n for n in fs.notes if "pipe.h5" in n])
"""


def test_a_named_pipe_is_refused_not_waited_on(tmp_path: Path) -> None:
    """A named pipe (FIFO) given as the file, or named by an external link, hung the open
    forever (opening a FIFO for reading waits for a writer)."""
    out = run_script(_OPEN_FIFOS, str(tmp_path), timeout=60)
    assert "OSError" in out and "pipe.h5 is a named pipe (FIFO), not an HDF5 file" in out, out
    assert "note ['" in out and "named pipe" in out.split("note", 1)[1], out


_LINKED_TWICE = """
import sys, time, h5py, numpy as np
import b2store.hdf5.index as index
from b2store.hdf5.filesystem import HDF5FileSystem
index.ALIAS_NODE_LIMIT = 100  # 10 000 in use: a few seconds of walking
path = sys.argv[1] + "/dag.h5"
with h5py.File(path, "w") as f:
    f.create_dataset("g20/x", data=np.arange(3))
    for i in range(19, -1, -1):
        f[f"g{i}/a"] = f[f"g{i + 1}"]
        f[f"g{i}/b"] = f[f"g{i + 1}"]
    f.create_dataset("g0/plain", data=np.arange(4))
    f["g0/link_to_plain"] = h5py.SoftLink("/g0/plain")
    f["alias_of_g19"] = h5py.SoftLink("/g19")  # first in the root: g19 and g20 as seen here
t = time.monotonic()
fs = HDF5FileSystem(path, skip_instance_cache=True)
meta = fs.index.meta
print("seconds", time.monotonic() - t)
print("paths", len([k for k in meta if k.endswith("zarr.json")]))
print("x", np.frombuffer(fs.cat("alias_of_g19/a/x/c/0"), "<i8").tolist() == [0, 1, 2])
print("plain", "g0/plain/zarr.json" in meta, "g0/link_to_plain/zarr.json" in meta)
print("notes", sum("further paths" in n for n in fs.notes))
"""


def test_groups_linked_many_times_do_not_walk_forever(tmp_path: Path) -> None:
    """Groups hard-linked twice at each of 20 levels are a million paths: the walk at open
    never ended. Paths under further links to presented groups are now bounded (with a note
    for each link not followed); the file's own nodes and a few aliases still read."""
    out = run_script(_LINKED_TWICE, str(tmp_path), timeout=60)
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert float(lines["seconds"]) < 20, out
    assert int(lines["paths"]) < 400, out
    assert lines["x"] == "True" and lines["plain"] == "True True", out
    assert int(lines["notes"]) > 0, out


def _linked_views(path: Path, views: int, datasets: int = 40) -> None:
    """A group of ``datasets`` datasets hard-linked at ``views`` more paths (as NeXus writers
    do for NXdata), and a small group linked once more after them."""
    with h5py.File(path, "w") as f:
        g = f.create_group("raw")
        for i in range(datasets):
            g.create_dataset(f"d{i:04d}", data=np.full(3, i, "i2"))
        for k in range(views):
            f[f"view{k:02d}"] = g
        f.create_dataset("small/x", data=np.arange(3))
        f["zsmall"] = f["small"]


def test_a_group_linked_at_several_paths_is_shown_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound on paths under links to groups presented already cut a group in the middle:
    4000 datasets hard-linked at 4 more paths showed all 4000 arrays under three of them and
    1997 under the fourth, with no warning (here 40 datasets, the bound scaled down alike).
    The bound now grows with the file (ALIAS_FACTOR paths per distinct node)."""
    import warnings

    import zarr

    import b2store.hdf5.index as index
    from b2store.hdf5.filesystem import HDF5FileSystem

    monkeypatch.setattr(index, "ALIAS_NODE_LIMIT", 100)
    path = tmp_path / "views.h5"
    _linked_views(path, views=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fs = HDF5FileSystem(str(path), skip_instance_cache=True)
    assert not [n for n in fs.notes if "not presented" in n or "not followed" in n], fs.notes
    root = zarr.open_group(fs.get_mapper(), mode="r")
    for name in ("raw", "view00", "view01", "view02", "view03"):
        assert len(list(root[name].array_keys())) == 40, name
        assert root[f"{name}/d0039"][:].tolist() == [39, 39, 39]
    assert root["zsmall/x"][:].tolist() == [0, 1, 2]


def test_links_beyond_the_bound_leave_whole_groups_out_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once links present more further paths than the bound, each further link to a group is
    left out whole (never a part of the group), with a note naming where the group is shown
    and ONE UserWarning, at each open (also of an index from the cache), saying how many links
    were not followed and what to do."""
    import zarr

    import b2store.hdf5.index as index

    monkeypatch.setattr(index, "ALIAS_NODE_LIMIT", 100)
    monkeypatch.setattr(index, "ALIAS_FACTOR", 2)  # 43 distinct nodes: 100 further paths
    path = tmp_path / "many_views.h5"
    _linked_views(path, views=40)
    for _ in range(2):  # built, then from the process's index cache
        with pytest.warns(UserWarning) as record:
            root = zarr.open_group(f"b2h5::{path}", mode="r")
        messages = [str(w.message) for w in record]
        assert len(messages) == 1, messages
        assert messages[0].startswith(f"{path}: 38 link(s) to groups presented at other paths")
        assert "at most 100 further paths" in messages[0] and "h5py" in messages[0]
        fs = root.store.fs
        shown = {name: len(list(root[name].array_keys())) for name in root.group_keys()}
        # two views of 41 paths fit in 100; the small group's 2-path link still does
        assert shown == {"raw": 40, "small": 1, "view00": 40, "view01": 40, "zsmall": 1}, shown
        left_out = [n for n in fs.notes if "not presented" in n]
        assert len(left_out) == 38 and f"{path}:/view39: not presented" in left_out[-1]
        assert "the group presented as /raw" in left_out[-1]
