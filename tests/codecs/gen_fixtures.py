"""Generate the golden fixtures of ``b2store_b2nd`` and ``b2store_itrunc`` (run once, commit).

Usage (from the repository root, with b2store installed)::

    python3 tests/codecs/gen_fixtures.py

Writes ``tests/codecs/fixture/b2store_b2nd/`` and ``tests/codecs/fixture/b2store_itrunc/``.
Besides chunks written by our encoder, ``b2store_b2nd`` gets "foreign" forms decoded by the same
codec id: a b2nd frame written by hdf5plugin's Blosc2 filter (``'|V2'`` header dtype), a plain
1-D hdf5plugin frame, a bare Blosc2 chunk in block order (Caterva2 ``/api/chunk`` form, decoded
with ``chunkshape`` + ``blocks`` in the config) and a ``blosc2.zeros`` frame (special offset).
The tests only ever decode these files, so a Blosc2 upgrade that breaks the format fails.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import blosc2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from codec_checks import FIXTURE_ROOT, write_fixtures  # noqa: E402

from b2store.codecs.b2nd import B2nd  # noqa: E402
from b2store.codecs.itrunc import ITrunc  # noqa: E402


def arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(20261125)
    yy, xx = np.mgrid[0:48, 0:64]
    disc = ((yy - 24) ** 2 + (xx - 32) ** 2 < 18**2) * 20000
    stack = (disc[None] + 800 + rng.normal(0, 40, (6, 48, 64))).astype("<u2")
    return [
        stack,  # 00 tomography-like uint16 (3-D)
        rng.integers(-(2**31), 2**31 - 1, (33, 17), dtype="<i4"),  # 01 int32 extremes, 2-D
        np.linspace(-1e3, 1e3, 1001, dtype="<f8") ** 3,  # 02 float64 1-D
        rng.integers(0, 255, (3, 4, 5, 6), dtype="u1"),  # 03 uint8 4-D
        np.array([[-128, -1, 0, 1, 127]] * 7, dtype="i1"),  # 04 int8 extremes
    ]


def write_foreign(folder: Path, start: int) -> None:
    """Chunks written by other tools, each decoded by ``b2store_b2nd`` (see module docstring)."""
    import h5py
    import hdf5plugin

    rng = np.random.default_rng(7)
    cases: list[tuple[dict[str, object], bytes, np.ndarray]] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.h5"
        img = rng.integers(0, 4000, (50, 70), dtype="<u2")
        line = np.arange(1000, dtype="<i4") * 3
        with h5py.File(path, "w") as f:
            f.create_dataset("img", data=img, chunks=(20, 30), **hdf5plugin.Blosc2())
            f.create_dataset("line", data=line, chunks=(300,), **hdf5plugin.Blosc2())
        with h5py.File(path) as f:
            edge = f["img"].id.read_direct_chunk((40, 60))[1]
            # hdf5plugin frames edge chunks at full chunk size; the padding is part of the bytes
            full = B2nd().decode(edge).view("<u2")
            assert full.shape == (20, 30) and (full[:10, :10] == img[40:, 60:]).all()
            cases.append(({"id": "b2store_b2nd"}, edge, full))
            cases.append(
                ({"id": "b2store_b2nd"}, f["line"].id.read_direct_chunk((300,))[1], line[300:600])
            )
    data = rng.integers(0, 1000, (40, 60), dtype="<i4")
    nd = blosc2.asarray(data, chunks=(20, 30), blocks=(8, 16))
    cases.append(
        (
            {"id": "b2store_b2nd", "chunkshape": [20, 30], "blocks": [8, 16]},
            bytes(nd.schunk.get_chunk(0)),
            data[:20, :30],
        )
    )
    zeros = blosc2.zeros((30, 40), dtype="<f4", chunks=(30, 40), blocks=(10, 10))
    cases.append(({"id": "b2store_b2nd"}, bytes(zeros.to_cframe()), np.zeros((30, 40), "<f4")))
    for k, (config, enc, expected) in enumerate(cases):
        sub = folder / f"codec.{start + k:02d}"
        sub.mkdir(exist_ok=True)
        (sub / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        (sub / "encoded.90.dat").write_bytes(enc)
        np.save(sub / "decoded.90.npy", expected, allow_pickle=False)
        prov = {"blosc2": blosc2.__version__, "writer": "hdf5plugin/blosc2 (foreign form)"}
        (sub / "provenance.json").write_text(json.dumps(prov, indent=2))
    # the decoded.90 files carry the expected arrays; array.90.npy mirrors the first one
    np.save(folder / "array.90.npy", cases[0][2], allow_pickle=False)


def main() -> None:
    arrs = arrays()
    b2nd_codecs = [
        B2nd(),
        B2nd(cname="lz4", clevel=9, filters=["bitshuffle"]),
        B2nd(cname="zstd", clevel=3, filters=["shuffle", "bytedelta"], nthreads=2),
        B2nd(filters=[{"id": "itrunc", "max_abs_error": 15, "max_rel_error": 1e-3}, "bitshuffle"]),
        B2nd(cname="blosclz", blocks=None, filters=["delta", "shuffle"]),
        B2nd(cname="zlib", clevel=1, filters=[]),
    ]
    folder = write_fixtures("b2store_b2nd", arrs, b2nd_codecs, store_decoded=True)
    write_foreign(folder, start=len(b2nd_codecs))
    itrunc_codecs = [
        ITrunc(max_abs_error=15, max_rel_error=1e-3),
        ITrunc(bits=3),
        ITrunc(max_abs_error=0, max_rel_error=0.0),
    ]
    write_fixtures("b2store_itrunc", arrs, itrunc_codecs, store_decoded=True)
    print(f"fixtures written under {FIXTURE_ROOT}")


if __name__ == "__main__":
    main()
