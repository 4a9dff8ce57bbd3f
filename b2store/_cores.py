"""How many cores this process may use: one answer for every thread pool in b2store.

Contract: :func:`usable_cores` is the number of CPUs the process's affinity mask allows (what a
container or ``taskset`` grants, not the machine's count), at least 1, read on every call (the
pools that size themselves at import keep the answer they got then). No imports beyond os.
"""

from __future__ import annotations

import os

__all__ = ["usable_cores"]


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one), >= 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)  # pragma: no cover - platforms without affinity
