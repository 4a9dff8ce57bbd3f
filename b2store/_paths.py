"""Where b2store keeps its caches: one base folder, ``$B2STORE_CACHE``.

Default ``$XDG_CACHE_HOME/b2store`` (``~/.cache/b2store``). Below it: ``hdf5-index/`` (sidecar chunk
indexes), ``caterva2/`` (fetched Caterva2 chunks) and the demo's synthetic file.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_home"]


def cache_home() -> Path:
    """``$B2STORE_CACHE``, else ``$XDG_CACHE_HOME/b2store``, else ``~/.cache/b2store``."""
    env = os.environ.get("B2STORE_CACHE")
    if env:
        return Path(env).expanduser()  # "~/cache" is not a folder named "~"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "b2store"
