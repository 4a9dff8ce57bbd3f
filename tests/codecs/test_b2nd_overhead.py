"""The b2nd decoder's per-chunk shortcuts keep every check (session 14: fixed cost per chunk).

The frame decoder parses each header once and caches what depends only on header bytes that
repeat across chunks: the metalayers section of a frame (the array's b2nd shapes) and the
header of a one-chunk frame's offsets index. These tests pin that a cached good header never
lets a bad one through, that errors still name *what*, and that the cheap paths (views of
every buffer kind, plain-int shapes, the scratch loan, the thread grant) behave as before.
No timing asserts: the speed is measured by ``benchmarks``-style scripts, not here.
"""

from __future__ import annotations

import blosc2
import numpy as np
import pytest

from b2store.codecs import _blosc2frame as bf
from b2store.codecs._b2nd_threads import _decode_threads
from b2store.codecs._common import parse_optional_shape
from b2store.codecs._scratch import SCRATCH
from b2store.codecs.b2nd import B2nd, decode_b2nd
from b2store.errors import CodecError

IMG = (np.arange(8 * 8, dtype="u2") * 7).reshape(8, 8)
FRAME = B2nd().encode(IMG)


def _metalayer_span(frame: bytes) -> tuple[int, int]:
    """(start, end) of the b2nd metalayer's msgpack content inside *frame*."""
    info = bf.parse_frame(frame)
    meta_at = frame.index(b"b2nd", bf.FRAME_HEADER_MINLEN)  # its name in the index
    off = int.from_bytes(frame[meta_at + 5 : meta_at + 9], "big")
    size = int.from_bytes(frame[off + 1 : off + 5], "big")
    assert off + 5 + size <= info.header_size
    return off + 5, off + 5 + size


def test_cached_metalayers_never_hide_a_corrupt_one() -> None:
    """A frame whose metalayer was parsed (and cached) decodes; the same frame with its
    metalayer damaged raises naming *what*, every time, and the good one still decodes."""
    np.testing.assert_array_equal(decode_b2nd(FRAME), IMG)
    start, _end = _metalayer_span(FRAME)
    bad = bytearray(FRAME)
    bad[start] = 0xC1  # msgpack "never used" byte: not a 7-item array any more
    for _ in range(2):
        with pytest.raises(CodecError, match=r"^key/0\.0: corrupt b2nd metalayer"):
            decode_b2nd(bytes(bad), what="key/0.0")
    np.testing.assert_array_equal(decode_b2nd(FRAME, what="key/0.0"), IMG)


def test_cached_offsets_index_header_still_checks_the_tail() -> None:
    """The offsets index of a one-chunk frame has the same header in every frame (parsed once),
    but a frame cut inside it, or with a damaged one, is still refused."""
    np.testing.assert_array_equal(decode_b2nd(FRAME), IMG)  # the index header is now cached
    info = bf.parse_frame(FRAME)
    index_at = info.header_size + info.cbytes
    damaged = bytearray(FRAME)
    damaged[index_at] = 99  # format version byte
    with pytest.raises(CodecError, match=r"^b2store_b2nd: not a Blosc2 chunk"):
        decode_b2nd(bytes(damaged))
    eight = bytearray(FRAME)  # index of 16 bytes: two offsets for a frame of one chunk
    eight[index_at + 4 : index_at + 8] = (16).to_bytes(4, "little")
    with pytest.raises(CodecError, match="b2store_b2nd"):
        decode_b2nd(bytes(eight))
    # a view ending inside the index: the frame-size check refuses whole buffers, so ask the
    # frame reader for the chunk directly with a prefix that cuts the index short
    cut = memoryview(FRAME)[: index_at + bf.CHUNK_HEADER_SIZE + 1]
    with pytest.raises(CodecError, match="truncated Blosc2 chunk"):
        bf.locate_chunk(cut, info, what="b2store_b2nd")


def test_frames_of_different_arrays_interleave() -> None:
    """Caches keyed by header bytes never mix arrays up: frames of other shapes, dtypes, block
    shapes and metalayer contents decode right when read alternately."""
    arrays = [
        IMG,
        np.arange(7 * 9, dtype="f4").reshape(7, 9),
        np.arange(5 * 6 * 4, dtype="i8").reshape(5, 6, 4),
        np.arange(100, dtype="u1"),
        IMG.astype("u4").T.copy(),
    ]
    frames = [B2nd(blocks=[3] * a.ndim).encode(a) for a in arrays] + [FRAME]
    expected = [*arrays, IMG]
    for _ in range(3):
        for frame, want in zip(frames, expected, strict=True):
            got = decode_b2nd(frame)
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "wrap",
    [
        bytes,
        bytearray,
        memoryview,
        lambda b: np.frombuffer(b, dtype="u1"),
        lambda b: np.frombuffer(b + b"\x00", dtype="u1")[:-1],
        lambda b: np.repeat(np.frombuffer(b, dtype="u1"), 2)[::2],  # strided: copied
        lambda b: memoryview(b).cast("b"),
        lambda b: memoryview(b).cast("c"),
    ],
    ids=["bytes", "bytearray", "memoryview", "u1", "u1-slice", "u1-strided", "mv-b", "mv-c"],
)
def test_every_buffer_kind_decodes_alike(wrap: object) -> None:
    buf = wrap(FRAME)  # type: ignore[operator]
    np.testing.assert_array_equal(B2nd().decode(buf), IMG)
    np.testing.assert_array_equal(decode_b2nd(buf, dtype="u2"), IMG)


def test_bare_chunks_with_cached_padding_still_check_their_blocks() -> None:
    """The padded size of a (chunk, blocks) pair is cached; blocks larger than the chunk are
    refused every time, naming *what*."""
    nd = blosc2.asarray(IMG, chunks=(8, 8), blocks=(4, 4))
    raw = bytes(nd.schunk.get_chunk(0))
    zero_nd = blosc2.zeros((8, 8), dtype="u2", chunks=(8, 8), blocks=(4, 4))
    zeros = bytes(zero_nd.schunk.get_chunk(0))  # a special chunk: its blocks are not checked
    for _ in range(2):
        np.testing.assert_array_equal(
            decode_b2nd(raw, dtype="u2", chunkshape=(8, 8), blocks=(4, 4)), IMG
        )
        with pytest.raises(CodecError, match=r"^chunk 0: blocks \[16, 4\] exceed the chunk"):
            decode_b2nd(zeros, dtype="u2", chunkshape=(8, 8), blocks=(16, 4), what="chunk 0")


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ([True, 2], TypeError),
        ((2, False), TypeError),
        ([0, 1], CodecError),
        ([-1], CodecError),
        ([2**31], CodecError),
        ((2.0,), TypeError),
        ("12", TypeError),
    ],
)
def test_shape_fast_path_refuses_what_the_slow_path_refuses(value: object, error: type) -> None:
    with pytest.raises(error, match="c: blocks"):
        parse_optional_shape("c", "blocks", value)


def test_shape_fast_path_results() -> None:
    assert parse_optional_shape("c", "blocks", [2**31 - 1, 1]) == (2**31 - 1, 1)
    got = parse_optional_shape("c", "blocks", (np.int64(3), 4))
    assert got == (3, 4) and all(type(v) is int for v in got)
    with pytest.raises(CodecError, match=r"Expected 3 dimensions\. Got 2"):
        parse_optional_shape("c", "blocks", [1, 2], ndim=3)


def test_scratch_loan_is_exact_and_returned_on_errors() -> None:
    with SCRATCH.borrow(100) as buf:
        assert buf.nbytes == 100 and buf.dtype == np.uint8
    with pytest.raises(RuntimeError), SCRATCH.borrow(50) as buf:
        raise RuntimeError("boom")
    with SCRATCH.borrow(50) as again:  # the pool lent it back: no buffer lost to the error
        assert again.nbytes == 50
    with SCRATCH.borrow(0) as empty:
        assert empty.nbytes == 0


def test_thread_grant_is_released_on_errors() -> None:
    from b2store.codecs import _b2nd_threads

    with pytest.raises(RuntimeError), _decode_threads(2, 10):
        assert _b2nd_threads._inflight == 1
        raise RuntimeError("boom")
    assert _b2nd_threads._inflight == 0
