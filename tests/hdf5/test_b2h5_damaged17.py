"""Damaged HDF5 files (metadata bytes overwritten; session 17): h5py's bare ``RuntimeError``
("wrong B-tree signature") came out of the open unnamed, and a dataset whose object header
HDF5 cannot read was left out as a dangling link, without a word even under
``unsupported="raise"``. Now :class:`~b2store.errors.DamagedHDF5FileError` (an ``OSError``)
names the file and the node, or ``unsupported="skip"``/``"warn"`` opens the rest."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

from b2store.errors import DamagedHDF5FileError
from tests._h5_damage import damaged_group_file, damaged_header_file


def _open(path: Path, unsupported: str) -> zarr.Group:
    so = {"skip_instance_cache": True, "unsupported": unsupported}
    return zarr.open_group(f"b2h5::{path}", mode="r", storage_options=so)


@pytest.mark.parametrize(
    ("make", "node", "what"),
    [
        (damaged_group_file, "g1", "its members cannot be listed"),
        (damaged_header_file, "b", "cannot be opened"),
    ],
)
def test_damaged_node_is_named_or_left_out(tmp_path: Path, make, node: str, what: str) -> None:
    path = make(tmp_path / "damaged.h5")
    with pytest.raises(DamagedHDF5FileError) as err:
        _open(path, "raise")
    assert isinstance(err.value, OSError)
    msg = str(err.value)
    assert f"{path}:/{node}: {what}: the HDF5 file looks damaged" in msg
    assert "unsupported='skip'" in msg

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        root = _open(path, "warn")
    assert any("looks damaged" in str(w.message) for w in caught)
    with h5py.File(path) as f:  # the rest reads as h5py reads it
        if node == "g1":
            assert list(root["g0"].array_keys()) == ["d0", "d1", "d2"]
            np.testing.assert_array_equal(root["g0/d2"][...], f["g0/d2"][()])
            assert "g1" not in root or not list(root["g1"].array_keys())
        else:
            assert list(root.array_keys()) == ["a"]
            np.testing.assert_array_equal(root["a"][...], f["a"][()])
