"""Mini corruption fuzz over the HDF5 filters, run by tests/hdf5/test_b2h5_corrupt17.py in a
subprocess (a decoder crash shows as a return code; tracemalloc's peak shows a decoder that
allocates what a corrupt size field claims).

``python _corrupt_scripts.py <folder>`` writes one small dataset per filter pipeline, replaces one
chunk with mutated bytes (``write_direct_chunk``: flips, zeroed runs, truncations, random
bytes and size fields of the framing enlarged), reads it through b2h5 (Zarr v3) and with h5py,
and prints one JSON line per case whose outcome breaks "correct or loud": b2h5 values differing
from h5py's, an error that is no ``ValueError`` (or wraps a MemoryError), or a read that
allocated more than 64 MiB. The last line is ``{"cases": n}``.

h5py is not asked where its own filters crash, hang or allocate gigabytes (HDF5 2.0.0 + hdf5plugin
7.1.0): bitshuffle headers with wrong sizes, truncated bzip2 streams, fletcher32 chunks under 4
bytes, zstd frames claiming a huge content size.
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np

#: name -> create_dataset keywords; the dataset is (40, 48) <f4 in (16, 32) chunks
PIPELINES: dict[str, dict[str, Any]] = {
    "gzip_shuffle": dict(compression="gzip", shuffle=True),
    "gzip_fletcher32": dict(compression="gzip", shuffle=True, fletcher32=True),
    "lzf": dict(compression="lzf"),
    "szip": dict(compression="szip"),
    "bzip2": dict(**hdf5plugin.BZip2()),
    "lz4": dict(**hdf5plugin.LZ4(nbytes=256)),
    "bitshuffle_lz4": dict(**hdf5plugin.Bitshuffle(cname="lz4")),
    "bitshuffle_zstd": dict(**hdf5plugin.Bitshuffle(cname="zstd")),
    "zstd": dict(**hdf5plugin.Zstd()),
    "zstd_fletcher32": dict(**hdf5plugin.Zstd(), fletcher32=True),
    "blosc": dict(**hdf5plugin.Blosc(cname="lz4")),
    "shuffle_blosc2": dict(**hdf5plugin.Blosc2(), shuffle=True),
}


def mutations(name: str, raw: bytes, rng: np.random.Generator) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    n = len(raw)
    for _ in range(4):
        b = bytearray(raw)
        p = int(rng.integers(0, n))
        b[p] ^= 1 << int(rng.integers(0, 8))
        out.append((f"flip@{p}", bytes(b)))
        b = bytearray(raw)
        q = int(rng.integers(0, n))
        b[q : q + 16] = bytes(len(b[q : q + 16]))
        out.append((f"zero@{q}", bytes(b)))
    out.append(("random", rng.bytes(n)))
    if "fletcher32" not in name:
        out += [(f"trunc@{p}", raw[:p]) for p in (n // 3, n - 1) if not name.startswith("bzip2")]
    else:
        out += [("trunc@4", raw[:4]), (f"trunc@{n - 3}", raw[: n - 3])]

    def put(fmt: str, off: int, value: int) -> None:
        b = bytearray(raw)
        struct.pack_into(fmt, b, off, value)
        out.append((f"{fmt}@{off}={value}", bytes(b)))

    if name == "lz4":
        for v in (2**32, 2**40 - 1, 2**63):
            put(">Q", 0, v)
        for v in (2**32 - 1, 1):
            put(">I", 8, v)
        put(">I", 12, 2**31)
    elif name == "blosc":
        for v in (2**31 - 1, 2**32 - 1):
            put("<I", 4, v)
        put("<I", 8, 2**32 - 1)
    elif name == "szip":
        for v in (2**31, 2**32 - 1):
            put("<I", 0, v)
    elif name == "zstd":
        for fcs in (2**31, 2**33, 2**40):
            fhd = bytes([0xE0 | (raw[4] & 0x1F)])
            out.append((f"fcs={fcs}", raw[:4] + fhd + struct.pack("<Q", fcs) + raw[7:]))
    elif name == "shuffle_blosc2":
        put(">q", 30, 2**40)  # frame nbytes
        put(">i", 58, 2**31 - 1)  # frame chunksize
    return out


def h5py_skipped(name: str, tag: str) -> bool:
    """Mutations h5py's own filters crash or hang on, or allocate what a size field claims
    (hdf5plugin's zstd filter mallocs a frame's content size; later filters then failed to
    allocate in the same process)."""
    if name.startswith("bitshuffle"):
        return tag.startswith((">", "trunc")) or "@" in tag
    return tag.startswith("fcs=")


def main(folder: Path) -> None:
    import zarr

    tracemalloc.start()
    rng = np.random.default_rng(17)
    data = ((np.arange(40 * 48) % 53) * 1.5).astype("<f4").reshape(40, 48)
    cases = 0
    # every file is written before h5py reads a corrupt chunk: after its plugin filters failed
    # on some, creating a bitshuffle dataset failed in the same process (HDF5-DIAG from the
    # plugin's own HDF5: "H5Pget_filter_by_id1(): can't find object for ID")
    raws = {}
    for name, kwargs in PIPELINES.items():
        with h5py.File(folder / f"{name}.h5", "w") as f:
            ds = f.create_dataset("d", data=data, chunks=(16, 32), **kwargs)
            raws[name] = ds.id.read_direct_chunk((16, 0))[1]
    for name, raw in raws.items():
        base = folder / f"{name}.h5"
        for tag, bad in mutations(name, raw, rng):
            cases += 1
            path = folder / f"{name}-case.h5"
            shutil.copy(base, path)
            with h5py.File(path, "r+") as f:
                f["d"].id.write_direct_chunk((16, 0), bad)
            want = None
            if not h5py_skipped(name, tag):
                try:
                    with h5py.File(path) as f:
                        want = f["d"][()]
                except OSError:
                    pass
            tracemalloc.reset_peak()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    root = zarr.open_group(
                        f"b2h5::{path}", mode="r", storage_options={"skip_instance_cache": True}
                    )
                    z = root["d"]
                    got = z[...]
                    intact = z[:16, :32]  # a chunk left alone reads right whatever happened
            except ValueError as e:
                if not str(e) or "MemoryError" in str(e):
                    problem = f"message {e}"[:300]
                    print(json.dumps({"case": f"{name} {tag}", "problem": problem}))
                else:
                    np.testing.assert_array_equal(z[:16, :32], data[:16, :32])
                continue
            except Exception as e:  # not "loud" in a way callers can catch as ValueError
                problem = f"{type(e).__name__}: {e}"[:300]
                print(json.dumps({"case": f"{name} {tag}", "problem": problem}))
                continue
            finally:
                peak = tracemalloc.get_traced_memory()[1]
                if peak > 64 << 20:
                    problem = f"allocated {peak} bytes"
                    print(json.dumps({"case": f"{name} {tag}", "problem": problem}))
            if not np.array_equal(intact, data[:16, :32]):
                print(json.dumps({"case": f"{name} {tag}", "problem": "intact chunk changed"}))
            elif want is None and not h5py_skipped(name, tag):
                # h5py refused the chunk: b2h5's values are accepted only when they are the
                # data the chunk held before (a lenient but right reading of a size field)
                if not np.array_equal(got, data):
                    print(json.dumps({"case": f"{name} {tag}", "problem": "values, h5py raised"}))
            elif want is not None and not np.array_equal(got, want):
                print(json.dumps({"case": f"{name} {tag}", "problem": "values differ from h5py"}))
    print(json.dumps({"cases": cases}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
