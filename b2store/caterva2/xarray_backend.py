"""xarray engine ``"caterva2"``: Caterva2 datasets and directories with whole-chunk reads.

Contract:

* ``xr.open_dataset(url, engine="caterva2", ...)`` opens the ``caterva2://`` or ``caterva2s://``
  URL (a dataset, a directory or a root; ``group=`` a directory or HDF5 file below it) exactly
  as ``xr.open_zarr(url, ...)`` does: xarray's own zarr backend
  (:class:`xarray.backends.zarr.ZarrBackendEntrypoint`) on the b2store Caterva2 filesystem, with
  its decoding, ``chunks`` (``{}`` gives dask chunks equal to the server's chunks), dask names
  and consolidated metadata. ``storage_options`` go to the filesystem (``cache_storage``,
  credentials, ``timeout``, ... see docs/caterva2.md); a dataset URL is opened as the Zarr v3
  group holding the dataset (``dataset_as="group"``), which gives the Dataset that
  ``xr.open_zarr(url)`` gives from the v2 dual view: one variable named after the dataset.
* One thing differs, as with ``engine="b2h5"``: a variable stored as Blosc2 chunks (codec
  ``b2store.b2nd`` alone, numeric or bool dtype: every ``.b2nd`` dataset) reads whole chunks
  without zarr's codec pipeline - each chunk's bytes come from the filesystem (same requests,
  same cache, same errors as zarr's reads) and are decoded straight into the dask task's result
  (:mod:`b2store._whole_chunks`). Any other selection or variable goes through zarr.
* Refused loudly: anything that is not a ``caterva2://``/``caterva2s://`` URL (``ValueError``
  naming the engines that take it, or ``TypeError`` for objects), a write ``mode``
  (``PermissionError``), ``zarr_format=2`` or a ``dataset_as`` other than ``"group"``
  (``ValueError``: the whole-chunk reads need the Zarr v3 view; ``xr.open_zarr`` serves the
  others). A URL or ``group=`` the server does not have (or that b2store cannot read) raises
  the filesystem's ``FileNotFoundError`` (what is missing and where to list what exists, or
  why), not zarr's.
* ``guess_can_open`` claims ``caterva2://`` and ``caterva2s://`` strings; ``xr.open_zarr`` is
  unchanged.

Only xarray's backend modules (imported by xarray already) and :mod:`b2store._whole_chunks`
are imported at module level: xarray imports every installed engine's class whenever it lists
engines.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from xarray.backends import BackendEntrypoint

from b2store._whole_chunks import ZARR_ENGINE_PARAMETERS

if TYPE_CHECKING:
    from xarray import Dataset

__all__ = ["Caterva2BackendEntrypoint"]

_SCHEMES = ("caterva2://", "caterva2s://")


def _shown(url: str) -> str:
    """*url* for messages: a ``user:password@`` before the host is written ``***@``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, below = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return f"{scheme}{sep}{netloc}{slash}{below}"


def caterva2_url(filename_or_obj: Any) -> str:
    """The ``caterva2://``/``caterva2s://`` URL given; a TypeError or ValueError otherwise."""
    if not isinstance(filename_or_obj, (str, os.PathLike)) or isinstance(
        filename_or_obj, (bytes, bytearray)
    ):
        raise TypeError(
            f'engine="caterva2" needs a caterva2:// or caterva2s:// URL (a str), not '
            f"{type(filename_or_obj).__name__}"
        )
    url = os.fspath(filename_or_obj)
    if not isinstance(url, str) or not url.startswith(_SCHEMES):
        raise ValueError(
            f'engine="caterva2" opens caterva2:// (HTTP) and caterva2s:// (HTTPS) URLs such as '
            f'"caterva2://host:8000/@public/dir/scan.b2nd"; got {_shown(url)!r}. HDF5 files '
            'open with engine="b2h5", Zarr stores with engine="zarr"'
        )
    return url


def _missing_node(url: str, opts: dict[str, Any], group: str | None) -> FileNotFoundError | None:
    """The filesystem's own "not found" error for the node *url* (and *group* below it) names,
    which says where to look, or why a node that exists cannot be read (an unsupported
    dataset, which directories leave out of their listing); zarr's says "No group found in
    store", or a bare ``KeyError`` for ``group``. ``None`` if the filesystem finds the node."""
    import posixpath

    from fsspec.core import url_to_fs

    try:
        fs, path = url_to_fs(url, **opts)
        fs.info(posixpath.join(path, group.strip("/")) if group else path)
    except FileNotFoundError as missing:  # a 404, or a node b2store cannot read (says why)
        return missing
    except Exception:  # unreachable, refused...: keep zarr's error
        return None
    return None


class Caterva2BackendEntrypoint(BackendEntrypoint):
    """Open Caterva2 datasets in xarray, whole Blosc2 chunks decoded without zarr's pipeline."""

    description = "Open Caterva2 datasets and directories through b2store (zarr backend)"
    url = "docs/caterva2.md, section 'xarray engine', in the b2store sources"
    open_dataset_parameters = (
        *ZARR_ENGINE_PARAMETERS,
        "cache_members",
    )

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        return isinstance(filename_or_obj, str) and filename_or_obj.startswith(_SCHEMES)

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        mask_and_scale: bool = True,
        decode_times: Any = True,
        concat_characters: bool = True,
        decode_coords: Any = True,
        drop_variables: str | Iterable[str] | None = None,
        use_cftime: bool | None = None,
        decode_timedelta: Any = None,
        group: str | None = None,
        mode: str = "r",
        consolidated: bool | None = None,
        storage_options: Mapping[str, Any] | None = None,
        zarr_format: int | None = None,
        cache_members: bool = True,
    ) -> Dataset:
        from xarray.backends.zarr import ZarrBackendEntrypoint

        from b2store._engine_args import check_read_only, storage_options_dict
        from b2store._whole_chunks import (
            WholeChunkStore,
            open_read_only_group,
            store_filesystem,
        )

        url = caterva2_url(filename_or_obj)
        shown = _shown(url)  # credentials in the URL never reach a message
        check_read_only(shown, "caterva2", mode)
        if zarr_format not in (None, 3):
            raise ValueError(
                f'{shown!r}: engine="caterva2" reads the Zarr v3 view (zarr_format=3). Got '
                f"zarr_format={zarr_format!r} instead; xr.open_zarr(url, zarr_format=2) serves "
                "the v2 view"
            )
        opts = storage_options_dict(shown, storage_options)
        if opts.get("dataset_as", "group") != "group":
            raise ValueError(
                f'{shown!r}: engine="caterva2" serves a dataset URL as a Zarr v3 group holding the '
                f"dataset (dataset_as='group'). Got dataset_as={opts['dataset_as']!r} instead; "
                "drop it, or open the URL with xr.open_zarr"
            )
        opts["dataset_as"] = "group"  # directories are v3 groups whatever the choice
        failed: Exception | None = None
        try:
            store = open_read_only_group(
                url,
                group=group,
                consolidated=consolidated,
                storage_options=opts,
                zarr_format=3,
                cache_members=cache_members,
            )
        except (FileNotFoundError, KeyError) as err:  # zarr names neither the node nor a way on
            failed = err
        except AttributeError as err:  # xarray: "'Array' object has no attribute 'members'"
            if group is None or "members" not in str(err):
                raise
            raise FileNotFoundError(
                f"{shown}: group={group!r} names a dataset, not a directory or HDF5 file: open "
                f'{shown.rstrip("/")}/{group.strip("/")} with engine="caterva2" (no group=), '
                "or give group= a directory"
            ) from None
        if failed is not None:
            # asked outside the handler: the error raised carries no trace of zarr's, which
            # quotes the URL as typed, password and all
            missing = _missing_node(url, opts, group)
            raise missing if missing is not None else failed
        ds: Dataset = ZarrBackendEntrypoint().open_dataset(
            url,
            store=WholeChunkStore(store, fs=store_filesystem(store)),
            mask_and_scale=mask_and_scale,
            decode_times=decode_times,
            concat_characters=concat_characters,
            decode_coords=decode_coords,
            drop_variables=drop_variables,
            use_cftime=use_cftime,
            decode_timedelta=decode_timedelta,
        )
        # xarray keeps filename_or_obj there unless the engine sets it: no password in it
        ds.encoding["source"] = shown
        return ds

    def open_datatree(self, filename_or_obj: Any, **kwargs: Any) -> Any:
        """Refused: the engine opens datasets (a tree through zarr's pipeline: engine="zarr")."""
        raise NotImplementedError(
            'engine="caterva2" opens datasets (xr.open_dataset, xr.open_mfdataset); open the '
            'tree with xr.open_datatree(url, engine="zarr", storage_options=...)'
        )

    def open_groups_as_dict(self, filename_or_obj: Any, **kwargs: Any) -> Any:
        """Refused, as :meth:`open_datatree`."""
        return self.open_datatree(filename_or_obj, **kwargs)
