"""HDF5 filter pipelines -> Zarr codec plans (or a loud "unsupported").

Contract
--------
* :func:`read_pipeline` reads a dataset's filters from its creation property list, in HDF5
  **encode order** (HDF5 applies them in that order on write and in reverse on read).
* :func:`plan_codecs` turns a pipeline plus the set of filter masks of the dataset's allocated
  chunks into a :class:`CodecPlan`: the Zarr v3 codec list, the Zarr v2 ``filters``/``compressor``
  and whether chunks must be served through :func:`frame_chunk`. The policy, first match wins:

  1. Filters skipped by *every* chunk (one uniform non-zero mask) are dropped from the pipeline;
     an empty pipeline is served as raw bytes.
  2. Exactly Blosc2 (32026), unmasked -> ``b2store.b2nd`` (array->bytes, partial decoding) /
     v2 compressor ``b2store_b2nd``; big-endian dtypes use rule 4 in v3 (a v3 data type has no
     byte order, so only a ``bytes`` codec can carry it).
  3. Unmasked, and every filter has an exact numcodecs built-in (deflate -> ``zlib``, shuffle ->
     ``shuffle``, fletcher32, zstd, blosc, bzip2 -> ``bz2``) -> v2 ``filters`` in HDF5 order, so
     the v2 view and the reference files made from it (``b2store refs``) read with plain
     numcodecs, without b2store. The v3 view uses ``bytes`` + ``b2store.hdf5`` (rule 4) instead
     of zarr's ``numcodecs.*`` wrappers: those warn on every open (ZarrUserWarning), let zlib
     errors through unnamed and inflate without a size bound, while ``b2store.hdf5`` decodes
     deflate with libdeflate into a buffer of the known chunk size (1.5x the wrappers' speed).
  4. Any other supported pipeline, or chunks with differing masks -> the ``b2store_hdf5`` codec
     (:class:`b2store.codecs.hdf5_pipeline.HDF5Pipeline`), masked when masks differ.
  5. Anything else (zfp, scaleoffset, nbit, sz, unknown ids, or a filter whose decoder is not
     installed) raises :class:`~b2store.errors.UnsupportedHDF5FeatureError` naming the dataset,
     the filter and what to do.

The module imports no h5py: ``read_pipeline`` only calls methods of the object it is given.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from b2store._zarrmeta import bytes_codec
from b2store.codecs.hdf5_pipeline import (
    _BITSHUFFLE_COMPRESSORS,
    _BLOSC_CNAMES,
    BITSHUFFLE,
    BLOSC,
    BLOSC2,
    BLOSC_SNAPPY,
    BZIP2,
    CODEC_ID,
    DEFLATE,
    FILTER_NAMES,
    FLETCHER32,
    SHUFFLE,
    SUPPORTED_FILTERS,
    SZIP,
    ZSTD,
    frame_chunk,
    needs_imagecodecs,
)
from b2store.errors import UnsupportedHDF5FeatureError

__all__ = [
    "BLOSC2",
    "CodecPlan",
    "HDF5Filter",
    "frame_chunk",
    "plan_codecs",
    "read_pipeline",
]

#: HDF5 ``flags`` bit of an optional filter (may fail on a chunk; the chunk's mask records it).
FLAG_OPTIONAL = 1

_ADVICE = (
    "convert the file with `b2store convert` (or h5repack it to supported filters), "
    "or open it with unsupported='skip'"
)


@dataclass(frozen=True)
class HDF5Filter:
    """One entry of an HDF5 filter pipeline, as stored in the dataset creation property list.

    Parameters
    ----------
    id
        HDF5 filter id (1 deflate, 2 shuffle, 32026 Blosc2, ...).
    name
        The name HDF5 records (or b2store's name for the id when HDF5 records none).
    flags
        HDF5 filter flags; bit 0 (:data:`FLAG_OPTIONAL`) marks an optional filter.
    cd_values
        The filter's client data values.
    description
        The name string HDF5 recorded for the filter (often a long plugin description).
    """

    id: int
    name: str
    flags: int
    cd_values: tuple[int, ...]
    description: str = ""

    @property
    def optional(self) -> bool:
        """Whether HDF5 may skip this filter on a chunk (recorded in the chunk's filter mask)."""
        return bool(self.flags & FLAG_OPTIONAL)

    def to_config(self) -> dict[str, Any]:
        """The JSON form used in ``b2store_hdf5`` codec configs."""
        return {"id": self.id, "name": self.name, "cd_values": list(self.cd_values)}


def read_pipeline(dcpl: Any) -> tuple[HDF5Filter, ...]:
    """Read the filter pipeline of a dataset, in HDF5 encode order.

    Parameters
    ----------
    dcpl
        The dataset creation property list: ``h5py_dataset.id.get_create_plist()``.

    Returns
    -------
    tuple of HDF5Filter
        Empty for datasets without filters.
    """
    out = []
    for i in range(dcpl.get_nfilters()):
        fid, flags, cd_values, name = dcpl.get_filter(i)
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        description = str(name).strip("\x00").strip()
        out.append(
            HDF5Filter(
                id=int(fid),
                name=FILTER_NAMES.get(int(fid)) or description or f"filter {fid}",
                flags=int(flags),
                cd_values=tuple(int(v) for v in cd_values),
                description=description,
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class CodecPlan:
    """How a dataset's raw chunks are presented to Zarr.

    Parameters
    ----------
    codecs
        Full Zarr v3 codec list: ``[array->array..., one array->bytes, bytes->bytes...]``.
    v2_filters
        Zarr v2 ``filters`` (numcodecs configs), or None.
    v2_compressor
        Zarr v2 ``compressor`` (a numcodecs config), or None.
    masked
        True: the filesystem must serve ``frame_chunk(raw, mask)`` instead of the raw bytes, for
        every chunk of the dataset.
    blosc2
        True: the raw chunks are Blosc2 cframes whose decoded bytes are the chunk's bytes (or a
        byte permutation of them that keeps zeros zero), so an all-zero chunk is detectable from
        the frame header.
    """

    codecs: tuple[dict[str, Any], ...]
    v2_filters: tuple[dict[str, Any], ...] | None
    v2_compressor: dict[str, Any] | None
    masked: bool
    blosc2: bool


def _short(f: HDF5Filter) -> str:
    if f.description and f.description != f.name:
        return f"filter {f.id} ({f.name}: {f.description!r})"
    return f"filter {f.id} ({f.name})"


def _unsupported(where: str, f: HDF5Filter, why: str) -> UnsupportedHDF5FeatureError:
    return UnsupportedHDF5FeatureError(f"{where}: HDF5 {_short(f)} {why}; {_ADVICE}.")


def _check_supported(f: HDF5Filter, where: str) -> None:
    if f.id not in SUPPORTED_FILTERS:
        known = FILTER_NAMES.get(f.id)
        why = (
            "has no decoder outside the HDF5 library"
            if known
            else "is unknown to b2store (no decoder outside the HDF5 library)"
        )
        raise _unsupported(where, f, why)
    if f.id == BITSHUFFLE:
        comp = f.cd_values[4] if len(f.cd_values) > 4 else None
        if comp not in _BITSHUFFLE_COMPRESSORS:
            raise _unsupported(
                where, f, f"uses compressor {comp} (cd_values {f.cd_values}); only none/lz4/zstd"
            )
    if f.id == BLOSC and len(f.cd_values) > 6 and f.cd_values[6] == BLOSC_SNAPPY:
        # every chunk the filter compressed is in snappy's format: refused at open, like any
        # filter without a decoder (unsupported='skip' opens the rest), not at the first read
        raise _unsupported(
            where,
            f,
            f"uses Blosc's snappy compressor (cd_values {f.cd_values}), which numcodecs' Blosc "
            "(built without snappy) cannot decode",
        )
    if f.id == SZIP and len(f.cd_values) < 4:
        raise _unsupported(where, f, f"has incomplete cd_values {f.cd_values}")
    if needs_imagecodecs(f.id):
        if importlib.util.find_spec("imagecodecs") is None:
            raise UnsupportedHDF5FeatureError(
                f"{where}: HDF5 {_short(f)} needs imagecodecs to decode: pip install "
                f"b2store[hdf5], or open the file with unsupported='skip'."
            )
        if f.id == SZIP:
            import imagecodecs

            if not imagecodecs.SZIP.available:
                raise _unsupported(where, f, "needs imagecodecs built with libaec (SZIP)")


def _numcodecs_builtin(f: HDF5Filter, dtype: np.dtype[Any]) -> dict[str, Any] | None:
    """The exact numcodecs built-in config for an HDF5 filter, or None."""
    cd = f.cd_values
    if f.id == DEFLATE:
        return {"id": "zlib", "level": cd[0] if cd and 0 <= cd[0] <= 9 else 6}
    if f.id == SHUFFLE:
        return {"id": "shuffle", "elementsize": cd[0] if cd and cd[0] > 0 else dtype.itemsize}
    if f.id == FLETCHER32:
        return {"id": "fletcher32"}
    if f.id == ZSTD:
        return {"id": "zstd", "level": cd[0] if cd else 3, "checksum": False}
    if f.id == BZIP2:
        return {"id": "bz2", "level": cd[0] if cd and 1 <= cd[0] <= 9 else 9}
    if f.id == BLOSC:
        cname = _BLOSC_CNAMES.get(cd[6] if len(cd) > 6 else 0)
        if cname is None:
            # no known compressor code (snappy, 3, was refused by _check_supported): the
            # b2store_hdf5 codec reads each chunk's own format, and says what to do for snappy
            return None
        return {
            "id": "blosc",
            "cname": cname,
            "clevel": cd[4] if len(cd) > 4 else 5,
            "shuffle": cd[5] if len(cd) > 5 else 1,
            "blocksize": 0,
        }
    return None


def _all_builtin(pipeline: Sequence[HDF5Filter], dtype: np.dtype[Any]) -> bool:
    # numcodecs.Shuffle rejects buffers that are not whole elements (HDF5 leaves the tail as is),
    # so shuffle is exact only while its input is still the chunk's bytes.
    size_changed = False
    for f in pipeline:
        cfg = _numcodecs_builtin(f, dtype)
        if cfg is None:
            return False
        if f.id == SHUFFLE:
            if size_changed or dtype.itemsize % cfg["elementsize"]:
                return False
        else:
            size_changed = True
    return True


def plan_codecs(
    pipeline: Sequence[HDF5Filter],
    dtype: np.dtype[Any],
    chunks: tuple[int, ...],
    *,
    masks: Iterable[int],
    where: str,
    nullterm: Sequence[Sequence[int]] = (),
) -> CodecPlan:
    """Choose the Zarr codecs that decode a dataset's raw HDF5 chunks.

    Parameters
    ----------
    pipeline
        The dataset's filters in HDF5 encode order (:func:`read_pipeline`).
    dtype
        The HDF5 dataset dtype (authoritative; never taken from chunk headers).
    chunks
        The HDF5 chunk shape (for contiguous datasets, the served chunk shape).
    masks
        The set of filter masks of the dataset's allocated chunks (empty when none is allocated).
    where
        ``"file.h5:/path/to/ds"``, used in error messages.
    nullterm
        ``(offset, size)`` byte ranges of each item holding NUL-terminated fixed-length strings
        (``H5T_STR_NULLTERM``), which HDF5 ends at their first NUL on read: such datasets always
        go through the ``b2store_hdf5`` codec (also without filters), which does the same.

    Returns
    -------
    CodecPlan

    Raises
    ------
    UnsupportedHDF5FeatureError
        For a filter without a decoder here (zfp, scaleoffset, nbit, sz, unknown ids), naming
        ``where``, the filter id and name, and what to do.
    """
    dtype = np.dtype(dtype)
    pipeline = tuple(pipeline)
    mask_set = {int(m) for m in masks} or {0}
    if len(pipeline) > 32:
        raise UnsupportedHDF5FeatureError(f"{where}: {len(pipeline)} filters (HDF5 allows 32)")
    bad = [m for m in mask_set if m < 0 or m >> len(pipeline)]
    if bad:
        raise UnsupportedHDF5FeatureError(
            f"{where}: chunk filter mask {bad[0]:#x} names filters beyond the {len(pipeline)} of "
            f"the pipeline; the file's chunk index looks corrupt. Open it with unsupported='skip'."
        )
    if len(mask_set) == 1:
        # every chunk skips the same filters: drop them, no per-chunk framing needed
        (m,) = mask_set
        pipeline = tuple(f for i, f in enumerate(pipeline) if not m >> i & 1)
        mask_set = {0}
    masked = mask_set != {0}
    for f in pipeline:
        _check_supported(f, where)

    if not pipeline and not nullterm:
        return CodecPlan(
            codecs=(bytes_codec(dtype),),
            v2_filters=None,
            v2_compressor=None,
            masked=False,
            blosc2=False,
        )
    config: dict[str, Any] = {
        "filters": [f.to_config() for f in pipeline],
        "dtype": dtype.str,
        "chunkshape": [int(c) for c in chunks],
        "masked": masked,
    }
    if nullterm:
        config["nullterm"] = [[int(o), int(n)] for o, n in nullterm]
    hdf5_codecs = (bytes_codec(dtype), {"name": "b2store.hdf5", "configuration": config})
    if not masked and not nullterm and [f.id for f in pipeline] == [BLOSC2]:
        # A v3 data type has no byte order and b2store.b2nd (array->bytes) takes the native one,
        # so big-endian data goes through `bytes(endian="big")` + b2store.hdf5 in v3.
        big = dtype.byteorder == ">"
        return CodecPlan(
            codecs=hdf5_codecs if big else ({"name": "b2store.b2nd"},),
            v2_filters=None,
            v2_compressor={"id": "b2store_b2nd"},
            masked=False,
            blosc2=True,
        )
    if not masked and not nullterm and _all_builtin(pipeline, dtype):
        cfgs = [c for c in (_numcodecs_builtin(f, dtype) for f in pipeline) if c is not None]
        return CodecPlan(
            codecs=hdf5_codecs,
            v2_filters=tuple(cfgs),
            v2_compressor=None,
            masked=False,
            blosc2=False,
        )
    ids = [f.id for f in pipeline]
    zero_preserving = (
        not masked and bool(ids) and ids[-1] == BLOSC2 and all(i == SHUFFLE for i in ids[:-1])
    )
    return CodecPlan(
        codecs=hdf5_codecs,
        v2_filters=None,
        v2_compressor={"id": CODEC_ID, **config},
        masked=masked,
        blosc2=zero_preserving,
    )
