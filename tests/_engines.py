"""Helpers shared by the tests of b2store's xarray engines (``"b2h5"``, ``"caterva2"``)."""

from __future__ import annotations

from typing import Any

import xarray as xr


def innermost_array(ds: xr.Dataset, name: str) -> object:
    """The backend array under xarray's lazy-indexing layers of variable *name* (the engine's
    ``ZarrArrayWrapper``, or b2store's whole-chunk one)."""
    data = ds[name].variable._data
    while hasattr(data, "array"):
        data = data.array
    return data


def open_caterva2(url: str, so: dict[str, Any], **kw: Any) -> xr.Dataset:
    """``xr.open_dataset(url, engine="caterva2", storage_options=so, **kw)``."""
    return xr.open_dataset(url, engine="caterva2", storage_options=so, **kw)
