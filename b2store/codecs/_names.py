"""Blosc2 codec and split-mode names, as configs spell them, with C-Blosc2's ids.

Contract: plain tables, standard library only, so the command line offers them as choices
without importing numpy; :mod:`b2store.codecs._common` validates configs against them.
"""

from __future__ import annotations

__all__ = ["CNAMES", "SPLITMODES"]

#: Codec names accepted in ``cname`` and their Blosc2 codec ids.
CNAMES: dict[str, int] = {"blosclz": 0, "lz4": 1, "lz4hc": 2, "zlib": 4, "zstd": 5}
#: Blosc2 split modes (``blosc2.SplitMode``) by config name: whether each block is compressed
#: as one stream or as one stream per byte of the item (after shuffle), as C-Blosc2 numbers them.
SPLITMODES: dict[str, int] = {"always": 1, "never": 2, "auto": 3, "forward_compat": 4}
