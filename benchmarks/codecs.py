"""Codec benchmark: compression ratio and encode/decode speed on a synthetic tomography stack.

Not a test. Compares, on the same chunks of a uint16 tomography stack (benchmarks._synthetic),
``b2store_b2nd`` (zstd/lz4 x shuffle/bitshuffle), the "itrunc + bitshuffle + zstd" recipe at several
error bounds, ``b2store_grok`` lossless and lossy, numcodecs ``Blosc`` (v1) and ``Zstd``, and
imagecodecs' ``Blosc2`` and ``Jpeg2k``. Every codec runs with its own threads set to 1 and is timed
through a ``ThreadPoolExecutor`` over chunks with 1 and 2 workers (as dask does); Blosc2-based
codecs are also timed with 1 worker and 2 Blosc2-internal threads. Each decode is checked
(lossless: exact; lossy: max abs error and PSNR reported).

Run from the repository root (``python3 benchmarks/codecs.py ...`` works too)::

    python3 -m benchmarks.codecs --size small          # seconds
    python3 -m benchmarks.codecs --size full --plot docs/img/codecs.png --json /tmp/codecs.json

It prints a Markdown table (pasted into docs/benchmarks.md ``## Codecs``) and the target checks.
Times are the best of ``--repeat`` encode and ``--decode-repeat`` decode runs; speeds are MB/s
of raw (uncompressed) data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

if not __package__:  # run as a script (python3 benchmarks/codecs.py), not imported
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._synthetic import tomo_stack

SIZES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    # name: (stack shape, chunk shape)
    "small": ((32, 256, 256), (2, 256, 256)),
    "medium": ((64, 512, 512), (4, 512, 512)),
    "full": ((128, 1024, 1024), (4, 1024, 1024)),
}


@dataclass(frozen=True, kw_only=True)
class Case:
    """One codec configuration of the benchmark."""

    name: str
    family: str
    lossy: bool
    make: Callable[[int], Any]  # nthreads -> codec object with encode/decode
    internal_threads: bool = False  # has Blosc2-internal threads worth timing
    slow: bool = False  # JPEG 2000: timed on a subset of the chunks (--slow-mb)


@dataclass(kw_only=True)
class Result:
    """Measurements of one case."""

    name: str
    family: str
    lossy: bool
    ratio: float
    max_abs_err: int
    psnr16: float
    enc_mbs: dict[str, float] = field(default_factory=dict)
    dec_mbs: dict[str, float] = field(default_factory=dict)
    gil_free: float | None = None
    dec_cpu_mbs: float = math.nan


class PerImage:
    """Adapter: code each 2-D image of an (N, H, W) chunk separately (imagecodecs Jpeg2k)."""

    def __init__(self, codec: Any) -> None:
        self.codec = codec

    def encode(self, chunk: np.ndarray) -> bytes:
        parts = [bytes(self.codec.encode(np.ascontiguousarray(img))) for img in chunk]
        head = np.array([len(chunk), *[len(p) for p in parts]], dtype="<u8").tobytes()
        return head + b"".join(parts)

    def decode(self, buf: bytes) -> np.ndarray:
        n = int(np.frombuffer(buf[:8], "<u8")[0])
        sizes = np.frombuffer(buf[8 : 8 * (n + 1)], "<u8").astype(int)
        pos, imgs = 8 * (n + 1), []
        for s in sizes:
            imgs.append(np.asarray(self.codec.decode(buf[pos : pos + s])))
            pos += s
        return np.stack(imgs)


def _cases(names: Sequence[str] | None) -> list[Case]:
    import numcodecs
    import numcodecs.blosc

    # numcodecs Blosc (v1) otherwise decodes with a process-global pool of blosc threads.
    numcodecs.blosc.set_nthreads(1)

    cases: list[Case] = []
    try:
        from b2store.codecs.b2nd import B2nd

        for cname in ("zstd", "lz4"):
            for filt in ("shuffle", "bitshuffle"):
                cases.append(
                    Case(
                        name=f"b2nd {cname} {filt}",
                        family="b2store_b2nd",
                        lossy=False,
                        make=lambda t, c=cname, f=filt: B2nd(
                            cname=c, clevel=5, filters=[{"id": f}], nthreads=t
                        ),
                        internal_threads=True,
                    )
                )
        # imagecodecs' Blosc2 encoder splits bitshuffled blocks (ALWAYS_SPLIT); b2nd's default
        # (AUTO_SPLIT) does not: this row compares the decoders on the same split
        cases.append(
            Case(
                name="b2nd zstd bitshuffle splitmode=always",
                family="b2store_b2nd",
                lossy=False,
                make=lambda t: B2nd(
                    cname="zstd",
                    clevel=5,
                    filters=[{"id": "bitshuffle"}],
                    nthreads=t,
                    splitmode="always",
                ),
                internal_threads=True,
            )
        )
        for err in (15, 63, 255):
            cases.append(
                Case(
                    name=f"b2nd itrunc<={err} bitshuffle zstd",
                    family="b2store_b2nd",
                    lossy=True,
                    make=lambda t, e=err: B2nd(
                        cname="zstd",
                        clevel=5,
                        filters=[{"id": "itrunc", "max_abs_error": e}, {"id": "bitshuffle"}],
                        nthreads=t,
                    ),
                    internal_threads=True,
                )
            )
    except ImportError as exc:
        print(f"# skipped b2store_b2nd: {exc}", file=sys.stderr)
    try:
        from b2store.codecs.grok import Grok

        Grok()
        for label, kw in (("lossless", {}), ("ratio=10", {"ratio": 10}), ("psnr=80", {"psnr": 80})):
            cases.append(
                Case(
                    name=f"grok {label}",
                    family="b2store_grok",
                    lossy=bool(kw),
                    make=lambda t, k=kw: Grok(nthreads=t, **k),  # type: ignore[arg-type]
                    internal_threads=True,
                    slow=True,
                )
            )
    except (ImportError, ValueError) as exc:
        print(f"# skipped b2store_grok: {exc}", file=sys.stderr)
    for cname in ("zstd", "lz4"):
        cases.append(
            Case(
                name=f"numcodecs Blosc {cname} shuffle",
                family="numcodecs",
                lossy=False,
                make=lambda t, c=cname: numcodecs.Blosc(cname=c, clevel=5, shuffle=1),
            )
        )
    cases.append(
        Case(
            name="numcodecs Zstd 5",
            family="numcodecs",
            lossy=False,
            make=lambda t: numcodecs.Zstd(level=5),
        )
    )
    try:
        from imagecodecs.numcodecs import Blosc2 as ICBlosc2
        from imagecodecs.numcodecs import Jpeg2k as ICJpeg2k

        for cname in ("zstd", "lz4"):
            for shuf, sname in ((1, "shuffle"), (2, "bitshuffle")):
                cases.append(
                    Case(
                        name=f"imagecodecs Blosc2 {cname} {sname}",
                        family="imagecodecs",
                        lossy=False,
                        make=lambda t, c=cname, s=shuf: ICBlosc2(
                            level=5, compressor=c, shuffle=s, typesize=2, numthreads=t
                        ),
                        internal_threads=True,
                    )
                )
        cases.append(
            Case(
                name="imagecodecs Jpeg2k lossless",
                family="imagecodecs",
                lossy=False,
                make=lambda t: PerImage(ICJpeg2k(level=None, numthreads=1)),
                slow=True,
            )
        )
        cases.append(
            Case(
                name="imagecodecs Jpeg2k psnr=80",
                family="imagecodecs",
                lossy=True,
                make=lambda t: PerImage(ICJpeg2k(level=80, numthreads=1)),
                slow=True,
            )
        )
    except ImportError:
        print("# skipped imagecodecs cases: imagecodecs not installed", file=sys.stderr)
    if names:
        cases = [c for c in cases if any(n.lower() in c.name.lower() for n in names)]
    return cases


def _as_chunk(decoded: Any, like: np.ndarray) -> np.ndarray:
    arr = np.asarray(decoded)
    if arr.dtype != like.dtype or arr.shape != like.shape:
        arr = np.frombuffer(memoryview(arr).cast("B"), dtype=like.dtype).reshape(like.shape)
    return arr


def run_case(
    case: Case, chunks: list[np.ndarray], *, repeat: int, decode_repeat: int = 0
) -> Result:
    """Measure one case: ratio, errors, and speeds for each threading variant.

    The variants are interleaved inside each repetition (1 worker, 2 workers, 1 worker + 2
    Blosc2 threads, then again) and the best time of each is kept, so a burst of load from other
    processes hurts every variant alike.
    """
    raw_mb = sum(c.nbytes for c in chunks) / 1e6
    variants: list[tuple[str, int, int]] = [("1w", 1, 1), ("2w", 2, 1)]
    if case.internal_threads:
        variants.append(("1w+2t", 1, 2))
    codecs = {label: case.make(nthreads) for label, _, nthreads in variants}
    pools = {label: ThreadPoolExecutor(workers) for label, workers, _ in variants}
    enc_t = dict.fromkeys(codecs, math.inf)
    dec_t = dict.fromkeys(codecs, math.inf)
    encoded: dict[str, list[bytes]] = {}
    decoded: dict[str, list[Any]] = {}
    try:
        for label, workers, _ in variants:  # warm up: plugin loading, thread start
            list(pools[label].map(codecs[label].encode, chunks[:workers]))
        for _ in range(repeat):
            for label in codecs:
                t0 = time.perf_counter()
                encoded[label] = list(pools[label].map(codecs[label].encode, chunks))
                enc_t[label] = min(enc_t[label], time.perf_counter() - t0)
        for _ in range(max(repeat, decode_repeat)):  # decoding is cheap: more tries, less noise
            for label in codecs:
                t0 = time.perf_counter()
                decoded[label] = list(pools[label].map(codecs[label].decode, encoded[label]))
                dec_t[label] = min(dec_t[label], time.perf_counter() - t0)
    finally:
        for pool in pools.values():
            pool.shutdown()
    # CPU time of a serial 1-thread decode: what decoding costs, whatever else runs on the box.
    cpu = math.inf
    for _ in range(3):
        c0 = time.thread_time()
        for e in encoded["1w"]:
            codecs["1w"].decode(e)
        cpu = min(cpu, time.thread_time() - c0)
    enc_mbs = {k: raw_mb / t for k, t in enc_t.items()}
    dec_mbs = {k: raw_mb / t for k, t in dec_t.items()}
    encoded_1w = encoded["1w"]
    # every timed variant's output is checked against the input, not only the last one timed
    errs = {}
    for label, outs in decoded.items():
        arrays = [_as_chunk(d, c) for d, c in zip(outs, chunks, strict=True)]
        errs[label] = max(
            int(np.abs(d.astype(np.int64) - c).max()) for d, c in zip(arrays, chunks, strict=True)
        )
        if not case.lossy and errs[label]:
            raise AssertionError(
                f"{case.name} is lossless but its {label} decode has max abs error {errs[label]}"
            )
    err = max(errs.values())
    decoded_arrays = [_as_chunk(d, c) for d, c in zip(decoded["1w"], chunks, strict=True)]
    mse = float(
        np.mean(
            np.concatenate(
                [
                    ((d.astype(np.float64) - c) ** 2).ravel()
                    for d, c in zip(decoded_arrays, chunks, strict=True)
                ]
            )
        )
    )
    return Result(
        name=case.name,
        family=case.family,
        lossy=case.lossy,
        ratio=sum(c.nbytes for c in chunks) / sum(len(e) for e in encoded_1w),
        max_abs_err=err,
        psnr16=math.inf if mse == 0 else 10 * math.log10(65535.0**2 / mse),
        enc_mbs=enc_mbs,
        dec_mbs=dec_mbs,
        dec_cpu_mbs=raw_mb / cpu if cpu > 0 else math.inf,
    )


def gil_free_fraction(case: Case, chunks: list[np.ndarray], seconds: float = 1.0) -> float:
    """Progress of a pure-Python thread while another thread decodes, relative to idle.

    About 1.0 means decoding leaves the GIL free (given a spare core); about 0.5 or less means
    it holds the GIL much of the time, so threads cannot decode in parallel. Load from other
    processes lowers both runs alike, but the number is only indicative.
    """
    codec = case.make(1)
    encoded = [codec.encode(c) for c in chunks]
    stop = threading.Event()

    def spin() -> int:
        n, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            n += 1
        return n

    def decode_forever() -> None:
        while not stop.is_set():
            for e in encoded:
                codec.decode(e)

    idle = spin()
    worker = threading.Thread(target=decode_forever)
    worker.start()
    try:
        time.sleep(0.05)
        busy = spin()
    finally:
        stop.set()
        worker.join()
    return busy / idle


def markdown(results: list[Result]) -> str:
    """Render the results as a Markdown table."""
    head = (
        "| codec | ratio | max err | PSNR16 dB | enc 1w | enc 2w | dec 1w | dec 2w | dec 2w/1w "
        "| dec 1w+2t | dec CPU | GIL free |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in results:
        psnr = "∞" if math.isinf(r.psnr16) else f"{r.psnr16:.1f}"
        it = r.dec_mbs.get("1w+2t")
        rows.append(
            f"| {r.name} | {r.ratio:.2f} | {r.max_abs_err} | {psnr} | {r.enc_mbs['1w']:.0f} | "
            f"{r.enc_mbs['2w']:.0f} | {r.dec_mbs['1w']:.0f} | {r.dec_mbs['2w']:.0f} | "
            f"{r.dec_mbs['2w'] / r.dec_mbs['1w']:.2f} | {'' if it is None else f'{it:.0f}'} | "
            f"{r.dec_cpu_mbs:.0f} | "
            f"{'' if r.gil_free is None else f'{r.gil_free:.2f}'} |"
        )
    return head + "\n".join(rows) + "\n"


def targets(results: list[Result]) -> list[str]:
    """The two issue targets, checked honestly (PASS/FAIL lines)."""
    by = {r.name: r for r in results}
    lines = []
    pairs_to_check = [
        (f"b2nd {cname} {filt}", f"imagecodecs Blosc2 {cname} {filt}")
        for cname in ("zstd", "lz4")
        for filt in ("shuffle", "bitshuffle")
    ]
    pairs_to_check.append(
        ("b2nd zstd bitshuffle splitmode=always", "imagecodecs Blosc2 zstd bitshuffle")
    )
    for ours_name, theirs_name in pairs_to_check:
        ours, theirs = by.get(ours_name), by.get(theirs_name)
        if ours and theirs:
            pairs = [(v, ours.dec_mbs[v], theirs.dec_mbs[v]) for v in ("1w", "2w")]
            pairs.append(("CPU", ours.dec_cpu_mbs, theirs.dec_cpu_mbs))
            for v, a, b in pairs:
                ok = "PASS" if a >= b else "FAIL"
                lines.append(
                    f"{ok}: {ours_name} decode {v} {a:.0f} MB/s vs {theirs_name} "
                    f"{b:.0f} MB/s ({a / b:.2f}x)"
                )
    for r in results:
        if r.family == "b2store_b2nd":
            s = r.dec_mbs["2w"] / r.dec_mbs["1w"]
            lines.append(
                f"{'PASS' if s >= 1.7 else 'FAIL'}: {r.name} decode 2 workers / 1 worker = {s:.2f}x"
                " (target >= 1.7x)"
            )
    return lines


def plot(results: list[Result], path: str, title: str) -> None:
    """Ratio vs 2-worker decode speed (left) and 1- vs 2-worker decode speed (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {
        "b2store_b2nd": "tab:blue",
        "b2store_grok": "tab:purple",
        "numcodecs": "tab:green",
        "imagecodecs": "tab:orange",
    }
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 6.5))
    for r in results:
        ax1.scatter(
            r.ratio,
            r.dec_mbs["2w"],
            color=colors[r.family],
            marker="x" if r.lossy else "o",
            s=50,
        )
        ax1.annotate(
            r.name,
            (r.ratio, r.dec_mbs["2w"]),
            fontsize=7,
            xytext=(4, 2),
            textcoords="offset points",
        )
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("compression ratio (log)")
    ax1.set_ylabel("decode MB/s, 2 workers (log)")
    ax1.set_title("ratio vs decode speed (o lossless, x lossy)")
    ax1.grid(True, which="both", alpha=0.3)
    y = np.arange(len(results))
    d1 = [r.dec_mbs["1w"] for r in results]
    d2 = [r.dec_mbs["2w"] for r in results]
    ax2.barh(y - 0.2, d1, height=0.4, label="1 worker", color="0.6")
    ax2.barh(y + 0.2, d2, height=0.4, label="2 workers", color=[colors[r.family] for r in results])
    ax2.set_yticks(y, [r.name for r in results], fontsize=7)
    ax2.invert_yaxis()
    ax2.set_xscale("log")
    ax2.set_xlabel("decode MB/s (log)")
    ax2.legend(loc="lower right")
    ax2.set_title("decode speed, ThreadPoolExecutor over chunks")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs (default 3)")
    ap.add_argument(
        "--decode-repeat",
        type=int,
        default=10,
        help="best of N decode runs (default 10; at least --repeat)",
    )
    ap.add_argument("--only", nargs="*", help="substrings of case names to run")
    ap.add_argument(
        "--slow-mb",
        type=float,
        default=8.0,
        help="JPEG 2000 cases run on the first chunks totalling about this many MB (default 8)",
    )
    ap.add_argument(
        "--gil", action="store_true", help="also measure the GIL-free fraction of decoding"
    )
    ap.add_argument("--plot", help="write a PNG plot here")
    ap.add_argument("--json", help="write raw results as JSON here")
    args = ap.parse_args(argv)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            ap.error("--plot needs matplotlib: pip install matplotlib")
    shape, cshape = SIZES[args.size]
    data = tomo_stack(*shape, seed=0)
    chunks = [np.ascontiguousarray(data[i : i + cshape[0]]) for i in range(0, shape[0], cshape[0])]
    import blosc2
    import numcodecs

    env = (
        f"Python {platform.python_version()}, blosc2 {blosc2.__version__}, numcodecs "
        f"{numcodecs.__version__}, {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}"
    )
    title = (
        f"synthetic tomography stack {shape} uint16 ({data.nbytes / 1e6:.0f} MB), "
        f"chunks {cshape}; {env}"
    )
    print(f"# {title}")
    print(f"# command: python3 -m benchmarks.codecs {' '.join(argv or sys.argv[1:])}")
    results = []
    for case in _cases(args.only):
        t0 = time.perf_counter()
        subset = chunks
        if case.slow:
            subset = chunks[: max(2, int(args.slow_mb * 1e6 // chunks[0].nbytes))]
        results.append(run_case(case, subset, repeat=args.repeat, decode_repeat=args.decode_repeat))
        if args.gil:
            results[-1].gil_free = gil_free_fraction(case, subset[:4])
        if len(subset) < len(chunks):
            results[-1].name += f" ({len(subset)} of {len(chunks)} chunks)"
        print(f"# {case.name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    print()
    print(markdown(results))
    for line in targets(results):
        print(line)
    if args.plot:
        plot(results, args.plot, title)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"title": title, "results": [asdict(r) for r in results]}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
