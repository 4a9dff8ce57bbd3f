"""Files an HDF5 writer holds open in another process: SWMR (readable) and plain (a clear error).

h5py opens a file an SWMR writer holds open (or left marked open: a writer that died, a copy
taken during acquisition) only with ``swmr=True``; b2h5 used to fail on it with "not a readable
HDF5 file ... check that it is complete".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

_WRITER = """
import sys, h5py, numpy as np
swmr = sys.argv[2] == "swmr"
with h5py.File(sys.argv[1], "w", **({"libver": "latest"} if swmr else {})) as f:
    d = f.create_dataset("x", shape=(0, 10), maxshape=(None, 10), chunks=(4, 10), dtype="f8",
                         compression="gzip")
    if swmr:
        f.swmr_mode = True
    d.resize((6, 10))
    d[:] = np.arange(60.0).reshape(6, 10)
    f.flush()
    print("ready", flush=True)
    sys.stdin.readline()
"""


def _hold_open(path: Path, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    proc.wait(timeout=60)


def test_file_held_open_by_an_swmr_writer_reads(tmp_path: Path) -> None:
    path = tmp_path / "live.h5"
    proc = _hold_open(path, "swmr")
    try:
        a = zarr.open_array(f"b2h5::{path}", path="x", mode="r")
        assert a.shape == (6, 10)
        np.testing.assert_array_equal(a[...], np.arange(60.0).reshape(6, 10))
        shutil.copy(path, tmp_path / "copy.h5")  # still marked open for write
    finally:
        _release(proc)
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(tmp_path / "copy.h5", "r")
    a = zarr.open_array(f"b2h5::{tmp_path / 'copy.h5'}", path="x", mode="r")
    np.testing.assert_array_equal(a[...], np.arange(60.0).reshape(6, 10))


@pytest.mark.skipif(
    os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() == "FALSE", reason="HDF5 file locking off"
)
def test_file_locked_by_a_plain_writer_says_so(tmp_path: Path) -> None:
    path = tmp_path / "locked.h5"
    proc = _hold_open(path, "plain")
    try:
        with pytest.raises(OSError, match="open for writing in another process"):
            zarr.open_array(f"b2h5::{path}", path="x", mode="r")
    finally:
        _release(proc)


def test_file_left_marked_open_by_a_crashed_plain_writer_says_how_to_clear_it(
    tmp_path: Path,
) -> None:
    """A latest-format file whose (non-SWMR) writer died without closing it keeps its "open for
    write" mark: the message says so and names h5clear, not "check that it is complete"."""
    path = tmp_path / "crashed.h5"
    script = (
        "import os, sys, h5py, numpy as np\n"
        "f = h5py.File(sys.argv[1], 'w', libver='latest')\n"
        "f.create_dataset('x', data=np.arange(10.0), chunks=(5,))\n"
        "f.flush()\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)
    with pytest.raises(OSError, match=r"did not close it.*h5clear"):
        zarr.open_array(f"b2h5::{path}", path="x", mode="r")
