"""Helpers shared by the Zarr v3 codec modules (:mod:`~b2store.codecs.zarr3`,
:mod:`~b2store.codecs.hdf5_zarr3`).

Contract: :func:`config_of` returns the configuration of a ``{"name", "configuration"}`` dict
with its keys checked against the codec's, raising ``TypeError`` naming the codec for a numcodecs
``"id"`` or an unknown key; :func:`variable_size_message` is the text of the
``NotImplementedError`` a compressing codec raises when asked for its encoded size. No blosc2
import.
"""

from __future__ import annotations

from typing import Any

from zarr.core.common import parse_named_configuration

from b2store.codecs._common import check_config_keys, config_keys

__all__ = ["config_of", "key_where", "variable_size_message"]


def config_of(
    data: dict[str, Any] | Any, name: str, cls: type, *, require_configuration: bool = False
) -> dict[str, Any]:
    """The configuration of a ``{"name": ..., "configuration": {...}}`` dict, its keys checked
    against those of class *cls* (a numcodecs ``"id"`` or a misspelt key names the codec, not
    ``__init__``). *require_configuration*: a missing ``"configuration"`` is zarr's
    ``ValueError`` (codecs with a required setting), not an empty one."""
    if isinstance(data, dict) and not isinstance(data.get("configuration", {}), dict):
        # zarr's own check says "Expected dict, got <class 'NoneType'>", naming no codec
        raise TypeError(
            f"{name}: configuration: Expected a JSON object (or no configuration key). Got "
            f"{data['configuration']!r} instead."
        )
    _, cfg = parse_named_configuration(data, name, require_configuration=require_configuration)
    config = dict(cfg or {})
    if "id" in config:
        raise TypeError(
            f"{name}: configuration: Expected the numcodecs config without its 'id' key. "
            f"Got {config!r} instead."
        )
    check_config_keys(name, config, config_keys(cls))
    return config


def variable_size_message(name: str) -> str:
    """Why a compressing codec has no encoded size (zarr < 3.2 asks when it is given as a
    sharding index codec, and showed a bare NotImplementedError)."""
    return (
        f"{name}: compressed chunks have no fixed size, so this codec cannot encode a sharding "
        "index (keep the default index_codecs)"
    )


def key_where(byte_getter: Any) -> str | None:
    """Which chunk zarr's ``byte_getter`` (a ``StorePath``) reads, for a decode error: the
    filesystem's ``chunk_where`` for b2store's own stores ("/data/scan.h5: chunk 'x/c/0/2'"),
    nothing for other fsspec stores (their URL may hold credentials), the store path's URL for
    the rest (``file:///data/a.zarr/x/c/0/2``); None if it cannot be told."""
    try:
        store, key = byte_getter.store, byte_getter.path
        fs = getattr(store, "fs", None)
        if fs is None:
            return str(byte_getter)
        root = str(getattr(store, "path", "") or "").rstrip("/")
        full = f"{root}/{key}" if root else str(key)
        where = getattr(fs, "chunk_where", None)
        return str(where(full)) if where is not None else None  # a URL may hold credentials
    except Exception:  # naming is best effort: never hide the decoder's error
        return None
