"""An external link (followed) or a virtual dataset's source naming a missing file is noted or
reported as a missing file, not as "not a readable HDF5 file ... check that it is complete
(not truncated)", which sent users looking for a damaged file."""

from __future__ import annotations

from pathlib import Path

import fsspec
import h5py
import numpy as np
import pytest

from b2store.errors import UnsupportedHDF5FeatureError


def test_missing_link_targets_are_called_missing(tmp_path: Path) -> None:
    path = tmp_path / "master.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("here", data=np.arange(3))
        f["gone"] = h5py.ExternalLink("absent.h5", "/data")
        layout = h5py.VirtualLayout(shape=(4,), dtype="i4")
        layout[:] = h5py.VirtualSource("absent.h5", "data", shape=(4,))
        f.create_virtual_dataset("vds", layout)
    fs = fsspec.filesystem("b2h5", fo=str(path), follow_external_links=True, unsupported="skip")
    notes = [n for n in fs.notes if "absent.h5" in n]
    assert len(notes) == 2, fs.notes
    for note in notes:
        assert "not found" in note and "truncated" not in note, note
    with pytest.raises(UnsupportedHDF5FeatureError, match="not found"):
        fsspec.filesystem("b2h5", fo=str(path), follow_external_links=True)
