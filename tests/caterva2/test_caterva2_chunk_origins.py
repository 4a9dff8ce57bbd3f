"""A damaged chunk on a real ``cat2-server`` read through zarr's own pipeline
(``zarr.open_array``, ``xr.open_zarr`` with dask, the Zarr v2 view), which hands codecs no key:
the CodecError names the dataset's ``caterva2://`` URL and the chunk (b2store._chunk_origins),
as the ``caterva2`` engine's whole-chunk reads do."""

from __future__ import annotations

from typing import Any

import blosc2
import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr
from _c2server import public_folder

from b2store.errors import CodecError


@pytest.fixture(scope="module")
def damaged(cat2_server: Any) -> tuple[str, np.ndarray]:
    """``x.b2nd`` (chunks 32 x 64) whose chunk (1, 0) has damaged block offsets."""
    folder, url = public_folder(cat2_server, "origins")
    a = np.arange(64 * 64, dtype="i4").reshape(64, 64) * 7919
    arr = blosc2.asarray(a, chunks=(32, 64), blocks=(8, 64), urlpath=str(folder / "x.b2nd"),
                         mode="w")  # fmt: skip
    second = arr.schunk.get_chunk(1)
    raw = bytearray((folder / "x.b2nd").read_bytes())
    at = raw.find(second)
    assert at > 0
    raw[at + 16 : at + 48] = b"\xa5" * 32  # past the chunk header: its block offsets
    (folder / "x.b2nd").write_bytes(bytes(raw))
    return f"{url}/x.b2nd", a


WHERE = r"caterva2://.*/origins-[^/]*/x\.b2nd: chunk \(1, 0\): "


def test_zarr_names_the_dataset_and_chunk(damaged: Any, so: dict[str, Any]) -> None:
    url, a = damaged
    z = zarr.open_array(url, mode="r", storage_options=so)
    np.testing.assert_array_equal(z[:32], a[:32])
    with pytest.raises(CodecError, match=WHERE):
        z[:]
    with pytest.raises(CodecError, match=WHERE):
        z[40, 3]


def test_xarray_and_dask_name_the_dataset_and_chunk(damaged: Any, so: dict[str, Any]) -> None:
    url, _ = damaged
    with pytest.raises(CodecError, match=WHERE):
        xr.open_zarr(url, storage_options=so).load()
    with pytest.raises(CodecError, match=WHERE):
        da.from_zarr(url, storage_options=so).sum().compute()
