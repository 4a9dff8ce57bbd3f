"""Generate the golden fixtures of ``b2store_grok`` (tests/codecs/fixture/b2store_grok/).

Layout (numcodecs style)::

    array.NN.npy                      input arrays
    codec.MM/config.json              the b2store_grok config that decodes them
    codec.MM/provenance.json          who wrote the bytes (plugin, Blosc2 codec id, versions)
    codec.MM/encoded.NN.dat           encoded chunk of array NN (a one-chunk b2nd cframe)
    codec.MM/decoded.NN.npy           lossy codecs only: what the writer decoded (deterministic)

codec.00/01 are written by blosc2-j2k through b2store itself (lossless / ``ratio=10``); codec.02/03
by blosc2-grok 0.3.5, which can encode only on blosc2 4.1.x, so they come from a scratch venv.
Run, from the repository root, in this order::

    python3 tests/codecs/gen_grok_fixtures.py arrays     # global env
    python3 tests/codecs/gen_grok_fixtures.py j2k        # global env (b2store + blosc2-j2k)
    python3 -m venv /tmp/grokenv
    /tmp/grokenv/bin/pip install "blosc2>=4.1,<4.2" blosc2-grok==0.3.5 numpy
    /tmp/grokenv/bin/python tests/codecs/gen_grok_fixtures.py grok

The committed fixtures were made with blosc2 4.14.1 + blosc2-j2k 0.4.0 (codec.00/01) and
blosc2 4.1.2 + blosc2-grok 0.3.5 + numpy 2.4.6 (codec.02/03), Python 3.11.7. Never regenerate them
to make a failing test pass: a failure means the on-disk format or the decoder changed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixture" / "b2store_grok"
ROOT = HERE.parents[1]


def make_arrays() -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks._synthetic import tomo_projection, tomo_stack

    FIXTURE.mkdir(parents=True, exist_ok=True)
    a0 = tomo_projection(3, 180, 128, 128, seed=7)  # 2-D uint16 projection
    a1 = (tomo_stack(3, 64, 64, seed=11) >> 4).astype(np.uint16)  # 12-bit stack (3, 64, 64)
    np.save(FIXTURE / "array.00.npy", a0)
    np.save(FIXTURE / "array.01.npy", a1)


def _arrays() -> list[np.ndarray]:
    return [np.load(FIXTURE / f"array.{i:02d}.npy") for i in range(2)]


def _write(
    idx: int, config: dict[str, object], prov: dict[str, object], blobs: list[bytes]
) -> None:
    import blosc2

    d = FIXTURE / f"codec.{idx:02d}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (d / "provenance.json").write_text(json.dumps(prov, indent=2, sort_keys=True) + "\n")
    for i, blob in enumerate(blobs):
        (d / f"encoded.{i:02d}.dat").write_bytes(blob)
        if config.get("ratio") is not None:
            np.save(d / f"decoded.{i:02d}.npy", blosc2.ndarray_from_cframe(blob)[...])


def make_j2k() -> None:
    import blosc2
    import blosc2_j2k

    from b2store.codecs.grok import Grok

    for idx, cfg in ((0, {}), (1, {"ratio": 10.0})):
        codec = Grok(**cfg)  # type: ignore[arg-type]
        prov = {
            "writer": "b2store.codecs.grok.Grok (blosc2-j2k, Grok backend)",
            "blosc2_codec": 39,
            "blosc2": blosc2.__version__,
            "blosc2_j2k": blosc2_j2k.__version__,
            "numpy": np.__version__,
        }
        _write(idx, codec.get_config(), prov, [codec.encode(a) for a in _arrays()])


def make_grok() -> None:
    import blosc2
    import blosc2_grok

    cparams = {
        "codec": blosc2.Codec.GROK,
        "filters": [],
        "splitmode": blosc2.SplitMode.NEVER_SPLIT,
        "nthreads": 1,
    }
    for idx, ratio in ((2, None), (3, 10.0)):
        blosc2_grok.set_params_defaults(
            quality_mode=None if ratio is None else "rates",
            quality_layers=np.array([] if ratio is None else [ratio], dtype=np.float64),
        )
        blobs = []
        for a in _arrays():
            blocks = (1,) * (a.ndim - 2) + a.shape[-2:]
            nd = blosc2.asarray(a, chunks=a.shape, blocks=blocks, cparams=cparams)
            blobs.append(bytes(nd.to_cframe()))
        config = {"id": "b2store_grok", "nthreads": 1, "psnr": None, "ratio": ratio}
        prov = {
            "writer": "blosc2.asarray with blosc2-grok (codec GROK)",
            "blosc2_codec": 37,
            "blosc2": blosc2.__version__,
            "blosc2_grok": getattr(blosc2_grok, "__version__", "0.3.5"),
            "numpy": np.__version__,
        }
        _write(idx, config, prov, blobs)


if __name__ == "__main__":
    {"arrays": make_arrays, "j2k": make_j2k, "grok": make_grok}[sys.argv[1]]()
