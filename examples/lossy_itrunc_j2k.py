"""Lossy compression with a measured error: integer truncation (itrunc) and JPEG 2000.

Converts a synthetic uint16 tomography file with ``b2store.convert`` three ways — lossless,
itrunc with a maximum absolute error of 15 counts, and JPEG 2000 (blosc2-j2k, Grok backend) at a
target ratio of 10 — then reads each result back with plain h5py + hdf5plugin (itrunc, lossless)
or through ``xr.open_zarr("b2h5::...")`` and prints ratio, maximum absolute error and PSNR.
JPEG 2000 is skipped with a message when blosc2-j2k (AGPL-3.0, ``b2store[jpeg2000]``) is missing.

Run: ``python examples/lossy_itrunc_j2k.py``
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import xarray as xr

from b2store.convert import CodecChoice, ConvertOptions, convert
from b2store.demo import SIZES, write_tomography

DATASET = "entry/data/data"


def psnr16(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype("f8") - b.astype("f8")) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(65535.0**2 / mse)


def main() -> None:
    if len(sys.argv) > 1:  # no arguments: say so rather than ignore them
        if sys.argv[1] in ("-h", "--help"):
            print(__doc__)
            return
        sys.exit(f"usage: python {sys.argv[0]}  (takes no arguments; got {sys.argv[1:]})")
    with tempfile.TemporaryDirectory(prefix="b2store-example-") as tmp:
        run(Path(tmp))


def run(folder: Path) -> None:
    src = folder / "tomo.h5"
    write_tomography(src, SIZES["small"], progress=False)
    with h5py.File(src) as f:
        ref = f[DATASET][...]

    cases = {
        "lossless zstd-5+shuffle": CodecChoice(),
        "itrunc max_error=15 + bitshuffle": CodecChoice(
            itrunc_max_error=15, filters=("bitshuffle",)
        ),
    }
    if importlib.util.find_spec("blosc2_j2k") is not None:
        cases["JPEG 2000 ratio 10"] = CodecChoice(j2k_ratio=10.0)
    else:
        print("blosc2-j2k not installed: skipping JPEG 2000 (pip install 'b2store[jpeg2000]')")

    print(f"{'codec':<34} {'ratio':>6} {'max err':>8} {'PSNR16 dB':>10}")
    for label, choice in cases.items():
        out = folder / f"{label.split()[0]}.h5"
        rep = convert(src, out, options=ConvertOptions(codec=choice))
        (d,) = [r for r in rep.datasets if r.path == "/" + DATASET]
        if choice.is_j2k:  # read through b2store's codecs (the Grok decoder)
            got = xr.open_zarr(f"b2h5::{out}", group="entry/data")["data"].values
        else:  # plain h5py + hdf5plugin reads what convert wrote
            with h5py.File(out) as f:
                got = f[DATASET][...]
        err = np.abs(got.astype(np.int64) - ref)
        print(f"{label:<34} {d.ratio:6.2f} {int(err.max()):8d} {psnr16(got, ref):10.1f}")
        if choice.itrunc_max_error is not None:
            assert err.max() <= choice.itrunc_max_error
        if label.startswith("lossless"):
            assert err.max() == 0
    print("error bounds respected: OK")


if __name__ == "__main__":
    main()
