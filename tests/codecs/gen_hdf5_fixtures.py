"""Generate the golden fixtures of ``b2store_hdf5`` (tests/codecs/fixture/b2store_hdf5/).

Layout (numcodecs style, as :func:`codec_checks.check_backwards_compatibility` reads it)::

    array.NN.npy              the data of HDF5 chunk NN (uint16, 20 x 30)
    codec.MM/config.json      the b2store_hdf5 config of one HDF5 filter pipeline
    codec.MM/encoded.NN.dat   chunk NN exactly as HDF5 stored it (``read_direct_chunk``)
    codec.MM/provenance.json  the writer: h5py, HDF5 and hdf5plugin versions, the pipeline

The chunks are written by HDF5 itself (h5py + hdf5plugin filters), never by b2store, and the
configs carry the ``cd_values`` HDF5 recorded, as :func:`b2store.hdf5.filters.read_pipeline`
reads them. ``codec.MM`` with ``"masked": true`` holds chunks prefixed with the
:func:`~b2store.codecs.hdf5_pipeline.add_mask_header` header; one of them was written with
``write_direct_chunk`` and a filter mask that skips deflate (HDF5 reads it back, checked here);
LZF, which HDF5 skips on chunks it cannot shrink, is masked too.
The data of each chunk is stored once (``array.NN.npy``), independent of any decoder.

Run from the repository root, with b2store installed (needs h5py and hdf5plugin)::

    python3 tests/codecs/gen_hdf5_fixtures.py

Never regenerate them to make a failing test pass: a failure means the decoder changed.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixture" / "b2store_hdf5"
SHAPE, CHUNKS = (40, 60), (20, 30)
#: the chunks stored: chunk NN starts at OFFSETS[NN]
OFFSETS = [(0, 0), (20, 30)]


def source() -> np.ndarray:
    """Tomography-like uint16 data: a bright disc over a noisy background."""
    rng = np.random.default_rng(20261126)
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    disc = ((yy - 20) ** 2 + (xx - 30) ** 2 < 15**2) * 20000
    return (disc + 800 + rng.normal(0, 40, SHAPE)).astype("<u2")


def pipelines() -> list[tuple[str, dict[str, Any]]]:
    """(label, h5py create_dataset keyword arguments) of the HDF5 pipelines stored."""
    import hdf5plugin

    return [
        ("shuffle+deflate", {"shuffle": True, "compression": "gzip", "compression_opts": 4}),
        ("fletcher32+deflate", {"fletcher32": True, "compression": "gzip"}),
        ("lzf", {"compression": "lzf"}),
        ("szip", {"compression": "szip", "compression_opts": ("nn", 8)}),
        ("bzip2", dict(hdf5plugin.BZip2(blocksize=9))),
        ("blosc lz4 shuffle", dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=1))),
        ("blosc2 zstd bitshuffle", dict(hdf5plugin.Blosc2(cname="zstd", clevel=5, filters=2))),
        ("bitshuffle lz4", dict(hdf5plugin.Bitshuffle(cname="lz4"))),
        ("bitshuffle zstd", dict(hdf5plugin.Bitshuffle(cname="zstd", clevel=3))),
        ("hdf5-lz4", dict(hdf5plugin.LZ4())),
        ("zstd", dict(hdf5plugin.Zstd(clevel=5))),
    ]


def _filters(ds: Any) -> list[dict[str, Any]]:
    """The dataset's filter pipeline as b2store_hdf5 config entries (HDF5 encode order)."""
    from b2store.codecs.hdf5_pipeline import FILTER_NAMES

    plist = ds.id.get_create_plist()
    out = []
    for i in range(plist.get_nfilters()):
        fid, _flags, cd, _desc = plist.get_filter(i)
        out.append({"id": int(fid), "name": FILTER_NAMES[fid], "cd_values": [int(v) for v in cd]})
    return out


def _versions() -> dict[str, str]:
    import h5py
    import hdf5plugin

    return {
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "hdf5plugin": hdf5plugin.version,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
    }


def _write(idx: int, config: dict[str, Any], chunks: list[bytes], writer: str) -> None:
    sub = FIXTURE / f"codec.{idx:02d}"
    sub.mkdir(parents=True, exist_ok=True)
    (sub / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    for j, raw in enumerate(chunks):
        (sub / f"encoded.{j:02d}.dat").write_bytes(raw)
    prov = {**_versions(), "writer": writer}
    (sub / "provenance.json").write_text(json.dumps(prov, indent=2, sort_keys=True))


def main() -> None:
    import h5py

    from b2store.codecs.hdf5_pipeline import add_mask_header

    data = source()
    FIXTURE.mkdir(parents=True, exist_ok=True)
    parts = [data[r : r + CHUNKS[0], c : c + CHUNKS[1]] for r, c in OFFSETS]
    for j, part in enumerate(parts):
        np.save(FIXTURE / f"array.{j:02d}.npy", np.ascontiguousarray(part), allow_pickle=False)
    base = {"id": "b2store_hdf5", "dtype": data.dtype.str, "chunkshape": list(CHUNKS)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.h5"
        labels = pipelines()
        with h5py.File(path, "w") as f:
            for k, (_label, kwargs) in enumerate(labels):
                f.create_dataset(f"d{k}", data=data, chunks=CHUNKS, **kwargs)
            # masked: chunk 0 stored shuffled but not deflated (mask bit 1: deflate skipped)
            m = f.create_dataset(
                "masked", data=data, chunks=CHUNKS, shuffle=True, compression="gzip"
            )
            elems = np.ascontiguousarray(parts[0]).view(np.uint8).reshape(-1, 2)
            shuffled = np.ascontiguousarray(elems.T).tobytes()
            m.id.write_direct_chunk(OFFSETS[0], shuffled, filter_mask=0b10)
        with h5py.File(path) as f:
            for k, (label, _kwargs) in enumerate(labels):
                ds = f[f"d{k}"]
                stored = [ds.id.read_direct_chunk(off) for off in OFFSETS]
                # an optional filter HDF5 skipped on a chunk (LZF on noise gives no gain): the
                # codec is then configured masked=True, as b2store.hdf5.filters plans it
                masked = any(mask for mask, _raw in stored)
                chunks = [add_mask_header(raw, mask) if masked else raw for mask, raw in stored]
                config = {**base, "filters": _filters(ds), "masked": masked}
                masks = [mask for mask, _raw in stored]
                _write(k, config, chunks, f"h5py/HDF5 filter pipeline: {label}, masks {masks}")
            m = f["masked"]
            np.testing.assert_array_equal(m[...], data)  # HDF5 honours the mask
            chunks = []
            masks = []
            for off in OFFSETS:
                mask, raw = m.id.read_direct_chunk(off)
                masks.append(mask)
                chunks.append(add_mask_header(raw, mask))
            assert masks == [0b10, 0], masks
            config = {**base, "filters": _filters(m), "masked": True}
            _write(len(labels), config, chunks, "h5py: shuffle+deflate, chunk 0 deflate skipped")
    print(f"fixtures written under {FIXTURE}")


if __name__ == "__main__":
    main()
