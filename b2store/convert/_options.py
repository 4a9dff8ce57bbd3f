"""Conversion options and reports: :class:`CodecChoice`, :class:`ConvertOptions`,
:class:`DatasetReport`, :class:`ConvertReport` and :class:`ConvertError`.

Contract: the option classes are frozen dataclasses validated in ``__post_init__`` (so also on
``dataclasses.replace``) with the codecs' own checks (``parse_int_range``, the codec names, the
filter and rank limits of ``b2store_b2nd``); a bad value raises :class:`ConvertError` (a
``ValueError``) naming the option. Nothing here imports blosc2, numcodecs or h5py at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from b2store._cores import usable_cores
from b2store.codecs._common import CNAMES as _BLOSC2_CNAMES
from b2store.codecs._common import MAX_B2ND_DIMS, MAX_BLOSC2_FILTERS, parse_int_range
from b2store.errors import B2StoreError

#: Codec names accepted on the command line: the ``b2store_b2nd`` codec's (those hdf5plugin's
#: Blosc2 filter decodes).
CNAMES: tuple[str, ...] = tuple(_BLOSC2_CNAMES)
#: Blosc2 filters accepted on the command line.
FILTERS = ("none", "shuffle", "bitshuffle", "delta", "bytedelta")
#: The highest rank a converted dataset can have: the ``b2store_b2nd`` encoder refuses more
#: dimensions (HDF5 allows 32).
B2ND_MAX_DIM = MAX_B2ND_DIMS
#: Most Blosc2 filters in one chunk's pipeline besides itrunc (the ``b2store_b2nd`` encoder's
#: limit: C-Blosc2 writes wrong data with three or more).
MAX_FILTERS = MAX_BLOSC2_FILTERS


class ConvertError(B2StoreError, ValueError):
    """Invalid conversion options, or a dataset the options cannot apply to."""


def _check_int_range(name: str, value: int, lo: int, hi: int) -> int:
    """:func:`b2store.codecs._common.parse_int_range`, raising :class:`ConvertError` (a wrong
    type too) with the option's name in front: ``clevel: Expected an integer from ...``."""
    try:
        return parse_int_range("convert", name, value, lo, hi)
    except (TypeError, ValueError) as exc:
        raise ConvertError(str(exc).removeprefix("convert: ")) from None


def _check_pipeline(filters: list[str]) -> None:
    """The ``b2store_b2nd`` encoder's own pipeline check, raising :class:`ConvertError` with
    the option's name in front: a pipeline it refuses (two deltas, a delta after another
    filter) failed only at the first chunk of the first converted dataset, after the datasets
    before it were written. Imports
    blosc2, so it is called for pipelines of two filters only (the tuner's grid has one)."""
    import numpy as np

    from b2store.codecs._b2nd_encode import encoding_pipeline

    try:
        encoding_pipeline([{"id": f} for f in filters], np.dtype("u1"))
    except ValueError as exc:  # CodecError
        raise ConvertError(
            "filters: " + str(exc).removeprefix("b2store_b2nd: ").removeprefix("filters: ")
        ) from None


@dataclass(frozen=True, kw_only=True)
class CodecChoice:
    """How chunks are compressed.

    Parameters
    ----------
    cname : str
        One of :data:`CNAMES`.
    clevel : int
        0-9.
    filters : tuple of str
        Blosc2 filters in order, from :data:`FILTERS` (``()`` or ``("none",)`` for none).
    blocks : tuple of int, optional
        Block shape (clipped to the chunk shape); ``None`` lets blosc2 choose.
    itrunc_max_error : int, optional
        Integer data only: maximum absolute error of the INT_TRUNC filter (rounded down to
        ``2**k - 1``).
    itrunc_keep : tuple of numbers, optional
        With ``itrunc_max_error``: values stored exactly (the truncation's ``keep`` key, at most
        16). :func:`convert` adds each dataset's missing-data markers to them and leaves out
        the values a dataset's dtype cannot hold.
    j2k_ratio, j2k_psnr : float, optional
        JPEG 2000 (blosc2-j2k) target compression ratio or PSNR in dB (16-bit full scale);
        mutually exclusive, and exclusive with ``itrunc_max_error``.
    """

    cname: str = "zstd"
    clevel: int = 5
    filters: tuple[str, ...] = ("shuffle",)
    blocks: tuple[int, ...] | None = None
    itrunc_max_error: int | None = None
    itrunc_keep: tuple[int | float, ...] | None = None
    j2k_ratio: float | None = None
    j2k_psnr: float | None = None

    def __post_init__(self) -> None:
        if self.cname not in CNAMES:
            raise ConvertError(
                f"Expected a codec name from {', '.join(CNAMES)}. Got {self.cname!r} instead."
            )
        _check_int_range("clevel", self.clevel, 0, 9)
        for f in self.filters:
            if f not in FILTERS:
                raise ConvertError(
                    f"Expected filters from {', '.join(FILTERS)}. Got {f!r} instead."
                )
        active = [f for f in self.filters if f != "none"]
        if len(active) > MAX_FILTERS:
            raise ConvertError(
                f"Expected at most {MAX_FILTERS} filters (besides itrunc): C-Blosc2 writes wrong "
                f"data with 3 or more in its pipeline. Got {len(active)} ({', '.join(active)}) "
                "instead."
            )
        if len(active) > 1:  # pipelines the codec refuses at the first chunk (deltas)
            _check_pipeline(active)
        if self.blocks is not None:
            for b in self.blocks:
                _check_int_range("a block dimension", b, 1, 2**31 - 1)
        if self.itrunc_max_error is not None:
            _check_int_range("itrunc_max_error", self.itrunc_max_error, 1, 2**62)
        if self.itrunc_keep is not None:
            if self.itrunc_max_error is None:
                raise ConvertError("itrunc_keep applies to itrunc_max_error: set that too.")
            from b2store.codecs.itrunc import parse_keep  # numcodecs: loaded only when used

            try:
                keep = parse_keep("convert", self.itrunc_keep)
            except (TypeError, ValueError) as exc:
                raise ConvertError(str(exc).replace("convert: keep:", "itrunc_keep:")) from None
            object.__setattr__(self, "itrunc_keep", tuple(keep or ()))
        lossy = [
            x is not None for x in (self.itrunc_max_error, self.j2k_ratio, self.j2k_psnr)
        ].count(True)
        if lossy > 1:
            raise ConvertError(
                "Expected at most one of itrunc_max_error, j2k_ratio, j2k_psnr. Got "
                f"{lossy} instead."
            )
        if self.j2k_ratio is not None and not 1.0 < self.j2k_ratio < 25.6:
            # (the b2store_grok codec takes ratios above 1 only: 1 failed at the first chunk)
            raise ConvertError(
                "Expected a JPEG 2000 ratio from the range (1, 25.6). "
                f"Got {self.j2k_ratio} instead."
            )
        if self.j2k_psnr is not None and not 20.0 <= self.j2k_psnr <= 200.0:
            raise ConvertError(
                f"Expected a JPEG 2000 PSNR from the range [20, 200] dB. "
                f"Got {self.j2k_psnr} instead."
            )

    @property
    def is_j2k(self) -> bool:
        return self.j2k_ratio is not None or self.j2k_psnr is not None

    def describe(self) -> str:
        """A short human label, e.g. ``zstd-5+shuffle``."""
        if self.is_j2k:
            what = f"ratio {self.j2k_ratio}" if self.j2k_ratio else f"psnr {self.j2k_psnr} dB"
            return f"j2k ({what})"
        filt = "+".join(f for f in self.filters if f != "none") or "nofilter"
        out = f"{self.cname}-{self.clevel}+{filt}"
        if self.itrunc_max_error is not None:
            keep = f", keep={list(self.itrunc_keep)}" if self.itrunc_keep else ""
            out = f"itrunc(max_error={self.itrunc_max_error}{keep})+" + out
        return out


@dataclass(frozen=True, kw_only=True)
class ConvertOptions:
    """What :func:`convert` does.

    Parameters
    ----------
    codec : CodecChoice
        Codec for every converted dataset (unless ``auto``).
    auto : bool
        Tune codec, level and filters per dataset (:func:`tune`).
    tradeoff : float
        For ``auto``: 1 favours ratio, 0 favours speed.
    chunks : tuple of int, optional
        New chunk shape for datasets of the same rank (others keep theirs).
    contiguous : bool
        Also convert contiguous datasets (chunked with ``chunks`` or an automatic ~4 MiB shape).
    nthreads : int
        Compression threads.
    """

    codec: CodecChoice = field(default_factory=CodecChoice)
    auto: bool = False
    tradeoff: float = 0.5
    chunks: tuple[int, ...] | None = None
    contiguous: bool = False
    nthreads: int = field(default_factory=usable_cores)

    def __post_init__(self) -> None:
        if not 0.0 <= self.tradeoff <= 1.0:
            raise ConvertError(
                f"Expected a tradeoff from the inclusive range (0, 1). Got {self.tradeoff} instead."
            )
        _check_int_range("nthreads", self.nthreads, 1, 256)
        if self.chunks is not None:
            for c in self.chunks:
                _check_int_range("a chunk dimension", c, 1, 2**31 - 1)
        if self.auto and (self.codec.is_j2k):
            raise ConvertError("--auto tunes lossless codecs only; drop --j2k-ratio/--j2k-psnr.")


@dataclass(frozen=True, kw_only=True)
class DatasetReport:
    """What happened to one dataset."""

    path: str
    action: str  # "converted" or "copied"
    codec: str = ""
    chunks: tuple[int, ...] | None = None
    nbytes: int = 0
    stored: int = 0
    nchunks: int = 0
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.nbytes / self.stored if self.stored else None


@dataclass(frozen=True, kw_only=True)
class ConvertReport:
    """The result of :func:`convert`."""

    src: str
    dst: str
    datasets: tuple[DatasetReport, ...]
    seconds: float


def _lossy(choice: CodecChoice) -> str:
    """The lossy part of ``choice`` (``"itrunc"``, ``"JPEG 2000"``), or ``""``."""
    if choice.itrunc_max_error is not None:
        return "itrunc"
    return "JPEG 2000" if choice.is_j2k else ""
