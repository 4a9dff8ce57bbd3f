"""Benchmark: Blosc2 HDF5 files read through b2store's ``b2h5`` view vs the tools users would pick.

Not a test: run it by hand (or through ``b2store bench``) and read the ratios. Every tool reads the
same files in one run, in the same process, best of ``--repeat`` runs:

* full read of a uint16 tomography stack written with hdf5plugin's Blosc2 filter (zstd + shuffle
  and lz4 + shuffle): h5py + hdf5plugin (``ds[...]``, the HDF5 filter pipeline), b2h5py,
  kerchunk + zarr (where kerchunk can read the file), b2store through
  ``xarray.open_zarr("b2h5::...")`` + dask, and the ceiling: decompressing every raw chunk with
  blosc2 on 2 threads (bytes already in memory);
* orthogonal planes (constant index along dim 0, 1 and 2);
* a gzip + shuffle netCDF4 file: h5py, kerchunk + zarr, b2store;
* opening a file with 100,000 chunks, cold and with the cached index;
* peak memory of a dask mean over the stack (in a subprocess, from ``ru_maxrss``).

Usage::

    python benchmarks/hdf5_read.py --size small      # seconds, for a smoke run
    python benchmarks/hdf5_read.py --size full   # ~500 MB stack: the numbers in docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._synthetic import iter_tomo_chunks  # noqa: E402

SIZES = {
    # n_angles, height, width, chunk angles
    "small": (32, 256, 512, 4),
    "full": (240, 1024, 1024, 4),
}
THREADS = 2
CEIL = "ceiling: blosc2 decompress, 2 threads"
CEIL_C = "ceiling, C order: ndarray_from_cframe[...], 2 threads"
ENGINE = 'b2store (xr.open_dataset(engine="b2h5") + dask)'


def have(module: str) -> bool:
    """Whether an optional tool is importable (b2h5py, kerchunk: the rows are skipped if not)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def skipped(tool: str, pip: str) -> str:
    return f"* {tool}: skipped: not installed (pip install {pip})"


def check(name: str, got: np.ndarray, ref: np.ndarray) -> bool:
    """A timed reader must return the reference values, or its time means nothing: b2store's
    readers abort the run, another tool's reader is reported and left out (returns False)."""
    if got.shape == ref.shape and np.array_equal(got, ref):
        return True
    if name.startswith("b2store"):
        raise AssertionError(f"{name} returned values that differ from h5py's")
    print(f"# {name}: values differ from h5py's: not timed", file=sys.stderr)
    return False


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


class Timing:
    """Wall and CPU seconds (``time.process_time``: all threads) of the runs of one reader."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    @property
    def best(self) -> float:
        return min(self.wall)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_best(self) -> float:
        return min(self.cpu)


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, Timing]:
    """Run every reader once per round, ``repeat`` rounds (a shared machine's load then hits
    all readers alike); one untimed warm-up round first."""
    out = {k: Timing() for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeat):
        for k, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            out[k].wall.append(time.perf_counter() - t0)
            out[k].cpu.append(time.process_time() - c0)
    return out


# --------------------------------------------------------------------------- data


def write_stack(path: Path, shape: tuple[int, int, int], chunk_n: int, cname: str) -> None:
    import h5py
    import hdf5plugin

    if path.exists():
        return
    n, h, w = shape
    tmp = path.with_suffix(".tmp")
    with h5py.File(tmp, "w") as f:
        ds = f.create_dataset(
            "data",
            shape=shape,
            dtype="u2",
            chunks=(chunk_n, h, w),
            **hdf5plugin.Blosc2(cname=cname, clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE),
        )
        dark = max(1, n // 10)  # sparse: the first and last 10 % of the angles are empty frames
        for sl, block in iter_tomo_chunks(n, h, w, chunk_angles=chunk_n):
            block = block.copy()
            for j in range(block.shape[0]):
                if sl.start + j < dark or sl.start + j >= n - dark:
                    block[j] = 0
            ds[sl] = block
        f["data"].attrs["units"] = "counts"
    tmp.rename(path)


def write_netcdf(path: Path, shape: tuple[int, int, int]) -> None:
    import netCDF4

    if path.exists():
        return
    n, h, w = shape
    tmp = path.with_suffix(".tmp")
    with netCDF4.Dataset(tmp, "w") as nc:
        for name, size in zip(("angle", "y", "x"), shape, strict=True):
            nc.createDimension(name, size)
        v = nc.createVariable(
            "data",
            "f4",
            ("angle", "y", "x"),
            zlib=True,
            shuffle=True,
            complevel=4,
            chunksizes=(1, h, w),
        )
        for sl, block in iter_tomo_chunks(n, h, w, chunk_angles=8):
            v[sl] = block.astype("f4") / 1000.0
    tmp.rename(path)


def write_many_chunks(path: Path) -> None:
    """A dataset with exactly 100,000 allocated chunks."""
    import h5py

    if path.exists():
        return
    tmp = path.with_suffix(".tmp")
    with h5py.File(tmp, "w") as f:
        ds = f.create_dataset("many", shape=(1000, 100, 100), dtype="u1", chunks=(1, 10, 10))
        ds[...] = 1
    tmp.rename(path)


# --------------------------------------------------------------------------- readers


def read_h5py(path: Path, sel: Any = Ellipsis) -> np.ndarray:
    import h5py
    import hdf5plugin  # noqa: F401

    with h5py.File(path, "r") as f:
        return f["data"][sel]


def read_b2h5py(path: Path, sel: Any = Ellipsis) -> np.ndarray:
    import b2h5py
    import h5py
    import hdf5plugin  # noqa: F401

    with h5py.File(path, "r") as f:
        return b2h5py.B2Dataset(f["data"])[sel]


def read_b2store_xarray(path: Path, chunks: Any = None) -> np.ndarray:
    """``xr.open_zarr("b2h5::…")["data"].values``; *chunks* as for open_zarr (None: its default,
    one dask task per Zarr chunk)."""
    import dask
    import xarray as xr

    kw = {} if chunks is None else {"chunks": chunks}
    with dask.config.set(scheduler="threads", num_workers=THREADS):
        ds = xr.open_zarr(f"b2h5::{path}", **kw)
        return ds["data"].values


def read_b2store_engine(path: Path) -> np.ndarray:
    """``xr.open_dataset(path, engine="b2h5", chunks={})["data"].values``: one dask task per
    HDF5 chunk, whole Blosc2 chunks decoded without zarr's pipeline (docs/hdf5.md)."""
    import dask
    import xarray as xr

    with dask.config.set(scheduler="threads", num_workers=THREADS):
        ds = xr.open_dataset(path, engine="b2h5", chunks={})
        return ds["data"].values


def read_b2store_xarray_plane(path: Path, sel: Any) -> np.ndarray:
    import dask
    import xarray as xr

    with dask.config.set(scheduler="threads", num_workers=THREADS):
        ds = xr.open_zarr(f"b2h5::{path}")
        return ds["data"][sel].values


def read_b2store_zarr(path: Path, sel: Any) -> np.ndarray:
    import zarr

    a = zarr.open_array(f"b2h5::{path}", path="data", mode="r")
    return a[sel]


def kerchunk_refs(path: Path) -> dict[str, Any] | None:
    import gc

    from kerchunk.hdf import SingleHdf5ToZarr

    gc.disable()  # kerchunk + zarr 3 deadlock workaround (hdf5-chunks.md pitfall 10)
    try:
        # kerchunk warns with a whole traceback about every filter it cannot express (Blosc2):
        # the table says "cannot read" instead
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            refs = SingleHdf5ToZarr(str(path), inline_threshold=0).translate()
    finally:
        gc.enable()
    return refs if any(k.startswith("data/") and k[5:6].isdigit() for k in refs["refs"]) else None


def read_kerchunk(refs: dict[str, Any]) -> np.ndarray:
    import dask
    import xarray as xr

    with dask.config.set(scheduler="threads", num_workers=THREADS):
        ds = xr.open_dataset(
            "reference://",
            engine="zarr",
            backend_kwargs={
                "storage_options": {"fo": refs, "remote_protocol": "file"},
                "consolidated": False,
                "zarr_format": 2,
            },
            chunks={},
        )
        return ds["data"].values


def raw_chunks(path: Path) -> tuple[list[bytes], tuple[int, ...]]:
    """Every allocated chunk's raw (still compressed) bytes, and the chunk shape."""
    import h5py

    raws: list[bytes] = []
    with h5py.File(path, "r") as f:
        ds = f["data"]

        def grab(info: Any) -> None:
            raws.append(ds.id.read_direct_chunk(info.chunk_offset)[1])

        ds.id.chunk_iter(grab)
        return raws, tuple(ds.chunks)


def ceiling(path: Path) -> Callable[[], None]:
    """Decompress every raw chunk with blosc2 on THREADS threads (bytes preloaded).

    The output stays in Blosc2 block order (not C order): an upper bound no reader reaches.
    Frame-level special chunks (all zeros, no bytes stored) cost an ``np.zeros``.
    """
    import blosc2

    from b2store.codecs._blosc2frame import parse_frame

    raws, chunks = raw_chunks(path)
    inner: list[bytes | None] = []
    for raw in raws:
        info = parse_frame(raw)
        inner.append(
            raw[info.header_size : info.header_size + info.cbytes] if info.cbytes else None
        )
    nbytes = int(np.prod(chunks)) * 2
    blosc2.set_releasegil(True)

    def one(chunk: bytes | None) -> Any:
        return np.zeros(nbytes, np.uint8) if chunk is None else blosc2.decompress2(chunk)

    def run() -> None:
        with ThreadPoolExecutor(THREADS) as ex:
            list(ex.map(one, inner))

    return run


def ceiling_c_order(path: Path) -> Callable[[], None]:
    """The honest ceiling: C-ordered decode ``ndarray_from_cframe(raw)[...]`` on THREADS threads.

    python-blosc2 holds the GIL inside ``NDArray[...]``, so the threads mostly take turns.
    """
    import blosc2

    raws, _ = raw_chunks(path)

    def run() -> None:
        with ThreadPoolExecutor(THREADS) as ex:
            list(ex.map(lambda r: blosc2.ndarray_from_cframe(r)[...], raws))

    return run


# --------------------------------------------------------------------------- peak memory


PEAK_CODE = r"""
import json, resource, sys, dask, xarray as xr

def status(field):
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])  # KiB
    except OSError:
        return None

path = sys.argv[1]
if path == "synthetic":  # the same dask mean without any I/O: dask's own share of the peak
    import dask.array as da
    import numpy as np

    like = xr.open_zarr(f"b2h5::{sys.argv[3]}")["data"]
    blank = da.zeros(like.shape, chunks=like.data.chunks, dtype=like.dtype)
    var = xr.DataArray(blank.map_blocks(lambda b: b + 1, dtype=like.dtype), dims=like.dims)
elif sys.argv[3:] == ["engine"]:
    var = xr.open_dataset(path, engine="b2h5", chunks={})["data"]
else:
    var = xr.open_zarr(f"b2h5::{path}")["data"]
with dask.config.set(scheduler="threads", num_workers=int(sys.argv[2])):
    var[:1, :1, :1].values  # warm: imports, codec set-up, one chunk decoded
    reset = False
    try:  # Linux: writing 5 resets the peak RSS (VmHWM) to the current RSS
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        reset = True
    except OSError:
        pass
    if reset and status("VmRSS") is not None:
        base = status("VmRSS")
        m = var.mean(var.dims[0]).values
        peak = status("VmHWM")
        how = "VmHWM after clear_refs"
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        m = var.mean(var.dims[0]).values
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        how = "ru_maxrss"
    # the same mean again under tracemalloc: the live numpy/Python memory at its peak, without
    # what the allocator keeps mapped after a free (which the high-water mark includes)
    import tracemalloc

    tracemalloc.start()
    var.mean(var.dims[0]).values
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
print(json.dumps({"base_kib": base, "peak_kib": peak, "result_bytes": m.nbytes, "how": how,
                  "traced_peak_bytes": traced}))
"""


def peak_memory(path: Path, synthetic: bool = False, engine: bool = False) -> dict[str, Any]:
    # The growth of the high-water mark over the warm state (one chunk read) is what the reduction
    # needs: decoded chunks in flight, dask's partial sums and the result. ``synthetic`` runs the
    # same reduction over generated chunks of the same shape (no I/O, no decoding); ``engine``
    # opens the file with xr.open_dataset(engine="b2h5", chunks={}) instead of xr.open_zarr.
    args = ["synthetic", str(THREADS), str(path)] if synthetic else [str(path), str(THREADS)]
    args += ["engine"] if engine and not synthetic else []
    out = subprocess.run(
        [sys.executable, "-c", PEAK_CODE, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- main


def fmt_row(name: str, seconds: float, nbytes: int, ref: float | None) -> str:
    mbps = nbytes / seconds / 1e6
    ratio = f"{ref / seconds:.2f}x" if ref else ""
    return f"| {name} | {seconds * 1e3:.1f} | {mbps:.0f} | {ratio} |"


def bench_stack(
    path: Path,
    cname: str,
    n: int,
    h: int,
    w: int,
    repeat: int,
    results: dict[str, dict[str, float]],
    lines: list[str],
) -> None:
    """Full reads and orthogonal planes of one stack file; appends to ``results`` and ``lines``."""
    ref = read_h5py(path)
    nbytes = ref.nbytes
    has_b2h5py, has_kerchunk = have("b2h5py"), have("kerchunk")
    refs = kerchunk_refs(path) if has_kerchunk else None
    fns: dict[str, Callable[[], Any]] = {"h5py + hdf5plugin": lambda: read_h5py(path)}
    if has_b2h5py:
        fns["b2h5py"] = lambda: read_b2h5py(path)
    if refs is not None:
        fns["kerchunk + zarr"] = lambda: read_kerchunk(refs)
    fns["b2store (xarray + dask)"] = lambda: read_b2store_xarray(path)
    fns['b2store (xarray + dask, chunks="auto")'] = lambda: read_b2store_xarray(path, "auto")
    fns[ENGINE] = lambda: read_b2store_engine(path)
    fns["b2store (zarr, no dask)"] = lambda: read_b2store_zarr(path, Ellipsis)
    wrong = [name for name, fn in list(fns.items())[1:] if not check(name, fn(), ref)]
    for name in wrong:
        del fns[name]
    fns[CEIL] = ceiling(path)
    fns[CEIL_C] = ceiling_c_order(path)
    tm = interleaved(fns, repeat)
    t = {k: v.best for k, v in tm.items()}
    results[f"full read, {cname}"] = t
    base = tm["h5py + hdf5plugin"]
    lines += [
        f"## Full read, Blosc2 {cname} + shuffle ({nbytes / 1e6:.0f} MB)",
        "",
        "| reader | best ms | median ms | CPU ms | MB/s (best) | speed vs h5py (best / median) |",
        "|---|---|---|---|---|---|",
    ]
    for k, v in tm.items():
        lines.append(
            f"| {k} | {v.best * 1e3:.0f} | {v.median * 1e3:.0f} | {v.cpu_best * 1e3:.0f} | "
            f"{nbytes / v.best / 1e6:.0f} | {base.best / v.best:.2f}x / "
            f"{base.median / v.median:.2f}x |"
        )
    if refs is None and has_kerchunk:
        lines.append("| kerchunk + zarr | cannot read (drops Blosc2 datasets) | | | | |")
    lines += [f"| {name} | wrong values (differ from h5py's) | | | | |" for name in wrong]
    lines.append("")
    for reader in ("b2store (xarray + dask)", ENGINE):
        if reader not in tm:
            continue
        b2 = tm[reader]

        def ratio(a: str, fmt: str = "{:.2f}x", b2: Timing = b2) -> str:
            best, median = tm[a].best / b2.best, tm[a].median / b2.median
            return f"{fmt.format(best)} (median {fmt.format(median)})"

        lines += [
            f"{reader}:",
            "",
            f"* vs h5py: {ratio('h5py + hdf5plugin')} (target >= 2x)",
            f"* vs b2h5py: {ratio('b2h5py')} (target >= 1x)"
            if "b2h5py" in tm
            else "* vs b2h5py: not timed (wrong values)"
            if has_b2h5py
            else skipped("b2h5py", "b2h5py"),
            *([] if has_kerchunk else [skipped("kerchunk + zarr", "kerchunk")]),
            f"* share of the ceiling: {ratio(CEIL, '{:.0%}')} (target >= 85%)",
            f"* share of the C-order ceiling: {ratio(CEIL_C, '{:.0%}')}",
            f"* CPU: b2store {b2.cpu_best * 1e3:.0f} ms, h5py {base.cpu_best * 1e3:.0f} ms, "
            f"ceiling {tm[CEIL].cpu_best * 1e3:.0f} ms; b2store CPU / wall = "
            f"{b2.cpu_best / b2.best:.2f} cores busy",
            "",
        ]

    # orthogonal planes
    has_b2h5py = "b2h5py" in tm  # installed and right
    other = "b2h5py" if has_b2h5py else "b2h5py (skipped)"
    lines += [
        f"## Orthogonal planes, {cname} (best / median ms)",
        "",
        f"| plane | h5py | {other} | b2store (zarr) | b2store (xarray + dask) "
        f"| zarr vs h5py | zarr vs {other} |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, sel in (
        ("[n/2, :, :]", (n // 2, slice(None), slice(None))),
        ("[:, h/2, :]", (slice(None), h // 2, slice(None))),
        ("[:, :, w/2]", (slice(None), slice(None), w // 2)),
    ):
        plane_fns: dict[str, Callable[[], Any]] = {"h5py": lambda s=sel: read_h5py(path, s)}
        if has_b2h5py:
            plane_fns["b2h5py"] = lambda s=sel: read_b2h5py(path, s)
        plane_fns["b2store"] = lambda s=sel: read_b2store_zarr(path, s)
        plane_fns["b2store xarray"] = lambda s=sel: read_b2store_xarray_plane(path, s)
        b2h5py_ok = has_b2h5py
        for name, fn in list(plane_fns.items())[1:]:
            if not check(f"{name} plane {label}", fn(), ref[sel]):  # b2store's abort
                del plane_fns[name]  # another tool's wrong plane is reported and left out
                b2h5py_ok = False
        pt = interleaved(plane_fns, repeat)
        results[f"plane {label}, {cname}"] = {k: v.best for k, v in pt.items()}
        cells = [f"{v.best * 1e3:.1f} / {v.median * 1e3:.1f}" for v in pt.values()]
        z = pt["b2store"]
        vs_b2h5py = "skipped" if not has_b2h5py else "wrong values"
        if b2h5py_ok:
            vs_b2h5py = (
                f"{pt['b2h5py'].best / z.best:.2f}x (median {pt['b2h5py'].median / z.median:.2f}x)"
            )
        else:
            cells.insert(1, vs_b2h5py)
        lines.append(
            f"| {label} | {' | '.join(cells)} | {pt['h5py'].best / z.best:.2f}x | {vs_b2h5py} |"
        )
    lines.append("")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=sorted(SIZES), default="small")
    p.add_argument(
        "--data",
        type=Path,
        default=HERE / "data",
        help="folder for the generated files, kept and reused (default: benchmarks/data)",
    )
    p.add_argument("--repeat", type=int, default=5, help="rounds of every reader (default 5)")
    p.add_argument("--plot", type=Path, default=None, help="write a PNG bar chart here")
    args = p.parse_args(argv)
    if args.plot and not have("matplotlib"):
        p.error("--plot needs matplotlib: pip install matplotlib")
    n, h, w, cn = SIZES[args.size]
    args.data.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, float]] = {}
    lines = [
        f"# b2store HDF5 read benchmark, size={args.size} ({n}x{h}x{w} uint16), "
        f"{THREADS} threads, best of {args.repeat}",
        "",
    ]

    for cname in ("zstd", "lz4"):
        path = args.data / f"tomo_{args.size}_{cname}.h5"
        write_stack(path, (n, h, w), cn, cname)
        bench_stack(path, cname, n, h, w, args.repeat, results, lines)

    # netCDF4 gzip + shuffle
    nc = args.data / f"tomo_{args.size}.nc"
    write_netcdf(nc, (max(8, n // 4), h, w))
    ref = read_h5py(nc)
    t = {"h5py": best_of(lambda: read_h5py(nc), args.repeat)}
    refs = kerchunk_refs(nc) if have("kerchunk") else None
    if refs is not None and check("kerchunk + zarr (netCDF4)", read_kerchunk(refs), ref):
        t["kerchunk + zarr"] = best_of(lambda: read_kerchunk(refs), args.repeat)
    check("b2store (netCDF4)", read_b2store_xarray(nc), ref)
    t["b2store (xarray + dask)"] = best_of(lambda: read_b2store_xarray(nc), args.repeat)
    results["netCDF4 gzip+shuffle"] = t
    lines += [
        "## netCDF4, gzip + shuffle (float32)",
        "",
        "| reader | ms | MB/s | speed vs h5py |",
        "|---|---|---|---|",
    ]
    lines += [fmt_row(k, v, ref.nbytes, t["h5py"]) for k, v in t.items()]
    if not have("kerchunk"):
        lines += ["", skipped("kerchunk + zarr", "kerchunk")]
    lines.append("")

    # opening 100,000 chunks
    many = args.data / "many_chunks.h5"
    write_many_chunks(many)
    from b2store.hdf5 import filesystem as b2h5

    def open_fs(**kw: Any) -> Callable[[], None]:
        def run() -> None:
            b2h5._MEMORY.clear()  # a new process: no index in memory
            b2h5.HDF5FileSystem(fo=str(many), skip_instance_cache=True, **kw)

        return run

    cache_dir = args.data / "index-cache"
    open_fs(index_cache=str(cache_dir))()  # writes the sidecar
    t_cold = best_of(open_fs(), args.repeat)
    t_sidecar = best_of(open_fs(index_cache=str(cache_dir)), args.repeat)
    t_memory = best_of(
        lambda: b2h5.HDF5FileSystem(fo=str(many), skip_instance_cache=True), args.repeat
    )
    results["open 100k chunks"] = {"cold": t_cold, "sidecar": t_sidecar, "memory": t_memory}
    lines += [
        "## Opening a file with 100,000 chunks",
        "",
        f"* cold (index built with h5py's chunk_iter): {t_cold * 1e3:.0f} ms (target < 1000 ms)",
        f"* cached index, sidecar file: {t_sidecar * 1e3:.1f} ms (target < 100 ms)",
        f"* cached index, in memory: {t_memory * 1e3:.2f} ms",
        "",
    ]

    # peak memory
    path = args.data / f"tomo_{args.size}_zstd.h5"
    pm = peak_memory(path)
    pm_dask = peak_memory(path, synthetic=True)
    pm_engine = peak_memory(path, engine=True)
    chunk_bytes = cn * h * w * 2
    growth = (pm["peak_kib"] - pm["base_kib"]) * 1024
    growth_engine = (pm_engine["peak_kib"] - pm_engine["base_kib"]) * 1024
    budget = 2 * THREADS * chunk_bytes + pm["result_bytes"]
    lines += [
        "## Peak memory of a dask mean over the stack",
        "",
        f"* growth of the high-water mark: {growth / 1e6:.1f} MB; budget 2 x ({THREADS} threads "
        f"x {chunk_bytes / 1e6:.1f} MB chunks) + result {pm['result_bytes'] / 1e6:.1f} MB "
        f"= {budget / 1e6:.1f} MB -> {'within' if growth <= budget else 'OVER'} budget "
        f"(peak RSS above the warm RSS, {pm['how']}; xr.open_zarr)",
        f'* the same through xr.open_dataset(engine="b2h5", chunks={{}}): '
        f"{growth_engine / 1e6:.1f} MB -> {'within' if growth_engine <= budget else 'OVER'} budget",
        f"* the same dask mean over generated chunks (no I/O, no decoding): "
        f"{(pm_dask['peak_kib'] - pm_dask['base_kib']) * 1024 / 1e6:.1f} MB: dask's partial "
        "sums alone; b2store's share is the difference",
        f"* live memory at the peak (tracemalloc, numpy and Python allocations): "
        f"{pm['traced_peak_bytes'] / 1e6:.1f} MB, over generated chunks "
        f"{pm_dask['traced_peak_bytes'] / 1e6:.1f} MB",
        "",
    ]

    print("\n".join(lines))
    if args.plot:
        plot(results, args.plot)
    return 0


def plot(results: dict[str, dict[str, float]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in results if k.startswith("full read")] + ["netCDF4 gzip+shuffle"]
    fig, axes = plt.subplots(len(keys), 1, figsize=(9, 2.2 + 2.2 * len(keys)))
    for ax, k in zip(axes, keys, strict=True):
        names = list(results[k])
        ref = results[k][names[0]]
        ax.barh(names, [ref / results[k][n] for n in names], color="tab:blue")
        ax.axvline(1.0, color="grey", lw=0.8)
        ax.set_title(k)
        ax.set_xlabel(f"speed relative to {names[0]} (higher is faster)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    raise SystemExit(main())
