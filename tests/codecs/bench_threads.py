"""Measure (not a test): does b2nd decoding scale across threads, i.e. is the GIL released?

Usage::

    python3 tests/codecs/bench_threads.py [--chunks 48] [--repeat 5]

Decodes the same set of 1-chunk b2nd frames (noisy uint16 tomography slabs, 1 MiB each) with a
thread pool of 1 and of 2 workers, via ``decode_b2nd`` directly (with the GIL released and,
for comparison, held) and through zarr v3 + dask
(threads scheduler), and prints the best-of-N wall times and the 2-thread speed-up. For
reference it also times imagecodecs' Blosc2 decoder on plain chunks of the same data.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from b2store.codecs.b2nd import B2nd, decode_b2nd


def stack(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:512, 0:1024]
    disc = ((yy - 256) ** 2 + (xx - 512) ** 2 < 200**2) * 20000 + 800
    return (disc[None] + rng.normal(0, 40, (n, 512, 1024))).astype("u2")


def best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def gil_probe(repeat: int = 2) -> None:
    """Load-independent check: does a Python thread progress while one big decode runs?"""
    import threading

    import blosc2

    data = stack(64)  # 64 MiB decoded as one chunk of 64 slabs
    frame = B2nd(blocks=[1, 64, 1024]).encode(data)
    for release in (False, True) * repeat:
        blosc2.set_releasegil(release)
        state = {"count": 0, "stop": 0}

        def spin(state: dict[str, int] = state) -> None:
            while not state["stop"]:
                state["count"] += 1

        t = threading.Thread(target=spin)
        t.start()
        time.sleep(0.02)
        c0, t0 = state["count"], time.perf_counter()
        decode_b2nd(frame, dtype="u2")
        elapsed, c1 = time.perf_counter() - t0, state["count"]
        state["stop"] = 1
        t.join()
        print(
            f"GIL probe releasegil={release!s:5}  one {data.nbytes / 2**20:.0f} MiB decode "
            f"{elapsed * 1e3:.0f} ms; another Python thread looped {c1 - c0} times meanwhile"
        )
    blosc2.set_releasegil(True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    gil_probe()
    data = stack(args.chunks)
    codec = B2nd(filters=["shuffle"], blocks=[1, 64, 1024])
    frames = [codec.encode(data[i : i + 1]) for i in range(args.chunks)]
    mb = data.nbytes / 1e6
    print(
        f"{args.chunks} chunks x {data[0].nbytes / 2**20:.1f} MiB, ratio "
        f"{data.nbytes / sum(map(len, frames)):.2f}"
    )

    def run(workers: int) -> None:
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(lambda f: decode_b2nd(f, dtype="u2"), frames))

    import blosc2

    for release in (False, True):  # A/B under the same machine load
        blosc2.set_releasegil(release)
        t1 = best(lambda: run(1), args.repeat)
        c0, w0 = time.process_time(), time.perf_counter()
        t2 = best(lambda: run(2), args.repeat)
        util = (time.process_time() - c0) / (time.perf_counter() - w0)
        print(
            f"decode_b2nd releasegil={release!s:5}  1 thread {t1:.3f}s ({mb / t1:.0f} MB/s)  "
            f"2 threads {t2:.3f}s ({mb / t2:.0f} MB/s)  speed-up {t1 / t2:.2f}x  "
            f"cpu/wall at 2 threads {util:.2f}"
        )
    blosc2.set_releasegil(True)

    import dask
    import dask.array as da
    import zarr
    import zarr.storage

    from b2store.codecs.zarr3 import B2ndCodec

    z = zarr.create_array(
        zarr.storage.MemoryStore(),
        shape=data.shape,
        chunks=(1, 512, 1024),
        dtype="u2",
        serializer=B2ndCodec(blocks=(1, 64, 1024)),
        compressors=None,
    )
    z[...] = data
    arr = da.from_zarr(z)
    d1 = best(lambda: dask.compute(arr.sum(), scheduler="threads", num_workers=1), args.repeat)
    d2 = best(lambda: dask.compute(arr.sum(), scheduler="threads", num_workers=2), args.repeat)
    print(f"zarr+dask    1 worker {d1:.3f}s  2 workers {d2:.3f}s  speed-up {d1 / d2:.2f}x")

    try:
        from imagecodecs import blosc2_decode, blosc2_encode
    except ImportError:
        return
    plain = [
        blosc2_encode(
            data[i], level=5, compressor="zstd", shuffle=1, typesize=2, blocksize=64 * 1024 * 2
        )
        for i in range(args.chunks)
    ]

    def run_ic(workers: int) -> None:
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(blosc2_decode, plain))

    def cpu(fn, items) -> float:  # type: ignore[no-untyped-def]
        out = []
        for _ in range(args.repeat):
            c0 = time.thread_time()
            for x in items:
                fn(x)
            out.append(time.thread_time() - c0)
        return min(out)

    cb = cpu(lambda f: decode_b2nd(f, dtype="u2"), frames)
    ci = cpu(lambda c: blosc2_decode(c, numthreads=1), plain)
    print(
        f"1-thread CPU time (load-insensitive): decode_b2nd {cb:.3f}s ({mb / cb:.0f} MB/s), "
        f"imagecodecs blosc2_decode {ci:.3f}s ({mb / ci:.0f} MB/s): ratio {ci / cb:.2f}"
    )
    i1, i2 = best(lambda: run_ic(1), args.repeat), best(lambda: run_ic(2), args.repeat)
    print(
        f"imagecodecs  1 thread {i1:.3f}s ({mb / i1:.0f} MB/s)  2 threads {i2:.3f}s "
        f"({mb / i2:.0f} MB/s)  speed-up {i1 / i2:.2f}x"
    )


if __name__ == "__main__":
    main()
