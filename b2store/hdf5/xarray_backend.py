"""xarray engine ``"b2h5"``: open HDF5 files through the b2h5 Zarr view.

Contract:

* ``xr.open_dataset(path, engine="b2h5", group=...)``, ``xr.open_mfdataset(paths, engine="b2h5")``,
  ``xr.open_datatree(path, engine="b2h5")`` and ``xr.open_groups(path, engine="b2h5")`` open
  the HDF5 file at ``path`` (a str or ``os.PathLike``: a local path, any fsspec URL such as
  ``http://...`` or ``simplecache::s3://...``, or an already chained ``"b2h5::..."`` URL).
* Every call delegates to xarray's own zarr backend
  (:class:`xarray.backends.zarr.ZarrBackendEntrypoint`) on the URL ``"b2h5::<path>"``: decoding,
  ``chunks`` (``{}`` gives dask chunks equal to the HDF5 chunks), dask names, groups and
  consolidated metadata behave as with ``engine="zarr"`` on that URL. A local path keeps its
  place in xarray's dask token (with the file's mtime), so dask names change when the file does.
* ``storage_options`` go to the b2h5 filesystem (``zarr_format``, ``unsupported``,
  ``index_cache``, ``follow_external_links``, ``target_options``, ... see docs/hdf5.md).
  ``zarr_format=`` is routed to both b2h5 and zarr, so the view and the reader agree.
* ``lock`` (as given to ``engine="h5netcdf"``/``"netcdf4"``, e.g. ``lock=False`` in
  ``open_mfdataset`` calls written for them) is accepted and unused: chunks are read by byte
  range, not through the HDF5 library, so there is nothing to serialise.
* Refused loudly: file-like objects, bytes and stores (``TypeError``: pass a path or URL, or use
  ``engine="h5netcdf"``/``"zarr"``), a write ``mode`` (``PermissionError``), a ``zarr_format``
  that contradicts ``storage_options`` or is not 2 or 3 (``ValueError`` naming the file), a
  missing group or a group that names an array (``FileNotFoundError`` naming the file and the
  group).
* ``guess_can_open`` claims only ``"b2h5::..."`` strings; plain ``.h5``/``.nc`` paths stay with
  netCDF4/h5netcdf (which come first in xarray's guess order anyway).

Only xarray's ``BackendEntrypoint`` is imported at module level: xarray imports every installed
engine's class whenever it lists engines, so everything else is imported on first use.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from xarray.backends import BackendEntrypoint

if TYPE_CHECKING:
    from xarray import Dataset, DataTree

__all__ = ["B2H5BackendEntrypoint"]

_PREFIX = "b2h5::"
_READ_MODES = ("r",)


def b2h5_url(filename_or_obj: Any) -> str:
    """The ``"b2h5::..."`` URL of a path or URL; a ``TypeError`` for anything else."""
    if isinstance(filename_or_obj, (bytes, bytearray, memoryview)) or hasattr(
        filename_or_obj, "read"
    ):
        raise TypeError(
            f'engine="b2h5" needs a path or URL (str or os.PathLike), not '
            f"{type(filename_or_obj).__name__}: b2h5 reads chunks by byte range from a file it "
            'can reopen. Pass the path or URL, or open the file object with engine="h5netcdf".'
        )
    if not isinstance(filename_or_obj, (str, os.PathLike)):
        raise TypeError(
            f'engine="b2h5" needs a path or URL (str or os.PathLike), not '
            f"{type(filename_or_obj).__name__}: pass the HDF5 file's path or URL "
            '(a Zarr store or mapper opens with engine="zarr").'
        )
    path = os.fspath(filename_or_obj)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        raise ValueError('engine="b2h5" was given an empty path')
    if path.startswith("b2h5:"):
        return path
    if _is_url(path):
        return _PREFIX + path
    return _PREFIX + os.path.abspath(os.path.expanduser(path))


#: A URL or an fsspec chain: a scheme followed by "://" or "::" ("C:\\data" is a path).
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*(://|::)")


def _is_url(path: str) -> bool:
    return _URL.match(path) is not None or path.startswith("file:")


def _options(
    url: str, storage_options: Mapping[str, Any] | None, zarr_format: int | None
) -> tuple[dict[str, Any], int | None]:
    """storage_options for b2h5 and the zarr_format for zarr, made to agree."""
    if storage_options is not None and not isinstance(storage_options, Mapping):
        raise TypeError(
            f"storage_options for {url!r} must be a mapping (dict), not "
            f"{type(storage_options).__name__}"
        )
    opts = dict(storage_options or {})
    if "fo" in opts:
        raise TypeError(
            f"{url!r}: storage_options['fo'] names the file a second time; with "
            'engine="b2h5" the file is the first argument of open_dataset: drop "fo"'
        )
    for where, value in (
        ("zarr_format", zarr_format),
        ("storage_options['zarr_format']", opts.get("zarr_format")),
    ):
        if value is not None and (isinstance(value, bool) or value not in (2, 3)):
            raise ValueError(
                f"{url!r}: {where}={value!r} is no Zarr format b2h5 serves; give 2 or 3 "
                "(or leave it out for 3)"
            )
    if zarr_format is not None:
        given = opts.get("zarr_format")
        if given is not None and given != zarr_format:
            raise ValueError(
                f"{url!r}: zarr_format={zarr_format!r} contradicts "
                f"storage_options['zarr_format']={given!r}; give one of them"
            )
        opts["zarr_format"] = zarr_format
    return opts, opts.get("zarr_format")


def _check_mode(url: str, mode: str) -> None:
    if mode not in _READ_MODES:
        raise PermissionError(
            f'{url!r}: engine="b2h5" is read-only (mode={mode!r}); open with mode="r" and write '
            "copies with Dataset.to_zarr or to_netcdf elsewhere"
        )


def _groups(url: str, opts: dict[str, Any], zarr_format: int | None) -> list[str] | None:
    """Every group path of the file (root = ""), from its consolidated metadata; None if unknown."""
    import json

    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url, **opts)
        root = root.strip("/")
        prefix = f"{root}/" if root else ""
        if zarr_format == 2:
            meta = json.loads(fs.cat_file(prefix + ".zmetadata"))["metadata"]
            names = [k[: -len(".zgroup")].rstrip("/") for k in meta if k.endswith(".zgroup")]
        else:
            doc = json.loads(fs.cat_file(prefix + "zarr.json"))
            meta = (doc.get("consolidated_metadata") or {}).get("metadata") or {}
            names = [""] + [k for k, v in meta.items() if v.get("node_type") == "group"]
    except Exception:  # the probe only improves a message: the original error stands
        return None
    return sorted(set(names))


def _missing_group(
    url: str, group: str | None, opts: dict[str, Any], zarr_format: int | None
) -> FileNotFoundError | None:
    """A FileNotFoundError if ``group`` is not a group of the file, else None."""
    if group is None:
        return None
    want = group.strip("/")
    groups = _groups(url, opts, zarr_format)
    if groups is None or want in groups:
        return None
    shown = ", ".join(repr(g or "/") for g in groups[:20])
    more = f" (and {len(groups) - 20} more)" if len(groups) > 20 else ""
    return FileNotFoundError(
        f"{url}: no group {group!r} in this file (it may be a dataset or not exist); "
        f"its groups are {shown}{more}. Pass group= one of them"
    )


class B2H5BackendEntrypoint(BackendEntrypoint):
    """Open HDF5 files with b2store's Zarr view (``"b2h5::"`` URLs) in xarray."""

    description = "Open HDF5/netCDF4 files through b2store's b2h5 Zarr view (zarr backend)"
    url = "docs/hdf5.md, section 'xarray engine', in the b2store sources"
    supports_groups = True
    open_dataset_parameters = (
        "filename_or_obj",
        "mask_and_scale",
        "decode_times",
        "concat_characters",
        "decode_coords",
        "drop_variables",
        "use_cftime",
        "decode_timedelta",
        "group",
        "mode",
        "consolidated",
        "storage_options",
        "zarr_format",
        "use_zarr_fill_value_as_mask",
        "cache_members",
        "lock",
    )

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        return isinstance(filename_or_obj, str) and filename_or_obj.startswith(_PREFIX)

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
        consolidated: bool | None = True,
        storage_options: Mapping[str, Any] | None = None,
        zarr_format: int | None = None,
        use_zarr_fill_value_as_mask: bool | None = None,
        cache_members: bool = True,
        lock: Any = None,
    ) -> Dataset:
        ds: Dataset = _through_zarr(
            "open_dataset",
            filename_or_obj,
            group=group,
            mode=mode,
            storage_options=storage_options,
            zarr_format=zarr_format,
            mask_and_scale=mask_and_scale,
            decode_times=decode_times,
            concat_characters=concat_characters,
            decode_coords=decode_coords,
            drop_variables=drop_variables,
            use_cftime=use_cftime,
            decode_timedelta=decode_timedelta,
            consolidated=consolidated,
            use_zarr_fill_value_as_mask=use_zarr_fill_value_as_mask,
            cache_members=cache_members,
        )
        return ds

    def open_datatree(self, filename_or_obj: Any, **kwargs: Any) -> DataTree:
        """The file's groups (the keywords of :meth:`open_groups_as_dict`) as a DataTree."""
        from xarray.backends.common import datatree_from_dict_with_io_cleanup

        return datatree_from_dict_with_io_cleanup(
            self.open_groups_as_dict(filename_or_obj, **kwargs)
        )

    def open_groups_as_dict(
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
        consolidated: bool | None = True,
        storage_options: Mapping[str, Any] | None = None,
        zarr_format: int | None = None,
        lock: Any = None,
    ) -> dict[str, Dataset]:
        groups: dict[str, Dataset] = _through_zarr(
            "open_groups_as_dict",
            filename_or_obj,
            group=group,
            mode=mode,
            storage_options=storage_options,
            zarr_format=zarr_format,
            mask_and_scale=mask_and_scale,
            decode_times=decode_times,
            concat_characters=concat_characters,
            decode_coords=decode_coords,
            drop_variables=drop_variables,
            use_cftime=use_cftime,
            decode_timedelta=decode_timedelta,
            consolidated=consolidated,
        )
        return groups


def _through_zarr(
    method: str,
    filename_or_obj: Any,
    *,
    group: str | None,
    mode: str,
    storage_options: Mapping[str, Any] | None,
    zarr_format: int | None,
    **decoding: Any,
) -> Any:
    """Call xarray's zarr backend's ``method`` on the file's ``"b2h5::"`` URL, read-only, with
    b2h5's storage options; a missing group is a FileNotFoundError naming the file's groups."""
    from xarray.backends.zarr import ZarrBackendEntrypoint

    url = b2h5_url(filename_or_obj)
    _check_mode(url, mode)
    opts, fmt = _options(url, storage_options, zarr_format)
    open_ = getattr(ZarrBackendEntrypoint(), method)
    try:
        return open_(url, group=group, mode="r", storage_options=opts, zarr_format=fmt, **decoding)
    except (KeyError, AttributeError, FileNotFoundError) as err:
        missing = _missing_group(url, group, opts, fmt)
        if missing is not None:
            raise missing from err
        raise
