"""JPEG 2000 codec (Grok backend): one Zarr chunk is one b2nd cframe of 2-D images.

Contract
--------
* ``encode(ndarray)`` takes a chunk of shape ``(..., H, W)`` (``ndim >= 2``) and dtype uint8,
  uint16, int8 or int16 (int8/int16 lossless only), and returns a one-chunk b2nd cframe (it opens
  with :func:`blosc2.ndarray_from_cframe`) in which every Blosc2 block is one ``(H, W)`` image coded
  as an independent JPEG 2000 codestream with blosc2-j2k (Blosc2 codec 39, Grok backend), blocks
  ``(1, ..., 1, H, W)``, no filters, ``NEVER_SPLIT``. Images must be at least 16 x 16 pixels.
  Everything else (uint32, floats, bool, 1-D chunks, tiny images) is refused with a
  :class:`~b2store.errors.CodecError` *before* the plugin sees it: the plugins accept some of
  these and then cannot read them back.
* Lossless (reversible 5/3 wavelet) unless ``ratio`` (target compression ratio of the image,
  e.g. ``10``) or ``psnr`` (target PSNR in dB relative to the dtype's full scale, 65535 for
  uint16 and 255 for uint8, e.g. ``70``) is set. With ``psnr``, each encoded chunk is decoded
  and checked: if an image decodes more than ``PSNR_TOLERANCE_DB`` (6 dB, a factor 2 in RMS
  error) below the target (Grok's rate control misses by tens of dB on some images, or cannot
  reach high targets on uint8), the chunk is stored lossless instead, with a
  :class:`RuntimeWarning`. Encoding with ``psnr`` thus costs one decode more.
* When JPEG 2000 cannot make an image smaller than its raw bytes (incompressible noise), the plugin
  fails; the chunk is then stored lossless with Blosc2 ZSTD + SHUFFLE in the same b2nd layout
  (lossy settings emit a :class:`RuntimeWarning`). It is still a valid b2nd cframe.
* ``decode(bytes)`` accepts b2nd cframes written by blosc2-j2k (codec 39), by blosc2-grok (codec
  37; needs ``pip install blosc2-grok``, decoding works on blosc2 4.x although its encoder does not)
  or by the fallback above, and returns an ndarray with the frame's shape and dtype (``|V1``/``|V2``
  frames are viewed as uint8/uint16). The frame header, metalayer, chunk header, block offsets
  and each block's JP2 boxes and JPEG 2000 main header (SIZ against the expected image size,
  COD, tile-part lengths, EOC) are checked before the C decoder runs (Grok crashes the process on
  a corrupt SIZ); bad bytes raise :class:`~b2store.errors.CodecError` naming
  ``b2store_grok``. Blosc2 frames carry no checksum: a flipped bit in a JPEG 2000 payload may decode
  to other values instead of failing.

Threads: the JPEG 2000 plugin keeps its parameters in process-global state, so encodes are
serialised by a module lock around "set parameters + compress". Decodes run concurrently and
release the GIL (this module calls the process-global ``blosc2.set_releasegil(True)``).
The codec object itself is immutable and picklable.
"""

from __future__ import annotations

import importlib
import math
import struct
import threading
import warnings
from typing import Any, NamedTuple

import blosc2
import numpy as np
from numcodecs.abc import Codec

from b2store.codecs import _blosc2frame as bf
from b2store.codecs._b2nd_chunk import _special_array
from b2store.codecs._common import (
    MAX_CHUNK_BYTES,
    as_written_float,
    codec_from_config,
    parse_int_range,
)
from b2store.codecs.b2nd import decompress_chunk
from b2store.errors import CodecError

__all__ = ["MIN_IMAGE_SIDE", "PSNR_TOLERANCE_DB", "Grok", "check_chunk_bytes"]

CODEC_ID = "b2store_grok"
#: Smallest image side (pixels) accepted: Grok fails on 8 x 8 and on most images below 16 x 16.
MIN_IMAGE_SIDE = 16
_J2K_CODEC = 39  # blosc2-j2k
_GROK_CODEC = 37  # blosc2-grok
_ENCODABLE = (np.dtype("u1"), np.dtype("u2"), np.dtype("i1"), np.dtype("i2"))

#: Encoded bytes, or a view of them (codestreams are checked in place, not copied).
_Bytes = bytes | memoryview

_lock = threading.Lock()  # guards the plugin's global parameters and plugin loading
_loaded: dict[str, Any] = {}


def _load_j2k() -> Any:
    """Import and register blosc2-j2k once.

    C-Blosc2 loads plugin codecs lazily: it opens the plugin library if the process has
    loaded it already, else it asks whatever ``python`` is first on PATH where the plugin
    package lives. Importing the package first makes the lookup work whichever interpreter
    runs this.
    """
    mod = _loaded.get("j2k")
    if mod is not None:
        return mod
    with _lock:
        if "j2k" not in _loaded:
            try:
                mod = importlib.import_module("blosc2_j2k")
            except ImportError as exc:
                raise ValueError(
                    "b2store_grok needs blosc2-j2k: pip install 'b2store[jpeg2000]'"
                ) from exc
            mod.register_codec()
            try:
                mod.configure(backend="grok")
            except RuntimeError as exc:
                # the process used J2K through python-blosc2 before (blosc2.open of a J2K
                # array): the runtime is configured already, with its default backend
                if "already in use" not in str(exc) or _j2k_backends(mod) != ["grok"]:
                    raise CodecError(
                        f"b2store_grok: blosc2-j2k could not be set to its grok backend ({exc})"
                        "; create the codec before reading JPEG 2000 data with python-blosc2"
                    ) from exc
            blosc2.set_releasegil(True)
            _loaded["j2k"] = mod
    return _loaded["j2k"]


def _j2k_backends(mod: Any) -> list[str]:
    """The JPEG 2000 backends blosc2-j2k ships (``["grok"]``), or ``[]`` if it cannot say."""
    try:
        return list(mod.available_backends().get("j2k", []))
    except Exception:  # an older or newer blosc2-j2k: unknown
        return []


def _load_grok() -> Any:
    """Import blosc2-grok (codec 37) for decoding chunks it wrote."""
    if "grok" in _loaded:
        return _loaded["grok"]
    with _lock:
        if "grok" not in _loaded:
            try:
                _loaded["grok"] = importlib.import_module("blosc2_grok")
            except ImportError as exc:
                raise CodecError(
                    "b2store_grok: this chunk was written by blosc2-grok (Blosc2 codec 37); "
                    "decoding it needs the plugin: pip install blosc2-grok"
                ) from exc
    return _loaded["grok"]


def _parse_target(name: str, value: Any, low: float, high: float) -> float | None:
    """``None`` or a number in ``(low, high]`` (a bool or non-number is a ``TypeError``)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{CODEC_ID}: {name}: Expected a number. Got {value!r} instead.")
    v = as_written_float(value)
    if not low < v <= high:  # (NaN fails too; the message states the range accepted)
        raise CodecError(
            f"{CODEC_ID}: {name}: Expected a number from the range ({low:g}, {high:g}]. "
            f"Got {v:g} instead."
        )
    return v


#: How far below its ``psnr`` target an image may decode (dB) before the chunk is stored
#: lossless instead: 6 dB is a factor 2 in RMS error. Grok's rate control misses by a few dB
#: on small images, but by 50 dB on some synthetic ones (alternating rows of 0 and 4095 decode
#: as a constant 2048 whatever the target).
PSNR_TOLERANCE_DB = 6.0


def _worst_psnr(arr: np.ndarray, decoded: np.ndarray) -> float:
    """The lowest PSNR (dB, relative to the dtype's full scale, as Grok's ``dB`` mode counts
    it) of the images ``(..., H, W)`` of *decoded* against *arr*; ``inf`` when exact.

    One image at a time, in int64 (exact for 8- to 16-bit images): whole-chunk float64
    copies took 8 to 16 times the chunk's memory at each encode.
    """
    h, w = arr.shape[-2:]
    mse = 0.0
    for a, d in zip(arr.reshape(-1, h, w), decoded.reshape(-1, h, w), strict=True):
        diff = d.astype(np.int64) - a
        mse = max(mse, float(np.dot(diff.ravel(), diff.ravel())) / diff.size)
    if mse == 0:
        return math.inf
    peak = float(np.iinfo(arr.dtype).max)
    return 10 * math.log10(peak * peak / mse)


def check_chunk_bytes(shape: tuple[int, ...], dtype: Any) -> None:
    """Raise :class:`CodecError` for chunks larger than Blosc2 compresses (C-Blosc2 fails
    with a bare "Error while creating the context" on them)."""
    dt = np.dtype(dtype)
    nbytes = math.prod(shape) * dt.itemsize
    if nbytes > MAX_CHUNK_BYTES:
        raise CodecError(
            f"{CODEC_ID}: Expected chunks of at most {MAX_CHUNK_BYTES} bytes (Blosc2's limit "
            f"per chunk). Got a {tuple(shape)} {dt} chunk of {nbytes} bytes instead: use "
            "smaller chunks."
        )


class Grok(Codec):
    """JPEG 2000 (Grok) in Blosc2 b2nd frames, one 2-D image per block.

    Parameters
    ----------
    ratio : float, optional
        Target compression ratio per image (lossy), in ``(1, 10000]``. Exclusive with ``psnr``.
    psnr : float, optional
        Target PSNR in dB w.r.t. the dtype's full scale (lossy), in ``(0, 200]``; a chunk
        that misses it by more than 6 dB is stored lossless (see the module). Exclusive with
        ``ratio``. Neither set means lossless.
    nthreads : int, optional
        Blosc2 threads; images of one chunk are coded in parallel. Default 1.

    Raises
    ------
    ValueError
        If blosc2-j2k is not installed; :class:`~b2store.errors.CodecError` (a ``ValueError``)
        if a setting is out of range (both set, ...).
    TypeError
        If a setting has the wrong type.

    See Also
    --------
    b2store.codecs.b2nd.B2nd : lossless/near-lossless Blosc2 codec for any fixed-size dtype.

    Notes
    -----
    Thread-safe: encodes are serialised by a module lock (the plugin's parameters are process
    global), decodes run in parallel with the GIL released. Picklable (config only).
    """

    codec_id = CODEC_ID

    def __init__(
        self, *, ratio: float | None = None, psnr: float | None = None, nthreads: int = 1
    ) -> None:
        self.ratio = _parse_target("ratio", ratio, 1.0, 10000.0)
        self.psnr = _parse_target("psnr", psnr, 0.0, 200.0)
        if self.ratio is not None and self.psnr is not None:
            raise CodecError(
                f"{CODEC_ID}: ratio, psnr: Expected at most one of ratio and psnr. Got "
                f"ratio={self.ratio:g} and psnr={self.psnr:g} instead."
            )
        self.nthreads = parse_int_range(CODEC_ID, "nthreads", nthreads, 1, 256)
        _load_j2k()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Grok:
        """Build from a numcodecs config; unknown keys raise a ``TypeError`` naming them."""
        codec: Grok = codec_from_config(cls, CODEC_ID, config)
        return codec

    @property
    def lossless(self) -> bool:
        """True when neither ``ratio`` nor ``psnr`` is set."""
        return self.ratio is None and self.psnr is None

    # ------------------------------------------------------------------ encode
    def check_layout(self, dtype: Any, shape: tuple[int, ...]) -> None:
        """Raise :class:`CodecError` unless chunks of *dtype* and *shape* can be encoded.

        Checks the dtype (uint8/uint16, int8/int16 lossless only, not big-endian) and that a
        chunk holds 2-D images (``ndim >= 2``); the Zarr v3 codec calls it when an array is
        created, so a bad array is refused before its metadata is written.
        """
        dt = np.dtype(dtype)
        if dt.byteorder == ">":
            raise CodecError(
                f"b2store_grok: cannot encode big-endian dtype {dt}: the decoded chunk is "
                "little-endian. Store the array as little-endian ('<u2')."
            )
        if dt not in _ENCODABLE:
            raise CodecError(
                f"b2store_grok: cannot encode dtype {dt}: JPEG 2000 in Blosc2 reads back only "
                "uint8, uint16, int8 and int16 images. Use b2store_b2nd for other dtypes."
            )
        if dt.kind == "i" and not self.lossless:
            raise CodecError(
                f"b2store_grok: lossy coding of signed dtype {dt} is not supported (the plugin "
                "codes it as unsigned, so values around 0 wrap). Use lossless, or shift the data "
                "to unsigned."
            )
        if len(shape) < 2:
            raise CodecError(
                f"b2store_grok: Expected a chunk of 2-D images (..., H, W). Got "
                f"shape={tuple(shape)} instead."
            )

    def _check_chunk(self, buf: Any) -> np.ndarray:
        if not isinstance(buf, np.ndarray):
            raise CodecError(
                "b2store_grok: encode: Expected an n-D numpy array of images (..., H, W). Got "
                f"{type(buf).__name__} instead (flat bytes carry no image shape)."
            )
        arr = buf
        self.check_layout(arr.dtype, arr.shape)
        if arr.flags.f_contiguous and not arr.flags.c_contiguous:
            # a numcodecs compressor keeps the buffer's bytes as they lie (zarr v2 order="F"
            # reads them back in F order): code the C-ordered transpose
            arr = arr.T
        self.check_image_size(*arr.shape[-2:])
        check_chunk_bytes(arr.shape, arr.dtype)
        return np.ascontiguousarray(arr)

    @staticmethod
    def check_image_size(h: int, w: int) -> None:
        """Raise :class:`CodecError` for images JPEG 2000 (Grok) cannot code."""
        if min(h, w) < MIN_IMAGE_SIDE:
            raise CodecError(
                f"b2store_grok: images of {h} x {w} pixels are too small for JPEG 2000 (Grok "
                f"needs at least {MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE}); use larger chunks along "
                "the last two axes or b2store_b2nd."
            )

    def _j2k_params(self, *, lossless: bool = False) -> dict[str, Any]:
        if lossless:
            mode, layers = None, []
        elif self.ratio is not None:
            mode, layers = "rates", [self.ratio]
        elif self.psnr is not None:
            mode, layers = "dB", [self.psnr]
        else:
            mode, layers = None, []
        return {
            "quality_mode": mode,
            "quality_layers": np.array(layers, dtype=np.float64),
            "num_threads": 1,
        }

    def encode(self, buf: Any) -> bytes:
        """Encode a chunk of images into a b2nd cframe.

        Parameters
        ----------
        buf : numpy.ndarray
            Array of shape ``(..., H, W)``, dtype uint8/uint16 (or int8/int16, lossless only).

        Returns
        -------
        bytes
            A one-chunk b2nd cframe.

        Raises
        ------
        CodecError
            If the dtype, shape or image size cannot be coded and read back.
        """
        arr = self._check_chunk(buf)
        blocks = (1,) * (arr.ndim - 2) + arr.shape[-2:]
        frame = self._encode_j2k(arr, blocks, lossless=False)
        if frame is not None and self.psnr is not None:
            worst = _worst_psnr(arr, self.decode(frame))
            if worst < self.psnr - PSNR_TOLERANCE_DB:
                warnings.warn(
                    f"b2store_grok: JPEG 2000 missed psnr={self.psnr:g} dB on a {arr.shape} "
                    f"{arr.dtype} chunk (an image decoded at {worst:.1f} dB); stored it "
                    "lossless instead.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                frame = self._encode_j2k(arr, blocks, lossless=True)
        if frame is not None:
            return frame
        if not self.lossless:
            warnings.warn(
                f"b2store_grok: JPEG 2000 could not code a {arr.shape} {arr.dtype} chunk with "
                f"{self.get_config()}; stored it lossless with Blosc2 ZSTD instead.",
                RuntimeWarning,
                stacklevel=2,
            )
        fallback = {"codec": blosc2.Codec.ZSTD, "clevel": 5, "nthreads": self.nthreads}
        out = blosc2.asarray(arr, chunks=arr.shape, blocks=blocks, cparams=fallback)
        return bytes(out.to_cframe())

    def _encode_j2k(
        self, arr: np.ndarray, blocks: tuple[int, ...], *, lossless: bool
    ) -> bytes | None:
        """*arr* as a b2nd frame of JPEG 2000 images, or ``None`` when the plugin fails (its
        output would be larger than the raw image)."""
        j2k = _load_j2k()
        cparams = {
            "codec": blosc2.Codec.J2K,
            "filters": [],
            "splitmode": blosc2.SplitMode.NEVER_SPLIT,
            "nthreads": self.nthreads,
        }
        params = self._j2k_params(lossless=lossless)
        try:
            with _lock:
                j2k.set_params_defaults(**params)
                out = blosc2.asarray(arr, chunks=arr.shape, blocks=blocks, cparams=cparams)
                return bytes(out.to_cframe())
        except RuntimeError:
            return None  # JPEG 2000 output larger than the raw image: fall back (see encode)

    # ------------------------------------------------------------------ decode
    def decode(self, buf: Any, out: Any = None) -> Any:
        """Decode a b2nd cframe written by blosc2-j2k, blosc2-grok or the fallback.

        Parameters
        ----------
        buf : bytes-like
            The encoded chunk.
        out : numpy.ndarray, optional
            Destination of the right size (numcodecs contract).

        Returns
        -------
        numpy.ndarray
            The images, with the frame's shape and dtype.

        Raises
        ------
        CodecError
            If the bytes are not a valid one-chunk b2nd cframe of images.
        """
        frame = _inspect_frame(_as_bytes_view(buf))
        if frame.codec == _GROK_CODEC:
            _load_grok()
        else:
            _load_j2k()
        nbytes = math.prod(frame.shape) * frame.dtype.itemsize
        if frame.chunk is None:  # a frame-level special chunk (blosc2.zeros): no bytes stored
            # zeros/uninitialised; a NaN one is refused (images are integers)
            flat = _special_array(
                frame.special, nbytes // frame.dtype.itemsize, frame.dtype, b"", CODEC_ID
            )
        else:
            _check_chunk_header(
                frame.chunk, nbytes, frame.codec, frame.shape[-2:], frame.dtype.itemsize
            )
            # GIL released; a fallback chunk (plain Blosc2) of another writer whose filters
            # C-Blosc2 gets wrong on several threads (a DELTA) is decoded on one thread
            flat = decompress_chunk(
                frame.chunk,
                dtype=frame.dtype,
                nbytes=nbytes,
                nthreads=self.nthreads,
                what=CODEC_ID,
            )
        # Blocks are (1, ..., 1, H, W) == the trailing dims, so block order is C order; the
        # decoded array is fresh, writable memory, like every numcodecs codec's output.
        result = flat.reshape(frame.shape)
        if out is not None:
            # numcodecs semantics: the decoded bytes, in out's memory order (an F-ordered out
            # holds the F-ordered chunk encode stored as its C-ordered transpose)
            from numcodecs.compat import ensure_ndarray_like

            out_arr = ensure_ndarray_like(out)
            if out_arr.nbytes != result.nbytes or not (
                out_arr.flags.c_contiguous or out_arr.flags.f_contiguous
            ):
                raise CodecError(
                    f"b2store_grok: Expected out to be a contiguous buffer of {result.nbytes} "
                    f"bytes. Got {out_arr.nbytes} bytes (shape {out_arr.shape}) instead."
                )
            np.copyto(
                out_arr.reshape(-1, order="A").view(np.uint8), result.reshape(-1).view(np.uint8)
            )
            return out
        return result


def _as_bytes_view(buf: Any) -> memoryview:
    try:
        return bf.as_bytes_view(buf)
    except TypeError as exc:
        raise CodecError(
            f"{CODEC_ID}: Expected a bytes-like encoded chunk. Got {type(buf).__name__} instead."
        ) from exc


class _ImageFrame(NamedTuple):
    """What :meth:`Grok.decode` needs from a validated frame."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    codec: int  # Blosc2 codec id (37 grok, 39 J2K, or a built-in one for the fallback)
    chunk: memoryview | None  # the raw chunk; None for a frame-level special chunk
    special: int  # the chunk's special kind (bf.SPECIAL_*)


def _inspect_frame(data: memoryview) -> _ImageFrame:
    """Validate the frame header, b2nd metalayer and offsets index in pure Python (the frame
    is parsed once; no C parser sees it) and locate the one chunk."""
    if not bf.is_frame(data):
        raise CodecError(
            f"{CODEC_ID}: not a Blosc2 frame ({len(data)} bytes; an encoded chunk starts with "
            "the b2frame magic)"
        )
    info = bf.parse_frame(data, what=CODEC_ID)  # sizes, msgpack markers, b2nd metalayer
    if info.frame_size != len(data):
        raise CodecError(
            f"{CODEC_ID}: corrupt frame: header says {info.frame_size} bytes "
            f"(header {info.header_size}), got {len(data)}"
        )
    meta = info.b2nd
    if meta is None:
        raise CodecError(
            f"{CODEC_ID}: not a b2nd frame (no b2nd metalayer, as in a plain Blosc2 frame of "
            "1-D data); b2store_grok reads one-chunk b2nd frames of 2-D images: decode other "
            "Blosc2 frames with b2store_b2nd"
        )
    nchunks, shape, chunks, blocks, dtype_str = (
        info.nchunks,
        meta.shape,
        meta.chunks,
        meta.blocks,
        meta.dtype_str,
    )
    ndim = len(shape)
    try:
        dtype = np.dtype(dtype_str)
    except Exception as exc:  # numpy raises TypeError/ValueError/SyntaxError on garbage
        raise CodecError(f"{CODEC_ID}: corrupt b2nd metalayer dtype {dtype_str!r}") from exc
    if dtype.kind == "V" and dtype.itemsize in (1, 2):
        dtype = np.dtype(f"u{dtype.itemsize}")
    ok = (
        nchunks == 1
        and ndim >= 2
        and chunks == shape
        and blocks == (1,) * (ndim - 2) + shape[-2:]
        and dtype.kind in "ui"
        and dtype.itemsize in (1, 2)
    )
    if not ok:
        raise CodecError(
            f"{CODEC_ID}: not a chunk of 2-D images: {nchunks=}, {shape=}, {chunks=}, "
            f"{blocks=}, dtype {dtype_str!r}; b2store_grok reads one-chunk frames of uint8/16 or "
            "int8/16 whose blocks are whole (H, W) images: decode other Blosc2 frames (tiles, "
            "colour images, several chunks) with b2store_b2nd"
        )
    chunk, special = bf.frame_chunk(data, info, 0, what=CODEC_ID)  # offsets index checked
    return _ImageFrame(shape, dtype, info.codec_id, chunk, special)


def _check_chunk_header(
    chunk: memoryview, nbytes: int, frame_codec: int, image: tuple[int, ...], itemsize: int
) -> None:
    """Check the 32-byte Blosc2 chunk header against the metalayer before decompressing (the
    caller has loaded the plugin the frame names, which the chunk's codec must match)."""
    hdr = bf.chunk_header(chunk, what=CODEC_ID)
    if hdr.nbytes != nbytes or hdr.cbytes != len(chunk):
        raise CodecError(
            f"{CODEC_ID}: chunk header says {hdr.nbytes} bytes ({hdr.cbytes} compressed), "
            f"metalayer expects {nbytes} ({len(chunk)} present)"
        )
    if hdr.special or hdr.memcpyed:  # special-value or memcpy'd chunk: plain Blosc2, no plugin
        return
    if hdr.plugin_codec:  # its id is the header's udcodec byte
        codec = hdr.udcodec
        if codec not in (_J2K_CODEC, _GROK_CODEC) or codec != frame_codec:
            raise CodecError(
                f"{CODEC_ID}: chunk uses Blosc2 codec {codec} (frame says {frame_codec}); "
                "expected JPEG 2000 (37 or 39)"
            )
        _check_block_streams(chunk, hdr, image, itemsize=itemsize)


def _check_block_streams(
    chunk: memoryview, hdr: bf.ChunkHeader, image: tuple[int, ...], *, itemsize: int
) -> None:
    """Walk the block offsets and each block's JPEG 2000 headers (Grok crashes on bad headers)."""
    nbytes, blocksize, cbytes = hdr.nbytes, hdr.blocksize, hdr.cbytes
    if blocksize <= 0 or nbytes % blocksize:
        raise CodecError(f"b2store_grok: corrupt chunk header ({nbytes=}, {blocksize=})")
    nblocks = nbytes // blocksize
    if 32 + 4 * nblocks > cbytes:
        raise CodecError(f"b2store_grok: truncated chunk ({nblocks} block offsets, {cbytes=})")
    if not hdr.dont_split:
        raise CodecError("b2store_grok: JPEG 2000 chunk without the no-split flag")
    # Block streams may be stored out of order (nthreads > 1): never infer ends from neighbours.
    starts = struct.unpack(f"<{nblocks}i", chunk[32 : 32 + 4 * nblocks])
    for i, start in enumerate(starts):
        if not 32 + 4 * nblocks <= start <= cbytes - 4:
            raise CodecError(f"b2store_grok: corrupt offset {start} of block {i} ({cbytes=})")
        csize = struct.unpack("<i", chunk[start : start + 4])[0]
        if csize <= 0:  # a run of one byte value (0 = zeros): no codestream
            if csize < -255:
                raise CodecError(f"b2store_grok: corrupt run-length block {i} ({csize=})")
            continue
        if start + 4 + csize > cbytes:
            raise CodecError(
                f"b2store_grok: block {i} stream says {csize} bytes, {cbytes - start - 4} present"
            )
        try:
            _check_jpeg2000(chunk[start + 4 : start + 4 + csize], image, itemsize)
        except CodecError as exc:
            raise CodecError(f"b2store_grok: block {i}: {exc}") from None


def _check_jpeg2000(stream: _Bytes, image: tuple[int, ...], itemsize: int) -> None:
    """Validate a JP2 file or raw J2K codestream header against the expected image."""
    if stream[:4] == b"\x00\x00\x00\x0c" and stream[4:8] == b"jP  ":
        stream = _jp2_codestream(stream)
    _check_codestream(stream, image, itemsize)


def _jp2_codestream(data: _Bytes) -> _Bytes:
    pos = 0
    while pos + 8 <= len(data):
        length, box = struct.unpack(">I4s", data[pos : pos + 8])
        head = 8
        if length == 1:
            if pos + 16 > len(data):
                break
            length = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
            head = 16
        elif length == 0:
            length = len(data) - pos
        if length < head or pos + length > len(data):
            raise CodecError(f"corrupt JP2 box {box!r} of {length} bytes at {pos}")
        if box == b"jp2c":
            return data[pos + head : pos + length]
        pos += length
    raise CodecError("JP2 file without a codestream box")


def _check_codestream(cs: _Bytes, image: tuple[int, ...], itemsize: int) -> None:
    if len(cs) < 2 + 2 + 41 or cs[:4] != b"\xff\x4f\xff\x51":
        raise CodecError("JPEG 2000 codestream does not start with SOC + SIZ")
    lsiz = struct.unpack(">H", cs[4:6])[0]
    xsiz, ysiz, xo, yo, xt, yt, xto, yto = struct.unpack(">8I", cs[8:40])
    csiz = struct.unpack(">H", cs[40:42])[0]
    if lsiz != 38 + 3 * csiz or csiz != 1 or 4 + lsiz > len(cs):
        raise CodecError(f"JPEG 2000 SIZ marker: {lsiz=}, {csiz=} (one gray component expected)")
    ssiz, xr, yr = cs[42], cs[43], cs[44]
    size = (ysiz - yo, xsiz - xo)
    ok = (
        xo < xsiz
        and yo < ysiz
        and size == tuple(image)
        and xr == yr == 1
        and (ssiz & 0x7F) + 1 <= 8 * itemsize
        and xt > 0
        and yt > 0
        and xto <= xo
        and yto <= yo
        and xto + xt > xo
        and yto + yt > yo
    )
    if not ok:
        raise CodecError(
            f"JPEG 2000 SIZ marker describes a {size} image with {ssiz=}, {xr=}, {yr=}, tiles "
            f"{(yt, xt)}; expected {tuple(image)} with at most {8 * itemsize} bits"
        )
    # Main header marker segments up to the first tile-part (SOT), then the tile-part chain.
    pos = 4 + lsiz
    while True:
        if pos + 4 > len(cs) or cs[pos] != 0xFF:
            raise CodecError(f"corrupt JPEG 2000 main header at byte {pos}")
        marker = cs[pos + 1]
        if marker == 0x90:  # SOT
            break
        seg = struct.unpack(">H", cs[pos + 2 : pos + 4])[0]
        if seg < 2 or pos + 2 + seg > len(cs):
            raise CodecError(f"corrupt JPEG 2000 marker 0xFF{marker:02X} at byte {pos}")
        if marker == 0x52 and (seg < 12 or not _cod_ok(cs[pos + 4 : pos + 2 + seg])):
            raise CodecError("corrupt JPEG 2000 COD marker")
        pos += 2 + seg
    while pos + 2 <= len(cs) and cs[pos : pos + 2] == b"\xff\x90":
        if pos + 12 > len(cs):
            raise CodecError("truncated JPEG 2000 tile-part header")
        lsot, _isot, psot = struct.unpack(">HHI", cs[pos + 2 : pos + 10])
        if lsot != 10 or psot < 14 or pos + psot > len(cs) - 2:
            raise CodecError(f"corrupt JPEG 2000 tile-part at byte {pos} ({lsot=}, {psot=})")
        pos += psot
    if cs[pos:] != b"\xff\xd9":
        raise CodecError("JPEG 2000 codestream does not end with EOC after its tile-parts")


def _cod_ok(cod: _Bytes) -> bool:
    """Check the COD parameters the decoder sizes buffers with (levels, code-blocks, layers)."""
    layers = struct.unpack(">H", cod[2:4])[0]
    levels, xcb, ycb = cod[5], cod[6] & 0x0F, cod[7] & 0x0F
    return layers >= 1 and levels <= 32 and xcb <= 8 and ycb <= 8 and xcb + ycb <= 8
