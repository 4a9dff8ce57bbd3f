"""Integer and float truncation: lossy zeroing of low bits with a guaranteed error bound.

Contract
--------
``ITrunc`` (numcodecs id ``b2store_itrunc``) is an array -> array filter: ``encode`` returns an
array of the same dtype and shape whose low bits are zeroed, ``decode`` is the identity. The
results are bit-identical to Blosc2's ``INT_TRUNC`` (integers) and ``TRUNC_PREC`` (floats)
filters, which :class:`b2store.codecs.b2nd.B2nd` uses for its ``{"id": "itrunc", ...}`` filter, so
both paths give the same bound (a chunk Blosc2 stores uncompressed skips its filters: there the
``itrunc`` filter of b2nd keeps exact values, error 0).

Config (JSON)
-------------
``max_abs_error`` : int >= 0
    Integers: ``|x - y| <= max_abs_error`` for every element. The number of low bits zeroed is
    ``k = floor(log2(max_abs_error + 1))`` (capped at ``8 * itemsize - 1``); truncation floors
    (toward -inf for signed values, two's complement), so ``0 <= x - y <= 2**k - 1`` and it
    never wraps (``int8`` ``-128`` stays ``-128``).
``bits`` : int >= 0
    Low bits to zero directly: integer bits, or float *mantissa* bits. 0 is lossless.
``max_rel_error`` : float >= 0
    Floats (float16/32/64): keep ``m = ceil(-log2(max_rel_error))`` mantissa bits, truncating
    toward zero, so ``|x - y| < 2**-m * |x| <= max_rel_error * |x|`` for normal numbers (zero,
    inf and quiet NaN are kept; subnormals get an absolute error below ``2**-m`` times the
    smallest normal). A signalling NaN whose payload lies only in the zeroed bits becomes inf.

``keep`` : list of numbers, optional
    Marker values stored exactly, such as a CF ``_FillValue``/``missing_value``: an item equal to
    one is never truncated, and an item that truncation would turn into one keeps its exact
    value (error 0, within the bound). Without it, truncation moves a marker at the top of a
    range (``65535`` in uint16, netCDF's int16 fill ``-32767``) to another value, which readers
    then show as data, and turns small values into a marker at the bottom (``_FillValue=0``),
    which readers then mask. Each value must be representable in the data's dtype. Left out of
    the config when unset or empty (``keep=[]`` is ``keep=None``; older b2store versions read
    such configs).

Set ``max_abs_error`` or ``bits`` for integer data and ``max_rel_error`` or ``bits`` for float
data; ``max_abs_error`` and ``max_rel_error`` may both be set so one config serves mixed
datasets. Booleans and other dtypes are refused with a :class:`~b2store.errors.CodecError`.
Numbers may be numpy scalars (``np.int64(7)``, ``np.float32(1e-3)``); they are stored as plain
JSON numbers (a float32 as its shortest decimal, ``0.001``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numcodecs.abc import Codec

from b2store.codecs._common import (
    as_written_float,
    codec_from_config,
    parse_int_range,
    parse_positive_float,
)
from b2store.errors import CodecError

__all__ = [
    "ITrunc",
    "TruncationPlan",
    "keep_values",
    "parse_keep",
    "parse_truncation_config",
    "plan_truncation",
    "truncate",
]

CODEC_ID = "b2store_itrunc"
_MANTISSA_BITS = {2: 10, 4: 23, 8: 52}

#: Blosc2 filter ids (``blosc2.Filter``): TRUNC_PREC 4, INT_TRUNC 36.
TRUNC_PREC = 4
INT_TRUNC = 36


class TruncationPlan(tuple[str, int]):
    """``(kind, zeroed_bits)``: kind ``"int"`` or ``"float"``; ``zeroed_bits == 0`` is lossless."""

    __slots__ = ()

    @property
    def kind(self) -> str:
        return self[0]

    @property
    def zeroed(self) -> int:
        return self[1]

    def blosc2_filter(self, itemsize: int) -> tuple[int, int] | None:
        """Blosc2 ``(filter id, filters_meta)`` doing the same truncation, or None if lossless."""
        if self.zeroed == 0:
            return None
        if self.kind == "int":
            return INT_TRUNC, -self.zeroed
        return TRUNC_PREC, _MANTISSA_BITS[itemsize] - self.zeroed  # mantissa bits kept


def parse_truncation_config(
    codec: str,
    *,
    max_abs_error: Any = None,
    bits: Any = None,
    max_rel_error: Any = None,
) -> tuple[int | None, int | None, float | None]:
    """Validate the truncation keys (dtype-independent part; ``keep``: :func:`parse_keep`)."""
    if max_abs_error is not None:
        max_abs_error = parse_int_range(codec, "max_abs_error", max_abs_error, 0, 2**64 - 1)
    if bits is not None:
        bits = parse_int_range(codec, "bits", bits, 0, 63)
    if max_rel_error is not None:
        max_rel_error = parse_positive_float(codec, "max_rel_error", max_rel_error)
    if max_abs_error is not None and bits is not None:
        raise CodecError(f"{codec}: set either max_abs_error or bits, not both.")
    if max_abs_error is None and bits is None and max_rel_error is None:
        raise CodecError(
            f"{codec}: set max_abs_error (integers), max_rel_error (floats) or bits (low bits to "
            "zero)."
        )
    return max_abs_error, bits, max_rel_error


#: Most marker values ``keep`` takes (each costs a pass over the chunk).
_MAX_KEEP = 16


def parse_keep(codec: str, keep: Any) -> list[int | float] | None:
    """Validate ``keep``: None, or a list of numbers, returned sorted and without duplicates as
    plain ints (integral values) and floats (JSON numbers; NaN and inf are kept anyway). An empty
    list is the same as None (unset: left out of configs)."""
    if keep is None:
        return None
    if isinstance(keep, str | bytes) or not isinstance(keep, list | tuple | np.ndarray):
        raise TypeError(f"{codec}: keep: Expected a list of numbers. Got {keep!r} instead.")
    if len(keep) == 0:
        return None
    out: set[int | float] = set()
    for v in keep:
        if isinstance(v, bool | np.bool_) or not isinstance(
            v, int | float | np.integer | np.floating
        ):
            raise TypeError(f"{codec}: keep: Expected a list of numbers. Got {v!r} instead.")
        if isinstance(v, int | np.integer):
            out.add(int(v))
            continue
        f = as_written_float(v)
        if not np.isfinite(f):
            raise CodecError(
                f"{codec}: keep: Expected finite numbers (truncation keeps NaN and inf). "
                f"Got {v!r} instead."
            )
        out.add(int(f) if f.is_integer() and abs(f) < 2**63 else f)
    if len(out) > _MAX_KEEP:
        raise CodecError(
            f"{codec}: keep: Expected at most {_MAX_KEEP} values. Got {len(out)} instead."
        )
    return sorted(out)


def keep_values(dtype: Any, keep: list[int | float] | None, codec: str = CODEC_ID) -> np.ndarray:
    """``keep`` as an array of *dtype*, or raise :class:`CodecError` for a value the dtype
    cannot hold (out of range, or fractional for integers): it could never match an item."""
    dt = np.dtype(dtype)
    vals = [] if keep is None else keep
    for v in vals:
        if dt.kind in "iu":
            info = np.iinfo(dt)
            ok = float(v).is_integer() and info.min <= v <= info.max
        else:
            with np.errstate(over="ignore"):
                ok = bool(np.isfinite(np.asarray(v).astype(dt)))
        if not ok:
            raise CodecError(f"{codec}: keep: Expected values {dt} can hold. Got {v!r} instead.")
    if dt.kind in "iu":  # exact: np.array([5, 2**64 - 1]) goes through float64 (2**64 - 1 -> 0)
        return np.array([int(v) for v in vals], dtype=dt)
    return np.array(vals).astype(dt)


def plan_truncation(
    dtype: Any,
    *,
    max_abs_error: int | None = None,
    bits: int | None = None,
    max_rel_error: float | None = None,
    codec: str = CODEC_ID,
) -> TruncationPlan:
    """Turn a truncation config into ``(kind, zeroed bits)`` for *dtype*.

    Raises
    ------
    CodecError
        For dtypes that cannot be truncated or keys that do not apply to the dtype.
    """
    dt = np.dtype(dtype)
    nbits = 8 * dt.itemsize
    if dt.kind in "iu":
        if max_abs_error is not None:
            k = min((int(max_abs_error) + 1).bit_length() - 1, nbits - 1)
        elif bits is not None:
            if bits > nbits - 1:
                raise CodecError(
                    f"{codec}: bits: Expected an integer from the inclusive range (0, "
                    f"{nbits - 1}) for {dt}. Got {bits} instead."
                )
            k = bits
        else:
            raise CodecError(
                f"{codec}: {dt} data needs max_abs_error or bits (max_rel_error is for floats)."
            )
        return TruncationPlan(("int", k))
    if dt.kind == "f" and dt.itemsize in _MANTISSA_BITS:
        mant = _MANTISSA_BITS[dt.itemsize]
        if max_rel_error is not None:
            if max_rel_error == 0:
                return TruncationPlan(("float", 0))
            kept = 1
            while 2.0**-kept > max_rel_error and kept < mant:
                kept += 1
            return TruncationPlan(("float", max(mant - kept, 0)))
        if bits is not None:
            if bits > mant - 1:
                raise CodecError(
                    f"{codec}: bits: Expected an integer from the inclusive range (0, "
                    f"{mant - 1}) for {dt} (mantissa bits). Got {bits} instead."
                )
            return TruncationPlan(("float", bits))
        raise CodecError(
            f"{codec}: {dt} data needs max_rel_error or bits (max_abs_error is for integers)."
        )
    raise CodecError(
        f"{codec}: truncation applies to integer and float16/32/64 data, not {dt}. "
        "Remove the truncation filter for this array."
    )


def truncate(arr: np.ndarray, plan: TruncationPlan, keep: Any = None) -> np.ndarray:
    """Zero the low bits of *arr* as planned (a new array; same dtype, shape and byte order).

    Items equal to a value of *keep* (an array of *arr*'s dtype, see :func:`keep_values`), and
    items that truncation would turn into one, keep their exact values.
    """
    if plan.zeroed == 0:
        return np.array(arr, copy=True)
    dt = arr.dtype
    udt = np.dtype(f"{dt.byteorder if dt.byteorder in '<>' else '='}u{dt.itemsize}")
    mask = np.array(~((1 << plan.zeroed) - 1) & ((1 << 8 * dt.itemsize) - 1)).astype(udt)
    out = np.array(arr, copy=True, order="K")  # keeps 0-d arrays and the memory order
    bitsview = out.view(udt)
    bitsview &= mask
    if keep is not None and len(keep):
        marks = np.asarray(keep, dtype=dt)
        exact = np.isin(arr, marks) | np.isin(out, marks)
        np.copyto(out, arr, where=exact)
    return out


class ITrunc(Codec):
    """Integer/float low-bit truncation filter (numcodecs id ``b2store_itrunc``).

    Parameters
    ----------
    max_abs_error : int, optional
        Integer data: maximum absolute error.
    bits : int, optional
        Low bits to zero (integer bits, or float mantissa bits).
    max_rel_error : float, optional
        Float data: maximum relative error.
    keep : list of numbers, optional
        Marker values (a CF ``_FillValue``) stored exactly; see the module docstring.

    See Also
    --------
    b2store.codecs.b2nd.B2nd : the same truncation as a Blosc2 filter (``{"id": "itrunc"}``).
    """

    codec_id = CODEC_ID
    #: default for instances pickled before the key existed (their ``__dict__`` lacks it)
    keep: list[int | float] | None = None

    def __init__(
        self,
        *,
        max_abs_error: int | None = None,
        bits: int | None = None,
        max_rel_error: float | None = None,
        keep: list[int | float] | None = None,
    ) -> None:
        self.max_abs_error, self.bits, self.max_rel_error = parse_truncation_config(
            CODEC_ID, max_abs_error=max_abs_error, bits=bits, max_rel_error=max_rel_error
        )
        self.keep = parse_keep(CODEC_ID, keep)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ITrunc:
        """Build from a numcodecs config; unknown keys raise a ``TypeError`` naming them."""
        codec: ITrunc = codec_from_config(cls, CODEC_ID, config)
        return codec

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if config.get("keep") is None:
            config.pop("keep", None)  # unset: configs stay as older versions wrote them
        return config

    def __repr__(self) -> str:
        # numcodecs' repr, without ``keep`` when unset (as in get_config)
        config = self.get_config()
        args = ", ".join(f"{k}={config[k]!r}" for k in sorted(config) if k != "id")
        return f"{type(self).__name__}({args})"

    def plan(self, dtype: Any) -> TruncationPlan:
        """The truncation applied to arrays of *dtype* (``keep`` checked against it too)."""
        return self._plan_and_keep(dtype)[0]

    def _plan_and_keep(self, dtype: Any) -> tuple[TruncationPlan, np.ndarray]:
        """:meth:`plan` and ``keep`` as an array of *dtype* (:func:`keep_values`)."""
        plan = plan_truncation(
            dtype,
            max_abs_error=self.max_abs_error,
            bits=self.bits,
            max_rel_error=self.max_rel_error,
        )
        return plan, keep_values(dtype, self.keep)

    def encode(self, buf: Any) -> np.ndarray:
        if not isinstance(buf, np.ndarray):
            raise CodecError(
                f"{CODEC_ID}: encode: Expected a typed numpy array. Got {type(buf).__name__} "
                "instead (the dtype decides how bits are truncated)."
            )
        plan, keep = self._plan_and_keep(buf.dtype)
        return truncate(buf, plan, keep)

    def decode(self, buf: Any, out: Any = None) -> Any:
        if out is not None:
            from numcodecs.compat import ndarray_copy

            return ndarray_copy(buf, out)
        return buf
