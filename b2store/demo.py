"""``b2store demo``: a synthetic Blosc2 tomography file read through b2store and through h5py.

Contract: :func:`write_tomography` writes a deterministic uint16 stack (angle, y, x) — a noisy disc
on a zero background, so the chunks at the left and right edges are all zeros — with hdf5plugin's
Blosc2 filter (ZSTD 5 + SHUFFLE) through h5py, into a temporary file that is renamed when complete
(so a valid file is reused and an interrupted one is never mistaken for valid).
:func:`run_demo` then computes the mean over the angle axis twice — with
``xr.open_zarr("b2h5::<file>")`` + dask, and with h5py + hdf5plugin (the HDF5 filter pipeline) —
and with ``xr.open_dataset(<file>, engine="b2h5", chunks={})`` (the same view, whole Blosc2 chunks
decoded without zarr's pipeline: docs/hdf5.md), checks that all three agree, and prints a small
timing table. The generator lives here (not in
``benchmarks/``) so the installed package does not depend on the source checkout.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from b2store._demo_sizes import SIZES, DemoSize
from b2store.errors import B2StoreError

__all__ = ["SIZES", "DemoResult", "DemoSize", "cache_dir", "run_demo", "write_tomography"]

#: Bumped whenever the generator changes, so old cached files are rewritten.
GENERATOR_VERSION = 1
DATASET = "entry/data/data"


@dataclass(frozen=True, kw_only=True)
class DemoResult:
    """What :func:`run_demo` measured."""

    path: str
    nbytes: int
    stored: int
    zero_chunks: int
    nchunks: int
    seconds_b2store: float
    seconds_open: float
    seconds_h5py: float
    max_abs_diff: float
    matches: bool
    seconds_engine: float = float("nan")  # xr.open_dataset(engine="b2h5", chunks={}) + dask


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The demo's cache folder: ``override``, else ``$B2STORE_CACHE``, else ``~/.cache/b2store``.

    ``$XDG_CACHE_HOME/b2store`` is used when ``XDG_CACHE_HOME`` is set.
    """
    if override:
        return Path(override).expanduser()  # `--cache-dir=~/x`: the shell leaves "~" alone
    from b2store._paths import cache_home

    return cache_home()


def _projection(angle: int, n_angles: int, ny: int, nx: int, seed: int) -> np.ndarray[Any, Any]:
    """One noisy projection: a disc (radius 0.4 * ny) centred in the frame, zero outside."""
    rng = np.random.default_rng([seed, angle])
    y, x = np.ogrid[:ny, :nx]
    cy, cx, r = (ny - 1) / 2, (nx - 1) / 2, 0.4 * ny
    rr2 = (y - cy) ** 2 + (x - cx) ** 2
    inside = rr2 < r * r
    # path length through a cylinder + a small bright feature orbiting with the angle
    img = 2000.0 + 8000.0 * np.sqrt(np.clip(1.0 - rr2 / (r * r), 0.0, None))
    theta = 2 * np.pi * angle / n_angles
    fx, fy = cx + 0.5 * r * np.cos(theta), cy + 0.2 * r * np.sin(theta)
    img = img + 6000.0 * np.exp(-((x - fx) ** 2 + (y - fy) ** 2) / (2 * (0.05 * r) ** 2))
    img = img + rng.normal(0.0, 40.0, size=(ny, nx))
    out = np.where(inside, np.clip(np.rint(img), 0, 65535), 0).astype(np.uint16)
    return out


def _is_valid(path: Path, size: DemoSize, seed: int) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            d = f[DATASET]
            return bool(
                d.shape == size.shape
                and d.chunks == size.chunks
                and d.dtype == np.uint16
                and f.attrs.get("b2store_demo_version") == GENERATOR_VERSION
                and f.attrs.get("seed") == seed
                and f.attrs.get("complete")
            )
    except (OSError, KeyError):
        return False


def write_tomography(
    path: str | os.PathLike[str],
    size: DemoSize,
    *,
    seed: int = 0,
    progress: bool = True,
    force: bool = False,
) -> bool:
    """Write the synthetic stack to ``path`` unless a valid one is there. Returns True if written.

    Raises
    ------
    FileNotFoundError
        If the folder of ``path`` cannot be created.
    """
    import h5py
    import hdf5plugin

    from b2store.convert import ensure_blosc2_writable

    path = Path(path)
    if not force and path.exists() and _is_valid(path, size, seed):
        return False
    ensure_blosc2_writable()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    na, ny, nx = size.shape
    step = size.chunks[0]
    bar: Any = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=size.nbytes, unit="B", unit_scale=True, desc=f"writing {path.name}")
    # built in memory, then written with Python's own I/O: HDF5 handles a failed write badly
    # (after "No space left on device" the close fails too, and the library crashes the
    # interpreter when it retries at exit); the file is small (58 MB for "full")
    image = io.BytesIO()
    try:
        with h5py.File(image, "w") as f:
            f.attrs["b2store_demo_version"] = GENERATOR_VERSION
            f.attrs["seed"] = seed
            g = f.create_group("entry/data")
            g.attrs["NX_class"] = "NXdata"
            d = g.create_dataset(
                "data",
                shape=size.shape,
                dtype=np.uint16,
                chunks=size.chunks,
                **hdf5plugin.Blosc2(cname="zstd", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE),
            )
            d.attrs["units"] = "counts"
            d.attrs["long_name"] = "synthetic projections (angle, y, x)"
            for a0 in range(0, na, step):
                a1 = min(a0 + step, na)
                d[a0:a1] = np.stack([_projection(a, na, ny, nx, seed) for a in range(a0, a1)])
                if bar is not None:
                    bar.update((a1 - a0) * ny * nx * 2)
            f.attrs["complete"] = True
        try:
            with open(tmp, "wb") as out:
                out.write(image.getbuffer())
        except OSError as exc:
            from b2store._diskspace import out_of_room

            room = out_of_room(
                exc,
                f"the demo file {path} ({image.getbuffer().nbytes / 1e6:.1f} MB)",
                "free some space, or choose another folder with --cache-dir or $B2STORE_CACHE",
            )
            if room is None:
                raise
            raise room from exc
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    return True


def _mean_h5py(path: Path) -> np.ndarray[Any, Any]:
    import h5py
    import hdf5plugin  # noqa: F401

    with h5py.File(path, "r") as f:
        d = f[DATASET]
        acc = np.zeros(d.shape[1:], dtype=np.float64)
        step = d.chunks[0]
        for a0 in range(0, d.shape[0], step):
            acc += d[a0 : a0 + step].sum(axis=0, dtype=np.float64)
        return acc / d.shape[0]


def _mean_b2store(
    path: Path, workers: int | None, *, engine: bool = False
) -> tuple[np.ndarray[Any, Any], float]:
    """The mean through b2store (``xr.open_zarr``, or the ``b2h5`` engine), and the seconds
    spent opening (building the index)."""
    import dask
    import xarray as xr

    t0 = time.perf_counter()
    if engine:
        ds = xr.open_dataset(path, engine="b2h5", group="entry/data", chunks={})
    else:
        ds = xr.open_zarr(f"b2h5::{path}", group="entry/data")
    t_open = time.perf_counter() - t0
    da = ds["data"]
    cfg: dict[str, Any] = {"scheduler": "threads"}
    if workers:
        cfg["num_workers"] = workers
    with dask.config.set(cfg):
        return np.asarray(da.mean(dim=da.dims[:1], dtype=np.float64).values), t_open


def _max_abs_diff(got: np.ndarray[Any, Any], ref: np.ndarray[Any, Any]) -> float:
    return float(np.max(np.abs(got - ref))) if got.shape == ref.shape else float("inf")


def _agrees(got: np.ndarray[Any, Any], ref: np.ndarray[Any, Any]) -> bool:
    return got.shape == ref.shape and bool(np.allclose(got, ref, rtol=1e-12, atol=1e-9))


def _chunk_stats(path: Path) -> tuple[int, int, int]:
    """(stored bytes, all-zero chunks, allocated chunks) from the raw chunk headers."""
    import h5py

    sizes: list[int] = []
    with h5py.File(path, "r") as f:
        d = f[DATASET]
        d.id.chunk_iter(lambda info: sizes.append(int(info.size)))
        stored = int(d.id.get_storage_size())
    # an all-zero Blosc2 chunk is a ~240-byte frame whatever its size (blosc2-codecs.md §8)
    return stored, sum(s <= 300 for s in sizes), len(sizes)


def run_demo(
    *,
    size: str = "full",
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    echo: Callable[[str], None] = print,
    progress: bool = True,
) -> DemoResult:
    """Write (or reuse) the demo file, time the three readers, check they agree, print a table.

    Raises
    ------
    ValueError
        If ``size`` is not one of :data:`SIZES`.
    """
    if size not in SIZES:
        raise ValueError(f"Expected a size from {', '.join(SIZES)}. Got {size!r} instead.")
    import blosc2

    blosc2.set_releasegil(True)  # the codec's decompress2 then runs in parallel under dask
    spec = SIZES[size]
    folder = globals()["cache_dir"](cache_dir)
    path = folder / f"demo-tomography-{size}.h5"
    wrote = write_tomography(path, spec, progress=progress)
    echo(f"{'wrote' if wrote else 'reusing'} {path}")

    # import the libraries first: the table compares reading, not interpreter start-up
    import contextlib

    import dask.array  # noqa: F401
    import h5py  # noqa: F401
    import hdf5plugin  # noqa: F401
    import xarray  # noqa: F401
    import zarr  # noqa: F401

    with contextlib.suppress(ImportError):
        import distributed  # noqa: F401  (dask imports it on the first compute to look for a client)

    # each reader runs twice: the first run pays one-off costs (b2store: building the chunk
    # index, loading codecs, starting zarr's event loop), the second shows the steady state
    times_h5: list[float] = []
    times_b2: list[float] = []
    times_engine: list[float] = []
    t_open = 0.0
    for _ in range(2):
        t0 = time.perf_counter()
        ref = _mean_h5py(path)
        times_h5.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        got, t_o = _mean_b2store(path, workers)
        times_b2.append(time.perf_counter() - t0)
        t_open = t_open or t_o
        t0 = time.perf_counter()
        got_engine, _ = _mean_b2store(path, workers, engine=True)
        times_engine.append(time.perf_counter() - t0)
    t_b2, t_h5, t_engine = times_b2[-1], times_h5[-1], times_engine[-1]
    diff = max(_max_abs_diff(got, ref), _max_abs_diff(got_engine, ref))
    ok = _agrees(got, ref) and _agrees(got_engine, ref)
    stored, zeros, nchunks = _chunk_stats(path)
    res = DemoResult(
        path=str(path),
        nbytes=spec.nbytes,
        stored=stored,
        zero_chunks=zeros,
        nchunks=nchunks,
        seconds_b2store=t_b2,
        seconds_open=t_open,
        seconds_h5py=t_h5,
        max_abs_diff=diff,
        matches=ok,
        seconds_engine=t_engine,
    )
    echo(
        f"stack {spec.shape} uint16, chunks {spec.chunks}: {spec.nbytes / 1e6:.0f} MB, "
        f"stored {stored / 1e6:.1f} MB (ratio {spec.nbytes / stored:.2f}), "
        f"{zeros}/{nchunks} chunks all zero"
    )
    echo("")
    rows = (
        (f"b2store: xr.open_zarr('b2h5::...') + dask, {workers or 'default'} threads", times_b2),
        (
            f"b2store: xr.open_dataset(engine='b2h5', chunks={{}}) + dask, "
            f"{workers or 'default'} threads",
            times_engine,
        ),
        ("h5py + hdf5plugin (HDF5 filter pipeline)", times_h5),
    )
    width = max(len(r[0]) for r in rows)
    echo(f"| {'mean over the angle axis':<{width}} | 1st run s | 2nd run s | 2nd MB/s |")
    echo(f"|{'-' * (width + 2)}|-----------|-----------|----------|")
    for label, ts in rows:
        echo(
            f"| {label:<{width}} | {ts[0]:9.3f} | {ts[1]:9.3f} | {spec.nbytes / 1e6 / ts[1]:8.0f} |"
        )
    echo("")
    echo(
        f"b2store / h5py speed (2nd run): open_zarr {t_h5 / t_b2:.2f}x, engine='b2h5' "
        f"{t_h5 / t_engine:.2f}x; results "
        + ("agree" if ok else "DISAGREE")
        + f" (max |difference| {diff:.2e}); b2store's 1st run includes {t_open:.3f} s to open"
        " (index the file)"
    )
    if not ok:
        raise B2StoreError(
            f"b2store and h5py disagree on {path} (max |difference| {diff}); please report this"
        )
    return res
