"""Pure-Python, O(1) parsing and validation of Blosc2 bytes: contiguous frames and chunks.

Contract
--------
Nothing here calls a C decoder except :func:`chunk_offsets` on a compressed offsets index (and
only after the index chunk's header was validated). Every function takes any buffer-like object
(``bytes``, ``memoryview``, ``numpy`` array) and raises :class:`~b2store.errors.CodecError` (a
``ValueError``) with a message saying what is wrong when the bytes are not what they claim to be.

Layouts (C-Blosc2 3.x, also read by 2.x; C-Blosc2's ``README_CFRAME_FORMAT.rst`` and
``README_CHUNK_FORMAT.rst`` describe them):

* **Frame header** (msgpack, big-endian): magic ``b"b2frame\\0"`` at bytes 2..9, ``header_size``
  int32 at 11, ``frame_size`` uint64 at 16, general flags at 25 (format version, at most 3, in
  the low nibble), frame type at 26 (0 = contiguous), ``nbytes`` int64 at 30, chunks-section
  ``cbytes`` int64 at 39, ``typesize`` int32 at 48, ``blocksize`` int32 at 53, ``chunksize``
  int32 at 58, codec byte at 27 (codec id low nibble, clevel high nibble), the number of filter
  slots at 70 (at most 6), filters at 71..76, the plugin codec's id at 77 (when the low nibble
  is 6), filters_meta at 79..84, then the metalayers (the ``b2nd`` one gives shape, chunks,
  blocks and dtype).
* The chunks follow at ``header_size``; the **offsets index** (a Blosc2 chunk of int64 offsets,
  relative to ``header_size``; negative offsets are frame-level special chunks whose kind is in
  bits 56..58) sits at ``header_size + cbytes``.
* **Chunk header** (32 bytes, little-endian): version, versionlz, flags, typesize, nbytes,
  blocksize (``1..nbytes`` unless the chunk is empty, at most 536866816), cbytes, filters[6],
  udcodec, codec_meta, filters_meta[6], flags2 (bit 0: variable-length blocks, refused),
  blosc2_flags (special kind in bits 4..6; bit 3 lazy and bit 7 instrumented codec, both
  refused); then ``int32 bstarts[nblocks]`` unless the chunk is special or memcpy'd. Special
  chunks hold whole items (``nbytes % typesize == 0``), as C-Blosc2's ``read_chunk_header``
  requires.

Costs: this runs once per decoded chunk, so each header is parsed once and handed on
(:func:`locate_chunk` returns the chunk's parsed header, :func:`check_parsed_chunk` completes
its validation), and what depends only on bytes that repeat across the chunks of an array is
parsed once per distinct content (``lru_cache``): a frame's metalayers (its b2nd shapes) and
the header of a one-chunk frame's offsets index. Errors are never cached: bad bytes are parsed
again, and their message names *what*.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from b2store.errors import CodecError

__all__ = [
    "CHUNK_HEADER_SIZE",
    "FILTER_DELTA",
    "SPECIAL_NAN",
    "SPECIAL_NONE",
    "SPECIAL_UNINIT",
    "SPECIAL_VALUE",
    "SPECIAL_ZERO",
    "UDCODEC_FORMAT",
    "B2ndMeta",
    "ChunkHeader",
    "FrameInfo",
    "LocatedChunk",
    "as_bytes_view",
    "check_parsed_chunk",
    "chunk_header",
    "chunk_offsets",
    "frame_chunk",
    "frame_chunks",
    "frame_special",
    "is_frame",
    "locate_chunk",
    "locate_chunks",
    "parse_b2nd_meta",
    "parse_frame",
]

MAGIC = b"b2frame\x00"
FRAME_HEADER_MINLEN = 87
CHUNK_HEADER_SIZE = 32

SPECIAL_NONE = 0
SPECIAL_ZERO = 1
SPECIAL_NAN = 2
SPECIAL_VALUE = 3
SPECIAL_UNINIT = 4

#: Blosc2's DELTA filter id: every block is stored relative to the chunk's first block.
FILTER_DELTA = 3

#: Codec (format) id a frame header and a chunk's flags record for a plugin (user-defined)
#: codec; the chunk header's ``udcodec`` byte holds the plugin's own id.
UDCODEC_FORMAT = 6

_FLAG_MEMCPYED = 0x02
_FLAG_DONT_SPLIT = 0x10
_FLAG_EXTENDED = 0x05  # BLOSC_DOSHUFFLE | BLOSC_DOBITSHUFFLE both set = extended (Blosc2) header
#: Chunk header byte 31 (``blosc2_flags``): a *lazy* chunk (C-Blosc2 builds these in memory from
#: a file frame, with a trailer of block sizes and a file offset; never stored) and an
#: *instrumented* codec (``BLOSC2_INSTR_CODEC``: the chunk decodes to timings, not data).
_B2FLAG_LAZY = 0x08
_B2FLAG_INSTR_CODEC = 0x80
#: Chunk header byte 30 (``flags2``): variable-length blocks (``BLOSC2_VL_BLOCKS``, C-Blosc2 3.x,
#: format version 6): blocks of other sizes than ``blocksize``, not produced by b2nd writers.
_FLAGS2_VL_BLOCKS = 0x01
#: C-Blosc2's ``BLOSC2_MAXBLOCKSIZE``: ``read_chunk_header`` refuses larger blocks.
_MAX_BLOCKSIZE = 536866816
#: Newest contiguous-frame format version (low nibble of frame byte 25) C-Blosc2 3.x reads
#: (``BLOSC2_VERSION_FRAME_FORMAT``); frame byte 26 is the frame type, 0 = contiguous.
_FRAME_FORMAT_MAX = 3
_FRAME_TYPE_CONTIGUOUS = 0
_MAX_FILTERS = 6

_WHAT = "Blosc2"
#: Builds a named tuple from a tuple of its fields without the Python-level ``__new__`` (the
#: headers below are built once per chunk: that call is a fifth of a header's parse).
_new_tuple = tuple.__new__
_CHUNK_HEAD = struct.Struct("<BBBBiii6BBB6bBB")  # the whole 32-byte chunk header
#: The fixed fields of a frame header, in one read: at 10 int32 marker + header_size, uint64
#: marker + frame_size; general flags (format version in the low nibble) at 25, frame type at
#: 26, the codec byte at 27; at 29 int64 marker + nbytes, int64 marker + cbytes, then int32
#: marker + typesize, + blocksize, + chunksize; the number of filter slots at 70, filters at
#: 71..76, the plugin codec's id at 77 (when the codec byte says UDCODEC_FORMAT), filters_meta
#: at 79..84.
_FRAME_HEAD = struct.Struct(">10xBiBQxBBBxBqBqBiBiBi8xB6BBx6b")
_FRAME_MARKERS = (0xD2, 0xCF, 0xD3, 0xD3, 0xD2, 0xD2, 0xD2)
#: The size fields alone (tests forge frames with them): at 29 nbytes, cbytes, typesize,
#: blocksize, chunksize, each after its msgpack marker.
_FRAME_FIELDS = struct.Struct(">BqBqBiBiBi")


def as_bytes_view(buf: Any) -> memoryview:
    """Return a flat, C-contiguous ``uint8`` memoryview over *buf* without copying when possible.

    Parameters
    ----------
    buf : buffer-like
        ``bytes``, ``bytearray``, ``memoryview`` or a numpy array.

    Raises
    ------
    TypeError
        If *buf* does not expose the buffer protocol.
    """
    kind = type(buf)  # the usual inputs first, by exact type: bytes, and views made here
    if kind is memoryview and buf.format == "B" and buf.ndim == 1 and buf.c_contiguous:
        return buf
    if kind is bytes or kind is bytearray:
        return memoryview(buf)
    if isinstance(buf, bytes | bytearray):
        return memoryview(buf)
    if isinstance(buf, np.ndarray):
        if buf.dtype == np.uint8 and buf.ndim == 1 and buf.flags.c_contiguous:
            return buf.data  # zarr's Buffer.as_numpy_array(): already flat bytes
        arr = np.ascontiguousarray(buf)
        return arr.reshape(-1).view(np.uint8).data
    try:
        mv = memoryview(buf)
    except TypeError as exc:
        raise TypeError(
            "Expected a bytes-like object (bytes, memoryview, numpy array). "
            f"Got {type(buf)} instead."
        ) from exc
    if mv.c_contiguous and mv.format in ("B", "b", "c") and mv.ndim == 1:
        return mv.cast("B") if mv.format != "B" else mv
    return np.ascontiguousarray(np.asarray(mv)).reshape(-1).view(np.uint8).data


def _err(msg: str, what: str) -> CodecError:
    return CodecError(f"{what}: {msg}")


# --------------------------------------------------------------------------------------------
# chunks


class ChunkHeader(NamedTuple):
    """The 32-byte header of a Blosc2 chunk (a named tuple: cheap to build on every decode).

    Attributes
    ----------
    version, versionlz, flags, typesize : int
        Bytes 0..3.
    nbytes, blocksize, cbytes : int
        Uncompressed size, block size, and compressed size (header included).
    filters, filters_meta : tuple of int
        The 6-slot filter pipeline (``filters_meta`` as signed bytes).
    udcodec, codec_meta, blosc2_flags : int
        Codec id of user-defined/plugin codecs, codec meta, and byte 31.
    special : int
        0 none, 1 zero, 2 NaN, 3 value, 4 uninitialised.
    flags2 : int
        Byte 30 (bit 0: variable-length blocks, refused).
    """

    version: int
    versionlz: int
    flags: int
    typesize: int
    nbytes: int
    blocksize: int
    cbytes: int
    filters: tuple[int, ...]
    udcodec: int
    codec_meta: int
    filters_meta: tuple[int, ...]
    blosc2_flags: int
    special: int
    flags2: int = 0

    @property
    def memcpyed(self) -> bool:
        """Whether the payload is stored uncompressed right after the header."""
        return bool(self.flags & _FLAG_MEMCPYED)

    @property
    def plugin_codec(self) -> bool:
        """Whether a plugin (user-defined) codec compressed it: its id is ``udcodec``."""
        return self.flags >> 5 == UDCODEC_FORMAT

    @property
    def dont_split(self) -> bool:
        """Whether each block is one stream (not split by byte position)."""
        return bool(self.flags & _FLAG_DONT_SPLIT)

    @property
    def nblocks(self) -> int:
        """Number of blocks (0 for an empty chunk)."""
        if self.nbytes == 0:
            return 0
        return -(-self.nbytes // self.blocksize)


def chunk_header(buf: Any, *, what: str = _WHAT, check_size: bool = True) -> ChunkHeader:
    """Parse and validate the 32-byte header of a Blosc2 chunk.

    Parameters
    ----------
    buf : buffer-like
        The chunk (or, with ``check_size=False``, at least its first 32 bytes).
    what : str
        Name used in error messages (a codec id, a key).
    check_size : bool
        Require ``len(buf) >= cbytes`` and the block-start table to fit.

    Returns
    -------
    ChunkHeader

    Raises
    ------
    CodecError
        If the header is truncated or inconsistent.
    """
    return _chunk_header(as_bytes_view(buf), what, check_size)


def _chunk_header(mv: memoryview, what: str, check_size: bool = True) -> ChunkHeader:
    """:func:`chunk_header` of a flat ``uint8`` view (see :func:`as_bytes_view`)."""
    n = len(mv)
    if n == 0:
        raise _err("empty buffer, expected a Blosc2 chunk", what)
    if n < CHUNK_HEADER_SIZE:
        raise _err(
            f"truncated Blosc2 chunk: {n} bytes, a chunk header alone is {CHUNK_HEADER_SIZE}", what
        )
    v = _CHUNK_HEAD.unpack_from(mv)
    version, flags, typesize, nbytes, blocksize, cbytes = v[0], v[2], v[3], v[4], v[5], v[6]
    if not 2 <= version <= 6:
        raise _err(f"not a Blosc2 chunk (format version byte {version}, expected 2..6)", what)
    if flags & _FLAG_EXTENDED != _FLAG_EXTENDED:
        raise _err(f"not a Blosc2 chunk (flags 0x{flags:02x} lack the extended-header bits)", what)
    if typesize < 1:
        raise _err(f"corrupt Blosc2 chunk header: typesize {typesize}", what)
    if nbytes < 0 or cbytes < CHUNK_HEADER_SIZE or blocksize < 0:
        raise _err(f"corrupt Blosc2 chunk header: {nbytes=}, {blocksize=}, {cbytes=}", what)
    if nbytes > 0 and blocksize == 0:
        raise _err(f"corrupt Blosc2 chunk header: {blocksize=} for {nbytes=}", what)
    if (nbytes > 0 and blocksize > nbytes) or blocksize > _MAX_BLOCKSIZE:
        # C-Blosc2's read_chunk_header refuses both
        raise _err(
            f"corrupt Blosc2 chunk header: {blocksize=} for {nbytes=} (expected 1..{nbytes} "
            f"and at most {_MAX_BLOCKSIZE})",
            what,
        )
    blosc2_flags, flags2 = v[22], v[21]
    special = (blosc2_flags >> 4) & 0x7
    # fields 7..12 filters, 13 udcodec, 14 codec_meta, 15..20 filters_meta, 21 flags2
    hdr = _new_tuple(
        ChunkHeader, (*v[:7], v[7:13], v[13], v[14], v[15:21], blosc2_flags, special, flags2)
    )
    if special > SPECIAL_UNINIT:
        raise _err(f"corrupt Blosc2 chunk header: unknown special kind {special}", what)
    if blosc2_flags & (_B2FLAG_LAZY | _B2FLAG_INSTR_CODEC) or flags2 & _FLAGS2_VL_BLOCKS:
        raise _err(_flag_message(blosc2_flags, flags2), what)
    if special != SPECIAL_NONE and nbytes % typesize:
        raise _err(  # C-Blosc2's read_chunk_header refuses it
            f"corrupt Blosc2 special chunk: {nbytes=} is not a multiple of {typesize=}", what
        )
    if special == SPECIAL_VALUE:
        expect = CHUNK_HEADER_SIZE + typesize
        if cbytes != expect:
            raise _err(f"corrupt Blosc2 special-value chunk: {cbytes=}, expected {expect}", what)
    elif special != SPECIAL_NONE:
        if cbytes != CHUNK_HEADER_SIZE:
            raise _err(f"corrupt Blosc2 special chunk: {cbytes=}, expected 32", what)
    elif flags & _FLAG_MEMCPYED:
        if cbytes != CHUNK_HEADER_SIZE + nbytes:
            raise _err(
                f"corrupt Blosc2 memcpy'd chunk: {cbytes=} but {nbytes=} + 32-byte header", what
            )
    elif nbytes > 0 and cbytes < CHUNK_HEADER_SIZE + 4 * -(-nbytes // blocksize):
        raise _err(
            f"corrupt Blosc2 chunk: {cbytes=} too small for {hdr.nblocks} block starts", what
        )
    if check_size and n < cbytes:
        raise _err(f"truncated Blosc2 chunk: {n} bytes, header says {cbytes}", what)
    return hdr


def _flag_message(blosc2_flags: int, flags2: int) -> str:
    """What a chunk header's refused flag bits (lazy, instrumented, variable-length blocks) mean."""
    if flags2 & _FLAGS2_VL_BLOCKS:
        return (
            "Blosc2 chunk header sets flags2 bit 0 (variable-length blocks): such chunks are "
            "not supported, or the header is damaged; python-blosc2 reads the former"
        )
    if blosc2_flags & _B2FLAG_INSTR_CODEC:
        return (
            "Blosc2 chunk header sets blosc2_flags bit 7 (an instrumented codec: the chunk "
            "decodes to codec timings, not data), or the header is damaged"
        )
    return (
        "corrupt Blosc2 chunk header: lazy-chunk flag set (blosc2_flags bit 3; only C-Blosc2's "
        "in-memory chunks carry it)"
    )


def _repeated_chunk_header(mv: memoryview, what: str) -> ChunkHeader:
    """:func:`_chunk_header` (sizes checked) for headers that repeat across frames, parsed once
    per distinct 32 bytes: the offsets index of a one-chunk frame has the same header in every
    frame. Bad headers are parsed again, uncached, for their message."""
    if len(mv) >= CHUNK_HEADER_SIZE:
        try:
            hdr = _header_of(bytes(mv[:CHUNK_HEADER_SIZE]))
        except CodecError:
            return _chunk_header(mv, what)  # raises, naming *what*
        if len(mv) >= hdr.cbytes:
            return hdr
    return _chunk_header(mv, what)


@functools.lru_cache(maxsize=64)
def _header_of(head: bytes) -> ChunkHeader:
    return _chunk_header(memoryview(head), _WHAT, check_size=False)


def block_starts(buf: Any, hdr: ChunkHeader, *, what: str = _WHAT) -> np.ndarray:
    """Return the validated ``int64`` block-start table of a regular (non-special) chunk.

    Every start must lie inside the chunk, after the table; block *i* spans
    ``[bstarts[i], next larger start or cbytes)``.
    """
    mv = as_bytes_view(buf)
    nb = hdr.nblocks
    end = CHUNK_HEADER_SIZE + 4 * nb
    if len(mv) < end:
        raise _err(f"truncated Blosc2 chunk: block-start table needs {end} bytes", what)
    starts = np.frombuffer(mv[CHUNK_HEADER_SIZE:end], dtype="<i4").astype(np.int64)
    if nb:
        lo, hi = (min(starts), max(starts)) if nb < 64 else (starts.min(), starts.max())
        if lo < end or hi >= hdr.cbytes:
            raise _err(
                f"corrupt Blosc2 chunk: block starts outside [{end}, {hdr.cbytes}) "
                f"(min {int(lo)}, max {int(hi)})",
                what,
            )
    return starts


def validate_chunk(buf: Any, *, what: str = _WHAT, nbytes: int | None = None) -> ChunkHeader:
    """Validate a whole chunk before handing it to ``blosc2.decompress2``.

    Parameters
    ----------
    buf : buffer-like
        The complete chunk.
    what : str
        Name for messages.
    nbytes : int, optional
        Expected decompressed size; a mismatch raises (protects against absurd allocations).
    """
    mv = as_bytes_view(buf)
    hdr = _chunk_header(mv, what)
    check_parsed_chunk(mv, hdr, what=what, nbytes=nbytes)
    return hdr


def check_parsed_chunk(
    mv: memoryview, hdr: ChunkHeader, *, what: str = _WHAT, nbytes: int | None = None
) -> None:
    """The checks of :func:`validate_chunk` past the header, for a chunk whose header was
    already parsed (by :func:`chunk_header` on the same flat view *mv*, with ``check_size``)."""
    if nbytes is not None and hdr.nbytes != nbytes:
        raise _err(
            f"Blosc2 chunk decompresses to {hdr.nbytes} bytes, expected {nbytes} "
            "(wrong chunk shape, blocks or dtype?)",
            what,
        )
    if hdr.special == SPECIAL_NONE and not hdr.memcpyed and hdr.nbytes > 0:
        _check_block_starts(mv, hdr, what)


def _check_block_starts(mv: memoryview, hdr: ChunkHeader, what: str) -> None:
    """:func:`block_starts`' checks without building the table (plain ints for few blocks)."""
    nb = hdr.nblocks
    if nb >= 64:
        block_starts(mv, hdr, what=what)
        return
    end = CHUNK_HEADER_SIZE + 4 * nb
    if len(mv) < end:
        raise _err(f"truncated Blosc2 chunk: block-start table needs {end} bytes", what)
    starts = _int32s(nb).unpack_from(mv, CHUNK_HEADER_SIZE)
    lo, hi = min(starts), max(starts)
    if lo < end or hi >= hdr.cbytes:
        raise _err(
            f"corrupt Blosc2 chunk: block starts outside [{end}, {hdr.cbytes}) "
            f"(min {lo}, max {hi})",
            what,
        )


@functools.lru_cache(maxsize=64)
def _int32s(n: int) -> struct.Struct:
    """A compiled struct of *n* little-endian int32 (a block-start table)."""
    return struct.Struct(f"<{n}i")


# --------------------------------------------------------------------------------------------
# frames


@dataclass(frozen=True)
class B2ndMeta:
    """The ``b2nd`` metalayer of a frame: shape, chunk and block shapes, dtype string.

    ``dtype_str`` is what the writer stored; hdf5plugin and b2h5py store ``'|V<itemsize>'``, so
    callers must take the real dtype from their own metadata.
    """

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    blocks: tuple[int, ...]
    dtype_str: str


class FrameInfo(NamedTuple):
    """Fixed-position fields of a Blosc2 contiguous frame header (a named tuple).

    Attributes
    ----------
    header_size, frame_size : int
        Bytes of the header and of the whole frame.
    nbytes, cbytes : int
        Uncompressed bytes of all chunks; compressed bytes of the chunks section.
    nchunks : int
        Number of chunks (``ceil(nbytes / chunksize)``).
    typesize, blocksize, chunksize : int
        As recorded by the writer (blocksize 0 = automatic).
    codec, clevel : int
        Codec (format) id and compression level; the codec is :data:`UDCODEC_FORMAT` for
        plugin (user-defined) codecs, whose own id is ``udcodec``.
    filters, filters_meta : tuple of int
        The frame-level filter pipeline (6 slots).
    b2nd : B2ndMeta or None
        The n-D metalayer, absent in plain frames (hdf5plugin, 1-D data).
    udcodec : int
        The plugin codec's id (header byte 77), meaningful when ``codec`` is
        :data:`UDCODEC_FORMAT`.
    """

    header_size: int
    frame_size: int
    nbytes: int
    cbytes: int
    nchunks: int
    typesize: int
    blocksize: int
    chunksize: int
    codec: int
    clevel: int
    filters: tuple[int, ...]
    filters_meta: tuple[int, ...]
    b2nd: B2ndMeta | None
    udcodec: int = 0

    @property
    def codec_id(self) -> int:
        """The codec id as C-Blosc2 reports it (``schunk.cparams.codec``): the plugin's own id
        (``udcodec``) for user-defined codecs, else ``codec``."""
        return self.udcodec if self.codec == UDCODEC_FORMAT else self.codec


def is_frame(buf: Any) -> bool:
    """Whether *buf* starts like a Blosc2 contiguous frame (magic ``b"b2frame\\0"`` at 2..9)."""
    return _is_frame(as_bytes_view(buf))


def _is_frame(mv: memoryview) -> bool:
    return len(mv) >= 10 and mv[2:10] == MAGIC


def _be(h: bytes, pos: int, size: int, *, signed: bool = True) -> int:
    return int.from_bytes(h[pos : pos + size], "big", signed=signed)


def parse_b2nd_meta(content: bytes, *, what: str = _WHAT) -> B2ndMeta:
    """Decode and validate the msgpack ``b2nd`` metalayer content (cached: chunks share it)."""
    try:
        return _parse_b2nd_meta_cached(content)
    except CodecError as exc:
        raise _err(str(exc), what) from None


@functools.lru_cache(maxsize=256)
def _parse_b2nd_meta_cached(content: bytes) -> B2ndMeta:
    import msgpack  # a dependency of python-blosc2

    try:
        meta = msgpack.unpackb(content, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise CodecError(f"corrupt b2nd metalayer ({exc!r})") from exc
    if not (isinstance(meta, list) and len(meta) >= 7):
        raise CodecError("corrupt b2nd metalayer: expected a 7-item msgpack array")
    _version, ndim, shape, chunks, blocks, _fmt, dtype_str = meta[:7]
    ok = (
        isinstance(ndim, int)
        and 0 <= ndim <= 16
        and all(
            isinstance(v, list) and len(v) == ndim and all(isinstance(x, int) for x in v)
            for v in (shape, chunks, blocks)
        )
        and isinstance(dtype_str, str)
    )
    if not ok:
        raise CodecError(f"corrupt b2nd metalayer {repr(meta)[:200]}")
    # python-blosc2 writes chunks and blocks of 0 along the empty axes of an empty array
    # (shape (0, 5): chunks = blocks = (0, 5)); only an empty array may have them
    low = 0 if math.prod(shape) == 0 else 1
    if any(x < 0 for x in shape) or any(x < low for x in (*chunks, *blocks)):
        raise CodecError(f"corrupt b2nd metalayer: {shape=}, {chunks=}, {blocks=}")
    if any(b > c for b, c in zip(blocks, chunks, strict=True)):
        raise CodecError(f"corrupt b2nd metalayer: blocks {blocks} exceed chunks {chunks}")
    return B2ndMeta(tuple(shape), tuple(chunks), tuple(blocks), dtype_str)


def _find_b2nd(mv: memoryview, header_size: int, *, what: str) -> tuple[B2ndMeta | None, int]:
    """The ``b2nd`` metalayer of a frame whose first *header_size* bytes *mv* holds (or None),
    and the items of one chunk padded to whole blocks (0 without a metalayer, and for the
    empty blocks of an empty array, whose chunks hold no bytes).

    The metalayers fill the header past its fixed fields, and are the same in every chunk of an
    array: they are parsed once per distinct content (cached), not once per frame.
    """
    try:
        return _b2nd_layout(bytes(mv[FRAME_HEADER_MINLEN:header_size]))
    except CodecError as exc:
        raise _err(str(exc), what) from None


@functools.lru_cache(maxsize=256)
def _b2nd_layout(metalayers: bytes) -> tuple[B2ndMeta | None, int]:
    """:func:`_find_b2nd` of the header bytes past the fixed fields (messages lack *what*)."""
    meta = _find_b2nd_meta(metalayers)
    if meta is None or 0 in meta.blocks:
        return meta, 0
    return meta, math.prod(-(-c // b) * b for c, b in zip(meta.chunks, meta.blocks, strict=True))


def _find_b2nd_meta(metalayers: bytes) -> B2ndMeta | None:
    # positions below are in the frame header: pad the fixed fields back in front
    h = bytes(FRAME_HEADER_MINLEN) + metalayers
    header_size = len(h)
    # 87: fixarray(3); 88: uint16 marker + index size; 91: map16 + nmeta;
    # then per metalayer: fixstr name + int32 offset of its bin32 content
    p = FRAME_HEADER_MINLEN
    if header_size < p + 7 or h[p] != 0x93 or h[p + 1] != 0xCD or h[p + 4] != 0xDE:
        return None
    nmeta = _be(h, p + 5, 2, signed=False)
    q = p + 7
    for _ in range(nmeta):
        if q >= header_size:
            raise CodecError("corrupt frame metalayer index")
        tag = h[q]
        if tag & 0xE0 != 0xA0:
            raise CodecError("corrupt frame metalayer index (expected a name)")
        namelen = tag & 0x1F
        name = h[q + 1 : q + 1 + namelen]
        q += 1 + namelen
        if q + 5 > header_size or h[q] != 0xD2:
            raise CodecError("corrupt frame metalayer index (expected an offset)")
        off = _be(h, q + 1, 4)
        q += 5
        if name != b"b2nd":
            continue
        if off < FRAME_HEADER_MINLEN or off + 5 > header_size or h[off] != 0xC6:
            raise CodecError(f"corrupt b2nd metalayer offset {off}")
        size = _be(h, off + 1, 4, signed=False)
        if off + 5 + size > header_size:
            raise CodecError("corrupt b2nd metalayer: it runs past the frame header")
        return _parse_b2nd_meta_cached(h[off + 5 : off + 5 + size])
    return None


def parse_frame(buf: Any, *, what: str = _WHAT, complete: bool = True) -> FrameInfo:
    """Parse and validate the header of a Blosc2 contiguous frame in O(1).

    Parameters
    ----------
    buf : buffer-like
        The frame; with ``complete=False`` a prefix holding at least the frame header is enough.
    what : str
        Name used in error messages (codec id, key).
    complete : bool
        Check that *buf* holds the whole frame (``frame_size`` bytes).

    Returns
    -------
    FrameInfo

    Raises
    ------
    CodecError
        Not a frame, truncated, or inconsistent sizes.
    """
    mv = as_bytes_view(buf)
    n = len(mv)
    if n == 0:
        raise _err("empty buffer, expected a Blosc2 frame", what)
    if n < 10 or mv[2:10] != MAGIC:  # is_frame, inline: this runs once per chunk
        raise _err("not a Blosc2 frame (no b'b2frame' magic at bytes 2..9)", what)
    if n < FRAME_HEADER_MINLEN:
        raise _err(f"truncated Blosc2 frame: {n} bytes, the header alone is longer", what)
    (
        m0, header_size, m1, frame_size, general_flags, frame_type, codec_byte,
        m2, nbytes, m3, cbytes, m4, typesize, m5, blocksize, m6, chunksize, nfilters,
        *filters_etc,
    ) = _FRAME_HEAD.unpack_from(mv)  # fmt: skip
    if (m0, m1, m2, m3, m4, m5, m6) != _FRAME_MARKERS:
        raise _err("corrupt Blosc2 frame header (msgpack type markers do not match)", what)
    # C-Blosc2's get_header_info / frame reader refuse other frame types and newer formats
    if frame_type != _FRAME_TYPE_CONTIGUOUS:
        raise _err(
            f"not a Blosc2 contiguous frame: expected frame type {_FRAME_TYPE_CONTIGUOUS} at "
            f"byte 26, got frame type {frame_type} instead",
            what,
        )
    if general_flags & 0x0F > _FRAME_FORMAT_MAX:
        raise _err(
            f"unsupported Blosc2 frame: expected format version at most {_FRAME_FORMAT_MAX}, "
            f"got format version {general_flags & 0x0F} instead",
            what,
        )
    if nfilters > _MAX_FILTERS:  # get_header_info refuses it
        raise _err(
            f"corrupt Blosc2 frame header: {nfilters} filter slots, at most {_MAX_FILTERS}", what
        )
    if header_size < FRAME_HEADER_MINLEN or header_size > frame_size:
        raise _err(f"corrupt Blosc2 frame header: {header_size=}, {frame_size=}", what)
    if nbytes < 0 or cbytes < 0 or typesize < 1 or chunksize < 0 or blocksize < 0:
        raise _err(
            f"corrupt Blosc2 frame header: {nbytes=}, {cbytes=}, {typesize=}, {chunksize=}", what
        )
    if header_size + cbytes + CHUNK_HEADER_SIZE > frame_size:
        raise _err(
            f"corrupt Blosc2 frame: {header_size=} + {cbytes=} leaves no room for the offsets "
            f"index in {frame_size=}",
            what,
        )
    if complete and n < frame_size:
        raise _err(f"truncated Blosc2 frame: {n} bytes, header says {frame_size}", what)
    if chunksize > 0:
        nchunks = -(-nbytes // chunksize)
    elif nbytes == 0:
        nchunks = 0
    else:
        raise _err("Blosc2 frames with variable-size chunks are not supported", what)
    b2nd, padded = None, 0
    if n >= header_size:
        b2nd, padded = _find_b2nd(mv, header_size, what=what)
    elif complete:  # pragma: no cover - guarded by the frame_size check
        raise _err("truncated Blosc2 frame header", what)
    if b2nd is not None and chunksize > 0:
        if typesize == 1 and padded and chunksize % padded == 0 and chunksize // padded > 255:
            # items over Blosc2's 255-byte typesize (S300, big structured dtypes) are recorded
            # with typesize 1 by python-blosc2 and hdf5plugin: the b2nd shapes give the real one
            typesize = chunksize // padded
        if padded * typesize != chunksize:
            raise _err(
                f"inconsistent b2nd frame: chunks {b2nd.chunks} / blocks {b2nd.blocks} x "
                f"typesize {typesize} != chunksize {chunksize}",
                what,
            )
    return _new_tuple(  # the fields in order
        FrameInfo,
        (
            header_size,
            frame_size,
            nbytes,
            cbytes,
            nchunks,
            typesize,
            blocksize,
            chunksize,
            codec_byte & 0x0F,  # codec
            codec_byte >> 4,  # clevel
            tuple(filters_etc[:6]),  # filters
            tuple(filters_etc[7:13]),  # filters_meta
            b2nd,
            filters_etc[6],  # udcodec
        ),
    )


def chunk_offsets(buf: Any, info: FrameInfo, *, what: str = _WHAT) -> list[int]:
    """Return the chunk offsets of a complete frame (relative to ``header_size``).

    A negative offset is a frame-level special chunk: its kind is ``(offset >> 56) & 0x7``.

    Raises
    ------
    CodecError
        If the offsets index is truncated, corrupt or points outside the chunks section.
    """
    mv = as_bytes_view(buf)
    pos = info.header_size + info.cbytes
    hdr = chunk_header(mv[pos:], what=what)
    if hdr.nbytes != 8 * info.nchunks:
        raise _err(
            f"corrupt Blosc2 frame: offsets index holds {hdr.nbytes // 8} entries, "
            f"header says {info.nchunks} chunks",
            what,
        )
    if info.nchunks == 0:
        return []
    if hdr.special == SPECIAL_ZERO:
        offs = np.zeros(info.nchunks, dtype=np.int64)
    elif hdr.special != SPECIAL_NONE:
        raise _err(f"corrupt Blosc2 frame: special offsets index kind {hdr.special}", what)
    elif hdr.memcpyed:
        offs = np.frombuffer(mv[pos + CHUNK_HEADER_SIZE : pos + hdr.cbytes], dtype="<i8")
    else:
        import blosc2

        chunk = bytes(mv[pos : pos + hdr.cbytes])
        validate_chunk(chunk, what=what, nbytes=8 * info.nchunks)
        try:
            raw = blosc2.decompress2(chunk)
        except Exception as exc:
            raise _err(f"corrupt Blosc2 frame offsets index ({exc})", what) from exc
        offs = np.frombuffer(raw, dtype="<i8")
    bad = (offs >= info.cbytes) | ((offs >= 0) & (offs + CHUNK_HEADER_SIZE > info.cbytes))
    if bad.any():
        o = int(offs[int(np.argmax(bad))])
        raise _err(f"corrupt Blosc2 frame: chunk offset {o} outside {info.cbytes=}", what)
    return [int(x) for x in offs]


#: A located chunk: its bytes (a view into the frame, header validated), its special kind, and
#: its parsed header; ``(None, kind, None)`` for a frame-level special chunk (no bytes stored).
LocatedChunk = tuple[memoryview | None, int, ChunkHeader | None]


def frame_chunk(
    buf: Any, info: FrameInfo, index: int = 0, *, what: str = _WHAT
) -> tuple[memoryview | None, int]:
    """Locate chunk *index* of a complete frame.

    Returns
    -------
    (chunk, special) : (memoryview or None, int)
        The raw chunk bytes (a view into *buf*, header validated) and the chunk's special kind,
        or ``None`` and the kind of a frame-level special chunk (no bytes stored).
    """
    chunk, special, _hdr = locate_chunk(buf, info, index, what=what)
    return chunk, special


def locate_chunk(buf: Any, info: FrameInfo, index: int = 0, *, what: str = _WHAT) -> LocatedChunk:
    """:func:`frame_chunk`, plus the chunk's parsed header (so callers need not parse it again:
    :func:`check_parsed_chunk` completes :func:`validate_chunk` on it)."""
    mv = as_bytes_view(buf)
    hs = info.header_size
    if info.nchunks == 1 and info.cbytes > 0 and index == 0:
        # O(1): the only stored chunk fills the chunks section (its offset can only be 0)
        chunk = mv[hs : hs + info.cbytes]
        hdr = _chunk_header(chunk, what)
        if hdr.cbytes != info.cbytes:
            raise _err(
                f"corrupt Blosc2 frame: chunk cbytes {hdr.cbytes} != frame cbytes {info.cbytes}",
                what,
            )
        # the offsets index follows: a damaged tail (a partly written file) fails here, as it
        # does in C-Blosc2's frame reader, instead of decoding whatever the chunk now holds
        offsets_hdr = _repeated_chunk_header(mv[hs + info.cbytes :], what)
        if offsets_hdr.nbytes != 8:
            raise _err(
                f"corrupt Blosc2 frame: offsets index of {offsets_hdr.nbytes} bytes for one chunk",
                what,
            )
        return chunk, hdr.special, hdr
    offsets = chunk_offsets(mv, info, what=what)
    if not 0 <= index < len(offsets):
        raise _err(f"chunk index {index} out of range for a frame of {len(offsets)} chunks", what)
    return _chunk_at(mv, info, offsets[index], what)


def frame_chunks(
    buf: Any, info: FrameInfo, *, what: str = _WHAT
) -> Iterator[tuple[memoryview | None, int]]:
    """Every chunk of a complete frame, in order, as :func:`frame_chunk` returns it (the offsets
    index is read once)."""
    for chunk, special, _hdr in locate_chunks(buf, info, what=what):
        yield chunk, special


def locate_chunks(buf: Any, info: FrameInfo, *, what: str = _WHAT) -> Iterator[LocatedChunk]:
    """Every chunk of a complete frame, in order, as :func:`locate_chunk` returns it."""
    mv = as_bytes_view(buf)
    for off in chunk_offsets(mv, info, what=what):
        yield _chunk_at(mv, info, off, what)


def _chunk_at(mv: memoryview, info: FrameInfo, off: int, what: str) -> LocatedChunk:
    if off < 0:
        kind = (off >> 56) & 0x7
        if kind not in (SPECIAL_ZERO, SPECIAL_NAN, SPECIAL_UNINIT):
            raise _err(f"corrupt Blosc2 frame: special offset kind {kind}", what)
        return None, kind, None
    start = info.header_size + off
    hdr = _chunk_header(mv[start : info.header_size + info.cbytes], what)
    return mv[start : start + hdr.cbytes], hdr.special, hdr


def frame_special(buf: Any, *, what: str = _WHAT) -> int:
    """Special kind of the only chunk of a one-chunk frame, in O(1).

    Needs only the first ``header_size + 64`` bytes (a prefix is fine). Handles a special chunk
    stored in the chunks section and a frame-level special offset (``blosc2.zeros`` frames).

    Returns
    -------
    int
        0 none, 1 zero, 2 NaN, 3 value, 4 uninitialised. A frame of several chunks is 0 (none):
        it is decoded chunk by chunk.

    Raises
    ------
    CodecError
        Not a frame, or corrupt.
    """
    mv = as_bytes_view(buf)
    info = parse_frame(mv, what=what, complete=False)
    if info.nchunks != 1:
        return SPECIAL_NONE
    hs = info.header_size
    if info.cbytes > 0:
        hdr = chunk_header(mv[hs : hs + CHUNK_HEADER_SIZE], what=what, check_size=False)
        if hdr.cbytes != info.cbytes:
            raise _err(
                f"corrupt Blosc2 frame: chunk cbytes {hdr.cbytes} != frame cbytes {info.cbytes}",
                what,
            )
        return hdr.special
    # No chunk stored: the offsets index must hold one special offset.
    hdr = chunk_header(mv[hs : hs + CHUNK_HEADER_SIZE], what=what, check_size=False)
    if hdr.nbytes != 8 or not hdr.memcpyed or hdr.special != SPECIAL_NONE:
        raise _err("corrupt Blosc2 frame: empty chunks section without a special offset", what)
    if len(mv) < hs + CHUNK_HEADER_SIZE + 8:
        raise _err("truncated Blosc2 frame: offsets index cut short", what)
    off = int.from_bytes(
        mv[hs + CHUNK_HEADER_SIZE : hs + CHUNK_HEADER_SIZE + 8], "little", signed=True
    )
    if off >= 0:
        raise _err(f"corrupt Blosc2 frame: empty chunks section but chunk offset {off}", what)
    kind = (off >> 56) & 0x7
    if kind not in (SPECIAL_ZERO, SPECIAL_NAN, SPECIAL_UNINIT):
        raise _err(f"corrupt Blosc2 frame: special offset kind {kind}", what)
    return kind
