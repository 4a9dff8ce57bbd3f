"""Filter specs of ``b2store_b2nd``: parsing, normalising and dtype checks (no Blosc2 calls).

Contract
--------
:func:`normalize_filters` turns what users write (bare strings, ``blosc2.Filter`` members, any
case, blosc2's and hdf5plugin's names, numpy scalars) into the canonical JSON list stored in a
config: ``{"id": "shuffle"}``, ``{"id": "bitshuffle"}``, ``{"id": "bytedelta"}``,
``{"id": "delta"}``, ``{"id": "itrunc" | "trunc_prec", "max_abs_error" | "bits" |
"max_rel_error": N, "keep": [...]}``; ``NOFILTER``/``NOSHUFFLE`` slots are dropped. Integers,
``NDCELL``/``NDMEAN``, unknown ids, unknown keys and more than 6 filters raise (``TypeError`` for
a wrong type, :class:`~b2store.errors.CodecError` for a wrong value), naming the codec.
:func:`check_truncation_dtype` refuses a truncation filter the dtype cannot take. Configs are also
parsed when arrays written by older versions are opened, so checks that only matter when
*encoding* (one truncation filter at most) live in :func:`_check_one_truncation`, which the
encoder (:mod:`b2store.codecs._b2nd_encode`) calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from b2store.codecs._common import B2ND_ID, enum_name
from b2store.codecs.itrunc import (
    TruncationPlan,
    keep_values,
    parse_keep,
    parse_truncation_config,
    plan_truncation,
)
from b2store.errors import CodecError

__all__ = ["check_truncation_dtype", "normalize_filters"]

_SIMPLE_FILTERS = {"shuffle": 1, "bitshuffle": 2, "delta": 3, "bytedelta": 35}
_TRUNC_IDS = ("itrunc", "trunc_prec")
#: blosc2.Filter names accepted as filter ids: INT_TRUNC is stored as "itrunc" (older b2store
#: versions read that id); TRUNC_PREC is an id of its own.
_FILTER_ALIASES = {"int_trunc": "itrunc"}
#: "no filter" names (blosc2.Filter.NOFILTER, hdf5plugin's Blosc2.NOFILTER / Blosc.NOSHUFFLE):
#: an empty slot, left out of the normalised list.
_NO_FILTER = ("nofilter", "noshuffle")


def normalize_filters(filters: Any, *, codec: str = B2ND_ID) -> list[dict[str, Any]]:
    """Validate a filter list and return it in canonical JSON form (a list of dicts)."""
    if filters is None:
        return [{"id": "shuffle"}]
    if isinstance(filters, str | bytes | dict) or not isinstance(filters, list | tuple):
        raise TypeError(
            f"{codec}: filters: Expected a list of filter specs. Got {filters!r} instead."
        )
    out: list[dict[str, Any]] = []
    for given in filters:
        spec = enum_name(given)  # a blosc2.Filter member: its name
        if isinstance(spec, str):
            spec = {"id": spec}
        if isinstance(spec, dict) and "id" in spec:
            spec = {**spec, "id": enum_name(spec["id"])}
        if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
            raise TypeError(
                f"{codec}: filters: Expected a filter spec like {{'id': 'shuffle'}}. Got "
                f"{given!r} instead."
            )
        fid = _FILTER_ALIASES.get(spec["id"].lower(), spec["id"].lower())
        params = {k: v for k, v in spec.items() if k != "id"}
        if params and (fid in _NO_FILTER or fid in _SIMPLE_FILTERS):
            raise CodecError(
                f"{codec}: filter {fid!r} takes no parameters: Expected {{'id': {fid!r}}}. "
                f"Got {given!r} instead."
            )
        if fid in _NO_FILTER:  # blosc2's NOFILTER, hdf5plugin's NOSHUFFLE: an empty slot
            continue
        if fid in _SIMPLE_FILTERS:
            out.append({"id": fid})
        elif fid in _TRUNC_IDS:
            known = ["bits", "keep", "max_abs_error", "max_rel_error"]
            unknown = sorted(set(params) - set(known))
            if unknown:
                raise CodecError(
                    f"{codec}: filter {fid!r}: Expected keys among {known}. Got unknown key(s) "
                    f"{unknown} instead."
                )
            keep = parse_keep(f"{codec}: filter {fid!r}", params.pop("keep", None))
            mae, bits, mre = parse_truncation_config(f"{codec}: filter {fid!r}", **params)
            norm: dict[str, Any] = {"id": fid}
            for key, val in (
                ("max_abs_error", mae),
                ("bits", bits),
                ("max_rel_error", mre),
                ("keep", keep),
            ):
                if val is not None:
                    norm[key] = val
            out.append(norm)
        else:
            raise CodecError(
                f"{codec}: filters: unknown filter. Expected one of "
                f"{sorted([*_SIMPLE_FILTERS, *_TRUNC_IDS, *_FILTER_ALIASES, *_NO_FILTER])} "
                f"(any case, or a blosc2.Filter member). Got {spec['id']!r} instead."
            )
    if len(out) > 6:
        raise CodecError(
            f"{codec}: filters: Expected at most 6 filters (Blosc2's filter slots). Got "
            f"{len(out)} instead."
        )
    return out


def _check_one_truncation(specs: list[dict[str, Any]], codec: str = B2ND_ID) -> None:
    """Refuse to *encode* with two truncation filters: both would run and the coarser one
    silently breaks the bound the other states. Checked when encoding only: configs are also
    parsed when arrays written by older versions are opened, which must keep working."""
    ntrunc = sum(f["id"] in _TRUNC_IDS for f in specs)
    if ntrunc > 1:
        raise CodecError(
            f"{codec}: filters: Expected at most one truncation filter (itrunc or trunc_prec; "
            f"one filter may set both max_abs_error and max_rel_error). Got {ntrunc} instead."
        )


def _truncation_plan(spec: dict[str, Any], dtype: np.dtype) -> TruncationPlan:
    """The truncation an ``itrunc``/``trunc_prec`` filter spec asks for, on *dtype*."""
    return plan_truncation(
        dtype,
        max_abs_error=spec.get("max_abs_error"),
        bits=spec.get("bits"),
        max_rel_error=spec.get("max_rel_error"),
        codec=B2ND_ID,
    )


def check_truncation_dtype(specs: list[dict[str, Any]], dtype: np.dtype) -> None:
    """Raise :class:`CodecError` if a truncation filter in canonical *specs* cannot apply to
    *dtype* (booleans, strings; ``max_rel_error`` alone on integers, ...)."""
    for spec in specs:
        if spec["id"] in _TRUNC_IDS:
            _truncation_plan(spec, dtype)
            keep_values(dtype, spec.get("keep"), codec=B2ND_ID)
