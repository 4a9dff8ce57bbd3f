"""The installed package: importing it stays light, and the entry points resolve."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points


def test_import_does_not_import_extras() -> None:
    code = (
        "import sys, b2store; "
        "bad = [m for m in ('h5py', 'hdf5plugin', 'xarray', 'dask', 'aiohttp', 'blosc2_j2k', "
        "'click') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_entry_points_resolve() -> None:
    groups = {"numcodecs.codecs": 4, "zarr.codecs": 4, "fsspec.specs": 3}
    for group, n in groups.items():
        eps = [ep for ep in entry_points(group=group) if ep.value.startswith("b2store.")]
        assert len(eps) == n, (group, eps)
        for ep in eps:
            assert ep.load() is not None, ep


def test_cli_version() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "b2store", "--version"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert "b2store" in res.stdout
