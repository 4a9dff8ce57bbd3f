"""Session-17: how many ``/api/info`` requests opening a dataset costs.

``/api/info`` carries a dataset's whole user metadata (vlmeta; megabytes for some producers).
zarr opens a node by asking for ``zarr.json``, ``.zgroup``, ``.zarray`` and ``.zattrs`` at once,
and each was described by a request of its own: four ``/api/info`` per open. The metadata reads
in flight now share one request, and a dataset described within ``version_check_interval`` is
not asked for again; a version check after a chunk fetch still sends its own.
"""

from __future__ import annotations

from typing import Any

import blosc2
import numpy as np
import xarray as xr
import zarr
from _c2server import public_folder


def _infos(requests: list[str], name: str) -> list[str]:
    return [p for p in requests if "/api/info/" in p and p.split("?")[0].endswith(name)]


def test_open_describes_a_dataset_once(fault_proxy: Any, so: dict[str, Any]) -> None:
    folder, url = public_folder(fault_proxy, "open17")
    a = np.arange(60 * 40, dtype="f4").reshape(60, 40)
    arr = blosc2.asarray(a, chunks=(20, 40), urlpath=str(folder / "big.b2nd"), mode="w")
    arr.schunk.vlmeta["blob"] = "x" * 100_000
    arr.schunk.vlmeta["units"] = "m"
    fault_proxy.requests.clear()
    ds = xr.open_zarr(f"{url}/big.b2nd", storage_options=so)
    assert len(_infos(fault_proxy.requests, "big.b2nd")) == 1, fault_proxy.requests  # was 4
    assert ds.attrs["units"] == "m"
    np.testing.assert_array_equal(ds["big.b2nd"].values, a)
    assert len(_infos(fault_proxy.requests, "big.b2nd")) == 1, fault_proxy.requests

    fault_proxy.requests.clear()
    z = zarr.open_array(f"{url}/big.b2nd", mode="r", storage_options=so)
    np.testing.assert_array_equal(z[:], a)
    assert len(_infos(fault_proxy.requests, "big.b2nd")) == 1, fault_proxy.requests


def test_zero_interval_still_checks_after_each_chunk(fault_proxy: Any, so: dict[str, Any]) -> None:
    folder, url = public_folder(fault_proxy, "open17z")
    a = np.arange(60 * 40, dtype="i4").reshape(60, 40)
    blosc2.asarray(a, chunks=(20, 40), urlpath=str(folder / "z.b2nd"), mode="w")
    opts = {**so, "version_check_interval": 0, "readahead": 0}
    z = zarr.open_array(f"{url}/z.b2nd", mode="r", storage_options=opts)
    fault_proxy.requests.clear()
    np.testing.assert_array_equal(z[:20], a[:20])
    # one chunk: its version checked before and after the fetch
    assert len(_infos(fault_proxy.requests, "z.b2nd")) >= 2, fault_proxy.requests
