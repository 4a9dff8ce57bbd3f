"""The installed entry points resolve our codecs in a fresh interpreter that never imported b2store.

Needs the package installed (``pip install -e .``): entry points exist only in installed metadata.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import zarr
import zarr.storage

from b2store.codecs.b2nd import B2nd
from b2store.codecs.itrunc import ITrunc
from b2store.codecs.zarr3 import B2ndCodec, ITruncCodec

ROOT = Path(__file__).resolve().parents[2]


def test_entry_points_declared() -> None:
    nc = {ep.name: ep.value for ep in entry_points(group="numcodecs.codecs")}
    assert nc.get("b2store_b2nd") == "b2store.codecs.b2nd:B2nd"
    assert nc.get("b2store_itrunc") == "b2store.codecs.itrunc:ITrunc"
    zc = {ep.name: ep.value for ep in entry_points(group="zarr.codecs")}
    assert zc.get("b2store.b2nd") == "b2store.codecs.zarr3:B2ndCodec"
    assert zc.get("b2store.itrunc") == "b2store.codecs.zarr3:ITruncCodec"
    assert zc.get("b2store.grok") == "b2store.codecs.zarr3:GrokCodec"


def run_fresh(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # run outside the checkout so the working tree cannot shadow the installed package's metadata
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


@pytest.mark.timeout(300)
def test_fresh_interpreter_resolves_codecs(tmp_path: Path) -> None:
    arr = np.arange(600, dtype="u2").reshape(20, 30)
    v2 = zarr.create_array(
        zarr.storage.LocalStore(tmp_path / "v2.zarr"),
        shape=arr.shape,
        chunks=(8, 16),
        dtype=arr.dtype,
        zarr_format=2,
        filters=[ITrunc(max_abs_error=0)],
        compressors=B2nd(blocks=[4, 8]),
    )
    v2[...] = arr
    v3 = zarr.create_array(
        zarr.storage.LocalStore(tmp_path / "v3.zarr"),
        shape=arr.shape,
        chunks=(8, 16),
        dtype=arr.dtype,
        filters=[ITruncCodec(bits=0)],
        serializer=B2ndCodec(blocks=(4, 8)),
        compressors=None,
    )
    v3[...] = arr
    meta = json.loads((tmp_path / "v3.zarr" / "zarr.json").read_text())
    assert [c["name"] for c in meta["codecs"]] == ["b2store.itrunc", "b2store.b2nd"]
    code = """
        import sys
        import numcodecs, numpy as np, zarr
        assert not any(m.startswith("b2store") for m in sys.modules), "b2store imported early"
        c = numcodecs.get_codec({"id": "b2store_b2nd"})
        assert type(c).__module__ == "b2store.codecs.b2nd", type(c)
        t = numcodecs.get_codec({"id": "b2store_itrunc", "max_abs_error": 3})
        x = np.arange(100, dtype="i4")
        assert (np.asarray(c.decode(c.encode(x))).view("i4") == x).all()
        assert (t.encode(x) <= x).all()
        for name in ("v2.zarr", "v3.zarr"):
            z = zarr.open_array(name, mode="r")
            assert (z[...] == np.arange(600, dtype="u2").reshape(20, 30)).all(), name
            assert (z[3:9, 2:17] == np.arange(600, dtype="u2").reshape(20, 30)[3:9, 2:17]).all()
        from zarr.registry import get_codec_class
        assert get_codec_class("b2store.grok").__name__ == "GrokCodec"
        print("OK")
    """
    proc = run_fresh(code, tmp_path)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
