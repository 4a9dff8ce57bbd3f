"""Regression tests for the fourth session's robustness hunt (codecs and the sidecar index)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

from b2store.errors import CodecError


def test_v3_b2nd_refuses_big_endian_instead_of_swapping_on_reopen(tmp_path: Path) -> None:
    z = zarr.create_array(
        store=str(tmp_path / "a.zarr"),
        shape=(3,),
        chunks=(3,),
        dtype=">i4",
        serializer={"name": "b2store.b2nd", "configuration": {}},
        compressors=None,
    )
    with pytest.raises(CodecError, match="big-endian"):
        z[...] = np.array([1, 2, 3], dtype=">i4")


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_damaged_sidecar_is_rebuilt(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(100, dtype="i4"), chunks=(10,))
    cache = tmp_path / "cache"
    opts = {"index_cache": str(cache)}
    z = zarr.open_array("b2h5::" + str(path), path="x", mode="r", storage_options=opts)
    assert z[...].sum() == 4950
    sidecars = [p for p in cache.rglob("*") if p.is_file()]
    assert sidecars
    for p in sidecars:
        data = p.read_bytes()
        if damage == "truncate":
            p.write_bytes(data[: len(data) // 2])
        elif damage == "flip":
            b = bytearray(data)
            b[len(b) // 2] ^= 0xFF
            p.write_bytes(bytes(b))
        else:
            p.write_bytes(b"")
    from b2store.hdf5 import filesystem as b2h5

    b2h5._MEMORY.clear()
    z = zarr.open_array("b2h5::" + str(path), path="x", mode="r", storage_options=opts)
    assert z[...].sum() == 4950
