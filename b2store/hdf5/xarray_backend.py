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
* Two things the Zarr metadata cannot carry come from the b2h5 index (``FileIndex.xarray_hints``)
  so that they match ``engine="h5netcdf"`` (``engine="zarr"`` on the URL goes without them):
  ``scale_factor``/``add_offset`` keep their HDF5 NumPy type (a float32 pair decodes packed
  integers to float32, not float64), and ``Dataset.encoding["unlimited_dims"]`` names the
  group's unlimited netCDF dimensions (which ``to_netcdf`` keeps unlimited).
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

Only xarray's backend modules (which xarray has imported already) and
:mod:`b2store._whole_chunks` are imported at module level: xarray imports every installed
engine's class whenever it lists engines, so everything else (zarr, h5py) is imported on first
use.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from xarray.backends import BackendEntrypoint

from b2store._engine_args import check_read_only, storage_options_dict
from b2store._whole_chunks import (
    ZARR_ENGINE_PARAMETERS,
    WholeChunkStore,
    open_read_only_group,
)

if TYPE_CHECKING:
    from xarray import Dataset, DataTree

__all__ = ["B2H5BackendEntrypoint"]

_PREFIX = "b2h5::"


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
    shown: str,
    storage_options: Mapping[str, Any] | None,
    zarr_format: int | None,
    direct: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], int | None]:
    """storage_options for b2h5 and the zarr_format for zarr, made to agree; ``direct``: b2h5
    options given to the engine as keywords (:data:`FS_KEYWORDS`; None = not given); *shown*
    is the file's URL as messages name it (without credentials)."""
    opts = storage_options_dict(shown, storage_options)
    if "fo" in opts:
        raise TypeError(
            f"{shown!r}: storage_options['fo'] names the file a second time; with "
            'engine="b2h5" the file is the first argument of open_dataset: drop "fo"'
        )
    for where, value in (
        ("zarr_format", zarr_format),
        ("storage_options['zarr_format']", opts.get("zarr_format")),
    ):
        if value is not None and (isinstance(value, bool) or value not in (2, 3)):
            raise ValueError(
                f"{shown!r}: {where}={value!r} is no Zarr format b2h5 serves; give 2 or 3 "
                "(or leave it out for 3)"
            )
    for name, value in {**(direct or {}), "zarr_format": zarr_format}.items():
        if value is None:
            continue
        given = opts.get(name)
        if given is not None and given != value:
            raise ValueError(
                f"{shown!r}: {name}={value!r} contradicts storage_options[{name!r}]={given!r}; "
                "give one of them"
            )
        opts[name] = value
    return opts, opts.get("zarr_format")


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
    url: str, shown: str, group: str | None, opts: dict[str, Any], zarr_format: int | None
) -> FileNotFoundError | None:
    """A FileNotFoundError naming the file as *shown* if ``group`` is not a group of the file
    at *url*, else None."""
    if group is None:
        return None
    want = group.strip("/")
    groups = _groups(url, opts, zarr_format)
    if groups is None or want in groups:
        return None
    listed = ", ".join(repr(g or "/") for g in groups[:20])
    more = f" (and {len(groups) - 20} more)" if len(groups) > 20 else ""
    return FileNotFoundError(
        f"{shown}: no group {group!r} in this file (it may be a dataset or not exist); "
        f"its groups are {listed}{more}. Pass group= one of them"
    )


#: b2h5 options the engine also takes as keywords (``unsupported="skip"``), as
#: ``storage_options`` entries; giving one both ways with different values is a ValueError
FS_KEYWORDS = ("unsupported", "follow_external_links", "index_cache", "check_version")


class B2H5BackendEntrypoint(BackendEntrypoint):
    """Open HDF5 files with b2store's Zarr view (``"b2h5::"`` URLs) in xarray."""

    description = "Open HDF5/netCDF4 files through b2store's b2h5 Zarr view (zarr backend)"
    url = "docs/hdf5.md, section 'xarray engine', in the b2store sources"
    supports_groups = True
    open_dataset_parameters = (
        *ZARR_ENGINE_PARAMETERS,
        "use_zarr_fill_value_as_mask",
        "cache_members",
        "lock",
        *FS_KEYWORDS,
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
        unsupported: str | None = None,
        follow_external_links: bool | None = None,
        index_cache: Any = None,
        check_version: bool | None = None,
    ) -> Dataset:
        ds: Dataset = _through_zarr(
            _open_dataset,
            filename_or_obj,
            group=group,
            mode=mode,
            storage_options=storage_options,
            zarr_format=zarr_format,
            direct={
                "unsupported": unsupported,
                "follow_external_links": follow_external_links,
                "index_cache": index_cache,
                "check_version": check_version,
            },
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
        unsupported: str | None = None,
        follow_external_links: bool | None = None,
        index_cache: Any = None,
        check_version: bool | None = None,
    ) -> dict[str, Dataset]:
        groups: dict[str, Dataset] = _through_zarr(
            _open_groups_as_dict,
            filename_or_obj,
            group=group,
            mode=mode,
            storage_options=storage_options,
            zarr_format=zarr_format,
            direct={
                "unsupported": unsupported,
                "follow_external_links": follow_external_links,
                "index_cache": index_cache,
                "check_version": check_version,
            },
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
    open_: Callable[..., Any],
    filename_or_obj: Any,
    *,
    group: str | None,
    mode: str,
    storage_options: Mapping[str, Any] | None,
    zarr_format: int | None,
    direct: Mapping[str, Any],
    **decoding: Any,
) -> Any:
    """Call ``open_`` (:func:`_open_dataset`, :func:`_open_groups_as_dict`) on the file's
    ``"b2h5::"`` URL, read-only, with b2h5's storage options; a missing group is a
    FileNotFoundError naming the file's groups."""
    url = b2h5_url(filename_or_obj)
    from b2store.hdf5._target_errors import _scrub

    shown = _scrub(url)  # messages never show a password or a signed query
    check_read_only(shown, "b2h5", mode)
    opts, fmt = _options(shown, storage_options, zarr_format, direct)
    try:
        return open_(url, group=group, storage_options=opts, zarr_format=fmt, **decoding)
    except (KeyError, AttributeError, FileNotFoundError) as err:
        missing = _missing_group(url, shown, group, opts, fmt)
        if missing is not None:
            raise missing from err
        raise


def _open_dataset(
    url: str,
    *,
    group: str | None,
    storage_options: dict[str, Any],
    zarr_format: int | None,
    consolidated: bool | None,
    use_zarr_fill_value_as_mask: bool | None,
    cache_members: bool,
    **decoding: Any,
) -> Dataset:
    """xarray's zarr backend's ``open_dataset`` on a :class:`_HintedStore` of the group."""
    from xarray.backends.zarr import ZarrBackendEntrypoint

    store = open_read_only_group(
        url,
        group=group,
        consolidated=consolidated,
        storage_options=storage_options,
        zarr_format=zarr_format,
        cache_members=cache_members,
    )
    fs = _b2h5_fs(store)
    hinted = _HintedStore(store, _hints(fs), fs=fs)
    ds: Dataset = ZarrBackendEntrypoint().open_dataset(url, store=hinted, **decoding)
    return ds


def _open_groups_as_dict(
    url: str,
    *,
    group: str | None,
    storage_options: dict[str, Any],
    zarr_format: int | None,
    consolidated: bool | None,
    **decoding: Any,
) -> dict[str, Dataset]:
    """``ZarrBackendEntrypoint.open_groups_as_dict`` (xarray 2026.9) on :class:`_HintedStore`."""
    from xarray.backends.store import StoreBackendEntrypoint
    from xarray.backends.zarr import ZarrStore
    from xarray.core.treenode import NodePath
    from xarray.core.utils import close_on_error

    parent = str(NodePath("/") / NodePath(group)) if group else str(NodePath("/"))
    stores = ZarrStore.open_store(
        url,
        group=parent,
        mode="r",
        consolidated=consolidated,
        consolidate_on_close=False,
        storage_options=storage_options,
        zarr_format=zarr_format,
    )
    fs = _b2h5_fs(next(iter(stores.values()))) if stores else None  # one file: one filesystem
    hints = _hints(fs)
    out: dict[str, Dataset] = {}
    for path, store in stores.items():
        with close_on_error(store):
            hinted = _HintedStore(store, hints, fs=fs)
            ds = StoreBackendEntrypoint().open_dataset(hinted, **decoding)
        name = str(NodePath(path).relative_to(parent)) if group else str(NodePath(path))
        out[name] = ds
    return out


def _b2h5_fs(store: Any) -> Any:
    """The b2h5 filesystem under a ZarrStore, or None."""
    from b2store._whole_chunks import store_filesystem
    from b2store.hdf5.filesystem import HDF5FileSystem

    fs = store_filesystem(store)
    return fs if isinstance(fs, HDF5FileSystem) else None


def _hints(fs: Any) -> dict[str, dict[str, Any]] | None:
    """The ``FileIndex.xarray_hints`` of a b2h5 filesystem *fs* (from :func:`_b2h5_fs`), or
    None."""
    if fs is None:
        return None
    hints: dict[str, dict[str, Any]] | None = fs.index.xarray_hints
    return hints


class _HintedStore(WholeChunkStore):
    """A read-only ZarrStore of a b2h5 group, plus what h5netcdf shows that the Zarr metadata
    cannot carry (``FileIndex.xarray_hints``): the NumPy types of ``scale_factor``/
    ``add_offset`` (a float32 pair decodes to float32, as with h5netcdf, not to float64 as
    their JSON numbers would) and ``encoding["unlimited_dims"]`` (kept by ``to_netcdf``).
    Variables stored as Blosc2 chunks read whole chunks without zarr's pipeline
    (:mod:`b2store._whole_chunks`) through *fs*, the b2h5 filesystem under *store* (None: every
    variable through zarr)."""

    def __init__(self, store: Any, hints: dict[str, dict[str, Any]] | None, *, fs: Any) -> None:
        super().__init__(store, fs=fs)
        self._hints = hints or {}
        zgroup = store.zarr_group
        root = str(getattr(zgroup.store, "path", "") or "").strip("/")
        self._path = "/".join(p for p in (root, str(zgroup.path).strip("/")) if p)

    def _key(self, name: str) -> str:
        return f"{self._path}/{name}" if self._path else name

    def load(self) -> tuple[Any, Any]:
        import numpy as np

        variables, attributes = super().load()
        for name, var in variables.items():
            types = self._hints.get(self._key(name), {}).get("attribute_types", {})
            for attr, dtype in types.items():
                value = var.attrs.get(attr)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    var.attrs[attr] = np.dtype(dtype).type(value)
        return variables, attributes

    def get_encoding(self) -> dict[str, Any]:
        encoding = super().get_encoding()
        unlimited = self._hints.get(self._path, {}).get("unlimited_dims")
        if unlimited is not None:
            encoding["unlimited_dims"] = set(unlimited)
        return encoding
