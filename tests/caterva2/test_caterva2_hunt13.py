"""Session-13 review: fsspec's ``on_error`` of ``find`` (and ``du``, ``walk`` through it) is
honoured; the concurrent ``find`` of session 12 skipped every failing node whatever it was
told."""

from __future__ import annotations

from typing import Any

import blosc2
import numpy as np
import pytest
from _c2server import public_folder

from b2store.caterva2.filesystem import Caterva2FileSystem
from b2store.errors import Caterva2HTTPError


def test_find_honours_on_error(fault_proxy: Any, so: dict[str, Any]) -> None:
    folder, _ = public_folder(fault_proxy, "onerror")
    for name in ("bad.b2nd", "good.b2nd"):
        blosc2.asarray(np.arange(4), urlpath=str(folder / name), mode="w")
    fault_proxy.plan = lambda n, path: (
        "500" if "/api/info/" in path and path.endswith("bad.b2nd") else None
    )
    fs = Caterva2FileSystem(host=fault_proxy.host, **{**so, "retries": 0})
    rel = f"@public/{folder.name}"
    try:
        found = fs.find(rel)  # fsspec's default: the failing node is left out
        assert f"{rel}/good.b2nd/.zarray" in found
        assert not any("/bad.b2nd/" in p for p in found)
        with pytest.raises(Caterva2HTTPError, match=r"500 .*bad\.b2nd"):
            fs.find(rel, on_error="raise")
        seen: list[BaseException] = []
        assert fs.find(rel, on_error=seen.append) == found
        assert len(seen) == 1 and "bad.b2nd" in str(seen[0])
        with pytest.raises(Caterva2HTTPError, match="500"):
            fs.du(rel, on_error="raise")
    finally:
        fault_proxy.plan = None
