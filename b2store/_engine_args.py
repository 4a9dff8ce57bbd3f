"""Argument checks shared by b2store's xarray engines (``"b2h5"``, ``"caterva2"``).

Contract: each function checks one ``open_dataset`` argument the same way for every engine and
raises a builtin exception (``PermissionError``, ``TypeError``) whose message names the file or
URL (*where*: the caller passes it without credentials) and what to pass instead. No imports
beyond the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["check_read_only", "storage_options_dict"]


def check_read_only(where: str, engine: str, mode: str) -> None:
    """Raise ``PermissionError`` unless *mode* is ``"r"``: the engines only read."""
    if mode != "r":
        raise PermissionError(
            f'{where!r}: engine="{engine}" is read-only (mode={mode!r}); open with mode="r" and '
            "write copies with Dataset.to_zarr or to_netcdf elsewhere"
        )


def storage_options_dict(where: str, storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A new dict of *storage_options* (``None``: empty); ``TypeError`` for a non-mapping."""
    if storage_options is not None and not isinstance(storage_options, Mapping):
        raise TypeError(
            f"storage_options for {where!r} must be a mapping (dict), not "
            f"{type(storage_options).__name__}"
        )
    return dict(storage_options or {})
