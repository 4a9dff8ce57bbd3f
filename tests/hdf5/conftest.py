"""Fixtures of the b2h5 tests: the generated files of gen_hdf5_files.py, written once."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("h5py")
pytest.importorskip("hdf5plugin")

import gen_hdf5_files


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every generated test file, written once per session."""
    out = tmp_path_factory.mktemp("b2h5-files")
    paths = {}
    for name, gen in gen_hdf5_files.ALL.items():
        if name.endswith(".nc"):
            try:
                paths[name] = gen(out / name)
            except ImportError:
                continue
        else:
            paths[name] = gen(out / name)
    return paths
