"""Header fields C-Blosc2 validates (or gives a meaning) that b2store's parser did not look at.

Session 18 compared :mod:`b2store.codecs._blosc2frame` field by field with C-Blosc2 3.3
(``frame.c`` ``get_header_info``, ``blosc2.c`` ``read_chunk_header``; ``blosc2.h`` of the
python-blosc2 4.14 wheel for the flag bits) and with what python-blosc2 4.14 reads. Each test
mutates one header field of a real frame or chunk and feeds it to the numcodecs codec, and to
Zarr v3 whole-chunk and partial decoding: the result must be a :class:`CodecError` naming the
field, raised before C-Blosc2 sees the bytes, never a crash, a bare error or other values.
The last test sweeps every header field of frames from every writer in a subprocess.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import blosc2
import numcodecs
import numpy as np
import pytest
import zarr
from zarr.core.buffer import cpu
from zarr.storage import MemoryStore

from b2store.codecs import _blosc2frame as bf
from b2store.codecs.b2nd import B2nd, decode_b2nd
from b2store.codecs.zarr3 import B2ndCodec
from b2store.errors import CodecError

_RNG = np.random.default_rng(18)
IMG = (np.add.outer(np.arange(128), np.arange(128)) * 9).astype("u2")
IMG += _RNG.integers(0, 50, IMG.shape).astype("u2")
FRAME = B2nd(blocks=[16, 32]).encode(IMG)  # > 4 KiB: zarr partial reads plan block ranges
HS = int.from_bytes(FRAME[11:15], "big")  # the chunk header starts here
_ND = blosc2.asarray(IMG, chunks=(128, 128), blocks=(16, 32))
CHUNK = bytes(_ND.schunk.get_chunk(0))  # a bare chunk, as Caterva2 serves it


def _poke(buf: bytes, pos: int, value: int, size: int = 1, order: str = "little") -> bytes:
    b = bytearray(buf)
    b[pos : pos + size] = value.to_bytes(size, order, signed=value < 0)
    return bytes(b)


def _zarr_reads(data: bytes) -> list[object]:
    """The chunk *data* read through Zarr v3, whole and as a small (partial) selection."""
    store = MemoryStore()
    arr = zarr.create_array(
        store, shape=IMG.shape, chunks=IMG.shape, dtype="u2",
        serializer=B2ndCodec(blocks=[16, 32]), compressors=None, fill_value=0,
    )  # fmt: skip
    arr[...] = IMG
    store._store_dict["c/0/0"] = cpu.Buffer.from_bytes(data)
    out: list[object] = []
    for sel in ((Ellipsis,), (slice(20, 40), slice(70, 90))):
        try:
            out.append(arr[sel])
        except Exception as exc:  # the caller checks the type
            out.append(exc)
    return out


def _assert_refused(data: bytes, match: str) -> None:
    """Every decode path raises a CodecError whose message matches *match*."""
    with pytest.raises(CodecError, match=match):
        numcodecs.get_codec({"id": "b2store_b2nd"}).decode(data)
    for got in _zarr_reads(data):
        assert isinstance(got, CodecError), repr(got)
        assert re.search(match, str(got)), str(got)


def test_real_frames_still_decode() -> None:
    assert np.array_equal(numcodecs.get_codec({"id": "b2store_b2nd"}).decode(FRAME), IMG)
    whole, part = _zarr_reads(FRAME)
    assert np.array_equal(whole, IMG)  # type: ignore[arg-type]
    assert np.array_equal(part, IMG[20:40, 70:90])  # type: ignore[arg-type]


def test_instrumented_codec_flag_is_refused() -> None:
    """blosc2_flags bit 7 (BLOSC2_INSTR_CODEC): C-Blosc2 decodes such a chunk to codec timings.
    Before: every path returned those timings as pixel values, silently."""
    data = _poke(FRAME, HS + 31, FRAME[HS + 31] | 0x80)
    assert not np.array_equal(blosc2.ndarray_from_cframe(data)[...], IMG)  # C: other values
    _assert_refused(data, "instrumented codec")


def test_variable_length_blocks_flag_is_refused_before_c() -> None:
    """flags2 bit 0 is BLOSC2_VL_BLOCKS; the parser tested blosc2_flags bit 3 (the lazy-chunk
    bit) instead, so such chunks reached decompress2 (a wrapped "Error while decompressing")."""
    _assert_refused(_poke(FRAME, HS + 30, 1), "variable-length blocks")
    # a special (all-zero) chunk with the flag was decoded, C-Blosc2 refuses it
    zeros = bytes(blosc2.zeros((30, 40), dtype="u2", chunks=(30, 40)).to_cframe())
    hs = int.from_bytes(zeros[11:15], "big")
    with pytest.raises(CodecError, match="variable-length blocks"):
        decode_b2nd(_poke(zeros, hs + 30, 1))


def test_lazy_chunk_flag_is_named() -> None:
    """blosc2_flags bit 3 marks C-Blosc2's in-memory lazy chunks (it was called VL blocks)."""
    _assert_refused(_poke(FRAME, HS + 31, 0x08), "lazy-chunk flag")


@pytest.mark.parametrize(
    ("pos", "value", "match"),
    [
        (26, 1, "frame type 1"),  # 1 = sparse (directory) frame: get_header_info refuses it
        (26, 0x55, "frame type 85"),
        (25, 0x14, "format version 4"),  # newer than C-Blosc2 3.x's frame format 3
        (70, 7, "7 filter slots"),  # get_header_info: at most BLOSC2_MAX_FILTERS
        (70, 255, "255 filter slots"),
    ],
)
def test_frame_fields_c_blosc2_checks(pos: int, value: int, match: str) -> None:
    """Before: these frames decoded (the bytes were never read); python-blosc2 refuses them."""
    data = _poke(FRAME, pos, value)
    with pytest.raises(RuntimeError):
        blosc2.ndarray_from_cframe(data)
    _assert_refused(data, match)


@pytest.mark.parametrize(
    ("blocksize", "match"),
    [(2 * 32768, r"blocksize=65536 for nbytes=32768"), (536866817, r"at most 536866816")],
)
def test_chunk_blocksize_bounds_checked_before_c(blocksize: int, match: str) -> None:
    """read_chunk_header refuses blocksize > nbytes and > BLOSC2_MAXBLOCKSIZE; the bytes used to
    reach decompress2 (bare chunks) or passed as one huge block."""
    data = _poke(CHUNK, 8, blocksize, 4)
    with pytest.raises(CodecError, match=match):
        decode_b2nd(data, dtype="u2", chunkshape=(128, 128), blocks=(16, 32))
    with pytest.raises(CodecError, match=match):
        numcodecs.get_codec(
            {"id": "b2store_b2nd", "chunkshape": [128, 128], "blocks": [16, 32]}
        ).decode(data)
    _assert_refused(_poke(FRAME, HS + 8, blocksize, 4), match)


def test_special_chunk_nbytes_must_be_whole_items() -> None:
    """read_chunk_header: a special chunk's nbytes is a multiple of its typesize. Before: an
    all-zero chunk of typesize 2 claiming 201 bytes decoded to 201 zero bytes."""
    zero = bytes(blosc2.compress2(np.zeros(100, "u2"), typesize=2))
    assert bf.chunk_header(zero).special == bf.SPECIAL_ZERO
    with pytest.raises(CodecError, match="not a multiple of typesize=2"):
        decode_b2nd(_poke(zero, 4, 201, 4), dtype="u1")


def test_bare_chunk_of_zero_bytes_is_a_codec_error() -> None:
    """numcodecs decode of a bare chunk whose header says nbytes=0 (chunkshape configured):
    before, the item-size guess gave a V0 dtype and a ZeroDivisionError."""
    data = _poke(CHUNK, 4, 0, 4)
    codec = numcodecs.get_codec(
        {"id": "b2store_b2nd", "chunkshape": [128, 128], "blocks": [16, 32]}
    )
    with pytest.raises(CodecError, match="bare chunk of 0 bytes"):
        codec.decode(data)


def test_partial_read_checks_frame_and_chunk_cbytes_agree() -> None:
    """A frame whose header cbytes disagrees with its chunk's: the whole-chunk decode refused
    it, a partial read planned block ranges from it and served values (C refuses the frame)."""
    data = _poke(FRAME, 39, int.from_bytes(FRAME[39:47], "big") - 1, 8, "big")
    for got in _zarr_reads(data):
        assert isinstance(got, CodecError), repr(got)


SWEEP = r"""
import sys, warnings
warnings.filterwarnings("ignore")
import numpy as np, blosc2, numcodecs, zarr, h5py, hdf5plugin, io
from zarr.core.buffer import cpu
from zarr.storage import MemoryStore
from b2store.codecs.b2nd import B2nd
from b2store.codecs.zarr3 import B2ndCodec
from b2store.errors import CodecError

rng = np.random.default_rng(0)
img = (np.add.outer(np.arange(128), np.arange(128)) * 9).astype("u2")
img += rng.integers(0, 50, img.shape).astype("u2")
bio = io.BytesIO()
with h5py.File(bio, "w") as h:
    h.create_dataset("d", data=img, chunks=img.shape, **hdf5plugin.Blosc2(cname="zstd"))
    h5 = bytes(h["d"].id.read_direct_chunk((0, 0))[1])
nd = blosc2.asarray(img, chunks=img.shape, blocks=(16, 32))
seeds = {
    "b2nd": B2nd(blocks=[16, 32]).encode(img),
    "to_cframe": bytes(nd.to_cframe()),
    "hdf5plugin": h5,
    "multi": bytes(blosc2.asarray(img, chunks=(64, 64), blocks=(16, 32)).to_cframe()),
    "full": bytes(blosc2.full(img.shape, 7, dtype="u2", chunks=img.shape).to_cframe()),
    "bare": bytes(nd.schunk.get_chunk(0)),
}
refs = {"full": np.full(img.shape, 7, "u2")}
VALS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 35, 36, 37, 64, 127, 128, 129, 255)
# chunk-header bytes that change what the payload means, unchecked by C-Blosc2 too (no checksum):
# filters, udcodec, codec_meta, filters_meta; version 3 is C-Blosc2's "alpha" format
PAYLOAD_LIKE = set(range(16, 30))

def muts(data, hs):
    if hs:
        for pos in (25, 26, 27, 28, 68, 70, 71, 76, 77, 78, 79):
            for v in VALS:
                yield pos, v
        for pos, size in ((11, 4), (16, 8), (30, 8), (39, 8), (48, 4), (53, 4), (58, 4)):
            for v in (0, 1, 255):  # the low byte of each size field
                yield pos + size - 1, v
    for off in range(32):  # every chunk-header byte
        for v in VALS:
            yield hs + off, v

n = bad = 0
report = []
for name, data in seeds.items():
    ref = refs.get(name, img)
    bare = name == "bare"
    hs = 0 if bare else int.from_bytes(data[11:15], "big")
    store = MemoryStore()
    arr = zarr.create_array(store, shape=img.shape, chunks=img.shape, dtype="u2",
                            serializer=B2ndCodec(blocks=[16, 32] if bare else None),
                            compressors=None, fill_value=0)
    cfg = {"id": "b2store_b2nd"}
    if bare:
        cfg.update(chunkshape=[128, 128], blocks=[16, 32])
    codec = numcodecs.get_codec(cfg)
    for pos, v in muts(data, hs):
        if pos >= len(data) or data[pos] == v:
            continue
        b = bytearray(data); b[pos] = v; b = bytes(b)
        store._store_dict["c/0/0"] = cpu.Buffer.from_bytes(b)
        for path, fn, want in (
            ("numcodecs", lambda: codec.decode(b), ref),
            ("zarr-whole", lambda: arr[...], ref),
            ("zarr-partial", lambda: arr[20:40, 70:90], ref[20:40, 70:90]),
        ):
            n += 1
            try:
                out = np.asarray(fn())
            except CodecError as exc:
                if "b2store" not in str(exc):
                    bad += 1; report.append((name, pos, v, path, "unnamed", str(exc)[:120]))
                continue
            except Exception as exc:
                bad += 1; report.append((name, pos, v, path, type(exc).__name__, str(exc)[:120]))
                continue
            if out.view("u2").tobytes() == want.tobytes():
                continue
            off = pos - hs
            payload = 0 <= off < 32 and (off in PAYLOAD_LIKE or (off == 0 and v == 3))
            if name == "full" and off >= 32:
                payload = True  # the special value itself
            if not payload:
                bad += 1; report.append((name, pos, v, path, "other values", ""))
print(f"cases={n} bad={bad}")
for row in report[:30]:
    print("BAD", row)
sys.exit(1 if bad else 0)
"""


@pytest.mark.timeout(600)
def test_header_field_sweep_in_subprocess() -> None:
    """Every frame/chunk header byte of five writers' frames and a bare chunk, through three
    decode paths: a CodecError or the right values, other values only for payload-like bytes."""
    proc = subprocess.run(
        [sys.executable, "-c", SWEEP], capture_output=True, text=True, timeout=580
    )
    summary = proc.stdout.strip()[-3000:] + "\n" + proc.stderr.strip()[-3000:]
    assert proc.returncode == 0, f"sweep failed (rc={proc.returncode}):\n{summary}"
    assert int(proc.stdout.split("cases=")[1].split()[0]) > 5000, summary


def test_sweep_script_is_valid_python() -> None:
    compile(textwrap.dedent(SWEEP), "<sweep>", "exec")
