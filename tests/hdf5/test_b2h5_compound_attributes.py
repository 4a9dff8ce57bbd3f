"""Compound attributes are skipped with a note, whatever their shape (docs/hdf5.md).

A one-element compound array attribute used to become a nameless list of its field values
(``[1, 2.0]``), and a longer one was skipped with a reshape error as its reason.
"""

from __future__ import annotations

from pathlib import Path

import fsspec
import h5py
import numpy as np
import zarr

_REC = np.dtype([("a", "i4"), ("b", "f8")])


def test_compound_attributes_are_skipped_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "compound_attrs.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("d", data=np.arange(3.0))
        d.attrs["scalar"] = np.array((1, 2.0), dtype=_REC)
        d.attrs["one"] = np.array([(1, 2.0)], dtype=_REC)
        d.attrs["two"] = np.array([(1, 2.0), (3, 4.0)], dtype=_REC)
        d.attrs["kept"] = np.array([1, 2], "i4")
    for zarr_format in (2, 3):
        fs = fsspec.filesystem("b2h5", fo=str(path), zarr_format=zarr_format)
        attrs = dict(zarr.open_group(fs.get_mapper(), mode="r")["d"].attrs)
        assert attrs.get("kept") == [1, 2]
        for name in ("scalar", "one", "two"):
            assert name not in attrs
            (note,) = [n for n in fs.notes if f"attribute {name!r}" in n]
            assert "compound" in note
