"""``index_cache="~/..."`` is a folder in the user's home, as paths in options usually are; it
used to create a folder literally named ``~`` in the current working directory."""

from __future__ import annotations

from pathlib import Path

import fsspec
import h5py
import numpy as np
import pytest


def test_index_cache_expands_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(10), chunks=(4,))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    fs = fsspec.filesystem("b2h5", fo=str(path), index_cache="~/b2h5-index")
    assert fs.cat_file("x/zarr.json")
    assert list((home / "b2h5-index").glob("*.npz"))
    assert not (work / "~").exists()


def test_b2store_cache_expands_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(10), chunks=(4,))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("B2STORE_CACHE", "~/b2store-cache")
    monkeypatch.chdir(work)
    fs = fsspec.filesystem("b2h5", fo=str(path), index_cache="auto", skip_instance_cache=True)
    assert fs.cat_file("x/zarr.json")
    assert list((home / "b2store-cache").rglob("*.npz"))
    assert not (work / "~").exists()
