"""A dask mean over a remote tomography stack on a LocalCluster with worker processes: the
filesystem pickles, workers rebuild their HTTP sessions and share the on-disk chunk cache."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import blosc2
import numpy as np
import pytest
import xarray as xr

distributed = pytest.importorskip("distributed")


def test_dask_mean_on_local_cluster(cat2_server: Any, so: dict[str, Any]) -> None:
    rel = f"tomo-{uuid.uuid4().hex[:8]}"
    (cat2_server.public / rel).mkdir()
    rng = np.random.default_rng(7)
    stack = rng.integers(800, 36000, size=(16, 64, 64), dtype="u2")
    blosc2.asarray(stack, chunks=(2, 64, 64), blocks=(1, 32, 64),
                   urlpath=str(cat2_server.public / rel / "scan.b2nd"), mode="w")  # fmt: skip
    url = f"caterva2://{cat2_server.host}/@public/{rel}/scan.b2nd"  # the dual view's group
    opts = {k: v for k, v in so.items() if k != "skip_instance_cache"}
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        ds = xr.open_zarr(url, storage_options=opts)
        mean = ds["scan.b2nd"].mean(dim="scan.b2nd_dim0").compute()
        np.testing.assert_allclose(mean.values, stack.mean(axis=0))
        total = ds["scan.b2nd"].astype("u8").sum().compute()
        assert int(total) == int(stack.astype("u8").sum())
    assert list(Path(opts["cache_storage"]).rglob("*.c2c"))  # workers filled the shared cache
