"""Fast checks of the benchmark scripts and examples: they verify what they time, skip a missing
optional tool with a message instead of a traceback, and leave no files or servers behind.

Each runs on tiny data in-process (the benchmarks' own smoke runs, ``--size small``, take tens of
seconds). Missing tools are simulated by putting ``None`` in ``sys.modules``, which makes
``import`` raise ``ModuleNotFoundError`` as an absent package does.
"""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import has

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class _ZstdWrongOnOneThread:
    """numcodecs Zstd whose decode returns a corrupted chunk when built with nthreads=1 (the
    codec of the 1-worker and 2-worker variants) and the right one with nthreads=2 (the variant
    timed last)."""

    def __init__(self, nthreads: int) -> None:
        import numcodecs

        self.codec = numcodecs.Zstd(level=1)
        self.nthreads = nthreads

    def encode(self, chunk: np.ndarray) -> bytes:
        return bytes(self.codec.encode(chunk))

    def decode(self, buf: bytes) -> np.ndarray:
        out = np.frombuffer(self.codec.decode(buf), dtype="u2").copy()
        if self.nthreads == 1:
            out[0] += 1
        return out


def test_codecs_benchmark_checks_every_timed_variant() -> None:
    from benchmarks.codecs import Case, run_case

    case = Case(
        name="wrong with one thread",
        family="numcodecs",
        lossy=False,
        make=_ZstdWrongOnOneThread,
        internal_threads=True,
    )
    chunks = [np.arange(i, i + 256, dtype="u2").reshape(16, 16) for i in range(4)]
    with pytest.raises(AssertionError, match="lossless but its 1w decode"):
        run_case(case, chunks, repeat=1, decode_repeat=1)


def test_codecs_benchmark_plot_without_matplotlib(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from benchmarks.codecs import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit) as exc:  # refused before the run, not after it
        main(["--only", "no such case", "--plot", str(tmp_path / "p.png")])
    assert exc.value.code == 2
    assert "--plot needs matplotlib" in capsys.readouterr().err


@pytest.mark.skipif(not (has("h5py") and has("hdf5plugin") and has("xarray")), reason="needs hdf5")
def test_hdf5_benchmark_skips_missing_b2h5py_and_kerchunk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from benchmarks import hdf5_read

    monkeypatch.setitem(sys.modules, "b2h5py", None)
    monkeypatch.setitem(sys.modules, "kerchunk", None)
    path = tmp_path / "tomo.h5"
    hdf5_read.write_stack(path, (8, 32, 64), 4, "zstd")
    results: dict[str, dict[str, float]] = {}
    lines: list[str] = []
    hdf5_read.bench_stack(path, "zstd", 8, 32, 64, 1, results, lines)
    text = "\n".join(lines)
    assert "* b2h5py: skipped: not installed" in text
    assert "* kerchunk + zarr: skipped: not installed" in text
    assert "b2h5py" not in results["full read, zstd"]
    assert "b2store (xarray + dask)" in results["full read, zstd"]


def _no_leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _run_example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str) -> None:
    """Run ``examples/<name>`` as a script with ``tmp_path`` as the temporary folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    script = ROOT / "examples" / name
    monkeypatch.setattr(sys, "argv", [str(script)])
    runpy.run_path(str(script), run_name="__main__")


@pytest.mark.skipif(not (has("h5py") and has("hdf5plugin") and has("xarray")), reason="needs hdf5")
def test_example_removes_its_temporary_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run_example(monkeypatch, tmp_path, "open_hdf5_with_xarray.py")
    assert "OK" in capsys.readouterr().out
    assert _no_leftovers(tmp_path) == []


def _cat2_server() -> str | None:
    return os.environ.get("CAT2_SERVER") or shutil.which("cat2-server")


@pytest.mark.slow
@pytest.mark.skipif(_cat2_server() is None, reason="needs cat2-server")
@pytest.mark.skipif(not (has("xarray") and has("aiohttp")), reason="needs xarray, aiohttp")
def test_caterva2_example_stops_its_server_and_removes_its_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run_example(monkeypatch, tmp_path, "caterva2_with_cache.py")
    assert "values identical to the published array: OK" in capsys.readouterr().out
    assert _no_leftovers(tmp_path) == []


@pytest.mark.slow
@pytest.mark.skipif(_cat2_server() is None, reason="needs cat2-server")
@pytest.mark.skipif(not (has("xarray") and has("aiohttp")), reason="needs xarray, aiohttp")
def test_caterva2_benchmark_without_the_caterva2_client(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from benchmarks import caterva2_read

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setitem(sys.modules, "caterva2", None)
    argv = ["--angles", "4", "--height", "32", "--width", "64", "--repeat", "1", "--planes", "2"]
    assert caterva2_read.main(argv) == 0
    out = capsys.readouterr().out
    assert "caterva2.Client: skipped: not installed" in out
    assert "b2store xarray+dask, full, warm cache" in out
    assert _no_leftovers(tmp_path) == []  # server stopped, its folder removed


@pytest.mark.parametrize("script", ["codecs.py", "hdf5_read.py", "caterva2_read.py"])
def test_benchmark_runs_as_a_script_from_anywhere(script: str, tmp_path: Path) -> None:
    """``python3 benchmarks/<script> --help`` works from any folder, without PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--help"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "--repeat" in res.stdout
