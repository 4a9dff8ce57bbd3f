"""Shared helpers for the b2store codecs: buffer conversion and ``parse_*`` config validators.

Contract: every ``parse_*`` function returns the normalised value or raises ``TypeError`` (wrong
type) / :class:`~b2store.errors.CodecError` (a ``ValueError``: wrong value) with a message in
zarr's style, prefixed by the codec id: ``"b2store_b2nd: clevel: Expected an integer from the
inclusive range (0, 9). Got 17 instead."``. Nothing here imports blosc2 at module import time.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from b2store.codecs._blosc2frame import as_bytes_view
from b2store.codecs._names import CNAMES, SPLITMODES
from b2store.errors import CodecError

__all__ = [
    "B2ND_ID",
    "CNAMES",
    "MAX_B2ND_DIMS",
    "MAX_BLOSC2_FILTERS",
    "MAX_CHUNK_BYTES",
    "SPLITMODES",
    "as_bytes_view",
    "as_written_float",
    "check_config_keys",
    "codec_from_config",
    "config_keys",
    "enum_name",
    "parse_bool",
    "parse_cname",
    "parse_int_range",
    "parse_optional_shape",
    "parse_positive_float",
    "parse_splitmode",
]

#: The numcodecs id of the b2nd codec (:mod:`b2store.codecs.b2nd`), which prefixes its messages.
B2ND_ID = "b2store_b2nd"
#: Most filters b2store lets C-Blosc2 run when encoding (see
#: :func:`b2store.codecs.b2nd.encoding_pipeline`: C-Blosc2 writes wrong data with three or more).
MAX_BLOSC2_FILTERS = 2
#: Most dimensions the ``b2store_b2nd`` encoder writes (HDF5 allows 32).
MAX_B2ND_DIMS = 8
#: Largest chunk C-Blosc2 compresses (BLOSC2_MAX_BUFFERSIZE: INT32_MAX - BLOSC2_MAX_OVERHEAD):
#: the encoders refuse larger chunks before C code sees them.
MAX_CHUNK_BYTES = 2**31 - 1 - 32


def check_config_keys(codec: str, config: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Refuse configuration keys a codec does not know, naming them and the known ones.

    Raises
    ------
    TypeError
        If *config* has a key outside *allowed* (a misspelt key would otherwise be a bare
        ``__init__() got an unexpected keyword argument``, naming no codec).
    """
    known = sorted(allowed)
    unknown = sorted(str(k) for k in config if k not in known)
    if unknown:
        raise TypeError(
            f"{codec}: configuration: Expected keys among {known}. Got unknown key(s) "
            f"{unknown} instead."
        )


_CONFIG_KEYS: dict[type, frozenset[str]] = {}


def config_keys(cls: type) -> frozenset[str]:
    """The configuration keys of a codec class: its ``__init__``'s keyword-only parameters."""
    keys = _CONFIG_KEYS.get(cls)
    if keys is None:
        import inspect

        params = inspect.signature(cls).parameters.values()
        keys = frozenset(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)
        _CONFIG_KEYS[cls] = keys
    return keys


def codec_from_config(cls: Any, codec: str, config: Mapping[str, Any]) -> Any:
    """``cls(**config)`` for numcodecs' ``from_config``: ``"id"`` dropped, unknown keys refused
    by :func:`check_config_keys`."""
    cfg = {k: v for k, v in config.items() if k != "id"}
    check_config_keys(codec, cfg, config_keys(cls))
    return cls(**cfg)


def parse_int_range(codec: str, name: str, value: Any, lo: int, hi: int) -> int:
    """Validate an integer in the inclusive range ``[lo, hi]``.

    Raises
    ------
    TypeError
        If *value* is not an integer (``bool`` is refused).
    CodecError
        If it is out of range.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{codec}: {name}: Expected an integer. Got {value!r} instead.")
    v = int(value)
    if not lo <= v <= hi:
        raise CodecError(
            f"{codec}: {name}: Expected an integer from the inclusive range ({lo}, {hi}). "
            f"Got {v} instead."
        )
    return v


def as_written_float(value: Any) -> float:
    """A number as a Python float; a float16/float32 one as its shortest decimal
    (np.float32(1e-3) -> 0.001, not 0.0010000000474974513): the value the user wrote, stored so
    in JSON configs."""
    if isinstance(value, np.floating) and value.itemsize < 8:
        return float(str(value))
    return float(value)


def parse_positive_float(codec: str, name: str, value: Any, *, allow_zero: bool = True) -> float:
    """Validate a finite float ``>= 0`` (``> 0`` if not *allow_zero*)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{codec}: {name}: Expected a number. Got {value!r} instead.")
    v = as_written_float(value)
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise CodecError(f"{codec}: {name}: Expected a finite number {bound}. Got {v} instead.")
    return v


def parse_bool(codec: str, name: str, value: Any) -> bool:
    """Validate a boolean."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{codec}: {name}: Expected a boolean. Got {value!r} instead.")
    return bool(value)


def _parse_choice(codec: str, key: str, name: Any, choices: Any, given: Any) -> str:
    """``name`` lower-cased if it is one of ``choices``; messages show the value ``given``."""
    if not isinstance(name, str):
        raise TypeError(f"{codec}: {key}: Expected a string. Got {given!r} instead.")
    v = name.lower()
    if v not in choices:
        raise CodecError(
            f"{codec}: {key}: Expected one of {sorted(choices)}. Got {given!r} instead."
        )
    return v


def enum_name(value: Any) -> Any:
    """The member name of an :class:`enum.Enum` member (``blosc2.Codec.ZSTD`` -> ``"ZSTD"``);
    any other value unchanged. blosc2's ``Codec``, ``Filter`` and ``SplitMode`` are plain enums,
    so a member is never mistaken for an integer."""
    return value.name if isinstance(value, enum.Enum) else value


def parse_cname(codec: str, value: Any) -> str:
    """Validate a Blosc2 codec name (``zstd``, ``lz4``, ``lz4hc``, ``blosclz``, ``zlib``), in
    any case; a ``blosc2.Codec`` member (``blosc2.Codec.ZSTD``) is accepted too."""
    return _parse_choice(codec, "cname", enum_name(value), CNAMES, value)


def parse_splitmode(codec: str, value: Any) -> str:
    """Validate a Blosc2 split mode (``auto``, ``always``, ``never``, ``forward_compat``).

    ``blosc2.SplitMode`` members are accepted too (``SplitMode.ALWAYS_SPLIT`` -> ``"always"``).
    """
    name = enum_name(value)  # a blosc2.SplitMode member
    if isinstance(name, str) and name.upper().endswith("_SPLIT"):
        name = name[: -len("_SPLIT")]
    return _parse_choice(codec, "splitmode", name, SPLITMODES, value)


def parse_optional_shape(
    codec: str, name: str, value: Any, *, ndim: int | None = None
) -> tuple[int, ...] | None:
    """Validate ``None`` or a sequence of positive integers (a chunk or block shape)."""
    if value is None:
        return None
    if (
        (type(value) is tuple or type(value) is list)  # the usual input, checked fast
        and all(type(v) is int and 0 < v < 2**31 for v in value)
        and (ndim is None or len(value) == ndim)
    ):
        return tuple(value)
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(
            f"{codec}: {name}: Expected a list of positive integers or None. Got {value!r} instead."
        )
    out = tuple(
        parse_int_range(codec, f"{name}[{i}]", v, 1, 2**31 - 1) for i, v in enumerate(value)
    )
    if ndim is not None and len(out) != ndim:
        raise CodecError(
            f"{codec}: {name}: Expected {ndim} dimensions. Got {len(out)} ({list(out)}) instead."
        )
    return out
