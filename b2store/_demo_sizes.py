"""The sizes of ``b2store demo``'s synthetic tomography stack.

Contract: plain frozen records, standard library only, so the command line lists them (with
their byte sizes) without importing numpy; :mod:`b2store.demo` writes and reads the stacks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["SIZES", "DemoSize"]


@dataclass(frozen=True, kw_only=True)
class DemoSize:
    """Shape and chunking of the synthetic stack."""

    shape: tuple[int, int, int]
    chunks: tuple[int, int, int]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * 2


SIZES: dict[str, DemoSize] = {
    "small": DemoSize(shape=(16, 256, 384), chunks=(4, 64, 64)),  # 3 MB
    "medium": DemoSize(shape=(48, 512, 768), chunks=(8, 256, 128)),  # 38 MB
    "full": DemoSize(shape=(96, 1024, 1536), chunks=(16, 512, 256)),  # 302 MB, 4 MiB chunks
}
