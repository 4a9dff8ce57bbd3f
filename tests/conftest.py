"""Shared fixtures: where the real-world corpus lives, and optional-dependency markers."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("B2STORE_CORPUS", ROOT.parent / "shared" / "corpus"))


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


requires_h5py = pytest.mark.skipif(not has("h5py"), reason="needs h5py: pip install b2store[hdf5]")
requires_hdf5plugin = pytest.mark.skipif(
    not has("hdf5plugin"), reason="needs hdf5plugin: pip install b2store[hdf5]"
)
requires_j2k = pytest.mark.skipif(
    not has("blosc2_j2k"), reason="needs blosc2-j2k: pip install b2store[jpeg2000]"
)
requires_xarray = pytest.mark.skipif(not has("xarray"), reason="needs xarray")
requires_dask = pytest.mark.skipif(not has("dask"), reason="needs dask")


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared corpus folder; tests that need it skip (not fail) when it is absent."""
    if not (CORPUS / "MANIFEST.tsv").is_file():
        pytest.skip(
            f"the real-world HDF5 corpus is not at {CORPUS}: put ../shared/corpus beside the "
            "checkout or set B2STORE_CORPUS"
        )
    return CORPUS
