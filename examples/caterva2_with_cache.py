"""Read a Caterva2 dataset with b2store's chunk cache (starts a local cat2-server itself).

Starts ``cat2-server`` on a free 127.0.0.1 port with its state in a temporary folder, publishes a
small b2nd tomography stack in the ``@public`` root, then reads it twice with
``xr.open_zarr("caterva2://...")``: the first read downloads the chunks and stores them in a
local cache folder, the second is served from the cache; a third reads it from the cache through
``xr.open_dataset(url, engine="caterva2", chunks={})`` (whole chunks decoded without zarr's
pipeline). Prints the timings and the number of files in the cache, and checks the values
against the array that was published.

Run: ``python examples/caterva2_with_cache.py`` (prints a message and exits 0 when cat2-server is
not installed: ``pip install 'caterva2[server]'``; ``CAT2_SERVER`` may name one in another
environment). The server is stopped and its temporary folder removed at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import blosc2
import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(base: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    exe = os.environ.get("CAT2_SERVER") or shutil.which("cat2-server")
    if exe is None:
        print("cat2-server not found: pip install 'caterva2[server]' -- skipping this example")
        sys.exit(0)
    state = base / "state"
    (state / "public").mkdir(parents=True)
    conf = base / "caterva2-server.toml"
    conf.write_text("[server]\nlogin = false\nregister = false\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "CATERVA2_SECRET"}
    with open(base / "server.log", "wb") as log:  # the child keeps its own descriptor
        try:
            proc = subprocess.Popen(
                [
                    exe,
                    "--conf",
                    str(conf),
                    "--statedir",
                    str(state),
                    "--listen",
                    f"127.0.0.1:{port}",
                ],
                cwd=base,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        except OSError as exc:  # CAT2_SERVER names a missing file, a folder, a non-executable
            sys.exit(
                f"cannot run cat2-server {exe!r} ({exc.strerror}): set CAT2_SERVER to the "
                "cat2-server executable, or unset it to use the one on PATH"
            )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            tail = (base / "server.log").read_text(errors="replace").strip().splitlines()
            last = tail[-1] if tail else "no output"
            sys.exit(f"cat2-server {exe!r} exited with status {proc.returncode} at start: {last}")
        try:
            with urllib.request.urlopen(f"{url}/api/roots", timeout=0.5) as r:
                if r.status == 200:
                    return proc, f"127.0.0.1:{port}", state / "public"
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.terminate()
            proc.wait(timeout=10)
            sys.exit(f"cat2-server {exe!r} did not answer on {url} within 60 s")
        time.sleep(0.2)


def main() -> None:
    if len(sys.argv) > 1:  # no arguments: say so rather than ignore them
        if sys.argv[1] in ("-h", "--help"):
            print(__doc__)
            return
        sys.exit(f"usage: python {sys.argv[0]}  (takes no arguments; got {sys.argv[1:]})")
    with tempfile.TemporaryDirectory(prefix="b2store-example-") as tmp:
        run(Path(tmp))


def run(base: Path) -> None:
    import xarray as xr

    proc, host, public = start_server(base)
    try:
        rng = np.random.default_rng(0)
        stack = (1000 + rng.normal(0, 40, (16, 256, 256))).astype("u2")
        blosc2.asarray(
            stack, chunks=(4, 128, 128), blocks=(1, 64, 128),
            urlpath=str(public / "tomo.b2nd"), mode="w",
        )  # fmt: skip
        cache = base / "chunk-cache"
        url = f"caterva2://{host}/@public/tomo.b2nd"
        opts = {"cache_storage": str(cache)}
        for attempt in ("first read (server)", "second read (cache)", "third read (engine)"):
            t0 = time.perf_counter()
            if attempt.startswith("third"):  # whole chunks decoded without zarr's pipeline
                ds = xr.open_dataset(url, engine="caterva2", chunks={}, storage_options=opts)
            else:
                ds = xr.open_zarr(url, storage_options=opts)
            values = ds["tomo.b2nd"].values
            dt = time.perf_counter() - t0
            ncached = sum(1 for p in cache.rglob("*") if p.is_file())
            print(f"{attempt}: {dt:.3f} s, {ncached} files in the cache")
            np.testing.assert_array_equal(values, stack)
        print("values identical to the published array: OK")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
