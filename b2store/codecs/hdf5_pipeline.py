"""HDF5 filter pipeline codec: one Zarr chunk is one raw HDF5 chunk, decoded outside HDF5.

Contract
--------
* The config lists the dataset's HDF5 filters in **HDF5 encode order** (``filters``: dicts with
  ``id``, ``name``, ``cd_values``), the HDF5 ``dtype`` and the full HDF5 ``chunkshape``. Decoding
  applies the filters in reverse order; the output is the C-ordered bytes of the *full* chunk
  (HDF5 stores edge chunks full-size, like Zarr), checked against ``itemsize * prod(chunkshape)``.
* ``nullterm`` (optional): ``[offset, size]`` byte ranges of each item holding fixed-length
  HDF5 strings stored NUL-terminated (``H5T_STR_NULLTERM``, C's default). HDF5 (so h5py) ends such
  a string at its first NUL when reading; after decoding, every byte after a range's first NUL is
  zeroed the same way (C writers leave junk after the terminator). With ``nullterm`` the filter
  list may be empty. Encoding leaves those bytes as they are.
* ``masked=True``: every encoded chunk starts with an 8-byte header, ``b"B2H5"`` + little-endian
  uint32 filter mask (:func:`add_mask_header`); filter *i* is skipped when bit *i* is set,
  exactly as HDF5 does for chunks whose optional filter failed or gave no gain.
  ``masked=False``: the chunk is the raw HDF5 chunk and no filter is skipped.
* Supported filters: deflate (1), shuffle (2), fletcher32 (3), szip (4), bzip2 (307), LZF (32000),
  Blosc (32001), HDF5-LZ4 (32004), bitshuffle (32008; no compression, LZ4 or zstd), Zstd (32015),
  Blosc2 (32026, b2nd or plain cframes). szip, LZF, LZ4 and bitshuffle need the optional
  ``imagecodecs`` package (``pip install b2store[hdf5]``), imported lazily.
* Framings are validated in Python (magic numbers, sizes, block counts) before a C decoder sees the
  bytes; Blosc2 frames go through b2store's own frame parser (:mod:`b2store.codecs._blosc2frame`,
  :func:`b2store.codecs.b2nd.decode_b2nd`), never ``blosc2.schunk_from_cframe``, which aborted the
  process on corrupt frames. Anything wrong raises :class:`~b2store.errors.CodecError` naming
  ``b2store_hdf5`` and the filter; every decoded size is checked against the expected one.
  Sizes read from a chunk's own framing (LZ4 and bitshuffle totals, Blosc ``nbytes``, the zstd
  frame content size, SZIP's size header, Blosc2 frame sizes) are checked *before* anything is
  allocated for them: equal to the expected size, or, where a stage's size is unknown (a filter
  that changes sizes runs before it on write), at most twice the chunk plus 1 MiB; streams
  without a size (deflate, bzip2, LZF) are inflated no further than that bound.
* Encoding is implemented for every supported filter and writes chunks HDF5 reads back (tested
  with ``write_direct_chunk``); with ``masked=True`` an LZF step that cannot shrink a chunk is
  skipped and recorded in the mask, as HDF5 does.
* The codec holds no mutable state: it pickles and is safe to share between threads.
"""

from __future__ import annotations

import bz2
import math
import struct
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray, ndarray_copy

from b2store._chunk_origins import add_origin
from b2store.codecs._blosc2frame import is_frame
from b2store.codecs._common import (
    CNAMES,
    codec_from_config,
    parse_bool,
    parse_int_range,
)
from b2store.errors import CodecError

__all__ = [
    "BITSHUFFLE",
    "BLOSC",
    "BLOSC2",
    "BLOSC_SNAPPY",
    "BZIP2",
    "CODEC_ID",
    "DEFLATE",
    "FILTER_NAMES",
    "FLETCHER32",
    "LZ4",
    "LZF",
    "MASK_HEADER_SIZE",
    "MASK_MAGIC",
    "NBIT",
    "SCALEOFFSET",
    "SHUFFLE",
    "SUPPORTED_FILTERS",
    "SZIP",
    "ZFP",
    "ZSTD",
    "HDF5Pipeline",
    "add_mask_header",
    "frame_chunk",
    "needs_imagecodecs",
    "parse_config_ints",
    "parse_filter_specs",
    "parse_nullterm",
    "split_mask_header",
    "unframe_chunk",
]

CODEC_ID = "b2store_hdf5"

#: Magic bytes that start a masked chunk; followed by the filter mask as ``<u4``.
MASK_MAGIC = b"B2H5"
MASK_HEADER_SIZE = 8

# HDF5 filter ids: the built-in filters, then the registered plugin ids (The HDF Group's
# "Registered Filter Plugins" list).
DEFLATE, SHUFFLE, FLETCHER32, SZIP, NBIT, SCALEOFFSET = 1, 2, 3, 4, 5, 6
BZIP2, LZF, BLOSC, LZ4, BITSHUFFLE, ZFP, ZSTD, BLOSC2 = (
    307,
    32000,
    32001,
    32004,
    32008,
    32013,
    32015,
    32026,
)
_SZ, _SZ3 = 32017, 32024

#: Names of the HDF5 filter ids b2store knows about (supported or not).
FILTER_NAMES: dict[int, str] = {
    DEFLATE: "deflate",
    SHUFFLE: "shuffle",
    FLETCHER32: "fletcher32",
    SZIP: "szip",
    NBIT: "nbit",
    SCALEOFFSET: "scaleoffset",
    BZIP2: "bzip2",
    LZF: "lzf",
    BLOSC: "blosc",
    LZ4: "lz4",
    BITSHUFFLE: "bitshuffle",
    ZFP: "zfp",
    ZSTD: "zstd",
    _SZ: "sz",
    _SZ3: "sz3",
    BLOSC2: "blosc2",
}

#: Filter ids this codec decodes.
SUPPORTED_FILTERS = frozenset(
    {DEFLATE, SHUFFLE, FLETCHER32, SZIP, BZIP2, LZF, BLOSC, LZ4, BITSHUFFLE, ZSTD, BLOSC2}
)
_NEEDS_IMAGECODECS = frozenset({SZIP, LZF, LZ4, BITSHUFFLE})
#: Filters that change nothing but the byte order inside the buffer (size-preserving).
_SIZE_PRESERVING = frozenset({SHUFFLE})
_BITSHUFFLE_COMPRESSORS = {0: "none", 2: "lz4", 3: "zstd"}
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_MAX_FILTERS = 32
#: Largest HDF5 filter id (``H5Z_filter_t`` ids are 0..65535) and ``cd_values`` entry (C
#: ``unsigned int``); HDF5 chunk dimensions are 32-bit too.
_MAX_FILTER_ID = 65535
_MAX_UINT32 = 2**32 - 1


def needs_imagecodecs(filter_id: int) -> bool:
    """Return True when decoding HDF5 filter ``filter_id`` needs the optional imagecodecs."""
    return filter_id in _NEEDS_IMAGECODECS


def add_mask_header(raw: bytes | bytearray | memoryview, mask: int) -> bytes:
    """Prefix a raw HDF5 chunk with its filter mask, for a codec configured ``masked=True``.

    Not to be confused with :func:`b2store.codecs._blosc2frame.frame_chunk`, which extracts a
    chunk from a Blosc2 frame; the old name :func:`frame_chunk` is kept as an alias.

    Parameters
    ----------
    raw
        The chunk's bytes exactly as stored in the HDF5 file.
    mask
        The chunk's HDF5 filter mask (bit *i* set: filter *i* was not applied).

    Returns
    -------
    bytes
        ``b"B2H5" + uint32le(mask) + raw``.
    """
    if isinstance(mask, bool) or not isinstance(mask, int | np.integer):
        raise TypeError(f"Expected an integer filter mask. Got {type(mask).__name__} instead.")
    m = parse_int_range(CODEC_ID, "filter mask", mask, 0, _MAX_UINT32)
    return MASK_MAGIC + struct.pack("<I", m) + bytes(raw)


#: The former name of :func:`add_mask_header` (``b2store.hdf5.filters`` re-exports it).
frame_chunk = add_mask_header


def split_mask_header(buf: bytes | memoryview, nfilters: int) -> tuple[int, memoryview]:
    """Split a masked chunk into ``(mask, payload)``; the inverse of :func:`add_mask_header`.

    Raises
    ------
    CodecError
        If the header is missing or the mask names filters beyond ``nfilters``.
    """
    view = memoryview(buf).cast("B")
    if len(view) < MASK_HEADER_SIZE or bytes(view[:4]) != MASK_MAGIC:
        raise CodecError(
            f"{CODEC_ID}: a masked chunk must start with {MASK_MAGIC!r} + uint32 filter mask; got "
            f"{bytes(view[:8])!r} ({len(view)} bytes). Serve chunks of masked datasets through "
            "b2store.codecs.hdf5_pipeline.add_mask_header() (b2store.hdf5.filters.frame_chunk)."
        )
    (mask,) = struct.unpack("<I", view[4:8])
    if mask >> nfilters:
        raise CodecError(
            f"{CODEC_ID}: chunk filter mask {mask:#x} skips filters beyond the {nfilters} of the "
            "pipeline; the chunk header is corrupt."
        )
    return mask, view[MASK_HEADER_SIZE:]


#: The former name of :func:`split_mask_header`.
unframe_chunk = split_mask_header


def _imagecodecs(fname: str) -> Any:
    try:
        import imagecodecs
    except ImportError:  # pragma: no cover - imagecodecs is installed in the test environment
        raise CodecError(
            f"{CODEC_ID}: the HDF5 filter {fname} needs imagecodecs: pip install b2store[hdf5]"
        ) from None
    return imagecodecs


def _fail(fname: str, what: str) -> CodecError:
    return CodecError(f"{CODEC_ID}: cannot decode HDF5 {fname} data: {what}")


class _NoGainError(CodecError):
    """An optional filter that cannot shrink a chunk (HDF5 then skips it via the filter mask)."""


def _check_size(fname: str, out: bytes | memoryview, expected: int | None) -> None:
    if expected is not None and len(out) != expected:
        raise _fail(fname, f"decoded {len(out)} bytes, expected {expected}")


def _check_claim(fname: str, claimed: int, expected: int | None, limit: int | None) -> None:
    """Check a decoded size read from a chunk's own header *before* anything is allocated for
    it: it must be the expected size when that is known, else at most ``limit`` bytes (a
    corrupt 4- or 8-byte size field must not make a decoder allocate gigabytes)."""
    if expected is not None:
        if claimed != expected:
            raise _fail(fname, f"header says {claimed} decoded bytes, expected {expected}")
    elif limit is not None and claimed > limit:
        raise _fail(
            fname,
            f"header says {claimed} decoded bytes, more than the {limit} any stage of this "
            "chunk's pipeline can produce; the chunk is corrupt",
        )


# --- one decoder/encoder pair per filter --------------------------------------------------------
# A decoder gets (cd_values, data, expected decoded size or None, dtype itemsize, limit=None)
# -> bytes or another bytes-like object. ``limit`` (or None) bounds the decoded size where it is
# unknown (a filter that changes sizes runs before this one on write): no size read from the
# chunk's own header makes a decoder allocate more (see HDF5Pipeline._limit).


class Decoder(Protocol):
    """(cd_values, data, expected decoded size or None, itemsize, limit=None) -> bytes-like."""

    def __call__(
        self,
        cd: Sequence[int],
        data: memoryview,
        expected: int | None,
        itemsize: int,
        /,
        limit: int | None = None,
    ) -> Any: ...


Encoder = Callable[[Sequence[int], bytes, int], bytes]


def _inflate_bounded(
    name: str,
    stream: str,
    d: Any,
    data: memoryview,
    expected: int | None,
    unbounded: int,
    limit: int | None = None,
) -> bytes:
    """Run a streaming decompressor ``d`` over ``data``, never past ``expected + 1`` bytes
    (``limit + 1`` when the size is unknown, ``unbounded`` without a limit either).

    A corrupt or hostile stream cannot inflate past the expected size; a stream that does not
    end, or ends at another size, is an error naming the filter.
    """
    bound = expected if expected is not None else limit
    try:
        out = d.decompress(data, bound + 1 if bound is not None else unbounded)
    except (zlib.error, OSError, ValueError) as e:
        raise _fail(name, f"invalid {stream} stream ({e})") from None
    if expected is None and bound is not None and len(out) > bound:
        raise _fail(name, f"the {stream} stream decodes to more than {bound} bytes")
    if not d.eof:
        raise _fail(name, f"truncated {stream} stream")
    _check_size(name, out, expected)
    return bytes(out)


def _libdeflate() -> Any:
    """imagecodecs' ``deflate_decode`` (libdeflate) when installed, else None."""
    try:
        import imagecodecs
    except ImportError:  # pragma: no cover - imagecodecs comes with b2store[hdf5]
        return None
    return imagecodecs.deflate_decode if imagecodecs.DEFLATE.available else None


def _dec_deflate(
    cd: Sequence[int],
    data: memoryview,
    expected: int | None,
    itemsize: int,
    limit: int | None = None,
) -> Any:
    """zlib streams; with a known decoded size, libdeflate decodes straight into a buffer of
    exactly that size (2-3x zlib's speed, and a stream that would decode to more is an error,
    never a larger allocation). Otherwise zlib, bounded as in :func:`_inflate_bounded`."""
    decode = _libdeflate() if expected else None
    if decode is None:
        return _inflate_bounded("deflate", "zlib", zlib.decompressobj(), data, expected, 0, limit)
    try:
        out = decode(data, out=expected)
    except Exception as e:  # imagecodecs.DeflateError: corrupt, or longer than expected
        raise _fail("deflate", f"invalid zlib stream ({e})") from None
    _check_size("deflate", out, expected)
    return out


def _enc_deflate(cd: Sequence[int], data: bytes, itemsize: int) -> bytes:
    return zlib.compress(data, cd[0] if cd else 6)


def _shuffle_size(cd: Sequence[int], itemsize: int) -> int:
    es = int(cd[0]) if cd and cd[0] > 0 else itemsize
    return es


def _dec_shuffle(
    cd: Sequence[int],
    data: memoryview,
    expected: int | None,
    itemsize: int,
    limit: int | None = None,
) -> Any:
    import numcodecs

    es = _shuffle_size(cd, itemsize)
    _check_size("shuffle", data, expected)
    n = len(data) // es
    if es <= 1 or n <= 1:
        return data
    # unshuffled straight into the result; HDF5 leaves the trailing len % es bytes as they
    # are and numcodecs.Shuffle wants whole items, so those are copied after
    out = np.empty(len(data), dtype=np.uint8)
    numcodecs.Shuffle(elementsize=es).decode(data[: n * es], out=out[: n * es])
    out[n * es :] = np.frombuffer(data[n * es :], dtype=np.uint8)
    return out


def _enc_shuffle(cd: Sequence[int], data: bytes, itemsize: int) -> bytes:
    import numcodecs

    es = _shuffle_size(cd, itemsize)
    n = len(data) // es
    if es <= 1 or n <= 1:
        return bytes(data)
    head = numcodecs.Shuffle(elementsize=es).encode(np.frombuffer(data[: n * es], np.uint8))
    return bytes(head) + data[n * es :]


def _dec_fletcher32(
    cd: Sequence[int],
    data: memoryview,
    expected: int | None,
    itemsize: int,
    limit: int | None = None,
) -> bytes:
    import numcodecs

    if len(data) < 4:
        raise _fail("fletcher32", f"{len(data)} bytes is shorter than the 4-byte checksum")
    try:
        out = bytes(numcodecs.Fletcher32().decode(data))
    except RuntimeError as e:
        raise _fail("fletcher32", f"checksum mismatch, the chunk is corrupt ({e})") from None
    except IndexError as e:  # numcodecs 0.16 on some short buffers
        raise _fail("fletcher32", f"invalid checksummed buffer ({e})") from None
    _check_size("fletcher32", out, expected)
    return out


def _enc_fletcher32(cd: Sequence[int], data: bytes, itemsize: int) -> bytes:
    import numcodecs

    return bytes(numcodecs.Fletcher32().encode(np.frombuffer(data, np.uint8)))


def _dec_bzip2(
    cd: Sequence[int],
    data: memoryview,
    expected: int | None,
    itemsize: int,
    limit: int | None = None,
) -> bytes:
    return _inflate_bounded("bzip2", "bz2", bz2.BZ2Decompressor(), data, expected, -1, limit)


def _enc_bzip2(cd: Sequence[int], data: bytes, itemsize: int) -> bytes:
    return bz2.compress(data, cd[0] if cd and 1 <= cd[0] <= 9 else 9)


def _dec_zstd(
    cd: Sequence[int],
    data: memoryview,
    expected: int | None,
    itemsize: int,
    limit: int | None = None,
) -> bytes:
    import numcodecs

    if bytes(data[:4]) != _ZSTD_MAGIC:
        raise _fail("zstd", f"no zstd frame magic, got {bytes(data[:4])!r}")
    content_size = _zstd_content_size(data)
    if content_size is not None:
        # numcodecs allocates what the frame header says before decoding anything
        _check_claim("zstd", content_size, expected, limit)
    try:
        out = bytes(numcodecs.Zstd().decode(data))
    except RuntimeError as e:
        raise _fail("zstd", f"invalid zstd frame ({e})") from None
    _check_size("zstd", out, expected)
    return out


def _zstd_content_size(data: memoryview) -> int | None:
    """The Frame_Content_Size of the zstd frame starting ``data`` (RFC 8878 3.1.1.1), or None
    when the frame does not record it."""
    if len(data) < 5:
        raise _fail("zstd", f"{len(data)} bytes is shorter than a zstd frame header")
    fhd = data[4]
    single_segment = fhd >> 5 & 1
    fcs_size = (single_segment, 2, 4, 8)[fhd >> 6]
    if not fcs_size:
        return None
    start = 5 + (not single_segment) + (0, 1, 2, 4)[fhd & 3]
    if len(data) < start + fcs_size:
        raise _fail("zstd", f"{len(data)} bytes is shorter than the zstd frame header")
    size = int.from_bytes(data[start : start + fcs_size], "little")
    return size + 256 if fcs_size == 2 else size


def _enc_zstd(cd: Sequence[int], data: bytes, itemsize: int) -> bytes:
    import numcodecs

    return bytes(numcodecs.Zstd(level=cd[0] if cd else 3).encode(data))


def _dec_blosc(
    cd: Sequence[int],
    data: memoryview,
    expected: int | None,
    itemsize: int,
    limit: int | None = None,
) -> bytes:
    import numcodecs

    if len(data) < 16:
        raise _fail("blosc", f"{len(data)} bytes is shorter than the 16-byte Blosc header")
    nbytes, _blocksize, cbytes = struct.unpack("<III", data[4:16])
    if cbytes != len(data):
        raise _fail("blosc", f"header says {cbytes} compressed bytes, the chunk has {len(data)}")
    _check_claim("blosc", nbytes, expected, limit)
    fmt = data[2] >> 5  # the inner compressor's format (bits 5..7 of the flags)
    if not data[2] & 0x02 and fmt not in _BLOSC_FORMATS:
        name = {2: "snappy"}.get(fmt, f"unknown format {fmt}")
        raise _fail(
            "blosc",
            f"the chunk was compressed with Blosc's {name} codec, which numcodecs' Blosc (built "
            f"without it) cannot decode; supported: {', '.join(_BLOSC_FORMATS.values())}. "
            "Read it with h5py + hdf5plugin, or rewrite it with another cname",
        )
    try:
        return bytes(numcodecs.Blosc().decode(data))
    except RuntimeError as e:
        raise _fail("blosc", str(e)) from None


_BLOSC_CNAMES = {code: name for name, code in CNAMES.items()}
#: The compressor code (cd_values[6]) of the HDF5 Blosc filter for snappy, which numcodecs'
#: Blosc is built without.
BLOSC_SNAPPY = 3
#: Blosc1 compressor formats (chunk flags bits 5..7) numcodecs' Blosc decodes: not snappy (2).
_BLOSC_FORMATS = {0: "blosclz", 1: "lz4/lz4hc", 3: "zlib", 4: "zstd"}


def _enc_blosc(cd: Sequence[int], data: bytes, itemsize: int) -> bytes:
    import numcodecs

    clevel = cd[4] if len(cd) > 4 else 5
    shuffle = cd[5] if len(cd) > 5 else 1
    cname = _BLOSC_CNAMES.get(cd[6] if len(cd) > 6 else 0, "blosclz")
    typesize = cd[2] if len(cd) > 2 and cd[2] > 0 else itemsize
    codec = numcodecs.Blosc(cname=cname, clevel=clevel, shuffle=shuffle, typesize=typesize)
    return bytes(codec.encode(data))


#: Most bytes one LZF stream byte can decode to: a 3-byte back reference copies 264 bytes.
_LZF_MAX_RATIO = 88


def _dec_lzf(
    cd: Sequence[int],
    data: memoryview,
    expected: int | None,
    itemsize: int,
    limit: int | None = None,
) -> bytes:
    """Raw LZF (no header). With the decoded size unknown (a filter that changes sizes, e.g.
    LZ4 or bzip2, runs before LZF), start from cd_values[2] (the chunk's size) and grow the
    buffer as h5py's LZF filter does, bounded by LZF's largest expansion."""
    ic = _imagecodecs("lzf")
    raw = bytes(data)
    if expected is not None:
        size = most = expected
    else:
        most = max(len(raw) * _LZF_MAX_RATIO, 1)
        if limit is not None:
            most = min(most, limit)
        size = min(cd[2] if len(cd) > 2 and cd[2] > 0 else 2 * len(raw), most) or 1
    while True:
        try:
            out = ic.lzf_decode(raw, header=False, out=size)
            break
        except Exception as e:
            if "not large enough" not in str(e) or size >= most:
                raise _fail("lzf", f"invalid LZF stream ({e})") from None
        size = min(2 * size, most)
    if expected is not None:
        _check_size("lzf", out, expected)
    return bytes(out)


def _enc_lzf(cd: Sequence[int], data: bytes, itemsize: int) -> bytes:
    ic = _imagecodecs("lzf")
    out = ic.lzf_encode(data, header=False)
    if len(out) > len(data):
        # HDF5's LZF filter fails when the output does not fit in the input's size; HDF5 then
        # stores the chunk raw with the mask bit set.
        raise _NoGainError(f"{CODEC_ID}: LZF gives no gain on this chunk; HDF5 would store it raw")
    return bytes(out)


def _dec_lz4(
    cd: Sequence[int],
    data: memoryview,
    expected: int | None,
    itemsize: int,
    limit: int | None = None,
) -> bytes:
    ic = _imagecodecs("lz4")
    if len(data) < 12:
        raise _fail("lz4", f"{len(data)} bytes is shorter than the 12-byte HDF5-LZ4 header")
    total, bsize = struct.unpack(">QI", data[:12])
    _check_claim("lz4", total, expected, limit)
    if total and bsize == 0:
        raise _fail("lz4", "header block size is 0")
    if total > 2**40:
        raise _fail("lz4", f"header says {total} decoded bytes, implausibly many")
    # walk the block table before the C decoder sees it
    pos = 12
    done = 0
    i = 0
    while done < total:
        n = min(bsize, total - done)
        if pos + 4 > len(data):
            raise _fail("lz4", f"truncated: block {i} has no length field")
        (csize,) = struct.unpack(">I", data[pos : pos + 4])
        pos += 4
        if csize == 0 or csize > n or pos + csize > len(data):
            raise _fail("lz4", f"block {i} claims {csize} bytes ({len(data) - pos} left, max {n})")
        pos += csize
        done += n
        i += 1
    if pos != len(data):
        raise _fail("lz4", f"{len(data) - pos} trailing bytes after the last block")
    try:
        out = ic.lz4h5_decode(data, out=total)
    except Exception as e:
        raise _fail("lz4", f"invalid LZ4 block ({e})") from None
    _check_size("lz4", out, total)
    return bytes(out)


def _enc_lz4(cd: Sequence[int], data: bytes, itemsize: int) -> bytes:
    ic = _imagecodecs("lz4")
    total = len(data)
    bsize = min(total, cd[0] if cd and cd[0] > 0 else 1 << 30) or 1
    parts = [struct.pack(">QI", total, bsize)]
    for start in range(0, total, bsize):
        blk = data[start : start + bsize]
        comp = bytes(ic.lz4_encode(blk))
        if len(comp) >= len(blk):
            comp = blk
        parts += [struct.pack(">I", len(comp)), comp]
    return b"".join(parts)


def _bitshuffle_params(cd: Sequence[int], itemsize: int) -> tuple[int, int, int]:
    if len(cd) < 5:
        raise _fail("bitshuffle", f"Expected at least 5 cd_values. Got {tuple(cd)} instead.")
    elemsize = cd[2] if cd[2] > 0 else itemsize
    comp = cd[4]
    if comp not in _BITSHUFFLE_COMPRESSORS:
        raise _fail("bitshuffle", f"unsupported compressor id {comp} in cd_values[4]")
    block_elems = cd[3]
    if block_elems == 0:  # bshuf_default_block_size
        block_elems = max(128, (8192 // elemsize) // 8 * 8)
    return elemsize, block_elems, comp


def _dec_bitshuffle(
    cd: Sequence[int],
    data: memoryview,
    expected: int | None,
    itemsize: int,
    limit: int | None = None,
) -> bytes:
    ic = _imagecodecs("bitshuffle")
    elemsize, block_elems, comp = _bitshuffle_params(cd, itemsize)
    if comp == 0:
        _check_size("bitshuffle", data, expected)
        if len(data) % elemsize:
            raise _fail("bitshuffle", f"{len(data)} bytes is not a whole number of items")
        try:
            out = ic.bitshuffle_decode(data, itemsize=elemsize, blocksize=block_elems)
        except Exception as e:
            raise _fail("bitshuffle", str(e)) from None
        return bytes(out)
    if len(data) < 12:
        raise _fail("bitshuffle", f"{len(data)} bytes is shorter than the 12-byte header")
    total, bsize = struct.unpack(">QI", data[:12])
    _check_claim("bitshuffle", total, expected, limit)
    if total > 2**40:
        raise _fail("bitshuffle", f"header says {total} decoded bytes, implausibly many")
    if bsize == 0 or bsize % (8 * elemsize):
        raise _fail("bitshuffle", f"header block size {bsize} is not a multiple of 8 elements")
    if total % elemsize:
        raise _fail("bitshuffle", f"{total} bytes is not a whole number of {elemsize}-byte items")
    nelems = total // elemsize
    block_elems = bsize // elemsize
    sizes = [bsize] * (nelems // block_elems)
    last = (nelems % block_elems) // 8 * 8
    if last:
        sizes.append(last * elemsize)
    # the (de)compressed blocks are concatenated, then unshuffled in one call (bitshuffle
    # works block by block with the same block size, and copies the < 8-element tail as is)
    out = bytearray(total)
    view = memoryview(out)
    decode = ic.lz4_decode if comp == 2 else ic.zstd_decode
    pos, done = 12, 0
    for i, n in enumerate(sizes):
        if pos + 4 > len(data):
            raise _fail("bitshuffle", f"truncated: block {i} has no length field")
        (csize,) = struct.unpack(">I", data[pos : pos + 4])
        pos += 4
        if csize == 0 or pos + csize > len(data):
            raise _fail("bitshuffle", f"block {i} claims {csize} bytes, {len(data) - pos} left")
        try:
            blk = decode(data[pos : pos + csize], out=view[done : done + n])
        except Exception as e:
            raise _fail("bitshuffle", f"block {i}: invalid compressed block ({e})") from None
        if len(blk) != n:
            raise _fail("bitshuffle", f"block {i} decoded to {len(blk)} bytes, expected {n}")
        pos += csize
        done += n
    rest = total - done
    if pos + rest != len(data):
        raise _fail("bitshuffle", f"{len(data) - pos} bytes left for a {rest}-byte raw tail")
    view[done:] = data[pos:]
    try:
        res = ic.bitshuffle_decode(out, itemsize=elemsize, blocksize=block_elems)
    except Exception as e:
        raise _fail("bitshuffle", str(e)) from None
    return bytes(res)


def _enc_bitshuffle(cd: Sequence[int], data: bytes, itemsize: int) -> bytes:
    ic = _imagecodecs("bitshuffle")
    elemsize, block_elems, comp = _bitshuffle_params(cd, itemsize)
    if len(data) % elemsize:
        # HDF5's bitshuffle filter fails on such input ("Non integer number of elements", e.g.
        # after a filter that changed sizes) and HDF5 stores the chunk without it (mask bit);
        # the decoder refuses such a header too
        raise _NoGainError(
            f"{CODEC_ID}: bitshuffle cannot take {len(data)} bytes, not a whole number of "
            f"{elemsize}-byte items; HDF5 would store the chunk without it"
        )
    nelems = len(data) // elemsize
    bsize = block_elems * elemsize
    parts = [] if comp == 0 else [struct.pack(">QI", len(data), bsize)]
    pos = 0
    while True:
        ne = min(block_elems, nelems - pos // elemsize) // 8 * 8
        if ne == 0:
            break
        blk = bytes(
            ic.bitshuffle_encode(data[pos : pos + ne * elemsize], itemsize=elemsize, blocksize=ne)
        )
        if comp == 0:
            parts.append(blk)
        else:
            level = cd[5] if comp == 3 and len(cd) > 5 else None
            c = ic.lz4_encode(blk) if comp == 2 else ic.zstd_encode(blk, level=level)
            parts += [struct.pack(">I", len(c)), bytes(c)]
        pos += ne * elemsize
    parts.append(data[pos:])
    return b"".join(parts)


def _dec_szip(
    cd: Sequence[int],
    data: memoryview,
    expected: int | None,
    itemsize: int,
    limit: int | None = None,
) -> bytes:
    ic = _imagecodecs("szip")
    if len(cd) < 4:
        raise _fail("szip", f"Expected at least 4 cd_values. Got {tuple(cd)} instead.")
    if len(data) < 4:
        raise _fail("szip", f"{len(data)} bytes is shorter than the 4-byte size header")
    (size,) = struct.unpack("<I", data[:4])
    _check_claim("szip", size, expected, limit)
    try:
        out = ic.szip_decode(bytes(data), *cd[:4], header=True, out=size)
    except Exception as e:
        raise _fail("szip", f"invalid SZIP stream ({e})") from None
    _check_size("szip", out, size)
    return bytes(out)


def _enc_szip(cd: Sequence[int], data: bytes, itemsize: int) -> bytes:
    ic = _imagecodecs("szip")
    return bytes(ic.szip_encode(data, *cd[:4], header=True))


def _dec_blosc2(
    cd: Sequence[int],
    data: memoryview,
    expected: int | None,
    itemsize: int,
    limit: int | None = None,
) -> bytes:
    # b2store's Blosc2 frame parser validates the frame in Python (header, b2nd meta, offsets
    # index, chunk header) before C-Blosc2 sees the chunk; python-blosc2's own frame parser
    # (schunk_from_cframe) aborted the process on fuzzed frames.
    from b2store.codecs import _blosc2frame as bf
    from b2store.codecs.b2nd import decode_b2nd, decompress_chunk

    what = f"{CODEC_ID} (HDF5 blosc2)"
    if not is_frame(data):
        raise _fail("blosc2", "not a Blosc2 contiguous frame (no b'b2frame' magic at bytes 2..9)")
    info = bf.parse_frame(data, what=what)
    # what decoding allocates, from the frame's own header: never above the chunk's size
    claimed = info.nbytes if info.b2nd is None else math.prod(info.b2nd.shape) * info.typesize
    if expected is None:
        _check_claim("blosc2", claimed, None, limit)
    elif claimed > expected:
        raise _fail(
            "blosc2",
            f"the frame header says {claimed} decoded bytes, more than the {expected} of the chunk",
        )
    if info.nchunks != 1:
        # a writer's frame of several chunks (hdf5plugin reads b2nd ones; of a plain one it
        # returns the first chunk only): decoded chunk by chunk into place
        itemsize = max(info.typesize, 1)
        out = decode_b2nd(data, dtype=np.dtype(f"V{itemsize}"), what=what).tobytes()
    elif info.b2nd is not None:
        out = np.ascontiguousarray(decode_b2nd(data, what=what)).tobytes()
    else:
        # plain frame: its size need not be a multiple of the typesize (after fletcher32)
        chunk, special = bf.frame_chunk(data, info, 0, what=what)
        if chunk is None:
            if special not in (bf.SPECIAL_ZERO, bf.SPECIAL_UNINIT):
                raise _fail("blosc2", f"unexpected special chunk kind {special} in a plain frame")
            out = bytes(info.nbytes)
        else:
            flat = decompress_chunk(chunk, dtype=np.dtype(np.uint8), nbytes=None, what=what)
            out = flat.tobytes()
        if len(out) != info.nbytes:
            raise _fail("blosc2", f"the chunk holds {len(out)} bytes, the frame {info.nbytes}")
    _check_size("blosc2", out, expected)
    return out


#: The Blosc2 filter code (cd_values[5]) of TRUNC_PREC.
_BLOSC2_TRUNC_PREC = 4


def _enc_blosc2(cd: Sequence[int], data: bytes, itemsize: int) -> bytes:
    import blosc2

    typesize = cd[2] if len(cd) > 2 and cd[2] > 0 else itemsize
    flt = cd[5] if len(cd) > 5 else 1
    if flt == _BLOSC2_TRUNC_PREC:
        # hdf5plugin passes no precision (filters_meta 0), with which C-Blosc2 keeps every
        # bit, and python-blosc2 refuses precision 0 ("Error while creating the NDArray"):
        # write no filter, the same bytes once decoded (each frame names its own filters)
        flt = 0
    cparams = {
        "clevel": cd[4] if len(cd) > 4 else 5,
        "filters": [blosc2.Filter(flt)],
        "codec": blosc2.Codec(cd[6] if len(cd) > 6 else 0),
        "typesize": typesize,
    }
    if len(cd) > 7 and len(data) == cd[3]:
        ndim = cd[7]
        shape = tuple(cd[8 : 8 + ndim])
        arr = np.frombuffer(data, np.dtype(f"V{typesize}")).reshape(shape)
        return bytes(blosc2.asarray(arr, chunks=shape, cparams=cparams).to_cframe())
    sc = blosc2.SChunk(chunksize=len(data), cparams=cparams)
    sc.append_data(data)
    return bytes(sc.to_cframe())


_DECODERS: dict[int, tuple[Decoder, Encoder]] = {
    DEFLATE: (_dec_deflate, _enc_deflate),
    SHUFFLE: (_dec_shuffle, _enc_shuffle),
    FLETCHER32: (_dec_fletcher32, _enc_fletcher32),
    SZIP: (_dec_szip, _enc_szip),
    BZIP2: (_dec_bzip2, _enc_bzip2),
    LZF: (_dec_lzf, _enc_lzf),
    BLOSC: (_dec_blosc, _enc_blosc),
    LZ4: (_dec_lz4, _enc_lz4),
    BITSHUFFLE: (_dec_bitshuffle, _enc_bitshuffle),
    ZSTD: (_dec_zstd, _enc_zstd),
    BLOSC2: (_dec_blosc2, _enc_blosc2),
}


def parse_config_ints(key: str, value: Any, lo: int = 0, hi: int = _MAX_UINT32) -> list[int]:
    """A list of integers from the inclusive range ``[lo, hi]`` (``chunkshape``,
    ``cd_values``: HDF5 stores both as 32-bit unsigned integers), checked with
    :func:`~b2store.codecs._common.parse_int_range` (numpy integers are accepted; strings,
    floats and bools are refused)."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(f"{CODEC_ID}: {key}: Expected a list of integers. Got {value!r} instead.")
    return [parse_int_range(CODEC_ID, f"{key}[{i}]", v, lo, hi) for i, v in enumerate(value)]


def parse_filter_specs(filters: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """HDF5 filter specs ``{id, name, cd_values}`` in encode order, checked and normalised."""
    if isinstance(filters, str | bytes) or not isinstance(filters, Sequence):
        raise TypeError(
            f"{CODEC_ID}: filters: Expected a list of filter dicts. "
            f"Got {type(filters).__name__} instead."
        )
    if not 0 < len(filters) <= _MAX_FILTERS:
        raise CodecError(
            f"{CODEC_ID}: filters: Expected an integer from the inclusive range "
            f"(1, {_MAX_FILTERS}) of filters. Got {len(filters)} instead."
        )
    out = []
    for i, f in enumerate(filters):
        if not isinstance(f, Mapping) or "id" not in f:
            raise TypeError(
                f"{CODEC_ID}: filters[{i}]: Expected a dict with keys id, name, cd_values. "
                f"Got {f!r} instead."
            )
        fid = parse_int_range(CODEC_ID, f"filters[{i}].id", f["id"], 0, _MAX_FILTER_ID)
        name = str(f.get("name") or FILTER_NAMES.get(fid, f"filter {fid}"))
        if fid not in SUPPORTED_FILTERS:
            raise CodecError(
                f"{CODEC_ID}: HDF5 filter {fid} ({name}) is not supported; supported ids are "
                f"{sorted(SUPPORTED_FILTERS)}."
            )
        cd = parse_config_ints(f"filters[{i}].cd_values", f.get("cd_values", ()))
        if fid == BITSHUFFLE:
            _bitshuffle_params(cd, 1)
        out.append({"id": fid, "name": name, "cd_values": cd})
    return out


def parse_nullterm(value: Any, itemsize: int | None) -> list[list[int]]:
    """``nullterm`` ranges ``[[offset, size], ...]``, checked against the item size."""
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(
            f"{CODEC_ID}: nullterm: Expected a list of [offset, size] pairs. Got {value!r} instead."
        )
    out = []
    for i, pair in enumerate(value):
        ints = parse_config_ints(f"nullterm[{i}]", pair)
        if len(ints) != 2 or ints[1] < 1:
            raise CodecError(
                f"{CODEC_ID}: nullterm[{i}]: Expected [offset >= 0, size >= 1]. Got {pair!r} "
                "instead."
            )
        if itemsize is not None and ints[0] + ints[1] > itemsize:
            raise CodecError(
                f"{CODEC_ID}: nullterm[{i}]: Expected a byte range inside the {itemsize}-byte "
                f"item. Got {ints}, which ends at byte {ints[0] + ints[1]}, instead."
            )
        out.append(ints)
    return out


def _end_at_nul(data: Any, itemsize: int, ranges: Sequence[Sequence[int]]) -> bytes:
    """Zero every byte after the first NUL of each range of each item (HDF5's NULLTERM read)."""
    view = np.frombuffer(data, np.uint8)
    if not itemsize or view.size % itemsize:
        return bytes(view)
    items = view.reshape(-1, itemsize)
    dirty = []
    for off, size in ranges:
        zero = items[:, off : off + size] == 0
        # rows with a non-NUL byte after a NUL (usually none: writers pad with NULs)
        rows = np.flatnonzero((zero[:, :-1] & ~zero[:, 1:]).any(axis=1))
        if rows.size:
            dirty.append((off, size, rows, zero[rows]))
    if not dirty:
        return bytes(view)
    arr = items.copy()
    for off, size, rows, zero in dirty:
        sub = arr[rows, off : off + size]
        sub[np.logical_or.accumulate(zero, axis=1)] = 0
        arr[rows, off : off + size] = sub
    return arr.tobytes()


class HDF5Pipeline(Codec):
    """Decode raw HDF5 chunks with the dataset's whole filter pipeline (``b2store_hdf5``).

    Not auto-selected for pipelines Zarr's built-in codecs express exactly: see
    :func:`b2store.hdf5.filters.plan_codecs`. Picklable and thread-safe (no mutable state).

    Parameters
    ----------
    filters
        HDF5 filters in encode order: dicts ``{"id": int, "name": str, "cd_values": [int, ...]}``.
    dtype
        The HDF5 dataset dtype (``numpy.dtype`` string); gives decoded sizes and item sizes.
    chunkshape
        The full HDF5 chunk shape.
    masked
        Whether each chunk starts with the :func:`add_mask_header` header carrying its filter
        mask.
    nullterm
        ``[offset, size]`` byte ranges of each item holding NUL-terminated fixed-length strings,
        ended at their first NUL after decoding as HDF5 does (needs ``dtype``).

    See Also
    --------
    b2store.codecs.hdf5_zarr3.HDF5PipelineCodec : the Zarr v3 bytes-to-bytes twin.
    """

    codec_id = CODEC_ID

    def __init__(
        self,
        *,
        filters: Sequence[Mapping[str, Any]],
        dtype: str | None = None,
        chunkshape: Sequence[int] | None = None,
        masked: bool = False,
        nullterm: Sequence[Sequence[int]] | None = None,
    ) -> None:
        if nullterm and dtype is None:
            raise CodecError(
                f"{CODEC_ID}: nullterm needs the dtype (the item size): Expected a numpy dtype "
                "string. Got dtype=None instead."
            )
        no_filters = (
            isinstance(filters, Sequence) and not isinstance(filters, str | bytes) and not filters
        )
        self.filters = [] if nullterm and no_filters else parse_filter_specs(filters)
        if dtype is not None:
            try:
                dt = np.dtype(dtype)
            except TypeError as e:
                raise CodecError(
                    f"{CODEC_ID}: dtype: Expected a numpy dtype string. Got {dtype!r} instead."
                ) from e
            if dt.hasobject:
                raise CodecError(
                    f"{CODEC_ID}: dtype: Expected a fixed-size dtype (HDF5 chunks hold no Python "
                    f"objects). Got {dtype!r} instead."
                )
            self.dtype: str | None = dt.str  # '|V<n>' for compound types: bytes are what matter
            self._itemsize = dt.itemsize
        else:
            self.dtype = None
            self._itemsize = 1
        if chunkshape is not None:
            self.chunkshape: list[int] | None = parse_config_ints("chunkshape", chunkshape)
        else:
            self.chunkshape = None
        self.masked = parse_bool(CODEC_ID, "masked", masked)
        self.nullterm = parse_nullterm(nullterm, self._itemsize if dtype is not None else None)
        self._nbytes = (
            self._itemsize * math.prod(self.chunkshape)
            if self.chunkshape is not None and dtype is not None
            else None
        )
        # Most bytes any stage of the pipeline may decode to where its size is unknown (a
        # filter that changes sizes runs before it on write): compressors that cannot shrink
        # data grow it by a header and a small fraction, fletcher32 by 4 bytes; twice the chunk
        # plus 1 MiB is far above any real stage, and far below what a corrupt size field in a
        # chunk's header may claim (up to 2**64 bytes).
        self._limit = 2 * self._nbytes + (1 << 20) if self._nbytes is not None else None
        if any(needs_imagecodecs(f["id"]) for f in self.filters):
            _imagecodecs(", ".join(f["name"] for f in self.filters if needs_imagecodecs(f["id"])))

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "id": self.codec_id,
            "filters": [dict(f, cd_values=list(f["cd_values"])) for f in self.filters],
            "dtype": self.dtype,
            "chunkshape": self.chunkshape,
            "masked": self.masked,
        }
        if self.nullterm:
            config["nullterm"] = [list(r) for r in self.nullterm]
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HDF5Pipeline:
        """Build from a numcodecs config; unknown keys raise a ``TypeError`` naming them."""
        codec: HDF5Pipeline = codec_from_config(cls, CODEC_ID, config)
        return codec

    def __repr__(self) -> str:
        names = ", ".join(f["name"] for f in self.filters)
        return (
            f"{type(self).__name__}(filters=[{names}], dtype={self.dtype!r}, "
            f"chunkshape={self.chunkshape}, masked={self.masked}"
            + (f", nullterm={self.nullterm})" if self.nullterm else ")")
        )

    def _sizes(self, mask: int) -> list[int | None]:
        """Expected input size of each filter on encode (None where a compressor precedes)."""
        size: int | None = self._nbytes
        sizes: list[int | None] = []
        for i, f in enumerate(self.filters):
            sizes.append(size)
            if mask >> i & 1:
                continue
            if f["id"] == FLETCHER32 and size is not None:
                size += 4
            elif f["id"] not in _SIZE_PRESERVING:
                size = None
        return sizes

    def decode_bytes(self, buf: Any) -> bytes | memoryview:
        """Decode one chunk to the C-ordered bytes of the full chunk (bytes or a byte view)."""
        data = memoryview(ensure_contiguous_ndarray(buf)).cast("B")
        mask = 0
        if self.masked:
            mask, data = split_mask_header(data, len(self.filters))
        sizes = self._sizes(mask)
        out: Any = data
        for i in reversed(range(len(self.filters))):
            if mask >> i & 1:
                continue
            f = self.filters[i]
            decoder = _DECODERS[f["id"]][0]
            try:
                out = decoder(
                    f["cd_values"], memoryview(out), sizes[i], self._itemsize, limit=self._limit
                )
            except CodecError:
                raise
            except Exception as e:  # a decoder library's own error on bad bytes
                raise _fail(f["name"], f"{type(e).__name__}: {e}") from e
        if self._nbytes is not None and len(out) != self._nbytes:
            raise CodecError(
                f"{CODEC_ID}: the decoded chunk has {len(out)} bytes, expected {self._nbytes} for "
                f"{self.chunkshape=} and {self.dtype=}; the filter list or the chunk is wrong."
            )
        if self.nullterm:
            return _end_at_nul(out, self._itemsize, self.nullterm)
        if isinstance(out, memoryview) and out.obj is data.obj:
            return bytes(out)  # never hand out a view of the caller's buffer
        return out if isinstance(out, bytes) else memoryview(out).cast("B")

    def decode(self, buf: Any, out: Any = None) -> Any:
        try:
            raw = self.decode_bytes(buf)
        except CodecError as err:  # zarr's v2 view gives no key: name the chunk if known
            add_origin(err, buf)
            raise
        arr: np.ndarray[Any, Any] = np.frombuffer(raw, np.uint8)
        if self.dtype is not None and self.chunkshape is not None:
            arr = arr.view(np.dtype(self.dtype)).reshape(self.chunkshape)
        if out is not None:
            return ndarray_copy(arr, out)
        return arr

    def encode_bytes(self, buf: Any, mask: int = 0) -> bytes:
        """Encode C-ordered chunk bytes through the pipeline (skipping filters set in ``mask``).

        With ``masked=True`` a filter that cannot shrink the chunk (LZF) is skipped and its bit
        set in the returned header's mask, as HDF5 does; without, that raises CodecError.
        """
        data = bytes(memoryview(ensure_contiguous_ndarray(buf)).cast("B"))
        if self._nbytes is not None and len(data) != self._nbytes:
            raise CodecError(
                f"{CODEC_ID}: Expected {self._nbytes} bytes to encode for {self.chunkshape=} "
                f"and {self.dtype=}. Got {len(data)} instead."
            )
        if mask and not self.masked:
            raise CodecError(f"{CODEC_ID}: a non-zero mask needs a codec configured masked=True")
        for i, f in enumerate(self.filters):
            if mask >> i & 1:
                continue
            try:
                data = _DECODERS[f["id"]][1](f["cd_values"], data, self._itemsize)
            except _NoGainError:
                if not self.masked:
                    raise
                mask |= 1 << i  # what HDF5 does when an optional filter fails on a chunk
            except CodecError:
                raise
            except Exception as e:  # the library's own error, e.g. an out-of-range level
                raise CodecError(
                    f"{CODEC_ID}: cannot encode HDF5 {f['name']} data with cd_values "
                    f"{f['cd_values']}: {type(e).__name__}: {e}"
                ) from e
        return add_mask_header(data, mask) if self.masked else data

    def encode(self, buf: Any) -> bytes:
        return self.encode_bytes(buf)
