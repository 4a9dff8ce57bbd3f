"""Bad bytes never crash or hang the b2nd decoder: they raise a ValueError naming the codec.

Blosc2 frames and chunks carry no checksum, so a flipped *payload* bit may decode to other
values without error; that is accepted. Anything else (segfault, hang, other exception types,
absurd allocations) fails. The mutation fuzz runs in a subprocess so a crash cannot take pytest
down with it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import blosc2
import numcodecs
import numpy as np
import pytest

from b2store.codecs import _blosc2frame as bf
from b2store.codecs.b2nd import B2nd, decode_b2nd
from b2store.errors import CodecError

FRAME = B2nd(blocks=[8, 16]).encode(np.arange(40 * 50, dtype="u2").reshape(40, 50))
_ND = blosc2.asarray(np.arange(2000, dtype="i4").reshape(40, 50), chunks=(40, 50), blocks=(8, 16))
CHUNK = bytes(_ND.schunk.get_chunk(0))  # keep the NDArray alive while using .schunk


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        FRAME[:10],
        FRAME[:50],
        FRAME[:200],
        FRAME[:-1],
        FRAME[: len(FRAME) // 2],
        CHUNK[:31],
        CHUNK[:-5],
        b"b2frame\x00" * 20,
        FRAME[:2] + b"b2frame\x00" + b"\xff" * 200,
        bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype="u1")),
        bytes(np.random.default_rng(2).integers(0, 256, 32, dtype="u1")),
        b"\x05\x01\x05\x02" + b"\xff" * 28,  # plausible chunk header, absurd sizes
    ],
    ids=lambda d: f"{len(d)}B",
)
def test_bad_bytes_raise_codec_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="b2store_b2nd") as info:
        numcodecs.get_codec({"id": "b2store_b2nd"}).decode(data)
    assert isinstance(info.value, CodecError)
    with pytest.raises(CodecError, match="b2store_b2nd"):
        decode_b2nd(data, dtype="i4", chunkshape=(40, 50), blocks=(8, 16))


def test_header_corruptions_are_named() -> None:
    def flip(buf: bytes, pos: int, value: int) -> bytes:
        b = bytearray(buf)
        b[pos] = value
        return bytes(b)

    cases = {
        "magic": flip(FRAME, 3, 0),
        "header_size": flip(FRAME, 11, 0x7F),
        "frame_size": flip(FRAME, 16, 0x7F),
        "cbytes": flip(FRAME, 39, 0x7F),
        "typesize": flip(FRAME, 51, 0x00),
    }
    for name, data in cases.items():
        with pytest.raises(CodecError, match="b2store_b2nd"):
            decode_b2nd(data)
        assert name
    with pytest.raises(CodecError, match=r"truncated Blosc2 chunk: .* header says"):
        bf.chunk_header(flip(CHUNK, 13, 0x7F))
    with pytest.raises(CodecError, match="not a Blosc2 chunk"):
        bf.chunk_header(flip(CHUNK, 0, 99))
    with pytest.raises(CodecError, match="decompresses to"):  # wrong chunk shape
        decode_b2nd(CHUNK, dtype="i4", chunkshape=(48, 50), blocks=(8, 16))


FUZZ = r"""
import sys, time
import numpy as np, blosc2
from b2store.codecs.b2nd import B2nd, decode_b2nd
from b2store.codecs import _blosc2frame as bf

rng = np.random.default_rng(2026)
img = (np.add.outer(np.arange(40), np.arange(50)) * 37 % 3000).astype("u2")
nd = blosc2.asarray(img, chunks=(40, 50), blocks=(8, 16))
seeds = [
    ("frame", B2nd(blocks=[8, 16]).encode(img), {}),
    ("frame-lz4-bitshuffle", B2nd(cname="lz4", filters=["bitshuffle"]).encode(img), {}),
    ("frame-itrunc", B2nd(filters=[{"id": "itrunc", "bits": 3}, "shuffle", "bytedelta"],
                          blocks=[10, 25]).encode(img.astype("i4")), {}),
    ("frame-f8", B2nd(cname="zlib").encode(np.linspace(0, 1, 300)), {}),
    ("frame-zeros", bytes(blosc2.zeros((30, 40), dtype="u2", chunks=(30, 40),
                                      blocks=(10, 10)).to_cframe()), {}),
    ("plain", bytes(blosc2.SChunk(chunksize=800, data=np.arange(200, dtype="i4"),
                                  cparams={"typesize": 4}).to_cframe()), {}),
    ("bare", bytes(nd.schunk.get_chunk(0)),
     {"dtype": "u2", "chunkshape": (40, 50), "blocks": (8, 16)}),
]
n = ok = codec_err = 0
bad = []
per_seed = int(sys.argv[1])
t0 = time.time()
for name, data, kw in seeds:
    L = len(data)
    for i in range(per_seed):
        b = bytearray(data)
        mode = i % 4
        if mode == 0:      # one bit flip anywhere
            p = int(rng.integers(0, L)); b[p] ^= 1 << int(rng.integers(0, 8))
        elif mode == 1:    # several bit flips
            for _ in range(int(rng.integers(2, 9))):
                p = int(rng.integers(0, L)); b[p] ^= 1 << int(rng.integers(0, 8))
        elif mode == 2:    # truncation
            b = b[: int(rng.integers(0, L))]
        else:              # random byte overwrite in the first 300 bytes (headers)
            p = int(rng.integers(0, min(L, 300))); b[p] = int(rng.integers(0, 256))
        n += 1
        try:
            out = decode_b2nd(bytes(b), **kw)
            np.ascontiguousarray(out).tobytes()
            ok += 1
        except ValueError as exc:
            if "b2store_b2nd" not in str(exc):
                bad.append((name, i, "unnamed ValueError", str(exc)[:200]))
            codec_err += 1
        except Exception as exc:
            bad.append((name, i, type(exc).__name__, str(exc)[:200]))
# the v3 partial-decode path (ranged reads of touched blocks) on mutated large frames
from zarr.core.array_spec import ArrayConfig, ArraySpec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.dtype import parse_dtype
from b2store.codecs._b2nd_partial import _PartialPlan

big = (np.add.outer(np.arange(128), np.arange(128)) * 9).astype("u2")
big += rng.integers(0, 50, big.shape).astype("u2")
bigframe = B2nd(blocks=[16, 32]).encode(big)
spec = ArraySpec(shape=(128, 128), dtype=parse_dtype("uint16", zarr_format=3), fill_value=0,
                 config=ArrayConfig.from_dict({}), prototype=default_buffer_prototype())
sel = (slice(20, 40), slice(70, 90))
for i in range(per_seed):
    b = bytearray(bigframe)
    p = int(rng.integers(0, len(b))); b[p] ^= 1 << int(rng.integers(0, 8))
    if i % 3 == 0:
        b = b[: int(rng.integers(4096, len(b)))]
    data = bytes(b)
    n += 1
    try:
        plan = _PartialPlan.make(data[:4096], (128, 128), None, spec)
        if plan is None:
            decode_b2nd(data, dtype="u2")
        else:
            table = data[plan.base: plan.table_end]
            needed = plan.touched_blocks(sel)
            ranges = plan.block_ranges(table, needed)
            pieces = {k: data[s:e] for k, (s, e) in ranges.items()}
            if any(len(pieces[k]) != e - s for k, (s, e) in ranges.items()):
                raise ValueError("b2store_b2nd: truncated (test harness)")
            plan.decode_blocks(table, needed, pieces, 1).tobytes()
        ok += 1
    except ValueError as exc:
        if "b2store" not in str(exc):
            bad.append(("partial", i, "unnamed ValueError", str(exc)[:200]))
        codec_err += 1
    except Exception as exc:
        bad.append(("partial", i, type(exc).__name__, str(exc)[:200]))
print(f"cases={n} decoded={ok} codec_errors={codec_err} bad={len(bad)} "
      f"seconds={time.time() - t0:.1f}")
for row in bad[:20]:
    print("BAD", row)
sys.exit(1 if bad else 0)
"""


@pytest.mark.timeout(300)
def test_mutation_fuzz_in_subprocess() -> None:
    per_seed = 800  # (7 seeds + partial path) x 800 = 6,400 mutated cases
    proc = subprocess.run(
        [sys.executable, "-c", FUZZ, str(per_seed)],
        capture_output=True,
        text=True,
        timeout=280,
    )
    summary = proc.stdout.strip() + "\n" + proc.stderr.strip()[-3000:]
    assert proc.returncode == 0, f"fuzz subprocess failed (rc={proc.returncode}):\n{summary}"
    cases = int(proc.stdout.split("cases=")[1].split()[0])
    assert cases >= 2000, summary


def test_fuzz_script_is_valid_python() -> None:
    compile(textwrap.dedent(FUZZ), "<fuzz>", "exec")
