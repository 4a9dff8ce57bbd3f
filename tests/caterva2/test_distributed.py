"""A dask mean over a remote tomography stack on a LocalCluster with worker processes: the
filesystem pickles, workers rebuild their HTTP sessions and share the on-disk chunk cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import blosc2
import numpy as np
import pytest
import xarray as xr
from _c2server import public_folder

distributed = pytest.importorskip("distributed")


def test_dask_mean_on_local_cluster(cat2_server: Any, so: dict[str, Any]) -> None:
    folder, base = public_folder(cat2_server, "tomo")
    rng = np.random.default_rng(7)
    stack = rng.integers(800, 36000, size=(16, 64, 64), dtype="u2")
    blosc2.asarray(stack, chunks=(2, 64, 64), blocks=(1, 32, 64),
                   urlpath=str(folder / "scan.b2nd"), mode="w")  # fmt: skip
    url = f"{base}/scan.b2nd"  # the dual view's group
    opts = {k: v for k, v in so.items() if k != "skip_instance_cache"}
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster),
    ):
        ds = xr.open_zarr(url, storage_options=opts)
        mean = ds["scan.b2nd"].mean(dim="scan.b2nd_dim0").compute()
        np.testing.assert_allclose(mean.values, stack.mean(axis=0))
        total = ds["scan.b2nd"].astype("u8").sum().compute()
        assert int(total) == int(stack.astype("u8").sum())
    assert list(Path(opts["cache_storage"]).rglob("*.c2c"))  # workers filled the shared cache
