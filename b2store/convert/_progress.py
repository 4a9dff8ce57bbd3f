"""Progress bars for ``convert``: a tqdm bar per dataset, or a silent counter.

Contract: :func:`_bar` returns an object with ``n``, ``update(k)`` and ``close()``; tqdm is
imported only when a bar is shown.
"""

from __future__ import annotations

from typing import Any


class _NoBar:
    n = 0

    def update(self, k: int) -> None:
        self.n += k

    def close(self) -> None:
        pass


def _bar(total: int, desc: str, progress: bool) -> Any:
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="chunk", leave=False)
