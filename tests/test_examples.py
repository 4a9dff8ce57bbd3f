"""Every script in examples/ runs to completion on small data (each as a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import has

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))

NEEDS = {
    "open_hdf5_with_xarray.py": ("h5py", "hdf5plugin", "xarray"),
    "dask_sparse_tomography.py": ("h5py", "hdf5plugin", "dask"),
    "lossy_itrunc_j2k.py": ("h5py", "hdf5plugin", "xarray"),
    "caterva2_with_cache.py": ("xarray", "aiohttp"),
}


def test_every_example_is_listed() -> None:
    assert set(SCRIPTS) == set(NEEDS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs(script: str, tmp_path: Path) -> None:
    missing = [m for m in NEEDS.get(script, ()) if not has(m)]
    if missing:
        pytest.skip(f"{script} needs {', '.join(missing)}")
    env = {**os.environ, "TMPDIR": str(tmp_path), "B2STORE_CACHE": str(tmp_path / "cache")}
    res = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert "OK" in res.stdout or "skipping" in res.stdout, res.stdout


def test_docs_build_strict(tmp_path: Path) -> None:
    """The documentation site builds with ``mkdocs build --strict`` (broken links fail)."""
    if not has("mkdocs"):
        pytest.skip("needs mkdocs: pip install 'b2store[docs]'")
    root = EXAMPLES.parent
    res = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "docs/mkdocs.yml",
         "-d", str(tmp_path / "site")],
        capture_output=True, text=True, cwd=root, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "cli" / "index.html").is_file()
