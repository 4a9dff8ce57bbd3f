"""Benchmark: read a uint16 tomography stack from a local Caterva2 server (not a test).

Compares, on the same ``.b2nd`` dataset served by a ``cat2-server`` started on 127.0.0.1:

* b2store ``caterva2://`` through ``xarray.open_zarr`` + dask (threaded scheduler): full read and
  plane slices, with a cold cache (empty folder), a warm cache (same folder, new filesystem
  instance) and no cache; the full read also through ``xr.open_dataset(url,
  engine="caterva2", chunks={})`` (whole chunks decoded without zarr's pipeline), cold and warm;
* ``caterva2.Client(url).fetch(path)`` (the Caterva2 client);
* ``blosc2.C2Array(path, urlbase=url)[...]``.

Targets (issue 4): cold full read at least 1.5x faster than the Caterva2 client; warm-cache read
at least 10x faster than the cold one. Results are printed as a Markdown table.

Usage::

    python benchmarks/caterva2_read.py                 # 150 x 1024 x 1024 uint16, ~300 MB
    python benchmarks/caterva2_read.py --small         # 24 x 512 x 512, a quick check
    python benchmarks/caterva2_read.py --angles 64 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blosc2
import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _stack(n: int, h: int, w: int) -> Any:
    from benchmarks._synthetic import iter_tomo_chunks

    return iter_tomo_chunks(n, h, w, chunk_angles=16)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(base: Path) -> tuple[subprocess.Popen[bytes], str]:
    exe = os.environ.get("CAT2_SERVER") or shutil.which("cat2-server")
    if not exe:
        sys.exit("cat2-server not found: pip install caterva2[server]")
    (base / "state" / "public").mkdir(parents=True, exist_ok=True)
    conf = base / "caterva2-server.toml"
    conf.write_text("[server]\nlogin = false\nregister = false\n")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "CATERVA2_SECRET"}
    log = open(base / "server.log", "wb")  # noqa: SIM115 (kept open for the server's lifetime)
    proc = subprocess.Popen(
        [exe, "--conf", str(conf), "--statedir", str(base / "state"),
         "--listen", f"127.0.0.1:{port}"],
        cwd=base, stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/api/roots", timeout=0.5).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    sys.exit(f"cat2-server did not start; see {base}/server.log")


def start_link(upstream: str, latency: float, mbps: float) -> str:
    """A loopback proxy emulating a network link: ``latency`` s per request, ``mbps`` MB/s shared.

    Runs an aiohttp server in a daemon thread and returns its URL. Transfers are serialised
    through one lock, so the bandwidth is the link's, not each connection's.
    """
    import asyncio
    import threading

    import aiohttp
    from aiohttp import web

    port = _free_port()
    ready = threading.Event()

    async def serve() -> None:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))
        link = asyncio.Lock()

        async def handle(request: web.Request) -> web.Response:
            await asyncio.sleep(latency)
            async with session.get(upstream + request.path_qs, headers={
                k: v for k, v in request.headers.items() if k.lower() in ("cookie", "range")
            }) as r:  # fmt: skip
                body = await r.read()
                headers = {k: v for k, v in r.headers.items() if k.lower() in ("etag",)}
                status, ctype = r.status, r.headers.get("Content-Type", "application/octet-stream")
            async with link:
                await asyncio.sleep(len(body) / (mbps * 1e6))
            return web.Response(
                body=body, status=status, headers={**headers, "Content-Type": ctype}
            )

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    threading.Thread(target=lambda: asyncio.run(serve()), daemon=True).start()
    ready.wait(10)
    return f"http://127.0.0.1:{port}"


def timed(
    fn: Callable[[], Any],
    repeat: int,
    setup: Callable[[], None] | None = None,
    *,
    expected: Any = None,
) -> float:
    """Best of ``repeat`` runs; with ``expected``, every run's result must equal it (a reader
    returning wrong values would otherwise be timed as if it were right)."""
    best = float("inf")
    for _ in range(repeat):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        got = fn()
        best = min(best, time.perf_counter() - t0)
        if expected is not None and not np.array_equal(np.asarray(got), expected):
            raise AssertionError("a timed read returned values that differ from the array written")
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--angles", type=int, default=150)
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--chunk-angles", type=int, default=2)
    p.add_argument("--block-rows", type=int, default=128)
    p.add_argument("--small", action="store_true", help="24 x 512 x 512 (quick check)")
    p.add_argument("--repeat", type=int, default=2, help="best of N for every measurement")
    p.add_argument("--planes", type=int, default=8, help="plane slices read per measurement")
    p.add_argument(
        "--dask-threads",
        type=int,
        default=None,
        help="dask threaded-scheduler workers (default: dask's, = CPU count)",
    )
    p.add_argument(
        "--link-mbps",
        type=float,
        default=0.0,
        help="emulate a network link of this many MB/s (shared) in front of the server",
    )
    p.add_argument(
        "--link-latency-ms",
        type=float,
        default=20.0,
        help="per-request latency of the emulated link",
    )
    args = p.parse_args(argv)
    import dask

    if args.dask_threads:
        dask.config.set(num_workers=args.dask_threads)
    if args.small:
        args.angles, args.height, args.width = 24, 512, 512

    import xarray as xr

    try:
        import caterva2
    except ImportError:  # the server may live in another environment (CAT2_SERVER)
        caterva2 = None

    shape = (args.angles, args.height, args.width)
    chunks = (args.chunk_angles, args.height, args.width)
    blocks = (1, min(args.block_rows, args.height), args.width)
    work = Path(tempfile.mkdtemp(prefix="b2store-c2bench-"))
    proc, url = start_server(work)
    server_url = url
    if args.link_mbps:
        url = start_link(server_url, args.link_latency_ms / 1000, args.link_mbps)
    try:
        target = work / "state" / "public" / "tomo" / "scan.b2nd"
        target.parent.mkdir(parents=True)
        arr = blosc2.empty(shape, dtype="u2", chunks=chunks, blocks=blocks, urlpath=str(target),
                           mode="w", cparams={"codec": blosc2.Codec.ZSTD, "clevel": 1,
                                              "filters": [blosc2.Filter.BITSHUFFLE]})  # fmt: skip
        for sl, slab in _stack(*shape):
            arr[sl] = slab
        expected = arr[...]
        nbytes = expected.nbytes
        cbytes = arr.schunk.cbytes
        host = url.split("://", 1)[1]
        dir_url = f"caterva2://{host}/@public/tomo"
        cache = work / "cache"
        rng = np.random.default_rng(1)
        planes = [int(i) for i in rng.integers(0, args.angles, size=args.planes)]

        def xr_full(opts: dict[str, Any]) -> Callable[[], np.ndarray]:
            def run() -> np.ndarray:
                ds = xr.open_zarr(dir_url, storage_options={**opts, "skip_instance_cache": True})
                return ds["scan.b2nd"].values

            return run

        def engine_full(opts: dict[str, Any]) -> Callable[[], np.ndarray]:
            def run() -> np.ndarray:
                so = {**opts, "skip_instance_cache": True}
                ds = xr.open_dataset(dir_url, engine="caterva2", chunks={}, storage_options=so)
                return ds["scan.b2nd"].values

            return run

        def xr_planes(opts: dict[str, Any]) -> Callable[[], list[np.ndarray]]:
            def run() -> list[np.ndarray]:
                ds = xr.open_zarr(dir_url, storage_options={**opts, "skip_instance_cache": True})
                return [ds["scan.b2nd"][i].values for i in planes]

            return run

        def clear() -> None:
            shutil.rmtree(cache, ignore_errors=True)

        cached = {"cache_storage": str(cache)}
        nocache = {"cache_storage": None}
        client = caterva2.Client(url, timeout=120) if caterva2 is not None else None
        c2 = blosc2.C2Array("@public/tomo/scan.b2nd", urlbase=url)
        planes_expected = np.stack([expected[i] for i in planes])

        # every timed read is compared with the array written above
        rows: list[tuple[str, float, int]] = []
        pbytes = args.planes * args.height * args.width * 2

        def add(name: str, fn: Callable[[], Any], full: bool, **kw: Any) -> float:
            want, size = (expected, nbytes) if full else (planes_expected, pbytes)
            seconds = timed(fn, args.repeat, expected=want, **kw)
            rows.append((name, seconds, size))
            return seconds

        if client is not None:
            add("caterva2.Client.fetch, full", lambda: client.fetch("@public/tomo/scan.b2nd"), True)
        add("blosc2.C2Array[...], full", lambda: c2[...], True)
        add("b2store xarray+dask, full, no cache", xr_full(nocache), True)
        cold = add("b2store xarray+dask, full, cold cache", xr_full(cached), True, setup=clear)
        warm = add("b2store xarray+dask, full, warm cache", xr_full(cached), True)
        e_cold = add('b2store xr.open_dataset(engine="caterva2")+dask, full, cold cache',
                     engine_full(cached), True, setup=clear)  # fmt: skip
        e_warm = add('b2store xr.open_dataset(engine="caterva2")+dask, full, warm cache',
                     engine_full(cached), True)  # fmt: skip
        if client is not None:
            add(
                f"caterva2.Client.fetch, {args.planes} planes",
                lambda: [client.fetch("@public/tomo/scan.b2nd", slice_=(i,)) for i in planes],
                False,
            )
        add(f"blosc2.C2Array[i], {args.planes} planes", lambda: [c2[i] for i in planes], False)
        add(f"b2store xarray, {args.planes} planes, cold cache", xr_planes(cached), False,
            setup=clear)  # fmt: skip
        add(f"b2store xarray, {args.planes} planes, warm cache", xr_planes(cached), False)
        link = (
            f"{args.link_mbps} MB/s + {args.link_latency_ms} ms" if args.link_mbps else "loopback"
        )
        print(f"\nstack {shape} uint16 = {nbytes / 1e6:.0f} MB, stored {cbytes / 1e6:.0f} MB "
              f"(ratio {nbytes / cbytes:.2f}); chunks {chunks}, blocks {blocks}; "
              f"best of {args.repeat}; link: {link}; python {sys.version.split()[0]}, "
              f"{os.cpu_count()} CPUs\n")  # fmt: skip
        print("| measurement | seconds | MB/s (decompressed) |")
        print("|---|---|---|")
        for name, secs, size in rows:
            print(f"| {name} | {secs:.3f} | {size / 1e6 / secs:.0f} |")
        if client is not None:
            c2time = rows[0][1]
            print(f"\ncold full read vs caterva2.Client: {c2time / cold:.2f}x (target >= 1.5x)")
            print(f"engine: cold full read vs caterva2.Client: {c2time / e_cold:.2f}x")
            client.close()
        else:
            print("\ncaterva2.Client: skipped: not installed (pip install caterva2)")
        print(f"warm vs cold full read: {cold / warm:.1f}x (target >= 10x)")
        print(f"engine: warm vs cold full read: {e_cold / e_warm:.1f}x; warm read vs "
              f"xr.open_zarr's warm read: {warm / e_warm:.2f}x")  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
